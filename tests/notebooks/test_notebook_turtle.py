"""The TURTLE notebook runs end to end through papermill at the smoke profile, reports miniImageNet/CUB as
"not run here", runs the Omniglot extension, and fails on bad parameters before any compute."""

from pathlib import Path

import pandas as pd
import pytest

from l2l_utils.reporting.claims import CLAIM_COLUMNS, VERDICTS

from helpers import check_fails_before_compute, check_smoke_claims, requires_data, run_notebook, write_fewshot_images

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "huisman2022_turtle.ipynb"
pytestmark = pytest.mark.slow


def execute(tmp_path, **parameters):
    return run_notebook(NOTEBOOK, tmp_path, **parameters)


@requires_data("Omniglot")
def test_smoke_profile_runs_and_writes_claims_figures_and_results(tmp_path):
    execute(tmp_path)
    claims = pd.read_csv(tmp_path / "results" / "claims.csv")
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    check_smoke_claims(claims)
    claims = claims.set_index("claim")
    assert all(v.startswith(VERDICTS) for v in claims["verdict"])
    for claim in ("Theorem 1", "Fig. 3 (MAML order)", "Fig. 3 (TURTLE order)", "Fig. 3 (stability vs T)",
                  "Fig. 3 (depth)", "Fig. 4 (TURTLE vs LSTM)", "Fig. 4 (TURTLE vs MAML)",
                  "Omniglot extension (second order)", "Omniglot extension (vs MAML)",
                  "Omniglot extension (running time)"):
        assert claims.loc[claim, "verdict"] == "smoke: pipeline ran", claim
    init = pd.read_csv(tmp_path / "results" / "turtle-at-initialisation.csv")
    assert set(init["biases"]) == {"zero (authors' code)", "PyTorch default"} and init["median MSE"].gt(0).all()
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
    ({"profile": "full"}, "profile='full' is unknown; allowed values are ['cpu', 'paper', 'smoke']"),
    ({"overrides": {"runs": 0}}, "runs must be positive"),
    ({"overrides": {"shots": [1, 3]}}, "allowed values are [1, 5]"),
    ({"overrides": {"omniglot_split": [0.5, 0.2, 0.2]}}, "omniglot_split must be three fractions summing to 1"),
    ({"overrides": {"fig3_T": [1, 2.5]}}, "fig3_T"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_bad_parameters_fail_before_compute(tmp_path, parameters, fragment):
    check_fails_before_compute(NOTEBOOK, tmp_path, parameters, fragment)


def test_missing_omniglot_reports_not_run_and_sine_sections_still_run(tmp_path, monkeypatch):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    execute(tmp_path, data_dir=str(empty), overrides={"fig3_layers": [1], "fig3_T": [1], "fig4_T": [1],
                                                      "sine_train_tasks": 50})
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    assert claims.loc["Omniglot extension (second order)", "verdict"] == "not run: Omniglot data missing"
    assert not claims.loc["Fig. 4 (TURTLE vs LSTM)", "verdict"].startswith("not run")


def test_tables_1_and_2_run_on_files_in_the_miniimagenet_and_cub_layouts(tmp_path, monkeypatch):
    """§5.3-5.4's pipeline (every method, within- and cross-domain) on small files the test writes; the sizes are
    cut to seconds, the code path is the paper profile's."""
    root = tmp_path / "data"
    write_fewshot_images(root)
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    execute(tmp_path, data_dir=str(root), overrides={
        "fig3_layers": [1], "fig3_T": [1], "fig3_runs": 1, "fig4_T": [1], "runs": 1, "sine_train_tasks": 20,
        "val_every": 20, "sine_val_tasks": 10, "sine_test_tasks": 10, "omniglot_extension": False,
        "conv_channels": 4, "image_query": 2, "image_train_tasks_1shot": 2, "image_val_tasks": 2,
        "image_test_tasks": 2, "image_T": 1, "maml_eval_T": 1, "lstm_steps_1shot": 1, "lstm_enhanced_steps": 1,
        "transfer_pretrain_steps": 2, "transfer_test_steps": 2, "transfer_eval_every": 1})
    claims = pd.read_csv(tmp_path / "results" / "claims.csv").set_index("claim")
    for claim in ("Table 1 (TURTLE/LSTMᵃ vs MAML)", "Table 1 (second order)", "Table 1 (FO-MAML)",
                  "Table 2 (cross-domain)", "§6 (enhanced LSTM)", "Fig. 5 (running time)"):
        assert not claims.loc[claim, "verdict"].startswith("not run"), (claim, claims.loc[claim, "verdict"])
    assert claims.loc["Table 1 (shots)", "verdict"] == "not run: only 1-shot in the smoke profile"
    assert claims.loc["Omniglot extension (vs MAML)", "verdict"].startswith("not run: the Omniglot extension was "
                                                                             "switched off")
    for tag in ("miniImageNet", "CUB", "miniImageNet-CUB", "CUB-miniImageNet"):
        table = pd.read_csv(tmp_path / "results" / f"table-{tag}.csv")
        assert len(set(table["method"])) == 9 and table["accuracy"].between(0, 1).all()


def test_changing_one_profile_field_recomputes_exactly_what_read_it(tmp_path):
    """The cache keys are derived from the fields each computation read: with the same results folder, changing
    ``init_inits`` recomputes only the initialisation diagnostic, and ``sine_test_tasks`` only the sine runs."""
    tiny = {"fig3_layers": [1], "fig3_T": [1], "fig3_runs": 1, "fig4_T": [1], "runs": 1, "sine_train_tasks": 20,
            "val_every": 20, "sine_val_tasks": 10, "sine_test_tasks": 10, "omniglot_extension": False,
            "init_inits": 1, "init_tasks": 10}
    data = tmp_path / "no-data"
    data.mkdir()

    def stamps():
        return {p.relative_to(tmp_path).as_posix(): p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*.json")
                if p.name != "claims.json"}

    execute(tmp_path, data_dir=str(data), overrides=tiny)
    first = stamps()
    sine = {k for k in first if k.startswith("results/sine/")}
    assert sine and "results/turtle-at-initialisation.json" in first
    execute(tmp_path, data_dir=str(data), overrides=dict(tiny, init_inits=2))
    second = stamps()
    changed = {k for k in first if second[k] != first[k]}
    assert "results/turtle-at-initialisation.json" in changed and not changed & sine
    execute(tmp_path, data_dir=str(data), overrides=dict(tiny, init_inits=2, sine_test_tasks=12))
    third = stamps()
    changed = {k for k in second if third.get(k) != second[k]}
    assert "results/turtle-at-initialisation.json" not in changed
    new_runs = {k for k in third if k.startswith("results/sine/") and k.endswith("-test.json") and k not in second}
    assert len(new_runs) == len({k for k in sine if k.endswith("-test.json")})  # every sine run recomputed
