"""Truncated-BPTT meta-training pinned to Andrychowicz et al. 2016 §2 (Eq. 3, Fig. 2): the unroller's first-order
meta-gradient, the estimator on the shared driver, determinism, resume and divergence."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT, train_learned_optimizer
from l2l_utils.optimizers.unroll import loss_and_grads, unroll
from l2l_utils.storage import results
from l2l_utils.storage.results import Checkpointer
from l2l_utils.tasks.datasets import DeviceDataset
from l2l_utils.tasks.models import mlp
from l2l_utils.tasks.problems import ClassifierTask, QuadraticTask

UNROLL = 3


class QuarticProblem:
    """f(θ) = Σ θ⁴ per run: its Hessian 12 θ² depends on θ (duck-typed problem interface)."""

    def __init__(self, theta0: torch.Tensor):
        self.params0 = {"theta": theta0}
        self.groups = {"theta": "all"}

    def loss(self, params):
        return params["theta"].pow(4).sum(-1)


def _quadratic_problem():
    problem = QuadraticTask(dim=3, init_std=0.5).sample(2, torch.Generator().manual_seed(0))
    problem.W, problem.y = problem.W.double(), problem.y.double()
    problem.params0 = {k: v.double() for k, v in problem.params0.items()}
    return problem


def _quartic_problem():
    theta0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return QuarticProblem(theta0)


def _optimizer(preprocess_p):
    torch.manual_seed(5)
    # larger output scale than the default so that the trajectory moves appreciably in 3 steps
    return LSTMOptimizer(preprocess_p=preprocess_p, output_scale=1.0).double()


def _library_meta_gradient(opt, problem):
    part = unroll(opt, problem, UNROLL, order="first", start=unroll(opt, problem, 0))
    return part.meta_loss.detach(), torch.autograd.grad(part.meta_loss, list(opt.parameters()))


class _OneProblemTask:
    """A task whose every sample is the same problem (to test the estimator on a fixed problem)."""

    def __init__(self, problem):
        self.problem = problem

    def sample(self, n, generator):
        return self.problem


def _gradient(problem, theta, create_graph):
    if not theta.requires_grad:
        theta = theta.requires_grad_()
    loss = problem.loss({"theta": theta})
    (g,) = torch.autograd.grad(loss.sum(), [theta], create_graph=create_graph)
    return g


def _reference_trajectory(opt, problem, steps):
    """Independent loop without meta-graph: gradients ∇_0.., mean losses at θ_1..θ_steps, and θ_steps."""
    theta = problem.params0["theta"].detach().clone()
    state = opt.initial_state({"theta": theta}, problem.groups)
    gradients, losses = [], []
    with torch.no_grad():
        for _ in range(steps):
            with torch.enable_grad():
                g = _gradient(problem, theta.clone(), create_graph=False).detach()
            gradients.append(g)
            upd, state = opt({"theta": g}, state, problem.groups)
            theta = theta + upd["theta"]
            losses.append(problem.loss({"theta": theta}).mean().item())
    return gradients, losses, theta


def _reference_meta_gradient_constant_grads(opt, problem):
    """(a) Precompute ∇_0..∇_{U-1} along the same trajectory, then unroll feeding them as constants."""
    constants, _, _ = _reference_trajectory(opt, problem, UNROLL)
    theta = problem.params0["theta"].detach().clone()
    state = opt.initial_state({"theta": theta}, problem.groups)
    meta_loss = 0.0
    for g in constants:
        upd, state = opt({"theta": g}, state, problem.groups)
        theta = theta + upd["theta"]
        meta_loss = meta_loss + problem.loss({"theta": theta}).mean()
    return meta_loss.detach(), torch.autograd.grad(meta_loss, list(opt.parameters()))


def _reference_meta_gradient_second_order(opt, problem):
    """(b) The full gradient, keeping the dashed edges of Fig. 2 (∂∇_t/∂φ ≠ 0)."""
    theta = problem.params0["theta"].detach().clone().requires_grad_()
    state = opt.initial_state({"theta": theta}, problem.groups)
    meta_loss = 0.0
    for _ in range(UNROLL):
        g = _gradient(problem, theta, create_graph=True)
        upd, state = opt({"theta": g}, state, problem.groups)
        theta = theta + upd["theta"]
        meta_loss = meta_loss + problem.loss({"theta": theta}).mean()
    return meta_loss.detach(), torch.autograd.grad(meta_loss, list(opt.parameters()))


def _flat(grads):
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("make_problem", [_quadratic_problem, _quartic_problem], ids=["quadratic", "quartic"])
@pytest.mark.parametrize("preprocess_p", [None, 10.0])
def test_meta_gradient_has_no_second_order_term(make_problem, preprocess_p):
    problem = make_problem()
    opt = _optimizer(preprocess_p)
    value, library = _library_meta_gradient(opt, problem)
    value_a, const = _reference_meta_gradient_constant_grads(opt, problem)
    value_b, second = _reference_meta_gradient_second_order(opt, problem)
    # same forward values in all three
    torch.testing.assert_close(value, value_a, rtol=1e-10, atol=0)
    torch.testing.assert_close(value, value_b, rtol=1e-10, atol=0)
    library, const, second = _flat(library), _flat(const), _flat(second)
    assert library.abs().max() > 1e-6
    # (a) gradients enter as constants: ∂∇_t/∂φ = 0
    torch.testing.assert_close(library, const, rtol=1e-6, atol=1e-6 * library.abs().max().item())
    # (b) the second-order meta-gradient is a different quantity. On the quadratic the dropped term
    # is small (the random LSTM is nearly insensitive to its input) but far above (a)'s tolerance;
    # on θ⁴, whose Hessian depends on θ, it is large.
    gap = 1e-3 if make_problem is _quartic_problem else 2e-5
    assert (library - second).abs().max() > gap * second.abs().max()
    # the estimator of the shared driver puts exactly this meta-gradient into .grad
    opt.zero_grad()
    cfg = MetaTrainConfig(steps=2 * UNROLL, unroll=UNROLL)
    estimate = TruncatedBPTT(_OneProblemTask(problem), cfg).step(opt, torch.Generator(), 1)
    assert not estimate.failed and estimate.value == pytest.approx(value.item(), rel=1e-12)
    torch.testing.assert_close(_flat([p.grad for p in opt.parameters()]), library, rtol=0, atol=0)


def test_loss_and_grads_returns_constant_gradients():
    problem = _quartic_problem()
    theta = problem.params0["theta"].clone().requires_grad_()
    loss, grads = loss_and_grads(problem, {"theta": theta})
    assert loss.requires_grad and not grads["theta"].requires_grad
    torch.testing.assert_close(grads["theta"], 4 * theta.detach() ** 3)


# ------------------------------------------------------------------------------------ w_t = 1 (Eq. 3)
@pytest.mark.parametrize("make_problem", [_quadratic_problem, _quartic_problem], ids=["quadratic", "quartic"])
def test_meta_loss_is_unweighted_sum_of_mean_losses_at_theta_1_to_unroll(make_problem):
    problem = make_problem()
    opt = _optimizer(10.0)
    unroll_steps = 4
    start = unroll(opt, problem, 0)
    loss0 = start.loss
    part = unroll(opt, problem, unroll_steps, order="first", start=start)
    meta_loss, params_end, loss_end = part.meta_loss, part.params, part.loss

    # independent loop: θ_{t+1} = θ_t + g_t, losses at θ_1 .. θ_unroll, averaged over runs, w_t = 1
    _, per_step, theta = _reference_trajectory(opt, problem, unroll_steps)
    assert meta_loss.item() == pytest.approx(math.fsum(per_step), rel=1e-10)
    # f(θ_0) is not part of the objective (Eq. 3 sums t = 1..T)
    assert meta_loss.item() != pytest.approx(math.fsum(per_step) + loss0.mean().item(), rel=1e-6)
    torch.testing.assert_close(params_end["theta"].detach(), theta)
    torch.testing.assert_close(loss_end.detach(), problem.loss({"theta": theta}))


# ---------------------------------------------------------------------- determinism and resume
TINY = MetaTrainConfig(steps=6, unroll=3, meta_batch=4, epochs=3, trajectories_per_epoch=2,
                       val_problems=4, meta_lr=1e-2, seed=0)


def _fresh_optimizer():
    torch.manual_seed(123)
    return LSTMOptimizer(preprocess_p=None)


def _weights(opt):
    return {k: v.detach().clone() for k, v in opt.state_dict().items()}


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Interrupt(Exception):
    pass


def _train(opt, cfg=TINY, **kw):
    history, best_epoch = train_learned_optimizer(opt, QuadraticTask(dim=3), cfg, progress=False, **kw)
    return history, best_epoch


@pytest.fixture(scope="module")
def uninterrupted():
    opt = _fresh_optimizer()
    before = _weights(opt)
    history, best_epoch = _train(opt)
    return history, best_epoch, _weights(opt), before


def test_meta_train_runs_and_changes_weights(uninterrupted):
    history, best_epoch, weights, before = uninterrupted
    assert list(history["epoch"]) == [1, 2, 3]
    assert np.isfinite(history["train_meta_loss"]).all()
    assert (history["diverged_trajectories"] == 0).all()
    assert best_epoch == int(history.loc[history["val_final_loss"].idxmin(), "epoch"])
    assert any(not torch.equal(weights[k], before[k]) for k in weights)


def test_meta_train_is_deterministic(uninterrupted):
    history, best_epoch, weights, _ = uninterrupted
    opt = _fresh_optimizer()
    again, again_best = _train(opt)
    pd.testing.assert_frame_equal(again, history, check_exact=True)
    assert again_best == best_epoch
    _assert_same_weights(_weights(opt), weights)


def test_interrupted_meta_train_resumes_to_identical_result(uninterrupted, tmp_path, monkeypatch):
    history, best_epoch, weights, _ = uninterrupted
    checkpointer = Checkpointer(tmp_path / "meta.pt")
    save = Checkpointer.save_training

    def save_then_stop(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise _Interrupt

    monkeypatch.setattr(Checkpointer, "save_training", save_then_stop)
    with pytest.raises(_Interrupt):
        _train(_fresh_optimizer(), checkpointer=checkpointer)
    saved = checkpointer.load()
    assert saved is not None and saved["done"] == TINY.trajectories_per_epoch * TINY.truncations  # after epoch 1
    monkeypatch.setattr(Checkpointer, "save_training", save)
    calls = []
    real = results.Checkpointer.restore_training

    def restore(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "restore_training", restore)
    opt = _fresh_optimizer()
    resumed, resumed_best = _train(opt, checkpointer=checkpointer)
    assert calls == [1]
    pd.testing.assert_frame_equal(resumed, history, check_exact=True)
    assert resumed_best == best_epoch
    _assert_same_weights(_weights(opt), weights)


# ------------------------------------------------------------------------------- divergence
class _NaNTask:
    """Problems whose loss becomes NaN after ``nan_after`` loss evaluations (0: always NaN)."""

    def __init__(self, nan_after: int):
        self.nan_after = nan_after

    def sample(self, n, generator):
        theta0 = torch.randn(n, 3, generator=generator)
        task = self

        class Problem:
            params0 = {"theta": theta0}
            groups = {"theta": "all"}
            calls = 0

            def loss(self, params):
                self.calls += 1
                value = params["theta"].pow(2).sum(-1)
                if self.calls > task.nan_after:
                    value = value * float("nan")
                return value

        return Problem()


class _Recording:
    """A task that records the sizes of the batches drawn from it."""

    def __init__(self, task):
        self.task, self.draws = task, []

    def sample(self, n, generator):
        self.draws.append(n)
        return self.task.sample(n, generator)


def test_the_best_epoch_is_chosen_on_the_validation_task_when_one_is_given():
    """``val_task``: training problems from ``task``, validation problems (``val_problems`` each time, fixed seed)
    from ``val_task`` alone, and the history's validation loss is that of ``val_task``'s problems (RNNProp: trained
    on scaled and mixed problems, chosen on plain ones)."""
    cfg = MetaTrainConfig(steps=6, unroll=3, meta_batch=2, epochs=2, trajectories_per_epoch=2, val_problems=3,
                          meta_lr=1e-2, seed=0)
    train, val = _Recording(QuadraticTask(dim=3)), _Recording(QuadraticTask(dim=3, init_std=1.0))
    opt = _fresh_optimizer()
    history, _ = train_learned_optimizer(opt, train, cfg, progress=False, val_task=val)
    assert set(train.draws) == {2} and len(train.draws) == 4  # one problem per trajectory
    assert val.draws == [3, 3]  # one validation per epoch
    final = unroll(opt.eval(), QuadraticTask(dim=3, init_std=1.0).sample(3, torch.Generator().manual_seed(
        cfg.seed + 1_000_003)), cfg.steps).final
    assert float(np.mean(final)) == pytest.approx(float(history["val_final_loss"].min()), rel=1e-6)  # best loaded


@pytest.mark.parametrize("nan_after", [0, 4])  # 4: the first truncation of 3 steps is finite
def test_non_finite_meta_loss_is_recorded_not_raised(nan_after):
    cfg = MetaTrainConfig(steps=6, unroll=3, meta_batch=2, epochs=2, trajectories_per_epoch=2,
                          val_problems=2, meta_lr=1e-2)
    opt = _fresh_optimizer()
    history, _ = train_learned_optimizer(opt, _NaNTask(nan_after), cfg, progress=False)
    assert list(history["diverged_trajectories"]) == [2, 2]
    assert history["train_meta_loss"].isna().all()
    assert all(torch.isfinite(p).all() for p in opt.parameters())


def test_a_diverging_trajectory_fails_its_truncation_and_counts_its_remaining_steps():
    opt = _fresh_optimizer()
    estimator = TruncatedBPTT(_NaNTask(4), TINY)
    first = estimator.step(opt, torch.Generator().manual_seed(0), 10)
    assert not first.failed and first.amount == 1
    opt.zero_grad(set_to_none=True)
    second = estimator.step(opt, torch.Generator().manual_seed(0), 10)
    assert second.failed and math.isnan(second.value) and second.amount == 1  # the last of 2 truncations
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in opt.parameters())
    assert estimator.current is None  # the next unit starts a new trajectory


def test_random_search_picks_the_rate_with_the_best_validation_loss_and_caches_trials(tmp_path):
    """§3: the meta learning rate is chosen by random search; the winner has the lowest validation loss."""
    from l2l_utils.meta_training.truncated_bptt import meta_train_cached, random_search_meta_lr

    setting = {"task": "tiny-quadratic"}
    best, table = random_search_meta_lr(_fresh_optimizer, QuadraticTask(dim=3), TINY, trials=3, search_epochs=1,
                                        bounds=(1e-4, 1e-1), results_dir=tmp_path, name="q", setting=setting,
                                        progress=False)
    assert len(table) == 3 and table["meta_lr"].between(1e-4, 1e-1).all()
    assert best == table.loc[table["best_val_final_loss"].idxmin(), "meta_lr"]
    # each trial equals a plain one-epoch meta-training at that rate from the same initial weights
    from dataclasses import replace
    rate = float(table["meta_lr"].iloc[0])
    opt = _fresh_optimizer()
    expected, _ = _train(opt, replace(TINY, meta_lr=rate, epochs=1))
    assert expected["val_final_loss"].min() == pytest.approx(table["best_val_final_loss"].iloc[0], rel=1e-6)
    # trials are stored: asking again reuses them
    _, reused = meta_train_cached(_fresh_optimizer(), QuadraticTask(dim=3), replace(TINY, meta_lr=rate, epochs=1),
                                  tmp_path, "q-search", setting, progress=False)
    assert reused


# ------------------------------------------------------------------------------- chunked meta-batches
class _Held:
    """A tensor saved for backward, counted while the graph holds it."""

    live = peak = 0

    def __init__(self, tensor):
        self.tensor, self.size = tensor, tensor.numel() * tensor.element_size()
        _Held.live += self.size
        _Held.peak = max(_Held.peak, _Held.live)

    def __del__(self):
        _Held.live -= self.size


def _saved_bytes(fn) -> int:
    """Peak bytes of the tensors autograd holds for backward while ``fn`` runs (the stored graph at its largest)."""
    _Held.live = _Held.peak = 0
    with torch.autograd.graph.saved_tensors_hooks(_Held, lambda held: held.tensor):
        fn()
    return _Held.peak


@pytest.mark.parametrize("kind", ["classifier", "quadratic"])
def test_a_meta_batch_in_chunks_gives_the_numbers_of_the_whole_batch_with_a_smaller_graph(kind):
    """meta_chunk splits the backward pass, not the problem: the same meta-losses and meta-gradients (float64) as the
    whole meta-batch at once, over a trajectory of three truncations, and a stored graph the size of one chunk."""
    if kind == "classifier":
        g = torch.Generator().manual_seed(0)
        data = DeviceDataset(torch.rand(256, 64, generator=g, dtype=torch.float64), torch.randint(0, 10, (256,),
                                                                                                   generator=g))
        task = ClassifierTask(mlp(64, [8], 10, "sigmoid").double(), data, 16, init_std=0.1)
    else:
        task = QuadraticTask(dim=5)
    runs, saved = [], []
    for batch, chunk in ((6, None), (6, 2), (2, None)):
        torch.manual_seed(0)
        opt = LSTMOptimizer(preprocess_p=10.0 if kind == "classifier" else None).double()
        cfg = MetaTrainConfig(steps=6, unroll=2, meta_batch=batch, meta_chunk=chunk)
        estimator, generator = TruncatedBPTT(task, cfg), torch.Generator().manual_seed(1)
        original = task.sample
        task.sample = lambda n, gen: _double(original(n, gen))
        out = []
        for _ in range(cfg.truncations):
            opt.zero_grad()
            bytes_ = _saved_bytes(lambda: out.append(estimator.step(opt, generator, 1).value))
            out.append(torch.cat([p.grad.reshape(-1) for p in opt.parameters()]))
        task.sample = original
        runs.append(out)
        saved.append(bytes_)
    for whole, chunked in zip(runs[0], runs[1]):
        if isinstance(whole, float):
            assert chunked == pytest.approx(whole, rel=1e-12)
        else:
            assert torch.allclose(chunked, whole, rtol=1e-10, atol=1e-14)
    # the graph held at once is one chunk's: that of a meta-batch of two, not of six (the optimizer's own weights,
    # saved at every step, are a fixed part that a small quadratic makes large)
    assert saved[1] <= 1.05 * saved[2] and saved[0] > 1.5 * saved[2]
    assert MetaTrainConfig(meta_chunk=2).as_config() == MetaTrainConfig().as_config()  # same numbers, same key


def _double(problem):
    problem.params0 = {k: v.double() for k, v in problem.params0.items()}
    if hasattr(problem, "W"):
        problem.W, problem.y = problem.W.double(), problem.y.double()
    return problem
