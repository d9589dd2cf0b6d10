"""Iterations to convergence on the 2-D quadratics (MetaMD Fig. 1): every optimiser starts at the same point
and stops at the same criterion, f(θ) − f(θ*) < ``tol``; the trajectory is kept for plotting. Any update rule of
:mod:`l2l_utils.optimizers.update_rules` runs through the shared unroller."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..optimizers.grid_search import GridResult, search_grid
from ..optimizers.unroll import unroll


def run_to_convergence(rule, problem, tol: float, max_iters: int) -> tuple[int, np.ndarray]:
    """Apply ``rule`` to one problem (θ of shape (1, d)) until the gap is below ``tol``.

    Returns (iterations, trajectory (iterations + 1, d)); ``max_iters`` + 1 iterations means "did not converge",
    and a non-finite iterate ends the run the same way.
    """
    path, outcome = [], {"iterations": max_iters + 1}

    def watch(t, params):
        theta = params["theta"]
        path.append(theta[0].clone())
        if t > 0:
            gap = float(problem.gap(theta)[0])
            if not np.isfinite(gap):
                outcome["stop"] = True
            elif gap < tol:
                outcome["iterations"], outcome["stop"] = t, True

    unroll(rule, problem, max_iters, monitor=watch, until=lambda t, params, loss: outcome.get("stop", False))
    return outcome["iterations"], torch.stack(path).numpy()


def tune_iterations(make_rule: Callable, learning_rates: Sequence[float], problems: list, tol: float,
                    max_iters: int, max_extensions: int = 0) -> tuple[float, dict]:
    """The learning rate with the fewest mean iterations to convergence over ``problems`` (tuning problems);
    ``make_rule(lr)`` builds the update rule, e.g. ``lambda lr: TorchOptimizerRule(make_baseline("SGD", lr))``.
    With ``max_extensions`` > 0 a best rate at the edge of the grid extends it
    (:func:`~l2l_utils.optimizers.grid_search.search_grid`); :func:`tune_iterations_on_grid` also says whether the
    best rate is still at the edge."""
    result = tune_iterations_on_grid(make_rule, learning_rates, problems, tol, max_iters, max_extensions)
    return result.best, result.scores


def tune_iterations_on_grid(make_rule: Callable, learning_rates: Sequence[float], problems: list, tol: float,
                            max_iters: int, max_extensions: int = 3) -> GridResult:
    """:func:`tune_iterations` as a :class:`~l2l_utils.optimizers.grid_search.GridResult`."""
    def mean_iterations(lr):
        return float(np.mean([run_to_convergence(make_rule(lr), p, tol, max_iters)[0] for p in problems]))
    return search_grid(mean_iterations, learning_rates, max_extensions)