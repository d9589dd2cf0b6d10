"""Running one job: pinned kernel environment, a job folder never run by two processes at once, an interrupted
job resumed from its checkpoint by the same command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from l2l_utils.harness.batch import run_batch
from l2l_utils.harness.engine import Engine
from l2l_utils.harness.execution import execute, kernel_environment
from l2l_utils.harness.jobs import expand

from helpers import write_tiny_notebook

REPO = Path(__file__).resolve().parents[2]
TINY = {"tiny": "notebooks/tiny.ipynb"}
HOLD = "import sys, time; from l2l_utils.harness.locks import hold; hold(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_kernel_environment():
    assert kernel_environment() == {}
    assert kernel_environment(3, 1) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3",
                                        "CUDA_VISIBLE_DEVICES": "1"}


def test_a_job_folder_held_elsewhere_is_not_touched(tmp_path):
    """Two runs of the same command at once: the second does not start the job, nor write its record."""
    job = expand(TINY, tmp_path, tmp_path / "out", [0])[0]
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(job.folder)], stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        assert other.stdout.readline().strip() == "held"
        record = execute(job, {"seed": 0})
    finally:
        other.kill()
        other.wait()
    assert record["state"] == "failed" and record["error"].startswith("not started: ")
    assert f"in use by pid {other.pid}" in record["error"]
    assert sorted(p.name for p in job.folder.iterdir()) == [".lock"]


@pytest.mark.slow
def test_an_interrupted_job_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Sequential (``--jobs 1``, no Dask): the kernel dies after its second checkpoint; the same command again
    finds the job's folder, and the notebook goes on from step 2."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    root = tmp_path / "project"
    write_tiny_notebook(root / "notebooks" / "tiny.ipynb")
    (root / "pyproject.toml").touch()
    arguments = dict(profile="custom", out=tmp_path / "out", root=root, notebooks=TINY, engine=Engine("sequential"),
                     overrides={"mode": "die_once", "marker": str(tmp_path / "died")}, progress="quiet")
    first = run_batch(**arguments)
    job = first["jobs"][0]
    assert first["records"][0]["state"] == "failed" and "kernel died" in first["records"][0]["error"]
    assert (job.results_dir / "step.txt").read_text() == "2"
    second = run_batch(**arguments)
    assert second["failed"] == {} and second["records"][0]["state"] == "done"
    assert json.loads((job.results_dir / "info.json").read_text())["resumed_at"] == 2
    assert json.loads(job.record.read_text())["state"] == "done"
