"""PowerSign and AddSign (Bello et al. 2017, "Neural Optimizer Search with Reinforcement Learning").

The two update rules found by Bello et al.'s search, which MetaMD compares against (§5, Tables 2, 3, 5, 6):

* PowerSign: Δθ = −lr · base^{sign(g)·sign(m)} · g  (base = e by default),
* AddSign:   Δθ = −lr · (alpha + sign(g)·sign(m)) · g  (alpha = 1 by default),

with m the moving average of gradients, m ← beta·m + (1 − beta)·g (beta = 0.9), updated before the step
from m = 0, so at step 1 m = (1 − beta)·g and sign(m) = sign(g). Where gradient and moving average agree
in sign the step is scaled up (PowerSign by base, AddSign by alpha + 1), where they disagree it is scaled
down (by 1/base, by alpha − 1); where either is 0 the factor is base⁰ = 1 or alpha.

Bello et al. also give variants that multiply sign(g)·sign(m) by a decay schedule f(t) (linear, cyclic or
restart decay). We implement the undecayed variant, f(t) = 1; the MetaMD paper does not say which variant
it used. There is no weight-decay option: callers add an L2 penalty to the loss. Both rules act
coordinatewise, so stacking independent problems along a leading dimension gives independent runs.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch


class _SignOptimizer(torch.optim.Optimizer):
    """Shared loop: m ← beta·m + (1 − beta)·g, then θ ← θ − lr · factor(sign(g)·sign(m)) · g."""

    def __init__(self, params: Iterable, lr: float, beta: float, **extra: float):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must satisfy 0 <= beta < 1, got {beta}")
        super().__init__(params, dict(lr=lr, beta=beta, **extra))

    def _factor(self, agreement: torch.Tensor, group: dict) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                m.mul_(group["beta"]).add_(g, alpha=1 - group["beta"])
                agreement = torch.sign(g) * torch.sign(m)
                p.add_(self._factor(agreement, group) * g, alpha=-group["lr"])
        return loss


class PowerSign(_SignOptimizer):
    """Δθ = −lr · base^{sign(g)·sign(m)} · g (Bello et al. 2017, f(t) = 1)."""

    def __init__(self, params: Iterable, lr: float, beta: float = 0.9, base: float = math.e):
        if not base > 0:
            raise ValueError(f"base must be > 0, got {base}")
        super().__init__(params, lr, beta, base=base)

    def _factor(self, agreement: torch.Tensor, group: dict) -> torch.Tensor:
        return torch.pow(group["base"], agreement)


class AddSign(_SignOptimizer):
    """Δθ = −lr · (alpha + sign(g)·sign(m)) · g (Bello et al. 2017, f(t) = 1)."""

    def __init__(self, params: Iterable, lr: float, beta: float = 0.9, alpha: float = 1.0):
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        super().__init__(params, lr, beta, alpha=alpha)

    def _factor(self, agreement: torch.Tensor, group: dict) -> torch.Tensor:
        return group["alpha"] + agreement
