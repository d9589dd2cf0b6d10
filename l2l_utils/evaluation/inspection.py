"""Looking inside an optimizer (Andrychowicz et al. Appendix B): the updates a rule proposes for one
coordinate along a recorded gradient history, and the update as a function of the current gradient."""

from __future__ import annotations

from typing import Callable

import torch

from ..learned_optimizers.lstm_optimizer import CoordinatewiseLSTM


@torch.no_grad()
def learned_responses(net: CoordinatewiseLSTM, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Update the LSTM would propose for each candidate gradient after seeing ``history`` (Fig. 11-13).

    The rule is coordinatewise, so one coordinate's state depends on its own gradients only: K copies
    of the coordinate replay the history, then each receives one candidate gradient.
    """
    k = candidates.numel()
    state = net.initial_state(k, candidates.device, candidates.dtype)
    for g in history:
        _, state = net(g.expand(k).clone(), state)
    update, _ = net(candidates, state)
    return update


def torch_optim_responses(make_optimizer: Callable, history: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Same for a ``torch.optim`` rule: K copies of the coordinate take the history, then one candidate."""
    param = torch.zeros(candidates.numel(), dtype=candidates.dtype, device=candidates.device, requires_grad=True)
    opt = make_optimizer([param])
    for g in history:
        param.grad = g.expand_as(param).clone()
        opt.step()
    before = param.detach().clone()
    param.grad = candidates.clone()
    opt.step()
    return param.detach() - before


def torch_optim_history(make_optimizer: Callable, grads: torch.Tensor) -> torch.Tensor:
    """Updates a ``torch.optim`` rule would propose along gradients ``grads`` (steps × coords) (Fig. 10)."""
    param = torch.zeros(grads.shape[1], dtype=grads.dtype, device=grads.device, requires_grad=True)
    opt = make_optimizer([param])
    updates = []
    for g in grads:
        before = param.detach().clone()
        param.grad = g.clone()
        opt.step()
        updates.append(param.detach() - before)
    return torch.stack(updates)


def step_likeness(candidates: torch.Tensor, responses: torch.Tensor, window_fraction: float = 0.1) -> float:
    """Largest share of the response's total variation inside any window spanning ``window_fraction``
    of the gradient range: near 1 for a step function, about ``window_fraction`` for a straight line."""
    order = torch.argsort(candidates)
    c, r = candidates[order], responses[order]
    variation = (r[1:] - r[:-1]).abs()
    total = variation.sum()
    if total <= 0:
        return 0.0
    mid = (c[1:] + c[:-1]) / 2
    width = window_fraction * (c[-1] - c[0])
    shares = [float(variation[(mid >= m - width / 2) & (mid <= m + width / 2)].sum() / total) for m in mid]
    return max(shares)
