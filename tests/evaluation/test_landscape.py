"""Loss-landscape and low-rank analyses of MetaMD App. A.10 (Fig. 7) and A.11 (Fig. 8)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from l2l_utils.evaluation.landscape import feature_spectrum, loss_along, top_hessian_eigenpair


def _symmetric(eigenvalues, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T


def _quadratic(h: np.ndarray):
    ht = torch.tensor(h)
    return lambda params: 0.5 * params["x"] @ ht @ params["x"]


def _flatten(v: dict) -> np.ndarray:
    return np.concatenate([t.detach().reshape(-1).numpy() for t in v.values()])


@pytest.mark.parametrize("eigenvalues", [
    [5.0, 2.0, 1.0, -0.5, 0.1, 3.0],  # clearly largest positive eigenvalue
    [-6.0, 3.0, 1.0, 0.5, -2.0, 4.0],  # the largest in magnitude is negative
])
def test_top_eigenpair_of_a_quadratic_matches_eigh(eigenvalues):
    h = _symmetric(eigenvalues)
    params = {"x": torch.tensor([0.3, -1.0, 2.0, 0.0, 0.5, -0.2], dtype=torch.float64)}
    value, vector = top_hessian_eigenpair(_quadratic(h), params, iters=500, tol=1e-15,
                                          generator=torch.Generator().manual_seed(0))

    w, u = np.linalg.eigh(h)
    top = np.argmax(np.abs(w))
    assert value == pytest.approx(w[top], rel=1e-10)
    assert vector["x"].shape == params["x"].shape and vector["x"].dtype == torch.float64
    v = _flatten(vector)
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-12)
    assert min(np.abs(v - u[:, top]).max(), np.abs(v + u[:, top]).max()) < 1e-7
    np.testing.assert_allclose(h @ v, value * v, atol=1e-7)


def test_top_eigenpair_stops_early_on_the_relative_tolerance():
    h = _symmetric([5.0, 1.0, 0.5])
    params = {"x": torch.zeros(3, dtype=torch.float64)}
    calls = []
    loss = _quadratic(h)

    def counting(p):
        calls.append(1)
        return loss(p)

    value, _ = top_hessian_eigenpair(counting, params, iters=1000, tol=1e-3,
                                     generator=torch.Generator().manual_seed(0))
    assert 2 <= len(calls) < 100  # a 5:1 gap reaches a 1e-3 relative change in a handful of iterations
    assert value == pytest.approx(5.0, rel=1e-2)


def test_top_eigenpair_is_reproducible_with_a_generator():
    h = _symmetric([5.0, 4.0, 1.0])
    params = {"x": torch.ones(3, dtype=torch.float64)}
    a = top_hessian_eigenpair(_quadratic(h), params, iters=3, generator=torch.Generator().manual_seed(1))
    b = top_hessian_eigenpair(_quadratic(h), params, iters=3, generator=torch.Generator().manual_seed(1))
    assert a[0] == b[0] and torch.equal(a[1]["x"], b[1]["x"])


def test_top_eigenpair_of_a_linear_classifier_matches_the_dense_hessian():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=gen)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_fn(p):
        return F.cross_entropy(functional_call(model, p, (x,)), y)

    shapes = {k: v.shape for k, v in params.items()}
    sizes = [v.numel() for v in params.values()]

    def flat_loss(flat):
        return loss_fn({k: t.reshape(shapes[k]) for k, t in zip(shapes, flat.split(sizes))})

    dense = torch.autograd.functional.hessian(flat_loss, torch.cat([v.reshape(-1) for v in params.values()]))
    w, u = np.linalg.eigh(dense.numpy())
    top = np.argmax(np.abs(w))
    assert np.sort(np.abs(w))[-2] < 0.9 * abs(w[top])  # a gap (0.60 vs 0.69): 0.87^400 ≈ 1e-24

    value, vector = top_hessian_eigenpair(loss_fn, params, iters=400, tol=0.0,
                                          generator=torch.Generator().manual_seed(0))
    assert set(vector) == {"weight", "bias"}
    assert all(vector[k].shape == params[k].shape for k in params)
    assert value == pytest.approx(w[top], rel=1e-9)
    v = _flatten(vector)  # named_parameters order: weight then bias, as in the flat Hessian
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-12)
    assert min(np.abs(v - u[:, top]).max(), np.abs(v + u[:, top]).max()) < 1e-6


def test_loss_along_the_quadratic():
    h = _symmetric([5.0, 2.0, -1.0, 0.5])
    x = np.array([0.3, -1.0, 2.0, 0.7])
    v = np.array([1.0, 2.0, -0.5, 0.0]) / np.linalg.norm([1.0, 2.0, -0.5, 0.0])
    params = {"x": torch.tensor(x)}
    alphas = np.linspace(-2, 2, 9)
    got = loss_along(_quadratic(h), params, {"x": torch.tensor(v)}, alphas)
    want = [0.5 * (x + a * v) @ h @ (x + a * v) for a in alphas]
    assert isinstance(got, np.ndarray) and got.shape == (9,)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert torch.equal(params["x"], torch.tensor(x))  # params are not moved


def test_loss_along_two_tensors():
    params = {"a": torch.tensor([1.0, 2.0], dtype=torch.float64), "b": torch.tensor(3.0, dtype=torch.float64)}
    direction = {"a": torch.tensor([1.0, 0.0], dtype=torch.float64), "b": torch.tensor(-1.0, dtype=torch.float64)}
    got = loss_along(lambda p: (p["a"] ** 2).sum() * p["b"], params, direction, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(got, [5 * 3, 8 * 2, 13 * 1])


# ------------------------------------------------------------------------------ App. A.11 spectrum
def _pairs(scales, dim):
    """Rows ±s_i e_i: centred by construction, column i of norm s_i √2, so singular values √2·s_i."""
    rows = []
    for i, s in enumerate(scales):
        e = np.zeros(dim)
        e[i] = s
        rows += [e, -e]
    return torch.tensor(np.array(rows))


def test_rank_one_features():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(10, 1, generator=gen, dtype=torch.float64)
    b = torch.randn(1, 6, generator=gen, dtype=torch.float64)
    out = feature_spectrum(a @ b + 7.0)  # a constant offset is removed by centring
    assert out["singular_values"].shape == (6,)
    np.testing.assert_allclose(out["normalised"], [1, 0, 0, 0, 0, 0], atol=1e-12)
    assert out["effective_rank"] == pytest.approx(1.0, abs=1e-10)
    assert out["low_rank_level"] == pytest.approx(0.0, abs=1e-10)


def test_orthogonal_equal_norm_features_have_effective_rank_their_number():
    out = feature_spectrum(_pairs([1.5, 1.5, 1.5], dim=5))
    np.testing.assert_allclose(out["singular_values"], [1.5 * math.sqrt(2)] * 3 + [0, 0], atol=1e-12)
    assert out["effective_rank"] == pytest.approx(3.0, rel=1e-12)
    # the paper's measure is 0 for this flat rank-3 spectrum, as for rank one (see the docstring)
    assert out["low_rank_level"] == pytest.approx(0.0, abs=1e-12)


def test_low_rank_level_of_a_hand_computed_spectrum():
    out = feature_spectrum(_pairs([4.0, 2.0, 1.0], dim=4))
    np.testing.assert_allclose(out["singular_values"], np.sqrt(2) * np.array([4.0, 2.0, 1.0, 0.0]), atol=1e-12)
    np.testing.assert_allclose(out["normalised"], [1.0, 0.5, 0.25, 0.0], atol=1e-12)
    # −(1·log 1 + ½ log ½ + ¼ log ¼ + 0·log 0) = ½ log 2 + ½ log 2 = log 2
    assert out["low_rank_level"] == pytest.approx(math.log(2), rel=1e-12)
    p = np.array([4, 2, 1]) / 7  # entropy −Σ p log p = log 7 − (8 log 2 + 2 log 2)/7 = log 7 − (10/7) log 2
    assert out["effective_rank"] == pytest.approx(7 / 2 ** (10 / 7), rel=1e-12)
    assert out["effective_rank"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)


def test_features_are_centred():
    x = _pairs([3.0, 1.0], dim=3)
    shifted = x + torch.tensor([5.0, -2.0, 10.0], dtype=torch.float64)
    np.testing.assert_allclose(feature_spectrum(shifted)["singular_values"],
                               feature_spectrum(x)["singular_values"], atol=1e-12)


def test_degenerate_features_raise():
    with pytest.raises(ValueError, match="all zero"):
        feature_spectrum(torch.ones(5, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        feature_spectrum(torch.ones(5))


def test_penultimate_features_are_the_input_of_the_last_linear_layer():
    from l2l_utils.evaluation.landscape import penultimate_features
    from l2l_utils.tasks.models import mlp

    torch.manual_seed(0)
    net = mlp(5, [4, 3], 2, "relu")
    params = {k: v.detach() + 1.0 for k, v in net.named_parameters()}  # not the module's own weights
    x = torch.randn(7, 5)
    hidden = torch.relu(torch.relu(x @ params["0.weight"].T + params["0.bias"]) @ params["2.weight"].T
                        + params["2.bias"])
    torch.testing.assert_close(penultimate_features(net, params, x), hidden)
    assert not net._forward_hooks and not net[4]._forward_hooks  # the hook is removed
