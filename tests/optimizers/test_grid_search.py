"""The learning-rate grid search that grows past its own edge, on scores with a known minimiser."""

import math

import pytest

from l2l_utils.evaluation.convergence import tune_iterations_on_grid
from l2l_utils.optimizers.baselines import baseline_rule
from l2l_utils.optimizers.grid_search import search_grid
from l2l_utils.tasks.problems import QuadraticFamily2D


def bowl(minimiser):
    """A score minimised at ``minimiser``, in log-rate (a tuning curve's usual shape)."""
    return lambda lr: (math.log10(lr) - math.log10(minimiser)) ** 2


def test_an_interior_best_rate_is_kept_and_nothing_is_added():
    result = search_grid(bowl(0.03), [0.001, 0.01, 0.03, 0.1])
    assert result.best == 0.03 and not result.extended and not result.at_edge


def test_a_best_rate_at_the_top_edge_extends_the_grid_until_it_is_inside():
    result = search_grid(bowl(0.5), [0.01, 0.03, 0.1])
    # ratio 0.1 / 0.03: 0.333 is better than 0.1, 1.11 is worse than 0.333 -> 0.333 is interior
    assert result.extended == pytest.approx([0.1 / 0.3, 0.1 / 0.3 * (0.1 / 0.03)])
    assert result.best == pytest.approx(0.1 / 0.3) and not result.at_edge
    assert "grid extended" in result.note()


def test_a_best_rate_at_the_bottom_edge_extends_downwards():
    result = search_grid(bowl(1e-4), [1e-3, 1e-2, 1e-1])
    assert result.best == pytest.approx(1e-4) and not result.at_edge


def test_a_rate_beyond_the_edge_that_diverges_ends_the_extension_and_the_best_is_no_longer_at_an_edge():
    result = search_grid(lambda lr: math.inf if lr > 0.1 else bowl(1.0)(lr), [0.01, 0.03, 0.1])
    assert result.best == 0.1 and len(result.extended) == 1 and not result.at_edge


def test_without_extensions_an_edge_rate_is_reported():
    result = search_grid(bowl(0.5), [0.01, 0.03, 0.1], max_extensions=0)
    assert result.best == 0.1 and result.at_edge and "at the edge" in result.note()
    still = search_grid(bowl(100.0), [0.01, 0.1], max_extensions=2)  # the minimiser is far beyond two extensions
    assert still.at_edge and len(still.extended) == 2


def test_bad_grids_are_rejected():
    with pytest.raises(ValueError, match="positive learning rates"):
        search_grid(bowl(1.0), [0.0, 0.1])


def test_sgd_on_a_quadratic_tunes_to_an_interior_rate():
    """SGD on f = Σ q_i θ_i² converges fastest near lr = 1/(q_min + q_max); a grid that stops short of it grows."""
    import torch
    family = QuadraticFamily2D(q_mean=(1.0, 4.0), q_rel_std=0.0, init_std=1.0)
    problems = [family.sample(1, torch.Generator().manual_seed(i)) for i in range(2)]
    result = tune_iterations_on_grid(lambda lr: baseline_rule("SGD", lr), [0.01, 0.02, 0.04], problems, 1e-6, 3000)
    assert result.extended and not result.at_edge
    assert 0.04 < result.best < 0.25  # stable below 2 / (2 q_max) = 0.25 for f = q θ² (gradient 2 q θ)
