"""LSTM+GAC (Andrychowicz et al. 2016, App. D) pinned to the appendix: averaging over the coordinates of each
optimizee, the plain LSTM optimizer when there are no GACs, and App. D's constructive statement that GACs suffice
for L2 gradient clipping (checked against ``torch.nn.utils.clip_grad_norm_``)."""

import pytest
import torch

from l2l_utils.learned_optimizers.global_averaging import average_cells, gradient_clipping_cells, lstm_gac
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT, train_learned_optimizer
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.problems import QuadraticTask

from helpers import check_meta_gradient_by_finite_differences


def test_average_cells_by_hand():
    h = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]],  # run 0: two coordinates, three cells
                      [[0.0, 0.0, 10.0], [0.0, 1.0, 20.0]]])  # run 1
    out = average_cells(h, 2)
    assert out[..., 0].tolist() == [[1.0, 4.0], [0.0, 0.0]]  # not a GAC: untouched
    assert out[0, :, 1].tolist() == [3.5, 3.5] and out[0, :, 2].tolist() == [5.0, 5.0]  # mean over run 0's coords
    assert out[1, :, 1].tolist() == [0.5, 0.5] and out[1, :, 2].tolist() == [15.0, 15.0]  # runs are not mixed
    assert torch.equal(average_cells(h, 0), h)


def _grads(runs=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    grads = {"w": torch.randn(runs, 3, 4, generator=g, dtype=torch.float64),
             "b": torch.randn(runs, 5, generator=g, dtype=torch.float64)}
    scale = torch.tensor([0.01, 0.3, 1.0, 30.0], dtype=torch.float64)[:runs]  # norms below and above the threshold
    return {k: v * scale.view(-1, *[1] * (v.dim() - 1)) for k, v in grads.items()}


@pytest.mark.parametrize("max_norm,lr", [(1.0, 1.0), (0.5, 0.1), (100.0, 2.0)])
def test_gacs_implement_l2_gradient_clipping(max_norm, lr):
    """App. D: "GACs are sufficient to allow the networks to implement L2 gradient clipping"; the reference is
    torch's clip-by-global-norm applied to each run's parameters."""
    grads = _grads()
    rule = gradient_clipping_cells(max_norm, num_coords=17, lr=lr)
    params = {k: torch.zeros_like(v) for k, v in grads.items()}
    new, _ = rule.update(params, grads, rule.init(params), 0)
    clipped_some = False
    for run in range(4):
        leaves = [torch.zeros_like(v[run], requires_grad=True) for v in grads.values()]
        for leaf, g in zip(leaves, grads.values()):
            leaf.grad = g[run].clone()
        norm = torch.nn.utils.clip_grad_norm_(leaves, max_norm)
        clipped_some |= bool(norm > max_norm)
        for leaf, key in zip(leaves, grads):
            torch.testing.assert_close(new[key][run], -lr * leaf.grad, rtol=1e-5, atol=1e-12)
    assert clipped_some or max_norm == 100.0


def test_clipping_construction_rejects_wrong_size_and_bad_threshold():
    with pytest.raises(ValueError, match="coordinates"):
        rule = gradient_clipping_cells(1.0, num_coords=3)
        g = {"x": torch.ones(1, 4)}
        rule.update(g, g, rule.init(g), 0)
    with pytest.raises(ValueError, match="max_norm"):
        gradient_clipping_cells(0.0, num_coords=3)


@pytest.mark.parametrize("preprocess_p", [None, 10.0])
def test_without_gacs_it_is_the_plain_lstm_optimizer(preprocess_p):
    """gac=0: the same weights give the updates of the coordinatewise LSTM optimizer (§2.1), step after step."""
    torch.manual_seed(0)
    rule = lstm_gac(gac=0, preprocess_p=preprocess_p, output_scale=0.1).double()
    plain = LSTMOptimizer(unfused=True, preprocess_p=preprocess_p, output_scale=0.1).double()
    net = plain.nets["all"]
    for layer, cell in zip(rule.layers, net.cells):
        cell.load_state_dict(layer.cell.state_dict())
    net.head.load_state_dict(rule.head.state_dict())
    params = {k: torch.zeros_like(v) for k, v in _grads(2).items()}
    state_a, state_b = rule.init(params), plain.init(params)
    for t in range(4):
        grads = _grads(2, seed=t)
        a, state_a = rule.update(params, grads, state_a, t)
        b, state_b = plain.update(params, grads, state_b, t)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-10, atol=1e-12)


