"""Global averaging cells (Andrychowicz et al. 2016, App. D): the LSTM+GAC optimizer.

A coordinatewise network whose layers each designate their last ``gac`` cells for communication: those cells
"operate like normal LSTM cells, but their outgoing activations are averaged at each step across all coordinates"
(App. D). The average is over the coordinates of one optimizee (one run of a batch), never across runs. The averaged
activation is what the next layer and the cell's own recurrent input at the next step see; the cell memory c stays
per coordinate (App. D does not say; ours).

:class:`GlobalAveragingRule` is the architecture with any coordinatewise layers; :func:`lstm_gac` builds the learned
LSTM+GAC (two LSTM layers of 20 cells, as every optimizer of §3). :func:`gradient_clipping_cells` is App. D's
constructive statement: with hand-set cell functions (one cell computes the square of the gradient, App. D's
assumption, and is a GAC) the rule's update is -lr · clip-by-global-L2-norm(∇) (Bengio et al. 2013).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..optimizers.update_rules import AdditiveRule, flatten_coordinates, unflatten_coordinates
from .lstm_optimizer import CoordinatewiseLSTM, preprocess_gradient


def average_cells(h: torch.Tensor, gac: int) -> torch.Tensor:
    """h (runs, coordinates, cells) with its last ``gac`` cells replaced by their mean over the coordinates."""
    if gac == 0:
        return h
    shared = h[..., -gac:].mean(dim=1, keepdim=True).expand(-1, h.shape[1], -1)
    return torch.cat([h[..., :-gac], shared], dim=-1)


def gradient_features(flat: torch.Tensor, preprocess_p: float | None) -> torch.Tensor:
    """(runs, coordinates) gradients -> (runs, coordinates, features): raw (§3.1) or App. A preprocessed (§3.2)."""
    return flat.unsqueeze(-1) if preprocess_p is None else preprocess_gradient(flat, preprocess_p)


def initial_layer_state(layers, runs: int, coords: int, device=None, dtype=None) -> list:
    """(h, inner) of every layer: h zeros (runs, coordinates, cells), inner the layer's own start."""
    return [(torch.zeros(runs, coords, layer.hidden_size, device=device, dtype=dtype),
             layer.initial_inner(runs, coords, device, dtype)) for layer in layers]


