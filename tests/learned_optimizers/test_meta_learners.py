"""MAML, the meta-learner LSTM and TURTLE pinned to Huisman et al. 2022: Eq. 1, 3, 6-7, Theorem 1,
second-order meta-gradients against finite differences, first-order = second-order minus the dropped
Hessian term, and the parameter counts implied by the paper's architectures."""

import math

import pytest
import torch

from l2l_utils.learned_optimizers.meta_learners import MAML, MetaLearnerLSTM, Turtle, theorem1_parameters, turtle_inputs
from l2l_utils.tasks.episodes import EpisodeBatch, FewShotEpisodes, SineTasks
from l2l_utils.tasks.models import Conv4, FunctionalNetwork, mlp, sine_network


def tiny_problem(num_tasks=2, seed=0):
    """A smooth (sigmoid) 1-4-1 regression net in float64 and sine tasks: small enough for finite differences."""
    torch.manual_seed(seed)
    net = mlp(1, [4], 1, "sigmoid").double()
    batch = SineTasks(support=5, query=7).sample(num_tasks, torch.Generator().manual_seed(seed))
    batch = EpisodeBatch(*(t.double() for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)))
    return net, FunctionalNetwork(net, "regression"), batch


def meta_loss(meta, learner, batch, steps, second_order=True):
    params = meta.adapt(learner, batch.support_x, batch.support_y, steps, second_order)
    return learner.loss(params, batch.query_x, batch.query_y).sum()


def finite_difference(meta, learner, batch, steps, parameter, eps=1e-6):
    grad = torch.zeros_like(parameter)
    flat = parameter.data.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = float(meta_loss(meta, learner, batch, steps).detach())
        flat[i] = old - eps
        down = float(meta_loss(meta, learner, batch, steps).detach())
        flat[i] = old
        grad.view(-1)[i] = (up - down) / (2 * eps)
    return grad


def analytic(meta, learner, batch, steps, second_order=True):
    meta.zero_grad()
    meta_loss(meta, learner, batch, steps, second_order).backward()
    return {name: p.grad.clone() for name, p in meta.named_parameters()}


@pytest.mark.parametrize("make", [
    lambda net: MAML(dict(net.named_parameters()), inner_lr=0.3),
    lambda net: MetaLearnerLSTM(dict(net.named_parameters()), hidden=3, raw_inputs=True, loss_input_grad=True).double(),
    lambda net: Turtle(dict(net.named_parameters()), hidden_layers=2, hidden=4).double(),
], ids=["MAML", "MetaLearnerLSTM-enhanced", "TURTLE"])
def test_second_order_meta_gradient_matches_finite_differences(make):
    net, learner, batch = tiny_problem()
    meta = make(net)
    if isinstance(meta, MetaLearnerLSTM):  # larger gates than the default init, so θ really moves
        with torch.no_grad():
            meta.b_i.fill_(-1.0)
    grads = analytic(meta, learner, batch, steps=3)
    for name, parameter in meta.named_parameters():
        expected = finite_difference(meta, learner, batch, 3, parameter)
        torch.testing.assert_close(grads[name], expected, rtol=1e-5, atol=1e-7, msg=name)


