"""ARUBA and ARUBA++ (Khodak, Balcan & Talwalkar 2019, "Adaptive Gradient-Based Meta-Learning Methods"), MetaMD's
Table 3 / Table 6 baselines: per-coordinate learning rates set online from the tasks seen so far.

ARUBA's adaptive learning rate (their §5, Algorithm 2, applied to a within-task gradient descent): after tasks
s = 1..t−1, with φ_s the start of task s, θ̂_s its last iterate and ∇_{s,i} its i-th gradient, coordinatewise

    B_t = Σ_{s<t} ½ (θ̂_s − φ_s)²,        G_t = Σ_{s<t} Σ_i ∇²_{s,i},
    η_t = sqrt( (ε² t^p + B_t) / (ζ² t^p + G_t) )                                        (ARUBA)

and task t runs θ ← θ − η_t ⊙ ∇ (the OGD rate D/(G√m) of each coordinate, with the distance D learned from how far
earlier tasks moved and the gradient scale from their gradients; ε, ζ, p regularise the first tasks).
ARUBA++ (their §6, the variant that keeps adapting within a task) also adds the current task's squared gradients
to the denominator as they arrive, AdaGrad-style: at step i of task t

    η_{t,i} = sqrt( (ε² t^p + B_t) / (ζ² t^p + G_t + Σ_{j≤i} ∇²_{t,j}) ).                (ARUBA++)

These equations are written from the ARUBA paper as we read it (its text is not among this replication's files);
ε, ζ, p are named arguments (``epsilon``, ``zeta``, ``power``), ours where the MetaMD paper is silent (App. A.7 gives
only the learning-rate and weight-decay grids). Ours too, as for Meta-SGD and MetaCur here: the tasks start from a
fresh initialisation (ARUBA also meta-learns φ, e.g. by Reptile; MetaMD's tables compare optimisers on freshly
initialised networks), and the step is ``lr`` · η ⊙ ∇, ``lr`` the learning rate MetaMD's App. A.7 tunes for ARUBA at
meta-test (and the mirror-descent step size during meta-training).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..optimizers.update_rules import UpdateRule


class ArubaRates(nn.Module):
    """The accumulators B_t, G_t and the task count (buffers) for parameters of ``shapes`` (module docstring)."""

    def __init__(self, shapes: Mapping[str, torch.Size], epsilon: float = 1.0, zeta: float = 1.0, power: float = 0.25):
        super().__init__()
        if not (epsilon > 0 and zeta > 0 and power >= 0):
            raise ValueError(f"ARUBA needs epsilon > 0, zeta > 0, power >= 0; got {epsilon}, {zeta}, {power}")
        self.epsilon, self.zeta, self.power = float(epsilon), float(zeta), float(power)
        self.keys = {name: name.replace(".", "__") for name in shapes}
        for name, key in self.keys.items():
            self.register_buffer(f"B__{key}", torch.zeros(tuple(shapes[name])))
            self.register_buffer(f"G__{key}", torch.zeros(tuple(shapes[name])))
        self.register_buffer("tasks_seen", torch.zeros(()))

    def accumulators(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.keys[name]
        return getattr(self, f"B__{key}"), getattr(self, f"G__{key}")

    def rates(self, extra_squared: Mapping[str, torch.Tensor] | None = None) -> dict:
        """η_t for the next task t = tasks_seen + 1; ``extra_squared`` (runs, *shape) adds the current task's
        Σ∇² to G (ARUBA++)."""
        t = float(self.tasks_seen) + 1.0
        out = {}
        for name in self.keys:
            B, G = self.accumulators(name)
            numerator = self.epsilon ** 2 * t ** self.power + B
            denominator = self.zeta ** 2 * t ** self.power + G
            if extra_squared is not None:
                denominator = denominator + extra_squared[name]
            out[name] = torch.sqrt(numerator / denominator)
        return out

    @torch.no_grad()
    def observe(self, start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor],
                squared_grads: Mapping[str, torch.Tensor]) -> None:
        """Add finished tasks (one per run of the leading dimension): B += ½(θ̂ − φ)², G += Σ_i ∇²_i."""
        runs = next(iter(start.values())).shape[0]
        for name in self.keys:
            B, G = self.accumulators(name)
            B += 0.5 * ((end[name] - start[name]) ** 2).sum(0)
            G += squared_grads[name].sum(0)
        self.tasks_seen += runs


class ArubaRule(UpdateRule):
    """θ ← θ − lr · η ⊙ ∇ with ARUBA's rates of ``aruba`` (``online=False``) or ARUBA++'s (``online=True``).

    The state carries the task's Σ∇² so far (``squared``), which :func:`l2l_utils.meta_training.aruba_training.
    fit_aruba` adds to G when the task ends."""

    def __init__(self, aruba: ArubaRates, lr: float, online: bool = False):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.aruba, self.lr, self.online = aruba, float(lr), online

    def init(self, params, context=None):
        return {"squared": {k: torch.zeros_like(v) for k, v in params.items()},
                "fixed": None if self.online else self.aruba.rates()}

    def update(self, params, grads, state, t, context=None):
        squared = {k: state["squared"][k] + grads[k].detach() ** 2 for k in grads}
        rates = self.aruba.rates(squared) if self.online else state["fixed"]
        new = {k: params[k] - self.lr * rates[k] * grads[k] for k in params}
        return new, {"squared": squared, "fixed": state["fixed"]}


def transfer_rates(aruba: ArubaRates, shapes: Mapping[str, torch.Size]) -> ArubaRates:
    """ARUBA's accumulators for a network with other tensor sizes (MetaMD §5.2 high resolution: 20-class meta-training
    tasks, other class counts at meta-test; ours, as for Meta-SGD's rates): a tensor of the same shape keeps its B and
    G, one whose first (output) dimension differs gets them averaged over that dimension (its rows were random
    classes), any other starts from zero."""
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
