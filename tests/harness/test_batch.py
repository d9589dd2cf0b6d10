"""Batch runner: runs the tiny notebook through papermill (one after another, ``--jobs 1``) and gathers its claims;
the command line."""

import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from l2l_utils.harness.batch import (NOTEBOOKS, _names, build_parser, engine_from, main, run_batch,
                                     select_notebooks)
from l2l_utils.harness.summary import JOB_COLUMNS
from l2l_utils.reporting.claims import CLAIM_COLUMNS

from helpers import write_tiny_notebook

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_batch_executes_and_gathers(tmp_path, monkeypatch):
    # the kernel is this interpreter (jupyter_client swaps "python" for sys.executable);
    # make the package importable there even without an editable install
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    root = tmp_path / "project"
    write_tiny_notebook(root / "notebooks" / "tiny.ipynb")
    result = run_batch(profile="custom", seeds=[3], out=tmp_path / "out", root=root,
                       overrides={"figures_dir": str(tmp_path / "figs")}, notebooks={"tiny": "notebooks/tiny.ipynb"},
                       engine=engine_from(build_parser().parse_args(["--jobs", "1"])), progress="quiet")
    assert result["failed"] == {}
    job = tmp_path / "out" / "tiny" / "seed3"
    executed = nbformat.read(job / "tiny.ipynb", as_version=4)
    assert "reproduced" in executed.cells[-1].outputs[0]["text"]
    assert "reproduced" in (job / "log.txt").read_text()
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert list(claims.columns) == JOB_COLUMNS + CLAIM_COLUMNS
    assert (claims.loc[0, "notebook"], claims.loc[0, "job"], claims.loc[0, "seed"]) == ("tiny", "seed3", 3)
    assert claims.loc[0, "profile"] == "custom"
    assert claims.loc[0, "measured"] == 3 and claims.loc[0, "verdict"] == "reproduced"
    assert (job / "results" / "claims.csv").exists()
    assert "| tiny | seed3 | 3 | Tiny | Fig. 1 |" in (tmp_path / "out" / "claims.md").read_text()


@pytest.mark.slow
def test_the_summary_covers_notebooks_finished_by_earlier_commands(tmp_path, monkeypatch):
    """One notebook at a time into one folder: each summary counts every notebook finished there and names the rest."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    root = tmp_path / "project"
    for name in ("tiny", "other"):
        write_tiny_notebook(root / "notebooks" / f"{name}.ipynb")
    notebooks = {"tiny": "notebooks/tiny.ipynb", "other": "notebooks/other.ipynb"}
    monkeypatch.delenv("L2L_FIGURES_DIR", raising=False)  # the tests' own figures folder would take precedence
    sequential = engine_from(build_parser().parse_args(["--jobs", "1"]))

    def batch(name):
        return run_batch(profile="cpu", names=[name], out=tmp_path / "out", root=root, notebooks=notebooks,
                         engine=sequential, progress="quiet")

    assert batch("tiny")["failed"] == {}
    md = (tmp_path / "out" / "claims.md").read_text()
    assert md.startswith("## Verdicts per paper")
    assert "| tiny | Tiny | seed0 | 1 | 0 | 0 | 0 | 1 | 0 |" in md and "| other |  | no finished run |" in md
    record = json.loads((tmp_path / "out" / "tiny" / "seed0" / "job.json").read_text())
    assert record["parameters"]["figures_dir"] == str(tmp_path / "out" / "figures" / "tiny")  # beside the run
    assert batch("other")["failed"] == {}
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert sorted(claims["notebook"]) == ["other", "tiny"]
    assert "no finished run" not in (tmp_path / "out" / "claims.md").read_text()
    (tmp_path / "out" / "claims.csv").unlink()
    records = [(tmp_path / "out" / name / "seed0" / "job.json").read_text() for name in notebooks]
    summary = run_batch(profile="cpu", out=tmp_path / "out", root=root, notebooks=notebooks, engine=sequential,
                        progress="quiet", force=True, summary_only=True)  # runs nothing, even with force
    assert summary["failed"] == {} and sorted(pd.read_csv(tmp_path / "out" / "claims.csv")["notebook"]) == ["other",
                                                                                                           "tiny"]
    assert [(tmp_path / "out" / name / "seed0" / "job.json").read_text() for name in notebooks] == records


def test_unknown_notebook_lists_allowed_names(capsys):
    with pytest.raises(ValueError, match="allowed: andrychowicz2016"):
        select_notebooks(["nope"])
    with pytest.raises(ValueError, match="allowed: andrychowicz2016"):
        run_batch(names=["nope"], root=REPO)
    with pytest.raises(SystemExit):
        main(["--notebooks", "nope", "--root", str(REPO)])
    assert "allowed: " + ", ".join(NOTEBOOKS) in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["-p", "seed=3"], "'seed' is set by the runner: use --seeds"),
    (["--seeds", "4-2"], "the range 4-2 is empty"),
    (["--grid", "lr"], "must look like KEY=V1,V2"),
    (["--jobs", "0"], "--jobs must be at least 1"),
])
def test_bad_command_lines_are_refused_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv + ["--root", str(REPO)])
    assert message in capsys.readouterr().err


def test_engines_from_the_command_line():
    parse = build_parser().parse_args
    assert engine_from(parse([])).kind == "local" and engine_from(parse([])).workers is None
    assert engine_from(parse(["--jobs", "1"])).kind == "sequential"
    assert (engine_from(parse(["--jobs", "3", "--threads-per-job", "2"])).workers,
            engine_from(parse(["--jobs", "3", "--threads-per-job", "2"])).threads) == (3, 2)
    remote = engine_from(parse(["--scheduler", "tcp://head:8786"]))
    assert (remote.kind, remote.scheduler) == ("scheduler", "tcp://head:8786")
    with pytest.raises(SystemExit):
        parse(["--slurm", "--scheduler", "tcp://head:8786"])
    args = parse(["--notebooks", "kuo2020,metamd", "simple_optimizer", "--seeds", "0-4"])
    assert _names(args.notebooks) == ["kuo2020", "metamd", "simple_optimizer"]


def test_where_each_job_draws_its_figures(tmp_path, monkeypatch):
    from l2l_utils.harness.batch import figures_dirs
    from l2l_utils.harness.jobs import expand

    monkeypatch.delenv("L2L_FIGURES_DIR", raising=False)
    notebooks = {"a": "notebooks/a.ipynb", "b": "notebooks/b.ipynb"}
    out = tmp_path / "runs" / "cpu"
    plain = expand(notebooks, tmp_path, out, [0])
    assert figures_dirs(plain, tmp_path, out, "smoke") == {"a/seed0": tmp_path / "figures" / "a",
                                                           "b/seed0": tmp_path / "figures" / "b"}
    assert figures_dirs(plain, tmp_path, out, "cpu")["a/seed0"] == out / "figures" / "a"
    seeds = expand(notebooks, tmp_path, out, [0, 1])  # several jobs of one notebook never share a folder
    assert figures_dirs(seeds, tmp_path, out, "cpu")["a/seed1"] == out / "a" / "seed1" / "figures"
    changed = expand(notebooks, tmp_path, out, [0], {"lstm": "authors"})  # -p: not the profile's own figures
    folder = figures_dirs(changed, tmp_path, out, "cpu")["a/seed0_lstm=authors"]
    assert folder == out / "a" / "seed0_lstm=authors" / "figures"
    monkeypatch.setenv("L2L_FIGURES_DIR", str(tmp_path / "elsewhere"))
    assert figures_dirs(plain, tmp_path, out, "cpu")["b/seed0"] == tmp_path / "elsewhere" / "b"