def test_first_order_maml_differs_exactly_by_the_dropped_hessian_term():
    """T = 1: ∇_θ L_q(θ − α∇L_s(θ)) = (I − α H_s(θ)) g, first order keeps only g = ∇L_q(θ')."""
    net, learner, batch = tiny_problem(num_tasks=1)
    alpha = 0.3
    meta = MAML(dict(net.named_parameters()), inner_lr=alpha)
    second = analytic(meta, learner, batch, 1, second_order=True)
    first = analytic(meta, learner, batch, 1, second_order=False)
    theta = {k: p.detach() for k, p in zip(meta.param_names, meta.initialisation)}

    def support_loss(*values):
        params = {k: v.unsqueeze(0) for k, v in zip(theta, values)}
        return learner.loss(params, batch.support_x, batch.support_y).sum()

    theta = {k: v.requires_grad_() for k, v in theta.items()}
    support_grads = torch.autograd.grad(support_loss(*theta.values()), list(theta.values()))
    adapted = {k: v - alpha * g for (k, v), g in zip(theta.items(), support_grads)}
    adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    g = torch.autograd.grad(learner.loss({k: v.unsqueeze(0) for k, v in adapted.items()}, batch.query_x,
                                         batch.query_y).sum(), list(adapted.values()))
    _, hvp = torch.autograd.functional.hvp(support_loss, tuple(v.detach() for v in theta.values()), tuple(g))
    for i, name in enumerate(meta.param_names):
        key = f"initialisation.{i}"
        torch.testing.assert_close(first[key], g[i], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(second[key] - first[key], -alpha * hvp[i], rtol=1e-8, atol=1e-10)
    assert any((second[k] - first[k]).abs().max() > 1e-6 for k in second)


def test_first_order_turtle_and_lstm_treat_gradients_as_constants():
    """First order: the meta-gradient equals the one computed with detached support gradients/losses,
    and differs from the second-order one (the dropped term is not zero on this problem)."""
    net, learner, batch = tiny_problem()
    for meta in (Turtle(dict(net.named_parameters()), hidden_layers=2, hidden=4).double(),
                 MetaLearnerLSTM(dict(net.named_parameters()), hidden=3).double()):
        first = analytic(meta, learner, batch, 2, second_order=False)
        second = analytic(meta, learner, batch, 2, second_order=True)
        assert all(torch.isfinite(v).all() for v in first.values())
        assert max(float((first[k] - second[k]).abs().max()) for k in first) > 1e-8


@pytest.mark.parametrize("raw_inputs", [False, True])
def test_theorem1_parameterisation_reproduces_gradient_descent(raw_inputs):
    """W_f = 0, b_f large, W_i = 0, b_i = −ln((1−α)/α): Eq. 3 gives exactly θ − α∇L at every step (Eq. 4-5)."""
    net, learner, batch = tiny_problem(num_tasks=3)
    alpha = 0.01
    lstm = theorem1_parameters(MetaLearnerLSTM(dict(net.named_parameters()), raw_inputs=raw_inputs).double(), alpha)
    torch.nn.init.normal_(lstm.lstm.weight_ih, std=3.0)  # layer 1 is irrelevant once W_f = W_i = 0
    maml = MAML(dict(net.named_parameters()), inner_lr=alpha)
    for steps in (1, 5, 10):
        expected = maml.adapt(learner, batch.support_x, batch.support_y, steps)
        got = lstm.adapt(learner, batch.support_x, batch.support_y, steps)
        for k in expected:
            torch.testing.assert_close(got[k], expected[k], rtol=1e-12, atol=1e-12)
    assert math.isclose(torch.sigmoid(lstm.b_i).item(), alpha, rel_tol=1e-12)


def test_theorem1_needs_a_learning_rate_strictly_inside_the_unit_interval():
    lstm = MetaLearnerLSTM(dict(sine_network().named_parameters()))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="inner_lr must lie in"):
            theorem1_parameters(lstm, bad)


def test_maml_step_is_eq1_and_turtle_step_is_eq7():
    net, learner, batch = tiny_problem(num_tasks=2)
    maml = MAML(dict(net.named_parameters()), inner_lr=0.01)
    params = maml.initial(2)
    grads = dict(zip(params, torch.autograd.grad(learner.loss(params, batch.support_x, batch.support_y).sum(),
                                                 list(params.values()))))
    one = maml.adapt(learner, batch.support_x, batch.support_y, 1)
    for k in params:
        torch.testing.assert_close(one[k], params[k] - 0.01 * grads[k])
    turtle = Turtle(dict(net.named_parameters()), hidden_layers=5, hidden=20).double()
    one = turtle.adapt(learner, batch.support_x, batch.support_y, 1)
    flat_g = torch.cat([grads[k].reshape(2, -1) for k in params], 1)
    x = torch.stack((flat_g, flat_g, torch.zeros_like(flat_g)), -1)  # t = 0: h^(0) = ∇^(0)
    step = turtle.rates * turtle.net(x).squeeze(-1)
    flat_theta = torch.cat([params[k].reshape(2, -1) for k in params], 1)
    torch.testing.assert_close(torch.cat([one[k].reshape(2, -1) for k in one], 1), flat_theta + step)


def test_turtle_moving_average_follows_eq6():
    net, learner, batch = tiny_problem(num_tasks=1)
    turtle = Turtle(dict(net.named_parameters()), inputs=("average",), learn_rates=False).double()
    params = turtle.initial(1)
    g0 = {k: torch.full_like(v, 1.0) for k, v in params.items()}
    g1 = {k: torch.full_like(v, 3.0) for k, v in params.items()}
    _, state = turtle.step(params, g0, torch.ones(1, dtype=torch.double), None, 0)
    _, state = turtle.step(params, g1, torch.ones(1, dtype=torch.double), state, 1)
    torch.testing.assert_close(state[0], torch.full_like(state[0], 0.9 * 1.0 + 0.1 * 3.0))


