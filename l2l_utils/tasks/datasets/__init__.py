"""Every dataset of the collection behind one registry: ``load_dataset(name, split)``.

Files are looked for under a data root (the ``data_dir`` argument, else ``$L2L_DATA_DIR``, else ``<project>/data``) in
the layout torchvision (or the dataset's own distribution) uses; missing files raise :class:`DatasetMissingError`,
which names them, where they were looked for and how to provide them. The caching rule is one for all: the data
root is never written to; whatever has to be staged, decompressed or decoded goes under ``$L2L_CACHE_DIR`` (default
``~/.cache/l2l-replications``), and a loaded split is kept in memory for the rest of the process (treat it as
read-only). ``make data`` (:mod:`l2l_utils.tasks.datasets.files`) fetches the files the smoke profiles read;
``make data PROFILE=paper`` also every other file the paper settings read that torchvision can download.

Modules: :mod:`.core` (the types, the data root, MNIST / Fashion-MNIST / CIFAR-10 through torchvision),
:mod:`.digits` (DiverseDigits: KMNIST, QMNIST, USPS, SVHN; RotatedMNIST; STL-10), :mod:`.fewshot` (Omniglot's small
background sets, miniImageNet, CUB), :mod:`.highres` (MetaMD's seven high-resolution datasets), :mod:`.pretrained`
(torchvision's ImageNet ResNet-18 and VGG-19 weights from local files), :mod:`.neural_art_images` (the neural-art
content and style images and their layout), :mod:`.files` (the fetch step).
"""

from __future__ import annotations

import os
from typing import Callable

from .core import (LUMINANCE, DatasetMissingError, DeviceDataset, ImageData, cache_dir, greyscale_crop, label_subset,
                   load_image_dataset, normalise, resolve_data_dir)
from .digits import DIVERSE_DIGITS, available_splits, load_digit_dataset, load_stl10, rotated_mnist, to_rgb
from .fewshot import load_fewshot_dataset, load_omniglot_subsets, omniglot_class_names, split_classes
from .highres import HIGHRES_DATASETS, load_highres
from .neural_art_images import NeuralArtFiles, load_square_images, neural_art_files, split_content
from .pretrained import imagenet_resnet18, imagenet_vgg19_features


def _split_loader(load: Callable) -> Callable:
    return lambda name, split, data_dir, **options: load(name, split, data_dir, **options)


# name -> loader(name, split, data_dir, **options) -> ImageData
REGISTRY: dict[str, Callable] = {
    **{name: _split_loader(load_digit_dataset) for name in DIVERSE_DIGITS},  # MNIST, Fashion-MNIST among them
    "CIFAR10": _split_loader(load_image_dataset),
    "STL10": lambda name, split, data_dir, **options: load_stl10(split, data_dir),
    "Omniglot": lambda name, split, data_dir, **options: load_omniglot_subsets(data_dir, **options),
    **{name: _split_loader(load_fewshot_dataset) for name in ("miniImageNet", "CUB")},
    **{name: (lambda name, split, data_dir, image_size=224: load_highres(name, split, data_dir, image_size))
       for name in HIGHRES_DATASETS},
}


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None, **options) -> ImageData:
    """Any dataset of :data:`REGISTRY` (RotatedMNIST domains as ``"RotatedMNIST-<angle>"``) as :class:`ImageData`;
    ``options`` go to the dataset's reader (e.g. ``image_size``). Omniglot has no split: its two small background
    sets are returned whole."""
    if name.startswith("RotatedMNIST-"):
        return rotated_mnist(float(name.split("-", 1)[1]), split, data_dir, **options)
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; allowed values are {sorted(REGISTRY)} or 'RotatedMNIST-<angle>'")
    return REGISTRY[name](name, split, data_dir, **options)


__all__ = ["REGISTRY", "load_dataset", "LUMINANCE", "greyscale_crop", "normalise", "DatasetMissingError", "DeviceDataset", "ImageData", "cache_dir", "label_subset",
           "load_image_dataset", "resolve_data_dir", "DIVERSE_DIGITS", "available_splits", "load_digit_dataset",
           "load_stl10", "rotated_mnist", "to_rgb", "load_fewshot_dataset", "load_omniglot_subsets",
           "omniglot_class_names", "split_classes", "HIGHRES_DATASETS", "load_highres", "imagenet_resnet18",
           "imagenet_vgg19_features", "NeuralArtFiles", "load_square_images", "neural_art_files", "split_content"]
