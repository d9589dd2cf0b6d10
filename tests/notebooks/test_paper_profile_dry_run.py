"""Dry runs of the ``paper`` profile on a CPU: every notebook at ``profile="paper"`` with overrides that cut only
amounts (trajectories, epochs, tasks, steps, test runs, sweep and grid points) to tiny values, so every path the paper
profile takes (the paper's networks, its switches, its lists of datasets, estimators and problems) has been executed
before a GPU user's first run. Sections whose data are not on disk report "not run", as at any profile.

The dry runs are deselected unless ``-m paper_dry_run`` is given (pyproject.toml's addopts: each is a papermill run of
a minute or more of CPU time; with the paper's networks SimpleOptimizer's needs about 5 GB of memory); the first tests
check, without running anything, that the overrides below cut amounts and nothing else."""

from pathlib import Path

import pandas as pd
import pytest

from l2l_utils.harness.profiles import PAPER_MODULES
from l2l_utils.reporting.claims import CLAIM_COLUMNS, VERDICTS
from l2l_utils.tasks.datasets.files import NOTEBOOK_DATASETS

from helpers import data_marks, run_notebook

ROOT = Path(__file__).resolve().parents[2]

# notebook -> (profiles module, overrides). Every key is an amount; the paper's networks, switches, rates and lists
# of names keep their paper values (checked by test_dry_run_overrides_cut_only_amounts).
DRY_RUNS = {
    "andrychowicz2016_l2l": ("andrychowicz2016", {
        "quad_steps": 10, "quad_unroll": 5, "quad_meta_batch": 4, "quad_epochs": 1, "quad_trajectories": 1,
        "quad_val": 4, "quad_test": 6, "quad_tune_runs": 4,
        "mnist_steps": 10, "mnist_long_steps": 20, "mnist_unroll": 5, "mnist_epochs": 1, "mnist_trajectories": 1,
        "mnist_val": 2, "mnist_test": 6, "mnist_tune_runs": 2,
        "sweep_hidden": [5], "sweep_layers": [1, 3],
        "cifar_steps": 4, "cifar_unroll": 2, "cifar_meta_batch": 1, "cifar_epochs": 1, "cifar_trajectories": 1,
        "cifar_val": 1, "cifar_test": 2, "cifar_tune_runs": 1,
        "art_steps": 4, "art_unroll": 2, "art_train_images": 2, "art_val": 1, "art_test": 2, "art_meta_batch": 1,
        "art_epochs": 1, "art_trajectories": 1, "art_lr_grid": [1e-4, 1.0],
        "lr_grid": [1e-2, 0.1, 1.0], "lr_grid_extensions": 1,
        "meta_lr_trials": 2, "meta_lr_search_epochs": 1, "lstm_init_epochs": 1,
        "trace_steps": 4, "trace_stat_coords": 16, "score_window": 3,
        "appd_epochs": 1, "appd_check_problems": 4, "appd_check_iterations": 5,
        "appa_input_scales": [1.0, 100.0],
    }),
    "huisman2022_turtle": ("huisman2022", {
        "sine_train_tasks": 20, "sine_val_tasks": 10, "sine_test_tasks": 20, "val_every": 10, "runs": 2,
        "fig3_T": [1, 5], "fig3_layers": [1, 5], "fig3_runs": 1, "fig4_T": [1, 5],
        "init_inits": 2, "init_tasks": 10,
        "image_train_tasks_1shot": 4, "image_train_tasks_5shot": 4, "image_val_tasks": 4, "image_test_tasks": 6,
        "image_runs": 1, "image_T": 2, "maml_eval_T": 3, "lstm_steps_1shot": 2, "lstm_steps_5shot": 2,
        "lstm_enhanced_steps": 2, "transfer_pretrain_steps": 10, "transfer_test_steps": 4, "transfer_eval_every": 2,
        "eval_chunk": 10,
    }),
    "kuo2020_mtl2l": ("kuo2020", {
        "train_steps": 10, "trajectories": 1, "trajectories_s2": 1, "test_steps": 20,
        "test_runs": 2, "tune_grid": [1e-2, 0.1], "tune_runs": 1, "tune_grid_extensions": 1, "val_problems": 1,
        "late_window": 10, "volatility_split": 10,
    }),
    "metamd": ("metamd", {
        "quad_meta_steps": 5, "quad_tasks": 2, "quad_inner_steps": 100, "quad_max_iters": 2000,
        "quad_tune_problems": 1, "quad_test_problems": 2, "quad_sgd_lrs": [0.01, 0.05], "quad_adam_lrs": [0.1, 1.0],
        "quad_md_lrs": [0.01, 0.05], "quad_grid_extensions": 1,
        "meta_steps": 1, "tasks_per_step": 1,
        "hypergrad_problems": 1, "hypergrad_mlp_T": [10], "hypergrad_lenet_T": [10], "hypergrad_meta_lrs": [0.001],
        "val_problems_per_task": 1, "rotated_heldout": [0], "rotated_inner_steps": 10, "digits_inner_steps": 10,
        "test_steps": 10, "trials": 2, "sgd_lrs": [0.05], "adam_lrs": [0.001], "weight_decays": [0.0001],
        "learned_lrs": [0.1], "l2o_steps": 10, "l2o_unroll": 5, "l2o_epochs": 1, "l2o_trajectories": 1,
        "gate_runs": 2, "cifar_inner_steps": 2,
        "highres_inner_steps": 2, "highres_test_steps": 4,
        "highres_lrs": [0.01], "highres_weight_decays": [0.0], "accuracy_every": 2, "train_accuracy_images": 8,
        "landscape_images": 16, "landscape_points": 3, "landscape_iters": 3, "shift_weight_decays": [1e-3],
    }),
    "simple_optimizer": ("simple_optimizer", {
        "train_steps": 10, "unroll": 5, "epochs": 1, "trajectories": 1, "val_problems": 1, "short_steps": 10,
        "long_steps": 20, "lstm_long_steps": 20, "test_runs": 2, "score_window": 3, "lr_grid_extensions": 1,
        "lenet_steps": 6, "transfer_steps": 6, "cifar_steps": 2, "googlenet_steps": 2, "finetune_repeats": 1,
        "finetune_max_steps": 5, "subset_tune_steps": 5, "deep_steps": 3, "timing_repeats": 2, "timing_steps": 1,
    }),
    "head_to_head": ("head_to_head", {
        "train_steps": 10, "meta_budget": 20, "epochs": 1, "val_problems": 1, "unroll": 5,
        "metamd_tasks_per_step": 1, "test_runs": 2, "score_window": 3, "test_images": 500,
        "lr_grid": [1e-2, 0.1, 1.0], "lr_grid_extensions": 1, "tune_runs": 1, "long_factor": 2,
        "timing_repeats": 2, "timing_steps": 1,
    }),
}

