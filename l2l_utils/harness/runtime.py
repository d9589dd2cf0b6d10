"""Seeding and device choice (notebook parameters ``seed`` and ``device``)."""

from __future__ import annotations

import random

import numpy as np
import torch

from .profiles import ParameterError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:<index>")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded with ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else must name an available device."""
    if not isinstance(device, str):
        raise ParameterError(f"device must be one of {DEVICE_CHOICES}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        index = device.partition(":")[2]
        if index and not index.isdigit():
            raise ParameterError(f"device must be one of {DEVICE_CHOICES}, got {device!r}")
        if not torch.cuda.is_available():
            raise ParameterError(f"device={device!r} was asked for but CUDA is not available here; "
                                 f"use one of {DEVICE_CHOICES[:2]}")
        if index and int(index) >= torch.cuda.device_count():
            raise ParameterError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(device)
    raise ParameterError(f"device must be one of {DEVICE_CHOICES}, got {device!r}")
