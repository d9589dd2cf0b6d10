"""NTM-BFGS and NTM-L-BFGS (Andrychowicz et al. 2016, App. D, Fig. 14-15).

An LSTM+GAC controller (:mod:`l2l_utils.learned_optimizers.global_averaging`) with an external memory M shared by
the coordinates of one optimizee (an N×N matrix per run, "the inverse Hessian approximation"). At every step each
coordinate's controller emits its component of a read vector r (one per read head) and of a left and right write
vector a, b (one pair per write head). The operations are global across coordinates (Fig. 14):

* write: M ← M + Σ_heads a bᵀ (a low-rank update, accumulated outer products),
* read:  i = M r (a matrix-vector product), "fed back into the controller at the following time step".

Our choices where App. D is silent (its Fig. 15 is not in the text we have): within a step the writes come before
the read; the update of a coordinate is a coordinatewise function of the controller's output and of the read result
of the same step (learned: a linear map of [h, i]), so the update reaches θ through the memory; M starts at
``memory_init`` · I. NTM-L-BFGS keeps, instead of M, a sliding history of the last ``memory_size`` write pairs:
M = memory_init · I + Σ_{kept} a bᵀ, read without forming M (App. D, "NTM-L-BFGS optimizer").

:func:`bfgs_controller` is App. D's constructive statement: one read head, three write heads, two GACs and hand-set
coordinatewise functions make the rule take inverse-Hessian BFGS steps θ ← θ − H∇f(θ) (the unit step of App. D's
skeleton, read(M, θ) = −M∇f(θ)). Because a read result is only seen at the next step, one BFGS iteration takes two
steps of the rule: step A reads H_{k−1}y_{k−1} (θ unchanged), step B writes the three rank-one terms of the BFGS
update and steps along −H_k∇f(θ_k). With the NTM-L-BFGS memory holding 3 write pairs (one step's writes) the same
controller is L-BFGS with history 1 (step A's empty writes push the older pair out before H y is read, so H y = H_0 y);
with a longer history it is not L-BFGS, whose two-loop recursion recomputes every kept pair's term from H_0 at each
iteration, while the sliding history keeps the write vectors as they were written (App. D claims no equivalence;
6m − 3 write pairs hold m BFGS pairs' writes, the notebook measures the gap).
"""

from __future__ import annotations

import torch
from torch import nn

from ..optimizers.update_rules import AdditiveRule, flatten_coordinates, unflatten_coordinates
from .global_averaging import gaussian_init, gradient_features, initial_layer_state, lstm_layers, run_layers


