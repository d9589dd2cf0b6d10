"""The fused, feature-major LSTM optimizer gives the numbers of the implementation it replaced (a stack of
``nn.LSTMCell`` on (coordinates, features) rows with a linear head): updates, states, meta-losses and meta-gradients
within 1e-5 relative in float32 (1e-12 in float64), compiled or not."""

import pytest
import torch

from l2l_utils.learned_optimizers import fused_cells
from l2l_utils.learned_optimizers.lstm_optimizer import CoordinatewiseLSTM, LSTMOptimizer, UnfusedCoordinatewiseLSTM
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT
from l2l_utils.tasks.datasets import DeviceDataset
from l2l_utils.tasks.models import mlp
from l2l_utils.tasks.problems import ClassifierTask


def reference_forward(net: CoordinatewiseLSTM, grad, state):
    """The replaced implementation: nn.LSTMCell on (coordinates, features), then the head."""
    return UnfusedCoordinatewiseLSTM.forward(net, grad, state)


def reference_state(net, n, dtype):
    return UnfusedCoordinatewiseLSTM.initial_state(net, n, dtype=dtype)


ReferenceLSTM = UnfusedCoordinatewiseLSTM


def relative(a, b):
    return float(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).detach())


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("preprocess_p", [None, 10.0])
def test_updates_states_and_gradients_equal_the_nn_lstmcell_implementation(dtype, tolerance, preprocess_p):
    torch.manual_seed(0)
    net = CoordinatewiseLSTM(preprocess_p=preprocess_p, output_scale=0.1).to(dtype)
    n = 257
    grads = [torch.randn(n, dtype=dtype) * torch.logspace(-7, 0, n, dtype=dtype) for _ in range(6)]
    ours, theirs = net.initial_state(n, dtype=dtype), reference_state(net, n, dtype)
    total_ours, total_theirs = 0.0, 0.0
    for g in grads:
        u1, ours = net(g, ours)
        u2, theirs = reference_forward(net, g, theirs)
        assert relative(u1, u2) < tolerance
        for (h1, c1), (h2, c2) in zip(ours, theirs):
            assert relative(h1.T, h2) < tolerance and relative(c1.T, c2) < tolerance
        total_ours, total_theirs = total_ours + (u1 ** 2).sum(), total_theirs + (u2 ** 2).sum()
    grad_ours = torch.autograd.grad(total_ours, list(net.parameters()))
    grad_theirs = torch.autograd.grad(total_theirs, list(net.parameters()))
    for a, b in zip(grad_ours, grad_theirs):
        assert relative(a, b) < tolerance * 10


def _task():
    g = torch.Generator().manual_seed(0)
    data = DeviceDataset(torch.rand(512, 784, generator=g), torch.randint(0, 10, (512,), generator=g))
    return ClassifierTask(mlp(784, [20], 10, "sigmoid"), data, 32, init_std=0.01)


def _truncations(reference: bool, dtype):
    """Meta-losses and meta-gradients of two truncations of an MNIST-sized MLP (15,910 coordinates, 2 optimizees)."""
    task = _task()
    task.module.to(dtype)
    task.dataset = DeviceDataset(task.dataset.inputs.to(dtype), task.dataset.targets)
    cfg = MetaTrainConfig(steps=6, unroll=3, meta_batch=2)
    torch.manual_seed(1)
    opt = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1).to(dtype)
    if reference:  # the same weights in the replaced implementation
        replaced = ReferenceLSTM(preprocess_p=10.0, output_scale=0.1).to(dtype)
        replaced.load_state_dict(opt.nets["all"].state_dict())
        opt.nets["all"] = replaced
    task.sample = (lambda sample: lambda n, g: _cast(sample(n, g), dtype))(task.sample)
    estimator, generator, out = TruncatedBPTT(task, cfg), torch.Generator().manual_seed(2), []
    for _ in range(cfg.truncations):
        opt.zero_grad()
        value = estimator.step(opt, generator, 1).value
        out.append((value, torch.cat([p.grad.reshape(-1) for p in opt.parameters()])))
    return out


