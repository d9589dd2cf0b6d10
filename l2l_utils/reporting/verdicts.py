"""Verdicts of the claims tables, computed from measurements by tested functions.

A claim's verdict follows from a declared comparison: which method against which, in which direction, by what
margin, with which statistic over which independent units (test problems, runs, trials). Each comparison reports
its point estimate and a percentile-bootstrap confidence interval (paired over shared problems where they are
shared). "reproduced" or "not reproduced" needs the interval to exclude the threshold; otherwise the verdict is
"inconclusive" with the interval shown. Failed units (a diverged run: NaN or inf) are never dropped: they count as
the worst possible outcome (an infinite loss, a −∞ score: a mean with one failure is infinite, a median tolerates
failures below half), or as a value the caller names (``failure_value``, e.g. the loss before training), and their
number is part of the measured text.

Every function returns a :class:`Result` (verdict and the measured text for the claims table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 4000
VERDICTS = ("reproduced", "partly", "inconclusive", "not reproduced", "not run", "smoke")
STATISTICS = {"mean": np.mean, "median": np.median}


@dataclass(frozen=True)
class Result:
    """A verdict (one of :data:`VERDICTS`, optionally with ": why") and the measured text that supports it."""

    verdict: str
    measured: str

    @property
    def kind(self) -> str:
        return self.verdict.split(":")[0].strip()


def _as_array(values) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1)


def _impute_failures(arrays: Sequence[np.ndarray], direction: str, failure_value: float | None = None
                     ) -> tuple[list[np.ndarray], list[int]]:
    """Replace non-finite values by ``failure_value``, else by the worst possible outcome (+inf when lower is better,
    −inf when higher is); returns the arrays and each one's number of failures."""
    worst = failure_value if failure_value is not None else (np.inf if direction == "lower" else -np.inf)
    return ([np.where(np.isfinite(a), a, worst) for a in arrays], [int((~np.isfinite(a)).sum()) for a in arrays])