def run_layers(layers, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
    """The coordinatewise layers on features x (runs, coordinates, ·), each layer's GACs averaged over the
    coordinates (:func:`average_cells`): the last layer's output and the new state."""
    new_state = []
    for layer, (h, inner) in zip(layers, state):
        h, inner = layer(x, h, inner)
        h = average_cells(h, layer.gac)
        new_state.append((h, inner))
        x = h
    return x, new_state


class LSTMLayer(nn.Module):
    """One coordinatewise LSTM layer (``nn.LSTMCell``, weights shared by all coordinates) whose last ``gac`` cells
    are global averaging cells. ``forward(x, h, c)`` on (runs, coordinates, ·) tensors returns (h, c) before
    averaging (:class:`GlobalAveragingRule` averages)."""

    def __init__(self, input_size: int, hidden_size: int, gac: int):
        super().__init__()
        if not 0 <= gac <= hidden_size:
            raise ValueError(f"gac={gac} global averaging cells in a layer of {hidden_size}")
        self.cell, self.hidden_size, self.gac = nn.LSTMCell(input_size, hidden_size), hidden_size, gac

    def initial_inner(self, runs: int, coords: int, device=None, dtype=None):
        return torch.zeros(runs, coords, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x, h, c):
        runs, coords = x.shape[:2]
        h, c = self.cell(x.reshape(runs * coords, -1), (h.reshape(runs * coords, -1), c.reshape(runs * coords, -1)))
        return h.view(runs, coords, -1), c.view(runs, coords, -1)


class GlobalAveragingRule(AdditiveRule):
    """θ ← θ + u: ``layers`` of coordinatewise cells (each with ``hidden_size``, ``gac`` and ``initial_inner``;
    ``forward(x, h_prev, inner) -> (h, inner)``), the last ``gac`` outputs of each layer averaged over the
    coordinates of each run (App. D), then ``head`` maps the last layer's output (runs, coordinates, cells) to the
    update (runs, coordinates), multiplied by ``output_scale``. All parameter tensors of one run are one vector of
    coordinates (the average runs over all of them; parameter groups are not used)."""

    def __init__(self, layers, head: nn.Module, preprocess_p: float | None = None, output_scale: float = 1.0):
        super().__init__()
        self.layers, self.head = nn.ModuleList(layers), head
        self.preprocess_p, self.output_scale = preprocess_p, output_scale

    def initial_state(self, params, groups=None):
        some = next(iter(params.values()))
        coords = sum(v[0].numel() for v in params.values())
        return initial_layer_state(self.layers, some.shape[0], coords, some.device, some.dtype)

    def forward(self, grads, state, groups=None):
        flat = flatten_coordinates(grads)
        out, state = run_layers(self.layers, gradient_features(flat, self.preprocess_p), state)
        return unflatten_coordinates(self.head(out).squeeze(-1) * self.output_scale, grads), state


def lstm_layers(input_size: int, hidden_size: int = 20, num_layers: int = 2, gac: int = 5) -> list:
    """``num_layers`` LSTM layers of ``hidden_size`` cells, the last ``gac`` of each layer global averaging cells."""
    return [LSTMLayer(input_size if i == 0 else hidden_size, hidden_size, gac) for i in range(num_layers)]


def gaussian_init(module: nn.Module, init_std: float | None, init: str, head: nn.Linear) -> None:
    """The optimizer's own start, as :class:`CoordinatewiseLSTM`'s ``init``: every parameter N(0, init_std²)
    ("normal"), the same with ``head``'s bias at 0 ("normal-zero-head-bias"), or PyTorch's default ("pytorch")."""
    if init not in CoordinatewiseLSTM.INITS:
        raise ValueError(f"init={init!r}; allowed values are {list(CoordinatewiseLSTM.INITS)}")
    if init_std is not None and init != "pytorch":
        for weight in module.parameters():
            nn.init.normal_(weight, std=init_std)
    if init == "normal-zero-head-bias":
        nn.init.zeros_(head.bias)


def lstm_gac(hidden_size: int = 20, num_layers: int = 2, gac: int = 5, preprocess_p: float | None = 10.0,
             output_scale: float = 1.0, init_std: float | None = 0.1, init: str = "normal") -> GlobalAveragingRule:
    """The learned LSTM+GAC optimizer: ``num_layers`` LSTM layers of ``hidden_size`` cells, the last ``gac`` of
    each layer global averaging cells, a linear head; initialised as :class:`CoordinatewiseLSTM` (``init``)."""
    layers = lstm_layers(1 if preprocess_p is None else 2, hidden_size, num_layers, gac)
    rule = GlobalAveragingRule(layers, nn.Linear(hidden_size, 1), preprocess_p, output_scale)
    gaussian_init(rule, init_std, init, rule.head)
    return rule


class _SquareCells(nn.Module):
    """Hand-set layer of two cells: (∇_k, ∇_k²); the second is a GAC (App. D: "each LSTM can compute the square of
    the gradient")."""

    hidden_size, gac = 2, 1

    def initial_inner(self, runs, coords, device=None, dtype=None):
        return torch.zeros(0, device=device, dtype=dtype)

    def forward(self, x, h, inner):
        g = x[..., :1]
        return torch.cat([g, g * g], dim=-1), inner


class _ClipHead(nn.Module):
    """Hand-set head: u_k = -lr · ∇_k · min(1, max_norm / ||∇||), with ||∇||² = N · mean_k ∇_k² read from the GAC
    (N, the number of coordinates, is a constant of the hand-set function: the average, not the sum, is shared)."""

    def __init__(self, max_norm: float, lr: float, num_coords: int):
        super().__init__()
        self.max_norm, self.lr, self.num_coords = max_norm, lr, num_coords

    def forward(self, h):
        if h.shape[1] != self.num_coords:
            raise ValueError(f"hand-set for {self.num_coords} coordinates, got {h.shape[1]}")
        g, mean_square = h[..., 0], h[..., 1]
        norm = torch.sqrt(self.num_coords * mean_square)
        return (-self.lr * g * torch.clamp(self.max_norm / norm.clamp_min(1e-30), max=1.0)).unsqueeze(-1)


def gradient_clipping_cells(max_norm: float, num_coords: int, lr: float = 1.0) -> GlobalAveragingRule:
    """App. D's statement by construction: an LSTM+GAC-shaped rule with hand-set cell functions whose update is
    -lr · ∇ · min(1, max_norm / ||∇||₂), L2 gradient clipping by the global norm of each run's gradient."""
    if not (max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be positive and finite, got {max_norm}")
    return GlobalAveragingRule([_SquareCells()], _ClipHead(max_norm, lr, num_coords), preprocess_p=None)
