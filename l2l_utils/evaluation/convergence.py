"""Iterations to convergence on the 2-D quadratics (MetaMD Fig. 1): every optimiser starts at the same point
and stops at the same criterion, f(θ) − f(θ*) < ``tol``; the trajectory is kept for plotting. Any update rule of
:mod:`l2l_utils.optimizers.update_rules` runs through the shared unroller."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

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
                    max_iters: int) -> tuple[float, dict]:
    """The learning rate with the fewest mean iterations to convergence over ``problems`` (tuning problems);
    ``make_rule(lr)`` builds the update rule, e.g. ``lambda lr: TorchOptimizerRule(make_baseline("SGD", lr))``."""
    scores = {lr: float(np.mean([run_to_convergence(make_rule(lr), p, tol, max_iters)[0] for p in problems]))
              for lr in learning_rates}
    best = min(scores, key=scores.get)
    return best, scores