def test_parameter_counts_follow_the_papers_architectures():
    # sine base learner 1-40-40-1: (1·40+40) + (40·40+40) + (40·1+1)
    assert FunctionalNetwork(sine_network(), "regression").num_params == 80 + 1640 + 41 == 1761
    # Conv-4 on 84×84×3, 5-way: 3·64·9+64, then 3 × (64·64·9+64), 4 × 128 batch norm, 1,600·5+5
    conv4 = Conv4(3, 5, 84)
    assert conv4.feature_dim == 64 * 5 * 5 == 1600
    assert sum(p.numel() for p in conv4.parameters()) == 1792 + 3 * 36928 + 4 * 128 + 8005
    theta = dict(sine_network().named_parameters())
    # TURTLE's g_φ: 3 inputs, 5 hidden layers of 20 ReLU units, 1 output; α has one entry per θ
    turtle = Turtle(theta)
    assert sum(p.numel() for p in turtle.net.parameters()) == (3 * 20 + 20) + 4 * (20 * 20 + 20) + 21 == 1781
    assert turtle.rates.numel() == 1761 and turtle.rates.requires_grad
    assert not Turtle(theta, learn_rates=False).rates.requires_grad
    # meta-learner LSTM: LSTM cell (4 inputs, 20 units) + W_f, W_i over [h, c, gate] + b_f, b_i
    lstm = MetaLearnerLSTM(theta)
    assert sum(p.numel() for p in lstm.parameters()) - 1761 == (4 * 20 * (4 + 20) + 2 * 4 * 20) + 2 * 22 + 2


def test_turtle_rejects_unknown_inputs():
    with pytest.raises(ValueError, match="allowed are non-empty subsets"):
        Turtle(dict(sine_network().named_parameters()), inputs=("gradient", "momentum"))


