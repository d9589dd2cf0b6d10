"""The verdict functions on synthetic results: clear wins and losses, ties, wins inside the
noise, NaN baselines, every run diverged, one-sided wins across settings, negative claims without a positive
control, sweeps that miss what the claim names, and the smoke profile."""

import numpy as np
import pytest

from l2l_utils import verdicts as V


def noisy(mean, n=30, sd=0.05, seed=0):
    return mean + sd * np.random.default_rng(seed).standard_normal(n)


def test_a_clear_win_and_a_clear_loss():
    assert V.better(noisy(1.0), noisy(2.0, seed=1), ("A", "B")).verdict == "reproduced"
    assert V.better(noisy(2.0), noisy(1.0, seed=1)).verdict == "not reproduced"
    # "higher is better" (accuracy)
    assert V.better(noisy(0.9), noisy(0.8, seed=1), direction="higher").verdict == "reproduced"
    assert V.better(noisy(0.8), noisy(0.9, seed=1), direction="higher").verdict == "not reproduced"


def test_a_win_inside_the_noise_is_inconclusive_and_the_interval_is_shown():
    a, b = noisy(1.00, n=10, sd=0.3, seed=2), noisy(1.02, n=10, sd=0.3, seed=3)
    result = V.better(a, b, ("LSTM", "NAG"))
    assert result.verdict == "inconclusive"
    assert "ratio" in result.measured and "[" in result.measured and "n = 10 problems" in result.measured


def test_a_tie_is_not_a_win():
    same = noisy(1.0)
    assert V.better(same, same.copy(), paired=True).verdict == "not reproduced"


def test_margin_is_required():
    a, b = noisy(0.9, sd=0.01), noisy(1.0, sd=0.01, seed=1)
    assert V.better(a, b).verdict == "reproduced"
    assert V.better(a, b, margin=0.5).verdict == "not reproduced"  # needs a/b < 0.5
    assert V.better(a, b, margin=0.1).verdict == "inconclusive"  # a/b ≈ 0.9 sits on the threshold


def test_paired_comparison_sees_a_consistent_small_gain_the_unpaired_one_misses():
    problems = np.random.default_rng(4).uniform(0.5, 3.0, 25)  # problems differ a lot in difficulty
    a, b = problems * 0.97, problems
    assert V.better(a, b, paired=True).verdict == "reproduced"
    assert V.better(a, b, paired=False).verdict == "inconclusive"


def test_diverged_runs_count_as_failures_and_are_reported():
    a = np.r_[noisy(0.5, n=10), [np.nan] * 10]  # survivors look great, half diverged
    b = noisy(1.0, n=20, seed=1)
    result = V.better(a, b, ("L", "B"))
    assert result.verdict == "not reproduced"  # an infinite mean loss
    assert "failed (counted as the worst possible value) 10 vs 0" in result.measured
    assert V.better(a, b, statistic="median").verdict != "reproduced"  # half failed: the median is a failure too
    # one failure in 30 makes the mean comparison undecidable, not a win on the survivors
    rare = np.r_[noisy(0.5, n=29), [np.inf]]
    assert V.better(rare, noisy(1.0, n=30, seed=1)).verdict == "inconclusive"
    assert V.better(rare, noisy(1.0, n=30, seed=1), statistic="median").verdict == "reproduced"
    # a named failure value (e.g. the loss before training) instead of infinity
    capped = V.better(a, b, failure_value=2.3)
    assert capped.verdict == "not reproduced" and "counted as 2.3" in capped.measured


def test_every_run_diverged():
    nan = np.full(5, np.nan)
    assert V.better(nan, noisy(1.0, n=5)).verdict == "not reproduced"
    assert V.better(noisy(1.0, n=5), nan).verdict == "reproduced"  # a NaN baseline loses
    assert V.better(nan, nan.copy()).verdict.startswith("inconclusive: every unit of both failed")
    assert V.better(np.full(5, np.inf), noisy(1.0, n=5)).verdict == "not reproduced"


def test_one_unit_has_no_interval():
    assert V.better([1.0], [2.0]).verdict.startswith("inconclusive: one unit only")


