"""Optimizee tasks, hand-designed baselines and divergence handling (Andrychowicz et al. 2016 §3)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from l2l_utils.baselines import BASELINES, make_baseline, run_baseline, tune_learning_rate
from l2l_utils.datasets import DeviceDataset
from l2l_utils.learned_optimizers import LSTMOptimizer
from l2l_utils.unroll import Unrolled, unroll
from l2l_utils.update_rules import GradientStep, TorchOptimizerRule
from l2l_utils.tasks import ClassifierTask, QuadraticTask
from l2l_utils.models import ConvNet, conv_fc_groups, mlp


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


# --------------------------------------------------------------------------------- divergence
def test_trajectory_marks_nan_from_first_non_finite_step():
    losses = np.array([[1.0, 1.0, 1.0], [0.5, np.inf, 2.0], [0.2, 3.0, np.nan], [0.1, 4.0, 5.0]])
    traj = Unrolled(losses.copy(), {})
    np.testing.assert_array_equal(traj.losses[:, 0], [1.0, 0.5, 0.2, 0.1])
    np.testing.assert_array_equal(traj.losses[:, 1], [1.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(traj.losses[:, 2], [1.0, 2.0, np.nan, np.nan])
    np.testing.assert_array_equal(traj.diverged, [False, True, True])
    np.testing.assert_array_equal(traj.final[:1], [0.1])


class ScaledSquares:
    """f_i(θ) = c_i Σ θ²: with SGD at lr 0.1, c = 1000 multiplies θ by -199 per step and overflows."""

    def __init__(self, scales):
        self.scales = torch.tensor(scales)
        self.params0 = {"theta": torch.ones(len(scales), 2)}
        self.groups = {"theta": "all"}

    def loss(self, params):
        return self.scales * params["theta"].pow(2).sum(-1)


def _first_non_finite(values):
    bad = [t for t, v in enumerate(values) if not math.isfinite(v)]
    return bad[0] if bad else None


def test_run_baseline_divergence_of_one_run():
    problem = ScaledSquares([1.0, 1000.0])
    steps = 30
    traj = run_baseline("SGD", 0.1, problem, steps)  # must not raise
    np.testing.assert_array_equal(traj.diverged, [False, True])
    assert np.isfinite(traj.losses[:, 0]).all()
    # reference: the diverging run alone, float32 like the batch
    theta = torch.ones(2)
    values = []
    for _ in range(steps + 1):
        values.append(float(1000.0 * theta.pow(2).sum()))
        theta = theta - 0.1 * 1000.0 * 2 * theta
    k = _first_non_finite(values)
    assert k is not None and 0 < k < steps
    np.testing.assert_allclose(traj.losses[:k, 1], values[:k], rtol=1e-5)
    assert np.isnan(traj.losses[k:, 1]).all()
    # the healthy run is unaffected by its neighbour blowing up
    alone = run_baseline("SGD", 0.1, ScaledSquares([1.0]), steps).losses[:, 0]
    np.testing.assert_allclose(traj.losses[:, 0], alone, rtol=1e-6)


def test_unroll_divergence_of_one_run():
    steps = 30
    traj = unroll(GradientStep(0.1), ScaledSquares([1.0, 1000.0]), steps)
    np.testing.assert_array_equal(traj.diverged, [False, True])
    reference = run_baseline("SGD", 0.1, ScaledSquares([1.0, 1000.0]), steps).losses
    np.testing.assert_allclose(traj.losses, reference, rtol=1e-5, equal_nan=True)


class NaNAfterMoving:
    """Run 1's loss is NaN as soon as θ leaves θ0; run 0 is a plain quadratic."""

    def __init__(self):
        self.params0 = {"theta": torch.full((2, 3), 0.5)}
        self.groups = {"theta": "all"}

    def loss(self, params):
        theta = params["theta"]
        value = theta.pow(2).sum(-1)
        moved = (theta[1] != self.params0["theta"][1]).any()
        poison = torch.tensor([0.0, float("nan") if moved else 0.0])
        return value + poison


def test_unroll_lstm_with_nan_loss_in_one_run():
    torch.manual_seed(0)
    traj = unroll(LSTMOptimizer(preprocess_p=10.0, output_scale=0.1), NaNAfterMoving(), 5)
    np.testing.assert_array_equal(traj.diverged, [False, True])
    assert np.isfinite(traj.losses[:, 0]).all()
    assert traj.losses[0, 1] == pytest.approx(0.75)
    assert np.isnan(traj.losses[1:, 1]).all()


def test_every_run_diverging_pads_with_nan():
    traj = run_baseline("SGD", 0.1, ScaledSquares([1000.0, 2000.0]), 40)
    assert traj.losses.shape == (41, 2)
    assert traj.diverged.all()


# -------------------------------------------------------------------------------------- tasks
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
