"""Running learned and hand-designed optimizers on the same problems and collecting tidy results.

Every optimizer sees the same problems: the same θ0 and, for stochastic tasks, the same minibatch
sequence (common random numbers), because each run rebuilds the problems from the same seed.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..optimizers.baselines import run_baseline, tune_learning_rate
from ..optimizers.grid_search import search_grid
from ..optimizers.unroll import Unrolled, unroll


def tidy(trajectory: Unrolled, optimizer: str, **labels) -> pd.DataFrame:
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
                   steps: int, max_extensions: int = 0) -> tuple[dict, pd.DataFrame]:
    """Best learning rate of every baseline on the tuning problems (§3: best final error); a best rate at the edge
    of the grid extends it by up to ``max_extensions`` rates (:func:`~l2l_utils.optimizers.grid_search.search_grid`)."""
    best, tables = {}, []
    for name in names:
        best[name], table = tune_learning_rate(name, learning_rates, make_problem, steps, max_extensions)
        tables.append(table)
    return best, pd.concat(tables, ignore_index=True)


def compare_optimizers(learned: Mapping[str, object], baseline_lrs: Mapping[str, float],
                       make_problem: Callable, steps: int, **labels) -> pd.DataFrame:
    """Tidy losses of every learned optimizer and every tuned baseline on the same test problems."""
    frames = [tidy(unroll(opt, make_problem(), steps), name, **labels) for name, opt in learned.items()]
    frames += [tidy(run_baseline(name, lr, make_problem(), steps), name, lr=lr, **labels)
               for name, lr in baseline_lrs.items()]
    return pd.concat(frames, ignore_index=True)


def held_out_loss_curves(rules: Mapping[str, object], make_problem: Callable, steps: int, every: int, task, test_data,
                     **labels) -> pd.DataFrame:
    """Every rule on the same problems for ``steps`` steps; the loss of every run on all of ``test_data`` at step 0,
    every ``every`` steps and at the end (Kuo et al. §4's test curves). One row per optimizer × run × evaluation:
    optimizer, run, step, test_loss, train_loss (the minibatch loss at that step), diverged. Learned rules run in
    evaluation mode (no training-only noise)."""
    frames = []
    for name, rule in rules.items():
        if isinstance(rule, torch.nn.Module):
            rule.eval()
        evaluated = {}

        def monitor(t, params):
            if t % every == 0 or t == steps:
                evaluated[t] = task.test_loss(params, test_data).float().cpu().numpy()

        trajectory = unroll(rule, make_problem(), steps, monitor=monitor)
        for t, values in sorted(evaluated.items()):
            frames.append(pd.DataFrame({"optimizer": name, "run": np.arange(len(values)), "step": t,
                                        "test_loss": np.where(np.isnan(trajectory.losses[t]), np.nan, values),
                                        "train_loss": trajectory.losses[t], "diverged": trajectory.diverged}))
    frame = pd.concat(frames, ignore_index=True)
    for key, value in labels.items():
        frame[key] = value
    return frame


def curve_scores(frame: pd.DataFrame, value: str, late_window: int, split: int, smooth: int = 5,
                 by: str = "optimizer") -> pd.DataFrame:
    """Per ``by`` × run, what a claim reads from a curve of ``value`` over ``step``: ``mean`` (over all evaluations:
    how fast it came down), ``final`` (mean over the last ``late_window`` steps), ``start`` (first evaluation),
    ``best`` (lowest moving mean over ``smooth`` evaluations), ``volatility_before``/``volatility_after`` (standard
    deviation of the step-to-step changes up to ``split`` and after it). A run with a non-finite value anywhere gets
    NaN everywhere (a failure, counted as such by the verdict functions)."""
    rows = []
    for (name, run), curve in frame.sort_values("step").groupby([by, "run"], sort=False):
        steps, values = curve["step"].to_numpy(), curve[value].to_numpy(dtype=float)
        last = steps.max()
        if not np.all(np.isfinite(values)):
            scores = dict.fromkeys(("mean", "final", "start", "best", "volatility_before", "volatility_after"), np.nan)
        else:
            moving = np.convolve(values, np.ones(smooth) / smooth, mode="valid") if len(values) >= smooth else values
            changes, change_steps = np.diff(values), steps[1:]
            scores = {"mean": values.mean(), "final": values[steps > last - late_window].mean(), "start": values[0],
                      "best": moving.min(),
                      "volatility_before": changes[change_steps <= split].std() if (change_steps <= split).any()
                      else np.nan,
                      "volatility_after": changes[change_steps > split].std() if (change_steps > split).any()
                      else np.nan}
        rows.append({by: name, "run": run, **scores})
    return pd.DataFrame(rows)


def best_of_grid(names: Sequence[str], learning_rates: Sequence[float], make_problem: Callable, steps: int,
                 window: int = 1, max_extensions: int = 0, **labels) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every baseline at every learning rate on the same problems, each scored by its mean loss over the last
    ``window`` steps (a rate under which a run diverges scores +inf). Returns the tidy runs of every rate (column
    ``lr``) and a table of scores per baseline and rate; the best rate is the one the paper reports when it runs
    "the best performing one" of a grid on the evaluation itself (SimpleOptimizer paper §4). With ``max_extensions``
    > 0 a best rate at the edge of the grid extends it (:func:`~l2l_utils.optimizers.grid_search.search_grid`; the
    table's ``extended`` marks the added rates, :func:`tuned_at_edge` says whose best rate is still at the edge)."""
    frames, rows = [], []
    for name in names:
        def score(lr, name=name):
            frame = tidy(run_baseline(name, lr, make_problem(), steps), name, lr=lr, **labels)
            frames.append(frame)
            scores = scores_at(frame, steps, window)[name]
            return float(np.mean(scores)) if np.all(np.isfinite(scores)) else float("inf")

        result = search_grid(score, learning_rates, max_extensions)
        rows += [{"optimizer": name, "lr": lr, "mean_final_loss": value, "extended": lr in result.extended}
                 for lr, value in result.scores.items()]
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows)


