"""The LSTM optimizer of Andrychowicz et al. 2016 pinned to the paper (§2.1, §3, Appendix A)."""

import math

import pytest
import torch

from l2l_utils.learned_optimizers.lstm_optimizer import (CoordinatewiseLSTM, LSTMOptimizer, detach_state,
                                                         preprocess_gradient)

P = 10.0
E_MINUS_P = math.exp(-P)


def _by_hand(g: float, p: float = P) -> tuple[float, float]:
    """Appendix A, written out independently with ``math``."""
    if abs(g) >= math.exp(-p):
        return math.log(abs(g)) / p, math.copysign(1.0, g)
    return -1.0, math.exp(p) * g


# ------------------------------------------------------------------------- Appendix A preprocessing
BOUNDARY_VALUES = [
    E_MINUS_P,  # exactly at the threshold: the log branch (|g| >= e^-p)
    -E_MINUS_P,
    E_MINUS_P * (1 + 1e-9),  # just above
    -E_MINUS_P * (1 + 1e-9),
    E_MINUS_P * (1 - 1e-9),  # just below: the (-1, e^p g) branch
    -E_MINUS_P * (1 - 1e-9),
    0.0,
    1e-7, -3e-6,  # well inside the small branch
    0.5, -0.5, 1.0, -1.0,
    1e3, -1e3, 1e30, -1e30,  # large gradients
]


@pytest.mark.parametrize("g", BOUNDARY_VALUES)
def test_preprocessing_matches_appendix_a_float64(g):
    out = preprocess_gradient(torch.tensor([g], dtype=torch.float64), p=P)
    assert out.shape == (1, 2)
    expected = _by_hand(g)
    assert out[0, 0].item() == pytest.approx(expected[0], rel=1e-12, abs=1e-12)
    assert out[0, 1].item() == pytest.approx(expected[1], rel=1e-12, abs=1e-12)


def test_preprocessing_branches_at_the_boundary():
    g = torch.tensor([E_MINUS_P, -E_MINUS_P, E_MINUS_P * (1 - 1e-9), -E_MINUS_P * (1 - 1e-9), 0.0],
                     dtype=torch.float64)
    out = preprocess_gradient(g, p=P)
    # at |g| = e^-p exactly: (log(e^-p)/p, sgn g) = (-1, ±1)
    assert out[0].tolist() == pytest.approx([-1.0, 1.0], abs=1e-12)
    assert out[1].tolist() == pytest.approx([-1.0, -1.0], abs=1e-12)
    # just below: first component exactly -1, second e^p g (just inside (-1, 1))
    assert out[2, 0].item() == -1.0 and out[3, 0].item() == -1.0
    assert 0.999 < out[2, 1].item() < 1.0 and -1.0 < out[3, 1].item() < -0.999
    # zero gradient: (-1, 0), no NaN from log(0)
    assert out[4].tolist() == [-1.0, 0.0]


def test_preprocessing_float32_and_batch_shape():
    g = torch.tensor([[1e-7, -2.0], [3e-4, -1e-5], [0.0, 1e-4 * 0.999]], dtype=torch.float32)
    out = preprocess_gradient(g, p=P)
    assert out.shape == (3, 2, 2)
    for idx in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]:
        value = float(g[idx])
        assert out[idx].tolist() == pytest.approx(list(_by_hand(value)), rel=1e-5, abs=1e-6)


def test_preprocessing_other_p():
    p = 5.0
    g = torch.tensor([math.exp(-5) * 1.5, math.exp(-5) * 0.5, -2.0], dtype=torch.float64)
    out = preprocess_gradient(g, p=p)
    for i in range(3):
        assert out[i].tolist() == pytest.approx(list(_by_hand(float(g[i]), p)), rel=1e-12)


# ------------------------------------------------------------------------------- parameter counts
def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_mnist_configuration():
    # 2 inputs, two LSTM layers of 20 units (torch cells carry b_ih and b_hh), linear 20 -> 1
    expected = 4 * 20 * (2 + 20) + 2 * 80 + 4 * 20 * (20 + 20) + 2 * 80 + 21
    assert expected == 5301
    assert _count(LSTMOptimizer(preprocess_p=10.0, output_scale=0.1)) == 5301


def test_parameter_count_quadratic_configuration():
    expected = 4 * 20 * (1 + 20) + 2 * 80 + 4 * 20 * (20 + 20) + 2 * 80 + 21
    assert expected == 5221
    assert _count(LSTMOptimizer(preprocess_p=None)) == 5221


