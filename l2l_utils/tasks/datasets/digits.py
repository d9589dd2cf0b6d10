"""RotatedMNIST and the DiverseDigits datasets, plus LeNet-5 and ResNet-18 (MetaMD, §5.2).

MetaMD ("Principled Optimiser Meta-Learning for Deep Learning", §5.2) meta-trains on

* **RotatedMNIST**: MNIST rotated by 0, 15, 30, 45, 60 and 75 degrees (6 domains, MLP), and
* **DiverseDigits**: MNIST, QMNIST, KMNIST, FashionMNIST, USPS and SVHN, "resizing all images to
  28×28 greyscale" (LeNet); ResNet-18 is used for the CIFAR-10 experiment.

Every loader returns :class:`l2l_utils.tasks.datasets.ImageData` with float32 images (N, 1, 28, 28) in [0, 1] and
int64 labels 0..9. Files are looked for under the data root (``data_dir``, else ``$L2L_DATA_DIR``, else
``<project>/data``) in torchvision's layout, then in the writable cache (:func:`l2l_utils.tasks.datasets.cache_dir`), where
downloads go. The data root is never written to: compressed idx files are copied into the cache and
decompressed there. KMNIST, USPS and SVHN are read by the small readers below (torchvision's classes insist
on all splits or on the original md5 sums), so a single split, or small files in the same format, work.

Downloads (``download=True``, only for files that are absent) use torchvision's URLs, md5 sums and
``download_url``. Where the network is unreachable they fail fast (name resolution fails) and raise
:class:`~l2l_utils.tasks.datasets.DatasetMissingError`; a socket timeout of :data:`DOWNLOAD_TIMEOUT_S` seconds bounds a
stalled connection. On a machine that drops packets silently, pass ``download=False``.
"""

from __future__ import annotations

import bz2
import contextlib
import math
import numbers
import os
import socket
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torchvision
from torchvision.datasets import utils as _tv_utils
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .core import (SPLITS, DatasetMissingError, ImageData, _gunzip_atomic, _make_image_data, _private_download,
                   _stage_files, cache_dir, load_image_dataset, resolve_data_dir)

ROTATED_MNIST_ANGLES = (0, 15, 30, 45, 60, 75)
DIVERSE_DIGITS = ("MNIST", "QMNIST", "KMNIST", "FashionMNIST", "USPS", "SVHN")
DOWNLOAD_TIMEOUT_S = 60.0
IMAGE_SIZE = 28

_CACHE: dict[tuple[str, str, str], ImageData] = {}
_ROTATED_CACHE: dict[tuple[float, str, str], ImageData] = {}
_CHUNK = 8192  # images per chunk when rotating / resizing (bounds temporary memory)


# ----------------------------------------------------------------------------- file layout


def _idx_prefix(split: str) -> str:
    return "train" if split == "train" else "t10k"


def _layout(name: str, split: str) -> tuple[str, list[str]]:
    """(folder under the data root, file names) of one split, as torchvision lays them out."""
    if name in ("MNIST", "FashionMNIST", "KMNIST"):
        p = _idx_prefix(split)
        return f"{name}/raw", [f"{p}-images-idx3-ubyte.gz", f"{p}-labels-idx1-ubyte.gz"]
    if name == "QMNIST":
        return "QMNIST/raw", [f"qmnist-{split}-images-idx3-ubyte.gz", f"qmnist-{split}-labels-idx2-int.gz"]
    if name == "USPS":
        return "USPS", [torchvision.datasets.USPS.split_list[split][1]]
    if name == "SVHN":
        return "SVHN", [torchvision.datasets.SVHN.split_list[split][1]]
    raise ValueError(f"Unknown dataset {name!r}; supported: {', '.join(DIVERSE_DIGITS)}")


def _variants(fname: str) -> tuple[str, ...]:
    """Acceptable on-disk names: a ``.gz`` file may also be present already decompressed."""
    return (fname, fname[:-3]) if fname.endswith(".gz") else (fname,)


