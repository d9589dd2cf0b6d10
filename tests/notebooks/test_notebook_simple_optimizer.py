"""The SimpleOptimizer notebook runs end to end through papermill at the smoke profile, reports CIFAR-10 as "not run
here" (and runs its code on files in CIFAR-10's format), and fails on bad parameters before any compute."""

import os
from pathlib import Path

import pandas as pd
import pytest

from l2l_utils.reporting.claims import CLAIM_COLUMNS, VERDICTS
from l2l_utils.tasks.datasets import resolve_data_dir
from l2l_utils.tasks.datasets.files import NOTEBOOK_DATASETS

from helpers import check_fails_before_compute, check_smoke_claims, requires_data, run_notebook, write_cifar10

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "simple_optimizer.ipynb"
pytestmark = pytest.mark.slow
EQ6 = ("§3.2 (example), Eq. 6 as printed", "§3.2 (example), Eq. 6 with the sign corrected")
MEASURED = ("Table 1 (parameters)", "§3.1 (bias)", *EQ6, "Fig. 2 (a)", "Fig. 2 (b)", "Fig. 2 (b) baselines",
            "Fig. 3 (a)", "Fig. 3 (b) weighted loss", "Fig. 3 (b) aggregation", "§3.1 (LSTM biases)", "Fig. 4 (a)",
            "Fig. 4 (a) RNNProp early", "Fig. 4 (a) baselines", "Fig. 4 (b) substitute no fine-tuning",
            "Fig. 4 (b) substitute fine-tuning", "Fig. 4 (b) substitute §3.4", "Fig. 5 (a)", "Table 1 (speed)")
CIFAR = tuple(f"Fig. {n} (b) {s}" for n in (4, 5) for s in ("no fine-tuning", "fine-tuning", "§3.4"))


def execute(tmp_path, **parameters):
    return run_notebook(NOTEBOOK, tmp_path, **parameters)


@requires_data(*NOTEBOOK_DATASETS["simple_optimizer"])
def test_smoke_profile_runs_and_writes_claims_figures_and_results(tmp_path):
    execute(tmp_path)
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    assert set(claims["profile"]) == {"smoke"}
    assert all(v.startswith(VERDICTS) for v in claims["verdict"])
    check_smoke_claims(claims)
    claims = claims.set_index("claim")
    for claim in MEASURED:
        assert claims.loc[claim, "verdict"] == "smoke: pipeline ran", claim
    for claim in CIFAR:
        assert claims.loc[claim, "verdict"] == "not run: CIFAR-10 not available offline here", claim
    assert claims.loc["Table 1 (parameters)", "measured"] == "SimpleOptimizer 132, DMOptimizer 5301, RNNProp 6801"
    for claim in EQ6:
        assert "Eq. 6 as printed 183.75 vs 96.625" in claims.loc[claim, "measured"]
    for name in ("fig2_baselines", "fig3_ablations", "fig4a_lenet_mnist", "fig4b_substitute_lenet_fashionmnist",
                 "fig5a_deeper_mlp"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
        assert (tmp_path / "figures" / f"{name}.pdf").stat().st_size > 0
    runs = pd.read_csv(tmp_path / "results" / "fig2-fig3-base-mlp.csv")
    assert set(runs["optimizer"]) == {"SimpleOptimizer", "SimpleOptimizer + bias", "SimpleOptimizer − weighted loss",
                                      "SimpleOptimizer − aggregation", "DMOptimizer", "RNNProp"}
    assert {"optimizer", "run", "step", "loss", "diverged"} <= set(runs.columns)


@pytest.mark.parametrize("parameters, fragment", [
    ({"profile": "tiny"}, "profile='tiny' is unknown"),
    ({"overrides": {"long_steps": -5}}, "long_steps must be positive"),
    ({"overrides": {"mean_over": "layer"}}, "allowed values are ['network', 'tensor']"),
    ({"overrides": {"loss_term": "ratio"}}, "allowed values are ['difference'"),
    ({"overrides": {"transfer_dataset": "CIFAR100"}}, "allowed values are ['FashionMNIST', 'MNIST']"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_bad_parameters_fail_before_compute(tmp_path, parameters, fragment):
    check_fails_before_compute(NOTEBOOK, tmp_path, parameters, fragment)


def test_missing_data_reports_not_run_and_the_rest_runs(tmp_path, monkeypatch):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    execute(tmp_path, data_dir=str(empty))
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    assert claims.loc["Fig. 2 (a)", "verdict"] == "not run: MNIST data missing"
    assert claims.loc["Fig. 5 (a)", "verdict"] == "not run: MNIST data missing"
    assert claims.loc["Fig. 4 (b) substitute fine-tuning", "verdict"].startswith("not run: FashionMNIST data missing")
    for claim in ("Table 1 (parameters)", "§3.1 (bias)", *EQ6, "Table 1 (speed)"):
        assert claims.loc[claim, "verdict"] == "smoke: pipeline ran", claim  # the sections that need no data ran


@requires_data("MNIST")
def test_cifar_sections_run_on_files_in_cifar10_format(tmp_path, monkeypatch):
    """Fig. 4b (LeNet) and Fig. 5b (GoogLeNet) on small files in CIFAR-10's format the test writes, beside MNIST (the
    optimizer is meta-trained there); Fashion-MNIST is absent, so the substitute reports "not run"."""
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(resolve_data_dir() / "MNIST", root / "MNIST")
    write_cifar10(root / "cifar-10-batches-py", per_batch=20, test_size=10)
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    execute(tmp_path, data_dir=str(root), overrides={"batch_size": 8, "test_runs": 1, "cifar_steps": 4,
                                                     "googlenet_steps": 2, "finetune_repeats": 1,
                                                     "finetune_max_steps": 2, "subset_tune_steps": 2})
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    for claim in CIFAR:
        assert claims.loc[claim, "verdict"] == "smoke: pipeline ran", (claim, claims.loc[claim, "verdict"])
        assert claims.loc[claim, "measured"] != "—"
    assert claims.loc["Fig. 4 (b) substitute fine-tuning", "verdict"].startswith("not run: FashionMNIST data missing")
    assert (tmp_path / "figures" / "fig4b_fig5b_cifar10.png").stat().st_size > 0
    assert list((tmp_path / "results").glob("finetuned-cifar10-googlenet-*.pt"))
