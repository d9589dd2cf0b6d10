"""MetaMD's outer loop (Algorithm 1) and meta-test plumbing: M stays positive definite, divergence is recorded
not raised, an interrupted meta-training resumes to identical numbers, the quadratic meta-training improves the
meta-objective, and the meta-test grid search / AUC behave as App. A.7 and A.13 describe."""

import numpy as np
import pytest
import torch

from l2l_utils.evaluation.convergence import run_to_convergence, tune_iterations
from l2l_utils.evaluation.meta_test import area_under_curve, evaluate_rule, grid_search, split_data
from l2l_utils.learned_optimizers.lstm_optimizer import PerParameterLearningRates
from l2l_utils.learned_optimizers.mirror_descent import DiagonalMirrorMap, KroneckerMirrorMap
from l2l_utils.meta_training import mirror_map_training as imt
from l2l_utils.optimizers.baselines import baseline_rule
from l2l_utils.storage.results import Checkpointer
from l2l_utils.tasks.datasets import DeviceDataset, ImageData
from l2l_utils.tasks.models import mlp
from l2l_utils.tasks.problems import ClassifierTask, QuadraticFamily2D, RegularisedProblem


def toy_tasks(n_tasks=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(n_tasks):
        x = torch.randn(64, 6, generator=g)
        y = (x[:, t] > 0).long()
        tasks.append(ClassifierTask(mlp(6, [5], 2, "relu"), DeviceDataset(x, y), batch_size=16, init_std=None))
    return tasks


def fresh_map(tasks):
    return KroneckerMirrorMap(tasks[0].shapes, init_norm=0.5, generator=torch.Generator().manual_seed(1))


CFG = imt.MetaMDConfig(meta_steps=4, tasks_per_step=2, inner_steps=10, inner_lr=0.2, meta_lr=0.05, seed=3)


def test_meta_training_keeps_m_positive_definite_and_records_history():
    tasks = toy_tasks()
    mirror = fresh_map(tasks)
    history = imt.meta_train_mirror(mirror, tasks, CFG, progress=False)
    assert history["meta_step"].tolist() == [0, 1, 2, 3, 4]  # 0: E on the validation problems before any update
    assert np.isfinite(history["meta_objective"].iloc[1:]).all() and (history["skipped_tasks"] == 0).all()
    assert np.isfinite(history["val_meta_objective"]).all()
    for layer in mirror.blocks:
        assert torch.linalg.eigvalsh(mirror.dense_block(layer).detach().double()).min() >= 1.0 - 1e-5  # aaᵀ + I ⪰ I


def test_divergent_inner_training_is_recorded_not_raised():
    tasks = toy_tasks()
    mirror = fresh_map(tasks)
    history = imt.meta_train_mirror(mirror, tasks, imt.MetaMDConfig(meta_steps=2, tasks_per_step=2, inner_steps=50,
                                                                     inner_lr=1e30, seed=0), progress=False)
    assert (history["skipped_tasks"].iloc[1:] == 2).all() and history["meta_objective"].isna().all()


def test_interrupted_meta_training_resumes_to_identical_numbers(tmp_path, monkeypatch):
    tasks = toy_tasks()
    full = fresh_map(tasks)
    expected = imt.meta_train_mirror(full, tasks, CFG, progress=False)
    checkpointer = Checkpointer(tmp_path / "metamd.ckpt")
    real, calls = imt.mirror_hypergradient, {"n": 0}

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # during the third meta-step
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(imt, "mirror_hypergradient", crash)
    with pytest.raises(KeyboardInterrupt):
        imt.meta_train_mirror(fresh_map(tasks), tasks, CFG, checkpointer, progress=False)
    assert checkpointer.load()["done"] == 2
    monkeypatch.setattr(imt, "mirror_hypergradient", real)
    resumed = fresh_map(tasks)
    history = imt.meta_train_mirror(resumed, tasks, CFG, checkpointer, progress=False)
    assert history.equals(expected)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_algorithm1_with_the_default_estimator_lowers_E_on_fixed_validation_problems():
    """The default (unrolled) hypergradient is a descent direction: E on the fixed validation problems falls over a
    few meta-steps (the validation problems are not the training ones, so this is not E of the tasks stepped on)."""
    tasks = toy_tasks()
    cfg = imt.MetaMDConfig(meta_steps=5, tasks_per_step=2, inner_steps=20, inner_lr=0.3, meta_lr=0.05, seed=3)
    assert cfg.estimator == "unrolled"
    down = imt.meta_train_mirror(fresh_map(tasks), tasks, cfg, progress=False, val_tasks=2)["val_meta_objective"]
    assert down.iloc[-1] < down.iloc[0] and (down.diff().iloc[1:] < 0).mean() >= 0.8


def test_algorithm1_averages_over_the_tasks_that_gave_a_hypergradient(monkeypatch):
    """Line 8 divides by k; when a task is skipped the mean is over the others (not a sum divided by k)."""
    tasks = toy_tasks()
    real, seen = imt.mirror_hypergradient, []

    def one_fails(*args, **kwargs):
        result = real(*args, **kwargs)
        seen.append(result)
        if len(seen) == 1:
            result.diverged = True
        return result

    monkeypatch.setattr(imt, "mirror_hypergradient", one_fails)
    cfg = imt.MetaMDConfig(meta_steps=1, tasks_per_step=2, inner_steps=5, inner_lr=0.2, meta_lr=0.05, seed=3)
    mirror = fresh_map(tasks)
    before = {n: p.detach().clone() for n, p in mirror.named_parameters()}
    imt.meta_train_mirror(mirror, tasks, cfg, progress=False)
    # Adam's first step is lr · g/(|g| + ε) elementwise: compare with the step on the surviving task's gradient
    reference = fresh_map(tasks)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.05)
    for n, p in reference.named_parameters():
        p.grad = seen[1].grads[n].clone()
    optimizer.step()
    halved = fresh_map(tasks)
    optimizer = torch.optim.Adam(halved.parameters(), lr=0.05)
    for n, p in halved.named_parameters():
        p.grad = seen[1].grads[n] / 2
    optimizer.step()
    for (n, p), q in zip(mirror.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.detach(), q.detach())
    assert any(not torch.equal(a, b) for a, b in zip(reference.state_dict().values(), before.values()))
    _ = halved  # Adam is scale-invariant after one step, so /2 and /1 agree there; the clip test below tells them apart


