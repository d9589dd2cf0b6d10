"""MetaMD's formulas against direct computations on small sizes (MetaMD §4.2-4.4, App. A.2-A.6, A.12):
the Kronecker step equals (A ⊗ B)⁻¹ vec(∇), the Bregman divergence, ‖M − I‖_F and λ equal their dense
versions, the Neumann-series hypergradient converges to the exact IFT one, and forward-mode equals
reverse-mode differentiation through the unrolled quadratic trajectory."""

import pytest
import torch

from l2l_utils.hypergradients import forward_mode_hypergradient, implicit_hypergradient, neumann_inverse_hvp
from l2l_utils.mirror_descent import DiagonalMirrorMap, KroneckerMirrorMap, layer_blocks
from l2l_utils.tasks import QuadraticFamily2D, mlp


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
    _, exact = implicit_hypergradient(mirror, theta_T, theta1, k=0.1, gamma=0.01, exact=True)
    errors = []
    for terms in (5, 20, 3000):
        _, approx = implicit_hypergradient(mirror, theta_T, theta1, k=0.1, gamma=0.01, terms=terms)
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


def test_ift_hypergradient_has_the_minus_sign_eq13_omits():
    """For one direction of M the exact IFT derivative of B_φM(θ*(M)‖θ1) along the rephrased problem is
    ½ddᵀ − ddᵀ = −½ddᵀ (direct + indirect); Eq. 13 without the minus sign would give +3/2 ddᵀ."""
    mirror = KroneckerMirrorMap({"w": torch.Size([1, 1])}, init_norm=0.0).double()
    with torch.no_grad():
        mirror.a["w"].fill_(0.7)
        mirror.b["w"].fill_(0.0)
    theta1 = {"w": torch.zeros(1, 1, 1, dtype=torch.float64)}
    theta_T = {"w": torch.full((1, 1, 1), 2.0, dtype=torch.float64)}
    _, grads = implicit_hypergradient(mirror, theta_T, theta1, k=0.0, gamma=0.0, exact=True)
    # M = (a² + 1)(b² + 1) = a² + 1 here; dM/da = 2a; d = 2: dE/dM = −½ d² = −2, so dE/da = −2 · 2a
    torch.testing.assert_close(grads["a.w"], torch.tensor([-2.0 * 2 * 0.7], dtype=torch.float64))
    # Eq. 13 as printed (the notebook's ablation): ½ddᵀ + ddᵀ = 3/2 ddᵀ, so dE/da = +6 · 2a
    _, printed = implicit_hypergradient(mirror, theta_T, theta1, k=0.0, gamma=0.0, exact=True, as_printed=True)
    torch.testing.assert_close(printed["a.w"], torch.tensor([6.0 * 2 * 0.7], dtype=torch.float64))


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
