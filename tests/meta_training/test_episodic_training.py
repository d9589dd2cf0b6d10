"""The episodic outer loop (Huisman et al. Algorithm 1, App. A): meta-validation every ``val_every``
tasks with the best checkpoint kept, divergence recorded instead of a crash, checkpoint/resume with
identical results, cached runs, and the transfer baselines' support-set training."""

import pytest
import torch

from l2l_utils.evaluation.transfer_baselines import CosineClassifier, evaluate_transfer, make_head, train_on_support
from l2l_utils.learned_optimizers.meta_learners import MAML, Turtle
from l2l_utils.meta_training import episodic_training
from l2l_utils.meta_training.episodic_training import (EpisodicConfig, evaluate, fixed_episodes, train_and_test,
                                                       train_meta_learner)
from l2l_utils.storage.results import Checkpointer
from l2l_utils.tasks.episodes import EpisodeBatch, SineTasks
from l2l_utils.tasks.models import FunctionalNetwork, mlp, sine_network

SINE = SineTasks(support=5, query=10)


def small_setup(seed=0):
    torch.manual_seed(seed)
    net = mlp(1, [8], 1, "relu")
    return net, FunctionalNetwork(net, "regression"), fixed_episodes(SINE, 20, 123, 10, "cpu")


def test_validation_schedule_and_best_checkpoint_is_restored():
    net, learner, val = small_setup()
    meta = MAML(dict(net.named_parameters()))
    cfg = EpisodicConfig(train_tasks=30, meta_batch=2, steps=1, val_every=10, val_tasks=20, eval_chunk=10)
    history, best = train_meta_learner(meta, learner, SINE, val, cfg, progress=False)
    assert history["tasks"].tolist() == [10, 20, 30]
    assert best["val"] == history["val_loss"].min()
    assert best["tasks"] == int(history.loc[history["val_loss"].idxmin(), "tasks"])
    # the model left in place is the best one: re-evaluating gives the best validation loss
    again = evaluate(meta, learner, val, cfg.test_steps, cfg.eval_chunk)["loss"].mean()
    assert again == pytest.approx(best["val"], rel=1e-6)


def test_meta_training_reduces_the_validation_loss_of_maml_on_sine_waves():
    net, learner, val = small_setup()
    meta = MAML(dict(sine_network().named_parameters()))
    cfg = EpisodicConfig(train_tasks=600, meta_batch=4, steps=1, val_every=600, val_tasks=20, eval_chunk=10,
                         meta_lr=3e-3)
    before = evaluate(meta, learner := FunctionalNetwork(sine_network(), "regression"), val, 1)["loss"].mean()
    history, _ = train_meta_learner(meta, learner, SINE, val, cfg, progress=False)
    assert history["val_loss"].iloc[-1] < 0.9 * before


def test_non_finite_updates_are_recorded_not_raised():
    net, learner, val = small_setup()
    meta = Turtle(dict(net.named_parameters()), hidden_layers=1, hidden=4)
    with torch.no_grad():
        meta.rates.fill_(float("nan"))  # every proposed step is NaN
    cfg = EpisodicConfig(train_tasks=6, meta_batch=2, steps=2, val_every=6, val_tasks=20, eval_chunk=10)
    history, best = train_meta_learner(meta, learner, SINE, val, cfg, progress=False)
    assert history["skipped_updates"].tolist() == [3]
    assert history["val_loss"].tolist() == [float("inf")]
    test = evaluate(meta, learner, val, 2, 10)
    assert test["loss"].isna().all()


