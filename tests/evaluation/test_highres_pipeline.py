"""The pieces the high-resolution setting of MetaMD (§5.2, App. A.9-A.11, A.14) adds to the meta-test pipeline:
20-class meta-training tasks, the learned M and Meta-SGD rates carried to a classifier of another size, accuracy
curves during training (Fig. 4, 6), fine-tuning from given weights, and the ImageNet ResNet-18 file reader."""

import numpy as np
import pytest
import torch
import torchvision

from l2l_utils.evaluation.meta_test import evaluate_rule
from l2l_utils.learned_optimizers.lstm_optimizer import PerParameterLearningRates
from l2l_utils.learned_optimizers.mirror_descent import KroneckerMirrorMap
from l2l_utils.optimizers.baselines import baseline_rule
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.datasets import DatasetMissingError, DeviceDataset, imagenet_resnet18
from l2l_utils.tasks.datasets.pretrained import RESNET18_FILE
from l2l_utils.tasks.models import mlp, resnet18
from l2l_utils.tasks.problems import ClassifierTask, ClassSubsetTask


def labelled_data(n_classes=6, per_class=10, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = torch.randn(len(y), dim, generator=g) + y[:, None].float()
    return DeviceDataset(x, y)


def test_class_subset_tasks_draw_k_classes_afresh_and_relabel_them():
    data = labelled_data()
    task = ClassSubsetTask(mlp(5, [4], 3, "relu"), data, n_classes=3, batch_size=64, vectorize=False)
    g = torch.Generator().manual_seed(0)
    seen = []
    for _ in range(6):
        problem = task.sample(2, g)
        sub = problem.task.dataset
        assert len(sub) == 30 and set(sub.targets.tolist()) == {0, 1, 2}
        rows = [int(torch.nonzero((data.inputs == row).all(1))[0]) for row in sub.inputs]
        original_labels = data.targets[rows]
        seen.append(tuple(sorted(set(original_labels.tolist()))))
        # the relabelling is a bijection between the 3 chosen classes and 0..2
        pairs = set(zip(original_labels.tolist(), sub.targets.tolist()))
        assert len(pairs) == 3 and len({a for a, _ in pairs}) == 3 and len({b for _, b in pairs}) == 3
        assert problem.params0["0.weight"].shape == (2, 4, 5)
    assert len(set(seen)) > 1  # different draws give different class subsets


def test_class_subset_task_rejects_bad_sizes():
    data = labelled_data()
    with pytest.raises(ValueError, match="n_classes"):
        ClassSubsetTask(mlp(5, [4], 7, "relu"), data, n_classes=7)
    with pytest.raises(ValueError, match="outputs"):
        ClassSubsetTask(mlp(5, [4], 4, "relu"), data, n_classes=3)


def test_start_from_module_uses_the_module_weights_for_every_run():
    torch.manual_seed(0)
    net = mlp(5, [4], 2, "relu")
    task = ClassifierTask(net, labelled_data(2), init_std=None, start_from_module=True, vectorize=False)
    problem = task.sample(3, torch.Generator().manual_seed(0))
    for name, p in net.named_parameters():
        assert torch.equal(problem.params0[name], p.detach().expand(3, *p.shape))
    fresh = ClassifierTask(net, labelled_data(2), init_std=None).sample(3, torch.Generator().manual_seed(0))
    assert not torch.equal(fresh.params0["0.weight"], problem.params0["0.weight"])


def test_mirror_transfer_keeps_matching_factors_and_makes_a_new_classifier_row_factor_the_identity():
    small = {k: v.shape for k, v in mlp(5, [4], 3, "relu").named_parameters()}
    big = {k: v.shape for k, v in mlp(5, [4], 7, "relu").named_parameters()}
    mirror = KroneckerMirrorMap(small, init_norm=2.0, generator=torch.Generator().manual_seed(0)).double()
    same = mirror.transfer(small).double()
    grads = {k: torch.randn(*s, dtype=torch.float64) for k, s in small.items()}
    for k, v in mirror.precondition(grads).items():
        torch.testing.assert_close(same.precondition(grads)[k], v)
    moved = mirror.transfer(big).double()
    assert torch.equal(moved.a["0"], mirror.a["0"]) and torch.equal(moved.b["0"], mirror.b["0"])
    assert torch.equal(moved.a["2"], mirror.a["2"]) and not moved.b["2"].any()
    # on the 7-way classifier M⁻¹∇ = B⁻¹ G A⁻¹ with B = I: every row is G_row A⁻¹ of the meta-learned A
    g = {k: torch.randn(*s, dtype=torch.float64) for k, s in big.items()}
    a = mirror.a["2"].detach()
    a_inv = torch.eye(5, dtype=torch.float64) - torch.outer(a, a) / (1 + a @ a)
    stacked = torch.cat([g["2.weight"], g["2.bias"][:, None]], 1) @ a_inv
    out = moved.precondition(g)
    torch.testing.assert_close(torch.cat([out["2.weight"], out["2.bias"][:, None]], 1), stacked)


def test_meta_sgd_transfer_copies_matching_rates_and_averages_classifier_rows():
    small = {k: v.shape for k, v in mlp(5, [4], 3, "relu").named_parameters()}
    big = {k: v.shape for k, v in mlp(5, [4], 7, "relu").named_parameters()}
    rule = PerParameterLearningRates(small, 0.1)
    with torch.no_grad():
        for p in rule.rates.values():
            p.uniform_(0.0, 1.0, generator=torch.Generator().manual_seed(p.numel()))
    moved = rule.transfer(big)
    assert torch.equal(moved.rates["0__weight"], rule.rates["0__weight"])
    torch.testing.assert_close(moved.rates["2__weight"], rule.rates["2__weight"].mean(0).expand(7, 4))
    torch.testing.assert_close(moved.rates["2__bias"], rule.rates["2__bias"].mean().expand(7))


def test_monitor_sees_every_iterate_and_the_last_one_is_the_final_params():
    task = ClassifierTask(mlp(5, [4], 2, "relu"), labelled_data(2), batch_size=8, init_std=None, vectorize=False)
    for run in (lambda p, m: unroll(baseline_rule("SGD", 0.1), p, 5, monitor=m),
                lambda p, m: unroll(PerParameterLearningRates(task.shapes, 0.1), p, 5, monitor=m)):
        problem = task.sample(2, torch.Generator().manual_seed(0))
        seen = {}
        trajectory = run(problem, lambda t, params: seen.__setitem__(t, {k: v.clone() for k, v in params.items()}))
        assert sorted(seen) == list(range(6))
        assert all(torch.equal(seen[0][k], problem.params0[k]) for k in seen[0])
        assert all(torch.equal(seen[5][k], trajectory.params[k].detach()) for k in seen[5])


def test_accuracy_curves_start_at_the_initial_accuracy_and_end_at_the_reported_test_accuracy():
    data = labelled_data(2, per_class=40)
    task = ClassifierTask(mlp(5, [4], 2, "relu"), data, batch_size=16, init_std=None, vectorize=False)
    curves, scores = evaluate_rule(baseline_rule("SGD", 0.2), task, data, 9, trials=2, seed=3, accuracy_every=4,
                                     train_data=data, optimizer="SGD")
    marked = curves.dropna(subset=["test_accuracy"])
    assert sorted(set(marked["step"])) == [0, 4, 8, 9]
    start = task.accuracy(task.sample(2, torch.Generator().manual_seed(3)).params0, data).numpy()
    np.testing.assert_allclose(marked[marked["step"] == 0].sort_values("trial")["train_accuracy"], start)
    np.testing.assert_allclose(marked[marked["step"] == 9].sort_values("trial")["test_accuracy"],
                               scores["test_accuracy"])
    with pytest.raises(ValueError, match="accuracy_every"):
        evaluate_rule(PerParameterLearningRates(task.shapes), task, data, 3, 1, 0, accuracy_every=0,
                        train_data=data)


def test_imagenet_resnet18_loads_a_torchvision_state_dict_except_the_classifier(tmp_path):
    with pytest.raises(DatasetMissingError, match=RESNET18_FILE):
        imagenet_resnet18(5, tmp_path)
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    (tmp_path / "pretrained").mkdir()
    torch.save(source.state_dict(), tmp_path / "pretrained" / RESNET18_FILE)
    model = imagenet_resnet18(5, tmp_path)
    reference = dict(source.named_parameters())
    for name, p in model.named_parameters():
        if name.startswith("fc."):
            assert p.shape[0] == 5
        else:
            assert torch.equal(p, reference[name]), name
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in resnet18(5).parameters())
    torch.save({"conv1.weight": source.conv1.weight}, tmp_path / "pretrained" / RESNET18_FILE)
    with pytest.raises(ValueError, match="ResNet-18"):
        imagenet_resnet18(5, tmp_path)
