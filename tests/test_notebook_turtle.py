"""The TURTLE notebook runs end to end through papermill at the smoke profile, reports miniImageNet/CUB as
"not run here", runs the Omniglot extension, and fails on bad parameters before any compute."""

import os
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest

from l2l_utils.claims import CLAIM_COLUMNS, VERDICTS

from conftest import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "huisman2022_turtle.ipynb"
pytestmark = pytest.mark.slow


def execute(tmp_path, **parameters):
    return run_notebook(NOTEBOOK, tmp_path, **parameters)


@pytest.mark.skipif(not os.environ.get("L2L_DATA_DIR"), reason="L2L_DATA_DIR not set: Omniglot would be 'not run'")
def test_smoke_profile_runs_and_writes_claims_figures_and_results(tmp_path):
    execute(tmp_path)
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    claims = claims.set_index("claim")
    assert all(v.startswith(VERDICTS) for v in claims["verdict"])
    assert claims.loc["Theorem 1", "verdict"] == "reproduced"
    for claim in ("Fig. 3 (MAML order)", "Fig. 3 (TURTLE order)", "Fig. 3 (stability vs T)", "Fig. 3 (depth)",
                  "Fig. 4 (TURTLE vs LSTM)", "Fig. 4 (TURTLE vs MAML)", "Omniglot extension (second order)",
                  "Omniglot extension (TURTLE vs MAML)", "Omniglot extension (running time)"):
        assert not claims.loc[claim, "verdict"].startswith("not run"), claim
    for claim in ("Table 1 (TURTLE/LSTMᵃ vs MAML)", "Table 2 (cross-domain)", "§6 (enhanced LSTM)"):
        assert claims.loc[claim, "verdict"] == "not run: miniImageNet and CUB not available offline here"
    for name in ("fig3_sine_depth_order", "fig4_sine_methods", "fig5_running_time"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
        assert (tmp_path / "figures" / f"{name}.pdf").stat().st_size > 0
    omni = pd.read_csv(tmp_path / "results" / "omniglot-accuracy.csv")
    assert len(set(omni["method"])) == 9 and omni["accuracy"].between(0, 1).all()
    fig4 = pd.read_csv(tmp_path / "results" / "fig4-sine-test.csv")
    assert set(fig4["method"]) == {"MAML", "Meta-learner LSTM", "TURTLE"}


@pytest.mark.parametrize("parameters, fragment", [
    ({"profile": "full"}, "profile='full' is unknown; allowed values are ['paper', 'smoke']"),
    ({"overrides": {"runs": 0}}, "runs must be positive"),
    ({"overrides": {"shots": [1, 3]}}, "allowed values are [1, 5]"),
    ({"overrides": {"omniglot_split": [0.5, 0.2, 0.2]}}, "omniglot_split must be three fractions summing to 1"),
    ({"overrides": {"fig3_T": [1, 2.5]}}, "fig3_T"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_bad_parameters_fail_before_compute(tmp_path, parameters, fragment):
    with pytest.raises(pm.PapermillExecutionError) as error:
        execute(tmp_path, **parameters)
    assert "ParameterError" in error.value.ename
    assert fragment in error.value.evalue
    assert not (tmp_path / "results").exists()


def test_missing_omniglot_reports_not_run_and_sine_sections_still_run(tmp_path, monkeypatch):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    execute(tmp_path, data_dir=str(empty), overrides={"fig3_layers": [1], "fig3_T": [1], "fig4_T": [1],
                                                      "sine_train_tasks": 50})
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    assert claims.loc["Omniglot extension (second order)", "verdict"] == "not run: Omniglot data missing"
    assert not claims.loc["Fig. 4 (TURTLE vs LSTM)", "verdict"].startswith("not run")
