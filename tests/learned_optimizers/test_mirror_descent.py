"""MetaMD's formulas against direct computations on small sizes (MetaMD §4.2-4.4, App. A.2-A.6, A.12):
the Kronecker step equals (A ⊗ B)⁻¹ vec(∇), the Bregman divergence, ‖M − I‖_F and λ equal their dense
versions, the Neumann-series hypergradient converges to the exact IFT one, and forward-mode equals
reverse-mode differentiation through the unrolled quadratic trajectory."""

import pytest
import torch

from l2l_utils.learned_optimizers.mirror_descent import DiagonalMirrorMap, KroneckerMirrorMap, layer_blocks
from l2l_utils.meta_training.hypergradients import (cosine, fixed_point_hypergradient, forward_mode_hypergradient,
                                                    inner_loop, mirror_hypergradient, neumann_inverse_hvp,
                                                    relative_error)
from l2l_utils.tasks.datasets import DeviceDataset
from l2l_utils.tasks.models import mlp
from l2l_utils.tasks.problems import ClassifierTask, LeastSquaresProblem, QuadraticFamily2D


def small_map(seed=0, init_norm=2.0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(12, 2),
                              torch.nn.BatchNorm1d(2)).double()
    shapes = {k: v.shape for k, v in net.named_parameters()}
    return KroneckerMirrorMap(shapes, init_norm=init_norm, generator=torch.Generator().manual_seed(seed)).double(), shapes


def random_like(shapes, seed, lead=()):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*lead, *s, generator=g, dtype=torch.float64) for k, s in shapes.items()}


def vec(matrix):
    """Column-major vec, the convention of (A ⊗ B) vec(G) = vec(B G Aᵀ)."""
    return matrix.transpose(-1, -2).reshape(*matrix.shape[:-2], -1)


def test_layers_are_blocks_with_bias_as_an_extra_column():
    mirror, shapes = small_map()
    assert mirror.blocks == {"0": ["0.weight", "0.bias"], "2": ["2.weight", "2.bias"], "3": ["3.weight", "3.bias"]}
    assert mirror.dims["0"][:2] == (3, 2 * 3 * 3 + 1)  # ι = out channels, κ = in·k·k + bias
    assert mirror.dims["2"][:2] == (2, 13) and mirror.dims["3"][:2] == (2, 2)
    assert mirror.num_meta_parameters == (3 + 19) + (2 + 13) + (2 + 2)
    assert layer_blocks({"w": torch.Size([2])}) == {"w": ["w"]}


def test_kronecker_step_equals_the_explicit_inverse_of_a_kronecker_product():
    mirror, shapes = small_map()
    grads = random_like(shapes, 1)
    step = mirror.precondition(grads)
    for layer in mirror.blocks:
        expected = torch.linalg.solve(mirror.dense_block(layer), vec(mirror.matrix(grads, layer)))
        torch.testing.assert_close(vec(mirror.matrix(step, layer)), expected, rtol=1e-10, atol=1e-12)
    # θ ← θ − η M⁻¹∇ (App. A.2), also with a leading run dimension
    params, batched = random_like(shapes, 2), random_like(shapes, 3, lead=(4,))
    new = mirror.step(params, grads, lr=0.1)
    for k in params:
        torch.testing.assert_close(new[k], params[k] - 0.1 * step[k])
    per_run = mirror.precondition({k: v[2] for k, v in batched.items()})
    together = mirror.precondition(batched)
    for k in per_run:
        torch.testing.assert_close(together[k][2], per_run[k])


def test_mirror_step_solves_the_mirror_descent_subproblem():
    """Eq. 15: θ_{t+1} = argmin η⟨∇L, θ⟩ + B_φ(θ‖θ_t), whose stationarity condition η∇L + M(θ_{t+1} − θ_t) = 0
    (Eq. 16) the closed form satisfies. (Erratum: Eq. 14, with B_φ/(2η), is not equivalent: its minimiser is
    θ_t − 2ηM⁻¹∇L; we follow Eq. 15-24 and §4.2.)"""
    mirror, shapes = small_map()
    params, grads = random_like(shapes, 4), random_like(shapes, 5)
    new = mirror.step(params, grads, lr=0.3)
    for layer in mirror.blocks:
        M = mirror.dense_block(layer)
        delta = vec(mirror.matrix(new, layer) - mirror.matrix(params, layer))
        residual = 0.3 * vec(mirror.matrix(grads, layer)) + M @ delta
        assert residual.abs().max() < 1e-10
        eq14 = vec(mirror.matrix(grads, layer)) + M @ delta / (2 * 0.3)  # gradient of Eq. 14's objective
        assert eq14.abs().max() > 1e-3


