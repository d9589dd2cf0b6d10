"""The head-to-head notebook runs end to end through papermill at the smoke profile: every learned optimizer of the five
papers has a row in every cell (or the reason it cannot run), the cost table measures Adam against itself, the claims
are the papers' generalisation statements; a missing dataset turns its cells into "not run"; bad parameters fail
before any compute."""

import os
from pathlib import Path

import pandas as pd
import pytest

from l2l_utils.reporting.claims import CLAIM_COLUMNS, VERDICTS
from l2l_utils.tasks.datasets import resolve_data_dir
from l2l_utils.tasks.datasets.files import NOTEBOOK_DATASETS

from helpers import (check_fails_before_compute, check_smoke_claims, requires_data, run_notebook,
                     write_kmnist_both_splits)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "head_to_head.ipynb"
pytestmark = pytest.mark.slow
LEARNED = ("L2L LSTM", "RNNProp", "SimpleOptimizer", "MTL2L", "Meta-SGD", "MetaMD")
NOT_RUN = ("meta-learner LSTM", "TURTLE")
HAND = ("Adam", "RMSprop", "SGD-M", "NAG")
STATEMENTS = ("L2L Fig. 4 (training task)", "L2L Fig. 4 (longer horizon)", "L2L Fig. 5 (wider, deeper)",
              "L2L Fig. 5 (ReLU)", "SimpleOptimizer Fig. 2 (long horizon)", "SimpleOptimizer Fig. 2a (RNNProp)",
              "SimpleOptimizer Fig. 4a (LeNet)", "MTL2L §4 (other domains)", "MetaMD Table 1 (held-out domains)",
              "Learned vs Adam (every cell)", "Table 1 (speed)")


def execute(tmp_path, **parameters):
    return run_notebook(NOTEBOOK, tmp_path, **parameters)


def base_name(row):
    return row.split(" (")[0] if row.startswith(LEARNED) else row


@requires_data(*NOTEBOOK_DATASETS["head_to_head"])
def test_smoke_profile_runs_every_optimizer_on_every_cell(tmp_path):
    execute(tmp_path)
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    assert set(claims["profile"]) == {"smoke"}
    assert all(v.startswith(VERDICTS) for v in claims["verdict"])
    check_smoke_claims(claims)
    claims = claims.set_index("claim")
    for claim in STATEMENTS:
        assert claims.loc[claim, "verdict"] == "smoke: pipeline ran", claim
    for name in NOT_RUN:
        assert claims.loc[f"{name} (every cell)", "verdict"].startswith("not run: few-shot episodic meta-learner")

    table = pd.read_csv(tmp_path / "results" / "table-final-loss.csv").set_index("optimizer")
    assert sorted(map(base_name, table.index)) == sorted(LEARNED + NOT_RUN + HAND)
    assert len(table.columns) == 8  # the whole grid at smoke size
    for row in table.index:
        for value in table.loc[row]:
            if base_name(row) in NOT_RUN:
                assert value == "not run (section 2)"
            else:  # a mean with its interval, or the count of diverged runs
                assert "[" in value or value.startswith("diverged"), (row, value)

    cost = pd.read_csv(tmp_path / "results" / "cost.csv").set_index("optimizer")
    cost.index = [base_name(r) for r in cost.index]
    assert cost.loc["Adam", "× Adam (median)"] == 1.0
    # Adam keeps two moments per parameter (plus a step counter per tensor: 4 of them for 15,910 parameters)
    assert cost.loc["Adam", "state numbers per parameter"] == pytest.approx(2 + 4 / 15_910)
    assert cost.loc["Meta-SGD", "meta-parameters per parameter"] == 1.0  # one learned rate per parameter
    assert cost.loc["SimpleOptimizer", "meta-parameters"] == 132
    steps_seen = cost.loc[list(LEARNED), "optimizee steps seen"]
    assert steps_seen.nunique() == 1  # one meta-training budget for every learned optimizer
    assert (cost.loc[list(LEARNED), "meta-training wall-clock (s)"] > 0).all()
    for name in ("curves_per_cell", "ranks"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize("parameters, fragment", [
    ({"profile": "tiny"}, "profile='tiny' is unknown"),
    ({"overrides": {"meta_budget": -5}}, "meta_budget must be positive"),
    ({"overrides": {"cells": ["CIFAR10"]}}, "allowed values are ['training'"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_bad_parameters_fail_before_compute(tmp_path, parameters, fragment):
    check_fails_before_compute(NOTEBOOK, tmp_path, parameters, fragment)


@requires_data("MNIST")
def test_a_missing_dataset_makes_its_cells_not_run_and_the_rest_runs(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(resolve_data_dir() / "MNIST", root / "MNIST")
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    execute(tmp_path, data_dir=str(root), overrides={"cells": ["training", "FashionMNIST", "KMNIST"]})
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    assert claims.loc["MTL2L §4 (other domains)", "verdict"] == ("not run: FashionMNIST data missing; KMNIST data "
                                                                 "missing")
    assert claims.loc["L2L Fig. 4 (training task)", "verdict"] == "smoke: pipeline ran"
    assert claims.loc["L2L Fig. 5 (ReLU)", "verdict"].startswith("not run: cell 'relu' not in this profile's cells")
    table = pd.read_csv(tmp_path / "results" / "table-final-loss.csv").set_index("optimizer")
    assert set(table["Fashion-MNIST"]) == {"not run: FashionMNIST data missing"}


@requires_data("MNIST")
def test_with_kmnists_train_split_on_disk_the_paper_split_is_used_and_said(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(resolve_data_dir() / "MNIST", root / "MNIST")
    write_kmnist_both_splits(root)
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    out = execute(tmp_path, data_dir=str(root), overrides={"cells": ["training", "KMNIST"]})
    printed = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "KMNIST: 40 train / 20 test images (the paper's split)" in printed
    assert "KMNIST: only the test split is on disk" not in printed
    table = pd.read_csv(tmp_path / "results" / "table-final-loss.csv").set_index("optimizer")
    assert "KMNIST (the paper's split)" in table.columns
