"""Hypergradients of the MetaMD meta-objective (MetaMD §4.4, App. A.6, A.12).

* :func:`implicit_hypergradient`: the implicit-function-theorem hypergradient of Eq. 13 on the rephrased
  inner problem argmin_θ B_φM(θ, θ1) (Eq. 10-12), dE/dM = ∂E/∂M − (∂E/∂θ) H⁻¹ ∂²B/∂θ∂M at θ = θ_T, with
  H = ∂²B/∂θ² approximated by the Neumann series of Algorithm 2 (J = 20 terms). Two corrections to the
  paper, both checked numerically in the tests and recorded in the notebook: (i) the IFT gives a minus sign
  that Eq. 13 omits (Algorithm 2's output "−p ∂²B/∂θ∂M" has it); (ii) Algorithm 2 with step α sums
  Σ_j (I − αH)^j ≈ (αH)⁻¹, so its p must be multiplied by α to approximate H⁻¹ (Lorraine et al. fold α into
  the outer learning rate). The series converges only for α < 2/λ_max(H); the default α is 1/λ_max(M).
  Here H = M exactly (B is quadratic in θ), so ``exact=True`` applies M⁻¹ in closed form instead.
* :func:`forward_mode_hypergradient`: the exact hypergradient of the unrolled inner loop for a diagonal
  M on quadratics by forward-mode differentiation (Eq. 50-53), Z_t = ∂θ_t/∂m carried along the
  trajectory. Eq. 52 gives ∂π/∂M = 2η∇L M⁻²; the derivative of θ − ηM⁻¹∇L with respect to a diagonal M
  is η∇L M⁻² (no factor 2), which is what we use.
"""

from __future__ import annotations

import torch

from .mirror_descent import DiagonalMirrorMap, KroneckerMirrorMap
from .tasks import DiagonalQuadratics


def neumann_inverse_hvp(hvp, v: list, terms: int, step: float) -> list:
    """α Σ_{j=0..J} (I − αH)^j v ≈ H⁻¹ v (Algorithm 2 with the factor α restored)."""
    p = [x.clone() for x in v]
    for _ in range(terms):
        hv = hvp(v)
        v = [x - step * h for x, h in zip(v, hv)]
        p = [a + x for a, x in zip(p, v)]
    return [step * x for x in p]


def implicit_hypergradient(mirror: KroneckerMirrorMap, theta_T: dict, theta1: dict, k: float, gamma: float,
                           terms: int = 20, step: float | None = None, exact: bool = False, as_printed: bool = False):
    """(E, {name: dE/d parameter}) for the mirror map's factors, by the IFT (Eq. 13, Algorithm 2).

    ``theta_T``/``theta1`` hold one task per row of the leading dimension. ``exact=True`` replaces the
    Neumann series by M⁻¹ (H = M here), for checking it. ``as_printed=True`` adds the implicit term instead
    of subtracting it (Eq. 13 as printed, without the IFT's minus sign), for the notebook's ablation.
    """
    params = list(mirror.parameters())
    names = [n for n, _ in mirror.named_parameters()]
    theta = {key: v.detach().requires_grad_() for key, v in theta_T.items()}
    theta1 = {key: v.detach() for key, v in theta1.items()}
    objective = mirror.meta_objective(theta, theta1, k, gamma)
    direct = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
    dE_dtheta = torch.autograd.grad(objective, list(theta.values()))
    inner = mirror.bregman(theta, theta1).sum()  # the rephrased inner objective, one term per task
    dB_dtheta = torch.autograd.grad(inner, list(theta.values()), create_graph=True)
    if exact:
        inverse = mirror.precondition(dict(zip(theta, dE_dtheta)))
        p = [inverse[key] for key in theta]
    else:
        alpha = float(1.0 / mirror.largest_eigenvalue().detach()) if step is None else step

        def hvp(v):
            return torch.autograd.grad(dB_dtheta, list(theta.values()), grad_outputs=v, retain_graph=True)

        p = neumann_inverse_hvp(hvp, list(dE_dtheta), terms, alpha)
    mixed = torch.autograd.grad(dB_dtheta, params, grad_outputs=p, allow_unused=True)
    grads = {}
    for name, d, m, param in zip(names, direct, mixed, params):
        d = torch.zeros_like(param) if d is None else d
        m = torch.zeros_like(param) if m is None else m
        grads[name] = (d + m if as_printed else d - m).detach()
    return objective.detach(), grads


def mirror_descent_quadratics(mirror: DiagonalMirrorMap, problems: DiagonalQuadratics, lr: float, steps: int):
    """θ_{t+1} = θ_t − η M⁻¹∇f(θ_t) for ``steps`` steps (no graph); returns θ_T."""
    m = mirror.m.detach()
    theta = problems.theta1.clone()
    for _ in range(steps):
        theta = theta - lr * problems.grad(theta) / m
    return theta


def forward_mode_hypergradient(mirror: DiagonalMirrorMap, problems: DiagonalQuadratics, lr: float, steps: int,
                               k: float, gamma: float):
    """(E, dE/d log m, θ_T): Eq. 49-53 for diagonal M on quadratics, exact for the unrolled trajectory."""
    m = mirror.m.detach()
    n, d = problems.theta1.shape
    theta = problems.theta1.clone()
    Z = torch.zeros(n, d, d, dtype=theta.dtype)  # ∂θ_t/∂m, one d×d Jacobian per problem
    hessian = 2 * problems.q  # diagonal of ∂²f/∂θ²
    for _ in range(steps):
        g = problems.grad(theta)
        A = 1.0 - lr * hessian / m  # Eq. 51, diagonal: I − ηM⁻¹H
        Z = A[:, :, None] * Z + torch.diag_embed(lr * g / m**2)  # Eq. 53 with Eq. 52 corrected (no factor 2)
        theta = theta - lr * g / m
    log_m = mirror.log_m
    theta_T = theta.requires_grad_()
    objective = mirror.meta_objective(theta_T, problems.theta1, k, gamma)
    direct, dE_dtheta = torch.autograd.grad(objective, [log_m, theta_T])
    indirect = torch.einsum("ni,nij->j", dE_dtheta, Z) * m  # chain rule to log m
    return objective.detach(), (direct + indirect).detach(), theta.detach()
