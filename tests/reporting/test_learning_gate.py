"""The "did it learn?" gate on synthetic curves: an optimizer that learned passes; one stuck at chance loss, one
that meta-training made no better, and one that does not optimise fail; a comparison against a failed one is
inconclusive whatever it would have said."""

import numpy as np
import pandas as pd
import pytest

from l2l_utils.reporting.learning_gate import CHANCE_10_CLASSES, did_it_learn, gate, gated, loss_curves
from l2l_utils.reporting.verdicts import Result

RUNS, T = 12, 50


def decaying(start=2.3, end=0.4, runs=RUNS, steps=T, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    shape = np.exp(-np.arange(steps + 1) / (steps / 4))
    base = end + (start - end) * shape
    out = base + noise * rng.standard_normal((runs, steps + 1))
    out[:, 0] = start + 0.01 * rng.standard_normal(runs)
    return out


def flat(level=CHANCE_10_CLASSES, runs=RUNS, steps=T, noise=0.002, seed=1):
    return level + noise * np.random.default_rng(seed).standard_normal((runs, steps + 1))


def test_an_optimizer_that_learned_passes():
    result = did_it_learn("LSTM", decaying(end=0.3), decaying(end=1.5, seed=2), chance=CHANCE_10_CLASSES)
    assert result.kind == "reproduced", result
    assert "LSTM learned" in result.measured


def test_an_optimizer_stuck_at_chance_fails():
    stuck = flat()
    result = did_it_learn("RNNProp", stuck, flat(level=2.31, seed=3), chance=CHANCE_10_CLASSES)
    assert result.kind == "not reproduced" and "RNNProp did not learn" in result.verdict
    assert "chance 2.303" in result.verdict


def test_meta_training_that_changed_nothing_fails_even_if_the_loss_falls():
    same = decaying(end=0.5)
    result = did_it_learn("Meta-SGD", same, same.copy())
    assert result.kind != "reproduced"


def test_an_optimizer_that_got_better_than_untrained_but_still_rises_above_theta0_fails():
    rising = decaying(start=2.3, end=3.0)  # meta-training helped (untrained rises more) but the loss ends above θ0
    result = did_it_learn("DM", rising, decaying(start=2.3, end=5.0, seed=4))
    assert result.kind == "not reproduced"


def test_diverged_runs_count_against_the_gate():
    trained = decaying(end=0.3)
    trained[: RUNS // 2, 10:] = np.nan  # half the runs diverged
    assert did_it_learn("X", trained, decaying(end=1.5, seed=2)).kind != "reproduced"


def test_too_few_runs_cannot_pass():
    result = did_it_learn("X", decaying(end=0.3, runs=2), decaying(end=1.5, runs=2, seed=2))
    assert result.kind == "inconclusive"


def test_gated_keeps_a_comparison_with_comparators_that_learned_and_voids_one_without():
    win = Result("reproduced", "mean A 0.1 vs B 0.5")
    passed = Result("reproduced", "B learned")
    failed = did_it_learn("RNNProp", flat(), flat(level=2.31, seed=3), chance=CHANCE_10_CLASSES)
    assert gated(win, {"B": passed}) == win
    voided = gated(win, {"B": passed, "RNNProp": failed})
    assert voided.kind == "inconclusive" and "RNNProp did not learn" in voided.verdict
    assert "would be: reproduced" in voided.measured
    assert gated(Result("not reproduced", "x"), {"RNNProp": failed}).kind == "inconclusive"


def test_curves_from_a_tidy_frame():
    losses = decaying(runs=3, steps=4)
    frame = pd.DataFrame([{"optimizer": name, "run": r, "step": s, "loss": losses[r, s] + (name == "B")}
                          for name in "AB" for r in range(3) for s in range(5)])
    np.testing.assert_array_equal(loss_curves(frame, "A", 4), losses)
    with pytest.raises(ValueError, match="needs 0..9"):
        loss_curves(frame, "A", 9)


def test_gate_runs_both_rules_on_the_same_problems():
    """Plain gradient descent at a good rate 'learned' relative to a rate of ~0 (the untrained stand-in) on
    quadratics; the reverse fails."""
    import torch

    from l2l_utils.optimizers.baselines import baseline_rule
    from l2l_utils.tasks.problems import QuadraticTask

    def make_problem():
        return QuadraticTask(dim=5).sample(RUNS, torch.Generator().manual_seed(0))

    good, idle = baseline_rule("SGD", 0.02), baseline_rule("SGD", 1e-6)
    assert gate("SGD", good, idle, make_problem, 40).kind == "reproduced"
    assert gate("SGD", idle, good, make_problem, 40).kind == "not reproduced"


def test_the_episodic_gate_needs_meta_training_to_lower_the_validation_loss():
    from l2l_utils.reporting.learning_gate import did_it_learn_from_validation

    rng = np.random.default_rng(0)
    before = 4.0 + 0.3 * rng.standard_normal(RUNS)
    assert did_it_learn_from_validation("TURTLE", before, 0.5 * before).kind == "reproduced"
    assert did_it_learn_from_validation("TURTLE", before, 1.2 * before).kind == "not reproduced"
    assert did_it_learn_from_validation("TURTLE", before[:3], 0.5 * before[:3]).kind == "inconclusive"
