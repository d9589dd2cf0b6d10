"""The seven "high resolution" datasets of MetaMD (§5.2 "High Resolution Image Application", App. A.9).

Meta-train: Aircraft, Butterfly, Pets. Meta-test: Caltech(-256), DTD, Flowers, PubFig. Every image is
converted to RGB and resized to ``image_size`` × ``image_size`` (the paper: "We resize them to standard
224×224 for ResNet18"; a plain resize of the whole image, no crop). :func:`load_highres` returns
:class:`l2l_utils.tasks.datasets.ImageData` with float32 images (N, 3, s, s) in [0, 1] and int64 labels 0..C-1.

Splits, chosen to match the paper's Table 4 (train / test / classes) where a standard split does:

* **Aircraft** (FGVC-Aircraft 2013b, variant level): torchvision ``FGVCAircraft`` "trainval" / "test",
  6,667 / 3,333, 100 classes -- as Table 4.
* **Pets** (Oxford-IIIT Pet): torchvision ``OxfordIIITPet`` "trainval" / "test", 3,680 / 3,669, 37 classes.
  Table 4 says 4,000 / 3,390, which matches no official split (and sums to 7,390, not the 7,349 images of the
  release); the official split is used.
* **DTD** (partition 1): train = "train" + "val" (3,760), test = "test" (1,880), 47 classes -- as Table 4.
* **Flowers** (Oxford 102): train = "train" + "val" (2,040), test = "test" (6,149), 102 classes -- as Table 4.
* **Caltech256**: the 257.clutter folder is not a class and is dropped (256 classes). There is no standard
  split; App. A.9 builds one "with 60 and 20 examples for each class", so a seeded per-class split gives 60
  train and 20 test images per class (15,360 / 5,120). Table 4 says 12,800 / 5,120, i.e. 50 train per class,
  contradicting the text; the text (60 / 20) is followed. A class with fewer than 80 images gives 20 to test and
  the rest to train (every real class has at least 80).
* **Butterfly** (Butterfly-200, Chen et al. 2018): not in torchvision. Expected in ImageFolder layout
  ``<root>/butterfly200/{train,test}/<species>/<image>``, where ``train`` holds the official train split
  (10,270) and ``test`` the official val + test splits (5,135 + 9,874 = 15,009), as Table 4; 200 species.
* **PubFig** (PubFig83, Pinto et al. 2011): not in torchvision, ``<root>/pubfig83/<person>/<image>``. App. A.9
  claims a standard split, but PubFig83 has none; Table 4's 12,178 / 1,660 = 83 × 20 test images, so a seeded
  per-class split puts 20 images of each person in test and the rest in train.

Caltech256 and PubFig share :func:`per_class_split`, which depends only on the labels and ``seed``, so the
"train" and "test" calls of one seed are disjoint and (when nothing is capped) cover every image.

Files are read from the data root (``data_dir``, else ``$L2L_DATA_DIR``, else ``<project>/data``) and never
downloaded (and the root is never written to); missing files raise
:class:`~l2l_utils.tasks.datasets.DatasetMissingError` with the expected layout (:func:`highres_layout`).

Decoding tens of thousands of JPEGs is slow, so images are decoded by a ``DataLoader`` (worker processes for
more than 256 images) and the resized uint8 images + labels are cached as one ``.pt`` file under
``cache_dir() / "highres"``, keyed by dataset, split, image size, seed (only for the seeded splits) and a hash
of the resolved data root; delete that file after changing the data. Float images are made on return: at
224×224 one image takes 3·224·224·4 B ≈ 0.6 MB (e.g. ~9 GB for Caltech256's train split), which the paper
profile's machine (128 GB RAM) holds; the uint8 cache is a quarter of that.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torchvision
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torchvision import transforms

from .core import DatasetMissingError, ImageData, _make_image_data, cache_dir, resolve_data_dir

META_TRAIN = ("Aircraft", "Butterfly", "Pets")
META_TEST = ("Caltech256", "DTD", "Flowers", "PubFig")
HIGHRES_DATASETS = META_TRAIN + META_TEST
SPLITS = ("train", "test")

CALTECH_TRAIN_PER_CLASS = 60  # App. A.9: "60 and 20 examples for each class"
CALTECH_TEST_PER_CLASS = 20
PUBFIG_TEST_PER_CLASS = 20  # Table 4: 1,660 test images = 83 people x 20
SEEDED = ("Caltech256", "PubFig")  # datasets whose split depends on ``seed``

_WORKER_THRESHOLD = 256  # decode in worker processes above this many images
_BATCH = 64
_CACHE: dict[tuple, ImageData] = {}

_LAYOUTS = {
    "Aircraft": "<root>/fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt, images_variant_trainval.txt, "
                "images_variant_test.txt} (torchvision FGVCAircraft)",
    "Butterfly": "<root>/butterfly200/{train,test}/<species>/<image>.jpg (ImageFolder; official train split in "
                 "train/, official val + test splits in test/)",
    "Pets": "<root>/oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/trainval.txt, annotations/test.txt} "
            "(torchvision OxfordIIITPet)",
    "Caltech256": "<root>/caltech256/256_ObjectCategories/<001.ak47>/<001_0001.jpg> (torchvision Caltech256; "
                  "257.clutter is ignored)",
    "DTD": "<root>/dtd/dtd/{images/<class>/<image>.jpg, labels/train1.txt, labels/val1.txt, labels/test1.txt} "
           "(torchvision DTD)",
    "Flowers": "<root>/flowers-102/{jpg/image_00001.jpg, imagelabels.mat, setid.mat} (torchvision Flowers102)",
    "PubFig": "<root>/pubfig83/<person>/<image>.jpg (PubFig83 as one folder per person; 20 test images per "
              "person are drawn with the seed)",
}


def highres_layout(name: str) -> str:
    """One line describing the files ``name`` needs under the data root."""
    _check_name(name)
    return _LAYOUTS[name]


def _check_name(name: str) -> None:
    if name not in HIGHRES_DATASETS:
        raise ValueError(f"Unknown high-resolution dataset {name!r}; expected one of {', '.join(HIGHRES_DATASETS)}")


def _required(name: str, split: str) -> list[str]:
    """Paths (relative to the data root) that must exist before ``name``/``split`` can be read."""
    train = split == "train"
    if name == "Aircraft":
        d = "fgvc-aircraft-2013b/data"
        return [f"{d}/images", f"{d}/variants.txt", f"{d}/images_variant_{'trainval' if train else 'test'}.txt"]
    if name == "Pets":
        return ["oxford-iiit-pet/images", f"oxford-iiit-pet/annotations/{'trainval' if train else 'test'}.txt"]
    if name == "DTD":
        return ["dtd/dtd/images"] + [f"dtd/dtd/labels/{p}1.txt" for p in (("train", "val") if train else ("test",))]
    if name == "Flowers":
        return ["flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"]
    if name == "Caltech256":
        return ["caltech256/256_ObjectCategories"]
    if name == "Butterfly":
        return [f"butterfly200/{split}"]
    return ["pubfig83"]


# ----------------------------------------------------------------------------- split helper


def per_class_split(labels: Sequence[int], n_test: int, n_train: int | None, seed: int,
                    class_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split (App. A.9): indices ``(train, test)``, each sorted.

    Within each class (in label order) a permutation drawn from ``np.random.default_rng(seed)`` puts its first
    ``n_test`` images in test and the next ``n_train`` (all the rest when ``None``) in train. The result depends
    only on ``labels`` and ``seed``. A class with at most ``n_test`` images raises ValueError.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= n_test:
            who = class_names[c] if class_names is not None else f"class {c}"
            raise ValueError(f"{who} has {len(idx)} images; the per-class split needs at least {n_test + 1} "
                             f"({n_test} test + at least 1 train)")
        test.append(idx[:n_test])
        train.append(idx[n_test:] if n_train is None else idx[n_test:n_test + n_train])
    empty = np.zeros(0, dtype=np.int64)
    return (np.sort(np.concatenate(train)) if train else empty, np.sort(np.concatenate(test)) if test else empty)


# ----------------------------------------------------------------------------- dataset wrappers


class _ToUint8:
    """PIL image -> RGB -> ``Resize((s, s))`` (whole image, no crop) -> uint8 tensor (3, s, s)."""

    def __init__(self, size: int):
        self.resize = transforms.Resize((size, size))
        self.to_tensor = transforms.PILToTensor()

    def __call__(self, img) -> torch.Tensor:
        return self.to_tensor(self.resize(img.convert("RGB")))


class _Relabelled(Dataset):
    """``base`` restricted to ``indices`` (all when None) with labels mapped by ``label_map`` (identity when None)."""

    def __init__(self, base: Dataset, indices: Sequence[int] | None = None, label_map: Sequence[int] | None = None):
        self.base = base
        self.indices = None if indices is None else [int(i) for i in indices]
        self.label_map = None if label_map is None else list(label_map)

    def __len__(self) -> int:
        return len(self.base) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int):
        img, y = self.base[i if self.indices is None else self.indices[i]]
        return img, (y if self.label_map is None else self.label_map[y])


class _Flowers102Files(torchvision.datasets.Flowers102):
    """torchvision's Flowers102 with the md5 check of imagelabels.mat / setid.mat replaced by an existence check.

    torchvision compares both files with the original md5 sums, which small files in the same format (written by
    the tests) cannot pass; nothing is downloaded here, so only their presence matters.
    """

    def _check_integrity(self) -> bool:
        return self._images_folder.is_dir() and all(
            (self._base_folder / self._file_dict[k][0]).is_file() for k in ("label", "setid"))


def _by_name(parts: Sequence, names: Sequence[str]) -> Dataset:
    """Concatenate datasets that each number their own ``classes``, relabelled into the sorted ``names``."""
    index = {c: i for i, c in enumerate(names)}
    return ConcatDataset([_Relabelled(p, label_map=[index[c] for c in p.classes]) for p in parts])


def _build(name: str, split: str, root: Path, tf: Callable, seed: int) -> Dataset:
    """The split as a Dataset of (uint8 image tensor, label)."""
    train = split == "train"
    tv = torchvision.datasets
    if name == "Aircraft":
        return tv.FGVCAircraft(str(root), split="trainval" if train else "test", annotation_level="variant",
                               transform=tf, download=False)
    if name == "Pets":
        return tv.OxfordIIITPet(str(root), split="trainval" if train else "test", target_types="category",
                                transform=tf, download=False)
    if name == "DTD":
        parts = [tv.DTD(str(root), split=p, partition=1, transform=tf, download=False)
                 for p in (("train", "val") if train else ("test",))]
        return _by_name(parts, sorted({c for p in parts for c in p.classes}))
    if name == "Flowers":  # labels come from imagelabels.mat, shared by all parts
        return ConcatDataset([_Flowers102Files(str(root), split=p, transform=tf, download=False)
                              for p in (("train", "val") if train else ("test",))])
    if name == "Butterfly":
        base = root / "butterfly200"
        names = sorted({d.name for s in SPLITS if (base / s).is_dir() for d in (base / s).iterdir() if d.is_dir()})
        return _by_name([tv.ImageFolder(str(base / split), transform=tf)], names)
    if name == "Caltech256":
        # The 256_ObjectCategories folder was checked first, so Caltech256's os.makedirs(root/caltech256) is a
        # no-op and the data root is not written to. Its __getitem__ does not convert to RGB; _ToUint8 does.
        ds = tv.Caltech256(str(root), transform=tf, download=False)
        keep = [i for i, c in enumerate(ds.categories) if c.split(".", 1)[-1] != "clutter"]
        remap = {old: new for new, old in enumerate(keep)}
        kept = [i for i, y in enumerate(ds.y) if y in remap]
        labels = [remap[ds.y[i]] for i in kept]
        tr, te = per_class_split(labels, CALTECH_TEST_PER_CLASS, CALTECH_TRAIN_PER_CLASS, seed,
                                 [f"Caltech256 class {ds.categories[i]!r}" for i in keep])
        chosen = tr if train else te
        label_map = [remap.get(i, -1) for i in range(len(ds.categories))]
        return _Relabelled(ds, [kept[j] for j in chosen], label_map)
    # PubFig
    ds = tv.ImageFolder(str(root / "pubfig83"), transform=tf)
    tr, te = per_class_split(ds.targets, PUBFIG_TEST_PER_CLASS, None, seed,
                             [f"PubFig person {c!r}" for c in ds.classes])
    return _Relabelled(ds, tr if train else te)


# ----------------------------------------------------------------------------- decoding and caching


def _decode(dataset: Dataset, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All images as uint8 (N, 3, s, s) and labels int64 (N,), decoded by a DataLoader."""
    n = len(dataset)
    workers = min(8, os.cpu_count() or 1) if n > _WORKER_THRESHOLD else 0
    images = torch.empty((n, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    start = 0
    for x, y in DataLoader(dataset, batch_size=_BATCH, shuffle=False, num_workers=workers):
        images[start:start + len(y)] = x
        labels[start:start + len(y)] = y
        start += len(y)
    return images, labels


def _cache_file(name: str, split: str, image_size: int, seed: int | None, root: Path) -> Path:
    digest = hashlib.sha1(str(root.resolve()).encode("utf-8")).hexdigest()[:12]
    seed_part = "" if seed is None else f"-seed{seed}"
    return cache_dir() / "highres" / f"{name}-{split}-{image_size}px{seed_part}-{digest}.pt"


def _save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_source(name: str, split: str, root: Path, image_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``name``/``split`` from the data root; missing files raise DatasetMissingError."""
    example = _LAYOUTS[name]
    missing = [p for p in _required(name, split) if not (root / p).exists()]
    if missing:
        raise DatasetMissingError(name, missing, [root], example, downloadable=False)
    try:
        dataset = _build(name, split, root, _ToUint8(image_size), seed)
        return _decode(dataset, image_size)
    except FileNotFoundError as exc:  # an image or list file named by the annotations is absent
        raise DatasetMissingError(name, [getattr(exc, "filename", None) or "files listed by the annotations"],
                                  [root], example, reason=str(exc), downloadable=False) from exc
    except RuntimeError as exc:  # torchvision: "Dataset not found ..."
        if "not found" not in str(exc).lower():
            raise
        raise DatasetMissingError(name, _required(name, split), [root], example, reason=str(exc),
                                  downloadable=False) from exc


def load_highres(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 image_size: int = 224, seed: int = 0) -> ImageData:
    """One split of a §5.2 high-resolution dataset as float32 (N, 3, s, s) in [0, 1] with labels 0..C-1.

    Cached per process (treat the result as read-only) and on disk as uint8 (see the module docstring).
    ``seed`` only affects the per-class splits of Caltech256 and PubFig.
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    image_size, seed = int(image_size), int(seed)
    root = resolve_data_dir(data_dir)
    key_seed = seed if name in SEEDED else None
    key = (name, split, image_size, key_seed, str(root.resolve()))
    if key in _CACHE:
        return _CACHE[key]
    path = _cache_file(name, split, image_size, key_seed, root)
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = stored["images"], stored["labels"]
    else:
        images, labels = _read_source(name, split, root, image_size, seed)
        _save_atomic({"images": images, "labels": labels, "root": str(root.resolve())}, path)
    data = _make_image_data(images.to(torch.float32).div_(255.0), labels, name, split)
    _CACHE[key] = data
    return data
