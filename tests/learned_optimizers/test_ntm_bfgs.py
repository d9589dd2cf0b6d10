"""NTM-BFGS / NTM-L-BFGS (Andrychowicz et al. 2016, App. D) pinned to the appendix: outer-product writes and
matrix-vector reads (Fig. 14), and App. D's statement that one read head, three write heads and two GACs reproduce
inverse-Hessian BFGS (checked against the textbook BFGS written below, Nocedal & Wright Eq. 6.17, unit step as in
App. D's read(M, θ) = −M∇f(θ)); the sliding-history memory against L-BFGS's two-loop recursion."""

import pytest
import torch

from l2l_utils.learned_optimizers.ntm_bfgs import FullMemory, HistoryMemory, bfgs_controller, ntm_bfgs
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT, train_learned_optimizer
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.problems import QuadraticTask

from helpers import check_meta_gradient_by_finite_differences

D = torch.float64


def test_full_memory_write_and_read_by_hand():
    memory = FullMemory(init=2.0)
    M = memory.initial(1, 2, dtype=D)
    a = torch.tensor([[[1.0, 0.0], [2.0, 1.0]]], dtype=D)  # (runs, N, heads): heads (1, 2) and (0, 1)
    b = torch.tensor([[[3.0, 1.0], [4.0, 1.0]]], dtype=D)  # heads (3, 4) and (1, 1)
    M = memory.write(M, a, b)
    # 2I + (1,2)(3,4)ᵀ + (0,1)(1,1)ᵀ = [[2+3, 4], [6+1, 2+8+1]]
    assert M[0].tolist() == [[5.0, 4.0], [7.0, 11.0]]
    r = torch.tensor([[[1.0], [-1.0]]], dtype=D)
    assert memory.read(M, r)[0, :, 0].tolist() == [1.0, -4.0]


def test_history_memory_is_the_sliding_sum_of_the_last_pairs():
    g = torch.Generator().manual_seed(0)
    memory, n, size = HistoryMemory(size=4, init=0.5), 5, 4
    state, kept = memory.initial(2, n, dtype=D), []
    for _ in range(7):
        a, b = torch.randn(2, n, 2, generator=g, dtype=D), torch.randn(2, n, 2, generator=g, dtype=D)
        state = memory.write(state, a, b)
        kept = (kept + [(a[..., h], b[..., h]) for h in range(2)])[-size:]
        explicit = 0.5 * torch.eye(n, dtype=D) + sum(torch.einsum("ri,rj->rij", x, y) for x, y in kept)
        r = torch.randn(2, n, 1, generator=g, dtype=D)
        torch.testing.assert_close(memory.read(state, r), explicit @ r)
    with pytest.raises(ValueError, match="at least 1"):
        HistoryMemory(0)


