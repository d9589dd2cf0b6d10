"""Hand-designed baselines from ``torch.optim`` and their learning-rate tuning (Andrychowicz §3).

Hyperparameters other than the learning rate keep torch's defaults, which equal the Torch7 ``optim``
defaults the paper used (Adam β=(0.9, 0.999), ε=1e-8; RMSprop α=0.99, ε=1e-8; NAG momentum 0.9).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .sign_optimizers import AddSign, PowerSign
from .grid_search import search_grid
from .unroll import Unrolled, unroll
from .update_rules import TorchOptimizerRule

BASELINES: dict[str, Callable] = {
    "SGD": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "RMSprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "ADAM": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "NAG": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
}


# every torch.optim-style update rule the notebooks use; MetaMD (§5, App. A.7) adds SGD with momentum 0.9
# ("SGD-M") and Bello et al. (2017)'s PowerSign and AddSign (undecayed, default β/base/α; see sign_optimizers)
TORCH_OPTIMIZERS: dict[str, Callable] = {
    **BASELINES,
    "SGD-M": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "PowerSign": lambda params, lr: PowerSign(params, lr=lr),
    "AddSign": lambda params, lr: AddSign(params, lr=lr),
    "AdamW": lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.0),  # decay: AdamWRule
}


class AdamWRule(TorchOptimizerRule):
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2, "Adam with decoupled weight decay"), MetaMD's Table 2 baseline:
    θ_t = θ_{t−1} − lr·(m̂_t / (√v̂_t + ε) + wd·θ_{t−1}) with Adam's moments of the loss gradient alone (no L2 term in
    the loss), via ``torch.optim.AdamW`` (β = (0.9, 0.999), ε = 1e-8; the schedule multiplier η_t of the paper is 1,
    and torch multiplies the decay by lr, as in L&H's Algorithm 2 with α folded into η_t).

    ``decoupled_weight_decay`` tells :func:`l2l_utils.evaluation.meta_test.train_runs` to hand the grid's weight
    decay to the optimizer (:meth:`with_weight_decay`) instead of adding ½·wd·‖θ‖² to the loss."""

    decoupled_weight_decay = True

    def __init__(self, lr: float, weight_decay: float = 0.0):
        self.lr, self.weight_decay = lr, weight_decay
        super().__init__(lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay))

    def with_weight_decay(self, weight_decay: float) -> "AdamWRule":
        return AdamWRule(self.lr, weight_decay)


def make_baseline(name: str, lr: float) -> Callable:
    """A factory ``params -> torch.optim.Optimizer`` for baseline ``name`` at learning rate ``lr``."""
    if name not in TORCH_OPTIMIZERS:
        raise ValueError(f"unknown baseline {name!r}; allowed values are {sorted(TORCH_OPTIMIZERS)}")
    return lambda params: TORCH_OPTIMIZERS[name](params, lr)


def baseline_rule(name: str, lr: float) -> TorchOptimizerRule:
    """Baseline ``name`` at learning rate ``lr`` as an update rule of the shared interface ("AdamW": its weight decay
    is decoupled, :class:`AdamWRule`)."""
    if name == "AdamW":
        return AdamWRule(lr)
    return TorchOptimizerRule(make_baseline(name, lr))


def run_baseline(name: str, lr: float, problem, steps: int, hook=None) -> Unrolled:
    return unroll(baseline_rule(name, lr), problem, steps, hook=hook)


def tune_learning_rate(name: str, learning_rates: Sequence[float], make_problem: Callable[[], object],
                       steps: int, max_extensions: int = 0) -> tuple[float, pd.DataFrame]:
    """Pick the learning rate with the best (lowest) mean final loss, as the paper does (§3).

    ``make_problem`` returns the same tuning problems at every call (same θ0 and minibatches), so all
    rates are compared on common random numbers. A rate under which any run diverges scores +inf. With
    ``max_extensions`` > 0 a best rate at the edge of the grid extends it (:func:`~.grid_search.search_grid`); the
    table has one row per rate tried (``extended`` marks those beyond the grid).
    """
    def mean_final(lr):
        final = run_baseline(name, lr, make_problem(), steps).final
        return float(np.mean(final)) if np.all(np.isfinite(final)) else float("inf")

    result = search_grid(mean_final, learning_rates, max_extensions)
    table = pd.DataFrame([{"optimizer": name, "lr": lr, "mean_final_loss": score, "extended": lr in result.extended}
                          for lr, score in result.scores.items()])
    if not np.isfinite(table["mean_final_loss"]).any():
        return float(learning_rates[0]), table
    return float(result.best), table
