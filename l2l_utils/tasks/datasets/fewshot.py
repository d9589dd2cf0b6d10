"""Image datasets for few-shot classification (Huisman et al. 2022, TURTLE, Section 5).

Omniglot (the two small background sets), miniImageNet (class splits of Ravi & Larochelle 2017)
and CUB-200-2011 (class split of Chen et al. 2019) are read from their usual on-disk layouts under
the data root of :func:`l2l_utils.tasks.datasets.resolve_data_dir` and returned as :class:`ImageData`
(float32 (N, C, H, W) in [0, 1], int64 labels). Nothing is downloaded and nothing is written into
the data root; missing files raise :class:`DatasetMissingError`.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path
from typing import Sequence

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from .core import DatasetMissingError, ImageData, resolve_data_dir

FEWSHOT_SUPPORTED = ("miniImageNet", "CUB")
FEWSHOT_SPLITS = ("train", "val", "test")
OMNIGLOT_ZIPS = ("images_background_small1.zip", "images_background_small2.zip")

_OMNIGLOT_CACHE: dict[tuple[str, int], ImageData] = {}
_MAX_LISTED = 5


def _to_tensor(img: Image.Image, mode: str, size: int) -> torch.Tensor:
    """PIL image -> float32 (C, size, size) in [0, 1], resized with antialiasing."""
    x = TF.pil_to_tensor(img.convert(mode)).to(torch.float32).div_(255.0)
    return TF.resize(x, [size, size], antialias=True).clamp_(0.0, 1.0)


def _few(names: Sequence[str]) -> list[str]:
    """At most a few names, plus a count of the rest."""
    shown = list(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown.append(f"... ({len(names)} missing in all)")
    return shown


# ----------------------------------------------------------------------------- Omniglot


def _omniglot_index(data_dir: str | os.PathLike | None
                    ) -> tuple[Path, dict[str, tuple[str, list[str]]]]:
    """Zip folder and ``{"images_background_smallN/alphabet/character": (zip, members)}``, sorted."""
    folder = resolve_data_dir(data_dir) / "omniglot"
    missing = [z for z in OMNIGLOT_ZIPS if not (folder / z).is_file()]
    if missing:
        raise DatasetMissingError("Omniglot", missing, [folder], f"<root>/omniglot/{OMNIGLOT_ZIPS[0]}",
                                  downloadable=False)
    index: dict[str, tuple[str, list[str]]] = {}
    for zname in OMNIGLOT_ZIPS:
        with zipfile.ZipFile(folder / zname) as zf:
            for member in zf.namelist():
                parts = member.split("/")
                if len(parts) == 4 and parts[3].endswith(".png"):
                    key = "/".join(parts[:3])
                    index.setdefault(key, (zname, []))[1].append(member)
    return folder, {k: (z, sorted(m)) for k, (z, m) in sorted(index.items())}


def omniglot_class_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Class names ``"images_background_smallN/alphabet/character"``, in label order 0..291."""
    return list(_omniglot_index(data_dir)[1])


def load_omniglot_subsets(data_dir: str | os.PathLike | None = None, image_size: int = 28) -> ImageData:
    """Omniglot's two small background sets (292 characters x 20 drawings), as in TURTLE Sec. 5.

    Read straight from the zips (no extraction). Pixels follow torchvision's Omniglot ('L' mode:
    background 1, ink 0), resized to ``image_size`` with antialiasing; shape (N, 1, s, s). A class is
    one character; labels 0..C-1 follow :func:`omniglot_class_names`. Use :func:`split_classes` to
    draw meta-train/validation/test classes. Cached per process (treat the result as read-only);
    a cold load of the real files (5,840 PNGs) took 1.1 s on a 2-core machine.
    """
    key = (str(resolve_data_dir(data_dir).resolve()), int(image_size))
    if key not in _OMNIGLOT_CACHE:
        folder, index = _omniglot_index(data_dir)
        images, labels = [], []
        zips = {z: zipfile.ZipFile(folder / z) for z in OMNIGLOT_ZIPS}
        try:
            for label, (zname, members) in enumerate(index.values()):
                for member in members:
                    with Image.open(io.BytesIO(zips[zname].read(member))) as img:
                        images.append(_to_tensor(img, "L", image_size))
                    labels.append(label)
        finally:
            for zf in zips.values():
                zf.close()
        _OMNIGLOT_CACHE[key] = ImageData(torch.stack(images), torch.tensor(labels, dtype=torch.int64),
                                         "Omniglot", "all", list(range(len(index))))
    return _OMNIGLOT_CACHE[key]


