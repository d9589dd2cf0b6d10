"""SimpleOptimizer ("Learning to Learn with Better Convergence", §3.1, §3.3, §4): a bias-free coordinatewise RNN.

Every coordinate of the optimizee runs the same vanilla RNN with 10 hidden units on its raw gradient (no
preprocessing, §4); the update is a bias-free linear map of the coordinate's hidden state next to the mean hidden
state of all coordinates of the same optimizee, [α·h_t, β·mean(h)] (§3.3). The reading that gives Table 1's 132
parameters is W_ih 10×1 + W_hh 10×10 + head 20×1 + α + β: only h_t recurs (feeding the 20-dimensional [α·h, β·mean]
back would need W_hh 10×20 and give 232). Ablation switches (Fig. 3): ``bias`` (RNN and head biases back),
``aggregate`` (no mean: head 10×1, no α, β). Where the paper is silent, ours: ``mean_over`` ("network": over every
coordinate of the optimizee, as §3.3's h_1..h_d of a d-dimensional problem reads; "tensor": per parameter tensor)
and the initialisation (``init``).
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..optimizers.update_rules import AdditiveRule, flatten_coordinates, unflatten_coordinates


class SimpleOptimizer(AdditiveRule):
    """θ_{t+1} = θ_t + u_t (Eq. 1) with h_t = tanh(W_ih g_t + W_hh h_{t−1}) per coordinate (§3.1, no bias) and
    u_t = W_out [α·h_t, β·mean_j h_t^(j)] (§3.3), the mean over the coordinates of the same optimizee only."""

    MEANS = ("network", "tensor")
    INITS = ("pytorch", "normal")

    def __init__(self, hidden_size: int = 10, bias: bool = False, aggregate: bool = True, mean_over: str = "network",
                 init: str = "pytorch", init_std: float = 0.1):
        super().__init__()
        if mean_over not in self.MEANS:
            raise ValueError(f"mean_over={mean_over!r}; allowed values are {list(self.MEANS)}")
        if init not in self.INITS:
            raise ValueError(f"init={init!r}; allowed values are {list(self.INITS)}")
        self.hidden_size, self.aggregate, self.mean_over = hidden_size, aggregate, mean_over
        self.cell = nn.RNNCell(1, hidden_size, bias=bias, nonlinearity="tanh")
        self.head = nn.Linear(2 * hidden_size if aggregate else hidden_size, 1, bias=bias)
        if aggregate:  # α, β start at 1: the head sees h and mean(h) as they are
            self.alpha = nn.Parameter(torch.ones(()))
            self.beta = nn.Parameter(torch.ones(()))
        if init == "normal":
            for weight in (self.cell.weight_ih, self.cell.weight_hh, self.head.weight):
                nn.init.normal_(weight, std=init_std)

    def initial_state(self, params, groups=None) -> dict:
        flat = flatten_coordinates(params)
        return {"h": flat.new_zeros(*flat.shape, self.hidden_size)}

    def _shared(self, h: torch.Tensor, like: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """W_out[H:] · mean(h) per optimizee (runs never mix): (runs, 1) for the whole network, else one value per
        parameter tensor broadcast over its coordinates (runs, coordinates)."""
        tail = self.head.weight[0, self.hidden_size:]
        if self.mean_over == "network":
            return (h.mean(dim=1) @ tail)[:, None]
        sizes = [v[0].numel() for v in like.values()]
        return torch.cat([(part.mean(dim=1) @ tail)[:, None].expand(-1, part.shape[1])
                          for part in h.split(sizes, dim=1)], dim=1)

    def forward(self, grads: Mapping[str, torch.Tensor], state: dict, groups=None) -> tuple[dict, dict]:
        g = flatten_coordinates(grads)
        runs, coords = g.shape
        h = self.cell(g.reshape(-1, 1), state["h"].reshape(-1, self.hidden_size)).view(runs, coords, self.hidden_size)
        # W_out [α h, β mean(h)] = α (h · W_out[:H]) + β (mean(h) · W_out[H:]): the same number without building the
        # (runs, coordinates, 2H) concatenation
        update = h @ self.head.weight[0, :self.hidden_size]
        if self.aggregate:
            update = self.alpha * update + self.beta * self._shared(h, grads)
        if self.head.bias is not None:
            update = update + self.head.bias
        return unflatten_coordinates(update, grads), {"h": h}


def update_times(rules: Mapping[str, AdditiveRule], params: dict, grads: dict, repeats: int = 5,
                 steps: int = 5, context=None) -> dict[str, np.ndarray]:
    """Table 1's "time per step": seconds per ``update`` of each rule on the same parameters and gradients, without
    a graph. The rules take turns inside every repeat (so a change of machine load touches all of them); one value
    per repeat, each the mean of ``steps`` updates after an untimed warm-up update. ``context`` goes to every rule
    (a context-aware rule such as MTL2L reads the minibatch from it)."""
    sync = torch.cuda.synchronize if next(iter(params.values())).is_cuda else (lambda: None)
    states = {name: rule.init(params, context) for name, rule in rules.items()}
    times = {name: [] for name in rules}
    with torch.no_grad():
        for name, rule in rules.items():
            rule.update(params, grads, states[name], 0, context)
        for _ in range(repeats):
            for name, rule in rules.items():
                sync()
                start = time.perf_counter()
                for t in range(steps):
                    _, states[name] = rule.update(params, grads, states[name], t, context)
                sync()
                times[name].append((time.perf_counter() - start) / steps)
    return {name: np.asarray(values) for name, values in times.items()}
