"""Where the project lives: the folder holding ``pyproject.toml``, the default home of ``data/`` and ``runs/``."""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``pyproject.toml``, searched upwards from ``start`` (default: cwd)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "l2l_utils").is_dir():
            return folder
    return here
