"""The files of the neural-art experiment (Andrychowicz et al. §3.4, App. C) and where they go under the data root.

Layout (``<root>`` is ``data_dir``, else ``$L2L_DATA_DIR``, else ``<project>/data``)::

    <root>/vgg19/vgg19-dcbb9e9d.pth        torchvision's VGG19_Weights.IMAGENET1K_V1 (`make data` fetches it)
    <root>/neural_art/content/             any folder of images (.jpg .jpeg .png .bmp .ppm .webp .tif .tiff)
    <root>/neural_art/style_train.<ext>    the one style the optimizer is trained with
    <root>/neural_art/style_test.<ext>     the new style it is tested with (Fig. 8-9 right)

The paper used 1800 training, 20 validation and 100 test content images from ImageNet (Deng et al. 2009), e.g. any
1920 images of the ImageNet validation set (image-net.org, after registering: it cannot be downloaded here); it does
not name its two styles (any painting will do, e.g. a public-domain one from Wikimedia Commons). Nothing here is
downloaded but the weights. Content images are split by a seeded shuffle of their sorted file names
(:func:`split_content`); every image is resized (shorter side) and centre-cropped to a square.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from .core import DatasetMissingError, resolve_data_dir
from .pretrained import VGG19_URL, pretrained_vgg19_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
ART_DIR = "neural_art"
LAYOUT = (f"<root>/vgg19/vgg19-dcbb9e9d.pth ({VGG19_URL}; `make data` fetches it), <root>/{ART_DIR}/content/ (a folder "
          f"of content images: the paper used 1800 + 20 + 100 ImageNet images), <root>/{ART_DIR}/style_train.<ext> and "
          f"<root>/{ART_DIR}/style_test.<ext> (two style images, e.g. public-domain paintings)")


@dataclass(frozen=True)
class NeuralArtFiles:
    """Where the neural-art inputs are: VGG-19's weights, the content images (sorted), the two styles."""

    weights: Path
    content: tuple[Path, ...]
    style_train: Path
    style_test: Path


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) \
        if folder.is_dir() else []


def _style(root: Path, which: str) -> Path | None:
    found = [p for p in sorted((root / ART_DIR).glob(f"style_{which}.*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    return found[0] if found else None


def neural_art_files(data_dir: str | os.PathLike | None = None, min_content: int = 1) -> NeuralArtFiles:
    """The neural-art inputs under the data root, or one :class:`DatasetMissingError` naming everything missing
    (weights, content images, styles), where it was looked for and how to provide it. ``min_content``: the fewest
    content images the caller can split (validation + test + at least one training image)."""
    root = resolve_data_dir(data_dir)
    missing, reasons, weights = [], [], None
    try:
        weights = pretrained_vgg19_path(data_dir)
    except DatasetMissingError as error:
        missing.append("VGG-19 ImageNet weights (vgg19-dcbb9e9d.pth)")
        reasons.append("for the weights " + " and ".join(error.searched))
    content = _images_in(root / ART_DIR / "content")
    if len(content) < min_content:
        missing.append(f"content images ({len(content)} in {root / ART_DIR / 'content'}, need at least {min_content})")
    styles = {which: _style(root, which) for which in ("train", "test")}
    missing += [f"{ART_DIR}/style_{which}.<ext>" for which, path in styles.items() if path is None]
    if missing:
        raise DatasetMissingError("neural art (§3.4)", missing, [root, *reasons], LAYOUT, downloadable=False)
    return NeuralArtFiles(weights, tuple(content), styles["train"], styles["test"])


def split_content(paths: Sequence[Path], n_val: int, n_test: int, n_train: int, seed: int = 0) -> dict:
    """{"train", "val", "test"}: disjoint lists of paths from a seeded shuffle of the sorted ``paths`` (§3.4: 100 test
    and 20 validation images held out of training); at most ``n_train`` training images (fewer if the folder has
    fewer)."""
    if n_val < 1 or n_test < 1 or n_train < 1:
        raise ValueError(f"n_val, n_test and n_train must be positive, got {n_val}, {n_test}, {n_train}")
    if len(paths) < n_val + n_test + 1:
        raise ValueError(f"{len(paths)} content images cannot give {n_val} validation, {n_test} test and at least one "
                         "training image")
    order = np.random.default_rng(seed).permutation(len(paths))
    shuffled = [sorted(paths)[i] for i in order]
    return {"test": shuffled[:n_test], "val": shuffled[n_test:n_test + n_val],
            "train": shuffled[n_test + n_val:n_test + n_val + n_train]}


def load_square_images(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Images as float32 (N, 3, size, size) in [0, 1]: RGB, shorter side resized to ``size`` (antialiased
    bilinear), centre-cropped."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    out = []
    for path in paths:
        with Image.open(path) as image:
            tensor = TF.pil_to_tensor(image.convert("RGB"))
        tensor = TF.center_crop(TF.resize(tensor, size, antialias=True), [size, size])
        out.append(tensor.float() / 255.0)
    return torch.stack(out)
