"""PowerSign and AddSign (Bello et al. 2017), the sign-based baselines of MetaMD §5."""

import math

import pytest
import torch

from l2l_utils.optimizers.baselines import make_baseline
from l2l_utils.optimizers.sign_optimizers import AddSign, PowerSign

BETA = 0.9
# gradients fed by hand; the mixed signs give, per step, the agreement sign(g)·sign(m) pinned in AGREEMENT
GRADS = [
    [1.0, -2.0, 0.5, 0.0, -1.0],
    [2.0, 1.0, -0.5, 3.0, 0.0],
    [-1.0, 0.5, 4.0, -0.2, 1.0],
]
# m1 = 0.1 g1 = [.1, -.2, .05, 0, -.1]; m2 = 0.9 m1 + 0.1 g2 = [.29, -.08, -.005, .3, -.09];
# m3 = 0.9 m2 + 0.1 g3 = [.161, -.022, .3955, .25, .019]
AGREEMENT = [
    [1.0, 1.0, 1.0, 0.0, 1.0],  # step 1: m = (1 - beta) g, so signs agree wherever g != 0
    [1.0, -1.0, 1.0, 1.0, 0.0],  # g = 1 against m = -0.08 disagrees; g = 0 gives 0
    [-1.0, -1.0, 1.0, -1.0, 1.0],
]
THETA0 = [0.3, -1.2, 2.0, -0.7, 0.0]


def _run(opt_cls, steps, lr=0.1, **kw):
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = opt_cls([theta], lr=lr, **kw)
    trajectory = []
    for g in GRADS[:steps]:
        theta.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        trajectory.append(theta.detach().clone())
    return trajectory


def _expected(factor, lr=0.1):
    """θ_t by hand in float64: m ← βm + (1−β)g, θ ← θ − lr·factor(sign(g)·sign(m))·g."""
    theta = torch.tensor(THETA0, dtype=torch.float64)
    m = torch.zeros(5, dtype=torch.float64)
    out = []
    for t, g in enumerate(GRADS):
        g = torch.tensor(g, dtype=torch.float64)
        m = BETA * m + (1 - BETA) * g
        agreement = torch.sign(g) * torch.sign(m)
        assert agreement.tolist() == AGREEMENT[t]
        theta = theta - lr * torch.tensor([factor(a) for a in agreement.tolist()], dtype=torch.float64) * g
        out.append(theta)
    return out


def test_moving_averages_by_hand():
    m = [0.0] * 5
    for g, agree, expected in zip(GRADS, AGREEMENT, [[.1, -.2, .05, 0, -.1], [.29, -.08, -.005, .3, -.09],
                                                     [.161, -.022, .3955, .25, .019]]):
        m = [BETA * a + (1 - BETA) * b for a, b in zip(m, g)]
        assert m == pytest.approx(expected, abs=1e-12)
        signs = [float(math.copysign(1, a) * math.copysign(1, b)) if a and b else 0.0 for a, b in zip(g, m)]
        assert signs == agree


def test_powersign_matches_the_formula_for_three_steps():
    factors = {1.0: math.e, -1.0: 1 / math.e, 0.0: 1.0}
    got = _run(PowerSign, 3)
    for theta, want in zip(got, _expected(factors.__getitem__)):
        torch.testing.assert_close(theta, want, rtol=1e-14, atol=1e-14)
    # step 1 by hand: every nonzero gradient is scaled by e (coordinate 3 has g = 0 and does not move)
    want1 = torch.tensor(THETA0, dtype=torch.float64) - 0.1 * math.e * torch.tensor(GRADS[0], dtype=torch.float64)
    torch.testing.assert_close(got[0], want1, rtol=1e-14, atol=1e-14)


def test_powersign_with_another_base():
    factors = {1.0: 2.0, -1.0: 0.5, 0.0: 1.0}
    for theta, want in zip(_run(PowerSign, 3, base=2.0), _expected(factors.__getitem__)):
        torch.testing.assert_close(theta, want, rtol=1e-14, atol=1e-14)


def test_addsign_matches_the_formula_for_three_steps():
    factors = {1.0: 2.0, -1.0: 0.0, 0.0: 1.0}
    got = _run(AddSign, 3)
    for theta, want in zip(got, _expected(factors.__getitem__)):
        torch.testing.assert_close(theta, want, rtol=1e-14, atol=1e-14)
    # step 2, coordinate 1: gradient and moving average disagree, factor alpha - 1 = 0, so it does not move
    assert got[1][1] == got[0][1]
    # step 2, coordinate 4: g = 0 there, the factor is alpha and the step is 0 anyway
    assert got[1][4] == got[0][4]