def _find(fname: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for v in _variants(fname):
            if (folder / v).is_file():
                return folder / v
    return None


def _check_args(name: str, split: str) -> None:
    if name not in DIVERSE_DIGITS:
        raise ValueError(f"Unknown dataset {name!r}; supported: {', '.join(DIVERSE_DIGITS)}")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def available_splits(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The splits of ``name`` whose files are all on disk (data root or cache); never downloads.

    With offline copies that hold only the test splits this is ``["test"]`` for KMNIST and USPS.
    """
    _check_args(name, "train")
    root = resolve_data_dir(data_dir)
    out = []
    for split in SPLITS:
        sub, files = _layout(name, split)
        if all(_find(f, [root / sub, cache_dir() / sub]) for f in files):
            out.append(split)
    return out


# ----------------------------------------------------------------------------- downloads


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound blocking socket operations while downloading (only if no default timeout is set)."""
    old = socket.getdefaulttimeout()
    if old is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(name: str, split: str, dst: Path, missing: list[str]) -> None:
    """Fetch the missing files of one split into ``dst`` with torchvision's URLs and md5 sums."""
    dst.mkdir(parents=True, exist_ok=True)
    if name == "KMNIST":
        md5s = dict(torchvision.datasets.KMNIST.resources)
        for fname in missing:
            errors = []
            for mirror in torchvision.datasets.KMNIST.mirrors:
                try:
                    _tv_utils.download_url(mirror + fname, str(dst), fname, md5s[fname])
                    break
                except Exception as exc:  # try the next mirror
                    errors.append(f"{mirror}: {type(exc).__name__}: {exc}")
            else:
                raise RuntimeError(f"could not download {fname} ({'; '.join(errors)})")
    elif name == "QMNIST":
        for url, md5 in torchvision.datasets.QMNIST.resources[split]:
            fname = os.path.basename(url)
            if fname in missing:
                _tv_utils.download_url(url, str(dst), fname, md5)
    elif name in ("USPS", "SVHN"):
        url, fname, md5 = getattr(torchvision.datasets, name).split_list[split]
        _tv_utils.download_url(url, str(dst), fname, md5)
    else:  # MNIST/FashionMNIST go through the core module
        raise AssertionError(name)


def _locate(name: str, split: str, root: Path, download: bool) -> tuple[Path, Path, list[Path]]:
    """(source folder in the data root, cache folder, path of each file), downloading missing files."""
    sub, files = _layout(name, split)
    src, dst = root / sub, cache_dir() / sub
    example = f"<root>/{sub}/{files[0]}"
    missing = [f for f in files if _find(f, [src, dst]) is None]
    if missing:
        if not download:
            raise DatasetMissingError(name, missing, [src, dst], example)
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S), _private_download(dst) as tmp:
                _download(name, split, tmp, missing)
        except Exception as exc:  # offline, timeout, md5 mismatch, ...
            raise DatasetMissingError(name, missing, [src, dst], example,
                                      reason=f"{type(exc).__name__}: {exc}") from exc
        still = [f for f in files if _find(f, [src, dst]) is None]
        if still:
            raise DatasetMissingError(name, still, [src, dst], example, reason="download gave no file")
    return src, dst, [_find(f, [src, dst]) for f in files]  # type: ignore[misc]


def _gunzip_in_cache(src: Path, dst: Path, fnames: list[str]) -> list[Path]:
    """Copy idx files into the cache (``_stage_files``) and decompress them there; returns the raw paths."""
    bases = [f[:-3] for f in fnames]
    _stage_files(src, dst, bases)
    out = []
    for base in bases:
        raw, gz = dst / base, dst / (base + ".gz")
        if not raw.is_file():
            _gunzip_atomic(gz, raw)
        out.append(raw)
    return out


# ----------------------------------------------------------------------------- readers


def _resize(images: torch.Tensor) -> torch.Tensor:
    """Float (N, C, H, W) -> (N, C, 28, 28), bilinear with antialiasing, clamped to [0, 1]."""
    if images.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
        return images.clamp_(0.0, 1.0)
    chunks = [TF.resize(c, [IMAGE_SIZE, IMAGE_SIZE], interpolation=InterpolationMode.BILINEAR, antialias=True)
              for c in images.split(_CHUNK)]
    out = torch.cat(chunks) if chunks else images.new_zeros((0, images.shape[1], IMAGE_SIZE, IMAGE_SIZE))
    return out.clamp_(0.0, 1.0).contiguous()


def _read_kmnist(split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    src, dst, _ = _locate("KMNIST", split, root, download)
    img_path, lab_path = _gunzip_in_cache(src, dst, _layout("KMNIST", split)[1])
    images = read_image_file(str(img_path)).unsqueeze(1).to(torch.float32).div_(255.0)
    return images, read_label_file(str(lab_path))


def _read_qmnist(split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    src, dst, _ = _locate("QMNIST", split, root, download)
    _gunzip_in_cache(src, dst, _layout("QMNIST", split)[1])
    # torchvision's QMNIST reads <root>/QMNIST/raw/qmnist-<what>-*; its targets are (N, 8) with the class
    # in column 0 (``compat`` only affects __getitem__).
    ds = torchvision.datasets.QMNIST(str(cache_dir()), what=split, compat=True, download=False)
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return images, ds.targets[:, 0].to(torch.int64)


def read_usps_file(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """A USPS LIBSVM ``.bz2`` file -> (float32 (N, 1, 16, 16) in [0, 1], int64 labels 0..9).

    Lines are ``label idx:value ...`` with labels 1..10 (1 is digit 0), 1-based feature indices of the 16×16
    image in row-major order and values in [-1, 1] (omitted features are 0, as usual in LIBSVM files).
    """
    rows, labels = [], []
    with bz2.open(path, "rt") as f:
        for line in f:
            tokens = line.split()
            if not tokens:
                continue
            labels.append(int(float(tokens[0])) - 1)
            pairs = np.array([tok.split(":") for tok in tokens[1:]], dtype=np.float64).reshape(-1, 2)
            row = np.zeros(256, dtype=np.float32)
            row[pairs[:, 0].astype(np.int64) - 1] = pairs[:, 1]
            rows.append(row)
    x = np.stack(rows) if rows else np.zeros((0, 256), dtype=np.float32)
    images = torch.from_numpy((x + 1.0) / 2.0).clamp_(0.0, 1.0).reshape(-1, 1, 16, 16)
    return images, torch.tensor(labels, dtype=torch.int64)


def _read_usps(split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, (path,) = _locate("USPS", split, root, download)
    images, labels = read_usps_file(path)
    return _resize(images), labels


def read_svhn_file(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """An SVHN ``*_32x32.mat`` file -> (float32 greyscale (N, 1, 32, 32) in [0, 1], int64 labels 0..9).

    ``X`` is (32, 32, 3, N) uint8 (H, W, C, N) and ``y`` is (N, 1) with 10 meaning digit 0, as torchvision
    reads it; greyscale uses torchvision's ``rgb_to_grayscale`` (ITU-R 601-2 luma).
    """
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))))  # N, C, H, W
    labels = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1))
    labels[labels == 10] = 0
    grey = [TF.rgb_to_grayscale(c.to(torch.float32).div_(255.0)) for c in x.split(_CHUNK)]
    images = torch.cat(grey) if grey else torch.zeros((0, 1) + tuple(x.shape[2:]))
    return images, labels


