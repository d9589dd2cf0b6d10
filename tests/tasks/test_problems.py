"""Optimizee families and networks: parameter counts of the paper's nets, batched losses equal separate passes."""


import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.datasets import DeviceDataset
from l2l_utils.tasks.models import ConvNet, conv_fc_groups, mlp
from l2l_utils.tasks.problems import ClassifierTask


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
