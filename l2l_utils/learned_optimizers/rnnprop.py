"""RNNProp (Lv, Jiang & Li 2017, "Learning gradient descent: better generalization and longer horizons"), the second
learned baseline of the SimpleOptimizer paper (§4, Table 1).

Coordinatewise: Adam-like inputs (g_t/√v̂_t, m̂_t/√v̂_t) with β₁ = β₂ = 0.95, a 2→20 linear layer with ELU, two LSTM
layers of 20 units, a 20→1 linear output and θ_{t+1} = θ_t − α·tanh(o_t) with α = 0.1. Lv et al. bias-correct the
moments as Adam does (m̂ = m/(1 − β₁^t), v̂ = v/(1 − β₂^t)) and add ε = 1e-8 after the square root (their public
code); so do we. With torch's LSTM cells (two bias vectors each) the rule has 60 + 2·3,360 + 21 = 6,801 parameters,
Table 1's count. Its training tricks: random scaling of the optimizee is
:class:`l2l_utils.tasks.problems.RandomlyScaledTask`, the combination with a convex function
:class:`l2l_utils.tasks.problems.ConvexMixedTask`.

Lv et al.'s paper does not say how the rule's parameters start; their public code (github.com/vfleaking/rnnprop,
TensorFlow 0.12) does, and ``init="authors"`` follows it: the two linear layers N(0, 0.1²) truncated at two standard
deviations with zero biases (``nn_opt/__init__.py``, ``weight_initializer``/``bias_initializer``), the LSTM weights
TF 0.12's default ``uniform_unit_scaling_initializer``, U(±√(3/fan_in)) with fan_in = input + hidden = 40, and zero
LSTM biases with TF's ``forget_bias=1`` added to the forget gate (here: in ``bias_ih``; ``bias_hh`` stays 0).
``init="pytorch"`` keeps torch's defaults, whose output bias U(±1/√20) alone gives every coordinate the same step
of up to 0.1·tanh(0.22) ≈ 0.022 whatever its gradient (about the median |θ0| of a 784-500 ReLU layer).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..optimizers.update_rules import AdditiveRule, flatten_coordinates, unflatten_coordinates
from .fused_cells import fused_weights, lstm_step


def adam_like_inputs(grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, beta1: float = 0.95,
                     beta2: float = 0.95, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the moment estimates and RNNProp's two inputs (Lv et al. §4): returns (inputs (..., 2), m, v),
    inputs = (g/(√v̂ + ε), m̂/(√v̂ + ε)) with the bias-corrected m̂ = m/(1 − β₁^step), v̂ = v/(1 − β₂^step), step ≥ 1."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    scale = torch.sqrt(v / (1 - beta2 ** step)) + eps
    return torch.stack((grad / scale, m / (1 - beta1 ** step) / scale), dim=-1), m, v


class RNNProp(AdditiveRule):
    """The RNNProp update rule (module docstring); ``init`` says how its parameters start ("pytorch": torch's
    defaults; "authors": Lv et al.'s public code, module docstring)."""

    INITS = ("pytorch", "authors")

    def __init__(self, hidden_size: int = 20, num_layers: int = 2, alpha: float = 0.1, beta1: float = 0.95,
                 beta2: float = 0.95, eps: float = 1e-8, init: str = "pytorch"):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f"init={init!r}; allowed values are {list(self.INITS)}")
        self.hidden_size, self.alpha, self.beta1, self.beta2, self.eps = hidden_size, alpha, beta1, beta2, eps
        self.embed = nn.Linear(2, hidden_size)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers))
        self.head = nn.Linear(hidden_size, 1)
        if init == "authors":
            self.authors_init_()

    @torch.no_grad()
    def authors_init_(self, std: float = 0.1, forget_bias: float = 1.0) -> "RNNProp":
        """Lv et al.'s start (module docstring), in place: linear weights N(0, std²) truncated at ±2·std, zero
        linear biases; LSTM weights U(±√(3/(input + hidden))), biases 0 but ``forget_bias`` on the forget gate."""
        for layer in (self.embed, self.head):
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(layer.bias)
        H = self.hidden_size
        for cell in self.cells:
            bound = (3.0 / (cell.input_size + H)) ** 0.5
            nn.init.uniform_(cell.weight_ih, -bound, bound)
            nn.init.uniform_(cell.weight_hh, -bound, bound)
            nn.init.zeros_(cell.bias_ih)
            nn.init.zeros_(cell.bias_hh)
            cell.bias_ih[H:2 * H] = forget_bias  # nn.LSTMCell's gate order: input, forget, candidate, output
        return self

    def initial_state(self, params, groups=None) -> dict:
        flat = flatten_coordinates(params)
        zeros = lambda: flat.new_zeros(self.hidden_size, flat.numel())  # noqa: E731 - feature-major (fused_cells)
        return {"step": 0, "m": torch.zeros_like(flat), "v": torch.zeros_like(flat),
                "lstm": [(zeros(), zeros()) for _ in self.cells]}

    def forward(self, grads: Mapping[str, torch.Tensor], state: dict, groups=None) -> tuple[dict, dict]:
        g = flatten_coordinates(grads)
        step = state["step"] + 1
        inputs, m, v = adam_like_inputs(g, state["m"], state["v"], step, self.beta1, self.beta2, self.eps)
        x = F.elu(self.embed(inputs.reshape(-1, 2))).T  # (20, N): feature-major for the fused cells
        lstm = []
        for cell, (h, c) in zip(self.cells, state["lstm"]):
            h, c = lstm_step(x, h, c, *fused_weights(cell))  # nn.LSTMCell's equations, fused (l2l_utils.learned_optimizers.fused_cells)
            lstm.append((h, c))
            x = h
        update = -self.alpha * torch.tanh(torch.addmm(self.head.bias[:, None], self.head.weight, x)).view_as(g)
        return unflatten_coordinates(update, grads), {"step": step, "m": m, "v": v, "lstm": lstm}
