"""The claim criteria the notebooks share: each turns measurements into a :class:`~.verdicts.Result` through the
comparisons of :mod:`l2l_utils.reporting.verdicts` (so each inherits their error rates, :data:`~.verdicts.MIN_UNITS`
and the treatment of failures), and each can fail: ``tests/reporting/test_criteria.py`` feeds every one data where
its claim is true, data where it is false, and too few units.

* :func:`beats` — a method below every comparator (a baseline still at chance loss is not counted as
  beaten); :func:`each_beats` — several methods each below every comparator;
* :func:`halves` — a score at least halves between two points of a run;
* :func:`diverges` — runs end at least ``factor`` times above the lowest score they reached;
* :func:`deteriorates`, :func:`gets_volatile`, :func:`converges` — shapes of one method's test curves;
* :func:`biases_move` — §3.1 of the SimpleOptimizer paper: an LSTM optimizer's biases move the parameters under a zero
  gradient (against the same trained network with its biases zeroed);
* :func:`all_converge_and_fastest` — every optimiser converges on every problem and one needs the fewest iterations;
* :func:`leads_in_share` — the better of some candidates wins in a share of the scenarios and is competitive in all;
* :func:`second_after` — a rank claim: one comparator below the method, the method below the rest.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .learning_gate import MIN_DECREASE
from .verdicts import Result, across, all_of, better, better_than_all, holds, in_share_of


def _conjunction(parts: Mapping[str, Result]) -> Result:
    """:func:`~.verdicts.all_of`, keeping the reasons of the undecided parts in an inconclusive verdict."""
    result = all_of(parts)
    reasons = sorted({r.verdict.split(":", 1)[1].strip() for r in parts.values()
                      if r.kind == "inconclusive" and ":" in r.verdict})
    if result.kind == "inconclusive" and reasons:
        return Result("inconclusive: " + "; ".join(reasons), result.measured)
    return result


def off_chance(values, chance: float, name: str, unit: str = "runs") -> Result:
    """``name``'s scores (losses) at least :data:`~.learning_gate.MIN_DECREASE` (10%) below ``chance`` (e.g. ln 10 =
    2.3026, the loss of a uniform guess over 10 classes), decided over the units like every comparison; a diverged
    unit counts as a failure. "reproduced" = the comparator left chance and a win against it means something."""
    values = np.asarray(values, dtype=float).reshape(-1)
    return better(values, np.full(len(values), float(chance)), (name, "chance"), margin=MIN_DECREASE, paired=True,
                  unit=unit)


def beats(scores: Mapping[str, Sequence[float]], method: str, others: Sequence[str], margin: float = 0.0,
          chance: float | None = None, **kw) -> Result:
    """``method``'s scores below each of ``others``' (lower is better; by ``margin``, a fraction; every keyword of
    :func:`~.verdicts.better`, e.g. ``paired``, ``unit``). With ``chance``, a comparator whose scores are not shown
    below chance (:func:`off_chance`; a baseline that diverged everywhere is not either) is not counted as beaten:
    its part reads "inconclusive: <name> not shown 10% below chance loss", so the conjunction cannot be
    "reproduced"."""
    missing = [name for name in [method, *others] if name not in scores]
    if missing:
        raise KeyError(f"no scores for {missing}; have {sorted(scores)}")
    parts = {}
    for other in others:
        result = better(scores[method], scores[other], names=(method, other), margin=margin, **kw)
        if chance is not None and result.kind == "reproduced":
            left = off_chance(scores[other], chance, other, kw.get("unit", "problems"))
            if left.kind != "reproduced":
                result = Result(f"inconclusive: {other} not shown {MIN_DECREASE:.0%} below chance loss "
                                f"({chance:.4g})", f"{result.measured}; {other} vs chance: {left.measured}")
        parts[other] = result
    return _conjunction(parts)


def each_beats(scores: Mapping[str, Sequence[float]], methods: Sequence[str], others: Sequence[str], **kw) -> Result:
    """Every one of ``methods`` :func:`beats` every one of ``others`` (a conjunction)."""
    return _conjunction({f"{name} vs {', '.join(others)}": beats(scores, name, others, **kw) for name in methods})


def halves(before, after, name: str, when: tuple[str, str] = ("before", "after"), **kw) -> Result:
    """``name``'s score at least halves from ``before`` to ``after`` (per unit: after / before < 0.5 in the mean
    ratio; paired when ``paired=True`` is passed)."""
    return better(after, before, (f"{name} {when[1]}", f"{name} {when[0]}"), margin=0.5, **kw)


def diverges(end_over_lowest, name: str, factor: float = 2.0, **kw) -> Result:
    """The runs of ``name`` diverge: each run's final score over the lowest score it reached (+inf or NaN for a run
    whose loss became non-finite) is above ``factor`` in the mean over runs."""
    values = np.asarray(end_over_lowest, dtype=float).reshape(-1)
    values = np.where(np.isnan(values), np.inf, values)
    return better(values, np.full(len(values), float(factor)), (f"{name} end/lowest", "threshold"),
                  direction="higher", relative=False, failure_value=np.inf, **kw)


def deteriorates(final, best, margin: float, **kw) -> Result:
    """A test curve ends (``final``, e.g. its mean over the last steps) above its best (lowest moving mean) by more
    than ``margin`` (a fraction of the best), over the runs."""
    return better(final, best, ("final", "best"), direction="higher", margin=margin, **kw)


def gets_volatile(after, before, **kw) -> Result:
    """The step-to-step changes of a curve vary more after a point than before it (per run)."""
    return better(after, before, ("after", "before"), direction="higher", **kw)


def converges(final, start, **kw) -> Result:
    """A learner ends below where it started (final against first evaluation, per run)."""
    return better(final, start, ("final", "start"), **kw)


def biases_move(drift: Mapping[str, float], drift_without_biases: Mapping[str, float], with_biases: Sequence[str],
                bias_free: Sequence[str] = (), factor: float = 2.0, details: str = "") -> Result:
    """SimpleOptimizer paper §3.1: under a zero gradient an LSTM optimizer's biases move the parameters and a bias-free
    rule does not. Holds when each of ``with_biases`` drifts (> 0) at least ``factor`` times as far as the same network
    with every bias zeroed, and each of ``bias_free`` drifts exactly 0 (a deterministic property of the trained
    networks: no statistics). Biases that exist but do not move anything do not pass."""
    moved = {n: bool(drift[n] > 0 and drift[n] >= factor * drift_without_biases[n]) for n in with_biases}
    still = {n: drift[n] == 0 for n in bias_free}
    text = "; ".join([f"{n}: drift {drift[n]:.3g} vs {drift_without_biases[n]:.3g} with biases zeroed "
                      f"({'≥' if moved[n] else '<'} {factor:g}×)" for n in with_biases]
                     + [f"{n}: drift {drift[n]:.3g} (needs 0)" for n in bias_free])
    return holds(all(moved.values()) and all(still.values()), text + (f"; {details}" if details else ""))


def all_converge_and_fastest(iterations: Mapping[str, Sequence[float]], method: str, others: Sequence[str],
                             tuning: Mapping[str, str] | None = None, tune_problems: int | None = None,
                             unit: str = "test problems") -> Result:
    """Every optimiser converges on every problem (``iterations`` NaN where it did not), and ``method`` needs fewer
    iterations than each of ``others`` (median over the problems, paired; a run that did not converge is a failure).
    A rate tuned on ``tune_problems`` problems that fails on test problems its tuning never saw is our protocol (the
    rate), not evidence against the claim: then "all converge" is inconclusive and says who and how often."""
    iterations = {name: np.asarray(v, dtype=float).reshape(-1) for name, v in iterations.items()}
    tuning = tuning or {}
    missed = {name: int(np.isnan(v).sum()) for name, v in iterations.items()}
    converged = holds(not any(missed.values()), "not converged: " + ", ".join(
        f"{n} {k}/{len(iterations[n])}" + (f" ({tuning[n]})" if n in tuning else "") for n, k in missed.items()))
    if converged.kind == "not reproduced" and tune_problems is not None:
        converged = Result("inconclusive: " + ", ".join(n for n, k in missed.items() if k) + " did not converge on "
                           f"test problems its {tune_problems} tuning problems did not cover (tuning protocol)",
                           converged.measured)
    fastest = _conjunction({other: better(iterations[method], iterations[other], (method, other), statistic="median",
                                    paired=True, unit=unit) for other in others})
    return _conjunction({"all converge": converged, f"{method} fastest": fastest})


def leads_in_share(scenarios: Mapping[str, Mapping[str, Sequence[float]]], candidates: Sequence[str],
                   share: float = 0.5, tolerance: float = 0.0, **kw) -> Result:
    """Per scenario ({method: values}), the better of ``candidates`` (by the median) against every other method: it
    beats each of them in at least ``share`` of the scenarios (:func:`~.verdicts.in_share_of`), and everywhere it is
    within ``tolerance`` (absolute) of the best other method ("competitive otherwise"). ``kw`` go to
    :func:`~.verdicts.better` (e.g. ``direction="higher"``, ``statistic="median"``, ``unit``)."""
    kw = {"direction": "higher", "statistic": "median", **kw}
    sign = 1 if kw["direction"] == "higher" else -1
    wins, competitive = {}, {}
    for scenario, values in scenarios.items():
        best = max(candidates, key=lambda m: sign * float(np.median(values[m])))
        others = [m for m in values if m not in candidates]
        best_other = max(others, key=lambda m: sign * float(np.median(values[m])))
        wins[scenario] = _conjunction({m: better(values[best], values[m], (best, m), **kw) for m in others})
        competitive[scenario] = better(values[best], values[best_other], (best, best_other), margin=-tolerance,
                                       relative=False, **{k: v for k, v in kw.items() if k != "relative"})
    return all_of({f"wins in ≥ {share:.0%}": in_share_of(wins, share), "competitive in all": across(competitive)})


def second_after(values: Mapping[str, Sequence[float]], method: str, leader: str, others: Sequence[str],
                 **kw) -> Result:
    """``method`` ranks second, after ``leader``: ``leader``'s scores below ``method``'s and ``method``'s below each of
    ``others`` (lower is better; every keyword of :func:`~.verdicts.better`, e.g. ``paired``, ``unit``)."""
    missing = [name for name in [method, leader, *others] if name not in values]
    if missing:
        raise KeyError(f"no scores for {missing}; have {sorted(values)}")
    return all_of({f"{leader} first": better(values[leader], values[method], (leader, method), **kw),
                   f"{method} before the rest": better_than_all(values, method, list(others), **kw)})
