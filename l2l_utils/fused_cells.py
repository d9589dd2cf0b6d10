"""The coordinatewise LSTM cell in a fused, feature-major layout: the hot loop of every learned optimizer.

A learned optimizer runs one small LSTM on every coordinate of the optimizee (tens of thousands of rows of width 20).
Stored the usual way, (coordinates, features), the four gates are interleaved column blocks: every activation then
runs over strided slices, and PyTorch's ``nn.LSTMCell`` spends more time in those element-wise passes than in its
matrix products. Here the state is **feature-major**, (features, coordinates): the gate pre-activations of all
coordinates come from one matrix product over the concatenated [input; hidden] rows, the three sigmoid gates are one
contiguous block and the candidate another, so each activation is one pass over contiguous memory. The numbers are
those of ``nn.LSTMCell`` (same parameters, same equations; float32 sums in another order, equal to ~1e-7).

With ``L2L_COMPILE=1`` the element-wise part of the cell is compiled by ``torch.compile`` into one fused loop (CPU
and CUDA); if compilation is unavailable (no compiler, an unsupported platform) it falls back to eager once, with a
warning. Off by default: compiling costs tens of seconds per process, more than a smoke run saves.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable

import torch


def compile_requested() -> bool:
    """Whether ``L2L_COMPILE`` asks for compiled cells ("1", "true", "yes")."""
    return os.environ.get("L2L_COMPILE", "0").strip().lower() in ("1", "true", "yes")


class _MaybeCompiled:
    """``fn`` compiled on first use when :func:`compile_requested`, else (or if compiling fails) ``fn`` itself."""

    def __init__(self, fn: Callable):
        self.fn, self.compiled, self.failed = fn, None, False
        self.__doc__ = fn.__doc__

    def __call__(self, *args):
        if not compile_requested() or self.failed:
            return self.fn(*args)
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True)
        try:
            return self.compiled(*args)
        except Exception as error:  # noqa: BLE001 - any compiler failure falls back to the same eager numbers
            self.failed = True
            warnings.warn(f"torch.compile unavailable ({type(error).__name__}: {error}); using eager cells")
            return self.fn(*args)


def _lstm_pointwise(gates: torch.Tensor, c: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates (4H, N) in the order (input, forget, output, candidate) and c (H, N) -> (h, c):
    c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c')."""
    sig = gates[:3 * hidden].sigmoid()
    c = sig[hidden:2 * hidden] * c + sig[:hidden] * gates[3 * hidden:].tanh()
    return sig[2 * hidden:] * c.tanh(), c


lstm_pointwise = _MaybeCompiled(_lstm_pointwise)


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
