"""The opening of every notebook: validate every parameter (profile, overrides, seed, device) before any compute, seed, pick
the device and folders, and start the claims table."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..reporting.claims import ClaimsTable
from ..reporting.plotting import paper_style
from ..storage.paths import project_root
from ..storage.results import ResultsStore, track_profile
from .locks import hold
from .profiles import (PAPER_CHOICES, PAPER_PROFILES, ParameterError, Profile, cuts_from_paper, parse_overrides,
                       resolve_profile)
from .runtime import resolve_device, seed_everything


@dataclass
class NotebookRun:
    cfg: Profile
    device: torch.device
    results_dir: Path
    figures_dir: Path
    store: ResultsStore
    claims: ClaimsTable
    run_note: str  # "N setting(s) overridden" for figure titles, "" for the profile as it stands
    started: float


def _inline_figures() -> None:
    """Figures appear in the notebook next to the text (also when MPLBACKEND is set, e.g. to Agg by CI)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")


# cuBLAS reduces in a fixed order only with a fixed workspace ("<KiB>:<count>": 8 buffers of 4 MiB); torch raises on
# a cuBLAS call under use_deterministic_algorithms(True) without it. cuBLAS reads the variable once, when the first
# handle is created, so it must be set before the first CUDA matrix product of the process (start_notebook runs
# before any compute); a value the user set already is kept.
CUBLAS_WORKSPACE = ":4096:8"


def deterministic_cuda(device: torch.device, warn_only: bool = True) -> bool:
    """On a CUDA ``device``, make kernels deterministic: the same inputs give the same bits on every call. Returns
    whether anything was set (nothing on a CPU, whose kernels are deterministic already).

    Why: the unrolled hypergradient (:func:`l2l_utils.meta_training.hypergradients.unrolled_hypergradient`)
    recomputes each inner step from the stored θ_t and checks that the loss matches the forward pass (rtol 1e-4);
    cuDNN's autotuner (``benchmark``) may pick a different convolution algorithm, with a different summation order,
    for the recomputation, and atomic-add kernels sum in a random order, so on a GPU the check (and any comparison
    of two runs) would depend on kernel choice. ``warn_only=True``: an operation with no deterministic CUDA kernel
    warns and runs rather than stopping a long run."""
    if device.type != "cuda":
        return False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return True


def start_notebook(paper: str, title: str, profile, seed, device, results_dir, figures_dir, overrides,
                   check: Callable[[Profile], None] | None = None, deterministic: bool = True) -> NotebookRun:
    """Resolve ``profile`` + ``overrides`` for ``paper`` (``check`` adds the paper's own cross-parameter rules);
    results go to ``runs/<profile>/results/<paper>`` and figures to ``figures/<paper>`` (``$L2L_FIGURES_DIR/<paper>``
    when that is set: the notebook tests draw there, never over the committed figures) unless given. A bad value
    raises :class:`ParameterError` naming it, before anything is computed or written. The kernel then holds the
    results folder (:mod:`l2l_utils.harness.locks`): a second kernel on the same folder stops with FolderBusy.
    ``deterministic`` (default True): on a CUDA device, deterministic kernels (:func:`deterministic_cuda`; no effect
    on a CPU); False leaves torch's defaults (faster, not bitwise repeatable). On an x86 CPU, subnormal floats are
    flushed to zero (:func:`torch.set_flush_denormal`, as TensorFlow's CPU kernels do by default): the raw-gradient
    inputs of Andrychowicz et al.'s App. A ablation otherwise make their meta-training 4-5x slower (benchmarks/README.md)
    while changing no value above 1.2e-38."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(deterministic, bool):
        raise ParameterError(f"deterministic must be True or False, got {deterministic!r}")
    cfg = resolve_profile(profile, PAPER_PROFILES[paper], overrides, PAPER_CHOICES[paper])
    if check is not None:
        check(cfg)
    dev = resolve_device(device)
    determinism = " deterministic-kernels" if deterministic and deterministic_cuda(dev) else ""
    determinism += " flush-denormal" if torch.set_flush_denormal(True) else ""
    seed_everything(seed)
    track_profile(cfg)  # cached results are keyed by the profile fields they read (l2l_utils.storage.results)
    root = project_root()
    results_dir = Path(results_dir) if results_dir else root / "runs" / profile / "results" / paper
    figures_root = Path(os.environ["L2L_FIGURES_DIR"]) if os.environ.get("L2L_FIGURES_DIR") else root / "figures"
    figures_dir = Path(figures_dir) if figures_dir else figures_root / paper
    # the claims table says what a reduced profile cut and what was overridden, so a changed profile is never reported
    # as the paper's (the smoke profile is toy-sized throughout and says so in every verdict instead)
    overridden = sorted(parse_overrides(overrides))
    cuts = [] if profile in ("paper", "smoke") else cuts_from_paper(PAPER_PROFILES[paper], profile)
    notes = ([f"cut from paper: {', '.join(field for field, _, _ in cuts)}"] if cuts else []) + (
        [f"overridden: {', '.join(overridden)}"] if overridden else [])
    claims = ClaimsTable(title, f"{profile} ({'; '.join(notes)})" if notes else profile)
    paper_style()
    _inline_figures()
    hold(results_dir, note=f"({paper} notebook)")  # one kernel at a time writes a results folder's checkpoints
    print(f"profile={profile} seed={seed} device={dev}{determinism} results={results_dir} figures={figures_dir}")
    if cuts:
        print(f"The {profile} profile differs from the paper's settings in {len(cuts)} field(s) (cut to fit "
              "the hardware; the profile file says why):")
        for field, paper_value, value in cuts:
            print(f"  {field}: paper {paper_value!r} -> {profile} {value!r}")
    return NotebookRun(cfg, dev, results_dir, figures_dir, ResultsStore(results_dir), claims,
                       f"{len(overridden)} setting(s) overridden" if overridden else "", time.perf_counter())