def test_bregman_divergence_matches_eq2_with_the_dense_matrix():
    mirror, shapes = small_map()
    theta, theta1 = random_like(shapes, 6, lead=(3,)), random_like(shapes, 7, lead=(3,))
    got = mirror.bregman(theta, theta1)
    for run in range(3):
        phi = lambda t: sum(0.5 * vec(mirror.matrix(t, l)) @ mirror.dense_block(l) @ vec(mirror.matrix(t, l))  # noqa: E731
                            for l in mirror.blocks)
        grad_phi_1 = {l: mirror.dense_block(l) @ vec(mirror.matrix(theta1, l))[run] for l in mirror.blocks}
        t = {k: v[run] for k, v in theta.items()}
        t1 = {k: v[run] for k, v in theta1.items()}
        inner = sum(grad_phi_1[l] @ (vec(mirror.matrix(t, l)) - vec(mirror.matrix(t1, l))) for l in mirror.blocks)
        torch.testing.assert_close(got[run], phi(t) - phi(t1) - inner, rtol=1e-10, atol=1e-10)  # Eq. 2


def test_frobenius_distance_and_strong_convexity_match_dense_matrices():
    mirror, _ = small_map()
    blocks = [mirror.dense_block(layer) for layer in mirror.blocks]
    eye = lambda M: torch.eye(len(M), dtype=M.dtype)  # noqa: E731
    fro = torch.sqrt(sum(((M - eye(M)) ** 2).sum() for M in blocks))
    torch.testing.assert_close(mirror.frobenius_distance(), fro, rtol=1e-10, atol=1e-10)
    lam = min(torch.linalg.eigvalsh(M).min() for M in blocks)
    torch.testing.assert_close(mirror.strong_convexity(), lam, rtol=1e-10, atol=1e-10)
    top = max(torch.linalg.eigvalsh(M).max() for M in blocks)
    torch.testing.assert_close(mirror.largest_eigenvalue(), top, rtol=1e-10, atol=1e-10)
    # every M is symmetric positive definite
    assert all(torch.linalg.eigvalsh(M).min() > 0 for M in blocks) and all(torch.allclose(M, M.T) for M in blocks)


def test_paper_eq44_without_squares_is_not_the_frobenius_norm():
    """Erratum (App. A.4): ‖A ⊗ B‖²_F = Σ v_i(A)² v_j(B)², Eq. 44 writes Σ v_i(A) v_j(B)."""
    mirror, _ = small_map()
    layer = "0"
    a, b = mirror.factors(layer)
    A = torch.outer(a, a) + torch.eye(len(a), dtype=a.dtype)
    B = torch.outer(b, b) + torch.eye(len(b), dtype=b.dtype)
    va, vb = torch.linalg.eigvalsh(A), torch.linalg.eigvalsh(B)
    true = (torch.kron(A, B) ** 2).sum()
    torch.testing.assert_close((va[:, None] ** 2 * vb[None] ** 2).sum(), true)
    assert not torch.isclose((va[:, None] * vb[None]).sum(), true)


def test_neumann_series_hypergradient_converges_to_the_exact_ift_one():
    mirror, shapes = small_map()
    theta1 = random_like(shapes, 8, lead=(3,))
    theta_T = {k: v + 0.3 * random_like(shapes, 9, lead=(3,))[k] for k, v in theta1.items()}
    _, exact = fixed_point_hypergradient(mirror, theta_T, theta1, k=0.1, gamma=0.01, estimator="ift", exact=True)
    errors = []
    for terms in (5, 20, 3000):
        _, approx = fixed_point_hypergradient(mirror, theta_T, theta1, k=0.1, gamma=0.01, estimator="ift",
                                              terms=terms)
        errors.append(max(float((exact[n] - approx[n]).abs().max()) for n in exact))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9
    # with H = M, H⁻¹ applied exactly is the mirror map's own preconditioner
    assert max(float(v.abs().max()) for v in exact.values()) > 1e-3