def test_sine_tasks_follow_finn_et_al():
    batch = SineTasks(support=5, query=50).sample(2000, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (2000, 5, 1) and batch.query_x.shape == (2000, 50, 1)
    x = torch.cat((batch.support_x, batch.query_x), 1)
    y = torch.cat((batch.support_y, batch.query_y), 1)
    assert x.min() >= -5 and x.max() <= 5 and x.min() < -4.9 and x.max() > 4.9
    peak = y.abs().amax(dim=(1, 2))
    assert peak.max() <= 5.0 and peak.max() > 4.5 and peak.min() < 1.0  # amplitudes in [0.1, 5]
    # every task is one sine y = A sin(x − φ): fit A cos φ, A sin φ by least squares and check the residual
    design = torch.cat((torch.sin(x), -torch.cos(x)), -1)
    coef = torch.linalg.lstsq(design, y).solution
    assert torch.allclose(design @ coef, y, atol=1e-4)
    phase = torch.atan2(coef[:, 1, 0], coef[:, 0, 0])
    assert phase.min() >= -1e-4 and phase.max() <= math.pi + 1e-4


def test_fewshot_episodes_are_n_way_k_shot_with_disjoint_support_and_query():
    images = torch.arange(10 * 6, dtype=torch.float).view(60, 1, 1, 1)
    labels = torch.arange(10).repeat_interleave(6)
    sampler = FewShotEpisodes(images, labels, classes=[0, 2, 4, 6, 8], n_way=3, k_shot=2, query=3)
    batch = sampler.sample(50, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (50, 6, 1, 1, 1) and batch.query_x.shape == (50, 9, 1, 1, 1)
    for j in range(50):
        support = batch.support_x[j].flatten().long()
        query = batch.query_x[j].flatten().long()
        assert not set(support.tolist()) & set(query.tolist())
        for label in range(3):
            cls = {int(v) // 6 for v in support[batch.support_y[j] == label]}
            cls |= {int(v) // 6 for v in query[batch.query_y[j] == label]}
            assert len(cls) == 1 and cls <= {0, 2, 4, 6, 8}  # one source class per label, from the split
        assert sorted(batch.support_y[j].tolist()) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="images per class needed"):
        FewShotEpisodes(images, labels, classes=[0, 1, 2], n_way=3, k_shot=5, query=5)
    with pytest.raises(ValueError, match="n_way=6"):
        FewShotEpisodes(images, labels, classes=[0, 1, 2], n_way=6, k_shot=1, query=1)


def test_looping_over_tasks_gives_the_same_losses_and_meta_gradients_as_vmap():
    net, _, batch = tiny_problem(num_tasks=3)
    grads = []
    for vectorize in (True, False):
        learner = FunctionalNetwork(net, "regression", vectorize=vectorize)
        torch.manual_seed(1)
        meta = Turtle(dict(net.named_parameters()), hidden_layers=2, hidden=4).double()
        grads.append(analytic(meta, learner, batch, 2))
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- the authors' set-up (issue: TURTLE)


def test_zero_bias_switches_zero_every_bias_of_g_phi_and_the_sine_network_only():
    torch.manual_seed(0)
    net = sine_network()
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in net if isinstance(m, torch.nn.Linear))
    assert all(float(m.weight.detach().abs().max()) > 0.0 for m in net if isinstance(m, torch.nn.Linear))
    turtle = Turtle(dict(net.named_parameters()))
    linears = [m for m in turtle.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 6 and all(float(m.bias.detach().abs().max()) == 0.0 for m in linears)
    # switched off: PyTorch's default U(±1/√fan_in), non-zero
    assert float(sine_network(zero_bias=False)[0].bias.abs().max()) > 0.0
    default = Turtle(dict(net.named_parameters()), zero_bias=False)
    assert float(default.net[-1].bias.abs().max()) > 0.0
    # the weights are drawn identically either way (zeroing happens after construction)
    torch.manual_seed(1)
    a = Turtle(dict(net.named_parameters()))
    torch.manual_seed(1)
    b = Turtle(dict(net.named_parameters()), zero_bias=False)
    torch.testing.assert_close(a.net[0].weight, b.net[0].weight)
    torch.testing.assert_close(a.rates, b.rates)


class _LinearLoss:
    """A 'base learner' with loss 50·Σθ per task: every support gradient is exactly 50."""

    def loss(self, params, x, y):
        return 50.0 * sum(v.reshape(v.shape[0], -1).sum(1) for v in params.values())


def test_inner_clamp_feeds_g_phi_and_the_moving_average_a_gradient_of_50_as_10():
    theta = {"w": torch.zeros(3, dtype=torch.double)}
    seen = []
    turtle = Turtle(theta, hidden_layers=1, hidden=2, inner_clamp=10.0).double()
    turtle.net.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    x = torch.zeros(2, 1, 1, dtype=torch.double)
    turtle.adapt(_LinearLoss(), x, x, steps=2)
    for t, inputs in enumerate(seen):  # inputs: (tasks, coordinates, [gradient, average, time])
        torch.testing.assert_close(inputs[..., 0], torch.full_like(inputs[..., 0], 10.0))
        torch.testing.assert_close(inputs[..., 1], torch.full_like(inputs[..., 1], 10.0))  # 0.9·10 + 0.1·10
        torch.testing.assert_close(inputs[..., 2], torch.full_like(inputs[..., 2], float(t)))
    seen.clear()
    unclamped = Turtle(theta, hidden_layers=1, hidden=2).double()
    unclamped.net.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    unclamped.adapt(_LinearLoss(), x, x, steps=1)
    assert float(seen[0][..., 0].max()) == 50.0
    # MAML: θ1 = θ0 − α·clamp(∇) = 0 − 0.1·10
    maml = MAML(theta, inner_lr=0.1, inner_clamp=10.0)
    out = maml.adapt(_LinearLoss(), x, x, steps=1)
    torch.testing.assert_close(out["w"], torch.full((2, 3), -1.0, dtype=torch.double))


def test_outer_clamp_clamps_each_tasks_gradient_of_theta_before_summing():
    """The authors clamp the initialisation's gradient after each task's backward pass: Σ_j clamp(∂L_j/∂θ)."""
    net, learner, batch = tiny_problem(num_tasks=3)
    batch = EpisodeBatch(batch.support_x, batch.support_y, batch.query_x, 40.0 * batch.query_y)  # big gradients
    clamp = 0.5
    meta = MAML(dict(net.named_parameters()), inner_lr=0.3)
    per_task = []
    for j in range(3):
        part = EpisodeBatch(*(t[j:j + 1] for t in (batch.support_x, batch.support_y, batch.query_x,
                                                                  batch.query_y)))
        meta.zero_grad()
        params = meta.adapt(learner, part.support_x, part.support_y, 2)
        learner.loss(params, part.query_x, part.query_y).sum().backward()
        per_task.append([p.grad.clone() for p in meta.initialisation])
    expected = [sum(g[i].clamp(-clamp, clamp) for g in per_task) for i in range(len(per_task[0]))]
    unclamped = [sum(g[i] for g in per_task) for i in range(len(per_task[0]))]
    assert any(float((e - u).abs().max()) > 1e-3 for e, u in zip(expected, unclamped))  # the clamp bites
    meta.zero_grad()
    params = meta.adapt(learner, batch.support_x, batch.support_y, 2, outer_clamp=clamp)
    learner.loss(params, batch.query_x, batch.query_y).sum().backward()
    for got, want in zip((p.grad for p in meta.initialisation), expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("feedback", ["pre-sigmoid", "post-sigmoid"])
def test_meta_learner_lstm_gate_feedback_against_two_steps_by_hand(feedback):
    """Scalar θ, layer-1 LSTM with zero weights (so h = 0): f̃_t = w_θ θ_{t−1} + w_g·fb_{t−1} + b_f, the same for i,
    θ_t = σ(f̃_t) θ_{t−1} − σ(ĩ_t) g_t, where fb is f̃ itself (pre-sigmoid) or σ(f̃) (post-sigmoid)."""
    lstm = MetaLearnerLSTM({"w": torch.tensor([0.5], dtype=torch.double)}, hidden=1, gate_feedback=feedback).double()
    with torch.no_grad():
        for p in lstm.lstm.parameters():
            p.zero_()
        lstm.W_f.copy_(torch.tensor([0.0, 0.3, 0.7], dtype=torch.double))
        lstm.W_i.copy_(torch.tensor([0.0, -0.2, 0.4], dtype=torch.double))
        lstm.b_f.fill_(1.0)
        lstm.b_i.fill_(-1.0)
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    back = (lambda v: v) if feedback == "pre-sigmoid" else sig
    theta, f_fb, i_fb = 0.5, 0.0, 0.0
    params, state = lstm.initial(1), None
    state = lstm.init(params)
    for g in (2.0, -1.5):
        f_pre = 0.3 * theta + 0.7 * f_fb + 1.0
        i_pre = -0.2 * theta + 0.4 * i_fb - 1.0
        theta = sig(f_pre) * theta - sig(i_pre) * g
        f_fb, i_fb = back(f_pre), back(i_pre)
        grads = {"w": torch.tensor([[g]], dtype=torch.double)}
        params, state = lstm.step(params, grads, torch.ones(1, dtype=torch.double), state, 0)
        assert math.isclose(float(params["w"]), theta, rel_tol=1e-12)
    assert math.isclose(float(state[2]), f_fb, rel_tol=1e-12) and math.isclose(float(state[3]), i_fb, rel_tol=1e-12)
    with pytest.raises(ValueError, match="gate_feedback"):
        MetaLearnerLSTM({"w": torch.zeros(1)}, gate_feedback="tanh")


def test_meta_learner_lstm_loss_input_is_a_constant_unless_asked():
    """The authors feed ``loss.data``: second-order meta-gradients then equal those of a loss input that is a
    constant, and differ from the fully connected ones."""
    net, learner, batch = tiny_problem()
    make = lambda grad: MetaLearnerLSTM(dict(net.named_parameters()), hidden=3, raw_inputs=True,  # noqa: E731
                                        loss_input_grad=grad).double()
    torch.manual_seed(0)
    const = make(False)
    torch.manual_seed(0)
    full = make(True)
    with torch.no_grad():
        const.b_i.fill_(-1.0)
        full.b_i.fill_(-1.0)
    a, b = analytic(const, learner, batch, 3), analytic(full, learner, batch, 3)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 1e-10
    original = MetaLearnerLSTM.gates

    def detached_loss(self, params, grads, loss, state):
        return original(self, params, grads, loss.detach(), state)

    MetaLearnerLSTM.gates = detached_loss
    try:
        c = analytic(full, learner, batch, 3)
    finally:
        MetaLearnerLSTM.gates = original
    for k in a:
        torch.testing.assert_close(a[k], c[k])


def test_turtle_has_no_moving_average_input_at_one_step():
    assert turtle_inputs(1) == ("gradient", "time")
    assert turtle_inputs(1, average_at_one_step=True) == Turtle.INPUTS
    assert turtle_inputs(5) == Turtle.INPUTS
    turtle = Turtle(dict(sine_network().named_parameters()), inputs=turtle_inputs(1))
    assert turtle.net[0].in_features == 2