class FullMemory:
    """M as a dense (runs, N, N) matrix starting at ``init`` · I (NTM-BFGS)."""

    def __init__(self, init: float = 1.0):
        self.init = init

    def initial(self, runs: int, coords: int, device=None, dtype=None) -> torch.Tensor:
        return self.init * torch.eye(coords, device=device, dtype=dtype).expand(runs, coords, coords).clone()

    @staticmethod
    def write(memory: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """M + Σ_heads a bᵀ; a, b (runs, N, heads)."""
        return memory + torch.einsum("rih,rjh->rij", a, b)

    @staticmethod
    def read(memory: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """M r for each read head; r (runs, N, heads) -> (runs, N, heads)."""
        return torch.einsum("rij,rjh->rih", memory, r)


class HistoryMemory:
    """M = ``init`` · I + Σ a bᵀ over the last ``size`` write pairs, kept as a sliding history (NTM-L-BFGS):
    (left, right) vectors (runs, N, size), the oldest dropped when a new pair comes in."""

    def __init__(self, size: int, init: float = 1.0):
        if size < 1:
            raise ValueError(f"memory size must be at least 1 write pair, got {size}")
        self.size, self.init = size, init

    def initial(self, runs: int, coords: int, device=None, dtype=None) -> tuple:
        zeros = torch.zeros(runs, coords, self.size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def write(self, memory: tuple, a: torch.Tensor, b: torch.Tensor) -> tuple:
        left, right = memory
        return torch.cat([left, a], -1)[..., -self.size:], torch.cat([right, b], -1)[..., -self.size:]

    def read(self, memory: tuple, r: torch.Tensor) -> torch.Tensor:
        left, right = memory
        return self.init * r + torch.einsum("rip,rph->rih", left, torch.einsum("rjp,rjh->rph", right, r))


class NTMBFGS(AdditiveRule):
    """θ ← θ + u with a controller (coordinatewise ``layers`` with GACs, input [features(∇), i_{t−1}]), ``heads``
    (controller output -> r (reads), a (writes), b (writes) per coordinate), ``memory`` (:class:`FullMemory` or
    :class:`HistoryMemory`) and ``output`` (controller output, read result -> update per coordinate), times
    ``output_scale``. All parameter tensors of a run are one vector of coordinates sharing one memory."""

    def __init__(self, layers, heads: nn.Module, output: nn.Module, memory, reads: int = 1, writes: int = 3,
                 preprocess_p: float | None = None, output_scale: float = 1.0):
        super().__init__()
        self.layers, self.heads, self.output = nn.ModuleList(layers), heads, output
        self.memory, self.reads, self.writes = memory, reads, writes
        self.preprocess_p, self.output_scale = preprocess_p, output_scale

    def initial_state(self, params, groups=None):
        some = next(iter(params.values()))
        runs, coords, kw = some.shape[0], sum(v[0].numel() for v in params.values()), dict(device=some.device,
                                                                                            dtype=some.dtype)
        return {"controller": initial_layer_state(self.layers, runs, coords, **kw),
                "read": torch.zeros(runs, coords, self.reads, **kw),
                "memory": self.memory.initial(runs, coords, **kw)}

    def forward(self, grads, state, groups=None):
        flat = flatten_coordinates(grads)
        x = torch.cat([gradient_features(flat, self.preprocess_p), state["read"]], dim=-1)
        h, controller = run_layers(self.layers, x, state["controller"])
        r, a, b = self.heads(h).split([self.reads, self.writes, self.writes], dim=-1)
        memory = self.memory.write(state["memory"], a, b)
        read = self.memory.read(memory, r)
        update = self.output(h, read) * self.output_scale
        return unflatten_coordinates(update, grads), {"controller": controller, "read": read, "memory": memory}


class _LinearOutput(nn.Module):
    """The learned update: a linear map of the controller output and the read result, [h, i] -> u."""

    def __init__(self, hidden_size: int, reads: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size + reads, 1)

    def forward(self, h, read):
        return self.linear(torch.cat([h, read], dim=-1)).squeeze(-1)


def ntm_bfgs(hidden_size: int = 20, num_layers: int = 2, gac: int = 5, reads: int = 1, writes: int = 3,
             memory_size: int | None = None, memory_init: float = 1.0, preprocess_p: float | None = 10.0,
             output_scale: float = 1.0, init_std: float | None = 0.1, init: str = "normal") -> NTMBFGS:
    """The learned NTM-BFGS (``memory_size=None``: the full N×N memory) or NTM-L-BFGS (a history of
    ``memory_size`` write pairs): an LSTM+GAC controller with ``reads`` read and ``writes`` write heads (linear maps
    of the controller output), initialised as :class:`CoordinatewiseLSTM` (``init``)."""
    inputs = (1 if preprocess_p is None else 2) + reads
    memory = FullMemory(memory_init) if memory_size is None else HistoryMemory(memory_size, memory_init)
    output = _LinearOutput(hidden_size, reads)
    rule = NTMBFGS(lstm_layers(inputs, hidden_size, num_layers, gac), nn.Linear(hidden_size, reads + 2 * writes),
                   output, memory, reads, writes, preprocess_p, output_scale)
    gaussian_init(rule, init_std, init, output.linear)
    return rule


# ------------------------------------------------------------------------------------ App. D's construction
class _BFGSCells(nn.Module):
    """Hand-set controller layer. Input [∇_k, i_k] (i: the read result of the previous step); inner state per
    coordinate [step count, ∇ of the previous iteration, s, y]. Output [phase, valid, ∇_k, s_k, y_k, (Hy)_k,
    s_k·y_k, y_k·(Hy)_k], the last two global averaging cells (App. D: "access to 2 GACs").

    Step A (even step, iteration k ≥ 1): s = −step · i (the read of the previous step B was H∇, the step taken),
    y = ∇_k − ∇_{k−1}; both kept. Step B: (Hy) = i, the read of step A."""

    hidden_size, gac = 8, 2

    def __init__(self, step: float):
        super().__init__()
        self.step = step

    def initial_inner(self, runs, coords, device=None, dtype=None):
        return torch.zeros(runs, coords, 4, device=device, dtype=dtype)

    def forward(self, x, h, inner):
        g, read = x[..., 0], x[..., 1]
        count, g_prev, s, y = inner.unbind(-1)
        phase_b = torch.remainder(count, 2)  # 0: step A, 1: step B
        valid = (count >= 2).to(g.dtype)  # iteration k >= 1: there is a pair (s_{k-1}, y_{k-1})
        s = torch.where(phase_b == 0, -self.step * read, s)
        y = torch.where(phase_b == 0, g - g_prev, y)
        hy = torch.where(phase_b == 1, read, torch.zeros_like(read))
        out = torch.stack([phase_b, valid, g, s, y, hy, s * y, y * hy], dim=-1)
        g_prev = torch.where(phase_b == 1, g, g_prev)
        return out, torch.stack([count + 1, g_prev, s, y], dim=-1)


class _BFGSHeads(nn.Module):
    """Hand-set heads. Step A: read r = y (to get H_{k−1}y), no write. Step B: the BFGS inverse-Hessian update
    H⁺ = (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ, ρ = 1/(sᵀy), written as three rank-one terms
    −ρ s (Hy)ᵀ − ρ (Hy) sᵀ + (ρ² yᵀHy + ρ) s sᵀ, with sᵀy = N·mean(s·y) and yᵀHy = N·mean(y·Hy) from the GACs;
    then read r = ∇_k. N, the number of coordinates, is a constant of the hand-set functions. The update is skipped
    when sᵀy ≤ 0 (e.g. s = 0 at convergence; never otherwise on a convex quadratic)."""

    def __init__(self, num_coords: int):
        super().__init__()
        self.num_coords = num_coords

    def forward(self, h):
        if h.shape[1] != self.num_coords:
            raise ValueError(f"hand-set for {self.num_coords} coordinates, got {h.shape[1]}")
        phase_b, valid, g, s, y, hy, sy, yhy = h.unbind(-1)
        write = phase_b * valid * (sy > 0).to(sy.dtype)  # sᵀy = 0 once converged (s = 0): no update, as BFGS skips it
        rho = write / torch.where(write > 0, self.num_coords * sy, torch.ones_like(sy))
        a = torch.stack([-rho * s, -rho * hy, (rho * rho * self.num_coords * yhy + rho) * s], dim=-1)
        b = torch.stack([hy, s, s], dim=-1) * write.unsqueeze(-1)
        r = torch.where(phase_b == 1, g, y * valid).unsqueeze(-1)
        return torch.cat([r, a, b], dim=-1)


class _BFGSOutput(nn.Module):
    """Hand-set update: −step · i at step B (i = H_k∇_k, read in the same step), 0 at step A."""

    def __init__(self, step: float):
        super().__init__()
        self.step = step

    def forward(self, h, read):
        return -self.step * read[..., 0] * h[..., 0]


def bfgs_controller(num_coords: int, step: float = 1.0, initial_inverse_hessian: float = 1.0,
                    memory_size: int | None = None) -> NTMBFGS:
    """App. D's statement by construction: NTM-BFGS with one read head, three write heads, two GACs and hand-set
    coordinatewise functions; every two steps it takes one inverse-Hessian BFGS step θ ← θ − step · H∇f(θ) with
    H_0 = ``initial_inverse_hessian`` · I. With ``memory_size`` (write pairs kept) it is the NTM-L-BFGS memory."""
    memory = (FullMemory(initial_inverse_hessian) if memory_size is None
              else HistoryMemory(memory_size, initial_inverse_hessian))
    return NTMBFGS([_BFGSCells(step)], _BFGSHeads(num_coords), _BFGSOutput(step), memory, reads=1, writes=3)
