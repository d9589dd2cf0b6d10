"""Verdicts of the claims tables, computed from measurements by tested functions.

A claim's verdict follows from a declared comparison: which method against which, in which direction, by what
margin, with which statistic over which independent units (test problems, runs, trials). Each comparison reports
its point estimate and a 95% confidence interval (paired over shared problems where they are shared).
"reproduced" or "not reproduced" needs the interval to exclude the threshold; otherwise the verdict is
"inconclusive" with the interval shown. Each side of the interval is a one-sided test at 2.5%: when the true effect
sits exactly on the claim's threshold, "reproduced" comes out in at most 2.5% of repetitions and "not reproduced"
in at most 2.5%, at every number of units (up to the methods' assumptions, stated below, and the Monte-Carlo
checks in ``tests/test_verdicts.py``). Below :data:`MIN_UNITS` units nothing is decided.

Methods (:func:`effect_interval`; the method's name is part of the measured text)
---------------------------------------------------------------------------------
* mean, absolute (``relative=False``, mean(a) − mean(b)): Student's t interval of the per-unit differences when
  ``paired`` (``scipy.stats.ttest_1samp``), Welch's t interval otherwise (``scipy.stats.ttest_ind(equal_var=False)``).
* mean, relative (mean(a) / mean(b)): Fieller's interval, i.e. every ratio θ that the t test of the contrast
  a − θ·b does not reject: Student's t on the per-unit contrasts when paired (exact for normal pairs), Welch's t of
  a against θ·b otherwise (``scipy.stats.ttest_ind(a, θ·b, equal_var=False)``, Welch–Satterthwaite degrees of
  freedom at each bound). Chosen over a t interval on log values (a ratio of *geometric* means) because the claims
  and the measured text speak of arithmetic means, failures counted at a finite ``failure_value`` need no log, and
  Fieller's interval stays valid for values of either sign. When b's mean is not clearly away from 0 the set is
  unbounded and the verdict inconclusive.
* median, paired: the median of the per-unit differences a_i − b_i (ratios a_i / b_i when relative), with the
  exact order-statistic interval of the sign test (binomial(n, ½) quantiles, ``scipy.stats.binom``). It is
  distribution-free, handles failures (±inf) and cannot decide below 6 units: the smallest one-sided p of a sign
  test over n ≤ 5 units is 2⁻⁵ > 2.5%, so the interval is unbounded there.
* median, unpaired: the Mann–Whitney test inverted into the Hodges–Lehmann interval: the median of the pairwise
  differences a_i − b_j (ratios a_i / b_j when relative) and the order statistics of those given by the exact
  null distribution of U (normal approximation with continuity correction beyond 2,500 pairs). Exact under a
  location (scale, for ratios) shift, where the shift is the difference (ratio) of the medians; ranks handle
  failures; cannot decide at 2 or 3 units per side (the smallest one-sided p is 1/6 and 1/20).
  Relative medians need positive values of b (failures aside): otherwise inconclusive. Ties, in both rank
  methods, count against whichever decision they would support: a bound that sits exactly on the threshold
  decides nothing, and a unit (pair) where both sides failed pushes each bound outwards, as if the tie had been
  broken the unfavourable way. Without this, 30% failures on both sides gave 6% "not reproduced" under the null.

Error rates, before and after (simulated)
-----------------------------------------
a and b drawn from one log-normal distribution (CV 30%; independent draws, also for the paired designs), the true
effect exactly on the threshold (margin 0). Percentage of trials whose verdict is "reproduced"; nominal 2.5%. The
old percentile bootstrap (4,000 resamples; 1,000 trials per cell) against this module (4,000 trials per cell,
Monte-Carlo standard error ≈ 0.25 points; :data:`MIN_UNITS` switched off, so these are the methods themselves)::

                                  before (percentile bootstrap)      after (this module)
                          n =      2     3     5    10    20         2     3     5    10    20
    unpaired mean ratio          16.6  10.9   6.1   4.1   3.2       1.5   1.8   1.9   2.0   2.2
    unpaired mean difference     15.6   8.8   6.6   4.6   2.6       1.3   1.5   2.3   2.0   2.2
    unpaired median ratio        17.2   4.6   1.5   1.3   0.7       0.0   0.0   1.5   2.5   2.5
    unpaired median difference   16.6   5.0   1.0   1.7   2.6       0.0   0.0   1.7   2.1   2.6
    paired mean ratio            22.8  10.8   9.0   4.3   3.1       1.3   2.3   2.7   2.9   2.2
    paired mean difference       25.5  11.8   7.9   5.7   4.1       2.5   2.0   2.3   2.2   2.7
    paired median ratio          25.0  12.9   3.1   2.7   3.1       0.0   0.0   0.0   0.9   1.9
    paired median difference     24.7  12.5   2.5   1.1   1.5       0.0   0.0   0.0   1.0   2.3

"not reproduced" under the same null: before 15-27% at n = 2, 10-13% at n = 3 (means and paired medians), up to
8% at n = 5 and 6% at n = 10; after at most 2.7% in every cell. With a margin (a = 0.8·b in distribution against a
claimed ratio < 0.8, or a shifted by −0.2 against a claimed difference < −0.2) the after rates are at most 3.0%
either way (4,000 trials; 20,000 trials of the two largest cells, paired mean at n = 10, gave 2.2% and 2.5%).
With failures (each unit of either side failing with probability 30%, n = 6, 10, 20, paired and unpaired, 2,000
trials): at most 1.3% either way, for the mean (failure rates) and the median (ranks) alike.

Power and the minimum number of units
-------------------------------------
"reproduced" rate (%) against a real 2× effect at CV 30% (a = 0.5·x, or a = x − 0.5 for differences, x and b
log-normal with mean 1; 2,000 trials; :data:`MIN_UNITS` switched off)::

                          n =    2    3    4    5    6    7    8   10   12   20
    unpaired mean ratio         11   38   64   83   93   97   98  100  100  100
    unpaired mean difference    10   30   50   65   73   80   86   93   97  100
    unpaired median ratio        0    0   60   82   93   96   99  100  100  100
    unpaired median difference   0    0   40   57   70   79   88   94   97  100
    paired mean ratio            9   30   55   74   86   95   98   99  100  100
    paired mean difference      11   24   38   56   68   73   83   92   95  100
    paired median ratio          0    0    0    0   73   70   67   92   98  100
    paired median difference     0    0    0    0   50   44   37   70   87   98

:data:`MIN_UNITS` = 6: the smallest n at which the default comparison (relative mean) detects a 2× effect at CV
30% with power ≥ 80% both unpaired (93%) and paired (86%; 74% at n = 5), and the smallest n at which every method
here can decide at all (the sign test first can at 6). Below it a decision would rest on a test that misses even a
halving most of the time, so a "reproduced" there would mostly be luck and its effect size inflated; such
comparisons are "inconclusive: n = 3 test runs, needs ≥ 6" (the ``unit`` word). (The paired designs were simulated
without a shared per-problem effect, their worst case; real problems that differ in difficulty make pairing
stronger.)

Failures
--------
Failed units (a diverged run: NaN or inf) are never dropped: they count as the worst possible outcome (+inf when
lower is better, −inf when higher is better) or as the value the caller names (``failure_value``, e.g. the loss
before training), and their number is part of the measured text. Rank and sign methods (medians) treat them as
values: a median tolerates failures below half. A finite ``failure_value`` is an ordinary value for the t methods.
An infinite one makes the mean of a side with a single failure infinite — and that is a fact, not an estimate:
one observed failure proves the failure probability positive. So a side with a failure cannot be shown better
than one whose mean may be finite. Two infinite means are ordered by the limit of a large failure value M → ∞:
a side's mean is (1 − p)·μ + p·M, so the side that fails more often has the larger (further from finite) mean.
The mean comparison with infinite failures is therefore decided on the failure rates, by an exact one-sided test
at 2.5% (Fisher's exact test, ``scipy.stats.fisher_exact``; paired: the exact McNemar test, a binomial test on the
discordant units). It gives an ordering only: an absolute claim follows from it at any margin (the difference is
infinite); a relative one only where the ordering suffices (a shown better: reproduced if margin ≤ 0; a shown
worse: not reproduced if margin ≥ 0), else inconclusive. Consequences: a with failures and b without can be "not
reproduced" (a fails significantly more often) or inconclusive, never "reproduced"; b with failures and a without
can be "reproduced" or inconclusive, never "not reproduced". Two conventions are kept as they were: every unit of
both failed → inconclusive (at any n); one side failed in every unit and the other did not → decided without
statistics, from :data:`MIN_UNITS` units on (a method that diverges everywhere is broken; this rule is outside the
error-rate guarantee).

Every function returns a :class:`Result` (verdict and the measured text for the claims table).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = (1 - CONFIDENCE) / 2  # each side of the interval: a one-sided test at 2.5%
MIN_UNITS = 6  # below it no comparison is decided (module docstring: power table)
VERDICTS = ("reproduced", "partly", "inconclusive", "not reproduced", "not run", "smoke")
STATISTICS = {"mean": np.mean, "median": np.median}
EXACT_PAIRS = 2500  # exact Mann-Whitney null distribution up to this many pairs, normal approximation beyond


@dataclass(frozen=True)
class Result:
    """A verdict (one of :data:`VERDICTS`, optionally with ": why") and the measured text that supports it."""

    verdict: str
    measured: str

    @property
    def kind(self) -> str:
        """The verdict's kind: its text before ": why", or the longest of :data:`VERDICTS` it starts with when a
        qualifier follows without a colon ("reproduced (with the corrections listed above)")."""
        head = self.verdict.split(":")[0].strip()
        if head in VERDICTS:
            return head
        starts = [kind for kind in VERDICTS if head.startswith(kind + " ")]
        return max(starts, key=len) if starts else head


def _as_array(values) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1)


def _impute_failures(arrays: Sequence[np.ndarray], direction: str, failure_value: float | None = None
                     ) -> tuple[list[np.ndarray], list[int]]:
    """Replace non-finite values by ``failure_value``, else by the worst possible outcome (+inf when lower is better,
    −inf when higher is); returns the arrays and each one's number of failures."""
    worst = failure_value if failure_value is not None else (np.inf if direction == "lower" else -np.inf)
    return ([np.where(np.isfinite(a), a, worst) for a in arrays], [int((~np.isfinite(a)).sum()) for a in arrays])


