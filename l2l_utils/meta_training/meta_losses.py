"""Meta-losses of truncated BPTT: which per-step term, with which weights (SimpleOptimizer paper §3.2).

Eq. 2 is L = Σ_t w_t f(θ_t), with w_t = 1 (Andrychowicz et al.) or w_T = 1 alone (Lv et al.). Eq. 6 as printed is
L = Σ_i w_i (f(θ_{i−1}) − f(θ_i)) with w_i growing like i². Worked on §3.2's two sequences (the notebook shows the
numbers), minimising Eq. 6 as printed prefers the myopic sequence the paper argues against: it rewards *small*
decreases. We therefore minimise the negative, Σ_i w_i (f(θ_i) − f(θ_{i−1})), the weighted decrease to maximise.
If f(θ_{i−1}) were differentiated too the sum would telescope into w_T f(θ_T) − Σ_{i<T} (w_{i+1} − w_i) f(θ_i) −
w_1 f(θ_0): with increasing weights every intermediate loss gets a negative coefficient (raising it lowers the
meta-loss). We treat f(θ_{i−1}) as a constant ("difference"), which makes the meta-gradient that of Σ_i w_i f(θ_i).
The other readings are kept as named terms for the comparison.

A term is ``term(f(θ_t), f(θ_{t−1})) -> per-run tensor``; :func:`l2l_utils.optimizers.unroll.unroll` adds w_t · mean(term).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Term = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

TERMS: dict[str, Term] = {
    "sum": lambda current, previous: current,  # Eq. 2: f(θ_t)
    "difference": lambda current, previous: current - previous.detach(),  # −Eq. 6, f(θ_{t−1}) a constant (ours)
    "difference-through": lambda current, previous: current - previous,  # −Eq. 6, differentiated through: telescopes
    "difference-as-printed": lambda current, previous: previous.detach() - current,  # Eq. 6 exactly as printed
}
WEIGHTS = ("uniform", "square", "last")


def term(name: str) -> Term:
    """The per-step term called ``name`` (one of :data:`TERMS`)."""
    if name not in TERMS:
        raise ValueError(f"meta-loss term {name!r}; allowed values are {sorted(TERMS)}")
    return TERMS[name]


def step_weights(kind: str, length: int, position: int = 0, across_truncations: bool = False) -> list[float]:
    """w_1..w_length of a truncation that starts ``position`` steps into its trajectory: ``"uniform"`` (w = 1,
    Andrychowicz et al.), ``"last"`` (only the truncation's last step, Lv et al. as §3.2 describes them), ``"square"``
    (w_i = i², Eq. 6), i counted from the truncation's start, or from the trajectory's with ``across_truncations``."""
    if kind not in WEIGHTS:
        raise ValueError(f"weights={kind!r}; allowed values are {list(WEIGHTS)}")
    if kind == "uniform":
        return [1.0] * length
    if kind == "last":
        return [0.0] * (length - 1) + [1.0]
    first = position + 1 if across_truncations else 1
    return [float(i * i) for i in range(first, first + length)]


def sequence_meta_loss(losses: Sequence[float], weights: Sequence[float], name: str) -> float:
    """Σ_{i=1..T} w_i · term(f(θ_i), f(θ_{i−1})) of a given loss sequence f(θ_0), ..., f(θ_T) (§3.2's example)."""
    values = torch.as_tensor(losses, dtype=torch.float64)
    if len(weights) != len(values) - 1:
        raise ValueError(f"need one weight per step: {len(values) - 1} steps, {len(weights)} weights")
    step = term(name)
    return float(sum(w * step(values[i], values[i - 1]) for i, w in enumerate(weights, start=1)))
