"""One interface test suite for every update rule of the collection (``init`` / ``update``): shapes, one step against
a value worked out by hand from the paper's equation, differentiability where a meta-gradient must flow, and the
torch.optim adapter giving exactly torch.optim's numbers."""

import math

import pytest
import torch

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer, PerParameterLearningRates, preprocess_gradient
from l2l_utils.learned_optimizers.meta_learners import MAML, MetaLearnerLSTM, Turtle, theorem1_parameters
from l2l_utils.learned_optimizers.mirror_descent import (DiagonalMirrorDescent, DiagonalMirrorMap, KroneckerMirrorMap,
                                                         MirrorDescentOptimizer)
from l2l_utils.learned_optimizers.aruba import ArubaRates, ArubaRule
from l2l_utils.learned_optimizers.meta_curvature import MetaCurvature
from l2l_utils.optimizers.baselines import TORCH_OPTIMIZERS, baseline_rule
from l2l_utils.optimizers.update_rules import Context, GradientStep, TorchOptimizerRule, UpdateRule

E = math.e


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"layer.weight": torch.randn(2, 3, 4, generator=g, dtype=torch.float64),
            "layer.bias": torch.randn(2, 3, generator=g, dtype=torch.float64)}


def _grads(seed=1):
    return _params(seed)


def _shapes():
    return {k: v.shape[1:] for k, v in _params().items()}


def _kronecker():
    torch.manual_seed(0)
    return KroneckerMirrorMap(_shapes(), init_norm=1.0, generator=torch.Generator().manual_seed(2)).double()


def _dense_mirror_step(mirror, params, grads, lr):
    """θ − η (A ⊗ B)⁻¹ vec(∇) with the dense Kronecker product (column-major vec)."""
    out = {}
    for run in range(2):
        G = torch.cat([grads["layer.weight"][run], grads["layer.bias"][run][:, None]], 1)
        vec = G.T.reshape(-1)
        step = torch.linalg.solve(mirror.dense_block("layer"), vec).reshape(G.shape[1], G.shape[0]).T
        out.setdefault("layer.weight", []).append(params["layer.weight"][run] - lr * step[:, :4])
        out.setdefault("layer.bias", []).append(params["layer.bias"][run] - lr * step[:, 4])
    return {k: torch.stack(v) for k, v in out.items()}


def _by_hand(name, params, grads):
    """The first step of each rule from its equation."""
    lr = 0.05
    if name in ("SGD", "GradientStep", "MAML", "meta-learner LSTM (Theorem 1)", "SGD-M", "Meta-Curvature (untrained)",
                "ARUBA (no task seen)"):
        # SGD-M: the buffer starts at the gradient; Meta-Curvature: identity matrices; ARUBA: η = ε/ζ = 1
        return {k: params[k] - lr * grads[k] for k in params}
    if name == "NAG":  # torch's Nesterov: buf = g, step along g + 0.9·buf
        return {k: params[k] - lr * 1.9 * grads[k] for k in params}
    if name in ("ADAM", "AdamW"):  # m̂ = g, v̂ = g²: Δ = −lr g / (|g| + ε) (AdamW without decay: Adam)
        return {k: params[k] - lr * grads[k] / (grads[k].abs() + 1e-8) for k in params}
    if name == "RMSprop":  # v = 0.01 g²: Δ = −lr g / (√v + ε)
        return {k: params[k] - lr * grads[k] / ((0.01 * grads[k] ** 2).sqrt() + 1e-8) for k in params}
    if name == "PowerSign":  # sign(m) = sign(g) at step 1: Δ = −lr e g
        return {k: params[k] - lr * E * grads[k] for k in params}
    if name == "AddSign":  # Δ = −lr (1 + 1) g
        return {k: params[k] - lr * 2 * grads[k] for k in params}
    raise KeyError(name)


