"""Real image datasets (MNIST, FashionMNIST, CIFAR10) loaded through torchvision.

Files are looked for under a data root (``data_dir``, else ``$L2L_DATA_DIR``, else ``<project>/data``) in the
layout torchvision expects. MNIST-style raw files are always copied into a writable cache before
torchvision extracts them, so the data root is never written to (it may be a shared read-only copy,
and permission bits do not protect it when running as root). Missing files raise
:class:`DatasetMissingError`, which says what is missing, where it was looked for and how to fix it.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import check_integrity

from ...storage.paths import project_root
from ...storage.results import atomic_copy

SUPPORTED = ("MNIST", "FashionMNIST", "CIFAR10")
SPLITS = ("train", "test")

_CACHE: dict[tuple[str, str, str], "ImageData"] = {}

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]
_CIFAR_META = "batches.meta"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir``, else ``$L2L_DATA_DIR``, else ``data/`` in the project folder (where
    ``make data`` puts it; the folder holding ``pyproject.toml`` above the working directory, else the working
    directory), so notebooks running in ``notebooks/`` find it too."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("L2L_DATA_DIR")
    return Path(env).expanduser() if env else project_root() / "data"


def cache_dir() -> Path:
    """Writable staging folder: ``$L2L_CACHE_DIR``, else ``~/.cache/l2l-replications``."""
    env = os.environ.get("L2L_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "l2l-replications"


class DatasetMissingError(FileNotFoundError):
    """A dataset's files are missing (or unusable) and could not be downloaded."""

    def __init__(self, name: str, missing: Sequence[str], searched: Sequence[Path | str],
                 example: str, reason: str | None = None, downloadable: bool = True):
        self.dataset, self.missing, self.searched = name, list(missing), [str(s) for s in searched]
        lines = [
            f"Dataset {name!r} is not available: missing files {', '.join(self.missing)}.",
            "Looked in: " + "; ".join(self.searched) + ".",
        ]
        if reason:
            lines.append(f"Download/loading failed: {reason}")
        if downloadable:
            lines.append(
                "To provide it, set `data_dir=` or the L2L_DATA_DIR environment variable to a folder laid "
                f"out as torchvision expects (e.g. {example}), or run where the network is reachable so "
                "torchvision can download it (download=True)."
            )
        else:
            lines.append(
                "To provide it, set `data_dir=` or the L2L_DATA_DIR environment variable to a folder with "
                f"this layout (e.g. {example}); it is not downloaded automatically."
            )
        super().__init__("\n".join(lines))


@dataclass
class ImageData:
    """Images as float32 (N, C, H, W) in [0, 1] with int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str
    classes: list[int]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _make_image_data(images: torch.Tensor, labels: torch.Tensor, name: str, split: str) -> ImageData:
    labels = labels.to(torch.int64)
    return ImageData(images, labels, name, split, sorted(int(c) for c in labels.unique()))


# ----------------------------------------------------------------------------- MNIST-style


def _mnist_split_class(name: str, split: str) -> type:
    """torchvision's MNIST/FashionMNIST restricted to one split's resources."""
    base = getattr(torchvision.datasets, name)
    prefix = "train" if split == "train" else "t10k"

    class _Split(base):
        resources = [r for r in base.resources if r[0].startswith(prefix)]

        @property
        def raw_folder(self) -> str:
            return os.path.join(self.root, name, "raw")

        @property
        def processed_folder(self) -> str:
            return os.path.join(self.root, name, "processed")

    return _Split


def _gunzip_atomic(gz: Path, raw: Path) -> Path:
    """Decompress ``gz`` into ``raw`` through a temporary file beside it and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=raw.parent, prefix=f".{raw.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fout, gzip.open(gz, "rb") as fin:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.replace(tmp, raw)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return raw


def _stage_files(src: Path, dst: Path, basenames: Sequence[str]) -> None:
    """Copy the present ``basename[.gz]`` files from src to dst (the data root is never written) and decompress
    each ``.gz`` there. Every file appears by ``os.replace`` of a complete temporary file, so processes sharing
    ``$L2L_CACHE_DIR`` (parallel batch jobs) may stage the same dataset at once: each sees whole files only."""
    for base in basenames:
        for fname in (base + ".gz", base):
            s, d = src / fname, dst / fname
            if not s.is_file() or (d.is_file() and d.stat().st_size == s.stat().st_size):
                continue
            atomic_copy(s, d)
            if fname.endswith(".gz"):
                _gunzip_atomic(d, dst / base)  # replaces the extraction of an older copy
        gz, raw = dst / (base + ".gz"), dst / base
        if gz.is_file() and not raw.is_file():
            _gunzip_atomic(gz, raw)


