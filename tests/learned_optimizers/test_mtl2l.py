"""MTL2L (Kuo et al. 2020) pinned to the paper and to independent computations: orthogonal, saved fixed matrices;
the SVD-LSTM equals an independent LSTM (torch.nn.LSTMCell) when its singular values are those of the given
synapses; parameter counts worked out by hand; per-optimizee hypernetwork features; Eq. 17 by hand; the authors'
perturbation size; and the core pieces MTL2L added (the minibatch in the context, the meta-gradient clamp, test
curves, the alternating task, the modified CIFAR-10)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from l2l_utils.evaluation.comparison import curve_scores, held_out_loss_curves
from l2l_utils.learned_optimizers.fused_cells import lstm_equations
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer, detach_state
from l2l_utils.learned_optimizers.mtl2l import (AuthorsLSTMOptimizer, Hypernetwork, MTL2LOptimizer, SVDSynapses,
                                                count_parameters)
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.optimizers.update_rules import Context, UpdateRule
from l2l_utils.tasks.datasets import DeviceDataset, ImageData, greyscale_crop, load_image_dataset, normalise
from l2l_utils.tasks.models import mlp
from l2l_utils.tasks.problems import AlternatingTask, ClassifierTask

from helpers import write_cifar10

H = 20
TORCH_ORDER = [1, 0, 2, 3]  # nn.LSTMCell's gates are (input, forget, cell, output); ours (forget, input, candidate, output)


def hyper(k):  # an MLP 784-32-ReLU-k: weights and biases of both layers
    return 784 * 32 + 32 + 32 * k + k


def test_parameter_counts_worked_out_by_hand():
    # paper layout: 2→20 projection, biases of 4 gates × 2 layers, head 20→1 with bias, four hypernetworks to 20
    paper = 2 * H + 2 * 4 * H + (H + 1) + 4 * hyper(H)
    assert count_parameters(MTL2LOptimizer("paper")) == paper == 103_341
    # authors' layout: projection, forget/input biases (20 each) on layer 1 and (1 each) on layer 2, four 20-vectors
    # of layer 2's input synapses, hypernetworks to 20, 20, 4, 4
    authors = 2 * H + 2 * H + 2 + 4 * H + 2 * hyper(H) + 2 * hyper(4)
    assert count_parameters(MTL2LOptimizer("authors")) == authors == 102_226
    # the authors' LSTM: Linear(2, 80) + Linear(20, 80) + 2×20 extra biases + Linear(20, 4) + Linear(1, 4)
    lstm = (2 * 80 + 80) + (20 * 80 + 80) + 40 + (20 * 4 + 4) + (4 + 4)
    assert count_parameters(AuthorsLSTMOptimizer()) == lstm == 2_052
    assert count_parameters(LSTMOptimizer(preprocess_p=10.0)) == 5_301
    assert sum(p.numel() for p in mlp(784, [32], 10, "relu").parameters()) == 25_450  # App. B.1: "25.4K"


def test_fixed_matrices_are_orthogonal_seeded_saved_and_not_trained():
    rule = MTL2LOptimizer("paper", seed=3)
    for synapses in (rule.input1, rule.recurrent1, rule.input2, rule.recurrent2):
        for m in (synapses.left, synapses.right):
            assert torch.allclose(m @ m.transpose(1, 2), torch.eye(H).expand(4, H, H), atol=1e-6)
    assert not any(name.endswith(("left", "right")) for name, _ in rule.named_parameters())
    state = rule.state_dict()
    assert "input1.left" in state and "recurrent2.right" in state
    other = MTL2LOptimizer("paper", seed=4)
    assert not torch.allclose(other.input1.left, rule.input1.left)
    other.load_state_dict(state)
    assert torch.equal(other.input1.left, rule.input1.left) and torch.equal(other.recurrent2.right,
                                                                            rule.recurrent2.right)
    assert torch.equal(MTL2LOptimizer("paper", seed=3).input1.left, rule.input1.left)


def test_svd_lstm_equals_an_lstm_whose_synapses_have_those_singular_values():
    """Given synapses W_g, U_g (sharing their singular values across the gates, Eq. 15), SVD them with
    torch.linalg.svd, load the singular vectors as the fixed matrices and feed the singular values: the SVD-LSTM step
    equals nn.LSTMCell with W, U."""
    g = torch.Generator().manual_seed(0)
    dtype = torch.float64

    def given(values):
        q = torch.linalg.qr(torch.randn(4, H, H, generator=g, dtype=dtype))[0]
        p = torch.linalg.qr(torch.randn(4, H, H, generator=g, dtype=dtype))[0]
        return q @ torch.diag_embed(values.expand(4, H)) @ p.transpose(1, 2)

    W, U = given(torch.rand(H, generator=g, dtype=dtype) + 0.1), given(torch.rand(H, generator=g, dtype=dtype) + 0.1)
    syn_w, syn_u = SVDSynapses(H, 0).double(), SVDSynapses(H, 1).double()
    singular = []
    for syn, M in ((syn_w, W), (syn_u, U)):
        left, s, right_t = torch.linalg.svd(M)
        syn.left.copy_(left)
        syn.right.copy_(right_t.transpose(1, 2))
        assert torch.allclose(s, s[0].expand(4, H))  # the gates share their singular values
        singular.append(s[0])
    x, h, c = (torch.randn(1, H, 9, generator=g, dtype=dtype) for _ in range(3))  # feature-major: (runs, H, coords)
    ours_h, ours_c = lstm_equations(syn_w(x, singular[0][None]) + syn_u(h, singular[1][None]), c, H)
    cell = torch.nn.LSTMCell(H, H, bias=False).double()
    with torch.no_grad():
        cell.weight_ih.copy_(W[TORCH_ORDER].reshape(4 * H, H))
        cell.weight_hh.copy_(U[TORCH_ORDER].reshape(4 * H, H))
    ref_h, ref_c = cell(x[0].T, (h[0].T, c[0].T))
    assert torch.allclose(ours_h[0].T, ref_h, atol=1e-12) and torch.allclose(ours_c[0].T, ref_c, atol=1e-12)


def _params(runs=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return ({"w": torch.randn(runs, 6, 5, generator=g, dtype=dtype), "b": torch.randn(runs, 6, generator=g, dtype=dtype)},
            {"w": torch.randn(runs, 6, 5, generator=g, dtype=dtype), "b": torch.randn(runs, 6, generator=g, dtype=dtype)})


@pytest.mark.parametrize("architecture", ["paper", "authors"])
def test_hypernetwork_features_never_mix_the_optimizees_of_a_batch(architecture):
    torch.manual_seed(0)  # the hypernetworks' weights
    rule = MTL2LOptimizer(architecture, seed=0).double().eval()
    params, grads = _params()
    images = torch.randn(3, 8, 784, dtype=torch.float64)
    state = rule.init(params, Context())
    before, _ = rule.update(params, grads, state, 0, Context(inputs=images))
    changed = images.clone()
    changed[1] = 3 * torch.randn(8, 784, dtype=torch.float64)
    after, _ = rule.update(params, grads, state, 0, Context(inputs=changed))
    for k in params:
        assert torch.equal(after[k][[0, 2]], before[k][[0, 2]])
        # run 1's update moves with its own minibatch (compared as updates: the parameters are O(1), the change of
        # the update at step 0 is O(1e-7); float64 rounding would be O(1e-18))
        assert (after[k][1] - before[k][1]).abs().max() > 1e-10
    # and each run alone gives the same update as inside the batch
    alone, _ = rule.update({k: v[2:] for k, v in params.items()}, {k: v[2:] for k, v in grads.items()},
                           rule.init({k: v[2:] for k, v in params.items()}), 0, Context(inputs=images[2:]))
    assert all(torch.allclose(alone[k][0], before[k][2], atol=1e-12) for k in params)


def test_hypernetwork_averages_its_output_over_the_minibatch_per_run():
    net = Hypernetwork(784, 4).double()
    images = torch.randn(2, 5, 784, dtype=torch.float64)
    by_hand = torch.stack([torch.stack([net.second(torch.relu(net.first(images[r, i]))) for i in range(5)]).mean(0)
                           for r in range(2)])
    assert torch.allclose(net(images), by_hand, atol=1e-12)


def test_eq17_moving_average_by_hand():
    """N_t = 0.9 N_{t−1} + 0.1 MLP(x_t), N_0 = 0 (App. B.5.3), applied to all hypernetworks and restarting per
    learner (a fresh state)."""
    rule = MTL2LOptimizer("paper", momentum=0.9, seed=0).double().eval()
    params, grads = _params(runs=2)
    images = torch.randn(3, 2, 7, 784, dtype=torch.float64)
    state = rule.init(params, Context())
    expected = [torch.zeros(2, net.second.out_features, dtype=torch.float64) for net in rule.hypernets]
    for t in range(3):
        _, state = rule.update(params, grads, state, t, Context(inputs=images[t]))
        mlp_out = [torch.relu(net(images[t])) for net in rule.hypernets]
        expected = [0.9 * e + 0.1 * m for e, m in zip(expected, mlp_out)]
        assert all(torch.allclose(v, e, atol=1e-12) for v, e in zip(state["context"], expected))
    assert all(torch.equal(v, torch.zeros_like(v)) for v in rule.init(params, Context())["context"])
    plain = MTL2LOptimizer("paper", momentum=0.0, seed=0).double().eval()
    plain.load_state_dict(rule.state_dict())
    _, fresh = plain.update(params, grads, plain.init(params), 0, Context(inputs=images[0]))
    assert all(torch.allclose(v, torch.relu(net(images[0])), atol=1e-12)
               for v, net in zip(fresh["context"], plain.hypernets))


@pytest.mark.parametrize("t, decay", [(0, 1.0), (50, 0.5)])
def test_perturbation_has_the_authors_size_and_only_acts_in_training(t, decay):
    """θ += c·ε with c = max|θ|·(S − t)/S·s, s ∈ {0.025, 0.05}: the noise's standard deviation over many coordinates,
    divided by max|θ| after the update and by the decay, is 0.025 or 0.05."""
    rule = MTL2LOptimizer("authors", perturbation=True, perturbation_horizon=100, seed=0).double()
    g = torch.Generator().manual_seed(2)
    params = {"w": torch.randn(4, 200, 100, generator=g, dtype=torch.float64)}
    grads = {"w": torch.randn(4, 200, 100, generator=g, dtype=torch.float64)}
    images = torch.randn(4, 3, 784, generator=g, dtype=torch.float64)
    state = {**rule.init(params), "t": t}
    rule.eval()
    clean, _ = rule.update(params, grads, state, t, Context(inputs=images))
    again, _ = rule.update(params, grads, state, t, Context(inputs=images))
    assert torch.equal(clean["w"], again["w"])  # evaluation mode: no noise
    rule.train()
    rule.begin_trajectory(torch.Generator().manual_seed(5))
    noisy, after = rule.update(params, grads, state, t, Context(inputs=images))
    assert after["t"] == t + 1
    noise = (noisy["w"] - clean["w"]).reshape(4, -1)
    ratio = noise.std(1) / clean["w"].reshape(4, -1).abs().amax(1) / decay
    assert all(min(abs(r - 0.025), abs(r - 0.05)) < 0.002 for r in ratio.tolist()), ratio
    late, _ = rule.update(params, grads, {**state, "t": 100}, 100, Context(inputs=images))
    assert torch.equal(late["w"], clean["w"])  # (S − t)/S = 0 at the end of a meta-training learner


def test_mtl2l_needs_the_minibatch_and_says_so():
    rule = MTL2LOptimizer("paper")
    params, grads = _params(dtype=torch.float32)
    with pytest.raises(ValueError, match="minibatch behind each gradient"):
        rule.update(params, grads, rule.init(params), 0, Context())
    with pytest.raises(ValueError, match="allowed values"):
        MTL2LOptimizer("both")


def test_authors_lstm_gate_biases_open_forget_and_close_input():
    rule = AuthorsLSTMOptimizer()
    assert torch.equal(rule.extra_bias1, torch.tensor([1.0, -1.0])[:, None].expand(2, H))
    params, grads = _params(runs=2, dtype=torch.float32)
    new, state = rule.update(params, grads, rule.init(params), 0)
    assert state["h"][1].shape == (1, 72)  # the second layer: one unit per coordinate of the 2 runs (feature-major)
    assert torch.allclose(new["w"] - params["w"], 0.1 * state["h"][1][0].view(2, 36)[:, :30].reshape(2, 6, 5),
                          atol=1e-6)


class _Recorder(UpdateRule):
    """SGD that records the minibatch it was given at every step."""

    def __init__(self):
        self.seen = []

    def update(self, params, grads, state, t, context=None):
        self.seen.append(context.inputs.clone())
        return {k: params[k] - 0.1 * grads[k] for k in params}, state


def _mnist_like_task(n=64, batch=8):
    g = torch.Generator().manual_seed(0)
    data = DeviceDataset(torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g))
    return ClassifierTask(mlp(784, [4], 10, "relu"), data, batch, init_std=None)


def test_the_context_holds_the_minibatch_behind_each_gradient():
    task = _mnist_like_task()
    problem = task.sample(2, torch.Generator().manual_seed(1))
    rule = _Recorder()
    unroll(rule, problem, 3)
    # replay the problem's minibatch stream: call k of loss() draws what update k must have seen
    replay = task.sample(2, torch.Generator().manual_seed(1))
    for seen in rule.seen:
        replay.loss(replay.params0)
        assert torch.equal(seen, replay.last_inputs) and seen.shape == (2, 8, 784)


def test_meta_gradients_are_clamped_elementwise_when_asked():
    task = _mnist_like_task()
    torch.manual_seed(0)
    rule = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1)
    cfg = MetaTrainConfig(steps=4, unroll=2, clip_value=1e-4)
    TruncatedBPTT(task, cfg).step(rule, torch.Generator().manual_seed(0), 1)
    grads = torch.cat([p.grad.reshape(-1) for p in rule.parameters()])
    assert grads.abs().max() <= 1e-4 and (grads.abs() == 1e-4).any()
    assert "clip_value" not in MetaTrainConfig().as_config()  # unset: earlier results keep their keys
    assert MetaTrainConfig(clip_value=1.0).as_config()["clip_value"] == 1.0


def test_detach_state_cuts_every_tensor_of_nested_states():
    x = torch.ones(2, requires_grad=True) * 2
    state = {"h": [x, (x, x)], "t": 3, "context": [x]}
    out = detach_state(state)
    assert out["t"] == 3 and not out["h"][0].requires_grad and not out["h"][1][1].requires_grad
    assert isinstance(out["h"][1], tuple) and not out["context"][0].requires_grad


def test_alternating_task_takes_its_tasks_in_turn():
    class Named:
        def __init__(self, name):
            self.name = name

        def sample(self, n, generator):
            return self.name

    task = AlternatingTask([Named("FashionMNIST"), Named("KMNIST")])
    assert [task.sample(1, None) for _ in range(5)] == ["FashionMNIST", "KMNIST", "FashionMNIST", "KMNIST",
                                                        "FashionMNIST"]


def test_test_loss_curves_measure_the_whole_test_set_at_the_listed_steps():
    task = _mnist_like_task()
    g = torch.Generator().manual_seed(3)
    test = DeviceDataset(torch.randn(30, 784, generator=g), torch.randint(0, 10, (30,), generator=g))
    make = lambda: task.sample(2, torch.Generator().manual_seed(4))  # noqa: E731
    frame = held_out_loss_curves({"SGD": _Recorder()}, make, 7, 3, task, test)
    assert sorted(frame["step"].unique()) == [0, 3, 6, 7]
    params0 = make().params0
    by_hand = [float(torch.nn.functional.cross_entropy(torch.func.functional_call(
        task.module, {k: v[r] for k, v in params0.items()}, (test.inputs,)), test.targets)) for r in range(2)]
    assert np.allclose(frame.query("step == 0").sort_values("run")["test_loss"], by_hand, atol=1e-5)


def test_curve_scores_by_hand():
    steps = np.arange(0, 110, 10)
    values = np.array([2.0, 1.0, 0.5, 0.4, 0.3, 0.3, 0.3, 0.6, 0.2, 0.9, 0.1])
    frame = pd.DataFrame({"optimizer": "A", "run": 0, "step": steps, "loss": values})
    s = curve_scores(frame, "loss", late_window=20, split=40, smooth=3).iloc[0]
    assert s["mean"] == pytest.approx(values.mean()) and s["start"] == 2.0
    assert s["final"] == pytest.approx((0.9 + 0.1) / 2)  # steps 90 and 100: the last 20 steps
    assert s["best"] == pytest.approx(0.3)  # moving means of 3: lowest (0.3, 0.3, 0.3)
    assert s["volatility_before"] == pytest.approx(np.std([-1.0, -0.5, -0.1, -0.1]))
    assert s["volatility_after"] == pytest.approx(np.std([0.0, 0.0, 0.3, -0.4, 0.7, -0.8]))


def test_modified_cifar10_greyscale_crop_and_normalisation_by_hand(tmp_path):
    written = write_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_image_dataset("CIFAR10", "test", tmp_path, download=False)
    grey = greyscale_crop(data, (0.30, 0.11, 0.59))  # as printed: 0.30 R + 0.59 B + 0.11 G
    assert grey.images.shape == (6, 1, 28, 28)
    raw = written["test_batch"][0].reshape(6, 3, 32, 32).astype(np.float64) / 255.0
    by_hand = 0.30 * raw[:, 0] + 0.11 * raw[:, 1] + 0.59 * raw[:, 2]
    assert np.allclose(grey.images[:, 0].numpy(), by_hand[:, :28, :28], atol=1e-6)
    normed = normalise(grey, 0.5, 0.5)
    assert torch.allclose(normed.images, (grey.images - 0.5) / 0.5)
    with pytest.raises(ValueError, match="RGB"):
        greyscale_crop(grey)


def test_the_authors_lstm_and_mtl2l_meta_train_on_the_shared_core():
    """Both rules run through truncated BPTT (first order), their meta-gradients are finite and reach every
    trainable parameter that the update uses."""
    task = _mnist_like_task()
    for rule in (AuthorsLSTMOptimizer(), MTL2LOptimizer("paper", momentum=0.9, dropout=(0.1, 0.25, 0.1),
                                                        perturbation=True, perturbation_horizon=4)):
        TruncatedBPTT(task, MetaTrainConfig(steps=4, unroll=2, clip_value=1.0)).step(
            rule, torch.Generator().manual_seed(0), 1)
        grads = {n: p.grad for n, p in rule.named_parameters()}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), [n for n, g in grads.items()
                                                                                        if g is None]
        if isinstance(rule, MTL2LOptimizer):
            assert all(float(g.abs().max()) > 0 for n, g in grads.items() if n.startswith("hypernets")), grads


def test_image_data_helpers_reject_bad_input():
    data = ImageData(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64), "x", "test", [0])
    with pytest.raises(ValueError, match="weights"):
        greyscale_crop(data, (0.5, 0.5))
    assert math.isclose(float(greyscale_crop(data).images.sum()), 0.0)
