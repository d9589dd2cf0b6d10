"""Meta-testing optimisers on a held-out dataset (MetaMD §5.2, App. A.7, A.13, A.16).

Every optimiser trains freshly initialised networks on the held-out dataset's training split; its
hyperparameters (learning rate, weight decay) come from a grid search on validation accuracy (a held-out
part of the training split); then ``trials`` runs give the training-loss curves and the test accuracy.
Every optimiser is an update rule of :mod:`l2l_utils.optimizers.update_rules` (hand-designed ones from ``torch.optim`` through
:func:`l2l_utils.optimizers.baselines.baseline_rule`), run by the shared unroller. Weight decay is the L2 penalty ½·wd·‖θ‖² added
to every optimiser's training loss, except for a rule whose decay is decoupled (AdamW), which gets it itself.
"""

from __future__ import annotations

import itertools
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.integrate import trapezoid

from ..optimizers.unroll import Monitor, Unrolled, unroll
from ..tasks.datasets import ImageData
from ..tasks.problems import RegularisedProblem


def split_data(data: ImageData, fraction: float, seed: int = 0) -> tuple[ImageData, ImageData]:
    """A seeded random split into (first ``fraction``, rest): e.g. train/validation, or a pool into train/test."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    cut = int(round(fraction * len(data)))

    def part(index):
        return ImageData(data.images[index], data.labels[index], data.name, data.split, data.classes)

    return part(order[:cut]), part(order[cut:])


def train_runs(rule, task, steps: int, runs: int, seed: int, weight_decay: float = 0.0,
               monitor: Monitor | None = None) -> Unrolled:
    """``runs`` freshly initialised networks trained together (one batch) for ``steps`` steps."""
    problem = task.sample(runs, torch.Generator().manual_seed(seed))
    if weight_decay and getattr(rule, "decoupled_weight_decay", False):  # AdamW: the decay is the optimizer's
        rule = rule.with_weight_decay(weight_decay)
    elif weight_decay:
        problem = RegularisedProblem(problem, weight_decay)
    return unroll(rule, problem, steps, monitor=monitor)


def grid_search(make_rule: Callable[[float], object], learning_rates: Sequence[float | None],
                weight_decays: Sequence[float], task, val_data, steps: int, seed: int) -> tuple[dict, pd.DataFrame]:
    """Best (lr, weight_decay) by validation accuracy of one run per setting (App. A.7); a diverged run scores 0."""
    rows = []
    for lr, wd in itertools.product(learning_rates, weight_decays):
        trajectory = train_runs(make_rule(lr), task, steps, 1, seed, wd)
        accuracy = float(task.accuracy(trajectory.params, val_data)[0]) if not trajectory.diverged[0] else 0.0
        rows.append({"lr": lr, "weight_decay": wd, "val_accuracy": accuracy,
                     "final_train_loss": float(trajectory.final[0])})
    table = pd.DataFrame(rows)
    best = table.loc[table["val_accuracy"].idxmax()]
    return {"lr": best["lr"], "weight_decay": float(best["weight_decay"])}, table


def evaluate_rule(rule, task, test_data, steps: int, trials: int, seed: int, weight_decay: float = 0.0,
                    accuracy_every: int | None = None, train_data=None, **labels) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves: one row per trial × step with the training loss, scores: one row per trial with test accuracy).

    With ``accuracy_every``, the curves also get the accuracy on ``train_data`` and ``test_data`` every that many
    steps and at the end (MetaMD Fig. 4 and 6: training loss, training accuracy and test accuracy); NaN elsewhere.
    """
    accuracy_rows = {}

    def monitor(t, params):
        if t % accuracy_every == 0 or t == steps:
            accuracy_rows[t] = (task.accuracy(params, train_data).cpu().numpy(),
                                task.accuracy(params, test_data).cpu().numpy())

    if accuracy_every is not None and (accuracy_every < 1 or train_data is None):
        raise ValueError("accuracy curves need accuracy_every >= 1 and train_data")
    trajectory = train_runs(rule, task, steps, trials, seed, weight_decay, monitor if accuracy_every else None)
    losses = trajectory.losses
    curves = pd.DataFrame({"trial": np.tile(np.arange(trials), losses.shape[0]),
                           "step": np.repeat(np.arange(losses.shape[0]), trials), "loss": losses.reshape(-1)})
    if accuracy_every:
        for column, which in (("train_accuracy", 0), ("test_accuracy", 1)):
            values = np.full(losses.shape, np.nan)
            for t, pair in accuracy_rows.items():
                values[t] = np.where(np.isnan(losses[t]), np.nan, pair[which])
            curves[column] = values.reshape(-1)
    accuracy = task.accuracy(trajectory.params, test_data).cpu().numpy()
    scores = pd.DataFrame({"trial": np.arange(trials), "test_accuracy": np.where(trajectory.diverged, np.nan, accuracy),
                           "diverged": trajectory.diverged, "auc": area_under_curve(losses)})
    for key, value in labels.items():
        curves[key], scores[key] = value, value
    return curves, scores


def area_under_curve(losses: np.ndarray) -> np.ndarray:
    """Area under the training-loss curve per run (App. A.13: smaller = faster), trapezoid rule over steps,
    scaled per 100 steps; NaN for a diverged run."""
    return trapezoid(losses, axis=0) / 100.0


def mean_std(scores: pd.DataFrame, column: str = "test_accuracy") -> Mapping[str, float]:
    """Mean and sample standard deviation (ddof = 1, as the paper's "mean ± std" over trials) of ``column``; a
    non-finite trial is not dropped: the mean and std are then NaN."""
    values = scores[column].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan")}
