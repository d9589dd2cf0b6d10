"""SimpleOptimizer, RNNProp, the weighted-difference meta-loss and fine-tuning pinned to "Learning to Learn with
Better Convergence" (§3.1-3.4, §4, Table 1) and to Lv et al. 2017 (RNNProp): parameter counts, the mean taken per
optimizee, the update written out by hand, the zero-gradient property, §3.2's example worked by hand, the
meta-gradient against finite differences, RNNProp's inputs and random scaling by hand."""

import math

import numpy as np
import pytest
import torch
from helpers import untrained_steps

from l2l_utils.evaluation.comparison import best_learning_rates, best_of_grid
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer, detach_state
from l2l_utils.learned_optimizers.rnnprop import RNNProp, adam_like_inputs
from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer, update_times
from l2l_utils.meta_training.fine_tuning import FineTuneConfig, fine_tune, subsample
from l2l_utils.meta_training.meta_losses import sequence_meta_loss, step_weights, term
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.datasets import DeviceDataset
from l2l_utils.tasks.models import googlenet, lenet, mlp, mlp_width_for
from l2l_utils.tasks.problems import QuadraticTask, RandomlyScaledTask


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _params(runs=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(runs, 4, 5, generator=g, dtype=torch.float64),
            "b": torch.randn(runs, 4, generator=g, dtype=torch.float64)}


# ----------------------------------------------------------------------------------------- Table 1: counts
def test_table1_parameter_counts():
    # SimpleOptimizer (§4): W_ih 10×1, W_hh 10×10, output 20×1 (10 hidden + 10 aggregate), α, β; no bias
    assert 10 * 1 + 10 * 10 + 20 * 1 + 2 == 132
    assert _count(SimpleOptimizer()) == 132
    # DMOptimizer: 2 LSTM layers of 20 (torch cells: two bias vectors), 2 preprocessed inputs, output 20 -> 1
    assert 4 * 20 * (2 + 20) + 2 * 80 + 4 * 20 * (20 + 20) + 2 * 80 + 21 == 5301
    assert _count(LSTMOptimizer(preprocess_p=10.0, output_scale=0.1)) == 5301
    # RNNProp: linear 2 -> 20, two LSTM layers of 20, output 20 -> 1
    assert (2 * 20 + 20) + 2 * (4 * 20 * (20 + 20) + 2 * 80) + 21 == 6801
    assert _count(RNNProp()) == 6801


def test_ablation_counts_and_structure():
    biased = SimpleOptimizer(bias=True)
    assert _count(biased) == 132 + 10 + 10 + 1  # torch's b_ih and b_hh, and the output bias
    assert biased.cell.bias_ih is not None and biased.head.bias is not None
    plain = SimpleOptimizer()
    assert plain.cell.bias_ih is None and plain.cell.bias_hh is None and plain.head.bias is None
    assert (plain.cell.input_size, plain.cell.hidden_size, plain.head.in_features) == (1, 10, 20)
    assert _count(SimpleOptimizer(aggregate=False)) == 10 + 100 + 10


def test_bad_switches_are_rejected():
    with pytest.raises(ValueError, match="mean_over='layer'"):
        SimpleOptimizer(mean_over="layer")
    with pytest.raises(ValueError, match="init="):
        SimpleOptimizer(init="xavier")


# ----------------------------------------------------------------------------------------- the update by hand
def _by_hand(rule, grads_seq, mean_over="network"):
    """h_t = tanh(W_ih g + W_hh h_{t−1}), u = W_out[:H]·α h + W_out[H:]·β mean(h), per coordinate, with plain loops
    over runs and coordinates (no torch modules)."""
    W_ih = rule.cell.weight_ih.detach().numpy()[:, 0]
    W_hh = rule.cell.weight_hh.detach().numpy()
    w = rule.head.weight.detach().numpy()[0]
    alpha, beta = float(rule.alpha.detach()), float(rule.beta.detach())
    keys = list(grads_seq[0])
    runs = grads_seq[0][keys[0]].shape[0]
    h = [{k: np.zeros((grads_seq[0][k][0].numel(), 10)) for k in keys} for _ in range(runs)]
    out = []
    for grads in grads_seq:
        step = {k: np.zeros(tuple(grads[k].shape)) for k in keys}
        for r in range(runs):
            for k in keys:
                g = grads[k][r].reshape(-1).numpy()
                for j in range(len(g)):
                    h[r][k][j] = np.tanh(W_ih * g[j] + W_hh @ h[r][k][j])
            everything = np.concatenate([h[r][k] for k in keys])
            for k in keys:
                mean = everything.mean(0) if mean_over == "network" else h[r][k].mean(0)
                flat = np.array([alpha * w[:10] @ h[r][k][j] + beta * w[10:] @ mean for j in range(len(h[r][k]))])
                step[k][r] = flat.reshape(step[k][r].shape)
        out.append(step)
    return out