def _ratio_or_difference(fa, fb, relative: bool):
    """fa/fb or fa − fb elementwise; equal values (infinite ones included) give 1 or 0, not NaN."""
    fa, fb = np.asarray(fa, dtype=float), np.asarray(fb, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = fa / fb if relative else fa - fb
    return np.where(fa == fb, 1.0 if relative else 0.0, out)


def _effect(a: np.ndarray, b: np.ndarray, statistic: str, relative: bool) -> float:
    return float(_ratio_or_difference(STATISTICS[statistic](a), STATISTICS[statistic](b), relative))


def bootstrap_effect(a, b, statistic: str = "mean", relative: bool = True, paired: bool = False, seed: int = 0,
                     resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(estimate, low, high) of stat(a)/stat(b) (``relative``) or stat(a) − stat(b), percentile bootstrap; ``paired``
    resamples the same indices of ``a`` and ``b`` (they must be aligned: unit i of a and b shared a problem)."""
    a, b = _as_array(a), _as_array(b)
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; allowed values are {sorted(STATISTICS)}")
    if paired and len(a) != len(b):
        raise ValueError(f"paired comparison needs aligned units, got {len(a)} and {len(b)}")
    estimate = _effect(a, b, statistic, relative)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (resamples, len(a)))
    ib = ia if paired else rng.integers(0, len(b), (resamples, len(b)))
    with np.errstate(invalid="ignore"):
        fa = STATISTICS[statistic](a[ia], axis=1)
        fb = STATISTICS[statistic](b[ib], axis=1)
    draws = _ratio_or_difference(fa, fb, relative)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return estimate, float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    # order statistics, not interpolation: infinite draws (failed units) stay infinite instead of becoming NaN
    return estimate, float(np.quantile(draws, alpha, method="lower")), float(np.quantile(draws, 1 - alpha, method="higher"))


def _side(low: float, high: float, threshold: float, holds_below: bool) -> str:
    """reproduced if the interval lies on the claim's side of the threshold, not reproduced if on the other side."""
    if holds_below:
        return "reproduced" if high < threshold else ("not reproduced" if low >= threshold else "inconclusive")
    return "reproduced" if low > threshold else ("not reproduced" if high <= threshold else "inconclusive")


def _fmt(x: float) -> str:
    return f"{x:.3g}" if np.isfinite(x) else ("inf" if x > 0 else ("-inf" if x < 0 else "nan"))


def better(a, b, names: tuple[str, str] = ("A", "B"), direction: str = "lower", margin: float = 0.0,
           relative: bool = True, statistic: str = "mean", paired: bool = False, unit: str = "problems",
           seed: int = 0, failure_value: float | None = None) -> Result:
    """Is ``a`` better than ``b``? lower (or higher) ``statistic``, by at least ``margin`` (a fraction of b's value
    when ``relative``: a/b < 1 − margin, or > 1 + margin; else a − b < −margin, or > margin)."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction={direction!r}; allowed values are ['lower', 'higher']")
    (a, b), (fail_a, fail_b) = _impute_failures([_as_array(a), _as_array(b)], direction, failure_value)
    n_a, n_b = len(a), len(b)
    counts = f"n = {n_a}" + ("" if n_a == n_b else f"/{n_b}") + f" {unit}"
    as_what = "the worst possible value" if failure_value is None else f"{failure_value:.3g}"
    failures = f"; failed (counted as {as_what}) {fail_a} vs {fail_b}" if fail_a or fail_b else ""
    if fail_a == n_a and fail_b == n_b:
        return Result("inconclusive: every unit of both failed", f"{names[0]} and {names[1]}: all {counts} failed")
    if fail_a == n_a or fail_b == n_b:  # one side failed everywhere, the other did not: decided without statistics
        loser = names[0] if fail_a == n_a else names[1]
        return Result("not reproduced" if loser == names[0] else "reproduced",
                      f"{loser} failed in every unit ({counts}; failed {fail_a} vs {fail_b})")
    sign = -1 if direction == "lower" else 1
    threshold = (1 + sign * margin) if relative else sign * margin
    estimate, low, high = bootstrap_effect(a, b, statistic, relative, paired, seed)
    what = "ratio" if relative else "difference"
    text = (f"{statistic} {names[0]} {_fmt(STATISTICS[statistic](a))} vs {names[1]} {_fmt(STATISTICS[statistic](b))}; "
            f"{what} {_fmt(estimate)} [{_fmt(low)}, {_fmt(high)}] ({counts}{', paired' if paired else ''}"
            f"{failures}; claim needs {what} {'<' if direction == 'lower' else '>'} {_fmt(threshold)})")
    if min(n_a, n_b) < 2:
        return Result("inconclusive: one unit only, no interval", text)
    return Result(_side(low, high, threshold, holds_below=direction == "lower"), text)


def better_than_all(values: Mapping[str, Sequence[float]], method: str, others: Sequence[str], **kw) -> Result:
    """``method`` better than every one of ``others`` (conjunction, see :func:`all_of`)."""
    results = {other: better(values[method], values[other], names=(method, other), **kw) for other in others}
    return all_of(results)


def similar(a, b, tolerance: float, names: tuple[str, str] = ("A", "B"), statistic: str = "mean",
            paired: bool = False, unit: str = "problems", seed: int = 0, failure_value: float | None = None) -> Result:
    """stat(a)/stat(b) within 1 ± ``tolerance``: reproduced if the whole interval is inside, not reproduced if it is
    wholly outside, else inconclusive. Failures count as +inf (lower is better) or ``failure_value``."""
    (a, b), (fail_a, fail_b) = _impute_failures([_as_array(a), _as_array(b)], "lower", failure_value)
    estimate, low, high = bootstrap_effect(a, b, statistic, True, paired, seed)
    failures = f"; failed {fail_a} vs {fail_b}" if fail_a or fail_b else ""
    text = (f"{statistic} {names[0]} {_fmt(STATISTICS[statistic](a))} vs {names[1]} {_fmt(STATISTICS[statistic](b))}; "
            f"ratio {_fmt(estimate)} [{_fmt(low)}, {_fmt(high)}] (n = {len(a)} {unit}{failures}; claim needs "
            f"1 ± {tolerance:g})")
    if min(len(a), len(b)) < 2:
        return Result("inconclusive: one unit only, no interval", text)
    inside = 1 - tolerance <= low and high <= 1 + tolerance
    outside = high < 1 - tolerance or low > 1 + tolerance
    return Result("reproduced" if inside else ("not reproduced" if outside else "inconclusive"), text)


def all_of(results: Mapping[str, Result]) -> Result:
    """A conjunction within one setting ("better than each of them"): not reproduced if any part is, reproduced if
    all are, else inconclusive."""
    kinds = [r.kind for r in results.values()]
    text = "; ".join(f"vs {name}: {r.measured} → {r.kind}" for name, r in results.items())
    if any(k == "not reproduced" for k in kinds):
        return Result("not reproduced", text)
    if kinds and all(k == "reproduced" for k in kinds):
        return Result("reproduced", text)
    return Result("inconclusive", text)


def across(results: Mapping[str, Result]) -> Result:
    """One claim over several settings (every T, every held-out domain, ...): reproduced if it holds in all, not
    reproduced if it fails in all or fails somewhere while nothing holds, partly if it holds in some and fails in
    others, inconclusive if it holds in some and nowhere fails but is undecided somewhere."""
    kinds = {name: r.kind for name, r in results.items()}
    text = " | ".join(f"{name}: {r.kind} ({r.measured})" for name, r in results.items())
    held = sum(k == "reproduced" for k in kinds.values())
    failed = sum(k == "not reproduced" for k in kinds.values())
    if not kinds:
        return Result("not run: no setting was measured", "—")
    if held == len(kinds):
        return Result("reproduced", text)
    if failed and held:
        return Result(f"partly: holds in {held} of {len(kinds)} settings", text)
    if failed:
        return Result("not reproduced", text)
    if held:
        return Result(f"inconclusive: holds in {held} of {len(kinds)}, undecided in the rest", text)
    return Result("inconclusive", text)


def in_share_of(results: Mapping[str, Result], share: float) -> Result:
    """A claim that holds "in at least ``share`` of the settings": reproduced if it is reproduced in that many, not
    reproduced if even counting every undecided setting as a success it cannot reach that many, else inconclusive."""
    kinds = [r.kind for r in results.values()]
    needed = int(np.ceil(share * len(kinds) - 1e-9))
    held, undecided = kinds.count("reproduced"), sum(k not in ("reproduced", "not reproduced") for k in kinds)
    text = f"holds in {held} of {len(kinds)} (needs {needed}): " + " | ".join(
        f"{name}: {r.kind} ({r.measured})" for name, r in results.items())
    if not kinds:
        return Result("not run: no setting was measured", "—")
    if held >= needed:
        return Result("reproduced", text)
    if held + undecided < needed:
        return Result("not reproduced", text)
    return Result("inconclusive", text)


def negate(result: Result, statement: str) -> Result:
    """The verdict of "not X" from the verdict of X (for claims that something does *not* hold)."""
    flip = {"reproduced": "not reproduced", "not reproduced": "reproduced"}
    kind = result.kind
    return Result(flip.get(kind, result.verdict) if kind in flip else result.verdict,
                  f"{statement}: {result.measured}")


def with_positive_control(negative: Result, control: Result, control_name: str) -> Result:
    """A claim that X fails on Y counts only if X succeeds on the setting the paper contrasts it with."""
    if negative.kind != "reproduced" or control.kind == "reproduced":
        return Result(negative.verdict, f"{negative.measured}; positive control ({control_name}): {control.kind}")
    return Result(f"inconclusive: no positive control ({control_name}: {control.kind})",
                  f"{negative.measured}; positive control ({control_name}): {control.measured}")


def sweep_too_narrow(required: Sequence, swept: Sequence) -> str | None:
    """None if ``swept`` covers every value the claim names, else the inconclusive verdict saying what is missing."""
    missing = [v for v in required if v not in set(swept)]
    if not missing:
        return None
    return f"inconclusive: the sweep is too narrow (the claim names {list(required)}; missing {missing})"


def holds(condition: bool, measured: str) -> Result:
    """A deterministic claim (a count, an exact property): reproduced if ``condition`` holds, else not reproduced."""
    return Result("reproduced" if bool(condition) else "not reproduced", measured)


def within_tolerance(errors: Mapping[str, float], tolerance: float, what: str = "error") -> Result:
    """Numerical checks: every error at most ``tolerance`` (exact arithmetic, no statistics involved)."""
    text = "; ".join(f"{name}: {value:.1e}" for name, value in errors.items()) + f" (tolerance {tolerance:g})"
    ok = all(np.isfinite(v) and v <= tolerance for v in errors.values())
    return Result("reproduced" if ok else f"not reproduced: an {what} exceeds {tolerance:g}", text)


def smoke(result: Result) -> Result:
    """At the smoke profile no verdict is evidence: the row says the pipeline ran (or why it did not)."""
    if result.kind == "not run":
        return result
    return Result("smoke: pipeline ran", result.measured)


def short_of_horizon(result: Result, judged_at: int, paper_horizon: int, what: str = "steps") -> Result:
    """A claim the paper makes at ``paper_horizon`` judged at ``judged_at`` < ``paper_horizon``: a success there is at
    most "partly" (it may not last to the paper's horizon); the row states both horizons either way."""
    note = f"judged at {judged_at:,} {what}; the paper's claim is about {paper_horizon:,}"
    if judged_at >= paper_horizon:
        return result
    if result.kind == "reproduced":
        return Result(f"partly: holds at {judged_at:,} of the paper's {paper_horizon:,} {what}",
                      f"{result.measured} ({note})")
    return Result(result.verdict, f"{result.measured} ({note})")