def _ratio_or_difference(fa, fb, relative: bool):
    """fa/fb or fa − fb elementwise, as the value that the contrast fa − θ·fb (θ > 0) or fa − fb − θ changes sign
    at: equal values (infinite ones included) give 1 or 0; for a ratio, a −inf denominator gives +inf (every
    a > θ·(−inf)) and an +inf one gives 0 (or −inf for a = −inf)."""
    fa, fb = np.broadcast_arrays(np.asarray(fa, dtype=float), np.asarray(fb, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if not relative:
            out = fa - fb
        else:
            out = fa / fb
            out = np.where(np.isneginf(fb), np.inf, out)
            out = np.where(np.isposinf(fb), np.where(np.isneginf(fa), -np.inf, 0.0), out)
    return np.where(fa == fb, 1.0 if relative else 0.0, out)


def _order_statistic_interval(effects: np.ndarray, uninformative: np.ndarray, cdf: np.ndarray, alpha: float
                              ) -> tuple[float, float]:
    """[x_(k), x_(N+1−k)] with k the largest count with P(count ≤ k − 1) ≤ alpha under the null (``cdf``[u] =
    P(count ≤ u)); unbounded when no k exists (too few units for any decision). ``uninformative`` effects (both
    values failed: equal infinities) count against each bound's decision: +inf for the upper bound, −inf for the
    lower one, as if the tie had been broken the unfavourable way (valid, conservative)."""
    k = int(np.sum(cdf <= alpha * (1 + 1e-9)))
    if k == 0:
        return -np.inf, np.inf
    low = np.sort(np.where(uninformative, -np.inf, effects))[k - 1]
    high = np.sort(np.where(uninformative, np.inf, effects))[len(effects) - k]
    return float(low), float(high)


@functools.lru_cache(maxsize=128)
def _mann_whitney_cdf(m: int, n: int) -> np.ndarray:
    """Exact null distribution of the Mann-Whitney count U = #{(i, j): x_i > y_j} for m x's and n y's in random
    order, as P(U ≤ u) for u = 0..mn (the largest of the m + n values is an x with probability m/(m+n), then it
    exceeds all n y's)."""
    previous = [np.ones(1) for _ in range(n + 1)]  # i = 0 x's: U = 0
    for i in range(1, m + 1):
        current = [np.ones(1)]
        for j in range(1, n + 1):
            p = np.zeros(i * j + 1)
            p[j:j + len(previous[j])] += i / (i + j) * previous[j]
            p[:len(current[j - 1])] += j / (i + j) * current[j - 1]
            current.append(p)
        previous = current
    return np.cumsum(previous[n])


def _u_cdf(m: int, n: int) -> np.ndarray:
    if m * n <= EXACT_PAIRS:
        return _mann_whitney_cdf(min(m, n), max(m, n))
    u = np.arange(m * n + 1)
    return stats.norm.cdf((u + 0.5 - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def _check(statistic: str, a: np.ndarray, b: np.ndarray, paired: bool):
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; allowed values are {sorted(STATISTICS)}")
    if paired and len(a) != len(b):
        raise ValueError(f"paired comparison needs aligned units, got {len(a)} and {len(b)}")


def _fieller_paired(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float]:
    """Every θ with |mean(a − θb)| ≤ t·se(a − θb), t the (1 + confidence)/2 quantile with n − 1 df."""
    n = len(a)
    q = stats.t.ppf((1 + confidence) / 2, n - 1)
    ma, mb = a.mean(), b.mean()
    cov = np.cov(a, b, ddof=1) / n
    A = mb * mb - q * q * cov[1, 1]
    B = ma * mb - q * q * cov[0, 1]
    C = ma * ma - q * q * cov[0, 0]
    if A <= 0:  # b's mean not clearly away from 0: the set is unbounded
        return -np.inf, np.inf
    root = np.sqrt(max(B * B - A * C, 0.0))
    return (B - root) / A, (B + root) / A


def _fieller_welch(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float]:
    """Every θ that Welch's test of a against θ·b does not reject at 1 − confidence (two-sided); each bound solves
    (mean(a) − θ mean(b))² = t(ν(θ))² (va + θ² vb) with ν the Welch-Satterthwaite df at that bound (fixed point)."""
    na, nb = len(a), len(b)
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    p = (1 + confidence) / 2
    if va == 0 and vb == 0:
        return (ma / mb, ma / mb) if mb != 0 else (-np.inf, np.inf)
    if mb * mb <= stats.t.ppf(p, nb - 1) ** 2 * vb:  # unbounded as θ → ±∞ (df → nb − 1 there)
        return -np.inf, np.inf

    def df(theta):
        v2 = theta * theta * vb
        denominator = va * va / (na - 1) + v2 * v2 / (nb - 1)
        return (va + v2) ** 2 / denominator if denominator > 0 else na + nb - 2

    bounds = []
    for sign in (-1, 1):
        theta = ma / mb
        for _ in range(100):
            q = stats.t.ppf(p, df(theta))
            A, C = mb * mb - q * q * vb, ma * ma - q * q * va
            if A <= 0:
                return -np.inf, np.inf
            new = (ma * mb + sign * np.sqrt(max(ma * ma * mb * mb - A * C, 0.0))) / A
            if abs(new - theta) <= 1e-12 * max(1.0, abs(new)):
                theta = new
                break
            theta = new
        bounds.append(theta)
    return min(bounds), max(bounds)


def _interval(a: np.ndarray, b: np.ndarray, statistic: str, relative: bool, paired: bool,
              confidence: float = CONFIDENCE) -> tuple[float, float, float, str]:
    """(estimate, low, high, method's name); see the module docstring. a and b are arrays of imputed values."""
    alpha = (1 - confidence) / 2
    nan = float("nan")
    if statistic == "mean":
        ma, mb = float(np.mean(a)), float(np.mean(b))
        estimate = float(_ratio_or_difference(ma, mb, relative))
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            return estimate, nan, nan, "infinite means (failures): no interval"
        if min(len(a), len(b)) < 2:
            return estimate, nan, nan, "one unit: no interval"
        if relative:
            if paired:
                low, high = _fieller_paired(a, b, confidence)
                return estimate, float(low), float(high), "Fieller's interval, paired t"
            low, high = _fieller_welch(a, b, confidence)
            return estimate, float(low), float(high), "Fieller's interval, Welch t"
        if paired:
            d = a - b
            if np.all(d == d[0]):
                return estimate, float(d[0]), float(d[0]), "paired t (constant differences)"
            with warnings.catch_warnings():  # scipy's "nearly identical data" precision warning
                warnings.simplefilter("ignore", RuntimeWarning)
                ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
            return estimate, float(ci.low), float(ci.high), "paired t"
        if np.all(a == a[0]) and np.all(b == b[0]):
            return estimate, estimate, estimate, "Welch t (constant values)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
        return estimate, float(ci.low), float(ci.high), "Welch t"
    # medians: sign test (paired) or Mann-Whitney (unpaired), inverted into order-statistic intervals
    positive = np.all((b > 0) | np.isinf(b))
    if relative and not positive:
        return nan, nan, nan, "a ratio needs positive values of the second side"
    what = "ratios" if relative else "differences"
    if paired:
        effects, tied = _ratio_or_difference(a, b, relative), (a == b) & np.isinf(a)
        n = len(effects)
        low, high = _order_statistic_interval(effects, tied, stats.binom.cdf(np.arange(n), n, 0.5), alpha)
        return float(np.median(effects)), low, high, f"exact sign test, median of per-unit {what}"
    effects = _ratio_or_difference(a[:, None], b[None, :], relative).reshape(-1)
    tied = ((a[:, None] == b[None, :]) & np.isinf(a[:, None])).reshape(-1)
    low, high = _order_statistic_interval(effects, tied, _u_cdf(len(a), len(b)), alpha)
    exact = "exact " if len(a) * len(b) <= EXACT_PAIRS else ""
    return float(np.median(effects)), low, high, f"{exact}Mann-Whitney / Hodges-Lehmann, median of pairwise {what}"


def effect_interval(a, b, statistic: str = "mean", relative: bool = True, paired: bool = False,
                    confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(estimate, low, high) of stat(a)/stat(b) (``relative``) or stat(a) − stat(b), by the methods of the module
    docstring; ``paired`` needs aligned units (unit i of a and b shared a problem). Means of values with ±inf have
    NaN bounds (:func:`better` decides those on the failure rates)."""
    a, b = _as_array(a), _as_array(b)
    _check(statistic, a, b, paired)
    return _interval(a, b, statistic, relative, paired, confidence)[:3]


def _side(low: float, high: float, threshold: float, holds_below: bool, strict: bool = False) -> str:
    """reproduced if the interval lies on the claim's side of the threshold, not reproduced if on the other side
    (touching it counts as the other side, except when ``strict``: the rank methods, whose bounds are data values
    and can sit exactly on the threshold through ties, count a tie against either decision)."""
    if holds_below:
        against = low > threshold if strict else low >= threshold
        return "reproduced" if high < threshold else ("not reproduced" if against else "inconclusive")
    against = high < threshold if strict else high <= threshold
    return "reproduced" if low > threshold else ("not reproduced" if against else "inconclusive")


def _failure_rates(fail_a: np.ndarray, fail_b: np.ndarray, paired: bool) -> tuple[float, float, str]:
    """One-sided exact p-values that a fails more often than b, and less often; the test's name."""
    if paired:
        only_a, only_b = int(np.sum(fail_a & ~fail_b)), int(np.sum(fail_b & ~fail_a))
        if only_a + only_b == 0:
            return 1.0, 1.0, "exact McNemar test"
        more = stats.binomtest(only_a, only_a + only_b, 0.5, alternative="greater").pvalue
        less = stats.binomtest(only_a, only_a + only_b, 0.5, alternative="less").pvalue
        return float(more), float(less), "exact McNemar test"
    table = [[int(fail_a.sum()), int((~fail_a).sum())], [int(fail_b.sum()), int((~fail_b).sum())]]
    return (float(stats.fisher_exact(table, alternative="greater").pvalue),
            float(stats.fisher_exact(table, alternative="less").pvalue), "Fisher's exact test")


def _fmt(x: float) -> str:
    return f"{x:.3g}" if np.isfinite(x) else ("inf" if x > 0 else ("-inf" if x < 0 else "nan"))


def _counts(n_a: int, n_b: int, unit: str) -> str:
    return f"n = {n_a}" + ("" if n_a == n_b else f"/{n_b}") + f" {unit}"


def _too_few(n_a: int, n_b: int, unit: str) -> str | None:
    if min(n_a, n_b) < MIN_UNITS:
        return f"inconclusive: {_counts(n_a, n_b, unit)}, needs ≥ {MIN_UNITS}"
    return None


def better(a, b, names: tuple[str, str] = ("A", "B"), direction: str = "lower", margin: float = 0.0,
           relative: bool = True, statistic: str = "mean", paired: bool = False, unit: str = "problems",
           seed: int = 0, failure_value: float | None = None) -> Result:
    """Is ``a`` better than ``b``? lower (or higher) ``statistic``, by at least ``margin`` (a fraction of b's value
    when ``relative``: a/b < 1 − margin, or > 1 + margin; else a − b < −margin, or > margin). ``seed`` is kept for
    compatibility: every method is deterministic."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction={direction!r}; allowed values are ['lower', 'higher']")
    raw_a, raw_b = _as_array(a), _as_array(b)
    _check(statistic, raw_a, raw_b, paired)
    (a, b), (fail_a, fail_b) = _impute_failures([raw_a, raw_b], direction, failure_value)
    n_a, n_b = len(a), len(b)
    counts = _counts(n_a, n_b, unit)
    as_what = "the worst possible value" if failure_value is None else f"{failure_value:.3g}"
    failures = f"; failed (counted as {as_what}) {fail_a} vs {fail_b}" if fail_a or fail_b else ""
    if fail_a == n_a and fail_b == n_b:
        return Result("inconclusive: every unit of both failed", f"{names[0]} and {names[1]}: all {counts} failed")
    too_few = _too_few(n_a, n_b, unit)
    if not too_few and (fail_a == n_a or fail_b == n_b):  # one side failed everywhere, the other did not
        loser = names[0] if fail_a == n_a else names[1]
        return Result("not reproduced" if loser == names[0] else "reproduced",
                      f"{loser} failed in every unit ({counts}; failed {fail_a} vs {fail_b})")
    sign = -1 if direction == "lower" else 1
    threshold = ((1 + sign * margin) if relative else sign * margin) + 0.0  # + 0.0: no "-0" in the text
    what = "ratio" if relative else "difference"
    stat = STATISTICS[statistic]
    need = f"claim needs {what} {'<' if direction == 'lower' else '>'} {_fmt(threshold)}"
    head = f"{statistic} {names[0]} {_fmt(stat(a))} vs {names[1]} {_fmt(stat(b))}; "
    tail = f"({counts}{', paired' if paired else ''}{failures}; "
    worst = failure_value if failure_value is not None else (np.inf if direction == "lower" else -np.inf)
    if statistic == "mean" and (fail_a or fail_b) and not np.isfinite(worst):
        # infinite means, ordered by the failure rates (module docstring)
        estimate = float(_ratio_or_difference(np.mean(a), np.mean(b), relative))
        more, less, test = _failure_rates(~np.isfinite(raw_a), ~np.isfinite(raw_b), paired)
        text = (head + f"{what} {_fmt(estimate)}: infinite means, ordered by the failure rates "
                f"{fail_a}/{n_a} vs {fail_b}/{n_b} ({test}: {names[0]} fails more often p = {more:.2g}, less often "
                f"p = {less:.2g}) " + tail + need + ")")
        if too_few:
            return Result(too_few, text)
        # failing more often moves a side's mean towards the failure value (+inf or -inf)
        larger, smaller = (more <= ALPHA, less <= ALPHA) if worst > 0 else (less <= ALPHA, more <= ALPHA)
        shown_better, shown_worse = (smaller, larger) if direction == "lower" else (larger, smaller)
        if shown_better and (not relative or margin <= 0):
            return Result("reproduced", text)
        if shown_worse and (not relative or margin >= 0):
            return Result("not reproduced", text)
        return Result("inconclusive", text)
    estimate, low, high, method = _interval(a, b, statistic, relative, paired)
    text = head + f"{what} {_fmt(estimate)} [{_fmt(low)}, {_fmt(high)}] " + tail + need + f"; {method})"
    if too_few:
        return Result(too_few, text)
    if np.isnan(low) or np.isnan(high):
        return Result(f"inconclusive: {method}", text)
    return Result(_side(low, high, threshold, holds_below=direction == "lower", strict=statistic == "median"), text)


def better_than_all(values: Mapping[str, Sequence[float]], method: str, others: Sequence[str], **kw) -> Result:
    """``method`` better than every one of ``others`` (conjunction, see :func:`all_of`)."""
    results = {other: better(values[method], values[other], names=(method, other), **kw) for other in others}
    return all_of(results)


def similar(a, b, tolerance: float, names: tuple[str, str] = ("A", "B"), statistic: str = "mean",
            paired: bool = False, unit: str = "problems", seed: int = 0, failure_value: float | None = None) -> Result:
    """stat(a)/stat(b) within 1 ± ``tolerance`` (an equivalence claim, two one-sided tests at 2.5% each): reproduced
    if the whole 95% interval is inside, not reproduced if it is wholly outside, else inconclusive. Failures count
    as +inf (lower is better) or ``failure_value``; with infinite failures the means are infinite and equivalence
    cannot be shown (inconclusive), except that one side failing in every unit and the other not is not similar.
    Below :data:`MIN_UNITS` units: inconclusive. ``seed`` is kept for compatibility (deterministic methods)."""
    raw_a, raw_b = _as_array(a), _as_array(b)
    _check(statistic, raw_a, raw_b, paired)
    (a, b), (fail_a, fail_b) = _impute_failures([raw_a, raw_b], "lower", failure_value)
    n_a, n_b = len(a), len(b)
    counts = _counts(n_a, n_b, unit)
    failures = f"; failed {fail_a} vs {fail_b}" if fail_a or fail_b else ""
    if fail_a == n_a and fail_b == n_b:
        return Result("inconclusive: every unit of both failed", f"{names[0]} and {names[1]}: all {counts} failed")
    estimate, low, high, method = _interval(a, b, statistic, True, paired)
    stat = STATISTICS[statistic]
    text = (f"{statistic} {names[0]} {_fmt(stat(a))} vs {names[1]} {_fmt(stat(b))}; "
            f"ratio {_fmt(estimate)} [{_fmt(low)}, {_fmt(high)}] ({counts}{', paired' if paired else ''}{failures}; "
            f"claim needs 1 ± {tolerance:g}; {method})")
    too_few = _too_few(n_a, n_b, unit)
    if too_few:
        return Result(too_few, text)
    if fail_a == n_a or fail_b == n_b:  # one side failed everywhere, the other did not
        return Result("not reproduced", text)
    if np.isnan(low) or np.isnan(high):
        return Result(f"inconclusive: {method}", text)
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


def against_tuned(result: Result, at_edge: Sequence[str]) -> Result:
    """``result`` of a comparison with hand-designed baselines, of which those named in ``at_edge`` were tuned to the
    smallest or largest learning rate tried: their tuning may be too narrow, so a win against them is "inconclusive"
    and the row says which; other verdicts keep their kind with the note."""
    if not at_edge:
        return result
    note = f"tuned learning rate at the edge of the rates tried: {', '.join(at_edge)}"
    if result.kind == "reproduced":
        return Result(f"inconclusive: {note}", result.measured)
    return Result(result.verdict, f"{result.measured} ({note})")
