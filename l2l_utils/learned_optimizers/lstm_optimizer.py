"""Learned update rules θ ← θ + u, (u, state) = m(∇, state) (:class:`l2l_utils.optimizers.update_rules.AdditiveRule`).

``CoordinatewiseLSTM`` is the LSTM optimizer of Andrychowicz et al. 2016 (§2.1, Fig. 3): a
two-layer LSTM with 20 hidden units per layer whose weights are shared by every coordinate of the
optimizee while each coordinate keeps its own hidden state. ``LSTMOptimizer`` applies one such
network per parameter group (one group in §3.1-3.2; conv and fully connected groups in §3.3).
``PerParameterLearningRates`` is Meta-SGD's rule (the MetaMD paper's baseline).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..optimizers.update_rules import AdditiveRule
from .fused_cells import fused_weights, lstm_step

State = dict  # group name -> list of (h, c) per LSTM layer, each (hidden, coordinates)


def preprocess_gradient(grad: torch.Tensor, p: float = 10.0, dim: int = -1) -> torch.Tensor:
    """Appendix A: ∇ -> (log|∇|/p, sgn ∇) if |∇| >= e^-p, else (-1, e^p ∇). The pair is stacked along ``dim``:
    shape (..., 2) by default, (2, N) with ``dim=0`` for a feature-major cell."""
    threshold = math.exp(-p)
    big = grad.abs() >= threshold
    log_part = torch.where(big, torch.log(grad.abs().clamp_min(threshold)) / p, torch.full_like(grad, -1.0))
    sign_part = torch.where(big, torch.sign(grad), grad * math.exp(p))
    return torch.stack((log_part, sign_part), dim=dim)


class CoordinatewiseLSTM(nn.Module):
    """m(∇_t, h_t, φ) of Eq. 3 for a flat vector of coordinates (each coordinate is a batch row).

    ``preprocess_p=None`` feeds the raw gradient (one input, §3.1); a number applies Appendix A
    preprocessing (two inputs). ``input_scale`` multiplies the raw gradient by a constant (§2.1 and Appendix A's
    alternative to preprocessing, "rescaling all inputs by an appropriate constant"; only with
    ``preprocess_p=None``). The linear output is multiplied by ``output_scale`` (0.1 in §3.2).

    The paper does not say how the optimizer's own parameters start. ``init``: ``"normal"`` draws every parameter
    from N(0, init_std²); ``"normal-zero-head-bias"`` does the same but starts the output bias at 0 (a non-zero one
    moves every coordinate of the optimizee the same way at every step); ``"pytorch"`` keeps PyTorch's default
    U(±1/√hidden). The L2L notebook compares them and picks one with its numbers.
    """

    INITS = ("normal", "normal-zero-head-bias", "pytorch")

    def __init__(self, hidden_size: int = 20, num_layers: int = 2, preprocess_p: float | None = 10.0,
                 output_scale: float = 1.0, init_std: float | None = 0.1, init: str = "normal",
                 input_scale: float = 1.0):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f"init={init!r}; allowed values are {list(self.INITS)}")
        if not (math.isfinite(float(input_scale)) and input_scale > 0):
            raise ValueError(f"input_scale={input_scale!r}; it must be a finite positive number")
        if input_scale != 1 and preprocess_p is not None:
            raise ValueError(f"input_scale={input_scale!r} rescales the raw gradient; with Appendix A "
                             f"preprocessing (preprocess_p={preprocess_p!r}) it must be 1 (set preprocess_p=None)")
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.preprocess_p, self.output_scale, self.input_scale = preprocess_p, output_scale, float(input_scale)
        input_size = 1 if preprocess_p is None else 2
        self.cells = nn.ModuleList(
            nn.LSTMCell(input_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers))
        self.head = nn.Linear(hidden_size, 1)
        if init_std is not None and init != "pytorch":  # §3: "sampled from an IID Gaussian distribution"
            for weight in self.parameters():
                nn.init.normal_(weight, std=init_std)
        if init == "normal-zero-head-bias":
            nn.init.zeros_(self.head.bias)

    def initial_state(self, num_coords: int, device=None, dtype=None) -> list:
        """(h, c) of every layer, feature-major: (hidden, coordinates) (:mod:`l2l_utils.learned_optimizers.fused_cells`)."""
        zeros = lambda: torch.zeros(self.hidden_size, num_coords, device=device, dtype=dtype)  # noqa: E731
        return [(zeros(), zeros()) for _ in range(self.num_layers)]

    def _scaled(self, grad: torch.Tensor) -> torch.Tensor:
        return grad if self.input_scale == 1 else grad * self.input_scale

    def forward(self, grad: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """The update of every coordinate of ``grad`` (N,) and the new state: the equations of ``nn.LSTMCell`` on the
        cells' own parameters, computed feature-major and fused (:mod:`l2l_utils.learned_optimizers.fused_cells`)."""
        x = (self._scaled(grad).unsqueeze(0) if self.preprocess_p is None
             else preprocess_gradient(grad, self.preprocess_p, dim=0))
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = lstm_step(x, h, c, *fused_weights(cell))
            new_state.append((h, c))
            x = h
        return torch.addmm(self.head.bias[:, None], self.head.weight, x)[0] * self.output_scale, new_state


