"""RNNProp (Lv, Jiang & Li 2017) as the SimpleOptimizer notebook builds it: the start of Lv et al.'s public code
(github.com/vfleaking/rnnprop) checked against its numbers, the zero-gradient property that start has, and the size
and sign pattern of the untrained steps on the ReLU MLP (the reason torch's default start cannot be meta-trained
there)."""

import math

import pytest
import torch

from l2l_utils.learned_optimizers.rnnprop import RNNProp
from l2l_utils.tasks.models import mlp


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_authors_init_is_lv_et_al_public_code():
    """Linear layers N(0, 0.1²) truncated at ±0.2 with zero biases (nn_opt/__init__.py); LSTM weights TF 0.12's
    default uniform_unit_scaling, U(±√(3/40)) for the [input; hidden] = 40 rows; LSTM biases 0 but the forget gate's
    +1 (TF's forget_bias). Table 1's 6,801 parameters are unchanged."""
    torch.manual_seed(0)
    rule = RNNProp(init="authors")
    assert _count(rule) == 6801
    for layer in (rule.embed, rule.head):
        assert float(layer.weight.abs().max()) <= 0.2
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    weights = torch.cat([rule.embed.weight.reshape(-1), rule.head.weight.reshape(-1)])
    # a N(0, 0.1²) truncated at ±2σ has standard deviation 0.1·0.880 (40 + 20 draws: loose bounds)
    assert 0.06 < float(weights.std()) < 0.12
    bound = math.sqrt(3 / 40)
    for cell in rule.cells:
        lstm_weights = torch.cat([cell.weight_ih.reshape(-1), cell.weight_hh.reshape(-1)])
        assert float(lstm_weights.abs().max()) <= bound
        assert float(lstm_weights.abs().max()) > 0.95 * bound  # uniform over the whole range (3,200 draws)
        assert float(lstm_weights.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)
        expected = torch.zeros(80)
        expected[20:40] = 1.0  # nn.LSTMCell's gate order: input, forget, candidate, output
        assert torch.equal(cell.bias_ih.detach(), expected)
        assert torch.equal(cell.bias_hh.detach(), torch.zeros(80))
    with pytest.raises(ValueError, match="init="):
        RNNProp(init="glorot")


def test_authors_init_gives_a_zero_update_for_a_zero_gradient_and_torchs_default_does_not():
    """From the authors' start a zero gradient gives inputs (0, 0), ELU(0) = 0, c = σ(1)·0 + σ(0)·tanh(0) = 0, h = 0
    and an update of exactly 0 at every step; torch's default biases move such a coordinate anyway (the same amount
    for every one of them)."""
    params = {"w": torch.randn(2, 30, 7), "b": torch.randn(2, 7)}
    zero = {k: torch.zeros_like(v) for k, v in params.items()}
    for init, moves in (("authors", False), ("pytorch", True)):
        torch.manual_seed(1)
        rule = RNNProp(init=init)
        state = rule.init(params)
        with torch.no_grad():
            for _ in range(3):
                updates, state = rule(zero, state)
        flat = torch.cat([u.reshape(-1) for u in updates.values()])
        if moves:
            assert float(flat.abs().min()) > 0  # one common step for every coordinate (float sums aside)
            torch.testing.assert_close(flat, torch.full_like(flat, float(flat[0])), rtol=1e-5, atol=0)
        else:
            assert torch.equal(flat, torch.zeros_like(flat))


def _untrained_rnnprop_steps(init, seeds=range(5), steps=5):
    """Per seed: the largest median |u_t| / median |θ0| over ``steps`` steps, and the share of coordinates whose step
    has the majority's sign, for the untrained RNNProp on a 784-50-ReLU-10 MLP at torch's default θ0 under N(0, 1e-3²)
    gradients (RNNProp normalises them: the scale does not matter)."""
    module = mlp(784, [50], 10, "relu")
    theta = {k: v.detach().unsqueeze(0) for k, v in module.named_parameters()}
    typical = float(torch.cat([v.reshape(-1) for v in theta.values()]).abs().median())
    sizes, majorities = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        rule = RNNProp(init=init)
        g = torch.Generator().manual_seed(seed)
        params, state = theta, rule.init(theta)
        worst, majority = 0.0, 0.0
        with torch.no_grad():
            for t in range(steps):
                grads = {k: 1e-3 * torch.randn(v.shape, generator=g) for k, v in params.items()}
                new, state = rule.update(params, grads, state, t)
                u = torch.cat([(new[k] - params[k]).reshape(-1) for k in params])
                worst = max(worst, float(u.abs().median()) / typical)
                majority = max(majority, float(torch.maximum((u > 0).float().mean(), (u < 0).float().mean())))
                params = new
        sizes.append(worst)
        majorities.append(majority)
    return sizes, majorities


def test_untrained_rnnprop_steps_are_small_and_have_no_common_sign_at_the_profile_setting():
    """As the notebook builds it (``rnnprop_init`` of the profile: Lv et al.'s start) the untrained RNNProp moves the
    ReLU MLP's coordinates by less than 15% of the median |θ0| per step and in no common direction (each step's sign
    is set by its coordinate's gradient). From torch's default start every coordinate takes the same step, up to
    about the median |θ0| itself: on the base MLP every ReLU is dead within a few steps (or the loss explodes), and
    meta-training can stay at ln 10 with no meta-gradient through the dead hidden layer."""
    from l2l_utils.harness.profiles.simple_optimizer import PAPER, SMOKE

    assert PAPER["rnnprop_init"] == SMOKE["rnnprop_init"] == "authors"
    sizes, majorities = _untrained_rnnprop_steps(PAPER["rnnprop_init"])
    assert max(sizes) < 0.15 and max(majorities) < 0.75
    sizes, majorities = _untrained_rnnprop_steps("pytorch")
    assert min(majorities) > 0.99 and max(sizes) > 0.5
