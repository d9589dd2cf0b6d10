"""Results store, cache keys and checkpoints. Every write is atomic: temporary file, fsync, ``os.replace``.

A cached result is keyed by everything it depends on (DESIGN "Results"): the explicit settings its caller passes
(including the keys of upstream artefacts), the profile fields the computation actually read (recorded while it ran,
through the notebook's profile, :func:`track_profile`) and a hash of the package's computational source
(:func:`code_version`). A result is reused only if all three match; a changed field recomputes exactly the results
that read it, and a changed module recomputes everything.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_copy(src, dst) -> Path:
    """Copy file ``src`` to ``dst`` atomically (temporary file beside ``dst``, then ``os.replace``): processes that
    stage the same file at once each write their own temporary file, and readers never see half a file."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f, open(src, "rb") as source:
            shutil.copyfileobj(source, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dst


def atomic_write_text(path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_torch(obj, path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def config_key(config: dict) -> str:
    """Stable short hash (12 hex chars) of a config dict."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# modules that compute nothing a result depends on (presentation, plumbing): editing them keeps the caches
PRESENTATION_MODULES = frozenset({"harness/batch.py", "harness/notebook_setup.py", "harness/jobs.py",
                                  "harness/locks.py", "harness/execution.py", "harness/engine.py",
                                  "harness/progress.py", "harness/summary.py",
                                  "reporting/claims.py", "reporting/confidence.py", "reporting/plotting.py",
                                  "reporting/verdicts.py", "storage/results.py", "storage/paths.py",
                                  "tasks/datasets/files.py"})


PACKAGE_ROOT = Path(__file__).parents[1]  # l2l_utils/


def computational_modules() -> list[str]:
    """The package's modules a cached result depends on, as paths under ``l2l_utils/``: every module but
    :data:`PRESENTATION_MODULES`, the ``__init__`` files and the profiles (whose values enter a key through the
    fields a result read)."""
    names = (path.relative_to(PACKAGE_ROOT).as_posix() for path in sorted(PACKAGE_ROOT.rglob("*.py")))
    return [name for name in names if name not in PRESENTATION_MODULES and not name.endswith("__init__.py")
            and not name.startswith("harness/profiles/")]


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """Hash of the source of :func:`computational_modules` (names and contents)."""
    digest = hashlib.sha1()
    for name in computational_modules():
        digest.update(name.encode())
        digest.update((PACKAGE_ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


_TRACKED: list = []  # the notebook's resolved profile, whose reads key the cached results


def track_profile(profile) -> None:
    """Key cached results by the fields of ``profile`` they read (``None``: stop tracking)."""
    _TRACKED[:] = [] if profile is None else [profile]


@contextlib.contextmanager
def recorded_reads():
    """The profile fields read inside the block (an empty set when no profile is tracked)."""
    if not _TRACKED:
        yield set()
        return
    with _TRACKED[0].recording() as reads:
        yield reads


def provenance(reads, config: dict) -> dict:
    """Metadata that identifies a result: explicit config, the fields it read with their values, the code version,
    and the derived key (a hash of all three) for downstream results to depend on."""
    values = _TRACKED[0].snapshot(reads) if _TRACKED else {}
    meta = {"config": config, "reads": _jsonable(values), "code": code_version()}
    meta["key"] = config_key(meta)
    return meta


def _still_valid(metadata: dict) -> bool:
    """The stored reads equal the tracked profile's current values and the code is the same."""
    if metadata.get("code") != code_version():
        return False
    reads = metadata.get("reads", {})
    if _TRACKED:
        profile = _TRACKED[0]
        if any(key not in profile or _jsonable(profile.snapshot([key]))[key] != value for key, value in reads.items()):
            return False
        profile.replay(reads)  # a result reused inside a recording depends on what it read
    return True


def _jsonable(value):
    """Round-trip through JSON so stored and in-memory metadata compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class ResultsStore:
    """Tidy results as ``<root>/<name>.csv`` plus metadata ``<root>/<name>.json``."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        """Path of the CSV file of result ``name``."""
        return self.root / f"{name}.csv"

    def _meta_path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def save(self, name: str, frame: pd.DataFrame, metadata: dict | None = None) -> Path:
        """Store ``frame`` and ``metadata`` (versions and a timestamp are added)."""
        meta = dict(metadata or {})
        meta.setdefault("torch_version", torch.__version__)
        meta.setdefault("python_version", platform.python_version())
        meta.setdefault("saved_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        atomic_write_text(self.path(name), frame.to_csv(index=False))
        atomic_write_text(self._meta_path(name), json.dumps(_jsonable(meta), indent=2, sort_keys=True))
        return self.path(name)

    def load(self, name: str) -> tuple[pd.DataFrame, dict]:
        """Return ``(frame, metadata)`` of result ``name``."""
        frame = pd.read_csv(self.path(name))
        metadata = json.loads(self._meta_path(name).read_text(encoding="utf-8"))
        return frame, metadata

    def has(self, name: str, config: dict | None = None) -> bool:
        """True if ``name`` is stored and, when ``config`` is given, was computed with that config, with the current
        values of the profile fields it read and the current code (:func:`provenance`)."""
        if not (self.path(name).exists() and self._meta_path(name).exists()):
            return False
        if config is None:
            return True
        try:
            metadata = json.loads(self._meta_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return metadata.get("config") == _jsonable(config) and _still_valid(metadata)

    def key(self, name: str) -> str:
        """The derived key of stored result ``name`` (what a downstream result names as its upstream)."""
        return json.loads(self._meta_path(name).read_text(encoding="utf-8"))["key"]


class Checkpointer:
    """One checkpoint file holding a dict of state (RNG states, state_dicts, counters)."""

    def __init__(self, path):
        self.path = Path(path)

    def save(self, state: dict) -> Path:
        """Atomically write ``state``."""
        return atomic_save_torch(state, self.path)

    def load(self) -> dict | None:
        """Return the saved state, or ``None`` if there is no checkpoint."""
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def save_training(self, config: dict, model, optimizer, generator: torch.Generator, **progress) -> Path:
        """Save a training loop's state: ``model`` and ``optimizer`` state dicts, the RNG, counters/history (with
        the code version and the whole tracked profile: a resumed run must continue the same computation)."""
        return self.save({"config": _checkpoint_config(config), "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "generator": generator.get_state(), **progress})

    def restore_training(self, config: dict, model, optimizer, generator: torch.Generator) -> dict | None:
        """If a checkpoint saved with this ``config`` exists, load it into ``model``, ``optimizer`` and
        ``generator`` and return it (for the counters and history); else ``None``."""
        saved = self.load()
        if saved is None or saved.get("config") != _checkpoint_config(config):
            return None
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        return saved

    def clear(self) -> None:
        """Delete the checkpoint if present."""
        self.path.unlink(missing_ok=True)


def _checkpoint_config(config: dict) -> dict:
    return {"config": _jsonable(config), "code": code_version(),
            "profile": _jsonable(dict(_TRACKED[0])) if _TRACKED else None}


def cached_frame(store: ResultsStore, name: str, config: dict, compute) -> tuple[pd.DataFrame, bool]:
    """Load result ``name`` if it was stored with this ``config`` (and the profile fields it read still have their
    values, and the code is the same), else ``compute()`` and store it with its provenance.

    Returns ``(frame, reused)``. This is what lets figures be regenerated without retraining.
    """
    if store.has(name, config):
        return store.load(name)[0], True
    with recorded_reads() as reads:
        frame = compute()
    store.save(name, frame, provenance(reads, config))
    return frame, False


def cached_training(results_dir, name: str, config: dict, module: torch.nn.Module, train) -> tuple[pd.DataFrame, bool]:
    """Train ``module`` once per ``config``: load ``<name>-<key>.pt`` and its history if a finished run with this
    config exists, else call ``train(checkpointer) -> history frame`` (resumable through the checkpointer) and
    store the weights and the history. Returns ``(history, reused)``; ``module`` holds the trained weights."""
    stem = f"{name}-{config_key(config)}"
    weights, store = Path(results_dir) / f"{stem}.pt", ResultsStore(results_dir)
    if weights.exists() and store.has(f"{stem}-history", config):
        module.load_state_dict(torch.load(weights, map_location="cpu"))
        return store.load(f"{stem}-history")[0], True
    checkpointer = Checkpointer(Path(results_dir) / f"{stem}.ckpt")
    with recorded_reads() as reads:
        history = train(checkpointer)
    atomic_save_torch(module.state_dict(), weights)
    store.save(f"{stem}-history", history, provenance(reads, config))
    checkpointer.clear()
    return history, False


def training_key(results_dir, name: str, config: dict) -> str:
    """The derived key of a :func:`cached_training` result (for the results that use the trained module)."""
    return ResultsStore(results_dir).key(f"{name}-{config_key(config)}-history")
