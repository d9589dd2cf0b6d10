"""Progress a person can read: one line per job (queued / running / done / failed, with its time). On a terminal
the lines are redrawn in place every second; elsewhere (CI logs) a line is printed when a job changes state;
quiet prints nothing."""

from __future__ import annotations

import shutil
import sys
import threading
import time

STATES = ("queued", "running", "done", "skipped", "failed")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class JobBoard:
    """The jobs' states. ``mode``: "live" (redrawn), "lines" (a line per change), "quiet", or "auto" (live on a
    terminal, else lines). Thread-safe: Dask reports states from its own thread."""

    def __init__(self, keys, stream=None, mode: str = "auto"):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "live" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("live", "lines", "quiet"):
            raise ValueError(f"progress mode must be auto, live, lines or quiet, got {mode!r}")
        self.mode = mode
        self.keys = list(keys)
        self.width = max([len(k) for k in self.keys] + [10])
        self.states = {k: ["queued", "", None, None] for k in self.keys}  # state, detail, start, end
        self.notes: list[str] = []
        self._lock = threading.RLock()
        self._drawn = 0
        self._stop = threading.Event()
        self._ticker = None
        if self.mode == "live":
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def note(self, text: str) -> None:
        """A line above the jobs (e.g. the Dask dashboard's address)."""
        with self._lock:
            self.notes.append(text)
            if self.mode == "lines":
                print(text, file=self.stream, flush=True)
            elif self.mode == "live":
                self._draw()

    def update(self, key: str, state: str, detail: str = "") -> None:
        """Set a job's state (one of :data:`STATES`) and a short detail (host, error)."""
        with self._lock:
            entry = self.states[key]
            if entry[0] == state and entry[1] == detail:
                return
            now = time.time()
            if state == "running" and entry[2] is None:
                entry[2] = now
            if state in ("done", "skipped", "failed"):
                entry[3] = now
            entry[0], entry[1] = state, detail
            if self.mode == "lines":
                print(self._line(key), file=self.stream, flush=True)
            elif self.mode == "live":
                self._draw()

    def counts(self) -> str:
        """E.g. "5 jobs: 2 done · 1 running · 2 queued"."""
        with self._lock:
            states = [entry[0] for entry in self.states.values()]
        return f"{len(states)} jobs: " + " · ".join(f"{states.count(s)} {s}" for s in STATES if s in states)

    def _line(self, key: str) -> str:
        state, detail, start, end = self.states[key]
        elapsed = _clock((end or time.time()) - start) if start else ""
        return f"{state:<8} {key:<{self.width}} {elapsed:>8}  {detail}".rstrip()

    def _draw(self) -> None:
        columns, rows = shutil.get_terminal_size((100, 40))
        keys = self.keys
        if len(keys) + len(self.notes) + 1 > rows - 2:  # too many to show: the jobs running or failed
            keys = [k for k in keys if self.states[k][0] in ("running", "failed")][-max(rows - 4, 1):]
        lines = [line[:columns - 1] for line in self.notes + [self._line(k) for k in keys] + [self.counts()]]
        out = "\x1b[F" * self._drawn + "".join(f"\x1b[2K{line}\n" for line in lines)
        if len(lines) < self._drawn:  # clear what is left of a taller block
            out += "\x1b[2K\n" * (self._drawn - len(lines)) + "\x1b[F" * (self._drawn - len(lines))
        self.stream.write(out)
        self.stream.flush()
        self._drawn = len(lines)

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()

    def close(self) -> None:
        """Stop redrawing (the final block stays on screen)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self.mode == "live":
                self._draw()
            elif self.mode == "lines":
                print(self.counts(), file=self.stream, flush=True)