@contextlib.contextmanager
def _private_download(dst: Path) -> Iterator[Path]:
    """A private folder beside ``dst`` to download into; on success its files are moved into ``dst`` one
    ``os.replace`` each (so two processes downloading at once never write into one file)."""
    dst.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst, prefix=".download-") as tmp:
        yield Path(tmp)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                target = dst / path.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)


def _load_mnist_like(name: str, split: str, root: Path, download: bool) -> ImageData:
    prefix = "train" if split == "train" else "t10k"
    needed = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    src, staged_root = root / name / "raw", cache_dir()
    dst = staged_root / name / "raw"
    example = f"<root>/{name}/raw/{needed[0]}.gz"
    cls = _mnist_split_class(name, split)
    md5s = dict(cls.resources)
    try:
        _stage_files(src, dst, needed)
    except (OSError, EOFError) as exc:  # unreadable or truncated .gz
        raise DatasetMissingError(name, [b + ".gz" for b in needed], [src, dst], example, reason=str(exc)) from exc
    missing = [b + ".gz" for b in needed if not any((dst / f).is_file() for f in (b, b + ".gz"))]
    # a staged .gz must be the published file (torchvision's md5), as when torchvision extracted it
    corrupt = [b + ".gz" for b in needed if (dst / (b + ".gz")).is_file()
               and not check_integrity(str(dst / (b + ".gz")), md5s[b + ".gz"])]
    if (missing or corrupt) and not download:
        raise DatasetMissingError(name, missing + corrupt, [src, dst], example,
                                  reason=f"md5 mismatch: {', '.join(corrupt)}" if corrupt else None)
    try:
        if missing or corrupt:  # torchvision downloads, verifies md5 and extracts, privately
            with _private_download(staged_root) as tmp:
                cls(str(tmp), train=(split == "train"), download=True)
        # the extracted files are all there now, so torchvision only reads them
        ds = cls(str(staged_root), train=(split == "train"), download=True)
    except Exception as exc:  # network failure, corrupted file, ...
        raise DatasetMissingError(name, missing + corrupt or [b + ".gz" for b in needed], [src, dst], example,
                                  reason=str(exc)) from exc
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return _make_image_data(images, ds.targets, name, split)


# ----------------------------------------------------------------------------- CIFAR10