def test_hypergradient_norm_clipping_bounds_the_averaged_gradient(monkeypatch):
    tasks = toy_tasks()
    captured = []
    real_step = torch.optim.Adam.step

    def capture(self, *args, **kwargs):
        captured.append(torch.sqrt(sum(p.grad.pow(2).sum() for g in self.param_groups for p in g["params"])))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", capture)
    cfg = imt.MetaMDConfig(meta_steps=2, tasks_per_step=2, inner_steps=5, inner_lr=0.2, meta_lr=0.05, seed=3,
                           clip_norm=1e-6)
    imt.meta_train_mirror(fresh_map(tasks), tasks, cfg, progress=False)
    assert len(captured) == 2 and all(float(c) == pytest.approx(1e-6, rel=1e-4) for c in captured)


def test_quadratic_meta_training_lowers_the_meta_objective_and_learns_the_curvature():
    family = QuadraticFamily2D(q_mean=(0.3, 14.0))
    mirror = DiagonalMirrorMap(2).double()
    cfg = imt.QuadraticMetaConfig(meta_steps=150, tasks_per_step=8, inner_steps=300, inner_lr=0.05, seed=0)
    history = imt.meta_train_diagonal(mirror, family, cfg, progress=False)
    assert history["meta_objective"].iloc[-10:].mean() < 0.5 * history["meta_objective"].iloc[:3].mean()
    m = mirror.m.detach()
    assert m[0] < m[1]  # a smaller M (larger step) along the flat direction Q00 ≈ 0.3 than along Q11 ≈ 14


def test_run_to_convergence_counts_iterations_and_reports_failures():
    problem = QuadraticFamily2D().sample(1, torch.Generator().manual_seed(0))
    iters, path = run_to_convergence(baseline_rule("SGD", 0.03), problem, 1e-6, 5000)
    assert 1 <= iters <= 5000 and len(path) == iters + 1
    assert float(problem.gap(torch.tensor(path[-1:]))) < 1e-6
    assert run_to_convergence(baseline_rule("SGD", 1.0), problem, 1e-6, 200)[0] == 201  # diverges
    best, scores = tune_iterations(lambda lr: baseline_rule("SGD", lr), [0.001, 0.03], [problem], 1e-6, 5000)
    assert best == 0.03 and scores[0.001] > scores[0.03]


def test_grid_search_picks_the_best_validation_accuracy_and_auc_is_the_area():
    tasks = toy_tasks(1)
    task = tasks[0]
    val = task.dataset
    best, table = grid_search(lambda lr: baseline_rule("SGD", lr), [1e-6, 0.5], [0.0], task, val, 60, seed=0)
    assert best["lr"] == 0.5 and table["val_accuracy"].max() == table.loc[table["lr"] == 0.5, "val_accuracy"].iloc[0]
    curves, scores = evaluate_rule(baseline_rule("SGD", 0.5), task, val, 30, trials=2, seed=0, optimizer="SGD")
    assert set(curves["step"]) == set(range(31)) and len(scores) == 2
    assert np.allclose(area_under_curve(np.ones((101, 2))), 1.0)


def test_weight_decay_is_an_l2_penalty_and_meta_sgd_scales_gradients():
    task = toy_tasks(1)[0]
    problem = task.sample(2, torch.Generator().manual_seed(0))
    params = {k: v.clone() for k, v in problem.params0.items()}
    penalty = 0.05 * sum(v.pow(2).flatten(1).sum(1) for v in params.values())
    zero_loss = type("ZeroLoss", (), {"params0": params, "groups": None, "loss": lambda self, p: torch.zeros(2)})()
    torch.testing.assert_close(RegularisedProblem(zero_loss, 0.1).loss(params), penalty)  # ½·wd·‖θ‖² per run
    rule = PerParameterLearningRates({k: v.shape[1:] for k, v in params.items()}, init_lr=0.3)
    grads = {k: torch.ones_like(v) for k, v in params.items()}
    updates, _ = rule(grads, rule.initial_state(params))
    assert all(torch.allclose(u, torch.full_like(u, -0.3)) for u in updates.values())


def test_split_data_is_a_seeded_partition():
    data = ImageData(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10) % 2, "x", "train", [0, 1])
    a, b = split_data(data, 0.8, seed=1)
    assert len(a) == 8 and len(b) == 2
    assert sorted(torch.cat([a.images, b.images]).flatten().tolist()) == list(range(10))
    with pytest.raises(ValueError, match="fraction"):
        split_data(data, 1.0)
