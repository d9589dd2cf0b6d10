"""A learning-rate grid search that does not stop at its own edge.

A rate tuned to the smallest or largest value of its grid says only that the grid was too narrow. :func:`search_grid`
scores every rate of the grid and, while the best one is at an edge, tries the next rate beyond it (the same ratio as
the grid's two outermost rates on that side) until one scores worse, or ``max_extensions`` were added; a best rate
that is still at the edge is reported as such (``at_edge``), so the row it feeds can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass
class GridResult:
    best: float
    scores: dict  # {learning rate: score}, the extension included, in increasing order of rate
    at_edge: bool  # the best rate is still the smallest or largest rate tried
    extended: list  # the rates added beyond the grid

    def note(self) -> str:
        """One phrase for a claims row: the chosen rate and whether the grid had to grow or still binds."""
        text = f"lr {self.best:g}"
        if self.extended:
            text += f" (grid extended by {', '.join(f'{lr:g}' for lr in self.extended)})"
        if self.at_edge:
            text += " at the edge of the grid searched"
        return text


def search_grid(score: Callable[[float], float], grid: Sequence[float], max_extensions: int = 3) -> GridResult:
    """Minimise ``score(lr)`` (lower is better; +inf or NaN for a rate that diverged) over ``grid`` and beyond its edge
    (module docstring). Ties go to the smaller rate."""
    rates = sorted(float(lr) for lr in grid)
    if not rates or any(lr <= 0 for lr in rates):
        raise ValueError(f"grid must hold positive learning rates, got {list(grid)}")
    scores = {lr: _finite_or_inf(score(lr)) for lr in rates}
    extended = []
    for _ in range(max_extensions):
        best = min(scores, key=lambda lr: (scores[lr], lr))
        tried = sorted(scores)
        if len(tried) < 2 or not np.isfinite(scores[best]) or best not in (tried[0], tried[-1]):
            break
        ratio = tried[-1] / tried[-2] if best == tried[-1] else tried[0] / tried[1]
        candidate = best * ratio
        scores[candidate] = _finite_or_inf(score(candidate))
        extended.append(candidate)
        if scores[candidate] >= scores[best]:
            break
    best = min(scores, key=lambda lr: (scores[lr], lr))
    tried = sorted(scores)
    at_edge = len(tried) > 1 and best in (tried[0], tried[-1]) and np.isfinite(scores[best])
    return GridResult(best, dict(sorted(scores.items())), at_edge, extended)


def _finite_or_inf(value) -> float:
    value = float(value)
    return value if np.isfinite(value) else float("inf")