def _read_svhn(split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, (path,) = _locate("SVHN", split, root, download)
    images, labels = read_svhn_file(path)
    return _resize(images), labels


_READERS: dict[str, Callable[[str, Path, bool], tuple[torch.Tensor, torch.Tensor]]] = {
    "KMNIST": _read_kmnist, "QMNIST": _read_qmnist, "USPS": _read_usps, "SVHN": _read_svhn,
}


def load_digit_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                       download: bool = True) -> ImageData:
    """One DiverseDigits dataset as float32 (N, 1, 28, 28) in [0, 1] with int64 labels 0..9.

    ``name`` is one of :data:`DIVERSE_DIGITS`, ``split`` "train" or "test". MNIST and FashionMNIST come from
    :func:`l2l_utils.tasks.datasets.load_image_dataset`; USPS (16×16) and SVHN (32×32 RGB, converted to greyscale) are
    resized bilinearly with antialiasing. Missing files raise :class:`DatasetMissingError` naming them; with
    ``download=True`` torchvision's download of the missing files is tried first (into the cache). Cached
    per process; treat the result as read-only.
    """
    _check_args(name, split)
    if name in ("MNIST", "FashionMNIST"):
        return load_image_dataset(name, split, data_dir=data_dir, download=download)
    root = resolve_data_dir(data_dir)
    key = (name, split, str(root.resolve()))
    if key not in _CACHE:
        images, labels = _read_with_context(name, split, root, download)
        if images.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE) or images.shape[0] != labels.shape[0]:
            raise ValueError(f"{name} {split}: unexpected shapes {tuple(images.shape)}, {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
            raise ValueError(f"{name} {split}: labels outside 0..9 ({int(labels.min())}..{int(labels.max())})")
        _CACHE[key] = _make_image_data(images.contiguous(), labels, name, split)
    return _CACHE[key]


def _read_with_context(name: str, split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the reader; files that exist but cannot be parsed become a DatasetMissingError saying why."""
    try:
        return _READERS[name](split, root, download)
    except DatasetMissingError:
        raise
    except (OSError, EOFError, ValueError, TypeError, KeyError, AssertionError, RuntimeError) as exc:
        sub, files = _layout(name, split)
        raise DatasetMissingError(name, files, [root / sub, cache_dir() / sub], f"<root>/{sub}/{files[0]}",
                                  reason=f"unreadable file ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------- RotatedMNIST


def _check_angle(angle: object) -> float:
    if isinstance(angle, bool) or not isinstance(angle, numbers.Real) or not math.isfinite(float(angle)):
        raise ValueError(f"angle must be a finite number of degrees, got {angle!r}")
    return float(angle)


def rotate_images(images: torch.Tensor | ImageData, angle: float) -> torch.Tensor | ImageData:
    """Rotate (N, C, H, W) images counter-clockwise by ``angle`` degrees about their centre.

    Bilinear interpolation, zeros outside the image (torchvision ``rotate`` with zero padding; its ``fill=0``
    option would additionally scale border pixels by the interpolated in-image mask). Multiples of 360° return
    the input unchanged. An :class:`ImageData` gives an ImageData with the same labels.
    """
    a = _check_angle(angle)
    if isinstance(images, ImageData):
        return ImageData(rotate_images(images.images, a), images.labels, images.name, images.split,
                         list(images.classes))
    if a % 360.0 == 0.0:
        return images
    chunks = [TF.rotate(c, a, interpolation=InterpolationMode.BILINEAR) for c in images.split(_CHUNK)]
    return torch.cat(chunks) if chunks else images.clone()


def rotated_mnist(angle: float, split: str = "train", data_dir: str | os.PathLike | None = None,
                  download: bool = True) -> ImageData:
    """MNIST rotated by ``angle`` degrees (a RotatedMNIST domain), named ``RotatedMNIST-<angle>``.

    The paper's domains are :data:`ROTATED_MNIST_ANGLES`; any finite angle is accepted. Cached per process.
    """
    a = _check_angle(angle)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = resolve_data_dir(data_dir)
    key = (a, split, str(root.resolve()))
    if key not in _ROTATED_CACHE:
        base = load_image_dataset("MNIST", split, data_dir=root, download=download)
        _ROTATED_CACHE[key] = ImageData(rotate_images(base.images, a), base.labels, f"RotatedMNIST-{a:g}", split,
                                        list(base.classes))
    return _ROTATED_CACHE[key]


# ----------------------------------------------------------------------------- models


def load_stl10(split: str = "train", data_dir: str | os.PathLike | None = None) -> ImageData:
    """STL-10's labelled split (MetaMD §5.2, a meta-train dataset for ResNet-18 on CIFAR-10) from torchvision's
    layout ``<root>/stl10_binary/{train,test}_{X,y}.bin`` (uint8 3×96×96 column-major images, labels 1..10),
    as float RGB (N, 3, 96, 96) in [0, 1] with labels 0..9. Read directly (torchvision's class checks the md5
    of the whole archive); never downloaded here."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = resolve_data_dir(data_dir) / "stl10_binary"
    files = [folder / f"{split}_X.bin", folder / f"{split}_y.bin"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DatasetMissingError("STL10", missing, [folder], "<root>/stl10_binary/train_X.bin", downloadable=False)
    images = np.fromfile(files[0], dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    labels = np.fromfile(files[1], dtype=np.uint8).astype(np.int64) - 1
    return _make_image_data(torch.from_numpy(images.copy()).float().div_(255.0), torch.from_numpy(labels),
                            "STL10", split)


def to_rgb(data: ImageData, size: int = 32) -> ImageData:
    """Images as 3-channel size×size (greyscale repeated), e.g. DiverseDigits and STL-10 next to CIFAR-10."""
    images = data.images if data.images.shape[1] == 3 else data.images.repeat(1, 3, 1, 1)
    if images.shape[-1] != size:
        images = torch.cat([TF.resize(images[i:i + 2048], [size, size], antialias=True)
                            for i in range(0, len(images), 2048)]).clamp_(0.0, 1.0)
    return ImageData(images, data.labels, data.name, data.split, data.classes)