def test_better_than_all_is_a_conjunction():
    values = {"L": noisy(1.0), "A": noisy(2.0, seed=1), "B": noisy(3.0, seed=2), "C": noisy(0.5, seed=3)}
    assert V.better_than_all(values, "L", ["A", "B"]).verdict == "reproduced"
    assert V.better_than_all(values, "L", ["A", "B", "C"]).verdict == "not reproduced"
    values["D"] = noisy(1.0, seed=9, sd=0.3, n=30)
    assert V.better_than_all(values, "L", ["A", "D"]).verdict == "inconclusive"


def test_across_settings():
    R, N, I = V.Result("reproduced", "r"), V.Result("not reproduced", "n"), V.Result("inconclusive", "i")
    assert V.across({"T=1": R, "T=5": R}).verdict == "reproduced"
    assert V.across({"T=1": N, "T=5": N}).verdict == "not reproduced"
    assert V.across({"T=1": R, "T=5": N}).verdict == "partly: holds in 1 of 2 settings"  # a one-sided win
    assert V.across({"T=1": N, "T=5": I}).verdict == "not reproduced"
    assert V.across({"T=1": R, "T=5": I}).verdict.startswith("inconclusive")
    assert V.across({}).verdict.startswith("not run")


def test_similar_needs_the_whole_interval_inside_the_tolerance():
    assert V.similar(noisy(1.0, sd=0.01), noisy(1.05, sd=0.01, seed=1), 0.25).verdict == "reproduced"
    assert V.similar(noisy(1.0, sd=0.01), noisy(2.0, sd=0.01, seed=1), 0.25).verdict == "not reproduced"
    assert V.similar(noisy(1.0, sd=0.5, n=6), noisy(1.2, sd=0.5, n=6, seed=1), 0.25).verdict == "inconclusive"


def test_negative_claims_need_a_positive_control():
    fails_here = V.negate(V.better(noisy(2.0), noisy(1.0, seed=1)), "LSTM outperforms")  # LSTM does not beat them
    assert fails_here.verdict == "reproduced"
    good_control = V.better(noisy(0.5), noisy(1.0, seed=1))
    bad_control = V.better(noisy(2.0), noisy(1.0, seed=1))  # X fails on the contrasting setting too: broken X
    assert V.with_positive_control(fails_here, good_control, "sigmoid").verdict == "reproduced"
    assert V.with_positive_control(fails_here, bad_control, "sigmoid").verdict.startswith(
        "inconclusive: no positive control")
    # a negative claim that is not reproduced needs no control to say so
    holds_here = V.negate(V.better(noisy(0.5), noisy(1.0, seed=1)), "x")
    assert V.with_positive_control(holds_here, bad_control, "sigmoid").verdict == "not reproduced"


def test_sweep_must_cover_the_values_the_claim_names():
    assert V.sweep_too_narrow([5, 6], [1, 3, 5]) == ("inconclusive: the sweep is too narrow (the claim names [5, 6]; "
                                                     "missing [6])")
    assert V.sweep_too_narrow([5, 6], range(1, 8)) is None


def test_numerical_checks_and_smoke():
    assert V.within_tolerance({"a": 1e-12, "b": 3e-11}, 1e-9).verdict == "reproduced"
    assert V.within_tolerance({"a": 1e-12, "b": 1e-3}, 1e-9).verdict.startswith("not reproduced")
    assert V.within_tolerance({"a": float("nan")}, 1e-9).verdict.startswith("not reproduced")
    assert V.smoke(V.Result("reproduced", "x")).verdict == "smoke: pipeline ran"
    assert V.smoke(V.Result("not run: data missing", "—")).verdict == "not run: data missing"


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="direction"):
        V.better([1, 2], [1, 2], direction="up")
    with pytest.raises(ValueError, match="statistic"):
        V.bootstrap_effect([1, 2], [1, 2], statistic="mode")
    with pytest.raises(ValueError, match="aligned"):
        V.bootstrap_effect([1, 2], [1, 2, 3], paired=True)


def test_in_share_of_settings():
    R, N, I = V.Result("reproduced", "r"), V.Result("not reproduced", "n"), V.Result("inconclusive", "i")
    assert V.in_share_of({"a": R, "b": N}, 0.5).verdict == "reproduced"
    assert V.in_share_of({"a": N, "b": N, "c": R}, 0.5).verdict == "not reproduced"
    assert V.in_share_of({"a": N, "b": I, "c": R}, 0.5).verdict == "inconclusive"