RULES = {
    **{name: (lambda name=name: baseline_rule(name, 0.05)) for name in TORCH_OPTIMIZERS},
    "GradientStep": lambda: GradientStep(0.05),
    "MAML": lambda: MAML({k: v[0] for k, v in _params().items()}, inner_lr=0.05),
    "meta-learner LSTM (Theorem 1)": lambda: theorem1_parameters(
        MetaLearnerLSTM({k: v[0] for k, v in _params().items()}).double(), 0.05),
    "Meta-SGD": lambda: PerParameterLearningRates(_shapes(), init_lr=0.05).double(),
    "mirror descent (Kronecker)": lambda: MirrorDescentOptimizer(_kronecker(), 0.05),
    "LSTM optimizer": lambda: LSTMOptimizer(preprocess_p=10.0, output_scale=0.1).double(),
    "TURTLE": lambda: Turtle({k: v[0] for k, v in _params().items()}, hidden_layers=2, hidden=4).double(),
    "Meta-Curvature (untrained)": lambda: MetaCurvature(_shapes(), lr=0.05).double(),
    "ARUBA (no task seen)": lambda: ArubaRule(ArubaRates(_shapes()).double(), 0.05),
}


def _expected(name, rule, params, grads):
    if name in ("Meta-SGD",):
        return {k: params[k] - rule.rates[rule.keys[k]] * grads[k] for k in params}
    if name == "mirror descent (Kronecker)":
        return _dense_mirror_step(rule.mirror, params, grads, 0.05)
    if name == "LSTM optimizer":  # θ + 0.1 · head(LSTM(preprocess(∇))) for every coordinate, fresh state
        net = rule.nets["all"]
        flat = torch.cat([grads[k].reshape(-1) for k in params])
        x = preprocess_gradient(flat, 10.0)
        for cell in net.cells:
            h, _ = cell(x, (torch.zeros(len(flat), 20, dtype=x.dtype), torch.zeros(len(flat), 20, dtype=x.dtype)))
            x = h
        update = (0.1 * net.head(x).squeeze(-1)).split([grads[k].numel() for k in params])
        return {k: params[k] + u.view_as(params[k]) for k, u in zip(params, update)}
    if name == "TURTLE":  # θ + α ⊙ g_φ([∇, h = ∇, t = 0]) at the first step
        flat = torch.cat([grads[k].reshape(2, -1) for k in params], 1)
        step = rule.rates * rule.net(torch.stack((flat, flat, torch.zeros_like(flat)), -1)).squeeze(-1)
        new = torch.cat([params[k].reshape(2, -1) for k in params], 1) + step
        return {k: chunk.reshape(params[k].shape) for k, chunk in zip(params, new.split([3 * 4, 3], 1))}
    return _by_hand(name, params, grads)


@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_has_the_interface_and_takes_the_step_of_its_equation(name):
    rule = RULES[name]()
    assert isinstance(rule, UpdateRule)
    params, grads = _params(), _grads()
    context = Context(loss=torch.ones(2, dtype=torch.float64), groups={k: "all" for k in params})
    state = rule.init(params, context)
    with torch.no_grad():
        new, state = rule.update(params, grads, state, 0, context)
    assert set(new) == set(params) and all(new[k].shape == params[k].shape for k in params)
    expected = _expected(name, rule, params, grads)
    for k in params:
        torch.testing.assert_close(new[k].detach(), expected[k].detach(), rtol=1e-10, atol=1e-12, msg=f"{name} {k}")
    # a second step runs on the returned state
    with torch.no_grad():
        again, _ = rule.update({k: v.clone() for k, v in new.items()}, grads, state, 1, context)
    assert all(torch.isfinite(again[k]).all() for k in again)


