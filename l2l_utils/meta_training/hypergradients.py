"""Hypergradients of the MetaMD meta-objective (MetaMD §4.3-4.4, App. A.6, A.12), checked against the truth.

E(M) = mean_i B_φM(θ_T^(i)‖θ_1^(i)) + k/λ + γ‖M − I‖_F (Eq. 8) depends on M directly and through θ_T, the end of T
mirror-descent steps θ_{t+1} = θ_t − η M⁻¹∇L(θ_t). Four estimators of dE/dM, one switch (:data:`ESTIMATORS`):

* ``"unrolled"`` (:func:`unrolled_hypergradient`): reverse mode through the T inner steps, the exact derivative of
  the E that was computed (same minibatches). Only θ_t is stored; on the way back each step is recomputed and
  differentiated alone (a Hessian-vector product of L per step), so memory is O(T·|θ|), not a graph of T steps.
  It is the reference every other estimator is measured against.
* ``"direct"``: ∂E/∂M at fixed θ_T. The paper rephrases the inner solution as θ*(M) = argmin_{θ∈S} B_φM(θ, θ1),
  S = argmin L (Eq. 10-11). S does not depend on M, so by the envelope theorem dB(θ*(M), θ1)/dM is the partial
  derivative alone; it is exact when the inner loop has reached that Bregman projection (e.g. over-parameterised
  least squares) and an approximation otherwise.
* ``"ift"``: Eq. 13 with the implicit-function theorem's minus sign, ∂E/∂M − (∂E/∂θ) H⁻¹ ∂²B/∂θ∂M, H = ∂²B/∂θ² by
  the Neumann series of Algorithm 2 (J terms, step α restored). The IFT needs ∂B/∂θ = 0 at θ*, which does not hold
  for a minimiser constrained to S; here H = M and the implicit term equals exactly twice the direct B-term, so
  this estimator is −∂B/∂M plus the regulariser's gradient: it points uphill.
* ``"as_printed"``: Eq. 13 as printed (implicit term added): +3∂B/∂M plus the regulariser's gradient.

The notebook measures each against ``"unrolled"``. :data:`DEFAULT_ESTIMATOR` (the exact one) is what MetaMD's
Algorithm 1 uses unless told otherwise (:class:`~l2l_utils.meta_training.mirror_map_training.MetaMDConfig`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..learned_optimizers.mirror_descent import (DiagonalMirrorDescent, DiagonalMirrorMap, KroneckerMirrorMap,
                                                 MirrorDescentOptimizer)
from ..optimizers.unroll import loss_and_grads, unroll
from ..tasks.problems import DiagonalQuadratics

ESTIMATORS = ("unrolled", "direct", "ift", "as_printed")
DEFAULT_ESTIMATOR = "unrolled"  # the one default, stated once


@dataclass
class Hypergradient:
    """One task's E, dE/d(factors) by some estimator, θ_T, the inner losses (steps + 1, runs), divergence."""

    objective: torch.Tensor
    grads: dict
    theta_T: dict
    losses: np.ndarray
    diverged: bool


def neumann_inverse_hvp(hvp, v: list, terms: int, step: float) -> list:
    """α Σ_{j=0..J} (I − αH)^j v ≈ H⁻¹ v (Algorithm 2 with the factor α restored)."""
    p = [x.clone() for x in v]
    for _ in range(terms):
        hv = hvp(v)
        v = [x - step * h for x, h in zip(v, hv)]
        p = [a + x for a, x in zip(p, v)]
    return [step * x for x in p]