class _CIFAR10Files(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 reader with the md5 checks replaced by existence checks.

    torchvision verifies every batch file against the original md5 sums, which small files in the
    same on-disk format (made by tests) cannot pass; here only the requested split's batches and
    ``batches.meta`` must exist. A real download is still verified by torchvision (tgz md5).
    """

    def _files(self) -> list[str]:
        return (_CIFAR_TRAIN if self.train else _CIFAR_TEST) + [_CIFAR_META]

    def _check_integrity(self) -> bool:
        return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f in self._files())

    def _load_meta(self) -> None:
        with open(os.path.join(self.root, self.base_folder, _CIFAR_META), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


def _load_cifar10(split: str, root: Path, download: bool) -> ImageData:
    files = (_CIFAR_TRAIN if split == "train" else _CIFAR_TEST) + [_CIFAR_META]
    candidates = [root, root / "CIFAR10", cache_dir()]
    found = next((c for c in candidates if all((c / _CIFAR_DIR / f).is_file() for f in files)), None)
    searched = [c / _CIFAR_DIR for c in candidates]
    example = f"<root>/{_CIFAR_DIR}/data_batch_1"
    train = split == "train"
    if found is None:
        missing = [f for f in files if not (root / _CIFAR_DIR / f).is_file()]
        if not download:
            raise DatasetMissingError("CIFAR10", missing, searched, example)
        found = cache_dir()
        try:
            with _private_download(found) as tmp:  # downloaded and extracted privately, then moved in
                _CIFAR10Files(str(tmp), train=train, download=True)
            ds = _CIFAR10Files(str(found), train=train, download=False)
        except Exception as exc:
            raise DatasetMissingError("CIFAR10", missing, searched, example, reason=str(exc)) from exc
    else:
        ds = _CIFAR10Files(str(found), train=train, download=False)
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)  # HWC -> CHW
    images = images.to(torch.float32).div_(255.0).contiguous()
    return _make_image_data(images, torch.as_tensor(ds.targets), "CIFAR10", split)


# ----------------------------------------------------------------------------- public API


def load_image_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                       download: bool = True) -> ImageData:
    """Load a whole split as tensors (cached per process; treat the result as read-only)."""
    if name not in SUPPORTED:
        raise ValueError(f"Unknown dataset {name!r}; supported: {', '.join(SUPPORTED)}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = resolve_data_dir(data_dir)
    key = (name, split, str(root.resolve()))
    if key not in _CACHE:
        if name == "CIFAR10":
            _CACHE[key] = _load_cifar10(split, root, download)
        else:
            _CACHE[key] = _load_mnist_like(name, split, root, download)
    return _CACHE[key]


def label_subset(data: ImageData, labels: Sequence[int]) -> ImageData:
    """Keep only the given classes, relabelled 0..k-1 in the given order (e.g. CIFAR-2/CIFAR-5)."""
    labels = [int(label) for label in labels]
    if len(set(labels)) != len(labels) or not labels:
        raise ValueError(f"labels must be non-empty and distinct, got {labels}")
    keep = torch.tensor(labels, dtype=torch.int64)
    mask = torch.isin(data.labels, keep)
    lookup = torch.full((max(int(data.labels.max()), max(labels)) + 1,), -1, dtype=torch.int64)
    lookup[keep] = torch.arange(len(labels))
    new_labels = lookup[data.labels[mask]]
    return ImageData(data.images[mask], new_labels, data.name, data.split,
                     sorted(int(c) for c in new_labels.unique()))


def normalise(data: ImageData, mean: float, std: float) -> ImageData:
    """(x − mean)/std, as ``torchvision.transforms.Normalize((mean,), (std,))`` after ``ToTensor``."""
    return ImageData((data.images - mean) / std, data.labels, data.name, data.split, data.classes)


LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B


def greyscale_crop(data: ImageData, weights: Sequence[float] = LUMINANCE, size: int = 28) -> ImageData:
    """Colour images made grey as w_R·R + w_G·G + w_B·B and cropped to their first ``size`` rows and columns
    (Kuo et al. App. B.2's modified CIFAR-10: 32×32 RGB -> 28×28 grey)."""
    if data.images.shape[1] != 3:
        raise ValueError(f"greyscale_crop needs RGB images, got {data.images.shape[1]} channel(s)")
    if len(weights) != 3:
        raise ValueError(f"weights must be (w_R, w_G, w_B), got {weights}")
    grey = torch.einsum("nchw,c->nhw", data.images, torch.as_tensor(weights, dtype=data.images.dtype))
    return ImageData(grey[:, None, :size, :size].contiguous(), data.labels, f"{data.name}-grey{size}", data.split,
                     data.classes)


@dataclass
class DeviceDataset:
    """Inputs and targets held on one device; minibatches are drawn by index there."""

    inputs: torch.Tensor
    targets: torch.Tensor

    @classmethod
    def from_image_data(cls, data: ImageData, device: str | torch.device = "cpu",
                        flatten: bool = False) -> "DeviceDataset":
        """Move ``data`` to ``device`` once; ``flatten`` gives inputs of shape (N, C*H*W)."""
        x = data.images.reshape(len(data), -1) if flatten else data.images
        return cls(x.to(device), data.labels.to(device))

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def sample(self, batch_size: int, generator: torch.Generator, num_batches: int | None = None,
               rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random minibatch (batch, ...), or ``num_batches`` independent ones stacked (B, batch, ...); ``rows`` keeps
        only those of the ``num_batches`` (the same draws as without it: a chunk of a batch of optimizees).

        ``generator`` must live on the same device as the data.
        """
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        idx = torch.randint(0, len(self), shape, generator=generator, device=self.device)
        if rows is not None:
            idx = idx[rows]
        return self.inputs[idx], self.targets[idx]