def test_two_group_optimizer_has_two_independent_lstms():
    opt = LSTMOptimizer(group_names=("conv", "fc"), preprocess_p=10.0, output_scale=0.1)
    assert _count(opt) == 2 * 5301
    conv = dict(opt.nets["conv"].named_parameters())
    fc = dict(opt.nets["fc"].named_parameters())
    assert conv.keys() == fc.keys()
    assert all(conv[k].data_ptr() != fc[k].data_ptr() for k in conv)  # not shared


def test_architecture_is_two_layers_of_20():
    net = CoordinatewiseLSTM(preprocess_p=10.0)
    assert len(net.cells) == 2
    assert [c.hidden_size for c in net.cells] == [20, 20]
    assert net.cells[0].input_size == 2 and net.cells[1].input_size == 20
    assert (net.head.in_features, net.head.out_features) == (20, 1)


# ------------------------------------------------------------------------------- coordinatewise
def _sequence_updates(opt, grads_seq, state):
    """Run opt over a sequence of gradients, carrying state; return stacked updates (T, d)."""
    out = []
    for g in grads_seq:
        updates, state = opt({"theta": g}, state)
        out.append(updates["theta"])
    return torch.stack(out), state


@pytest.mark.parametrize("preprocess_p", [None, 10.0])
def test_permuting_coordinates_permutes_updates(preprocess_p):
    torch.manual_seed(0)
    d, T = 13, 4
    opt = LSTMOptimizer(preprocess_p=preprocess_p).double()
    grads = torch.randn(T, d, dtype=torch.float64) * torch.logspace(-6, 1, d, dtype=torch.float64)
    # a non-trivial initial state, so permuting the state's coordinates matters too (feature-major: (20, d))
    state = {"all": [(torch.randn(20, d, dtype=torch.float64), torch.randn(20, d, dtype=torch.float64))
                     for _ in range(2)]}
    perm = torch.randperm(d)
    permuted_state = {"all": [(h[:, perm], c[:, perm]) for h, c in state["all"]]}
    with torch.no_grad():
        ref, ref_state = _sequence_updates(opt, grads, state)
        got, got_state = _sequence_updates(opt, grads[:, perm], permuted_state)
    torch.testing.assert_close(got, ref[:, perm], rtol=1e-12, atol=1e-14)
    for (h, c), (hp, cp) in zip(ref_state["all"], got_state["all"]):
        torch.testing.assert_close(hp, h[:, perm], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(cp, c[:, perm], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("preprocess_p", [None, 10.0])
def test_update_of_a_coordinate_ignores_other_gradients(preprocess_p):
    torch.manual_seed(1)
    d, T, j, t_changed = 7, 5, 3, 2
    opt = LSTMOptimizer(preprocess_p=preprocess_p).double()
    grads = torch.randn(T, d, dtype=torch.float64)
    changed = grads.clone()
    changed[t_changed, j] = 5.0
    state0 = opt.initial_state({"theta": grads[0]})
    with torch.no_grad():
        ref, _ = _sequence_updates(opt, grads, state0)
        got, _ = _sequence_updates(opt, changed, state0)
    others = [i for i in range(d) if i != j]
    torch.testing.assert_close(got[:, others], ref[:, others], rtol=0, atol=1e-14)
    torch.testing.assert_close(got[:t_changed, j], ref[:t_changed, j], rtol=0, atol=1e-14)
    # the changed coordinate's update changes at that step (and, via its own state, afterwards)
    assert (got[t_changed:, j] - ref[t_changed:, j]).abs().min() > 1e-8


def test_each_coordinate_equals_running_it_alone():
    """Coordinates of several parameters and optimizees share weights but not state (Fig. 3)."""
    torch.manual_seed(2)
    opt = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1).double()
    grads_seq = [{"w": torch.randn(2, 3, 2, dtype=torch.float64), "b": torch.randn(2, 2, dtype=torch.float64)}
                 for _ in range(3)]
    state = opt.initial_state(grads_seq[0])
    batched = []
    with torch.no_grad():
        for g in grads_seq:
            upd, state = opt(g, state)
            batched.append(upd)
        for key, shape in (("w", (2, 3, 2)), ("b", (2, 2))):
            for index in torch.cartesian_prod(*[torch.arange(s) for s in shape]):
                idx = tuple(int(i) for i in index)
                single_state = opt.nets["all"].initial_state(1, dtype=torch.float64)
                for t, g in enumerate(grads_seq):
                    u, single_state = opt.nets["all"](g[key][idx].reshape(1), single_state)
                    assert u.item() == pytest.approx(batched[t][key][idx].item(), rel=1e-10, abs=1e-14)


# ------------------------------------------------------------------------------- output scaling
@pytest.mark.parametrize("preprocess_p", [None, 10.0])
def test_output_scale_multiplies_the_update(preprocess_p):
    torch.manual_seed(3)
    scaled = CoordinatewiseLSTM(preprocess_p=preprocess_p, output_scale=0.1)
    plain = CoordinatewiseLSTM(preprocess_p=preprocess_p, output_scale=1.0)
    plain.load_state_dict(scaled.state_dict())
    grads = torch.randn(3, 11)
    s1, s2 = scaled.initial_state(11), plain.initial_state(11)
    with torch.no_grad():
        for g in grads:
            u1, s1 = scaled(g, s1)
            u2, s2 = plain(g, s2)
            torch.testing.assert_close(u1, 0.1 * u2, rtol=1e-6, atol=0)
            assert u2.abs().max() > 0
            for (h1, c1), (h2, c2) in zip(s1, s2):  # scaling is post-processing only
                assert torch.equal(h1, h2) and torch.equal(c1, c2)


def test_initial_weights_are_gaussian_with_std_0_1():
    torch.manual_seed(4)
    weights = torch.cat([p.detach().reshape(-1) for p in CoordinatewiseLSTM().parameters()])
    assert abs(weights.mean().item()) < 0.01
    assert weights.std().item() == pytest.approx(0.1, rel=0.05)


def test_detach_state_cuts_the_graph():
    opt = LSTMOptimizer(preprocess_p=None)
    g = {"theta": torch.randn(2, 3)}
    _, state = opt(g, opt.initial_state(g))
    assert state["all"][0][0].requires_grad
    cut = detach_state(state)
    assert all(not h.requires_grad and not c.requires_grad for h, c in cut["all"])
    torch.testing.assert_close(cut["all"][1][1], state["all"][1][1].detach())


# ------------------------------------------------------------------------------- input scaling (App. A's alternative)
@pytest.mark.parametrize("unfused", [False, True])
@pytest.mark.parametrize("scale", [10.0, 0.01])
def test_input_scale_feeds_the_rescaled_gradient(unfused, scale):
    """App. A: "rescaling all inputs by an appropriate constant". input_scale c on ∇ must give exactly what the
    unscaled optimizer gives on c·∇ (updates and state, over several steps), and differ from it on ∇ itself."""
    torch.manual_seed(4)
    scaled = LSTMOptimizer(preprocess_p=None, input_scale=scale, unfused=unfused).double()
    plain = LSTMOptimizer(preprocess_p=None, unfused=unfused).double()
    plain.load_state_dict(scaled.state_dict())
    grads = torch.randn(4, 9, dtype=torch.float64)
    s_scaled = s_plain = s_unscaled = scaled.initial_state({"theta": grads[0]})
    with torch.no_grad():
        for g in grads:
            u_scaled, s_scaled = scaled({"theta": g}, s_scaled)
            u_plain, s_plain = plain({"theta": scale * g}, s_plain)
            u_unscaled, s_unscaled = plain({"theta": g}, s_unscaled)
            assert torch.equal(u_scaled["theta"], u_plain["theta"])
            for (h1, c1), (h2, c2) in zip(s_scaled["all"], s_plain["all"]):
                assert torch.equal(h1, h2) and torch.equal(c1, c2)
            assert (u_scaled["theta"] - u_unscaled["theta"]).abs().max() > 1e-6


def test_input_scale_reaches_the_first_cell():
    """The first layer's (h, c) after one step equal nn.LSTMCell's own equations on the input c·∇."""
    torch.manual_seed(5)
    net = CoordinatewiseLSTM(preprocess_p=None, input_scale=100.0).double()
    g = torch.randn(6, dtype=torch.float64) * 1e-3
    with torch.no_grad():
        _, state = net(g, net.initial_state(6, dtype=torch.float64))
        cell = net.cells[0]
        gates = (100.0 * g)[:, None] @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh  # h_0 = 0
        i, f, gg, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(gg)  # c_0 = 0
        h = torch.sigmoid(o) * torch.tanh(c)
    torch.testing.assert_close(state[0][0], h.T, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(state[0][1], c.T, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_input_scale_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="input_scale"):
        CoordinatewiseLSTM(preprocess_p=None, input_scale=bad)


def test_input_scale_refused_with_preprocessing():
    with pytest.raises(ValueError, match="preprocess_p"):
        LSTMOptimizer(preprocess_p=10.0, input_scale=10.0)
    assert LSTMOptimizer(preprocess_p=10.0, input_scale=1.0).nets["all"].input_scale == 1.0  # the default is fine
