"""Loss-landscape (MetaMD App. A.10, Fig. 7) and low-rank representation (App. A.11, Fig. 8) analyses.

* :func:`top_hessian_eigenpair` and :func:`loss_along`: the 1-D training-loss landscape of Fig. 7, the loss
  at θ + α·v with v the eigenvector of the loss Hessian for its largest eigenvalue, found by power iteration
  on Hessian-vector products (forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``).
* :func:`penultimate_features` and :func:`feature_spectrum`: the singular values of a learned feature matrix, the paper's "low rank level"
  −Σ_i λ̃_i log λ̃_i with λ̃_i = λ_i / λ_max (App. A.11, after Chen & Lee 2021), and an effective rank.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad, jvp

LossFn = Callable[[dict[str, Tensor]], Tensor]


def _dot(a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
    return sum((a[k] * b[k]).sum() for k in a)


def top_hessian_eigenpair(loss_fn: LossFn, params: dict[str, Tensor], iters: int = 50, tol: float = 1e-6,
                          generator: torch.Generator | None = None) -> tuple[float, dict[str, Tensor]]:
    """Eigenvalue of largest magnitude of the Hessian of ``loss_fn`` at ``params``, and a unit eigenvector.

    Power iteration v ← Hv/‖Hv‖ from a random start (drawn on the CPU with ``generator``), with the
    Rayleigh quotient vᵀHv as the eigenvalue estimate; stops after ``iters`` Hessian-vector products or when
    the quotient changes by less than ``tol`` relative to its value. The eigenvector is a dict with the
    params' shapes, of norm 1 over all tensors together; its sign is arbitrary. At a minimum (Fig. 7) the
    Hessian is positive semi-definite, so this is the largest eigenvalue; elsewhere it may be negative.
    Power iteration converges at rate |λ₂/λ₁| and not at all when λ and −λ are both extreme eigenvalues.
    ``loss_fn(params) -> scalar`` must be a deterministic function of params (for a network with batch
    norm, evaluate it in eval mode, or on a fixed batch with fixed statistics).
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    params = {k: v.detach() for k, v in params.items()}
    def hvp_at(v):
        with warnings.catch_warnings():  # torch.func.jvp's own deprecation notice about torch.jit.script
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            return jvp(grad(loss_fn), (params,), (v,))[1]

    v = {k: torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for k, p in params.items()}
    norm = _dot(v, v).sqrt()
    v = {k: x / norm for k, x in v.items()}
    eigenvalue = None
    for _ in range(iters):
        hv = hvp_at(v)
        rayleigh = float(_dot(v, hv))
        norm = _dot(hv, hv).sqrt()
        if norm == 0:  # v lies in the null space: H v = 0
            return 0.0, v
        v = {k: x / norm for k, x in hv.items()}
        converged = eigenvalue is not None and abs(rayleigh - eigenvalue) <= tol * abs(rayleigh)
        eigenvalue = rayleigh
        if converged:
            break
    return eigenvalue, v


@torch.no_grad()
def loss_along(loss_fn: LossFn, params: dict[str, Tensor], direction: dict[str, Tensor],
               alphas: Sequence[float] | np.ndarray) -> np.ndarray:
    """Loss at params + α·direction for each α: the 1-D landscape of Fig. 7 (App. A.10)."""
    return np.array([float(loss_fn({k: p + float(a) * direction[k] for k, p in params.items()}))
                     for a in alphas], dtype=np.float64)


def feature_spectrum(features: Tensor) -> dict:
    """Singular-value spectrum of a feature matrix (N samples, D features) (App. A.11, Fig. 8).

    Features are centred (the mean over samples subtracted) before the SVD; App. A.11 follows Chen & Lee
    (2021) without saying, and centring is our reading. Returns the singular values λ_i (descending, min(N, D)
    of them, in float64), the normalised λ̃_i = λ_i / λ_max, the paper's low-rank level −Σ_i λ̃_i log λ̃_i
    (0·log 0 = 0; smaller is said to mean lower rank) and the entropy effective rank exp(−Σ_i p_i log p_i),
    p_i = λ_i / Σ_j λ_j (Roy & Vetterli 2007), which runs from 1 (rank one) to the number of equal nonzero
    singular values.

    Caveat: each term −λ̃ log λ̃ is 0 at λ̃ = 0 and at λ̃ = 1 and largest at λ̃ = 1/e, so the low-rank level
    is not monotone in rank: it is 0 both for rank one and for a flat spectrum of any rank. It ranks spectra
    by how many normalised singular values lie strictly between 0 and 1, which is why we also report the
    effective rank.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(features.shape)}")
    x = features.detach().to(torch.float64)
    x = x - x.mean(dim=0, keepdim=True)
    singular_values = torch.linalg.svdvals(x).cpu().numpy()
    top = singular_values.max(initial=0.0)
    if not top > 0:
        raise ValueError("the centred features are all zero: no spectrum to normalise")
    normalised = singular_values / top
    positive = normalised[normalised > 0]
    low_rank_level = float(-(positive * np.log(positive)).sum())
    p = singular_values[singular_values > 0] / singular_values.sum()
    effective_rank = math.exp(float(-(p * np.log(p)).sum()))
    return {"singular_values": singular_values, "normalised": normalised, "low_rank_level": low_rank_level,
            "effective_rank": effective_rank}


def penultimate_features(module: nn.Module, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The input of the network's last ``nn.Linear`` (its penultimate-layer features, App. A.11) for inputs ``x``,
    with ``params`` (one network's tensors) in place of the module's own."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    captured = []
    handle = last.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    try:
        torch.func.functional_call(module, params, (x,))
    finally:
        handle.remove()
    return captured[0].reshape(len(x), -1)
