"""The "did it learn?" gate: a learned optimizer enters a comparison only once it is shown to have learned.

A meta-trained optimizer that never left chance loss (ln 10 = 2.3026 on a 10-class problem) is no baseline: beating
it shows nothing. Before any claim compares with it, :func:`did_it_learn` asks two things, each decided by
:func:`~l2l_utils.reporting.verdicts.better` over the same test runs (paired: row i of every curve is one problem,
its θ0 and minibatches):

1. meta-training lowered the meta-loss: the mean training loss over the meta-training horizon (Andrychowicz et al.
   Eq. 2 with w_t = 1, divided by T) of the meta-trained optimizer is below that of the same optimizer before
   meta-training (same architecture and start, same problems);
2. it optimises: its loss at that horizon is at least :data:`MIN_DECREASE` (10%) below the loss at θ0 (a loss that
   sits at chance, 2.303 → 2.302, is not optimisation).

:func:`gated` then turns every row that uses an optimizer which failed its gate into "inconclusive: <name> did not
learn (...)".
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..optimizers.unroll import unroll
from .verdicts import Result, all_of, better

CHANCE_10_CLASSES = float(np.log(10.0))  # the cross-entropy of a uniform guess over 10 classes: 2.3026
MIN_DECREASE = 0.1  # criterion 2: loss at the horizon / loss at θ0 < 1 − MIN_DECREASE


def loss_curves(frame: pd.DataFrame, optimizer: str, steps: int) -> np.ndarray:
    """(runs, steps + 1) losses of ``optimizer`` in a tidy frame (columns optimizer, run, step, loss), steps 0..steps;
    a run that diverged is NaN from its first non-finite step (a failure for the verdicts)."""
    rows = frame[(frame.optimizer == optimizer) & (frame.step <= steps)]
    table = rows.pivot(index="run", columns="step", values="loss").sort_index()
    if table.shape[1] != steps + 1:
        raise ValueError(f"{optimizer}: the frame has steps 0..{int(rows.step.max())}, the gate needs 0..{steps}")
    return table.to_numpy(dtype=float)


def did_it_learn(name: str, trained: np.ndarray, untrained: np.ndarray, chance: float | None = None,
                 unit: str = "test runs") -> Result:
    """The gate (module docstring) from loss curves (runs, T + 1) of the meta-trained and the untrained optimizer on
    the same problems, column 0 the loss at θ0 and column T the meta-training horizon. "reproduced" = it learned."""
    trained, untrained = np.asarray(trained, dtype=float), np.asarray(untrained, dtype=float)
    if trained.shape != untrained.shape or trained.ndim != 2 or trained.shape[1] < 2:
        raise ValueError(f"curves must be (runs, T + 1) arrays of one shape, got {trained.shape} and {untrained.shape}")
    with np.errstate(invalid="ignore"):
        meta_trained, meta_untrained = trained[:, 1:].mean(axis=1), untrained[:, 1:].mean(axis=1)
    horizon = trained.shape[1] - 1
    parts = {
        "meta-loss lowered by meta-training": better(meta_trained, meta_untrained, ("trained", "untrained"),
                                                     paired=True, unit=unit),
        f"loss at step {horizon} below θ0": better(trained[:, -1], trained[:, 0], (f"step {horizon}", "θ0"),
                                                   margin=MIN_DECREASE, paired=True, unit=unit),
    }
    decided = all_of(parts)
    final = float(np.nanmean(trained[:, -1])) if np.isfinite(trained[:, -1]).any() else float("nan")
    note = f"final loss {final:.4g} at step {horizon}"
    if chance is not None:
        note += f" (chance {chance:.4g})"
    if decided.kind == "reproduced":
        return Result("reproduced", f"{name} learned: {note}; {decided.measured}")
    if decided.kind == "not reproduced":
        return Result(f"not reproduced: {name} did not learn ({note})", decided.measured)
    return Result(f"inconclusive: not shown that {name} learned ({note})", decided.measured)


def did_it_learn_from_validation(name: str, before, after, unit: str = "runs") -> Result:
    """The gate for episodic meta-learners (MAML, meta-learner LSTM, TURTLE), whose meta-loss is the query loss after
    adaptation: per run, the validation loss of the best checkpoint (``after``) below that of the same meta-learner
    before meta-training (``before``), decided by :func:`~l2l_utils.reporting.verdicts.better` (paired over runs)."""
    decided = better(after, before, ("meta-trained", "before meta-training"), paired=True, unit=unit)
    if decided.kind == "reproduced":
        return Result("reproduced", f"{name} learned: validation loss {decided.measured}")
    if decided.kind == "not reproduced":
        return Result(f"not reproduced: {name} did not learn (validation loss not lowered by meta-training)",
                      decided.measured)
    return Result(f"inconclusive: not shown that {name} learned ({decided.verdict})", decided.measured)


def gate(name: str, trained, untrained, make_problem: Callable[[], object], steps: int, chance: float | None = None,
         unit: str = "test runs") -> Result:
    """:func:`did_it_learn` for update rules: ``trained`` and ``untrained`` (the same network before meta-training)
    each run ``steps`` steps on ``make_problem()`` (the same test problems at every call: common random numbers)."""
    runs = [unroll(rule, make_problem(), steps).losses.T for rule in (trained, untrained)]
    return did_it_learn(name, *runs, chance=chance, unit=unit)


def gated(result: Result, gates: Mapping[str, Result]) -> Result:
    """``result`` of a comparison that uses the learned optimizers named in ``gates``: unchanged if each passed its
    gate, else "inconclusive: <name> did not learn (...)" with the comparison's measurement kept."""
    failed = {name: gate for name, gate in gates.items() if gate.kind != "reproduced"}
    if not failed:
        return result
    why = "; ".join(gate.verdict.split(":", 1)[1].strip() if ":" in gate.verdict else f"{name}: {gate.verdict}"
                    for name, gate in failed.items())
    return Result(f"inconclusive: {why}", f"{result.measured} (would be: {result.kind})")
