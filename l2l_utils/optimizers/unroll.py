"""The one inner loop: run an update rule on a problem for T steps (every paper of the collection uses it).

``unroll(rule, problem, steps)`` evaluates the loss and its gradient at θ_0, then for t = 0..T−1 applies
``rule.update`` and evaluates again. A problem is anything with ``params0`` (a dict of tensors with a leading run
dimension) and ``loss(params)`` (one loss per run); ``groups`` (for per-group rules), ``generator`` (its
minibatch stream, which the unrolled MetaMD hypergradient replays) and ``last_inputs`` (the minibatch of the last
``loss`` call, one per run, for context-aware rules such as MTL2L) are optional.

``order`` says what a meta-gradient may flow through:

* ``"none"`` — no graph: every update runs under ``torch.no_grad`` (testing an optimizer, evaluation);
* ``"first"`` — the rule's parameters and θ_0 are in the graph, the problem's gradients are constants
  (∂∇_t/∂φ = 0: the dropped dashed edges of Andrychowicz et al. Fig. 2; first-order MAML);
* ``"second"`` — the gradients themselves are differentiated (``create_graph=True``: MAML, TURTLE).

A loss that is not finite marks that run as diverged: its later losses are NaN (``stop="all"`` runs on while
some run is finite, since the rules are coordinatewise and runs independent; ``stop="any"`` ends at the first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .update_rules import Context

ORDERS = ("none", "first", "second")
Hook = Callable[[int, dict, dict, dict], None]  # (t, θ_t, ∇_t, θ_{t+1}), all detached
Monitor = Callable[[int, dict], None]  # (t, θ_t detached), t = 0..steps


def loss_and_grads(problem, params: dict, create_graph: bool = False, retain_graph: bool = False):
    """f(θ) per run and ∇_θ Σ_runs f; unused parameters get zero gradients."""
    with torch.enable_grad():
        loss = problem.loss(params)
        grads = torch.autograd.grad(loss.sum(), list(params.values()), create_graph=create_graph,
                                    retain_graph=retain_graph or create_graph, allow_unused=True)
    return loss, {k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads)}


@dataclass
class Unrolled:
    """What an unroll produced. ``losses``: (steps + 1, runs), NaN from a run's divergence on (rows past an early
    stop are NaN too); ``params``/``state``/``loss``/``grads``: the last ones (still in the graph for ``"first"`` and
    ``"second"``), from which an unroll can continue (``start=``); ``meta_loss``: Σ_t w_t · mean_runs f(θ_t) over
    t = 1..steps (or of the given ``term``); ``trajectory``: (θ_t, minibatch-stream state) for t < steps when
    ``keep=True``."""

    losses: np.ndarray
    params: dict
    state: object = None
    loss: torch.Tensor | None = None
    grads: dict | None = None
    meta_loss: torch.Tensor | float = 0.0
    trajectory: list = field(default_factory=list)
    steps_done: int = 0

    def __post_init__(self):
        broke = np.cumsum(~np.isfinite(self.losses), axis=0) > 0
        self.losses = np.where(broke, np.nan, self.losses)

    @property
    def diverged(self) -> np.ndarray:
        return np.isnan(self.losses[-1])

    @property
    def final(self) -> np.ndarray:
        return self.losses[-1]

    @property
    def detached_params(self) -> dict:
        return {k: v.detach() for k, v in self.params.items()}


def _stream_state(problem):
    generator = getattr(problem, "generator", None)
    return None if generator is None else generator.get_state()


def unroll(rule, problem, steps: int, order: str = "none", start: Unrolled | None = None, weights=None,
           evaluate_last: bool = True, stop: str = "all", hook: Hook | None = None, monitor: Monitor | None = None,
           keep: bool = False, until: Callable[[int, dict, torch.Tensor], bool] | None = None,
           term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> Unrolled:
    """Apply ``rule`` to ``problem`` for ``steps`` steps (module docstring). ``start`` continues an earlier unroll
    (truncated BPTT); ``weights`` are w_1..w_T of the meta-loss (default 1); ``term(f(θ_t), f(θ_{t−1}))`` is its
    per-run term at step t (default f(θ_t); :mod:`l2l_utils.meta_training.meta_losses` has the weighted difference);
    ``evaluate_last=False`` skips the loss at θ_T (an episodic inner loop scores the query set instead);
    ``until(t, θ_t, loss_t)`` ends the run early when it returns True (e.g. converged)."""
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; allowed values are {list(ORDERS)}")
    if stop not in ("all", "any"):
        raise ValueError(f"stop={stop!r}; allowed values are ['all', 'any']")
    second, graph = order == "second", order != "none"
    groups = getattr(problem, "groups", None)
    if start is None:
        params = {k: v if graph else v.detach().clone().requires_grad_() for k, v in problem.params0.items()}
        state = rule.init(params, Context(groups=groups))
        if monitor is not None:
            monitor(0, {k: v.detach() for k, v in params.items()})
        stream = _stream_state(problem) if keep else None
        loss, grads = loss_and_grads(problem, params, create_graph=second, retain_graph=graph)
        if not graph:
            grads = {k: g.detach() for k, g in grads.items()}
        losses = [loss.detach()]
    else:
        params, state, loss, grads = start.params, start.state, start.loss, start.grads
        stream = _stream_state(problem) if keep else None
        losses = [loss.detach()]
    meta_loss, trajectory, done = 0.0, [], 0
    for t in range(steps):
        if until is not None and until(t, params, loss):
            break
        if stop == "any" and not torch.isfinite(loss).all():
            break
        if keep:
            trajectory.append(({k: v.detach() for k, v in params.items()}, stream))
        previous = loss
        context = Context(loss=loss if second else loss.detach(), groups=groups,
                          inputs=getattr(problem, "last_inputs", None))
        before = {k: v.detach().clone() for k, v in params.items()} if hook is not None else None
        if graph:
            params, state = rule.update(params, grads if second else {k: g.detach() for k, g in grads.items()},
                                        state, t, context)
        else:
            with torch.no_grad():
                params, state = rule.update(params, grads, state, t, context)
            params = {k: v if v.requires_grad else v.requires_grad_() for k, v in params.items()}
        done = t + 1
        if hook is not None:
            hook(t, before, grads, {k: v.detach() for k, v in params.items()})
        if monitor is not None:
            monitor(t + 1, {k: v.detach() for k, v in params.items()})
        if t + 1 == steps and not evaluate_last:
            break
        stream = _stream_state(problem) if keep else None
        loss, grads = loss_and_grads(problem, params, create_graph=second, retain_graph=graph)
        if order == "first":
            grads = {k: g.detach() for k, g in grads.items()}
        elif not graph:
            grads = {k: g.detach() for k, g in grads.items()}
        losses.append(loss.detach())
        if graph:
            value = loss if term is None else term(loss, previous)
            meta_loss = meta_loss + (1.0 if weights is None else weights[t]) * value.mean()
        if not torch.isfinite(loss).any() or (stop == "any" and not torch.isfinite(loss).all()):
            break
    out = torch.stack(losses).float().cpu().numpy()
    rows = steps + 1 if evaluate_last else steps
    if out.shape[0] < rows:
        out = np.concatenate([out, np.full((rows - out.shape[0], out.shape[1]), np.nan)])
    return Unrolled(out, params, state, loss, grads, meta_loss, trajectory, done)