def test_gacs_share_information_across_coordinates_but_not_runs():
    torch.manual_seed(1)
    rule, alone = lstm_gac(gac=5, preprocess_p=None).double(), lstm_gac(gac=0, preprocess_p=None).double()
    alone.load_state_dict(rule.state_dict())
    g = torch.randn(2, 6, dtype=torch.float64)
    changed = g.clone()
    changed[0, 5] += 1.0  # another coordinate of run 0
    for model, couples in ((rule, True), (alone, False)):
        params = {"x": torch.zeros(2, 6, dtype=torch.float64)}
        u1, _ = model({"x": g}, model.init(params))
        u2, _ = model({"x": changed}, model.init(params))
        assert (not torch.allclose(u1["x"][0, :5], u2["x"][0, :5])) == couples
        torch.testing.assert_close(u1["x"][1], u2["x"][1])  # run 1 is unaffected either way
    # the GAC cells' outgoing activations are one value per run
    h = rule({"x": g}, rule.init(params))[1][0][0]
    assert torch.allclose(h[..., -5:], h[:, :1, -5:].expand(-1, 6, -1))


def test_permuting_coordinates_permutes_updates():
    torch.manual_seed(2)
    rule = lstm_gac(gac=5, preprocess_p=10.0).double()
    g = torch.randn(3, 9, dtype=torch.float64)
    perm = torch.randperm(9)
    params = {"x": torch.zeros_like(g)}
    u, _ = rule({"x": g}, rule.init(params))
    up, _ = rule({"x": g[:, perm]}, rule.init(params))
    torch.testing.assert_close(up["x"], u["x"][:, perm])


def test_meta_gradient_matches_finite_differences():
    """The meta-gradient through an unroll (gradients differentiated too: order="second") against central finite
    differences of the same meta-loss, along a random direction in φ (float64)."""
    torch.manual_seed(3)
    rule = lstm_gac(hidden_size=4, gac=2, preprocess_p=None, init_std=0.3).double()
    task = QuadraticTask(dim=4, init_std=0.5)
    problem = task.sample(3, torch.Generator().manual_seed(0))
    problem.W, problem.y = problem.W.double(), problem.y.double()
    problem.params0 = {k: v.double() for k, v in problem.params0.items()}
    meta = lambda: unroll(rule, problem, 4, order="second", start=unroll(rule, problem, 0)).meta_loss  # noqa: E731
    check_meta_gradient_by_finite_differences(rule, meta)


def test_meta_trainable_with_truncated_bptt():
    torch.manual_seed(4)
    rule = lstm_gac(gac=5, preprocess_p=None)
    before = {k: v.clone() for k, v in rule.state_dict().items()}
    cfg = MetaTrainConfig(steps=10, unroll=5, meta_batch=4, epochs=2, trajectories_per_epoch=2, val_problems=4,
                          meta_lr=1e-2)
    estimator = TruncatedBPTT(QuadraticTask(dim=5), cfg)
    estimator.step(rule, torch.Generator().manual_seed(0), 1)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for p in rule.parameters())
    history, _ = train_learned_optimizer(rule, QuadraticTask(dim=5), cfg, progress=False)
    assert len(history) == 2 and history["val_final_loss"].notna().all()
    assert any(not torch.equal(before[k], v) for k, v in rule.state_dict().items())