def _cast(problem, dtype):
    problem.params0 = {k: v.to(dtype) for k, v in problem.params0.items()}
    return problem


def test_truncated_bptt_meta_losses_and_meta_gradients_are_unchanged():
    """Meta-losses within 1e-5 relative in float32. Meta-gradients are sums over every coordinate and step whose
    terms cancel (the head bias's is ~1e-3 of its terms), so float32 sums in another order differ in their last
    digits: in float64 both implementations agree to 1e-10, and in float32 each is within 1e-3 (norm-wise) of that
    float64 value — rounding noise of the same size for both (a wrong formula would be off by order 1)."""
    new32, old32 = _truncations(False, torch.float32), _truncations(True, torch.float32)
    new64, old64 = _truncations(False, torch.float64), _truncations(True, torch.float64)
    for (v_new, g_new), (v_old, g_old), (v64, g64), (_, g64_old) in zip(new32, old32, new64, old64):
        assert abs(v_new - v_old) / abs(v_old) < 1e-5 and abs(v_new - v64) / abs(v64) < 1e-5
        assert float((g64 - g64_old).norm() / g64_old.norm()) < 1e-10
        for g in (g_new, g_old):
            assert float((g.double() - g64).norm() / g64.norm()) < 1e-3


def test_an_unrolled_trajectory_is_unchanged():
    """A frozen optimizer on 30 steps of the MLP: every loss within 1e-5 relative of the replaced implementation's."""
    task = _task()
    torch.manual_seed(4)
    opt = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1)
    replaced = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1)
    replaced.nets["all"] = ReferenceLSTM(preprocess_p=10.0, output_scale=0.1)
    replaced.load_state_dict(opt.state_dict())
    from l2l_utils.optimizers.unroll import unroll
    ours = unroll(opt, task.sample(3, torch.Generator().manual_seed(5)), 30).losses
    theirs = unroll(replaced, task.sample(3, torch.Generator().manual_seed(5)), 30).losses
    assert abs(ours - theirs).max() / abs(theirs).max() < 1e-5


def test_compiled_cells_give_the_eager_numbers(monkeypatch):
    """With L2L_COMPILE=1 the element-wise part is compiled (or, where compiling is impossible, falls back to eager
    with a warning): the numbers are the same either way."""
    torch.manual_seed(3)
    net = CoordinatewiseLSTM(preprocess_p=10.0, output_scale=0.1)
    g = torch.randn(300) * 1e-3
    eager, state = net(g, net.initial_state(300))
    monkeypatch.setenv("L2L_COMPILE", "1")
    assert fused_cells.compile_requested()
    compiled, compiled_state = net(g, net.initial_state(300))
    assert relative(compiled, eager) < 1e-5
    assert relative(compiled_state[1][1], state[1][1]) < 1e-5
    monkeypatch.setenv("L2L_COMPILE", "0")
    assert not fused_cells.compile_requested()


def test_gate_order_puts_the_sigmoid_gates_first():
    order = fused_cells.torch_to_fused_order(2).tolist()
    # torch rows: input 0-1, forget 2-3, candidate 4-5, output 6-7 -> input, forget, output, candidate
    assert order == [0, 1, 2, 3, 6, 7, 4, 5]


def test_the_written_out_backward_matches_finite_differences():
    g = torch.Generator().manual_seed(5)
    gates = torch.randn(8, 5, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fused_cells.LSTMPointwise.apply(a, b, 2), (gates, c))
    h1, c1 = fused_cells.LSTMPointwise.apply(gates, c, 2)
    h2, c2 = fused_cells.lstm_equations(gates, c, 2)
    assert torch.allclose(h1, h2) and torch.allclose(c1, c2)
