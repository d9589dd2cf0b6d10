"""Hand-designed baselines from torch.optim through the update-rule interface, and their learning-rate tuning
(Andrychowicz et al. 2016 §3)."""

import math

import numpy as np
import pytest
import torch

from l2l_utils.optimizers.baselines import BASELINES, make_baseline, run_baseline, tune_learning_rate
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.optimizers.update_rules import TorchOptimizerRule
from l2l_utils.tasks.problems import QuadraticTask


def _quadratics(n=4, dim=3, seed=0):
    return QuadraticTask(dim=dim, init_std=0.1).sample(n, torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ baseline tuning
def test_tune_learning_rate_picks_lowest_mean_final_loss_and_rejects_divergence():
    rates = [10.0, 1e-3, 3e-3, 1e-2, 3e-2]
    steps = 25
    best, table = tune_learning_rate("SGD", rates, lambda: _quadratics(), steps)

    mine = {}
    for lr in rates:
        final = run_baseline("SGD", lr, _quadratics(), steps).final
        mine[lr] = float(np.mean(final)) if np.all(np.isfinite(final)) else math.inf
    assert math.isinf(mine[10.0])  # SGD with lr = 10 diverges on these quadratics
    assert table.set_index("lr")["mean_final_loss"].to_dict() == pytest.approx(mine)
    assert math.isinf(table.set_index("lr").loc[10.0, "mean_final_loss"])
    assert best == min((v, lr) for lr, v in mine.items())[1]
    assert best != 10.0


def test_tune_learning_rate_never_picks_a_diverging_rate_even_if_first_or_last():
    for rates in ([10.0, 1e-2], [1e-2, 10.0]):
        best, table = tune_learning_rate("SGD", rates, lambda: _quadratics(), 25)
        assert best == 1e-2


def _single_run_trajectory(make_opt, W, y, theta0, steps):
    """Plain torch.optim loop on one optimizee f(θ) = ||Wθ - y||², written independently."""
    theta = theta0.detach().clone().requires_grad_()
    opt = make_opt([theta])
    losses = []
    for t in range(steps + 1):
        opt.zero_grad()
        loss = ((W @ theta - y) ** 2).sum()
        loss.backward()
        losses.append(loss.item())
        if t < steps:
            opt.step()
    return np.array(losses)


REFERENCE_OPTIMIZERS = {
    "ADAM": lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.999), eps=1e-8),
    "RMSprop": lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8),
    "NAG": lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
    "SGD": lambda p, lr: torch.optim.SGD(p, lr=lr),
}


@pytest.mark.parametrize("name", ["ADAM", "RMSprop", "NAG", "SGD"])
def test_batched_baseline_equals_running_each_optimizee_alone(name):
    problem = _quadratics(n=3, dim=4, seed=1)
    lr, steps = 0.01, 15
    batched = run_baseline(name, lr, problem, steps).losses
    assert batched.shape == (steps + 1, 3)
    for i in range(3):
        alone = _single_run_trajectory(lambda p: REFERENCE_OPTIMIZERS[name](p, lr), problem.W[i], problem.y[i],
                                       problem.params0["theta"][i], steps)
        np.testing.assert_allclose(batched[:, i], alone, rtol=2e-5, atol=1e-6)


def test_nag_is_nesterov_momentum_0_9_and_differs_from_heavy_ball():
    theta = torch.zeros(3, requires_grad=True)
    defaults = make_baseline("NAG", 0.05)([theta]).defaults
    assert defaults["momentum"] == 0.9 and defaults["nesterov"] is True and defaults["lr"] == 0.05
    problem = _quadratics(n=2, dim=3, seed=2)
    nag = run_baseline("NAG", 0.01, problem, 10).losses
    heavy = unroll(TorchOptimizerRule(lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)), problem, 10).losses
    assert not np.allclose(nag, heavy)


def test_baseline_names_and_unknown_baseline():
    assert {"SGD", "RMSprop", "ADAM", "NAG"} <= set(BASELINES)
    with pytest.raises(ValueError, match="NAG"):
        make_baseline("Adagrad", 0.1)


def test_a_grid_that_stops_short_grows_and_the_edge_is_reported():
    from l2l_utils.evaluation.comparison import tuned_at_edge

    rates = [1e-4, 3e-4]  # far below SGD's best rate on these quadratics
    best, table = tune_learning_rate("SGD", rates, lambda: _quadratics(), 25)
    assert best == 3e-4 and tuned_at_edge(table) == ["SGD"] and not table["extended"].any()
    grown, table = tune_learning_rate("SGD", rates, lambda: _quadratics(), 25, max_extensions=2)
    assert grown > 3e-4 and table["extended"].sum() >= 1


