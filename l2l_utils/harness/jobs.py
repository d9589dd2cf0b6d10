"""The job grid: notebooks × seeds × grid points, one papermill job each, in its own folder
``<out>/<notebook>/<job>/`` whose name is made from the job's parameters (so a rerun finds it)."""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# parameters the runner sets itself (seed comes from --seeds, profile from --profile)
RESERVED = {"profile": "--profile", "seed": "--seeds", "results_dir": "--out"}
# parameters that say where things are or how they are shown, not what is computed: left out of job names
UNNAMED = frozenset({"figures_dir", "data_dir", "progress"})
_SAFE = re.compile(r"[^A-Za-z0-9._=+,-]+")
MAX_NAME = 80


def parse_value(raw: str):
    """A parameter value: a Python literal (``ast.literal_eval``), else the text itself."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def parse_parameter(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE``; VALUE via :func:`parse_value`."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"parameter {text!r} must look like KEY=VALUE")
    return key.strip(), parse_value(raw)


def parse_grid(text: str) -> tuple[str, list]:
    """Parse ``KEY=V1,V2,...`` into (key, values); a value may itself be a literal list (``sizes=[1,2],[3]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ValueError(f"grid {text!r} must look like KEY=V1,V2,...")
    try:
        values = ast.literal_eval(f"[{raw}]")
    except (ValueError, SyntaxError):
        values = [parse_value(v.strip()) for v in raw.split(",")]
    return key.strip(), values


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,2,5-7"`` or ``"3"`` -> sorted unique non-negative ints."""
    seeds: set[int] = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"seeds {text!r} must look like 0-4 or 0,2,5-7 (non-negative integers)")
        low_i, high_i = int(low), int(high) if dash else int(low)
        if high_i < low_i:
            raise ValueError(f"seeds {text!r}: the range {part} is empty")
        seeds.update(range(low_i, high_i + 1))
    if not seeds:
        raise ValueError(f"seeds {text!r}: no seed given")
    return sorted(seeds)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def job_name(seed: int, settings: dict) -> str:
    """``seed<k>`` then ``key=value`` per named setting (sorted by key), e.g. ``seed0_meta_lr=0.01``. Characters
    unsafe in a file name become ``-``; such names, and names over :data:`MAX_NAME` characters, end in a hash of
    the exact parameters, so two different jobs never share a folder."""
    named = {k: v for k, v in sorted(settings.items()) if k not in UNNAMED}
    readable = "_".join([f"seed{seed}"] + [f"{k}={_text(v)}" for k, v in named.items()])
    safe = _SAFE.sub("-", readable).strip("-")
    if safe == readable and len(safe) <= MAX_NAME:
        return safe
    digest = hashlib.sha1(json.dumps([seed, named], sort_keys=True, default=repr).encode()).hexdigest()[:8]
    return f"{safe[:MAX_NAME - 9]}-{digest}"


@dataclass(frozen=True)
class Job:
    """One papermill job: a notebook at one seed and one grid point."""

    notebook: str                      # short name, e.g. "kuo2020"
    source: Path                       # the notebook to execute
    seed: int
    point: dict = field(hash=False)    # this job's grid values
    fixed: dict = field(hash=False)    # the -p values shared by every job
    folder: Path                       # <out>/<notebook>/<name>

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def key(self) -> str:
        """``<notebook>/<name>``: how progress lines and the summary name the job."""
        return f"{self.notebook}/{self.name}"

    @property
    def output(self) -> Path:
        """The executed notebook."""
        return self.folder / self.source.name

    @property
    def results_dir(self) -> Path:
        return self.folder / "results"

    @property
    def log(self) -> Path:
        """Everything the kernel printed, then the error of a failed job."""
        return self.folder / "log.txt"

    @property
    def record(self) -> Path:
        """``job.json``: parameters, state, error, times, where it ran."""
        return self.folder / "job.json"


def notebook_parameters(source: Path) -> set[str]:
    """Names in the notebook's ``parameters`` cell (papermill's reading of it)."""
    import papermill

    return set(papermill.inspect_notebook(str(source)))


def split_settings(settings: dict, names: set[str]) -> dict:
    """The papermill parameters for ``settings``: a key the notebook declares is passed as it is; any other key is
    a profile field and goes into the ``overrides`` dict (when the notebook has one, else it is passed as it is)."""
    if "overrides" not in names:
        return dict(settings)
    direct = {k: v for k, v in settings.items() if k in names}
    overrides = dict(direct.pop("overrides", None) or {})
    if isinstance(overrides, str):
        overrides = dict(ast.literal_eval(overrides))
    overrides.update({k: v for k, v in settings.items() if k not in names})
    return {**direct, **({"overrides": overrides} if overrides else {})}


def check_settings(fixed: dict, grid: dict) -> None:
    """Reserved keys and keys both fixed and gridded raise ValueError naming the flag to use."""
    for key in list(fixed) + list(grid):
        if key in RESERVED:
            raise ValueError(f"{key!r} is set by the runner: use {RESERVED[key]}")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValueError(f"{', '.join(both)} given both with -p and --grid")


def expand(notebooks: dict, root: Path, out: Path, seeds, fixed: dict | None = None,
           grid: dict | None = None) -> list[Job]:
    """One :class:`Job` per (notebook, seed, grid point); ``notebooks`` maps short names to paths under ``root``,
    ``grid`` maps keys to lists of values (their product is the grid)."""
    fixed, grid = dict(fixed or {}), dict(grid or {})
    check_settings(fixed, grid)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    jobs = [Job(name, root / path, seed, point, fixed, out / name / job_name(seed, {**fixed, **point}))
            for name, path in notebooks.items() for seed in seeds for point in points]
    names = [job.key for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"the grid gives several jobs the same parameters: {', '.join(duplicates)}")
    return jobs


def parameters(job: Job, profile: str, figures_dir: Path, names: set[str]) -> dict:
    """The papermill parameters of ``job`` (``names``: the notebook's parameter names)."""
    settings = {"figures_dir": str(figures_dir), **job.fixed, **job.point}
    return {"profile": profile, "seed": job.seed, "results_dir": str(job.results_dir),
            **split_settings(settings, names)}