def mean_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per optimizer and step over the runs that had not diverged (columns: optimizers). For plots only
    (the legend says how many runs diverged); verdicts use :func:`scores_at`, which counts every run."""
    ok = frame[~frame["diverged"].astype(bool)]
    return ok.groupby(["step", "optimizer"])["loss"].mean().unstack("optimizer")


def divergence_counts(frame: pd.DataFrame) -> pd.Series:
    """Number of diverged runs per optimizer."""
    runs = frame.drop_duplicates(["optimizer", "run"])
    return runs.groupby("optimizer")["diverged"].sum().astype(int)


def best_learning_rates(tuning: pd.DataFrame) -> dict:
    """Per optimizer, the learning rate with the lowest mean final loss in a tuning table."""
    rows = tuning.loc[tuning.groupby("optimizer")["mean_final_loss"].idxmin()]
    return {r.optimizer: float(r.lr) for r in rows.itertuples()}


def scores_at(frame: pd.DataFrame, step: int, window: int = 1) -> dict:
    """{optimizer: one score per run, ordered by run}: the mean loss over the ``window`` steps ending at ``step``
    (a mean over the last steps, so one minibatch's noise does not decide). A run that diverged by then scores NaN
    (a failure for :mod:`l2l_utils.reporting.verdicts`, never dropped). Runs share their problems across optimizers: paired."""
    part = frame[(frame["step"] > step - window) & (frame["step"] <= step)]
    table = part.pivot_table(index="run", columns=["optimizer", "step"], values="loss", dropna=False, aggfunc="first")
    out = {}
    for name in frame["optimizer"].unique():
        values = table[name].to_numpy(dtype=float)
        out[name] = np.where(np.isfinite(values).all(axis=1), values.mean(axis=1), np.nan)
    return out


def tuned_at_edge(tuning: pd.DataFrame) -> list[str]:
    """Baselines whose best rate (lowest finite ``mean_final_loss``) is the smallest or largest rate tried for them
    (the grid, with any extension): their tuning may be too narrow to trust a win against them."""
    edge = []
    for name, rows in tuning.groupby("optimizer"):
        finite = rows[np.isfinite(rows["mean_final_loss"])]
        if len(rows) > 1 and len(finite):
            best = finite.loc[finite["mean_final_loss"].idxmin(), "lr"]
            if best in (rows["lr"].min(), rows["lr"].max()):
                edge.append(name)
    return edge


def at_grid_edge(best: Mapping[str, float], grid: Sequence[float]) -> list[str]:
    """Baselines whose tuned learning rate is the smallest or largest of the grid (the grid may be too narrow)."""
    return [name for name, lr in best.items() if lr in (min(grid), max(grid))]
