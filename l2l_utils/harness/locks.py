"""A folder held by one process at a time: an exclusive ``flock`` on ``<folder>/.lock``, released when the process
ends however it ends (exception, kill, a dead worker), so no stale lock is left to clear."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

_HELD: dict[Path, int] = {}  # folder -> open descriptor, for the life of the process


class FolderBusy(RuntimeError):
    """The folder is held by another process (named by the lock file's note)."""


def hold(folder, note: str = "", again: bool = True) -> Path:
    """Hold ``folder`` (created if needed) until :func:`release` or the end of this process. Raises
    :class:`FolderBusy` naming the holder if another process holds it, or if this one does and not ``again`` (a
    notebook may run its opening twice in one kernel; a Dask worker must not run one job twice at once)."""
    folder = Path(folder).resolve()
    if folder in _HELD:
        if again:
            return folder
        raise FolderBusy(f"{folder} is in use by this process (pid {os.getpid()})")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FolderBusy(f"{folder} is in use by {holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} {note}".strip().encode(), 0)
    _HELD[folder] = fd
    return folder


def release(folder) -> None:
    """Stop holding ``folder`` (nothing if not held)."""
    fd = _HELD.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
