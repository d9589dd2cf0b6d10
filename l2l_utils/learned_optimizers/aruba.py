"""ARUBA and ARUBA++ (Khodak, Balcan & Talwalkar 2019, "Adaptive Gradient-Based Meta-Learning Methods"), MetaMD's
Table 3 / Table 6 baselines: per-coordinate learning rates set online from the tasks seen so far.

ARUBA's adaptive learning rate (their §5, Algorithm 2, applied to within-task gradient descent), written as the
authors' code computes it (github.com/mkhodak/ARUBA, ``fedavg/aruba.py`` and ``reptile/supervised_reptile/aruba.py``,
which agree): coordinatewise accumulators that start at B_1 = ε², G_1 = ζ² and after task s (φ_s its start, θ̂_s its
last iterate, ∇_{s,i} its i-th gradient) grow by

    B_{s+1} = B_s + ½ (θ̂_s − φ_s)² + ε² / (s+1)^p,      G_{s+1} = G_s + Σ_i ∇²_{s,i} + ζ² / (s+1)^p,
    η_t = sqrt(B_t / G_t)                                                                 (ARUBA)

and task t runs θ ← θ − η_t ⊙ ∇ (OGD's rate D/(G√m) per coordinate: the distance D learned from how far earlier tasks
moved, the gradient scale from their gradients; the ε, ζ terms regularise the first tasks and decay with p).
ARUBA++ (their §6; a meta-test-time variant in the authors' code, which refuses it during meta-training) keeps adapting
within the task, AdaGrad-style: at step i of task t, with c the ARUBA++ coefficient (the authors sweep
c ∈ {10⁻², …, 10³}),

    η_{t,i} = sqrt( B_t / (G_t + c Σ_{j<i} ∇²_{t,j}) ).                                    (ARUBA++)

ε, ζ, p, c are named arguments (``epsilon``, ``zeta``, ``power``, ``coefficient``; the authors' defaults ε = ζ = p = 1);
MetaMD's App. A.7 gives only the learning-rate grid. Ours, as for Meta-SGD and MetaCur here: the tasks start from a
fresh initialisation (ARUBA also meta-learns φ, e.g. by Reptile; MetaMD's tables compare optimisers on freshly
initialised networks), and the step is ``lr`` · η ⊙ ∇, ``lr`` the learning rate MetaMD's App. A.7 tunes for ARUBA at
meta-test (and the step's multiplier while the meta-train tasks are met; the authors' code has none: lr = 1).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..optimizers.update_rules import UpdateRule


class ArubaRates(nn.Module):
    """The accumulators B_t, G_t (starting at ε², ζ²) and the task count (buffers) for parameters of ``shapes``
    (module docstring)."""

    def __init__(self, shapes: Mapping[str, torch.Size], epsilon: float = 1.0, zeta: float = 1.0, power: float = 1.0):
        super().__init__()
        if not (epsilon > 0 and zeta > 0 and power >= 0):
            raise ValueError(f"ARUBA needs epsilon > 0, zeta > 0, power >= 0; got {epsilon}, {zeta}, {power}")
        self.epsilon, self.zeta, self.power = float(epsilon), float(zeta), float(power)
        self.keys = {name: name.replace(".", "__") for name in shapes}
        for name, key in self.keys.items():
            self.register_buffer(f"B__{key}", torch.full(tuple(shapes[name]), self.epsilon ** 2))
            self.register_buffer(f"G__{key}", torch.full(tuple(shapes[name]), self.zeta ** 2))
        self.register_buffer("tasks_seen", torch.zeros(()))

    def accumulators(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.keys[name]
        return getattr(self, f"B__{key}"), getattr(self, f"G__{key}")

    def rates(self, extra_squared: Mapping[str, torch.Tensor] | None = None, coefficient: float = 0.0) -> dict:
        """η for the next task: sqrt(B / G); with ``extra_squared`` (runs, *shape), the current task's Σ_{j<i} ∇²,
        sqrt(B / (G + coefficient · extra)) (ARUBA++)."""
        out = {}
        for name in self.keys:
            B, G = self.accumulators(name)
            if extra_squared is not None:
                G = G + coefficient * extra_squared[name]
            out[name] = torch.sqrt(B / G)
        return out

    @torch.no_grad()
    def observe(self, start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor],
                squared_grads: Mapping[str, torch.Tensor]) -> None:
        """Add finished tasks, one per run of the leading dimension, in order: task s adds ½(θ̂ − φ)² + ε²/(s+1)^p
        to B and Σ_i ∇²_i + ζ²/(s+1)^p to G."""
        runs = next(iter(start.values())).shape[0]
        first = int(self.tasks_seen) + 1
        decay = sum((s + 1.0) ** -self.power for s in range(first, first + runs))
        for name in self.keys:
            B, G = self.accumulators(name)
            B += 0.5 * ((end[name] - start[name]) ** 2).sum(0) + self.epsilon ** 2 * decay
            G += squared_grads[name].sum(0) + self.zeta ** 2 * decay
        self.tasks_seen += runs


class ArubaRule(UpdateRule):
    """θ ← θ − lr · η ⊙ ∇ with ARUBA's rates of ``aruba`` (``online=False``) or ARUBA++'s (``online=True``, with the
    ARUBA++ ``coefficient`` c).

    The state carries the task's Σ∇² so far (``squared``), which :func:`l2l_utils.meta_training.aruba_training.
    fit_aruba` adds to G when the task ends."""

    def __init__(self, aruba: ArubaRates, lr: float, online: bool = False, coefficient: float = 1.0):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if online and not coefficient > 0:
            raise ValueError(f"ARUBA++ needs a coefficient > 0, got {coefficient}")
        self.aruba, self.lr, self.online, self.coefficient = aruba, float(lr), online, float(coefficient)

    def init(self, params, context=None):
        return {"squared": {k: torch.zeros_like(v) for k, v in params.items()},
                "fixed": None if self.online else self.aruba.rates()}

    def update(self, params, grads, state, t, context=None):
        rates = self.aruba.rates(state["squared"], self.coefficient) if self.online else state["fixed"]
        new = {k: params[k] - self.lr * rates[k] * grads[k] for k in params}
        squared = {k: state["squared"][k] + grads[k].detach() ** 2 for k in grads}
        return new, {"squared": squared, "fixed": state["fixed"]}


def transfer_rates(aruba: ArubaRates, shapes: Mapping[str, torch.Size]) -> ArubaRates:
    """ARUBA's accumulators for a network with other tensor sizes (MetaMD §5.2 high resolution: 20-class meta-training
    tasks, other class counts at meta-test; ours, as for Meta-SGD's rates): a tensor of the same shape keeps its B and
    G, one whose first (output) dimension differs gets them averaged over that dimension (its rows were random
    classes), any other starts afresh (ε², ζ²)."""
    new = ArubaRates(shapes, aruba.epsilon, aruba.zeta, aruba.power).to(aruba.tasks_seen.device)
    with torch.no_grad():
        new.tasks_seen.copy_(aruba.tasks_seen)
        for name in new.keys:
            if name not in aruba.keys:
                continue
            for target, old in zip(new.accumulators(name), aruba.accumulators(name)):
                if old.shape == target.shape:
                    target.copy_(old)
                elif old.dim() > 0 and old.shape[1:] == target.shape[1:]:
                    target.copy_(old.mean(0, keepdim=True).expand_as(target))
    return new
