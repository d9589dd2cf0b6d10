"""Running learned and hand-designed optimizers on the same problems and collecting tidy results.

Every optimizer sees the same problems: the same θ0 and, for stochastic tasks, the same minibatch
sequence (common random numbers), because each run rebuilds the problems from the same seed.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .baselines import run_baseline, tune_learning_rate
from .rollout import Trajectory, run_learned


def tidy(trajectory: Trajectory, optimizer: str, **labels) -> pd.DataFrame:
    """One row per run × step: optimizer, run, step, loss, diverged (+ extra label columns)."""
    steps, runs = trajectory.losses.shape
    frame = pd.DataFrame({
        "optimizer": optimizer,
        "run": np.tile(np.arange(runs), steps),
        "step": np.repeat(np.arange(steps), runs),
        "loss": trajectory.losses.reshape(-1),
        "diverged": np.tile(trajectory.diverged, steps),
    })
    for key, value in labels.items():
        frame[key] = value
    return frame


def tune_baselines(names: Sequence[str], learning_rates: Sequence[float], make_problem: Callable,
                   steps: int) -> tuple[dict, pd.DataFrame]:
    """Best learning rate of every baseline on the tuning problems (§3: best final error)."""
    best, tables = {}, []
    for name in names:
        best[name], table = tune_learning_rate(name, learning_rates, make_problem, steps)
        tables.append(table)
    return best, pd.concat(tables, ignore_index=True)


def compare_optimizers(learned: Mapping[str, object], baseline_lrs: Mapping[str, float],
                       make_problem: Callable, steps: int, **labels) -> pd.DataFrame:
    """Tidy losses of every learned optimizer and every tuned baseline on the same test problems."""
    frames = [tidy(run_learned(opt, make_problem(), steps), name, **labels) for name, opt in learned.items()]
    frames += [tidy(run_baseline(name, lr, make_problem(), steps), name, lr=lr, **labels)
               for name, lr in baseline_lrs.items()]
    return pd.concat(frames, ignore_index=True)


def mean_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per optimizer and step over the runs that did not diverge (columns: optimizers)."""
    ok = frame[~frame["diverged"].astype(bool)]
    return ok.groupby(["step", "optimizer"])["loss"].mean().unstack("optimizer")


def final_losses(frame: pd.DataFrame, step: int | None = None) -> pd.Series:
    """Mean loss at ``step`` (default: last) per optimizer; +inf where every run diverged."""
    curves = mean_curves(frame)
    row = curves.loc[curves.index.max() if step is None else step]
    names = frame["optimizer"].unique()
    return pd.Series({n: float(row.get(n, np.inf)) if np.isfinite(row.get(n, np.inf)) else np.inf for n in names})


def divergence_counts(frame: pd.DataFrame) -> pd.Series:
    """Number of diverged runs per optimizer."""
    runs = frame.drop_duplicates(["optimizer", "run"])
    return runs.groupby("optimizer")["diverged"].sum().astype(int)


def best_learning_rates(tuning: pd.DataFrame) -> dict:
    """Per optimizer, the learning rate with the lowest mean final loss in a tuning table."""
    rows = tuning.loc[tuning.groupby("optimizer")["mean_final_loss"].idxmin()]
    return {r.optimizer: float(r.lr) for r in rows.itertuples()}


def versus_best_baseline(frame: pd.DataFrame, learned: str, baselines: Sequence[str],
                         steps: tuple | None = None) -> dict:
    """Final and trajectory-mean loss of ``learned`` against the best of ``baselines``.

    ``ratio`` < 1 means the learned optimizer ends lower than every baseline; ``mean_ratio`` compares
    the mean loss over the steps (area under the curve). ``steps`` restricts to a step range.
    """
    curves = mean_curves(frame)
    if steps is not None:
        curves = curves.loc[steps[0]:steps[1]]
    finals = curves.iloc[-1].reindex([learned, *baselines]).fillna(np.inf)
    means = curves.mean().reindex([learned, *baselines]).fillna(np.inf)
    best = finals[list(baselines)].idxmin()
    return {"learned_final": float(finals[learned]), "best_baseline": best,
            "best_final": float(finals[best]), "ratio": float(finals[learned] / finals[best]),
            "mean_ratio": float(means[learned] / means[list(baselines)].min())}


def outperform_verdict(stats: dict) -> str:
    """reproduced: lower final loss than the best baseline; partly: lower only on the trajectory mean."""
    if stats["ratio"] < 1:
        return "reproduced"
    if stats["mean_ratio"] < 1:
        return "partly: lower loss on average over the run, but not at the last step"
    return "not reproduced"


def at_grid_edge(best: Mapping[str, float], grid: Sequence[float]) -> list[str]:
    """Baselines whose tuned learning rate is the smallest or largest of the grid (the grid may be too narrow)."""
    return [name for name, lr in best.items() if lr in (min(grid), max(grid))]