def split_classes(n_classes: int, fractions: Sequence[float] = (0.6, 0.2, 0.2),
                  seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Disjoint meta-train/validation/test classes: a seeded permutation cut by ``fractions``."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3:
        raise ValueError(f"fractions must have 3 entries (train, val, test), got {fractions}")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    n_train, n_val = round(fractions[0] * n_classes), round(fractions[1] * n_classes)
    sizes = (n_train, n_val, n_classes - n_train - n_val)
    if min(sizes) < 1:
        raise ValueError(f"fractions {fractions} of {n_classes} classes give parts of sizes {sizes}; "
                         "every part must be non-empty")
    perm = torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed)).tolist()
    return (sorted(perm[:n_train]), sorted(perm[n_train:n_train + n_val]), sorted(perm[n_train + n_val:]))


# ----------------------------------------------------------------------------- miniImageNet and CUB


def _check_split(split: str) -> None:
    if split not in FEWSHOT_SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(FEWSHOT_SPLITS)}")


def _load_rgb(name: str, split: str, paths: Sequence[Path], labels: Sequence[int], n_classes: int,
              image_size: int) -> ImageData:
    images = []
    for p in paths:
        with Image.open(p) as img:
            images.append(_to_tensor(img, "RGB", image_size))
    return ImageData(torch.stack(images), torch.tensor(labels, dtype=torch.int64), name, split,
                     list(range(n_classes)))


def load_miniimagenet(split: str, data_dir: str | os.PathLike | None = None,
                      image_size: int = 84) -> ImageData:
    """miniImageNet with the Ravi & Larochelle (2017) class splits (64/16/20 classes), TURTLE Sec. 5.

    Layout ``<root>/miniImageNet/{train,val,test}.csv`` (``filename,label``) and
    ``<root>/miniImageNet/images/<filename>``. Labels are the split's sorted wnids numbered 0..C-1.
    """
    _check_split(split)
    folder = resolve_data_dir(data_dir) / "miniImageNet"
    csv_path, img_dir = folder / f"{split}.csv", folder / "images"
    example = "<root>/miniImageNet/train.csv and <root>/miniImageNet/images/n0153282900000005.jpg"
    missing = [p.name + ("/" if p is img_dir else "") for p in (csv_path, img_dir) if not p.exists()]
    if missing:
        raise DatasetMissingError("miniImageNet", missing, [folder], example, downloadable=False)
    with open(csv_path, newline="") as f:
        rows = [(r["filename"], r["label"]) for r in csv.DictReader(f)]
    absent = [fn for fn, _ in rows if not (img_dir / fn).is_file()]
    if absent:
        raise DatasetMissingError("miniImageNet", _few(absent), [img_dir], example, downloadable=False)
    wnids = sorted({wnid for _, wnid in rows})
    lookup = {w: i for i, w in enumerate(wnids)}
    return _load_rgb("miniImageNet", split, [img_dir / fn for fn, _ in rows],
                     [lookup[w] for _, w in rows], len(wnids), image_size)


def cub_class_split(class_names: Sequence[str]) -> dict[str, list[str]]:
    """Chen et al. (2019) CUB split: sorted class i is train if i%2==0, val if i%4==1, test if i%4==3."""
    ordered = sorted(class_names)
    return {"train": [c for i, c in enumerate(ordered) if i % 2 == 0],
            "val": [c for i, c in enumerate(ordered) if i % 4 == 1],
            "test": [c for i, c in enumerate(ordered) if i % 4 == 3]}


def load_cub(split: str, data_dir: str | os.PathLike | None = None, image_size: int = 84) -> ImageData:
    """CUB-200-2011 (release layout) with the split of :func:`cub_class_split` (100/50/50 classes)."""
    _check_split(split)
    img_dir = resolve_data_dir(data_dir) / "CUB_200_2011" / "images"
    classes = sorted(p.name for p in img_dir.iterdir() if p.is_dir()) if img_dir.is_dir() else []
    if not classes:
        raise DatasetMissingError("CUB", ["CUB_200_2011/images/"], [img_dir],
                                  "<root>/CUB_200_2011/images/001.Black_footed_Albatross/<file>.jpg",
                                  downloadable=False)
    chosen = cub_class_split(classes)[split]
    paths, labels = [], []
    for label, cname in enumerate(chosen):
        files = sorted(p for p in (img_dir / cname).iterdir() if p.suffix.lower() == ".jpg")
        paths += files
        labels += [label] * len(files)
    return _load_rgb("CUB", split, paths, labels, len(chosen), image_size)


def load_fewshot_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None,
                         image_size: int | None = None) -> ImageData:
    """miniImageNet or CUB by name (Omniglot is split with :func:`split_classes` instead)."""
    loaders = {"miniImageNet": load_miniimagenet, "CUB": load_cub}
    if name not in loaders:
        raise ValueError(f"Unknown few-shot dataset {name!r}; supported: {', '.join(FEWSHOT_SUPPORTED)}")
    return loaders[name](split, data_dir=data_dir, image_size=84 if image_size is None else image_size)
