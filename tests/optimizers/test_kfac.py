"""K-FAC (Martens & Grosse 2015): the Kronecker factors against the Fisher computed by brute force from per-example
gradients (torch.func), and the preconditioned step against an explicit dense solve."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad
from torch.nn import functional as F

from l2l_utils.optimizers.kfac import KFAC, damped_inverses, kfac_factors, kfac_layers
from l2l_utils.optimizers.update_rules import Context


def _vec(matrix):  # column-major vec, the order kron(A, G) acts on
    return matrix.transpose(-1, -2).reshape(-1)


def _weight_and_bias(tensors, name, layer):
    w = tensors[f"{name}.weight"].reshape(tensors[f"{name}.weight"].shape[0], -1)
    return torch.cat([w, tensors[f"{name}.bias"][:, None]], 1) if layer.bias is not None else w


def _brute_force_fisher(net, params, x, name):
    """F = Σ_y p(y|x) vec(∇_W log p(y|x)) vec(·)ᵀ for the single example x, by autograd on the parameters (no
    activations, no Kronecker structure)."""
    layer = dict(net.named_modules())[name]
    logits = functional_call(net, params, (x,))
    probs = F.softmax(logits, -1)[0]

    def log_lik(p, y):
        return -F.cross_entropy(functional_call(net, p, (x,)), y)

    fisher = 0
    for y in range(len(probs)):
        g = grad(log_lik)(params, torch.tensor([y]))
        v = _vec(_weight_and_bias(g, name, layer))
        fisher = fisher + probs[y] * torch.outer(v, v)
    return fisher, probs


def _exact_kfac_block(net, params, x, name, probs):
    """Ā ⊗ E_y[G(y)] with G(y) from kfac_factors at each target y, weighted by p(y|x) (the expectation the sampled
    target estimates)."""
    per_target = [kfac_factors(net, params, x, targets=torch.tensor([y]))[name] for y in range(len(probs))]
    A = per_target[0][0]
    G = sum(p * f[1] for p, f in zip(probs, per_target))
    return torch.kron(A, G)


@pytest.mark.parametrize("name", ["0", "2"])
def test_kfac_factors_equal_the_exact_fisher_block_of_a_single_example(name):
    # one example: the Fisher block of layer l is E_y[(ā āᵀ) ⊗ (g gᵀ)] = ā āᵀ ⊗ E_y[g gᵀ] exactly (M&G §3: the
    # approximation is exact when ā and g are independent, here ā is fixed); checked for both layers of an MLP
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.randn(1, 3, dtype=torch.float64)
    fisher, probs = _brute_force_fisher(net, params, x, name)
    kfac = _exact_kfac_block(net, params, x, name, probs)
    assert torch.allclose(kfac, fisher, atol=1e-12)
    assert fisher.abs().max() > 1e-3  # not a trivially zero comparison


def test_kfac_factors_of_a_convolution_with_one_location_equal_the_exact_fisher():
    # a kernel that covers the whole image has one location: KFC's factors reduce to K-FAC's, exact for one example
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3, 2)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    fisher, probs = _brute_force_fisher(net, params, x, "0")
    assert torch.allclose(_exact_kfac_block(net, params, x, "0", probs), fisher, atol=1e-12)


def test_kfac_sampled_targets_give_the_factors_of_one_of_the_classes():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.randn(1, 3, dtype=torch.float64)
    sampled = kfac_factors(net, params, x, generator=torch.Generator().manual_seed(0))["2"][1]
    per_class = [kfac_factors(net, params, x, targets=torch.tensor([y]))["2"][1] for y in range(3)]
    assert any(torch.allclose(sampled, g) for g in per_class)


def test_kfac_step_equals_the_dense_damped_kronecker_solve():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    params = {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()}
    grads = {k: torch.randn_like(v) for k, v in params.items()}
    x = torch.randn(1, 5, 3, dtype=torch.float64)
    lr, damping = 0.3, 0.05
    rule = KFAC(net, lr, damping=damping, inverse_every=1, seed=7)
    new, state = rule.update(params, grads, rule.init(params), 0, Context(inputs=x))
    factors = kfac_factors(net, {k: v[0] for k, v in params.items()}, x[0],
                           generator=torch.Generator().manual_seed(7))
    for name, layer in kfac_layers(net).items():
        A, G = factors[name]
        pi = torch.sqrt((torch.trace(A) / len(A)) / (torch.trace(G) / len(G)))
        dense = torch.kron(A + pi * damping ** 0.5 * torch.eye(len(A), dtype=A.dtype),
                           G + damping ** 0.5 / pi * torch.eye(len(G), dtype=G.dtype))
        expected = -lr * torch.linalg.solve(dense, _vec(_weight_and_bias({k: v[0] for k, v in grads.items()}, name, layer)))
        got = _vec(_weight_and_bias({k: (new[k] - params[k])[0] for k in params}, name, layer))
        assert torch.allclose(got, expected, atol=1e-10)


def test_kfac_running_average_uses_min_one_minus_one_over_k_and_cap():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(2, 2)).double()
    params = {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()}
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    xs = [torch.randn(1, 4, 2, dtype=torch.float64) for _ in range(3)]
    rule = KFAC(net, 0.1, decay_cap=0.6, seed=0)
    state = rule.init(params)
    for t, x in enumerate(xs):
        params, state = rule.update(params, grads, state, t, Context(inputs=x))
    A = [x[0].T @ x[0] / 4 for x in xs]  # the bias column's entries checked through the weight block
    # k = 1: ε = 0 (A1); k = 2: ε = 1/2; k = 3: ε = min(2/3, 0.6) = 0.6
    expected = 0.6 * (0.5 * A[0] + 0.5 * A[1]) + 0.4 * A[2]
    assert torch.allclose(state["factors"][0]["0"][0][:2, :2], expected)


def test_kfac_needs_the_minibatch():
    net = nn.Sequential(nn.Linear(2, 2))
    rule = KFAC(net, 0.1)
    params = {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()}
    with pytest.raises(ValueError, match="minibatch"):
        rule.update(params, params, rule.init(params), 0, Context())
    with pytest.raises(ValueError):
        KFAC(net, 0.1, damping=0.0)


def test_kfac_factors_are_per_example_averages():
    # a minibatch of three copies of one example has that example's Fisher: catches a missing or double batch scaling
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.randn(1, 3, dtype=torch.float64)
    fisher, probs = _brute_force_fisher(net, params, x, "0")
    per_target = [kfac_factors(net, params, x.repeat(3, 1), targets=torch.tensor([y] * 3))["0"] for y in range(3)]
    G = sum(p * f[1] for p, f in zip(probs, per_target))
    assert torch.allclose(torch.kron(per_target[0][0], G), fisher, atol=1e-12)


def test_kfac_on_a_conv_net_with_batch_norm_leaves_running_statistics_alone_and_steps_every_tensor():
    torch.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    before = net[1].running_mean.clone()
    params = {k: v.detach().unsqueeze(0).repeat(2, *[1] * v.dim()) for k, v in net.named_parameters()}
    grads = {k: torch.randn_like(v) for k, v in params.items()}
    rule = KFAC(net, 0.1)
    new, _ = rule.update(params, grads, rule.init(params), 0, Context(inputs=torch.randn(2, 4, 1, 4, 4)))
    assert torch.equal(net[1].running_mean, before)
    assert all(new[k].shape == params[k].shape and not torch.equal(new[k], params[k]) for k in params)
    assert torch.allclose(new["1.weight"], params["1.weight"] - 0.1 * grads["1.weight"])  # batch norm: plain step


def test_kfac_convolution_factors_and_step_match_kfc_with_several_locations():
    # Grosse & Martens (2016) KFC: Ω = E_x[Σ_t ā_t ā_tᵀ], Γ = E_x[Σ_t Ds_t Ds_tᵀ] / |T|, patches and output
    # gradients extracted here by explicit loops over the 4 locations. Ours splits the 1/|T| the other way; the
    # Kronecker product and the π-damped step (M&G §6.3) are the same.
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(2, 3, 2), nn.Tanh(), nn.Flatten(), nn.Linear(12, 3)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    x, y = torch.randn(2, 2, 3, 3, dtype=torch.float64), torch.tensor([0, 2])
    s = F.conv2d(x, params["0.weight"], params["0.bias"]).requires_grad_()
    log_lik = -F.cross_entropy(functional_call(net[1:], {k[2:]: v for k, v in params.items() if k.startswith("3.")},
                                               (s,)), y, reduction="sum")
    ds = torch.autograd.grad(log_lik, s)[0]
    omega, gamma, locations = 0, 0, [(i, j) for i in range(2) for j in range(2)]
    for b in range(2):
        for i, j in locations:
            a = torch.cat([x[b, :, i:i + 2, j:j + 2].reshape(-1), torch.ones(1, dtype=torch.float64)])
            omega = omega + torch.outer(a, a) / 2
            gamma = gamma + torch.outer(ds[b, :, i, j], ds[b, :, i, j]) / (2 * len(locations))
    A, G = kfac_factors(net, params, x, targets=y)["0"]
    assert torch.allclose(torch.kron(A, G), torch.kron(omega, gamma), atol=1e-12)

    lr, damping = 0.2, 0.03
    pi = torch.sqrt((torch.trace(omega) / len(omega)) / (torch.trace(gamma) / len(gamma)))
    dense = torch.kron(omega + pi * damping ** 0.5 * torch.eye(len(omega), dtype=torch.float64),
                       gamma + damping ** 0.5 / pi * torch.eye(len(gamma), dtype=torch.float64))
    w_grad = _weight_and_bias({k: torch.randn_like(v) for k, v in params.items()}, "0", net[0])
    a_inv, g_inv = damped_inverses(A, G, damping)
    expected = -lr * torch.linalg.solve(dense, _vec(w_grad))
    assert torch.allclose(_vec(-lr * g_inv @ w_grad @ a_inv), expected, atol=1e-10)
