"""The coordinatewise LSTM cell in a fused, feature-major layout: the hot loop of every learned optimizer.

A learned optimizer runs one small LSTM on every coordinate of the optimizee (tens of thousands of rows of width 20).
Stored the usual way, (coordinates, features), the four gates are interleaved column blocks: every activation then
runs over strided slices, and PyTorch's ``nn.LSTMCell`` spends more time in those element-wise passes than in its
matrix products. Here the state is **feature-major**, (features, coordinates): the gate pre-activations of all
coordinates come from one matrix product over the concatenated [input; hidden] rows, the three sigmoid gates are one
contiguous block and the candidate another, so each activation is one pass over contiguous memory, and the backward
of the element-wise part is written out (:class:`LSTMPointwise`) so that no zero-filled slice gradients are made.
The numbers are those of ``nn.LSTMCell`` (same parameters, same equations; float32 sums in another order).

With ``L2L_COMPILE=1`` the element-wise part is compiled by ``torch.compile`` into fused loops (CPU and CUDA); if
compilation is unavailable (no compiler, an unsupported platform) it falls back to eager once, with a warning. Off
by default: compiling costs tens of seconds per process, more than a smoke run saves. First-order only: the written
out backward is not itself differentiable (every learned optimizer here is meta-trained first order).
"""

from __future__ import annotations

import os
import warnings

import torch
from torch.autograd.function import once_differentiable


def compile_requested() -> bool:
    """Whether ``L2L_COMPILE`` asks for compiled cells ("1", "true", "yes")."""
    return os.environ.get("L2L_COMPILE", "0").strip().lower() in ("1", "true", "yes")


def lstm_equations(gates: torch.Tensor, c: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates (..., 4H, N) in the order (input, forget, output, candidate) and c (..., H, N) -> (h, c):
    c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c') (written for autograd and for ``torch.compile``)."""
    H = hidden
    sig = gates[..., :3 * H, :].sigmoid()
    c = sig[..., H:2 * H, :] * c + sig[..., :H, :] * gates[..., 3 * H:, :].tanh()
    return sig[..., 2 * H:, :] * c.tanh(), c


class LSTMPointwise(torch.autograd.Function):
    """:func:`lstm_equations` with its backward written out: the gradient of all four gates is built in one
    (..., 4H, N) tensor, with no zero-filled slice gradients and the fewest passes over memory (eager mode)."""

    @staticmethod
    def forward(ctx, gates, c, hidden):
        H = hidden
        sig = gates[..., :3 * H, :].sigmoid()
        g = gates[..., 3 * H:, :].tanh()
        c_new = torch.addcmul(sig[..., H:2 * H, :] * c, sig[..., :H, :], g)
        tanh_c = c_new.tanh()
        ctx.hidden = H
        ctx.save_for_backward(sig, g, c, tanh_c)
        return sig[..., 2 * H:, :] * tanh_c, c_new

    @staticmethod
    @once_differentiable
    def backward(ctx, dh, dc_new):
        sig, g, c, tanh_c = ctx.saved_tensors
        H = ctx.hidden
        i, f, o = sig[..., :H, :], sig[..., H:2 * H, :], sig[..., 2 * H:, :]
        shape = list(c.shape)
        shape[-2] = 4 * H
        dgates = torch.empty(shape, dtype=c.dtype, device=c.device)
        if dh is None:
            dh = torch.zeros_like(c)
        dc = (dh * o).mul_(1 - tanh_c * tanh_c)
        if dc_new is not None:
            dc.add_(dc_new)
        torch.mul(dc, g, out=dgates[..., :H, :])  # ∂/∂i
        torch.mul(dc, c, out=dgates[..., H:2 * H, :])  # ∂/∂f
        torch.mul(dh, tanh_c, out=dgates[..., 2 * H:3 * H, :])  # ∂/∂o
        dgates[..., :3 * H, :].mul_(sig * (1 - sig))  # through the three sigmoids at once
        torch.mul(dc, i, out=dgates[..., 3 * H:, :])
        dgates[..., 3 * H:, :].mul_(1 - g * g)  # through tanh
        return dgates, dc * f, None


_compiled = {"fn": None, "failed": False}


def lstm_pointwise(gates: torch.Tensor, c: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The element-wise part of an LSTM step, feature-major (see :func:`lstm_equations`): eager by default
    (:class:`LSTMPointwise`), compiled into fused loops with ``L2L_COMPILE=1`` (falling back to eager, with a
    warning, where compiling is impossible)."""
    if compile_requested() and not _compiled["failed"]:
        if _compiled["fn"] is None:
            _compiled["fn"] = torch.compile(lstm_equations, dynamic=True)
        try:
            return _compiled["fn"](gates, c, hidden)
        except Exception as error:  # noqa: BLE001 - any compiler failure falls back to the same eager numbers
            _compiled["failed"] = True
            warnings.warn(f"torch.compile unavailable ({type(error).__name__}: {error}); using eager cells")
    return LSTMPointwise.apply(gates, c, hidden)


def torch_to_fused_order(hidden: int) -> torch.Tensor:
    """Row permutation from ``nn.LSTMCell``'s gate order (input, forget, candidate, output) to ours (input, forget,
    output, candidate): the three sigmoid gates first, contiguous."""
    H = hidden
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])


def fused_weights(cell: torch.nn.LSTMCell) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) of one ``nn.LSTMCell`` for :func:`lstm_step`: W = [W_ih, W_hh] (4H, in + H), b = b_ih + b_hh (4H, 1),
    rows in the fused gate order. Differentiable: gradients reach the cell's own parameters."""
    order = torch_to_fused_order(cell.hidden_size).to(cell.weight_ih.device)
    weight = torch.cat([cell.weight_ih, cell.weight_hh], 1)[order]
    bias = (cell.bias_ih + cell.bias_hh)[order, None] if cell.bias else weight.new_zeros(weight.shape[0], 1)
    return weight, bias


def lstm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step for N coordinates at once, feature-major: x (in, N), h and c (H, N) -> (h', c')."""
    gates = torch.addmm(bias, weight, torch.cat([x, h], 0))
    return lstm_pointwise(gates, c, h.shape[0])


def to_fused_order(rows_in_gate_order: torch.Tensor, order: tuple[str, str, str, str], hidden: int) -> torch.Tensor:
    """Reorder the gate rows of a (4H, ...) tensor stored in gate ``order`` (names "input", "forget", "output",
    "candidate") to the fused order (input, forget, output, candidate)."""
    index = torch.cat([torch.arange(order.index(name) * hidden, (order.index(name) + 1) * hidden)
                       for name in ("input", "forget", "output", "candidate")]).to(rows_in_gate_order.device)
    return rows_in_gate_order[index]
