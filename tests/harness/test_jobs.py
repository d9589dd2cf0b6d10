"""The job grid: notebooks × seeds × grid points, one folder per job named from its parameters."""

from pathlib import Path

import pytest

from l2l_utils.harness.jobs import (MAX_NAME, expand, job_name, parameters, parse_grid, parse_parameter, parse_seeds,
                                    split_settings)


def test_parse_parameter():
    assert parse_parameter("steps=100") == ("steps", 100)
    assert parse_parameter("lrs=[0.1, 0.01]") == ("lrs", [0.1, 0.01])
    assert parse_parameter("device=cuda") == ("device", "cuda")
    with pytest.raises(ValueError):
        parse_parameter("novalue")


def test_parse_seeds_and_grid():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("5,0-1,1") == [0, 1, 5]
    for bad in ("", "-1", "3-1", "a"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
    assert parse_grid("meta_lr=0.1,0.01") == ("meta_lr", [0.1, 0.01])
    assert parse_grid("device=cpu,cuda") == ("device", ["cpu", "cuda"])
    assert parse_grid("sizes=[1,2],[3]") == ("sizes", [[1, 2], [3]])
    with pytest.raises(ValueError):
        parse_grid("meta_lr=")


def test_one_job_per_notebook_seed_and_grid_point_each_in_its_own_folder(tmp_path):
    jobs = expand({"a": "notebooks/a.ipynb", "b": "notebooks/b.ipynb"}, tmp_path, tmp_path / "runs" / "smoke",
                  [0, 1], fixed={"epochs": 2}, grid={"lr": [0.1, 0.01], "depth": [1, 2]})
    assert len(jobs) == 2 * 2 * 4
    assert len({job.folder for job in jobs}) == len(jobs)
    job = jobs[1]
    assert (job.notebook, job.seed, job.point) == ("a", 0, {"lr": 0.1, "depth": 2})
    assert job.name == "seed0_depth=2_epochs=2_lr=0.1"  # the same parameters always give the same name
    assert job.folder == tmp_path / "runs" / "smoke" / "a" / job.name
    assert job.output.name == "a.ipynb" and job.results_dir == job.folder / "results"
    assert [j.key for j in expand({"a": "a.ipynb"}, tmp_path, tmp_path, [0])] == ["a/seed0"]


def test_names_stay_short_and_distinct():
    assert job_name(0, {"figures_dir": "/x", "progress": False}) == "seed0"  # where things go is not in the name
    odd = job_name(0, {"overrides": {"a": 1}})
    assert odd.startswith("seed0_overrides=-a-1") and odd != job_name(0, {"overrides": {"a": 2}})
    long = job_name(0, {"layers": list(range(60))})
    assert len(long) <= MAX_NAME and long != job_name(0, {"layers": list(range(61))})


def test_reserved_and_duplicate_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="use --seeds"):
        expand({"a": "a.ipynb"}, tmp_path, tmp_path, [0], fixed={"seed": 3})
    with pytest.raises(ValueError, match="use --profile"):
        expand({"a": "a.ipynb"}, tmp_path, tmp_path, [0], grid={"profile": ["paper"]})
    with pytest.raises(ValueError, match="both with -p and --grid"):
        expand({"a": "a.ipynb"}, tmp_path, tmp_path, [0], fixed={"lr": 1}, grid={"lr": [1, 2]})
    with pytest.raises(ValueError, match="same parameters"):
        expand({"a": "a.ipynb"}, tmp_path, tmp_path, [0], grid={"lr": [1, 1]})


def test_profile_fields_go_into_overrides():
    names = {"profile", "seed", "device", "overrides", "results_dir", "figures_dir"}
    assert split_settings({"device": "cpu", "epochs": 3, "overrides": {"steps": 5}}, names) == \
        {"device": "cpu", "overrides": {"steps": 5, "epochs": 3}}
    assert split_settings({"epochs": 3}, {"seed"}) == {"epochs": 3}  # a notebook without overrides
    job = expand({"a": "a.ipynb"}, Path("/p"), Path("/p/runs/s"), [2], fixed={"device": "cpu"},
                 grid={"epochs": [3]})[0]
    assert parameters(job, "smoke", Path("/p/figures/a"), names) == {
        "profile": "smoke", "seed": 2, "results_dir": str(job.results_dir), "figures_dir": "/p/figures/a",
        "device": "cpu", "overrides": {"epochs": 3}}