def test_addsign_with_another_alpha():
    factors = {1.0: 1.5, -1.0: -0.5, 0.0: 0.5}
    for theta, want in zip(_run(AddSign, 3, alpha=0.5), _expected(factors.__getitem__)):
        torch.testing.assert_close(theta, want, rtol=1e-14, atol=1e-14)


def test_zero_sign_factor_is_one_for_powersign_and_alpha_for_addsign():
    # sign(m) = 0 with g != 0: beta = 0.5, g1 = 1, g2 = -0.5 gives m2 = 0.5·(0.5·1) + 0.5·(-0.5) = 0 exactly,
    # so step 2 is θ1 − lr·factor·g2 with factor base⁰ = 1 (PowerSign) or alpha (AddSign)
    for cls, kw, factor in [(PowerSign, {"base": 3.0}, 1.0), (AddSign, {"alpha": 0.7}, 0.7)]:
        theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = cls([theta], lr=0.1, beta=0.5, **kw)
        theta.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        before = theta.detach().clone()
        theta.grad = torch.full((1,), -0.5, dtype=torch.float64)
        opt.step()
        assert opt.state[theta]["exp_avg"].item() == 0.0
        torch.testing.assert_close(theta.detach(), before + 0.1 * factor * 0.5, rtol=1e-14, atol=1e-14)


def _quadratic_loss(theta, h):
    return 0.5 * torch.einsum("...i,...ij,...j->", theta, h, theta)


@pytest.mark.parametrize("cls", [PowerSign, AddSign])
def test_stacked_independent_runs_match_separate_runs(cls):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    h = a @ a.transpose(-1, -2) + torch.eye(4, dtype=torch.float64)
    theta0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)

    stacked = theta0.clone().requires_grad_()
    opt = cls([stacked], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        _quadratic_loss(stacked, h).backward()
        opt.step()

    for b in range(3):
        single = theta0[b].clone().requires_grad_()
        opt = cls([single], lr=0.05)
        for _ in range(20):
            opt.zero_grad()
            _quadratic_loss(single, h[b]).backward()
            opt.step()
        torch.testing.assert_close(stacked[b].detach(), single.detach(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("cls", [PowerSign, AddSign])
def test_decreases_a_convex_quadratic_and_supports_closure(cls):
    h = torch.diag(torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64))
    theta = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    opt = cls([theta], lr=0.02)

    def closure():
        opt.zero_grad()
        loss = _quadratic_loss(theta, h)
        loss.backward()
        return loss

    first = closure().item()
    losses = [opt.step(closure).item() for _ in range(300)]
    assert losses[0] == pytest.approx(first)
    assert _quadratic_loss(theta, h).item() < 0.05 * first
    assert theta.grad is not None


def test_parameters_without_gradients_are_left_alone():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = PowerSign([a, b], lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and b not in opt.state
    assert not torch.equal(a.detach(), torch.ones(2))


@pytest.mark.parametrize("make, name", [
    (lambda p: PowerSign(p, lr=0.0), "lr"),
    (lambda p: PowerSign(p, lr=-1.0), "lr"),
    (lambda p: PowerSign(p, lr=0.1, beta=1.0), "beta"),
    (lambda p: PowerSign(p, lr=0.1, beta=-0.1), "beta"),
    (lambda p: PowerSign(p, lr=0.1, base=0.0), "base"),
    (lambda p: PowerSign(p, lr=0.1, base=-2.0), "base"),
    (lambda p: AddSign(p, lr=0.0), "lr"),
    (lambda p: AddSign(p, lr=0.1, beta=1.5), "beta"),
    (lambda p: AddSign(p, lr=0.1, alpha=-0.1), "alpha"),
    (lambda p: AddSign(p, lr=float("nan")), "lr"),
])
def test_bad_arguments_raise(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        make([torch.zeros(2, requires_grad=True)])


def test_edge_arguments_are_accepted():
    p = [torch.zeros(2, requires_grad=True)]
    PowerSign(p, lr=0.1, beta=0.0)
    AddSign(p, lr=0.1, alpha=0.0)


@pytest.mark.parametrize("name, cls", [("PowerSign", PowerSign), ("AddSign", AddSign)])
def test_registered_as_baselines(name, cls):
    theta = torch.zeros(3, requires_grad=True)
    opt = make_baseline(name, 0.1)([theta])
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["beta"] == 0.9
    if cls is PowerSign:
        assert opt.param_groups[0]["base"] == math.e
    else:
        assert opt.param_groups[0]["alpha"] == 1.0