@pytest.mark.parametrize("mean_over", ["network", "tensor"])
def test_update_equals_the_equations_written_out(mean_over):
    torch.manual_seed(0)
    rule = SimpleOptimizer(mean_over=mean_over).double()
    with torch.no_grad():
        rule.alpha.fill_(0.7)
        rule.beta.fill_(-1.3)
    grads_seq = [_params(2, seed) for seed in (1, 2, 3)]
    expected = _by_hand(rule, grads_seq, mean_over)
    state = rule.init(grads_seq[0])
    with torch.no_grad():
        for grads, want in zip(grads_seq, expected):
            updates, state = rule(grads, state)
            for k in grads:
                np.testing.assert_allclose(updates[k].numpy(), want[k], rtol=1e-12, atol=1e-14)


def test_update_is_added_to_the_parameters():
    rule = SimpleOptimizer().double()
    params, grads = _params(), _params(seed=1)
    updates, _ = rule(grads, rule.init(params))
    new, _ = rule.update(params, grads, rule.init(params), 0)
    for k in params:
        torch.testing.assert_close(new[k], params[k] + updates[k], rtol=0, atol=0)


# ------------------------------------------------------------------------------ the mean is per optimizee
@pytest.mark.parametrize("mean_over", ["network", "tensor"])
def test_changing_another_optimizee_leaves_this_optimizee_unchanged(mean_over):
    torch.manual_seed(1)
    rule = SimpleOptimizer(mean_over=mean_over).double()
    seq = [_params(3, seed) for seed in (1, 2, 3, 4)]
    changed = [{k: v.clone() for k, v in g.items()} for g in seq]
    for g in changed:  # optimizee 2 (index 1) sees entirely different gradients at every step
        g["w"][1] = 100 * torch.randn_like(g["w"][1])
        g["b"][1] = -50.0
    state_a, state_b = rule.init(seq[0]), rule.init(changed[0])
    with torch.no_grad():
        for ga, gb in zip(seq, changed):
            ua, state_a = rule(ga, state_a)
            ub, state_b = rule(gb, state_b)
            for k in ga:
                for run in (0, 2):
                    torch.testing.assert_close(ua[k][run], ub[k][run], rtol=0, atol=1e-15)
                assert (ua[k][1] - ub[k][1]).abs().max() > 1e-3  # optimizee 2's own update does change


