"""The MTL2L notebook runs end to end through papermill at the smoke profile, judges the paper's claims on the
authors' curves, reports the modified CIFAR-10 as not run without CIFAR-10 on disk, and fails on bad parameters
before any compute."""

from pathlib import Path

import pandas as pd
import pytest

from l2l_utils.reporting.claims import CLAIM_COLUMNS

from helpers import (check_fails_before_compute, check_smoke_claims, requires_data, run_notebook,
                     write_kmnist_both_splits)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "kuo2020_mtl2l.ipynb"
pytestmark = pytest.mark.slow


@requires_data("MNIST", "FashionMNIST", "KMNIST")
def test_smoke_profile_runs_and_writes_claims_figures_and_results(tmp_path):
    run_notebook(NOTEBOOK, tmp_path)
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    published = claims["claim"].str.endswith("authors' curves")
    assert published.sum() == 6
    # verdicts on the authors' own curves do not depend on our profile: they are real at smoke too
    assert claims.loc[published, "verdict"].str.match(r"(reproduced|not reproduced|inconclusive|partly)").all()
    check_smoke_claims(claims[~published])
    ours = claims.set_index("claim")
    assert ours.loc["§4 Fig. 4 (scenario 1)", "verdict"] == "smoke: pipeline ran"
    assert ours.loc["§4 Fig. 5 (scenario 2) — MNIST (substitute)", "verdict"] == "smoke: pipeline ran"
    assert ours.loc["§4 Fig. 5 (scenario 2) — modified CIFAR-10 (the paper's)", "verdict"].startswith("not run: ")
    for name in ("authors_curves_scale", "fig4_scenario1", "fig5_scenario2"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
    test = pd.read_csv(tmp_path / "results" / "s1-MNIST-test.csv")
    assert {"LSTM", "MTL2L", "SGD", "SGD-M", "ADAM"} <= set(test["optimizer"])
    assert test["test_loss"].gt(0).all()


@pytest.mark.parametrize("parameters, fragment", [
    ({"profile": "full"}, "profile='full' is unknown; allowed values are ['cpu', 'paper', 'smoke']"),
    ({"overrides": {"architecture": "both"}}, "allowed values are ['paper', 'authors']"),
    ({"overrides": {"test_runs": 0}}, "test_runs must be positive"),
    ({"overrides": {"datasets_s1": ["CIFAR10"]}}, "allowed values are ['MNIST', 'FashionMNIST', 'KMNIST']"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_parameters_fail_before_compute(tmp_path, parameters, fragment):
    check_fails_before_compute(NOTEBOOK, tmp_path, parameters, fragment)


@requires_data("MNIST", "FashionMNIST")
def test_with_kmnists_train_split_on_disk_the_paper_split_is_used_and_said(tmp_path, monkeypatch):
    """Train for training, test for testing (the paper's split), printed and written in the claims' criteria."""
    import os

    from l2l_utils.tasks.datasets import resolve_data_dir

    root = tmp_path / "data"
    root.mkdir()
    for name in ("MNIST", "FashionMNIST"):
        os.symlink(resolve_data_dir() / name, root / name)
    write_kmnist_both_splits(root)
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    out = run_notebook(NOTEBOOK, tmp_path, data_dir=str(root), overrides={"datasets_s1": ["KMNIST"]})
    printed = "".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "KMNIST: 40 train / 20 test (the paper's split)" in printed
    assert "KMNIST test split as a pool" not in printed
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    assert claims.loc["§4 Fig. 4 (scenario 1)", "criterion"].endswith("; KMNIST: the paper's train/test split")
    assert claims.loc["§4 Fig. 5 (scenario 2) — MNIST (substitute)", "criterion"].endswith(
        "meta-trained on KMNIST: the paper's train/test split")