def _quadratic(runs=3, n=6, seed=0):
    """f(x) = ½xᵀAx − bᵀx with A symmetric positive definite; its gradient and A's largest eigenvalue."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(runs, n, n, generator=g, dtype=D)
    A = A @ A.transpose(1, 2) + torch.eye(n, dtype=D)
    b = torch.randn(runs, n, generator=g, dtype=D)
    return (lambda x: torch.einsum("rij,rj->ri", A, x) - b), float(torch.linalg.eigvalsh(A).max())


def textbook_bfgs(grad, x, h0, iterations, step=1.0):
    """Inverse-Hessian BFGS (Nocedal & Wright Eq. 6.17), x ← x − step · H∇f(x), H_0 = h0 I; the iterates."""
    n = x.shape[1]
    H = [h0 * torch.eye(n, dtype=D) for _ in range(x.shape[0])]
    iterates, gx = [x], grad(x)
    for _ in range(iterations):
        x_new = x - step * torch.stack([H[r] @ gx[r] for r in range(len(H))])
        g_new = grad(x_new)
        for r in range(len(H)):
            s, y = x_new[r] - x[r], g_new[r] - gx[r]
            rho = 1.0 / torch.dot(y, s)
            left = torch.eye(n, dtype=D) - rho * torch.outer(s, y)
            H[r] = left @ H[r] @ left.T + rho * torch.outer(s, s)
        x, gx = x_new, g_new
        iterates.append(x)
    return iterates, H


def two_loop_lbfgs(grad, x, h0, iterations, m, step=1.0):
    """L-BFGS with history m (Nocedal & Wright Alg. 7.4, H_0 = h0 I), x ← x − step · H∇f(x), one run."""
    pairs, iterates, gx = [], [x], grad(x[None])[0]
    for _ in range(iterations):
        q, alphas = gx.clone(), []
        for s, y in reversed(pairs):
            alpha = torch.dot(s, q) / torch.dot(y, s)
            q, alphas = q - alpha * y, [alpha] + alphas
        r = h0 * q
        for (s, y), alpha in zip(pairs, alphas):
            r = r + s * (alpha - torch.dot(y, r) / torch.dot(y, s))
        x_new = x - step * r
        g_new = grad(x_new[None])[0]
        pairs = (pairs + [(x_new - x, g_new - gx)])[-m:]
        x, gx = x_new, g_new
        iterates.append(x)
    return iterates


def run_rule(rule, grad, x, steps):
    """The rule on a dict of two tensors (a 2×2 and a rest) holding the coordinates of x; θ after every step."""
    split = lambda v: {"w": v[:, :4].reshape(-1, 2, 2), "b": v[:, 4:]}  # noqa: E731
    join = lambda d: torch.cat([d["w"].reshape(d["w"].shape[0], -1), d["b"]], 1)  # noqa: E731
    params = split(x)
    state, out = rule.init(params), [x]
    for t in range(steps):
        params, state = rule.update(params, split(grad(join(params))), state, t)
        out.append(join(params))
    return out, state


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_ntm_bfgs_construction_reproduces_inverse_hessian_bfgs(step):
    grad, largest = _quadratic()
    x0 = torch.randn(3, 6, generator=torch.Generator().manual_seed(1), dtype=D)
    h0, K = 1.0 / largest, 8
    rule = bfgs_controller(6, step=step, initial_inverse_hessian=h0)
    assert rule.reads == 1 and rule.writes == 3 and sum(layer.gac for layer in rule.layers) == 2
    ours, state = run_rule(rule, grad, x0, 2 * K)
    reference, _ = textbook_bfgs(grad, x0, h0, K, step)
    for k in range(K + 1):  # two steps of the rule per BFGS iteration; step A leaves θ where it is
        torch.testing.assert_close(ours[2 * k], reference[k], rtol=1e-9, atol=1e-12)
        if k < K:
            torch.testing.assert_close(ours[2 * k + 1], ours[2 * k])
    # the memory is BFGS's inverse Hessian approximation H_{K-1} (the pair of iteration K-1 is written at the next
    # step B) and satisfies the secant equation H_{K-1} y_{K-2} = s_{K-2}
    _, H = textbook_bfgs(grad, x0, h0, K - 1, step)
    torch.testing.assert_close(state["memory"], torch.stack(H), rtol=1e-8, atol=1e-10)
    s, y = reference[K - 1] - reference[K - 2], grad(reference[K - 1]) - grad(reference[K - 2])
    torch.testing.assert_close(torch.einsum("rij,rj->ri", state["memory"], y), s, rtol=1e-7, atol=1e-10)


def test_ntm_bfgs_construction_minimises_the_quadratic():
    grad, largest = _quadratic(seed=2)
    x0 = torch.zeros(3, 6, dtype=D)
    ours, _ = run_rule(bfgs_controller(6, initial_inverse_hessian=1.0 / largest), grad, x0, 2 * 40)
    assert grad(ours[-1]).norm() < 1e-6 * grad(x0).norm()


def test_ntm_l_bfgs_with_room_for_every_write_is_ntm_bfgs():
    grad, largest = _quadratic(seed=3)
    x0 = torch.randn(3, 6, generator=torch.Generator().manual_seed(4), dtype=D)
    K = 6
    full, _ = run_rule(bfgs_controller(6, initial_inverse_hessian=1 / largest), grad, x0, 2 * K)
    # three write pairs per step, 2K steps
    limited, _ = run_rule(bfgs_controller(6, initial_inverse_hessian=1 / largest, memory_size=6 * K), grad, x0, 2 * K)
    torch.testing.assert_close(limited[-1], full[-1], rtol=1e-10, atol=1e-12)


def test_ntm_l_bfgs_with_one_iterations_writes_is_lbfgs_with_history_one():
    """A history of 3 write pairs: step A's (empty) writes push out the older pair before H y is read, so H y is
    read from H_0, as L-BFGS with m = 1 computes it."""
    grad, largest = _quadratic(runs=1, seed=5)
    x0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(6), dtype=D)
    K = 10
    ours, _ = run_rule(bfgs_controller(6, initial_inverse_hessian=1 / largest, memory_size=3), grad, x0, 2 * K)
    reference = two_loop_lbfgs(grad, x0[0], 1 / largest, K, m=1)
    for k in range(K + 1):
        torch.testing.assert_close(ours[2 * k][0], reference[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("memory_size", [None, 6])
def test_runs_have_their_own_memory(memory_size):
    torch.manual_seed(0)
    rule = ntm_bfgs(preprocess_p=None, memory_size=memory_size).double()
    g = torch.randn(2, 5, dtype=D)
    changed = g.clone()
    changed[1] += 1.0
    params = {"x": torch.zeros_like(g)}
    s1, s2 = rule.init(params), rule.init(params)
    for _ in range(3):
        u1, s1 = rule({"x": g}, s1)
        u2, s2 = rule({"x": changed}, s2)
    torch.testing.assert_close(u1["x"][0], u2["x"][0])
    assert not torch.allclose(u1["x"][1], u2["x"][1])


@pytest.mark.parametrize("memory_size", [None, 4])
def test_meta_gradient_matches_finite_differences(memory_size):
    torch.manual_seed(1)
    rule = ntm_bfgs(hidden_size=4, gac=2, memory_size=memory_size, preprocess_p=None, init_std=0.3).double()
    problem = QuadraticTask(dim=4, init_std=0.5).sample(2, torch.Generator().manual_seed(0))
    problem.W, problem.y = problem.W.double(), problem.y.double()
    problem.params0 = {k: v.double() for k, v in problem.params0.items()}
    meta = lambda: unroll(rule, problem, 4, order="second", start=unroll(rule, problem, 0)).meta_loss  # noqa: E731
    check_meta_gradient_by_finite_differences(rule, meta)


@pytest.mark.parametrize("memory_size", [None, 6])
def test_meta_trainable_with_truncated_bptt(memory_size):
    torch.manual_seed(2)
    rule = ntm_bfgs(memory_size=memory_size, preprocess_p=None)
    before = {k: v.clone() for k, v in rule.state_dict().items()}
    cfg = MetaTrainConfig(steps=10, unroll=5, meta_batch=4, epochs=2, trajectories_per_epoch=2, val_problems=4,
                          meta_lr=1e-2)
    TruncatedBPTT(QuadraticTask(dim=5), cfg).step(rule, torch.Generator().manual_seed(0), 1)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in rule.parameters())
    history, _ = train_learned_optimizer(rule, QuadraticTask(dim=5), cfg, progress=False)
    assert len(history) == 2 and history["val_final_loss"].notna().all()
    assert any(not torch.equal(before[k], v) for k, v in rule.state_dict().items())


def test_ntm_l_bfgs_with_a_longer_history_is_not_lbfgs():
    """6m − 3 write pairs keep the writes of m BFGS pairs, but each was computed from the memory of its own time, not
    recomputed from H_0 as the two-loop recursion does: for m = 2 the iterates part (App. D claims no equivalence;
    the notebook measures the gap)."""
    grad, largest = _quadratic(runs=1, seed=5)
    x0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(6), dtype=D)
    K = 10
    ours, _ = run_rule(bfgs_controller(6, initial_inverse_hessian=1 / largest, memory_size=9), grad, x0, 2 * K)
    reference = two_loop_lbfgs(grad, x0[0], 1 / largest, K, m=2)
    assert max(float((ours[2 * k][0] - reference[k]).norm() / reference[k].norm()) for k in range(K + 1)) > 1e-3
