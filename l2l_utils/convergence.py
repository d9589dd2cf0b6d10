"""Iterations to convergence on the 2-D quadratics (MetaMD Fig. 1): every optimiser starts at the same point
and stops at the same criterion, f(θ) − f(θ*) < ``tol``; the trajectory is kept for plotting."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .baselines import make_baseline


def run_to_convergence(step: Callable, problem, tol: float, max_iters: int) -> tuple[int, np.ndarray]:
    """Apply ``step(θ) -> θ`` to one problem (θ of shape (1, d)) until the gap is below ``tol``.

    Returns (iterations, trajectory (iterations + 1, d)); ``max_iters`` + 1 iterations means "did not converge",
    and a non-finite iterate ends the run the same way.
    """
    theta = problem.theta1.clone()
    path = [theta[0].detach().clone()]
    for it in range(1, max_iters + 1):
        theta = step(theta)
        path.append(theta[0].detach().clone())
        gap = float(problem.gap(theta.detach())[0])
        if not np.isfinite(gap):
            return max_iters + 1, torch.stack(path).numpy()
        if gap < tol:
            return it, torch.stack(path).numpy()
    return max_iters + 1, torch.stack(path).numpy()


def torch_optimizer_step(name: str, lr: float, problem) -> Callable:
    """A ``step`` for :func:`run_to_convergence` driven by a ``torch.optim`` optimiser (stateful)."""
    holder = {"theta": None, "opt": None}

    def step(theta):
        if holder["theta"] is None:
            holder["theta"] = theta.detach().clone().requires_grad_()
            holder["opt"] = make_baseline(name, lr)([holder["theta"]])
        holder["opt"].zero_grad(set_to_none=True)
        problem.loss(holder["theta"]).sum().backward()
        holder["opt"].step()
        return holder["theta"].detach()

    return step


def tune_iterations(make_step: Callable, learning_rates: Sequence[float], problems: list, tol: float,
                    max_iters: int) -> tuple[float, dict]:
    """The learning rate with the fewest mean iterations to convergence over ``problems`` (tuning problems);
    ``make_step(lr, problem)`` builds the update, e.g. ``lambda lr, p: torch_optimizer_step("SGD", lr, p)``."""
    scores = {lr: float(np.mean([run_to_convergence(make_step(lr, p), p, tol, max_iters)[0] for p in problems]))
              for lr in learning_rates}
    best = min(scores, key=scores.get)
    return best, scores
