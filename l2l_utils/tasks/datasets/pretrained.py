"""ImageNet-pretrained ResNet-18 for fine-tuning (MetaMD App. A.14, Table 8), read from a local file.

The weights are torchvision's ``ResNet18_Weights.IMAGENET1K_V1`` file, looked for under the data root as
``<root>/pretrained/resnet18-f37072fd.pth`` or in torch's hub cache; never downloaded here. They are loaded
into :func:`l2l_utils.tasks.models.resnet18`, whose batch norm uses batch statistics (the functional
training of many networks at once needs that), so the ImageNet running averages are not used; the
classifier is a fresh ``num_classes``-way layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..models import resnet18
from .core import DatasetMissingError, resolve_data_dir

RESNET18_FILE = "resnet18-f37072fd.pth"


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