def test_interrupted_meta_training_resumes_to_identical_results(tmp_path, monkeypatch):
    cfg = EpisodicConfig(train_tasks=40, meta_batch=2, steps=2, val_every=10, val_tasks=20, eval_chunk=10,
                         clip_value=10.0)

    def make():
        torch.manual_seed(7)
        return Turtle(dict(small_setup()[0].named_parameters()), hidden_layers=2, hidden=8)

    _, learner, val = small_setup()
    full = make()
    history_full, _ = train_meta_learner(full, learner, SINE, val, cfg, progress=False)

    calls = {"n": 0}
    real = episodic_training.evaluate

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    checkpointer = Checkpointer(tmp_path / "run.ckpt")
    monkeypatch.setattr(episodic_training, "evaluate", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train_meta_learner(make(), learner, SINE, val, cfg, checkpointer=checkpointer, progress=False)
    assert checkpointer.load()["done"] == 20
    monkeypatch.setattr(episodic_training, "evaluate", real)
    resumed = make()
    history_resumed, _ = train_meta_learner(resumed, learner, SINE, val, cfg, checkpointer=checkpointer, progress=False)
    assert history_resumed.equals(history_full)
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_train_and_test_is_cached_per_setting(tmp_path):
    _, learner, val = small_setup()
    cfg = EpisodicConfig(train_tasks=4, meta_batch=2, steps=1, val_every=4, val_tasks=20, eval_chunk=10)
    make = lambda: MAML(dict(mlp(1, [8], 1, "relu").named_parameters()))  # noqa: E731
    first = train_and_test(make, learner, SINE, val, val, cfg, tmp_path, "maml", {"T": 1}, progress=False)
    again = train_and_test(make, learner, SINE, val, val, cfg, tmp_path, "maml", {"T": 1}, progress=False)
    assert not first["reused"] and again["reused"]
    assert again["test"]["loss"].tolist() == pytest.approx(first["test"]["loss"].tolist())
    assert len(first["test"]) == 20 and first["seconds"] > 0
    # the gate's reference: the same meta-learner (same seed) evaluated on the validation tasks before meta-training
    torch.manual_seed(cfg.seed)
    untrained = make()
    expected = float(evaluate(untrained, learner, val, cfg.test_steps, cfg.eval_chunk)["loss"].mean())
    assert first["val_before"] == pytest.approx(expected) and again["val_before"] == first["val_before"]
    other = train_and_test(make, learner, SINE, val, val, cfg, tmp_path, "maml", {"T": 2}, progress=False)
    assert not other["reused"]


def separable_tasks(num_tasks=3, n_way=2, shots=4, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_tasks, n_way, 1, dim, generator=generator) * 5

    def draw(k):
        x = centres + 0.1 * torch.randn(num_tasks, n_way, k, dim, generator=generator)
        y = torch.arange(n_way).view(1, -1, 1).expand(num_tasks, n_way, k)
        return x.reshape(num_tasks, -1, dim), y.reshape(num_tasks, -1)

    (sx, sy), (qx, qy) = draw(shots), draw(5)
    return EpisodeBatch(sx, sy, qx, qy)


def test_support_training_learns_separable_tasks_and_keeps_the_best_support_state():
    batch = separable_tasks()
    head = torch.nn.Linear(6, 2)
    inits = [{k: torch.zeros_like(v) for k, v in head.named_parameters()} for _ in range(len(batch))]
    scores = train_on_support(head, inits, batch.support_x, batch.support_y, batch.query_x, batch.query_y,
                              steps=100, batch_size=4, eval_every=25, lr=1e-1)
    assert scores["accuracy"].tolist() == [1.0, 1.0, 1.0]
    # with a learning rate of 0 nothing changes, and the zero head (accuracy 1/N) is what gets tested
    frozen = train_on_support(head, inits, batch.support_x, batch.support_y, batch.query_x, batch.query_y,
                              steps=50, batch_size=4, eval_every=25, lr=0.0)
    assert frozen["accuracy"].tolist() == [0.5, 0.5, 0.5]


def test_cosine_classifier_is_scaled_cosine_similarity():
    head = CosineClassifier(3, 2, scale=2.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 3.0, 0]]))
    out = head(torch.tensor([[2.0, 0, 0], [1.0, 1.0, 0]]))
    torch.testing.assert_close(out, 2.0 * torch.tensor([[1.0, 0.0], [2 ** -0.5, 2 ** -0.5]]))
    with pytest.raises(ValueError, match="allowed values"):
        make_head("ProtoNet", 3, 2)


def test_transfer_baselines_run_on_conv4_episodes():
    from l2l_utils.tasks.models import Conv4

    generator = torch.Generator().manual_seed(0)
    batch = EpisodeBatch(torch.rand(2, 5, 1, 28, 28, generator=generator), torch.arange(5).repeat(2, 1),
                         torch.rand(2, 10, 1, 28, 28, generator=generator), torch.arange(5).repeat(2, 2))
    backbone = Conv4(1, 5, 28, channels=8)
    for kind in ("TrainFromScratch", "Finetuning", "Baseline++"):
        frame = evaluate_transfer(kind, backbone, lambda: Conv4(1, 5, 28, channels=8), [batch], 5, steps=4,
                                  eval_every=2)
        assert list(frame.columns) == ["task", "loss", "accuracy"] and len(frame) == 2
        assert frame["accuracy"].between(0, 1).all()


def test_the_episodic_estimator_puts_the_finite_difference_meta_gradient_into_grad():
    """EpisodicQueryLoss (the driver's unit for MAML, the meta-learner LSTM and TURTLE): Σ_j L_q(θ_j^(T)) with second
    order, its gradient in .grad equal to central finite differences of that query loss."""
    from l2l_utils.learned_optimizers.meta_learners import Turtle
    from l2l_utils.meta_training.episodic_training import EpisodicQueryLoss
    from l2l_utils.tasks.models import FunctionalNetwork, mlp

    torch.manual_seed(0)
    net = mlp(1, [4], 1, "sigmoid").double()
    learner = FunctionalNetwork(net, "regression")
    batch = SINE.sample(2, torch.Generator().manual_seed(1))
    batch = EpisodeBatch(*(t.double() for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)))

    class Fixed:
        def sample(self, n, generator, device=None):
            return batch

    meta = Turtle(dict(net.named_parameters()), hidden_layers=1, hidden=3).double()
    cfg = EpisodicConfig(meta_batch=2, steps=2, second_order=True)
    estimate = EpisodicQueryLoss(learner, Fixed(), cfg).step(meta, torch.Generator(), 2)
    assert not estimate.failed and estimate.amount == 2

    def query_loss():
        params = meta.adapt(learner, batch.support_x, batch.support_y, 2)
        return float(learner.loss(params, batch.query_x, batch.query_y).sum())

    for name, p in list(meta.named_parameters())[:3]:
        flat, h = p.data.view(-1), 1e-6
        old = flat[0].item()
        flat[0] = old + h
        up = query_loss()
        flat[0] = old - h
        down = query_loss()
        flat[0] = old
        assert p.grad.view(-1)[0].item() == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9), name