def test_neumann_series_needs_the_step_factor_and_a_small_step():
    """Erratum (Algorithm 2): Σ_j (I − αH)^j v ≈ (αH)⁻¹ v, so p must be scaled by α; α ≥ 2/λ_max diverges."""
    H = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    v = [torch.tensor([1.0, -1.0], dtype=torch.float64)]
    exact = torch.linalg.solve(H, v[0])
    hvp = lambda x: [H @ x[0]]  # noqa: E731
    alpha = 1.0 / torch.linalg.eigvalsh(H).max().item()
    good = neumann_inverse_hvp(hvp, v, 200, alpha)[0]
    torch.testing.assert_close(good, exact)
    assert not torch.allclose(good / alpha, exact, atol=1e-3)  # the unscaled sum of Algorithm 2
    bad = neumann_inverse_hvp(hvp, v, 200, 2.5 / torch.linalg.eigvalsh(H).max().item())[0]
    assert not torch.isfinite(bad).all() or bad.abs().max() > 1e6


def test_forward_mode_equals_reverse_mode_through_the_unrolled_quadratic_trajectory():
    problems = QuadraticFamily2D().sample(5, torch.Generator().manual_seed(0))
    mirror = DiagonalMirrorMap(2, init=3.0).double()
    with torch.no_grad():
        mirror.log_m.copy_(torch.tensor([0.4, 2.7], dtype=torch.float64))
    value, grad, theta_T = forward_mode_hypergradient(mirror, problems, lr=0.05, steps=60, k=0.1, gamma=0.01)
    theta = problems.theta1.clone()
    for _ in range(60):
        theta = theta - 0.05 * problems.grad(theta) / mirror.m
    reverse = torch.autograd.grad(mirror.meta_objective(theta, problems.theta1, 0.1, 0.01), mirror.log_m)[0]
    torch.testing.assert_close(grad, reverse, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(theta_T, theta.detach())


def test_paper_eq52_factor_two_disagrees_with_autograd():
    """Erratum (App. A.6, Eq. 52): ∂/∂m (θ − η g/m) = η g/m², not 2η g/m²."""
    problems = QuadraticFamily2D().sample(1, torch.Generator().manual_seed(1))
    m = torch.tensor([2.0, 30.0], dtype=torch.float64, requires_grad=True)
    theta = problems.theta1[0]
    g = problems.grad(problems.theta1)[0]
    jac = torch.autograd.functional.jacobian(lambda m_: theta - 0.05 * g / m_, m)
    torch.testing.assert_close(jac, torch.diag(0.05 * g / m.detach() ** 2))
    assert not torch.allclose(jac, torch.diag(2 * 0.05 * g / m.detach() ** 2))


def test_diagonal_map_terms():
    mirror = DiagonalMirrorMap(2, init=2.0).double()
    theta, theta1 = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    torch.testing.assert_close(mirror.bregman(theta, theta1), torch.tensor([0.5 * 2 * (1 + 4)], dtype=torch.float64))
    assert mirror.strong_convexity().item() == pytest.approx(2.0)
    assert mirror.frobenius_distance().item() == pytest.approx(2 ** 0.5)


# ----------------------------------------------------------------------------- which hypergradient is dE/dM?


def tiny_classifier_problem(seed=0):
    """A sigmoid 3-4-3 MLP in float64 on 40 random points, minibatches of 8 drawn from a seeded stream, 2 runs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    task = ClassifierTask(mlp(3, [4], 3, "sigmoid").double(), DeviceDataset(x, y), batch_size=8, init_std=0.5)
    problem = task.sample(2, g)
    problem.params0 = {k: v.double() for k, v in problem.params0.items()}
    mirror = KroneckerMirrorMap(task.shapes, init_norm=0.8, generator=torch.Generator().manual_seed(seed + 1)).double()
    return problem, mirror


def objective_through_inner_loop(mirror, problem, start, steps, lr, k, gamma):
    """E(M) recomputed from scratch on the same minibatches (the problem's stream rewound to ``start``)."""
    problem.generator.set_state(start)
    theta_T, _, diverged, _ = inner_loop(mirror, problem, steps, lr)
    assert not diverged
    with torch.no_grad():
        return float(mirror.meta_objective(theta_T, problem.params0, k, gamma))


def test_unrolled_hypergradient_matches_central_finite_differences_through_the_inner_loop():
    problem, mirror = tiny_classifier_problem()
    start = problem.generator.get_state()
    steps, lr, k, gamma = 12, 0.5, 0.1, 0.05
    result = mirror_hypergradient("unrolled", mirror, problem, steps, lr, k, gamma)
    problem.generator.set_state(start)
    h = 1e-6
    checked = 0
    for name, p in mirror.named_parameters():
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), 2):
            old = flat[i].item()
            flat[i] = old + h
            up = objective_through_inner_loop(mirror, problem, start, steps, lr, k, gamma)
            flat[i] = old - h
            down = objective_through_inner_loop(mirror, problem, start, steps, lr, k, gamma)
            flat[i] = old
            fd = (up - down) / (2 * h)
            assert abs(result.grads[name].view(-1)[i].item() - fd) <= 1e-6 * max(1.0, abs(fd)), (name, i, fd)
            checked += 1
    assert checked >= 8
    # the estimators that use θ_T alone are not the derivative of this (unconverged) E
    for estimator in ("direct", "ift", "as_printed"):
        problem.generator.set_state(start)
        other = mirror_hypergradient(estimator, mirror, problem, steps, lr, k, gamma)
        torch.testing.assert_close(other.objective, result.objective)  # same E, same minibatches
        assert relative_error(other.grads, result.grads) > 1e-3