@pytest.mark.parametrize("name", [n for n in RULES if RULES[n]().differentiable])
def test_differentiable_rules_carry_the_meta_gradient(name):
    """The new parameters depend differentiably on the old ones and on the rule's own (learned) parameters, and the
    autograd derivative matches a central finite difference along a random direction."""
    rule = RULES[name]()
    params = {k: v.clone().requires_grad_() for k, v in _params().items()}
    grads = _grads()
    context = Context(loss=torch.ones(2, dtype=torch.float64), groups={k: "all" for k in params})
    # the rule's own learned parameters (an episodic meta-learner's initialisation θ is not used by its update)
    learned = [p for n, p in (rule.named_parameters() if isinstance(rule, torch.nn.Module) else [])
               if p.requires_grad and not n.startswith("initialisation")]
    direction = {k: torch.randn_like(v) for k, v in params.items()}

    def objective():
        new, _ = rule.update(params, grads, rule.init(params, context), 0, context)
        return sum((new[k] * direction[k]).sum() for k in new)

    inputs = list(params.values()) + learned
    derivative = torch.autograd.grad(objective(), inputs, allow_unused=True)
    assert all(d is not None for d in derivative[:len(params)])
    if learned:
        assert any(d is not None and float(d.abs().max()) > 0 for d in derivative[len(params):])
        target = learned[0]
        with torch.no_grad():
            probe = torch.randn_like(target)
            h = 1e-6
            target += h * probe
            up = float(objective())
            target -= 2 * h * probe
            down = float(objective())
            target += h * probe
        analytic = float((derivative[len(params)] * probe).sum()) if derivative[len(params)] is not None else 0.0
        assert analytic == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("name", list(TORCH_OPTIMIZERS))
def test_the_torch_optim_adapter_gives_torch_optims_numbers(name):
    """Five steps through the adapter equal five steps of the torch.optim optimizer driven directly."""
    theta = torch.randn(2, 5, generator=torch.Generator().manual_seed(3))
    direct = theta.clone().requires_grad_()
    optimizer = TORCH_OPTIMIZERS[name]([direct], 0.05)
    rule = TorchOptimizerRule(lambda p: TORCH_OPTIMIZERS[name](p, 0.05))
    params, state = {"theta": theta.clone()}, None
    state = rule.init(params)
    for t in range(5):
        grad = torch.sin(3.0 * direct.detach() + t)
        direct.grad = grad.clone()
        optimizer.step()
        params, state = rule.update(params, {"theta": grad.clone()}, state, t)
        assert torch.equal(params["theta"].detach(), direct.detach())
    assert not rule.differentiable


def test_diagonal_mirror_descent_divides_by_m():
    mirror = DiagonalMirrorMap(2).double()
    with torch.no_grad():
        mirror.log_m.copy_(torch.tensor([0.0, math.log(4.0)], dtype=torch.float64))
    rule = DiagonalMirrorDescent(mirror, 0.5)
    new, _ = rule.update({"theta": torch.ones(1, 2, dtype=torch.float64)},
                         {"theta": torch.tensor([[2.0, 8.0]], dtype=torch.float64)}, None, 0)
    torch.testing.assert_close(new["theta"], torch.tensor([[1 - 0.5 * 2.0, 1 - 0.5 * 8.0 / 4]], dtype=torch.float64))


def test_state_numel_counts_what_each_rule_keeps_between_steps():
    """Counted by hand from each algorithm: Adam keeps two moments per coordinate (and one step counter per tensor),
    SGD with momentum one buffer, plain SGD nothing; the L2L LSTM keeps h and c of two layers of 20 units per
    coordinate (80); Meta-SGD keeps nothing (its rates are meta-parameters, not state)."""
    from l2l_utils.optimizers.update_rules import state_numel

    params = {"w": torch.randn(3, 4, 5), "b": torch.randn(3, 5)}  # 3 runs, 25 coordinates each
    grads = {k: torch.randn_like(v) for k, v in params.items()}
    coordinates = 3 * 25

    def after_one_step(rule):
        state = rule.init(params)
        return state_numel(rule.update(params, grads, state, 0)[1])

    assert after_one_step(baseline_rule("ADAM", 1e-3)) == 2 * coordinates + 2  # exp_avg, exp_avg_sq; 2 step counters
    assert after_one_step(baseline_rule("SGD-M", 1e-3)) == coordinates  # one momentum buffer
    assert after_one_step(baseline_rule("SGD", 1e-3)) == 0
    assert after_one_step(LSTMOptimizer(preprocess_p=10.0)) == 2 * 2 * 20 * coordinates
    assert after_one_step(PerParameterLearningRates({"w": (4, 5), "b": (5,)})) == 0
