"""One interface for every update rule of the collection, hand-designed or learned.

A rule turns the current parameters and their gradients into new parameters::

    state = rule.init(params, context)
    params, state = rule.update(params, grads, state, t, context)

``params`` and ``grads`` are dicts of tensors with a leading run (or task) dimension, so a batch of optimizees is
updated at once; ``t`` counts the steps from 0; ``context`` carries what some rules need beyond the gradient (the
loss for the meta-learner LSTM, the parameter groups for the two-LSTM optimizer, the minibatch for a context-aware
rule). Rules built from differentiable operations (the learned ones, mirror descent, MAML's step) can be
differentiated through; :func:`l2l_utils.optimizers.unroll.unroll` runs any rule on any problem.

Implementations: :class:`TorchOptimizerRule` (any ``torch.optim`` optimizer, numbers identical to using it
directly: SGD, NAG, SGD-M, Adam, RMSprop, PowerSign, AddSign), :class:`GradientStep` (MAML's inner SGD, Eq. 1 of
Huisman et al.), :class:`AdditiveRule` (a learned map from gradients to updates: the LSTM optimizer, Meta-SGD,
mirror descent), and the episodic meta-learners of :mod:`l2l_utils.learned_optimizers.meta_learners` (meta-learner LSTM, TURTLE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn


def flatten_coordinates(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(runs, coordinates): every tensor flattened behind the leading run dimension, in the dict's order (a
    coordinatewise rule's view of a batch of optimizees)."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in tensors.values()], dim=1)


def unflatten_coordinates(flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict:
    """The inverse of :func:`flatten_coordinates`: a dict shaped like ``like``."""
    sizes = [v[0].numel() for v in like.values()]
    return {k: chunk.reshape(v.shape) for (k, v), chunk in zip(like.items(), flat.split(sizes, dim=1))}


@dataclass
class Context:
    """What a rule may read besides parameters and gradients (each field optional)."""

    loss: torch.Tensor | None = None  # the loss of every run at the current parameters
    groups: Mapping[str, str] | None = None  # parameter name -> group name (one LSTM per group, Andrychowicz §3.3)
    inputs: Any = None  # the minibatch the gradient came from (context-aware rules)
    extra: dict = field(default_factory=dict)


class UpdateRule:
    """``init(params, context) -> state`` and ``update(params, grads, state, t, context) -> (params, state)``."""

    differentiable = False  # whether a meta-gradient can flow through ``update``

    def init(self, params: Mapping[str, torch.Tensor], context: Context | None = None):
        return None

    def update(self, params: dict, grads: dict, state, t: int, context: Context | None = None):
        raise NotImplementedError


class GradientStep(UpdateRule):
    """θ ← θ − α∇ (plain SGD; MAML's inner update, Huisman et al. Eq. 1)."""

    differentiable = True

    def __init__(self, lr: float):
        self.lr = lr

    def update(self, params, grads, state, t, context=None):
        return {k: params[k] - self.lr * grads[k] for k in params}, state


class TorchOptimizerRule(UpdateRule):
    """A ``torch.optim`` optimizer as a rule; the optimizer is built on first use from ``make(params_list)``.

    The optimizer owns leaf copies of the parameters and updates them in place, as ``torch.optim`` does: ``update``
    returns those tensors (so a caller that keeps references to earlier parameters sees them change). Elementwise
    optimizers treat a leading run dimension as more coordinates, so a batch of runs is optimised exactly as each
    run alone. Not differentiable.
    """

    def __init__(self, make: Callable[[list], torch.optim.Optimizer]):
        self.make = make

    def init(self, params, context=None):
        leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        return {"leaves": leaves, "optimizer": self.make(list(leaves.values()))}

    def update(self, params, grads, state, t, context=None):
        leaves = state["leaves"]
        with torch.no_grad():
            for k, v in params.items():
                if v is not leaves[k]:
                    leaves[k].copy_(v)
        for k, g in grads.items():
            leaves[k].grad = g
        state["optimizer"].step()
        return leaves, state


def state_numel(state) -> int:
    """Numbers a rule keeps between steps: the elements of every tensor in ``state`` (dicts, lists and tuples walked),
    for a :class:`TorchOptimizerRule` those of its optimizer's state (Adam's two moments; the leaf copies of the
    parameters are the parameters, not extra memory). Scalar step counters count as one number each."""
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, torch.optim.Optimizer):
        return sum(state_numel(v) for v in state.state.values())
    if isinstance(state, Mapping):
        if "optimizer" in state and isinstance(state["optimizer"], torch.optim.Optimizer):
            return state_numel(state["optimizer"])
        return sum(state_numel(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_numel(v) for v in state)
    return 0


class AdditiveRule(nn.Module, UpdateRule):
    """A learned rule θ ← θ + u with (u, state) = ``self(grads, state, groups)`` (Andrychowicz et al. Eq. 1).

    Subclasses implement ``initial_state(params, groups)`` and ``forward(grads, state, groups)``.
    """

    differentiable = True

    def init(self, params, context=None):
        return self.initial_state(params, None if context is None else context.groups)

    def update(self, params, grads, state, t, context=None):
        updates, state = self(grads, state, None if context is None else context.groups)
        return {k: params[k] + updates[k] for k in params}, state

    def initial_state(self, params, groups=None):
        return {}