def test_unrolled_hypergradient_refuses_a_random_problem_it_cannot_replay():
    problem, mirror = tiny_classifier_problem()

    class Unreplayable:
        params0, groups = problem.params0, problem.groups

        def loss(self, params):
            return problem.loss(params)  # draws from a stream the hypergradient cannot see

    with pytest.raises(RuntimeError, match="not replayed"):
        mirror_hypergradient("unrolled", mirror, Unreplayable(), 5, 0.5, 0.1, 0.05)


def least_squares(seed=0, n=3, d=6, init_norm=1.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    problem = LeastSquaresProblem(X, torch.randn(n, generator=g, dtype=torch.float64),
                                  torch.randn(d, generator=g, dtype=torch.float64))
    mirror = KroneckerMirrorMap({"w": torch.Size([1, d])}, init_norm=init_norm,
                                generator=torch.Generator().manual_seed(seed + 1)).double()
    return problem, mirror


def closed_form_objective_and_gradient(mirror, problem, k, gamma):
    """E at the exact Bregman projection w*(M) and its gradient by autograd through the closed form."""
    w_star = problem.projection(mirror.dense_block("w"))
    theta = {"w": w_star.reshape(1, 1, -1)}
    objective = mirror.meta_objective(theta, problem.params0, k, gamma)
    grads = torch.autograd.grad(objective, list(mirror.parameters()))
    return objective.detach(), {n: g for (n, _), g in zip(mirror.named_parameters(), grads)}


def test_mirror_descent_reaches_the_closed_form_bregman_projection_on_least_squares():
    problem, mirror = least_squares()
    theta_T, losses, _, _ = inner_loop(mirror, problem, 4000, 0.5)
    w_star = problem.projection(mirror.dense_block("w").detach())
    torch.testing.assert_close(theta_T["w"][0, 0], w_star, rtol=1e-9, atol=1e-10)
    assert losses[-1].max() < 1e-20
    # the projection is the point of S closest to w1 in the M-norm, not in the Euclidean one
    euclid = problem.projection(torch.eye(6, dtype=torch.float64))
    assert float((euclid - w_star).norm()) > 1e-3


def test_direct_estimator_is_exact_at_convergence_and_the_unrolled_one_converges_to_it():
    problem, mirror = least_squares()
    k, gamma, lr = 0.1, 0.05, 0.5
    value, truth = closed_form_objective_and_gradient(mirror, problem, k, gamma)
    direct = mirror_hypergradient("direct", mirror, problem, 4000, lr, k, gamma)
    torch.testing.assert_close(direct.objective, value, rtol=1e-10, atol=1e-12)
    assert relative_error(direct.grads, truth) < 1e-8
    errors = [relative_error(mirror_hypergradient("unrolled", mirror, problem, T, lr, k, gamma).grads, truth)
              for T in (10, 100, 2000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-8


def test_eq13_with_the_ift_sign_points_uphill_and_as_printed_overshoots():
    """With H = M the implicit term is twice the direct Bregman term: "ift" = −∂B/∂M + ∂reg/∂M and "as_printed" =
    3∂B/∂M + ∂reg/∂M, measured here against the closed-form truth ∂B/∂M + ∂reg/∂M (k = γ = 0: reg = 0)."""
    problem, mirror = least_squares(seed=3)
    _, truth = closed_form_objective_and_gradient(mirror, problem, 0.0, 0.0)
    theta_T, _, _, _ = inner_loop(mirror, problem, 4000, 0.5)
    for estimator, factor in (("ift", -1.0), ("as_printed", 3.0)):
        _, grads = fixed_point_hypergradient(mirror, theta_T, problem.params0, 0.0, 0.0, estimator, exact=True)
        assert relative_error(grads, {n: factor * g for n, g in truth.items()}) < 1e-8, estimator
    _, ift = fixed_point_hypergradient(mirror, theta_T, problem.params0, 0.0, 0.0, "ift", exact=True)
    assert cosine(ift, truth) < -0.999999


def test_identity_minimises_the_converged_objective_and_lambda_is_one():
    """E(M) ≥ E(I) when the inner problem reaches S (M ⪰ I, S independent of M); with κ, ι > 1 every factor has
    eigenvalue 1, so λ = 1 and k/λ has zero gradient."""
    problem, mirror = least_squares(seed=5, init_norm=1.5)
    at_m, _ = closed_form_objective_and_gradient(mirror, problem, 0.0, 0.0)
    identity = least_squares(seed=5, init_norm=0.0)[1]
    at_i, _ = closed_form_objective_and_gradient(identity, problem, 0.0, 0.0)
    assert float(at_m) > float(at_i)
    net_map, _ = small_map(init_norm=2.0)
    assert all(rows > 1 and cols > 1 for rows, cols, _ in net_map.dims.values())
    dense_min = min(float(torch.linalg.eigvalsh(net_map.dense_block(layer).detach()).min()) for layer in net_map.blocks)
    assert dense_min == pytest.approx(1.0)
    lam = net_map.strong_convexity()
    assert float(lam) == 1.0 and not lam.requires_grad  # k/λ does not depend on the factors at all


def test_frobenius_distance_keeps_its_digits_in_float32_near_the_identity():
    """A 256 × 785 block with ‖a‖ ≈ ‖b‖ ≈ 0.1 (the meta-training start): ‖M − I‖_F in float32 within 1e-5 of the
    float64 value; App. A.4's ‖A‖²‖B‖² − 2 tr A tr B + κι cancels numbers of size 2·10⁵ and misses by far more."""
    shapes = {"layer.weight": torch.Size([256, 784]), "layer.bias": torch.Size([256])}
    mirror = KroneckerMirrorMap(shapes, init_norm=0.1, generator=torch.Generator().manual_seed(0))
    exact = KroneckerMirrorMap(shapes, init_norm=0.1, generator=torch.Generator().manual_seed(0)).double()
    value, truth = float(mirror.frobenius_distance()), float(exact.frobenius_distance())
    assert abs(value - truth) <= 1e-5 * truth
    a, b = mirror.factors("layer")
    na, nb, rows, cols = a @ a, b @ b, 256, 785
    paper_form = ((1 + na) ** 2 + cols - 1) * ((1 + nb) ** 2 + rows - 1) - 2 * (cols + na) * (rows + nb) + cols * rows
    assert abs(float(paper_form.clamp_min(0).sqrt()) - truth) > 1e-3 * truth