def _zeros_for_none(grads, params) -> list:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def fixed_point_hypergradient(mirror: KroneckerMirrorMap, theta_T: dict, theta1: dict, k: float, gamma: float,
                              estimator: str, terms: int = 20, step: float | None = None,
                              exact: bool = False):
    """(E, {name: dE/d parameter}) from θ_T alone: ``"direct"``, ``"ift"`` or ``"as_printed"`` (module docstring).

    ``theta_T``/``theta1`` hold one run per row of the leading dimension. ``exact=True`` applies H⁻¹ = M⁻¹ in
    closed form instead of the Neumann series (H = M here), to check the series.
    """
    if estimator not in ("direct", "ift", "as_printed"):
        raise ValueError(f"estimator={estimator!r}; allowed values here are ['direct', 'ift', 'as_printed']")
    params = list(mirror.parameters())
    names = [n for n, _ in mirror.named_parameters()]
    theta = {key: v.detach().requires_grad_() for key, v in theta_T.items()}
    theta1 = {key: v.detach() for key, v in theta1.items()}
    objective = mirror.meta_objective(theta, theta1, k, gamma)
    direct = _zeros_for_none(torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True), params)
    if estimator == "direct":
        return objective.detach(), {n: d.detach() for n, d in zip(names, direct)}
    dE_dtheta = torch.autograd.grad(objective, list(theta.values()))
    inner = mirror.bregman(theta, theta1).sum()  # the rephrased inner objective, one term per run
    dB_dtheta = torch.autograd.grad(inner, list(theta.values()), create_graph=True)
    if exact:
        inverse = mirror.precondition(dict(zip(theta, dE_dtheta)))
        p = [inverse[key] for key in theta]
    else:
        alpha = float(1.0 / mirror.largest_eigenvalue().detach()) if step is None else step

        def hvp(v):
            return torch.autograd.grad(dB_dtheta, list(theta.values()), grad_outputs=v, retain_graph=True)

        p = neumann_inverse_hvp(hvp, list(dE_dtheta), terms, alpha)
    mixed = _zeros_for_none(torch.autograd.grad(dB_dtheta, params, grad_outputs=p, allow_unused=True), params)
    sign = 1.0 if estimator == "as_printed" else -1.0
    return objective.detach(), {n: (d + sign * m).detach() for n, d, m in zip(names, direct, mixed)}


def _rewind(problem):
    """The random state of a problem's minibatch stream (None for deterministic problems)."""
    generator = getattr(problem, "generator", None)
    return None if generator is None else generator.get_state()


def _restore(problem, state) -> None:
    if state is not None:
        problem.generator.set_state(state)


def inner_loop(mirror: KroneckerMirrorMap, problem, steps: int, lr: float, keep: bool = False):
    """θ_{t+1} = θ_t − η M⁻¹∇L(θ_t) from ``problem.params0`` without a meta-graph (Algorithm 1, line 7), by the
    shared unroller; the first non-finite loss ends it (diverged).

    Returns (θ_T, losses (steps + 1, runs), diverged, trajectory): ``trajectory`` (with ``keep=True``) lists
    (θ_t, minibatch-stream state) for t < T, what :func:`unrolled_hypergradient` recomputes each step from.
    """
    run = unroll(MirrorDescentOptimizer(mirror, lr), problem, steps, stop="any", keep=keep)
    return run.detached_params, run.losses, bool(run.diverged.any()), run.trajectory


def unrolled_hypergradient(mirror: KroneckerMirrorMap, problem, steps: int, lr: float, k: float, gamma: float
                           ) -> Hypergradient:
    """The exact dE/dM of the E computed on ``problem`` (its minibatch stream replayed), by reverse mode through
    the T steps: adjoint v_T = ∂E/∂θ_T, then for t = T−1..0 the step θ_{t+1} = θ_t − ηM⁻¹∇L(θ_t) is recomputed from
    the stored θ_t and v_t, dE/dM += the vector-Jacobian products of that one step (a Hessian-vector product of L).
    """
    params = list(mirror.parameters())
    names = [n for n, _ in mirror.named_parameters()]
    rule = MirrorDescentOptimizer(mirror, lr)
    start = _rewind(problem)
    theta_T, losses, diverged, trajectory = inner_loop(mirror, problem, steps, lr, keep=True)
    after = _rewind(problem)
    if diverged:
        return Hypergradient(torch.tensor(float("nan")), {n: torch.full_like(p, float("nan")) for n, p in
                                                          zip(names, params)}, theta_T, losses, True)
    with torch.enable_grad():
        theta = {key: v.detach().requires_grad_() for key, v in theta_T.items()}
        objective = mirror.meta_objective(theta, problem.params0, k, gamma)
        grads = torch.autograd.grad(objective, params + list(theta.values()), allow_unused=True)
        total = _zeros_for_none(grads[:len(params)], params)
        adjoint = list(grads[len(params):])
        for t in reversed(range(len(trajectory))):
            theta_t, state = trajectory[t]
            _restore(problem, state)
            point = {key: v.detach().clone().requires_grad_() for key, v in theta_t.items()}
            loss, g = loss_and_grads(problem, point, create_graph=True)
            if not np.allclose(loss.detach().cpu().numpy(), losses[t], rtol=1e-4, atol=1e-6):
                raise RuntimeError("the inner loop's minibatches were not replayed (the problem's loss is random "
                                   "but it exposes no `generator`): the unrolled hypergradient would be wrong")
            nxt, _ = rule.update(point, g, None, t)
            back = torch.autograd.grad([nxt[key] for key in point], params + list(point.values()),
                                       grad_outputs=adjoint, allow_unused=True)
            total = [a + b for a, b in zip(total, _zeros_for_none(back[:len(params)], params))]
            adjoint = list(back[len(params):])
    _restore(problem, after if after is not None else start)
    return Hypergradient(objective.detach(), {n: t.detach() for n, t in zip(names, total)}, theta_T, losses, False)


