"""Running an update rule on a problem for a number of steps, recording one loss per run and step.

A NaN/inf loss ends that run: it is recorded as diverged (its later losses are NaN) and the other
runs of the batch go on, since every update rule here is coordinatewise and the optimizees of a
batch are independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

StepHook = Callable[[int, dict, dict], None]  # (step, grads, updates) for the first optimizee's tensors
Monitor = Callable[[int, dict], None]  # (t, θ_t detached), called for t = 0..steps, e.g. to record accuracy curves


@dataclass
class Trajectory:
    """Losses f(θ_t) for t = 0..steps (rows) of n runs (columns); NaN from divergence onwards."""

    losses: np.ndarray
    params: dict | None = None  # θ at the end of the run (detached), e.g. to measure test accuracy

    def __post_init__(self):
        finite = np.isfinite(self.losses)
        broke = np.cumsum(~finite, axis=0) > 0
        self.losses = np.where(broke, np.nan, self.losses)

    @property
    def diverged(self) -> np.ndarray:
        return np.isnan(self.losses[-1])

    @property
    def final(self) -> np.ndarray:
        return self.losses[-1]


def loss_and_grads(problem, params: dict, retain_graph: bool = False):
    """f(θ) per run and ∇_θ f as constants: ∂∇_t/∂φ = 0, the dropped dashed edges of Fig. 2."""
    with torch.enable_grad():
        loss = problem.loss(params)
        grads = torch.autograd.grad(loss.sum(), list(params.values()), retain_graph=retain_graph,
                                    allow_unused=True)
    grads = {k: (torch.zeros_like(p) if g is None else g.detach()) for (k, p), g in zip(params.items(), grads)}
    return loss, grads


def run_learned(optimizer, problem, steps: int, hook: StepHook | None = None,
                monitor: Monitor | None = None) -> Trajectory:
    """Apply a learned optimizer (θ_{t+1} = θ_t + g_t, Eq. 1) for ``steps`` steps, without meta-graph."""
    params = {k: v.detach().clone().requires_grad_() for k, v in problem.params0.items()}
    state = optimizer.initial_state(params, problem.groups)
    losses = []
    _watch(monitor, 0, params)
    loss, grads = loss_and_grads(problem, params)
    losses.append(loss.detach())
    for t in range(steps):
        with torch.no_grad():
            updates, state = optimizer(grads, state, problem.groups)
            if hook is not None:
                hook(t, grads, updates)
            params = {k: (params[k] + updates[k]).requires_grad_() for k in params}
        _watch(monitor, t + 1, params)
        loss, grads = loss_and_grads(problem, params)
        losses.append(loss.detach())
        if not torch.isfinite(loss).any():
            break
    return _trajectory(losses, steps, params)


def run_torch_optimizer(make_optimizer: Callable, problem, steps: int, hook: StepHook | None = None,
                        monitor: Monitor | None = None) -> Trajectory:
    """Apply a ``torch.optim`` optimizer to the batch of runs (valid because it is coordinatewise)."""
    params = {k: v.detach().clone().requires_grad_() for k, v in problem.params0.items()}
    opt = make_optimizer(list(params.values()))
    losses = []
    for t in range(steps + 1):
        _watch(monitor, t, params)
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = problem.loss(params)
            loss.sum().backward()
        losses.append(loss.detach())
        if t == steps or not torch.isfinite(loss).any():
            break
        before = {k: v.detach().clone() for k, v in params.items()} if hook else None
        opt.step()
        if hook is not None:
            hook(t, {k: v.grad for k, v in params.items()},
                 {k: params[k].detach() - before[k] for k in params})
    return _trajectory(losses, steps, params)


def _watch(monitor: Monitor | None, t: int, params: dict) -> None:
    if monitor is not None:
        monitor(t, {k: v.detach() for k, v in params.items()})


def _trajectory(losses: list, steps: int, params: dict) -> Trajectory:
    out = torch.stack(losses).float().cpu().numpy()
    if out.shape[0] < steps + 1:  # every run diverged: pad with NaN
        out = np.concatenate([out, np.full((steps + 1 - out.shape[0], out.shape[1]), np.nan)])
    return Trajectory(out, {k: v.detach() for k, v in params.items()})
