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


@pytest.fixture
def torch_determinism(monkeypatch):
    """Restore torch's process-wide determinism settings and CUBLAS_WORKSPACE_CONFIG after the test."""
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # as a GPU user's own code might have left it
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    yield torch
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def start_on(device, tmp_path, monkeypatch, **keywords):
    """start_notebook with ``resolve_device`` answering ``device`` (a CUDA device is only named: nothing runs on it)."""
    import torch

    from l2l_utils.harness import notebook_setup

    monkeypatch.setattr(notebook_setup, "resolve_device", lambda _: torch.device(device))
    try:
        return start_notebook("kuo2020", "MTL2L", "smoke", 0, device, tmp_path / "results", tmp_path / "figures", {},
                              **keywords)
    finally:
        locks.release(tmp_path / "results")
        track_profile(None)


def test_on_cuda_kernels_are_made_deterministic_before_any_compute(tmp_path, monkeypatch, torch_determinism, capsys):
    import os

    torch = torch_determinism
    run = start_on("cuda", tmp_path, monkeypatch)
    assert run.device.type == "cuda"
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # one of the two values cuBLAS documents
    assert "device=cuda deterministic-kernels " in capsys.readouterr().out


def test_a_workspace_the_user_set_is_kept(tmp_path, monkeypatch, torch_determinism):
    import os

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    start_on("cuda", tmp_path, monkeypatch)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize("device, keywords", [("cpu", {}), ("cuda", {"deterministic": False})])
def test_on_cpu_or_when_switched_off_nothing_changes(tmp_path, monkeypatch, torch_determinism, capsys, device,
                                                    keywords):
    import os

    torch = torch_determinism
    start_on(device, tmp_path, monkeypatch, **keywords)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is False and torch.backends.cudnn.benchmark is True
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    printed = capsys.readouterr().out
    assert f"device={device} " in printed and "deterministic-kernels" not in printed


def test_deterministic_must_be_a_bool(tmp_path):
    from l2l_utils.harness.profiles import ParameterError

    with pytest.raises(ParameterError, match="deterministic must be True or False"):
        start_notebook("kuo2020", "MTL2L", "smoke", 0, "cpu", tmp_path / "r", tmp_path / "f", {}, deterministic="yes")
    assert not (tmp_path / "r").exists()


def test_a_notebook_flushes_subnormal_floats_to_zero_on_an_x86_cpu(tmp_path, capsys):
    """The raw-gradient inputs of L2L's App. A ablation produce subnormal floats whose arithmetic is 4-5x slower on
    x86; a notebook flushes them (1e-39 * 1 -> 0), and says so on its first line."""
    import platform

    import torch

    if platform.machine() not in ("x86_64", "AMD64", "i686"):
        pytest.skip("flush-to-zero is an x86 setting")
    try:
        torch.set_flush_denormal(False)
        assert float(torch.tensor([1e-39]) * 1.0) > 0.0  # subnormal arithmetic as the default gives it
        start_notebook("kuo2020", "MTL2L", "smoke", 0, "cpu", tmp_path / "r", tmp_path / "f", {})
        assert float(torch.tensor([1e-39]) * 1.0) == 0.0
        assert float(torch.tensor([1.2e-38]) * 1.0) > 0.0  # the smallest normal float is kept
        assert "flush-denormal" in capsys.readouterr().out
    finally:
        locks.release(tmp_path / "r")
        track_profile(None)
        torch.set_flush_denormal(False)
