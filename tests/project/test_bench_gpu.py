"""``benchmarks/bench_gpu.py``: prepared for one short GPU run; here (no GPU in CI) it must say so and exit cleanly,
and its ``--quick`` mode must run through on the CPU with every number it reports."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_gpu  # noqa: E402


def test_without_a_gpu_it_says_so_and_measures_nothing(capsys, monkeypatch):
    monkeypatch.setattr(bench_gpu.torch.cuda, "is_available", lambda: False)
    assert bench_gpu.main([]) is None
    assert "no CUDA device" in capsys.readouterr().out


def test_the_quick_check_runs_on_the_cpu(tmp_path):
    out = bench_gpu.main(["--quick", "--threads", "1", "--out", str(tmp_path / "gpu.json")])
    assert out["environment"]["device"] == "cpu" and (tmp_path / "gpu.json").exists()
    (step,) = out["steps"]
    assert step["parameters"] == 15_910  # the paper's MNIST MLP 784-20-10
    assert step["ratio"] > 0 and step["eager_roofline"] > 0
    (trajectory,) = out["trajectory"]
    assert trajectory["variant"] == "fused" and trajectory["gflop"] > 0 and trajectory["gbytes"] > 0