def mirror_hypergradient(estimator: str, mirror: KroneckerMirrorMap, problem, steps: int, lr: float, k: float,
                         gamma: float, terms: int = 20) -> Hypergradient:
    """Train fresh base models on ``problem`` with the current M for ``steps`` steps and estimate dE/dM
    (Algorithm 1, lines 7-8) with ``estimator`` (one of :data:`ESTIMATORS`)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r}; allowed values are {list(ESTIMATORS)}")
    if estimator == "unrolled":
        return unrolled_hypergradient(mirror, problem, steps, lr, k, gamma)
    theta_T, losses, diverged, _ = inner_loop(mirror, problem, steps, lr)
    if diverged:
        return Hypergradient(torch.tensor(float("nan")), {}, theta_T, losses, True)
    with torch.enable_grad():
        objective, grads = fixed_point_hypergradient(mirror, theta_T, problem.params0, k, gamma, estimator, terms)
    return Hypergradient(objective, grads, theta_T, losses, False)


def objectives_on(mirror: KroneckerMirrorMap, problems: list, starts: list, steps: int, lr: float, k: float,
                  gamma: float) -> np.ndarray:
    """E of each of ``problems`` (one value per problem: the units of a comparison), each replayed from its
    minibatch-stream state in ``starts``; NaN where the inner loop diverged."""
    values = []
    for problem, state in zip(problems, starts):
        _restore(problem, state)
        theta_T, _, diverged, _ = inner_loop(mirror, problem, steps, lr)
        with torch.no_grad():
            values.append(float("nan") if diverged else float(mirror.meta_objective(theta_T, problem.params0, k, gamma)))
    return np.asarray(values)


def objective_on(mirror: KroneckerMirrorMap, problems: list, starts: list, steps: int, lr: float, k: float,
                 gamma: float) -> float:
    """Mean E over ``problems`` (:func:`objectives_on`; NaN if one diverges)."""
    return float(np.mean(objectives_on(mirror, problems, starts, steps, lr, k, gamma)))


def _objective_after_step(mirror, direction: dict, length: float, problems, starts, steps, lr, k, gamma) -> float:
    """Mean E with the factors moved by ``length`` along minus ``direction`` (normalised), then restored."""
    params = dict(mirror.named_parameters())
    saved = {n: p.detach().clone() for n, p in params.items()}
    norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in direction.values())))
    with torch.no_grad():
        for n, p in params.items():
            p.sub_(length * direction[n] / norm)
    try:
        return objective_on(mirror, problems, starts, steps, lr, k, gamma)
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])


def compare_estimators(mirror: KroneckerMirrorMap, problems: list, steps: int, lr: float, k: float, gamma: float,
                       terms: int = 20, meta_lr: float = 1e-3, other_meta_lrs=()) -> tuple[list[dict], float]:
    """Every estimator on ``problems`` against the unrolled truth, per problem: cosine and relative error; and the
    change of E (mean over the problems, same minibatches) after a step along minus the problem-averaged estimate
    whose length is that of Adam's first step, ``meta_lr``·√(number of factors) (for the unrolled estimator also at
    each of ``other_meta_lrs``).

    Returns (rows, slope check): the check is the central finite-difference slope of E along minus the first
    problem's unrolled gradient (step 1e-6·‖factors‖) divided by −‖gradient‖: 1 when the truth is the derivative.
    """
    starts = [_rewind(p) for p in problems]
    truths = []
    for problem, state in zip(problems, starts):
        _restore(problem, state)
        truths.append(unrolled_hypergradient(mirror, problem, steps, lr, k, gamma))
    if any(t.diverged for t in truths):
        return [], float("nan")
    factors = [p.detach() for p in mirror.parameters()]
    size = sum(p.numel() for p in factors)
    base = objective_on(mirror, problems, starts, steps, lr, k, gamma)
    rows = []
    for estimator in ESTIMATORS:
        estimates = []
        for truth, problem in zip(truths, problems):
            if estimator == "unrolled":
                estimates.append(truth.grads)
            else:
                with torch.enable_grad():
                    estimates.append(fixed_point_hypergradient(mirror, truth.theta_T, problem.params0, k, gamma,
                                                               estimator, terms)[1])
        mean = {n: sum(e[n] for e in estimates) / len(estimates) for n in estimates[0]}
        row = {"estimator": estimator,
               "cosine_with_unrolled": float(np.mean([cosine(e, t.grads) for e, t in zip(estimates, truths)])),
               "relative_error": float(np.mean([relative_error(e, t.grads) for e, t in zip(estimates, truths)])),
               "E": base}
        for rate in (meta_lr, *(other_meta_lrs if estimator == "unrolled" else ())):
            after = _objective_after_step(mirror, mean, rate * math.sqrt(size), problems, starts, steps, lr, k, gamma)
            row[f"delta_E_step_{rate:g}"] = after - base
        rows.append(row)
    first = truths[0].grads
    norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in first.values())))
    h = 1e-6 * float(torch.sqrt(sum(p.double().pow(2).sum() for p in factors)))
    one = ([problems[0]], [starts[0]])
    down = _objective_after_step(mirror, first, h, *one, steps, lr, k, gamma)
    up = _objective_after_step(mirror, first, -h, *one, steps, lr, k, gamma)
    for problem, state in zip(problems, starts):
        _restore(problem, state)
    return rows, (down - up) / (2 * h) / -norm


def cosine(a: dict, b: dict) -> float:
    """Cosine between two hypergradients (dicts of tensors, flattened together)."""
    x = torch.cat([a[n].reshape(-1) for n in sorted(a)]).double()
    y = torch.cat([b[n].reshape(-1) for n in sorted(a)]).double()
    return float(x @ y / (x.norm() * y.norm()).clamp_min(1e-300))


def relative_error(estimate: dict, truth: dict) -> float:
    """‖estimate − truth‖ / ‖truth‖ over all factors."""
    x = torch.cat([estimate[n].reshape(-1) for n in sorted(truth)]).double()
    y = torch.cat([truth[n].reshape(-1) for n in sorted(truth)]).double()
    return float((x - y).norm() / y.norm().clamp_min(1e-300))


def mirror_descent_quadratics(mirror: DiagonalMirrorMap, problems: DiagonalQuadratics, lr: float, steps: int):
    """θ_{t+1} = θ_t − η M⁻¹∇f(θ_t) for ``steps`` steps (no graph); returns θ_T."""
    return unroll(DiagonalMirrorDescent(mirror, lr), problems, steps).params["theta"].detach()


def forward_mode_hypergradient(mirror: DiagonalMirrorMap, problems: DiagonalQuadratics, lr: float, steps: int,
                               k: float, gamma: float):
    """(E, dE/d log m, θ_T): Eq. 49-53 for diagonal M on quadratics, exact for the unrolled trajectory."""
    m = mirror.m.detach()
    n, d = problems.theta1.shape
    jacobian = {"Z": torch.zeros(n, d, d, dtype=problems.theta1.dtype)}  # ∂θ_t/∂m, one d×d Jacobian per problem
    hessian = 2 * problems.q  # diagonal of ∂²f/∂θ²

    def carry(t, theta_t, grads, theta_next):  # Eq. 53 along the trajectory, from step t's gradient
        A = 1.0 - lr * hessian / m  # Eq. 51, diagonal: I − ηM⁻¹H
        jacobian["Z"] = A[:, :, None] * jacobian["Z"] + torch.diag_embed(lr * grads["theta"] / m**2)  # Eq. 52 fixed

    theta = unroll(DiagonalMirrorDescent(mirror, lr), problems, steps, hook=carry).params["theta"].detach()
    Z = jacobian["Z"]
    log_m = mirror.log_m
    theta_T = theta.requires_grad_()
    objective = mirror.meta_objective(theta_T, problems.theta1, k, gamma)
    direct, dE_dtheta = torch.autograd.grad(objective, [log_m, theta_T])
    indirect = torch.einsum("ni,nij->j", dE_dtheta, Z) * m  # chain rule to log m
    return objective.detach(), (direct + indirect).detach(), theta.detach()
