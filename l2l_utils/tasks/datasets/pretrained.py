"""ImageNet-pretrained networks read from local files: ResNet-18 for fine-tuning (MetaMD App. A.14, Table 8) and
VGG-19's feature layers for neural art (Andrychowicz et al. §3.4, after Gatys et al. 2015).

The weights are torchvision's ``ResNet18_Weights.IMAGENET1K_V1`` file, looked for under the data root as
``<root>/pretrained/resnet18-f37072fd.pth`` or in torch's hub cache; never downloaded here. They are loaded
into :func:`l2l_utils.tasks.models.resnet18`, whose batch norm uses batch statistics (the functional
training of many networks at once needs that), so the ImageNet running averages are not used; the
classifier is a fresh ``num_classes``-way layer.

VGG-19's weights are torchvision's ``VGG19_Weights.IMAGENET1K_V1`` file, looked for as
``<root>/vgg19/vgg19-dcbb9e9d.pth`` or in torch's hub cache; ``make data`` (``l2l-fetch-data VGG19``) fetches it
where the network is reachable. Only its ``features.*`` tensors are used.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..models import resnet18, vgg19_features
from .core import DatasetMissingError, resolve_data_dir

RESNET18_FILE = "resnet18-f37072fd.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1 (sha256 begins dcbb9e9d)
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"


def pretrained_resnet18_path(data_dir: str | os.PathLike | None = None) -> Path:
    """The weights file, or :class:`DatasetMissingError` saying where it was looked for."""
    folders = [resolve_data_dir(data_dir) / "pretrained", Path(torch.hub.get_dir()) / "checkpoints"]
    for folder in folders:
        if (folder / RESNET18_FILE).is_file():
            return folder / RESNET18_FILE
    raise DatasetMissingError("ImageNet-pretrained ResNet-18", [RESNET18_FILE], folders,
                              f"<root>/pretrained/{RESNET18_FILE}, torchvision's ResNet18_Weights.IMAGENET1K_V1",
                              downloadable=False)


def imagenet_resnet18(num_classes: int, data_dir: str | os.PathLike | None = None) -> nn.Module:
    """ResNet-18 with the ImageNet weights everywhere but a freshly initialised ``num_classes``-way ``fc``."""
    model = resnet18(num_classes)
    state = torch.load(pretrained_resnet18_path(data_dir), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items()
             if not k.startswith("fc.") and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if sorted(missing) != ["fc.bias", "fc.weight"] or unexpected:
        raise ValueError(f"not a torchvision ResNet-18 state dict: missing {missing}, unexpected {unexpected}")
    return model


def pretrained_vgg19_path(data_dir: str | os.PathLike | None = None) -> Path:
    """VGG-19's ImageNet weights file, or :class:`DatasetMissingError` saying where it was looked for and how to get
    it."""
    folders = [resolve_data_dir(data_dir) / "vgg19", Path(torch.hub.get_dir()) / "checkpoints"]
    for folder in folders:
        if (folder / VGG19_FILE).is_file():
            return folder / VGG19_FILE
    raise DatasetMissingError("ImageNet-pretrained VGG-19", [VGG19_FILE], folders,
                              f"<root>/vgg19/{VGG19_FILE}, torchvision's VGG19_Weights.IMAGENET1K_V1 from {VGG19_URL}; "
                              "`make data` fetches it where the network is reachable", downloadable=False)


def imagenet_vgg19_features(data_dir: str | os.PathLike | None = None, pooling: str = "max") -> nn.Sequential:
    """VGG-19's convolutional layers (:func:`l2l_utils.tasks.models.vgg19_features`) with torchvision's ImageNet
    weights; ``pooling="avg"`` as Gatys et al. (2015)."""
    features = vgg19_features(pooling=pooling)
    state = torch.load(pretrained_vgg19_path(data_dir), map_location="cpu", weights_only=True)
    state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    missing, unexpected = features.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"not a torchvision VGG-19 state dict: missing {missing}, unexpected {unexpected}")
    return features
