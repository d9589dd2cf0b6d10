"""Batch runner: runs one tiny notebook through papermill and gathers its claims."""

import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from l2l_utils.harness.batch import NOTEBOOKS, main, parse_parameter, run_batch, select_notebooks
from l2l_utils.reporting.claims import CLAIM_COLUMNS

REPO = Path(__file__).resolve().parents[2]

PARAMETERS = 'profile = "smoke"\nseed = 0\nresults_dir = "r"\nfigures_dir = "f"'
BODY = """\
import os
from l2l_utils.reporting.claims import ClaimsTable
from l2l_utils.reporting.verdicts import Result
table = ClaimsTable("Tiny", profile)
table.add("Fig. 1", "seed is passed through", 3, "seed == 3", Result("reproduced" if seed == 3 else "not reproduced", str(seed)))
os.makedirs(results_dir, exist_ok=True)
table.save(os.path.join(results_dir, "claims.csv"))
print(table.display_verdicts())
"""


def write_notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.mark.slow
def test_run_batch_executes_and_gathers(tmp_path, monkeypatch):
    # the kernel is this interpreter (jupyter_client swaps "python" for sys.executable);
    # make the package importable there even without an editable install
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    root = tmp_path / "project"
    write_notebook(root / "notebooks" / "tiny.ipynb")
    result = run_batch(profile="custom", seed=3, out=tmp_path / "out", root=root,
                       overrides={"figures_dir": str(tmp_path / "figs")},
                       notebooks={"tiny": "notebooks/tiny.ipynb"})
    assert result["failed"] == {}
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert "reproduced" in executed.cells[-1].outputs[0]["text"]
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert list(claims.columns) == CLAIM_COLUMNS
    assert claims.loc[0, "profile"] == "custom"
    assert claims.loc[0, "measured"] == 3 and claims.loc[0, "verdict"] == "reproduced"
    assert (tmp_path / "out" / "results" / "tiny" / "claims.csv").exists()
    assert "| Tiny | Fig. 1 |" in (tmp_path / "out" / "claims.md").read_text()


def test_unknown_notebook_lists_allowed_names(capsys):
    with pytest.raises(ValueError, match="allowed: andrychowicz2016"):
        select_notebooks(["nope"])
    with pytest.raises(ValueError, match="allowed: andrychowicz2016"):
        run_batch(names=["nope"], root=REPO)
    with pytest.raises(SystemExit):
        main(["--notebooks", "nope", "--root", str(REPO)])
    assert "allowed: " + ", ".join(NOTEBOOKS) in capsys.readouterr().err


def test_parse_parameter():
    assert parse_parameter("steps=100") == ("steps", 100)
    assert parse_parameter("lrs=[0.1, 0.01]") == ("lrs", [0.1, 0.01])
    assert parse_parameter("device=cuda") == ("device", "cuda")
    with pytest.raises(ValueError):
        parse_parameter("novalue")
