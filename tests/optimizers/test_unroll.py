"""The inner loop's divergence handling: a NaN/inf loss ends that run only, from its first non-finite step."""

import math

import numpy as np
import pytest
import torch

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.optimizers.baselines import run_baseline
from l2l_utils.optimizers.unroll import Unrolled, unroll
from l2l_utils.optimizers.update_rules import GradientStep


def test_trajectory_marks_nan_from_first_non_finite_step():
    losses = np.array([[1.0, 1.0, 1.0], [0.5, np.inf, 2.0], [0.2, 3.0, np.nan], [0.1, 4.0, 5.0]])
    traj = Unrolled(losses.copy(), {})
    np.testing.assert_array_equal(traj.losses[:, 0], [1.0, 0.5, 0.2, 0.1])
    np.testing.assert_array_equal(traj.losses[:, 1], [1.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(traj.losses[:, 2], [1.0, 2.0, np.nan, np.nan])
    np.testing.assert_array_equal(traj.diverged, [False, True, True])
    np.testing.assert_array_equal(traj.final[:1], [0.1])


class ScaledSquares:
    """f_i(θ) = c_i Σ θ²: with SGD at lr 0.1, c = 1000 multiplies θ by -199 per step and overflows."""

    def __init__(self, scales):
        self.scales = torch.tensor(scales)
        self.params0 = {"theta": torch.ones(len(scales), 2)}
        self.groups = {"theta": "all"}

    def loss(self, params):
        return self.scales * params["theta"].pow(2).sum(-1)


def _first_non_finite(values):
    bad = [t for t, v in enumerate(values) if not math.isfinite(v)]
    return bad[0] if bad else None


def test_run_baseline_divergence_of_one_run():
    problem = ScaledSquares([1.0, 1000.0])
    steps = 30
    traj = run_baseline("SGD", 0.1, problem, steps)  # must not raise
    np.testing.assert_array_equal(traj.diverged, [False, True])
    assert np.isfinite(traj.losses[:, 0]).all()
    # reference: the diverging run alone, float32 like the batch
    theta = torch.ones(2)
    values = []
    for _ in range(steps + 1):
        values.append(float(1000.0 * theta.pow(2).sum()))
        theta = theta - 0.1 * 1000.0 * 2 * theta
    k = _first_non_finite(values)
    assert k is not None and 0 < k < steps
    np.testing.assert_allclose(traj.losses[:k, 1], values[:k], rtol=1e-5)
    assert np.isnan(traj.losses[k:, 1]).all()
    # the healthy run is unaffected by its neighbour blowing up
    alone = run_baseline("SGD", 0.1, ScaledSquares([1.0]), steps).losses[:, 0]
    np.testing.assert_allclose(traj.losses[:, 0], alone, rtol=1e-6)


def test_unroll_divergence_of_one_run():
    steps = 30
    traj = unroll(GradientStep(0.1), ScaledSquares([1.0, 1000.0]), steps)
    np.testing.assert_array_equal(traj.diverged, [False, True])
    reference = run_baseline("SGD", 0.1, ScaledSquares([1.0, 1000.0]), steps).losses
    np.testing.assert_allclose(traj.losses, reference, rtol=1e-5, equal_nan=True)


class NaNAfterMoving:
    """Run 1's loss is NaN as soon as θ leaves θ0; run 0 is a plain quadratic."""

    def __init__(self):
        self.params0 = {"theta": torch.full((2, 3), 0.5)}
        self.groups = {"theta": "all"}

    def loss(self, params):
        theta = params["theta"]
        value = theta.pow(2).sum(-1)
        moved = (theta[1] != self.params0["theta"][1]).any()
        poison = torch.tensor([0.0, float("nan") if moved else 0.0])
        return value + poison


def test_unroll_lstm_with_nan_loss_in_one_run():
    torch.manual_seed(0)
    traj = unroll(LSTMOptimizer(preprocess_p=10.0, output_scale=0.1), NaNAfterMoving(), 5)
    np.testing.assert_array_equal(traj.diverged, [False, True])
    assert np.isfinite(traj.losses[:, 0]).all()
    assert traj.losses[0, 1] == pytest.approx(0.75)
    assert np.isnan(traj.losses[1:, 1]).all()


def test_every_run_diverging_pads_with_nan():
    traj = run_baseline("SGD", 0.1, ScaledSquares([1000.0, 2000.0]), 40)
    assert traj.losses.shape == (41, 2)
    assert traj.diverged.all()


# -------------------------------------------------------------------------------------- tasks