# Integer fields that are the paper's networks or its data pipeline, not amounts: kept at their paper values.
NOT_AMOUNTS = {"mnist_hidden", "mnist_batch", "cifar_batch", "highres_classes", "highres_batch_size", "art_train_size",
               "art_test_size", "base_hidden", "train_hidden", "batch_size", "hidden_size", "deep_layers", "deep_factor",
               "mlp_hidden", "highres_image_size", "conv_channels", "n_way", "sine_support", "image_query",
               "omniglot_image_size", "lstm_hidden", "turtle_layers", "turtle_hidden", "learner_hidden", "hidden",
               "wide_hidden", "quad_dim", "trace_coords", "appd_gac_cells", "appd_read_heads", "appd_write_heads",
               "neumann_terms"}


def is_amount(key, paper) -> bool:
    """A field is an amount when its paper value is a positive integer or a list of numbers (sweep or grid points)
    and it is not one of the paper's networks; switches, names, choices and rates (floats) are not amounts."""
    if key in NOT_AMOUNTS or isinstance(paper, bool):
        return False
    if isinstance(paper, list):
        return bool(paper) and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in paper)
    return isinstance(paper, int)


def is_amount_cut(key, value, paper) -> bool:
    """An override cuts an amount: an integer in (0, paper value], or a non-empty sub-list of the paper's list."""
    if not is_amount(key, paper):
        return False
    if isinstance(paper, list):
        return isinstance(value, list) and 0 < len(value) <= len(paper) and set(value) <= set(paper)
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= paper


@pytest.mark.parametrize("notebook", sorted(DRY_RUNS))
def test_dry_run_overrides_cut_only_amounts(notebook):
    """Every override is an amount at or below the paper's; every field where ``smoke`` departs from ``paper`` in a
    switch, a name list, a rate or a network keeps its paper value in the dry run."""
    module, overrides = DRY_RUNS[notebook]
    paper, smoke = PAPER_MODULES[module].PAPER, PAPER_MODULES[module].SMOKE
    assert (ROOT / "notebooks" / f"{notebook}.ipynb").exists()
    assert set(overrides) <= set(paper), sorted(set(overrides) - set(paper))
    not_amounts = {k: v for k, v in overrides.items() if not is_amount_cut(k, v, paper[k])}
    assert not not_amounts, f"overrides that are not cuts of amounts: {not_amounts}"
    kept = {k for k in paper if smoke[k] != paper[k] and not is_amount(k, paper[k])}
    assert not kept & set(overrides), sorted(kept & set(overrides))


def test_the_amount_rule_rejects_switches_names_rates_and_networks():
    assert is_amount_cut("epochs", 1, 100) and is_amount_cut("lr_grid", [0.1, 1.0], [0.01, 0.1, 1.0])
    assert not is_amount_cut("epochs", 200, 100)  # larger than the paper's
    assert not is_amount_cut("lr_grid", [0.5], [0.01, 0.1, 1.0])  # a point the paper's grid does not have
    assert not is_amount_cut("tune_per_architecture", False, True)
    assert not is_amount_cut("appa_problems", ["MNIST"], ["MNIST", "quadratics"])
    assert not is_amount_cut("hypergradient_ablation", ["ift"], ["direct", "ift", "as_printed"])
    assert not is_amount_cut("quad_meta_lr", 1e-2, 1e-3)
    assert not is_amount_cut("mlp_hidden", [32, 16], [256, 128])
    assert not is_amount_cut("base_hidden", 10, 500)
    assert not is_amount_cut("lstm_init", "pytorch", "normal")


@pytest.mark.slow
@pytest.mark.paper_dry_run
@pytest.mark.parametrize("notebook", [pytest.param(name, marks=data_marks(*NOTEBOOK_DATASETS[name]))
                                      for name in sorted(DRY_RUNS)])
def test_paper_profile_runs_with_amounts_cut(notebook, tmp_path):
    """The notebook finishes at ``profile="paper"`` with only amounts cut, and its claims table says so."""
    module, overrides = DRY_RUNS[notebook]
    run_notebook(ROOT / "notebooks" / f"{notebook}.ipynb", tmp_path, profile="paper", overrides=overrides)
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    assert set(claims["profile"]) == {f"paper (overridden: {', '.join(sorted(overrides))})"}
    assert all(v.startswith(VERDICTS) for v in claims["verdict"])
    assert not any(v.startswith("smoke") for v in claims["verdict"])
