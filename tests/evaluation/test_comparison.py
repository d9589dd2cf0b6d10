"""best_of_grid beyond its grid's edge, on a problem whose best SGD rate is known in closed form."""

import pytest
import torch

from l2l_utils.evaluation.comparison import best_learning_rates, best_of_grid, tuned_at_edge
from l2l_utils.tasks.problems import QuadraticProblem


def _sphere():
    """f(θ) = ‖θ‖² (W = I, y = 0) on 4 runs: SGD multiplies θ by (1 − 2·lr) per step, so after 20 steps the loss
    is (1 − 2·lr)⁴⁰·f(θ0): of the rates 1e-3, 1e-2, 0.1, 1 the best is 0.1 (factor 0.8), and at 1 (factor −1)
    the loss never moves."""
    theta0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    return lambda: QuadraticProblem(torch.eye(3).expand(4, 3, 3).clone(), torch.zeros(4, 3), {"theta": theta0})


def test_a_best_rate_at_the_edge_extends_the_grid_until_it_is_inside():
    runs, table = best_of_grid(["SGD"], [1e-3, 1e-2], _sphere(), 20, max_extensions=2)
    assert list(table.lr) == pytest.approx([1e-3, 1e-2, 0.1, 1.0])
    assert list(table.extended) == [False, False, True, True]
    assert best_learning_rates(table) == {"SGD": pytest.approx(0.1)} and tuned_at_edge(table) == []
    assert len(set(runs.lr)) == 4  # the runs of every rate tried come back


def test_a_best_rate_still_at_the_edge_is_reported():
    _, once = best_of_grid(["SGD"], [1e-3, 1e-2], _sphere(), 20, max_extensions=1)
    assert list(once.lr) == pytest.approx([1e-3, 1e-2, 0.1]) and tuned_at_edge(once) == ["SGD"]
    _, fixed = best_of_grid(["SGD"], [1e-3, 1e-2], _sphere(), 20)  # the paper's grid as it is
    assert list(fixed.lr) == [1e-3, 1e-2] and not fixed.extended.any() and tuned_at_edge(fixed) == ["SGD"]
