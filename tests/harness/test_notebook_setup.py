"""The notebook's opening holds its results folder: a second kernel on the same folder stops before any compute."""

import subprocess
import sys
from pathlib import Path

import pytest

from l2l_utils.harness import locks
from l2l_utils.harness.notebook_setup import start_notebook
from l2l_utils.storage.results import track_profile

REPO = Path(__file__).resolve().parents[2]
START = """import sys
from l2l_utils.harness.notebook_setup import start_notebook
start_notebook("kuo2020", "MTL2L", "smoke", 0, "cpu", sys.argv[1], sys.argv[2], {})
print("started", flush=True)
sys.stdin.read()
"""


def test_two_kernels_never_share_a_results_folder(tmp_path):
    results, figures = tmp_path / "results", tmp_path / "figures"
    first = subprocess.Popen([sys.executable, "-c", START, str(results), str(figures)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                                                     "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    try:
        assert first.stdout.readline().startswith("profile=smoke seed=0")  # start_notebook's line
        assert first.stdout.readline().strip() == "started"
        with pytest.raises(locks.FolderBusy, match=rf"in use by pid {first.pid} .*\(kuo2020 notebook\)"):
            start_notebook("kuo2020", "MTL2L", "smoke", 0, "cpu", results, figures, {})
    finally:
        first.communicate("")
        track_profile(None)
    run = start_notebook("kuo2020", "MTL2L", "smoke", 0, "cpu", results, figures, {})  # the first one has ended
    assert run.results_dir == results
    locks.release(results)
    track_profile(None)


def test_a_reduced_profile_lists_its_cuts_in_the_output_and_the_claims_profile_column(tmp_path, capsys):
    from l2l_utils.harness.profiles import PAPER_PROFILES

    profiles = PAPER_PROFILES["head_to_head"]
    changed = [field for field in profiles["paper"] if profiles["cpu"][field] != profiles["paper"][field]]
    run = start_notebook("head_to_head", "Head to head", "cpu", 0, "cpu", tmp_path / "r", tmp_path / "f",
                         {"test_runs": 7})
    try:
        assert run.claims.profile == f"cpu (cut from paper: {', '.join(changed)}; overridden: test_runs)"
        printed = capsys.readouterr().out
        assert f"differs from the paper's settings in {len(changed)} field(s)" in printed
        assert f"meta_budget: paper {profiles['paper']['meta_budget']!r} -> cpu {profiles['cpu']['meta_budget']!r}" \
            in printed
    finally:
        locks.release(tmp_path / "r")
        track_profile(None)
    for profile in ("paper", "smoke"):  # the paper's own settings, and the toy profile whose verdicts say so
        run = start_notebook("head_to_head", "Head to head", profile, 0, "cpu", tmp_path / profile, tmp_path / "f", {})
        assert run.claims.profile == profile
        locks.release(tmp_path / profile)
        track_profile(None)
