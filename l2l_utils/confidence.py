"""Confidence intervals over independent runs (Huisman et al. Fig. 3-4, Tables 1-2: 95% CIs)."""

from __future__ import annotations

import numpy as np
from scipy import stats

STATISTICS = {"median": np.median, "mean": np.mean}


def bootstrap_ci(values, statistic: str = "median", confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): the statistic over runs and its percentile-bootstrap interval.

    Non-finite values (diverged runs) are dropped; with fewer than two finite runs the bounds are NaN.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; allowed values are {sorted(STATISTICS)}")
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    estimate = float(STATISTICS[statistic](values))
    if len(values) < 2 or np.all(values == values[0]):
        return estimate, float("nan"), float("nan")
    result = stats.bootstrap((values,), STATISTICS[statistic], confidence_level=confidence, method="percentile",
                             n_resamples=2000, rng=np.random.default_rng(seed))
    return estimate, float(result.confidence_interval.low), float(result.confidence_interval.high)