def test_the_mean_shares_information_within_an_optimizee():
    """One coordinate's gradient reaches the other coordinates of its optimizee through the mean (§3.3), and only
    those of its tensor with ``mean_over="tensor"``; without aggregation the coordinates are independent."""
    grads = _params(1, 2)
    changed = {k: v.clone() for k, v in grads.items()}
    changed["w"][0, 0, 0] += 3.0
    others = {"w": torch.ones(4, 5, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
    others["w"][0, 0] = False
    for kwargs, moves in (({"mean_over": "network"}, {"w": True, "b": True}),
                          ({"mean_over": "tensor"}, {"w": True, "b": False}),
                          ({"aggregate": False}, {"w": False, "b": False})):
        torch.manual_seed(3)
        rule = SimpleOptimizer(**kwargs).double()
        with torch.no_grad():
            ua, _ = rule(grads, rule.init(grads))
            ub, _ = rule(changed, rule.init(changed))
        for k, expected in moves.items():
            moved = (ua[k][0][others[k]] - ub[k][0][others[k]]).abs().max() > 1e-12
            assert bool(moved) == expected, (kwargs, k)


# ------------------------------------------------------------------------------ §3.1: zero gradient, zero update
def test_bias_free_rule_gives_exactly_zero_update_for_zero_gradient_from_zero_state():
    params = _params()
    zero = {k: torch.zeros_like(v) for k, v in params.items()}
    for seed in range(3):
        torch.manual_seed(seed)
        rule = SimpleOptimizer(init="normal", init_std=1.0).double()
        state = rule.init(params)
        with torch.no_grad():
            for t in range(20):
                new, state = rule.update(params, zero, state, t)
                assert all(torch.equal(new[k], params[k]) for k in params)
        assert torch.count_nonzero(state["h"]) == 0


def test_bias_ablation_moves_the_parameters_under_a_zero_gradient():
    params = _params()
    zero = {k: torch.zeros_like(v) for k, v in params.items()}
    torch.manual_seed(0)
    rule = SimpleOptimizer(bias=True).double()
    with torch.no_grad():
        rule.cell.bias_ih.fill_(0.2)
        rule.cell.bias_hh.zero_()
        rule.head.bias.fill_(0.0)
        updates, state = rule(zero, rule.init(params))
    # first step: h = tanh(0.2) in every unit, u = (α W_out[:10] + β W_out[10:]) · h
    w = rule.head.weight.detach()[0]
    expected = math.tanh(0.2) * float((rule.alpha * w[:10].sum() + rule.beta * w[10:].sum()).detach())
    assert expected != 0
    for k in params:
        torch.testing.assert_close(updates[k], torch.full_like(updates[k], expected), rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------ §3.2: the example by hand
SEQ1 = [100, 20, 5, 1.25, 0.625]
SEQ2 = [100, 2.5, 2.25, 2.125, 2.3125]


def test_section_3_2_example_worked_by_hand():
    w = step_weights("square", 4)
    assert w == [1, 4, 9, 16]
    # uniform weights, losses at θ_1..θ_4: 20 + 5 + 1.25 + 0.625 = 26.875 > 2.5 + 2.25 + 2.125 + 2.3125 = 9.1875,
    # so sequence 2 is preferred, as §3.2 says
    assert sequence_meta_loss(SEQ1, step_weights("uniform", 4), "sum") == 26.875
    assert sequence_meta_loss(SEQ2, step_weights("uniform", 4), "sum") == 9.1875
    # Eq. 6 as printed: 1·80 + 4·15 + 9·3.75 + 16·0.625 = 183.75; 1·97.5 + 4·0.25 + 9·0.125 + 16·(−0.1875) = 96.625
    assert sequence_meta_loss(SEQ1, w, "difference-as-printed") == 183.75
    assert sequence_meta_loss(SEQ2, w, "difference-as-printed") == 96.625
    # minimised as printed it prefers sequence 2 (the myopic one); the negative prefers sequence 1
    assert sequence_meta_loss(SEQ1, w, "difference") == -183.75
    assert sequence_meta_loss(SEQ2, w, "difference") == -96.625
    assert sequence_meta_loss(SEQ1, w, "difference-through") == -183.75  # same value, other gradient


def test_step_weights_inside_and_across_truncations():
    assert step_weights("square", 3, position=40) == [1, 4, 9]
    assert step_weights("square", 3, position=40, across_truncations=True) == [41 ** 2, 42 ** 2, 43 ** 2]
    assert step_weights("last", 4) == [0, 0, 0, 1]
    assert step_weights("uniform", 2, position=7) == [1, 1]
    with pytest.raises(ValueError, match="allowed values"):
        step_weights("cubic", 3)
    with pytest.raises(ValueError, match="allowed values"):
        term("ratio")


def test_telescoping_coefficients_by_hand():
    """Differentiated through, Σ i²(f_i − f_{i−1}) has coefficient i² − (i+1)² = −(2i+1) on f_i (i < T), T² on f_T
    and −1 on f_0; with f_{i−1} a constant the coefficient of f_i is i²."""
    f = torch.tensor(SEQ1, dtype=torch.float64, requires_grad=True)
    w = step_weights("square", 4)
    for name, expected in (("difference-through", [-1, -3, -5, -7, 16]), ("difference", [0, 1, 4, 9, 16])):
        value = sum(wi * term(name)(f[i], f[i - 1]) for i, wi in enumerate(w, start=1))
        assert torch.autograd.grad(value, f)[0].tolist() == expected


# ------------------------------------------------------------------- the meta-gradient against finite differences
def _quadratic(runs=2):
    """θ0 requires grad: unroll's graph orders start from θ0 as given (it may be a meta-parameter)."""
    problem = QuadraticTask(dim=3, init_std=0.5).sample(runs, torch.Generator().manual_seed(0))
    problem.W, problem.y = problem.W.double(), problem.y.double()
    problem.params0 = {k: v.double().requires_grad_() for k, v in problem.params0.items()}
    return problem


def _meta_loss(rule, problem, name, steps=4):
    return unroll(rule, problem, steps, order="second", weights=step_weights("square", steps), term=term(name)).meta_loss


def _finite_difference(rule, value, eps=1e-6):
    """Central differences of ``value()`` in every meta-parameter (the unroll itself needs autograd for ∇f)."""
    out = []
    for p in rule.parameters():
        grad, flat = torch.zeros_like(p), p.data.view(-1)
        for i in range(p.numel()):
            flat[i] += eps
            plus = float(value().detach())
            flat[i] -= 2 * eps
            minus = float(value().detach())
            flat[i] += eps
            grad.view(-1)[i] = (plus - minus) / (2 * eps)
        out.append(grad)
    return out


def _small_rule():
    torch.manual_seed(4)
    return SimpleOptimizer(hidden_size=3, init="normal", init_std=0.5).double()


def test_meta_gradient_of_the_differentiated_through_loss_matches_finite_differences():
    rule, problem = _small_rule(), _quadratic()
    grads = torch.autograd.grad(_meta_loss(rule, problem, "difference-through"), list(rule.parameters()))
    numeric = _finite_difference(rule, lambda: _meta_loss(rule, problem, "difference-through"))
    for g, n in zip(grads, numeric):
        torch.testing.assert_close(g, n, rtol=1e-5, atol=1e-7)


def test_meta_gradient_with_previous_loss_constant_is_that_of_the_square_weighted_sum():
    """With f(θ_{i−1}) a constant, the meta-gradient equals the finite-difference gradient of Σ i² f(θ_i), and
    differs from the gradient of the differentiated-through loss."""
    rule, problem = _small_rule(), _quadratic()
    grads = torch.autograd.grad(_meta_loss(rule, problem, "difference"), list(rule.parameters()))
    numeric = _finite_difference(rule, lambda: _meta_loss(rule, problem, "sum"))
    for g, n in zip(grads, numeric):
        torch.testing.assert_close(g, n, rtol=1e-5, atol=1e-7)
    through = torch.autograd.grad(_meta_loss(rule, problem, "difference-through"), list(rule.parameters()))
    assert max(float((a - b).abs().max()) for a, b in zip(grads, through)) > 1e-3


class _OneProblemTask:
    def __init__(self, problem):
        self.problem = problem

    def sample(self, n, generator):
        return self.problem


def test_estimator_passes_trajectory_positions_to_the_weights():
    seen = []
    rule, problem = _small_rule(), _quadratic()
    cfg = MetaTrainConfig(steps=7, unroll=3)
    estimator = TruncatedBPTT(_OneProblemTask(problem), cfg, weights=lambda p, n: seen.append((p, n)) or [1.0] * n,
                              term=term("difference"))
    for _ in range(cfg.truncations):
        estimator.step(rule, None, None)
    assert seen == [(0, 3), (3, 3), (6, 1)]


def test_estimator_meta_loss_is_the_weighted_difference_of_each_truncation():
    rule, problem = _small_rule(), _quadratic(1)
    cfg = MetaTrainConfig(steps=4, unroll=2)
    estimator = TruncatedBPTT(_OneProblemTask(problem), cfg, weights=lambda p, n: step_weights("square", n, p, True),
                              term=term("difference"))
    values = [estimator.step(rule, None, None).value for _ in range(2)]
    losses = unroll(rule, problem, 4).losses[:, 0]
    # truncation 1: 1·(f1 − f0) + 4·(f2 − f1); truncation 2 (across: i = 3, 4): 9·(f3 − f2) + 16·(f4 − f3)
    assert values[0] == pytest.approx(1 * (losses[1] - losses[0]) + 4 * (losses[2] - losses[1]), rel=1e-6)
    assert values[1] == pytest.approx(9 * (losses[3] - losses[2]) + 16 * (losses[4] - losses[3]), rel=1e-6)


def test_stop_ends_the_trajectory_and_counts_its_remaining_truncations():
    rule, problem = _small_rule(), _quadratic(1)
    cfg = MetaTrainConfig(steps=10, unroll=2)
    estimator = TruncatedBPTT(_OneProblemTask(problem), cfg, stop=lambda first, part: True)
    first = estimator.step(rule, None, None)
    assert first.amount == 5 and first.info["stopped_at"] == 2 and estimator.current is None


# ------------------------------------------------------------------------------ RNNProp (Lv et al. 2017)
def test_rnnprop_inputs_by_hand():
    """m_t = 0.95 m + 0.05 g, v_t = 0.95 v + 0.05 g²; inputs g/(√(v/(1−0.95^t)) + ε) and
    (m/(1−0.95^t))/(√(v/(1−0.95^t)) + ε)."""
    gs = [0.3, -0.1, 2.0]
    m = v = 0.0
    mt, vt = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    for t, g in enumerate(gs, start=1):
        m, v = 0.95 * m + 0.05 * g, 0.95 * v + 0.05 * g * g
        root = math.sqrt(v / (1 - 0.95 ** t)) + 1e-8
        expected = [g / root, m / (1 - 0.95 ** t) / root]
        inputs, mt, vt = adam_like_inputs(torch.tensor([g], dtype=torch.float64), mt, vt, t)
        assert inputs[0].tolist() == pytest.approx(expected, rel=1e-12)
    # bias correction: at the first step both inputs are g/|g| (up to ε), whatever the scale of g
    first, _, _ = adam_like_inputs(torch.tensor([1e-4, -7.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                                   torch.zeros(2, dtype=torch.float64), 1)
    assert first.reshape(-1).tolist() == pytest.approx([1.0, 1.0, -1.0, -1.0], rel=1e-3)


def test_rnnprop_feeds_those_inputs_and_bounds_the_update_by_alpha():
    torch.manual_seed(0)
    rule = RNNProp().double()
    seen = []
    rule.embed.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    grads_seq = [_params(2, seed) for seed in (1, 2)]
    state = rule.init(grads_seq[0])
    m = torch.zeros(2, 24, dtype=torch.float64)
    v = torch.zeros_like(m)
    with torch.no_grad():
        for t, grads in enumerate(grads_seq, start=1):
            updates, state = rule(grads, state)
            flat = torch.cat([grads["w"].reshape(2, -1), grads["b"].reshape(2, -1)], 1)
            expected, m, v = adam_like_inputs(flat, m, v, t)
            torch.testing.assert_close(seen[-1], expected.reshape(-1, 2), rtol=1e-12, atol=0)
            assert all(u.abs().max() < 0.1 for u in updates.values())
    assert state["step"] == 2


def test_random_scaling_by_hand():
    """f_c(θ) = f(c ⊙ θ), θ0 / c, c = exp(U[−3, 3]) per coordinate and optimizee (Lv et al.)."""
    task = QuadraticTask(dim=4, init_std=1.0)
    scaled_task = RandomlyScaledTask(task, spread=3.0)
    scaled = scaled_task.sample(3, torch.Generator().manual_seed(0))
    plain = task.sample(3, torch.Generator().manual_seed(0))  # the same draws come first
    c = scaled.scales["theta"]
    assert c.shape == (3, 4) and bool((c >= math.exp(-3)).all() and (c <= math.exp(3)).all())
    assert len(torch.unique(c)) == 12  # every coordinate of every optimizee has its own factor
    torch.testing.assert_close(scaled.params0["theta"] * c, plain.params0["theta"])
    torch.testing.assert_close(scaled.loss(scaled.params0), plain.loss(plain.params0))
    theta = torch.randn(3, 4, requires_grad=True)
    grad = torch.autograd.grad(scaled.loss({"theta": theta}).sum(), theta)[0]
    inner = (c * theta).detach().requires_grad_()
    expected = c * torch.autograd.grad(plain.loss({"theta": inner}).sum(), inner)[0]  # chain rule
    torch.testing.assert_close(grad, expected)
    again = scaled_task.sample(3, torch.Generator().manual_seed(0))
    assert torch.equal(again.scales["theta"], c)
    with pytest.raises(ValueError, match="spread must be positive"):
        RandomlyScaledTask(task, spread=0)


def test_detach_state_of_every_rule():
    for rule in (SimpleOptimizer(), RNNProp(), LSTMOptimizer()):
        params = {"w": torch.randn(2, 3)}
        _, state = rule(params, rule.init(params))
        cut = detach_state(state)
        flat = []

        def collect(x):
            if isinstance(x, torch.Tensor):
                flat.append(x)
            elif isinstance(x, dict):
                [collect(v) for v in x.values()]
            elif isinstance(x, (list, tuple)):
                [collect(v) for v in x]

        collect(cut)
        assert flat and not any(t.requires_grad for t in flat)


# ------------------------------------------------------------------------------ §3.4 fine-tuning
def test_subsample_takes_five_percent_without_replacement():
    data = DeviceDataset(torch.arange(1000.0)[:, None], torch.arange(1000) % 10)
    part = subsample(data, 0.05, torch.Generator().manual_seed(0))
    assert len(part) == 50 and len(torch.unique(part.inputs)) == 50
    with pytest.raises(ValueError, match="fraction"):
        subsample(data, 0.0, torch.Generator())


def test_fine_tuning_stops_each_repetition_once_the_loss_has_halved():
    task = QuadraticTask(dim=5, init_std=1.0)
    torch.manual_seed(0)
    rule = SimpleOptimizer(hidden_size=4)
    with torch.no_grad():  # a rule that does gradient descent-like steps: u ≈ −c·g for small g
        rule.cell.weight_ih.fill_(0.1)
        rule.cell.weight_hh.zero_()
        rule.head.weight.fill_(-0.05)
        rule.beta.zero_()
    history = fine_tune(rule, task, FineTuneConfig(repeats=3, max_steps=40, unroll=5, meta_lr=1e-3))
    assert list(history.repetition) == [1, 2, 3]
    for row in history.itertuples():
        assert row.steps % 5 == 0 and 5 <= row.steps <= 40
        assert row.reached == (row.last_truncation_loss < 0.5 * row.initial_loss)
        assert row.reached or row.steps == 40
    assert history.reached.any() and history.steps.sum() <= 3 * 40


# ------------------------------------------------------------------------------ networks, timing, baselines
def test_networks_of_figures_4_and_5():
    assert _count(lenet()) == 61_706 and _count(lenet(10, 3, 32)) == 62_006
    assert lenet(10, 3, 32)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    net = googlenet(10)
    assert _count(net) == 5_610_154
    assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())
    assert all(not m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    base = _count(mlp(784, [500], 10))
    assert base == 397_510
    width = mlp_width_for(16 * base, 5)
    counts = {h: _count(mlp(784, [h] * 4, 10)) for h in range(width - 3, width + 4)}
    assert min(counts, key=lambda h: abs(counts[h] - 16 * base)) == width == 1329
    with pytest.raises(ValueError, match="image_size"):
        lenet(image_size=64)


def test_update_times_are_measured_for_every_rule():
    params = {"w": torch.randn(1, 100)}
    times = update_times({"a": SimpleOptimizer(), "b": RNNProp()}, params, params, repeats=3, steps=2)
    assert set(times) == {"a", "b"} and all(len(v) == 3 and (v > 0).all() for v in times.values())


def test_best_of_grid_reports_the_best_rate_and_counts_divergence():
    task = QuadraticTask(dim=3, init_std=1.0)
    make = lambda: task.sample(4, torch.Generator().manual_seed(1))  # noqa: E731
    runs, table = best_of_grid(["SGD"], [1e-4, 0.01, 100.0], make, 30)
    assert set(runs.lr) == {1e-4, 0.01, 100.0}
    scores = table.set_index("lr").mean_final_loss
    assert math.isinf(scores[100.0])  # diverged
    assert best_learning_rates(table) == {"SGD": 0.01}
    assert scores[0.01] < scores[1e-4]


# ------------------------------------------------------------------------------------- DMOptimizer's output scale
def _untrained_dm_step_sizes(profile, seeds=range(5), steps=5):
    """Median |u_t| / median |θ0| of the untrained DMOptimizer built as the notebook builds it from ``profile``, on a
    784-50-ReLU-10 MLP at torch's default θ0, under gradients of the size seen there (N(0, 1e-3²)), one per seed."""
    module = mlp(784, [50], 10, "relu")
    theta = {k: v.detach().unsqueeze(0) for k, v in module.named_parameters()}
    typical = float(torch.cat([v.reshape(-1) for v in theta.values()]).abs().median())
    ratios = []
    for seed in seeds:
        torch.manual_seed(seed)
        rule = LSTMOptimizer(preprocess_p=10.0, output_scale=profile["dm_output_scale"],
                             init_std=profile["lstm_init_std"], init=profile["lstm_init"])
        g = torch.Generator().manual_seed(seed)
        params, state = theta, rule.init(theta)
        worst = 0.0
        with torch.no_grad():
            for t in range(steps):
                grads = {k: 1e-3 * torch.randn(v.shape, generator=g) for k, v in params.items()}
                new, state = rule.update(params, grads, state, t)
                step = torch.cat([(new[k] - params[k]).reshape(-1) for k in params]).abs().median()
                worst, params = max(worst, float(step) / typical), new
        ratios.append(worst)
    return ratios


def test_dmoptimizer_output_scale_is_the_authors_mnist_setting_and_keeps_untrained_steps_small():
    """DMOptimizer's output scale is the authors' public MNIST configuration (deepmind/learning-to-learn, util.py,
    get_default_net_config: "scale": 0.01), not §3.2's ×0.1 for a 20-unit sigmoid MLP. At 0.1 the untrained LSTM, whose
    update barely depends on the gradient, moves the ReLU MLP's coordinates by about 30% of their typical size per
    step (all the same sign), and meta-training then kills every ReLU (loss ln 10): the reduced CPU run's
    DMOptimizer never left 2.30. At the profile's setting the untrained steps stay below 10% of that size."""
    from l2l_utils.harness.profiles.simple_optimizer import PAPER, SMOKE

    assert PAPER["dm_output_scale"] == SMOKE["dm_output_scale"] == 0.01
    assert max(_untrained_dm_step_sizes(PAPER)) < 0.1


def _untrained_simple_steps(bias, seeds=range(5), steps=5):
    """The untrained SimpleOptimizer as the notebook builds it from the paper profile (``bias`` on for Fig. 3a's
    ablation): step sizes and sign majorities (``helpers.untrained_steps``)."""
    from l2l_utils.harness.profiles.simple_optimizer import PAPER

    return untrained_steps(lambda: SimpleOptimizer(PAPER["hidden_size"], bias=bias, mean_over=PAPER["mean_over"],
                                                   init=PAPER["simple_init"]), seeds, steps)


def test_the_bias_ablation_starts_by_moving_every_coordinate_the_same_way():
    """Fig. 3a's ablation as the notebook builds it (torch's default start for the biases too): §3.1's tanh(b) term
    gives every coordinate the same step, larger than the median |θ0| itself, whatever the gradient; on the ReLU MLP
    (pixels ≥ 0) a common step on the first layer moves every pre-activation by it times the pixel sum, so every ReLU
    is dead in a few steps and meta-training gets no meta-gradient back (the notebook's + bias stays at ln 10). The
    bias-free rule's steps follow the gradient and stay below 5% of the median |θ0|."""
    sizes, majorities = _untrained_simple_steps(bias=True)
    assert min(sizes) > 1.0 and min(majorities) > 0.99
    sizes, majorities = _untrained_simple_steps(bias=False)
    assert max(sizes) < 0.05 and max(majorities) < 0.9


def test_update_times_pass_the_context_to_a_context_aware_rule():
    """MTL2L reads the minibatch behind the gradient from the context; without it its update fails."""
    from l2l_utils.learned_optimizers.mtl2l import MTL2LOptimizer
    from l2l_utils.optimizers.update_rules import Context

    params = {"w": torch.randn(2, 4, 3)}
    rule = MTL2LOptimizer("paper", seed=0).eval()
    context = Context(inputs=torch.rand(2, 5, 784))
    times = update_times({"MTL2L": rule}, params, params, repeats=2, steps=1, context=context)
    assert times["MTL2L"].shape == (2,) and np.all(times["MTL2L"] > 0)
    with pytest.raises(ValueError, match="context.inputs"):
        update_times({"MTL2L": rule}, params, params, repeats=1, steps=1)
