"""Optimizee families and networks: parameter counts of the paper's nets, batched losses equal separate passes, Lv et
al.'s combination with a convex function worked by hand."""


import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.learned_optimizers.rnnprop import RNNProp
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.datasets import DeviceDataset
from l2l_utils.tasks.models import ConvNet, conv_fc_groups, mlp
from l2l_utils.tasks.problems import (ClassifierTask, ConvexMixedProblem, ConvexMixedTask, QuadraticProblem,
                                      QuadraticTask, RandomlyScaledTask)


def _random_dataset(n, shape, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DeviceDataset(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g))


def test_mlp_task_parameter_count_matches_paper_mnist_net():
    task = ClassifierTask(mlp(784, [20], 10, "sigmoid"), _random_dataset(16, (784,)), batch_size=8)
    assert task.num_params == 784 * 20 + 20 + 20 * 10 + 10 == 15910
    kinds = [type(m) for m in task.module]
    assert kinds == [torch.nn.Linear, torch.nn.Sigmoid, torch.nn.Linear]


def test_classifier_task_batched_loss_equals_separate_forward_passes():
    data = _random_dataset(40, (784,))
    task = ClassifierTask(mlp(784, [20], 10, "sigmoid"), data, batch_size=8, init_std=0.5)
    problem = task.sample(3, torch.Generator().manual_seed(0))
    assert problem.params0["0.weight"].shape == (3, 20, 784)
    saved = problem.generator.get_state()
    loss = problem.loss(problem.params0)
    assert loss.shape == (3,)

    # the same minibatches, one per optimizee, then a plain forward pass per optimizee
    g = torch.Generator().set_state(saved)
    x, y = data.sample(8, g, num_batches=3)
    assert x.shape == (3, 8, 784)
    for i in range(3):
        params_i = {k: v[i] for k, v in problem.params0.items()}
        logits = functional_call(task.module, params_i, (x[i],))
        torch.testing.assert_close(loss[i], F.cross_entropy(logits, y[i]), rtol=1e-5, atol=1e-6)
        # ... and the same through the module's own layers with its weights replaced
        w1, b1, w2, b2 = (params_i[k] for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
        manual = F.cross_entropy(torch.sigmoid(x[i] @ w1.T + b1) @ w2.T + b2, y[i])
        torch.testing.assert_close(loss[i], manual, rtol=1e-5, atol=1e-6)
    assert len(set(loss.tolist())) == 3  # optimizees differ


def test_conv_fc_groups_split():
    names = [k for k, _ in ConvNet().named_parameters()]
    groups = conv_fc_groups(names)
    assert set(groups) == set(names)
    for k in names:
        assert groups[k] == ("conv" if k.startswith("conv.") else "fc")
    # independent of names: every parameter of a conv layer is "conv", of a linear layer "fc"
    net = ConvNet()
    for prefix, module in net.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            want = "conv" if isinstance(module, torch.nn.Conv2d) else "fc"
            for pname, _ in module.named_parameters():
                assert groups[f"{prefix}.{pname}"] == want
    assert set(groups.values()) == {"conv", "fc"}
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 3


def test_convnet_classifier_task_under_vmap_with_two_lstms():
    data = _random_dataset(12, (3, 32, 32))
    # the §3.3 architecture at reduced width, to keep the test fast on a CPU
    task = ClassifierTask(ConvNet(channels=(4, 4, 4), hidden=8), data, batch_size=4, group_fn=conv_fc_groups)
    assert set(task.groups.values()) == {"conv", "fc"}
    problem = task.sample(2, torch.Generator().manual_seed(0))
    saved = problem.generator.get_state()
    loss = problem.loss(problem.params0)
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    x, y = data.sample(4, torch.Generator().set_state(saved), num_batches=2)
    for i in range(2):
        single = F.cross_entropy(functional_call(task.module, {k: v[i] for k, v in problem.params0.items()},
                                                 (x[i],)), y[i])
        torch.testing.assert_close(loss[i], single, rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    opt = LSTMOptimizer(group_names=("conv", "fc"), preprocess_p=10.0, output_scale=0.1)
    traj = unroll(opt, problem, 1)
    assert traj.losses.shape == (2, 2) and np.isfinite(traj.losses).all()


# ------------------------------------------- Lv et al. 2017: combination with convex functions (their public code)
def _quadratic(theta):
    """f(θ) = ‖θ − y‖² with W = I, one run."""
    return QuadraticProblem(torch.eye(2, dtype=torch.float64)[None], torch.tensor([[1.0, -2.0]], dtype=torch.float64),
                            {"theta": theta})


def test_convex_mixing_loss_and_gradient_by_hand():
    """F(θ, x) = f(θ) + (1/n) Σ_i min((c_i x_i − a_i)², 10), worked by hand on n = 3 with one clipped term."""
    theta = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    a = torch.tensor([[0.5, -1.0, 0.2]], dtype=torch.float64)
    c = torch.tensor([[2.0, 1.0, 0.5]], dtype=torch.float64)
    problem = ConvexMixedProblem(_quadratic(theta), a, c)
    assert problem.params0["convex"].tolist() == [[0.0, 0.0, 0.0]]  # x starts at 0 (their Square: zeros)
    assert torch.equal(problem.params0["theta"], theta)
    # at x0 = 0 the convex part is mean(a²) = (0.25 + 1 + 0.04) / 3
    assert float(problem.loss(problem.params0)) == pytest.approx((0.5 ** 2 + 2 ** 2) + (0.25 + 1 + 0.04) / 3)

    x = torch.tensor([[1.0, 3.0, 1.0]], dtype=torch.float64, requires_grad=True)
    th = theta.clone().requires_grad_()
    value = problem.loss({"theta": th, "convex": x})
    # (2·1 − 0.5)² = 2.25; (1·3 + 1)² = 16 clipped to 10; (0.5·1 − 0.2)² = 0.09; f(θ) = 0.25 + 4
    assert float(value.detach()) == pytest.approx(4.25 + (2.25 + 10 + 0.09) / 3, rel=1e-12)
    g_theta, g_x = torch.autograd.grad(value.sum(), (th, x))
    # ∂/∂x_i = 2 c_i (c_i x_i − a_i) / n where not clipped, 0 where clipped
    assert g_x.tolist()[0] == pytest.approx([2 * 2.0 * 1.5 / 3, 0.0, 2 * 0.5 * 0.3 / 3], rel=1e-12)
    assert g_theta.tolist()[0] == pytest.approx([2 * (0.5 - 1.0), 2 * (0.0 + 2.0)], rel=1e-12)  # f's own gradient
    with pytest.raises(ValueError, match="already has a parameter"):
        ConvexMixedProblem(_quadratic(theta), a, c, key="theta")


def test_convex_mixed_task_draws_like_the_authors_code():
    """dim 20, a ~ U[−1, 1], c = exp(U[−1, 1]) per coordinate and run, fresh per problem, x0 = 0; the wrapped task's
    own draws come first, so its problem is unchanged; random scaling of the network composes inside."""
    task = QuadraticTask(dim=4, init_std=1.0)
    mixed_task = ConvexMixedTask(RandomlyScaledTask(task, 3.0))
    mixed = mixed_task.sample(3, torch.Generator().manual_seed(0))
    inner = RandomlyScaledTask(task, 3.0).sample(3, torch.Generator().manual_seed(0))
    assert set(mixed.params0) == {"theta", "convex"} and mixed.params0["convex"].shape == (3, 20)
    assert torch.equal(mixed.params0["theta"], inner.params0["theta"])
    assert torch.equal(mixed.problem.scales["theta"], inner.scales["theta"])
    a, c = mixed.targets, mixed.scales
    assert a.shape == c.shape == (3, 20) and len(torch.unique(a)) == 60 and len(torch.unique(c)) == 60
    assert bool((a.abs() <= 1).all()) and bool((c >= math.exp(-1)).all() and (c <= math.exp(1)).all())
    assert mixed.weight == 1.0 and mixed.clip == 10.0
    params = {k: torch.randn(v.shape, dtype=v.dtype) for k, v in mixed.params0.items()}
    expected = inner.loss({"theta": params["theta"]}) + ((c * params["convex"] - a) ** 2).clamp(max=10).mean(-1)
    torch.testing.assert_close(mixed.loss(params), expected)
    second = mixed_task.sample(3, torch.Generator().manual_seed(1))
    assert not torch.equal(second.targets, a)
    for bad in ({"dim": 0}, {"spread": -1.0}):
        with pytest.raises(ValueError):
            ConvexMixedTask(task, **bad)


def test_convex_mixed_problem_runs_under_a_learned_rule():
    """The extra coordinates are optimised with the network's (an additive rule sees one flat vector)."""
    mixed = ConvexMixedTask(QuadraticTask(dim=3), dim=5).sample(2, torch.Generator().manual_seed(0))
    out = unroll(RNNProp(init="authors"), mixed, 3)
    assert out.losses.shape == (4, 2) and np.isfinite(out.losses).all()
    assert out.params["convex"].shape == (2, 5)
