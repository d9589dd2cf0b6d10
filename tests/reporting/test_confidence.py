"""Confidence intervals over runs (``l2l_utils.reporting.confidence``): failures counted, never dropped, and coverage at
least nominal at small n (simulated), where a percentile bootstrap falls far short. Needs numpy and scipy only
(the ``mean_std`` check at the end also needs pandas and torch and is skipped without them)."""

import numpy as np
import pytest

from l2l_utils.reporting.confidence import confidence_interval


def test_diverged_runs_count_as_failures():
    est, low, high = confidence_interval([1.0, 2.0, 3.0, np.nan], "median")
    assert est == 2.5 and high == np.inf  # the NaN run is a failure (+inf), not dropped
    assert confidence_interval([1.0, np.nan, np.nan], "median")[0] == np.inf
    assert confidence_interval([0.5, 0.7], "median", failure=-np.inf)[0] == 0.6
    # a mean with an infinite failure is infinite, bounds included; a finite failure value is an ordinary value
    assert confidence_interval([1.0, 2.0, np.nan], "mean") == (np.inf, np.inf, np.inf)
    est, low, high = confidence_interval([1.0, 2.0, np.nan], "mean", failure=3.0)
    assert est == 2.0 and low < 2.0 < high and np.isfinite(low)
    # a median tolerates failures below half: 2 of 10 runs failed
    est, low, high = confidence_interval([*np.linspace(1, 2, 8), np.nan, np.nan], "median")
    assert np.isfinite(est) and high == np.inf and np.isfinite(low)


def test_small_samples():
    assert all(np.isnan(confidence_interval([1.0], "mean")[1:]))
    # at 95% a median needs 6 runs: below, the interval is unbounded; at 6 to 8 it is the range of the runs
    for n in range(2, 6):
        assert confidence_interval(np.arange(1.0, n + 1), "median")[1:] == (-np.inf, np.inf)
    assert confidence_interval(np.arange(1.0, 7), "median")[1:] == (1.0, 6.0)
    assert confidence_interval(np.arange(1.0, 10), "median")[1:] == (2.0, 8.0)
    with pytest.raises(ValueError, match="statistic"):
        confidence_interval([1.0, 2.0], "mode")


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_coverage_is_at_least_nominal_at_every_n(statistic):
    """Each side misses the true value in at most 2.5% of samples (+ 3 binomial sd): normal runs for the mean (the t
    interval is exact there), log-normal (CV 30%) runs for the median (distribution-free)."""
    rng = np.random.default_rng(1 if statistic == "mean" else 2)
    trials = 600
    bound = 0.025 + 3 * np.sqrt(0.025 * 0.975 / trials)
    s2 = np.log(1.09)
    for n in (2, 3, 5, 6, 10, 20):
        if statistic == "mean":
            runs, truth = 1.0 + 0.3 * rng.standard_normal((trials, n)), 1.0
        else:
            runs, truth = np.exp(np.sqrt(s2) * rng.standard_normal((trials, n))), 1.0
        bounds = np.array([confidence_interval(r, statistic)[1:] for r in runs])
        assert np.mean(bounds[:, 0] > truth) <= bound, n
        assert np.mean(bounds[:, 1] < truth) <= bound, n


def test_mean_std_is_the_sample_std():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("torch")
    from l2l_utils.evaluation.meta_test import mean_std

    s = mean_std(pd.DataFrame({"test_accuracy": [0.9, 0.8, 0.7]}))
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1)  # ddof = 1
    assert np.isnan(mean_std(pd.DataFrame({"test_accuracy": [0.9, np.nan]}))["mean"])