class UnfusedCoordinatewiseLSTM(CoordinatewiseLSTM):
    """The same optimizer computed the way it was before the fused cell: ``nn.LSTMCell`` on (coordinates, features)
    rows, then the head. Kept as the reference the fused cell is tested and benchmarked against."""

    def initial_state(self, num_coords: int, device=None, dtype=None) -> list:
        zeros = lambda: torch.zeros(num_coords, self.hidden_size, device=device, dtype=dtype)  # noqa: E731
        return [(zeros(), zeros()) for _ in range(self.num_layers)]

    def forward(self, grad: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        x = (self._scaled(grad).unsqueeze(-1) if self.preprocess_p is None
             else preprocess_gradient(grad, self.preprocess_p))
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        return self.head(x).squeeze(-1) * self.output_scale, new_state


class LSTMOptimizer(AdditiveRule):
    """One ``CoordinatewiseLSTM`` per parameter group; updates dicts of (batched) parameters.

    ``groups`` maps each optimizee parameter name to a group name (e.g. ``"conv"``/``"fc"`` in §3.3);
    all coordinates of a group (of all optimizees in the batch) are concatenated and run as one batch.
    ``unfused=True`` computes it with :class:`UnfusedCoordinatewiseLSTM` (the reference; same parameters).
    """

    def __init__(self, group_names=("all",), unfused: bool = False, **lstm_kwargs):
        super().__init__()
        net = UnfusedCoordinatewiseLSTM if unfused else CoordinatewiseLSTM
        self.nets = nn.ModuleDict({name: net(**lstm_kwargs) for name in group_names})

    def _members(self, tensors: Mapping[str, torch.Tensor], groups: Mapping[str, str] | None) -> dict:
        members: dict[str, list[str]] = {name: [] for name in self.nets}
        for key in tensors:
            group = groups[key] if groups is not None else next(iter(self.nets))
            if group not in members:
                raise KeyError(f"parameter {key!r} is in group {group!r}, which has no LSTM "
                               f"(groups: {list(self.nets)})")
            members[group].append(key)
        return members

    def initial_state(self, params: Mapping[str, torch.Tensor], groups: Mapping[str, str] | None = None) -> State:
        members = self._members(params, groups)
        state = {}
        for group, keys in members.items():
            if keys:
                some = params[keys[0]]
                state[group] = self.nets[group].initial_state(sum(params[k].numel() for k in keys),
                                                              some.device, some.dtype)
        return state

    def forward(self, grads: Mapping[str, torch.Tensor], state: State,
                groups: Mapping[str, str] | None = None) -> tuple[dict, State]:
        members = self._members(grads, groups)
        updates, new_state = {}, {}
        for group, keys in members.items():
            if not keys:
                continue
            flat = torch.cat([grads[k].reshape(-1) for k in keys])
            out, new_state[group] = self.nets[group](flat, state[group])
            for key, chunk in zip(keys, out.split([grads[k].numel() for k in keys])):
                updates[key] = chunk.view_as(grads[key])
        return updates, new_state


def detach_state(state):
    """Cut the graph between truncations of truncated BPTT (§2): every tensor of a rule's state detached (the LSTM's
    {group: [(h, c), ...]}, or any other nesting of dicts, lists and tuples)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(v) for v in state)
    return state


class PerParameterLearningRates(AdditiveRule):
    """Meta-SGD's update rule (Li et al. 2017), the MetaMD paper's Meta-SGD baseline: θ ← θ − α ⊙ ∇L with a
    learned learning rate α for every parameter (initialised to ``init_lr``); no initialisation is learned."""

    def __init__(self, shapes: Mapping[str, torch.Size], init_lr: float = 0.1):
        super().__init__()
        self.keys = {name: name.replace(".", "__") for name in shapes}
        self.rates = nn.ParameterDict({key: nn.Parameter(torch.full(tuple(shapes[name]), float(init_lr)))
                                       for name, key in self.keys.items()})

    def initial_state(self, params, groups=None) -> State:
        return {}

    def forward(self, grads: Mapping[str, torch.Tensor], state: State, groups=None) -> tuple[dict, State]:
        return {k: -self.rates[self.keys[k]] * g for k, g in grads.items()}, state

    def transfer(self, shapes: Mapping[str, torch.Size]) -> "PerParameterLearningRates":
        """The learned rates for a network with other tensor sizes (MetaMD §5.2, high resolution: 20-class
        meta-training tasks, other class counts at meta-test; ours, the paper does not say): a tensor of the same
        shape keeps its rates; one whose first (output) dimension differs gets its rates averaged over that
        dimension, as its rows were random classes; any other mismatch gets the tensor's mean rate."""
        new = PerParameterLearningRates(shapes).to(next(self.parameters()).device)
        with torch.no_grad():
            for name, key in new.keys.items():
                target = new.rates[key]
                old = self.rates[self.keys[name]] if name in self.keys else None
                if old is not None and old.shape == target.shape:
                    target.copy_(old)
                elif old is not None and old.dim() > 0 and old.shape[1:] == target.shape[1:]:
                    target.copy_(old.mean(0, keepdim=True).expand_as(target))
                else:
                    target.fill_(float(old.mean()) if old is not None else float(self.mean_rate()))
        return new

    def mean_rate(self) -> torch.Tensor:
        """The mean learned rate over all parameters."""
        return torch.cat([r.reshape(-1) for r in self.rates.values()]).mean()
