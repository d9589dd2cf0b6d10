"""Confidence intervals over independent runs (Huisman et al. Fig. 3-4, Tables 1-2: 95% CIs)."""

from __future__ import annotations

import numpy as np

STATISTICS = {"median": np.median, "mean": np.mean}


def bootstrap_ci(values, statistic: str = "median", confidence: float = 0.95, seed: int = 0,
                 failure: float = np.inf, resamples: int = 4000) -> tuple[float, float, float]:
    """(estimate, low, high): the statistic over runs and its percentile-bootstrap interval (order statistics).

    A non-finite value (a diverged run) is never dropped: it counts as ``failure`` (+inf: the worst loss), so a mean
    with a failure is infinite and a median tolerates failures below half. With fewer than two runs, or all runs
    equal, the bounds are NaN.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; allowed values are {sorted(STATISTICS)}")
    values = np.asarray(values, dtype=float).reshape(-1)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    values = np.where(np.isfinite(values), values, failure)
    estimate = float(STATISTICS[statistic](values))
    if len(values) < 2 or np.all(values == values[0]):
        return estimate, float("nan"), float("nan")
    draws = STATISTICS[statistic](values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))],
                                  axis=1)
    alpha = (1 - confidence) / 2
    return (estimate, float(np.quantile(draws, alpha, method="lower")),
            float(np.quantile(draws, 1 - alpha, method="higher")))