# ------------------------------------------------------------------------------ AdamW (MetaMD Table 2)
def test_adamw_rule_equals_torch_adamw_used_directly():
    from l2l_utils.optimizers.baselines import AdamWRule

    problem = _quadratics()
    run = unroll(AdamWRule(0.05, 0.01), problem, 10)
    leaves = {k: v.detach().clone().requires_grad_() for k, v in problem.params0.items()}
    optimizer = torch.optim.AdamW(list(leaves.values()), lr=0.05, weight_decay=0.01)
    for _ in range(10):
        optimizer.zero_grad()
        problem.loss(leaves).sum().backward()
        optimizer.step()
    for k in leaves:
        assert torch.equal(run.params[k].detach(), leaves[k].detach())


def test_adamw_first_step_by_hand():
    # θ0 = 1, g = 0.5, lr = 0.1, wd = 0.1: m̂ = g, v̂ = g², θ1 = θ0 − lr·(g/(|g| + 1e-8) + wd·θ0) = 1 − 0.1 − 0.01
    from l2l_utils.optimizers.baselines import AdamWRule

    rule = AdamWRule(0.1).with_weight_decay(0.1)
    params = {"w": torch.ones(1, 1)}
    new, _ = rule.update(params, {"w": torch.full((1, 1), 0.5)}, rule.init(params), 0)
    assert float(new["w"].detach()) == pytest.approx(0.89, abs=1e-7)


def test_train_runs_hands_adamw_its_decay_instead_of_an_l2_loss():
    from l2l_utils.evaluation.meta_test import train_runs
    from l2l_utils.optimizers.baselines import AdamWRule, baseline_rule

    class Task:
        def sample(self, n, generator):
            return _quadratics(n, seed=int(torch.randint(100, (1,), generator=generator)))

    decoupled = train_runs(baseline_rule("AdamW", 0.05), Task(), 8, 2, seed=3, weight_decay=0.1)
    direct = unroll(AdamWRule(0.05, 0.1), Task().sample(2, torch.Generator().manual_seed(3)), 8)
    assert np.allclose(decoupled.losses, direct.losses)  # the loss recorded has no ½·wd·‖θ‖² term
    coupled = train_runs(baseline_rule("ADAM", 0.05), Task(), 8, 2, seed=3, weight_decay=0.1)
    assert not np.allclose(decoupled.losses, coupled.losses)


class _TwoTensorProblem:
    """f(W, b) = ||W x + b − y||² + ¼ Σ W⁴ per run: a non-quadratic problem with two parameter tensors."""

    def __init__(self, n=3, seed=4):
        g = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g)
        self.params0 = {"w": 0.5 * torch.randn(n, 3, 4, generator=g), "b": 0.5 * torch.randn(n, 3, generator=g)}

    def loss(self, params):
        residual = torch.einsum("nij,nj->ni", params["w"], self.x) + params["b"] - self.y
        return residual.pow(2).sum(-1) + 0.25 * params["w"].pow(4).flatten(1).sum(-1)


@pytest.mark.parametrize("name", ["SGD", "SGD-M", "NAG", "RMSprop", "ADAM"])
def test_baseline_through_the_interface_equals_torch_optim_foreach_for_many_steps(name):
    """100 steps of unroll(baseline_rule) equal 100 steps of a plain loop with torch.optim's foreach implementation
    (another code path than the default per-tensor one on a CPU) on the same losses, to 1e-6."""
    from l2l_utils.optimizers.baselines import TORCH_OPTIMIZERS, baseline_rule

    problem, lr, steps = _TwoTensorProblem(), 0.01, 100
    ours = unroll(baseline_rule(name, lr), problem, steps)
    leaves = [v.clone().requires_grad_() for v in problem.params0.values()]
    optimizer = TORCH_OPTIMIZERS[name](leaves, lr)
    for group in optimizer.param_groups:
        group["foreach"] = True
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = problem.loss(dict(zip(problem.params0, leaves)))
        losses.append(loss.detach())
        loss.sum().backward()
        optimizer.step()
    losses.append(problem.loss(dict(zip(problem.params0, leaves))).detach())
    np.testing.assert_allclose(ours.losses, torch.stack(losses).numpy(), rtol=1e-6, atol=1e-6)
    for (k, theta), leaf in zip(ours.params.items(), leaves):
        torch.testing.assert_close(theta.detach(), leaf.detach(), rtol=1e-6, atol=1e-6)
    assert ours.losses[-1].mean() < 0.5 * ours.losses[0].mean()  # it optimised: the comparison is not of constants
