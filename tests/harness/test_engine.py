"""The engine: a LocalCluster sized to the machine runs jobs in parallel (real Dask, tiny notebooks); a failing job,
or one that kills its worker, does not stop the others; a rerun skips finished jobs; SLURM job scripts carry the
stated resources."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from l2l_utils.harness import batch, engine
from l2l_utils.harness.batch import build_parser, engine_from, run_batch
from l2l_utils.harness.engine import Engine, local_plan, pick_gpu, slurm_cluster, usable_cores

from helpers import write_tiny_notebook

REPO = Path(__file__).resolve().parents[2]
TINY = {"tiny": "notebooks/tiny.ipynb"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with the tiny notebook; kernels (started by Dask workers) import this checkout's package."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    root = tmp_path / "project"
    write_tiny_notebook(root / "notebooks" / "tiny.ipynb")
    (root / "pyproject.toml").touch()
    return root


def _info(job):
    return json.loads((job.results_dir / "info.json").read_text())


def test_local_plan_does_not_oversubscribe():
    assert (local_plan(5, 2).workers, local_plan(5, 2).threads) == (2, 1)        # 2 cores: 2 jobs of 1 thread
    assert (local_plan(5, 16).workers, local_plan(5, 16).threads) == (5, 3)      # fewer jobs than cores
    assert (local_plan(8, 32, gpus=4).workers, local_plan(8, 32, gpus=4).threads) == (4, 8)  # one job per GPU
    assert (local_plan(8, 16, workers=3).workers, local_plan(8, 16, workers=3).threads) == (3, 5)
    assert local_plan(1, 16, threads=2).threads == 2


def test_gpus_are_those_this_process_sees(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [pick_gpu(i, 2) for i in range(3)] == ["0", "1", "0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [pick_gpu(i, 2) for i in range(3)] == ["2", "3", "2"]


def test_slurm_job_script_states_the_resources():
    """What dask-jobqueue submits for --slurm (no SLURM needed to write it)."""
    args = build_parser().parse_args([
        "--slurm", "--slurm-cores", "8", "--slurm-memory", "32GB", "--slurm-walltime", "02:30:00", "--slurm-gpus", "1",
        "--slurm-queue", "gpu", "--slurm-account", "proj42", "--slurm-option=--constraint=a100",
        "--slurm-prologue", "source /project/.venv/bin/activate"])
    engine = engine_from(args)
    assert engine.kind == "slurm"
    with slurm_cluster(**engine.slurm) as cluster:
        script = cluster.job_script()
    lines = script.splitlines()
    for directive in ["#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G", "#SBATCH -t 02:30:00",
                      "#SBATCH --gres=gpu:1", "#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH --constraint=a100",
                      "source /project/.venv/bin/activate", "export OMP_NUM_THREADS=8"]:
        assert directive in lines, script
    assert "--nthreads 1" in script  # one notebook per worker, its kernel gets the 8 CPUs
    assert lines.index("source /project/.venv/bin/activate") < next(
        i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)


@pytest.mark.slow
def test_two_workers_run_two_jobs_at_once_and_a_rerun_skips_them(project, tmp_path, monkeypatch):
    """The LocalCluster sized as on a machine with 2 GPUs (one job per GPU; no GPU is needed to check the pinning)."""
    monkeypatch.setattr(engine, "gpu_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    out = tmp_path / "runs" / "custom"
    first = run_batch(profile="custom", seeds=[3, 4], out=out, root=project, notebooks=TINY,
                      overrides={"sleep": 2.0}, engine=Engine("local"), progress="quiet")
    assert first["failed"] == {} and [r["state"] for r in first["records"]] == ["done", "done"]
    a, b = (_info(job) for job in first["jobs"])
    assert a["worker"] != b["worker"]                                # two worker processes
    assert a["start"] < b["end"] and b["start"] < a["end"]           # at the same time
    assert {a["gpu"], b["gpu"]} == {"0", "1"}                         # one GPU each
    threads = max(1, usable_cores() // 2)                            # the machine's cores shared by the 2 jobs
    assert a["omp"] == str(threads) and a["torch_threads"] == threads
    assert a["figures_dir"] == str(first["jobs"][0].folder / "figures")  # two jobs of one notebook: own figures

    claims = pd.read_csv(out / "claims.csv", dtype=str)
    assert list(claims[["notebook", "job", "seed", "verdict"]].itertuples(index=False, name=None)) == [
        ("tiny", "seed3_sleep=2.0", "3", "reproduced"), ("tiny", "seed4_sleep=2.0", "4", "not reproduced")]
    assert "| tiny | Tiny | Fig. 1 | 3,4 | 1 reproduced · 1 not reproduced |" in (out / "claims.md").read_text()

    before = [job.record.read_text() for job in first["jobs"]]
    again = run_batch(profile="custom", seeds=[3, 4], out=out, root=project, notebooks=TINY,
                      overrides={"sleep": 2.0}, engine=Engine("local", workers=2), progress="quiet")
    assert [r["state"] for r in again["records"]] == ["skipped", "skipped"]
    assert [job.record.read_text() for job in again["jobs"]] == before  # not run again
    assert len(again["claims"]) == 2


@pytest.mark.slow
def test_a_failing_job_and_a_killed_worker_do_not_stop_the_others(project, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(batch, "NOTEBOOKS", TINY)
    out = tmp_path / "runs" / "custom"
    argv = ["--root", str(project), "--profile", "custom", "--out", str(out), "--notebooks", "tiny", "--seeds", "3",
            "--grid", "mode=raise,kill,ok", "--jobs", "2", "--retries", "0", "--quiet"]
    assert batch.main(argv) == 1
    err = capsys.readouterr().err
    assert "2 failed job(s):" in err
    assert "tiny/seed3_mode=raise: ValueError: bad parameter mode='raise'" in err
    assert "tiny/seed3_mode=kill: its Dask worker died while running it" in err
    records = {p.parent.name: json.loads(p.read_text()) for p in (out / "tiny").glob("*/job.json")}
    assert {name: r["state"] for name, r in records.items()} == {
        "seed3_mode=raise": "failed", "seed3_mode=kill": "failed", "seed3_mode=ok": "done"}
    assert "ValueError: bad parameter" in (out / "tiny" / "seed3_mode=raise" / "log.txt").read_text()
    assert (out / "tiny" / "seed3_mode=kill" / "log.txt").exists()
    claims = pd.read_csv(out / "claims.csv", dtype=str)
    assert claims["job"].tolist() == ["seed3_mode=ok"] and claims["mode"].tolist() == ["ok"]
    md = (out / "claims.md").read_text()
    assert "## Failed jobs" in md and "tiny/seed3_mode=kill" in md



@pytest.mark.slow
def test_jobs_go_to_a_running_scheduler(project, tmp_path):
    """``--scheduler tcp://...``: a cluster started elsewhere (here: a one-worker LocalCluster); each job's threads
    are its worker's share of the host's cores."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=0) as cluster:
        result = run_batch(profile="custom", seeds=[0], out=tmp_path / "out", root=project, notebooks=TINY,
                           engine=Engine("scheduler", scheduler=cluster.scheduler_address), progress="quiet")
    assert result["failed"] == {}
    assert _info(result["jobs"][0])["omp"] == str(usable_cores())
