"""``benchmarks/phase_times.py`` and ``benchmarks/dominant_loops.py`` on a synthetic executed notebook whose cell
durations, stored results and progress bars are known, so that every share is worked by hand."""

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import dominant_loops  # noqa: E402
from phase_times import (MIXED, META, OTHER, TESTING, TUNING, Mapping, analyse, main, markdown,  # noqa: E402
                         progress_bars, result_name)

T0 = datetime(2026, 12, 5, 1, 0, 0, tzinfo=timezone.utc)
MAPPING = Mapping(sections=((r"^1\. Training", META), (r"^3\. Claims", OTHER)),  # "2. Grid" is unmatched: mixed
                  results=((r"-tuning$", TUNING), (r"-test$", TESTING)))
BAR = ("\rmeta-training:   0%|          | 0/40 [00:00<?, ?it/s]"
       "\rmeta-training:  50%|█████     | 20/40 [00:45<00:45,  0.44it/s]"
       "\rmeta-training: 100%|██████████| 40/40 [01:30<00:00,  0.44it/s]"
       "\rmeta-training: 100%|██████████| 40/40 [01:30<00:00,  0.44it/s, score=0.5]\n")


def _code(start_s, seconds, stdout="", stderr=""):
    cell = nbformat.v4.new_code_cell("pass")
    start = T0 + timedelta(seconds=start_s)
    cell.metadata["papermill"] = {"duration": seconds, "start_time": start.isoformat(),
                                  "end_time": (start + timedelta(seconds=seconds)).isoformat(), "status": "completed"}
    cell.outputs = [nbformat.v4.new_output("stream", name=n, text=t) for n, t in (("stdout", stdout),
                                                                                   ("stderr", stderr)) if t]
    return cell


def _save(results, name, at_s):
    (results / f"{name}.json").write_text(json.dumps({"saved_at": (T0 + timedelta(seconds=at_s)).isoformat(
        timespec="seconds")}))


def synthetic(tmp_path, reused="False", job_seconds=None):
    """Set-up 10 s (0-10); "1. Training" 100 s (12-112) with a 40-unit bar of 90 s; "2. Grid" 200 s (115-315)
    saving a tuning at 165 and a test at 265; "3. Claims" 40 s (318-358); papermill's wall 360 s."""
    results = tmp_path / "results"
    results.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [_code(0, 10.0), nbformat.v4.new_markdown_cell("## 1. Training\ntext"), _code(12, 100.0, stderr=BAR),
                nbformat.v4.new_markdown_cell("## 2. Grid"), _code(115, 200.0),
                nbformat.v4.new_markdown_cell("## 3. Claims\n### a subsection stays in §3"),
                _code(318, 40.0, stdout=f"LSTM meta-trained; reused: {reused}; loss 0.5\n")]
    nb.metadata["papermill"] = {"duration": 360.0, "start_time": T0.isoformat(),
                                "end_time": (T0 + timedelta(seconds=360)).isoformat(),
                                "parameters": {"results_dir": str(results)}}
    _save(results, "s1-A-0123456789ab-tuning", 165)
    _save(results, "s1-A-test-ba9876543210", 265)
    _save(results, "old-history", -3600)  # an earlier run's result: in no cell
    folder = tmp_path / "seed0"
    folder.mkdir()
    if job_seconds:
        (folder / "job.json").write_text(json.dumps({"seconds": job_seconds, "threads": 1}))
    path = folder / "synthetic.ipynb"
    nbformat.write(nb, path)
    return path


def test_shares_worked_by_hand(tmp_path):
    report = analyse(synthetic(tmp_path), mapping=MAPPING)
    # meta-training: §1's 100 s; tuning: 115 -> 165 = 50 s; testing: 165 -> 265 = 100 s; §2's rest after the last
    # save (265 -> 315) is mixed: 50 s; other: set-up 10 + claims 40 + between cells 360 - 350 = 10, so 60 s
    assert report.wall == 360.0
    assert report.phases == pytest.approx({META: 100.0, TUNING: 50.0, TESTING: 100.0, MIXED: 50.0, OTHER: 60.0})
    shares = {p: s / report.wall for p, s in report.phases.items()}
    assert shares[META] == pytest.approx(100 / 360) and shares[OTHER] == pytest.approx(1 / 6)
    assert [c.section for c in report.cells] == ["(set-up)", "1. Training", "2. Grid", "3. Claims"]
    assert report.bar_seconds == 90 and (report.bars[0].units, report.bars[0].elapsed) == (40, 90)
    assert (report.older_results, report.fresh_results) == (1, 2)
    assert [(n, p, s) for n, _, p, s in report.cells[2].saves] == [("s1-A-tuning", TUNING, 50.0),
                                                                    ("s1-A-test", TESTING, 100.0)]
    assert not report.cached
    table = markdown([report])
    assert "0:01:40 (28%)" in table and "0:00:50 (14%)" in table and "0:01:30" in table


def test_a_run_that_reused_its_results_is_marked(tmp_path):
    report = analyse(synthetic(tmp_path, reused="True", job_seconds=5000.0), mapping=MAPPING)
    assert report.cached
    assert any("job.json says 5000 s" in f for f in report.flags)


def test_without_results_the_sections_decide(tmp_path):
    path = synthetic(tmp_path)
    report = analyse(path, results_dir=tmp_path / "nowhere", mapping=MAPPING)
    assert report.phases == pytest.approx({META: 100.0, TUNING: 0.0, TESTING: 0.0, MIXED: 200.0, OTHER: 60.0})
    assert "no results folder: phases by section only" in report.flags


def test_bars_in_a_mixed_cell_move_their_seconds_to_meta_training(tmp_path):
    path = synthetic(tmp_path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stderr", text="\rmeta-training: 100%|██████████| 8/8 [00:30<00:00,  0.27it/s]\n")]
    nbformat.write(nb, path)
    # without results: §2's 200 s are mixed, of which its bar measured 30 s of meta-training
    report = analyse(path, results_dir=tmp_path / "nowhere", mapping=MAPPING)
    assert report.phases == pytest.approx({META: 130.0, TUNING: 0.0, TESTING: 0.0, MIXED: 170.0, OTHER: 60.0})
    # with results: tuning 50 and testing 100 from the saves, the bar's 30 s out of the 50 s left mixed
    report = analyse(path, mapping=MAPPING)
    assert report.phases == pytest.approx({META: 130.0, TUNING: 50.0, TESTING: 100.0, MIXED: 20.0, OTHER: 60.0})


def test_progress_bars_and_result_names():
    resumed = ("\rmeta-training:  50%|█████     | 20/40 [00:00<?, ?it/s]"
               "\rmeta-training: 100%|██████████| 40/40 [00:30<00:00,  0.66it/s]\n")
    bars = progress_bars(BAR + resumed + "\rpre-training: 100%|███| 5/5 [1:02:03<00:00]")
    assert [(b.desc, b.start, b.n, b.units, b.elapsed) for b in bars] == [
        ("meta-training", 0, 40, 40, 90), ("meta-training", 20, 40, 20, 30), ("pre-training", 5, 5, 0, 3723)]
    assert result_name("lstm-MNIST-00bf7230b0cc-history") == "lstm-MNIST-history"
    assert result_name("s1-MNIST-test-0123456789ab") == "s1-MNIST-test"


def test_command_line_writes_json(tmp_path, capsys):
    path = synthetic(tmp_path)
    out = tmp_path / "rows.json"
    main([str(path), "--json", str(out), "--markdown"])
    rows = json.loads(out.read_text())
    assert rows[0]["wall_s"] == 360.0 and rows[0]["meta_training_bars_s"] == 90
    assert "| synthetic |" in capsys.readouterr().out


def test_flops_per_unit_and_the_achieved_rate(tmp_path, monkeypatch, capsys):
    a, b = torch.randn(8, 5), torch.randn(5, 7)

    class Periods:  # two periods minus one: one product of 2·8·5·7 = 560 FLOPs
        def __call__(self):
            a @ b, a @ b

        def baseline(self):
            a @ b

    assert dominant_loops.flops_per_unit(lambda: a @ b) == 560
    assert dominant_loops.flops_per_unit(Periods()) == 560
    loop = dominant_loops.Loop("toy", "one product", lambda: torch.randn(1000, 1000) @ torch.randn(1000, 1000), (0,))
    monkeypatch.setitem(dominant_loops.LOOPS, "head_to_head", ("head_to_head", lambda profile: ("toy", [loop])))
    rows = dominant_loops.main(["--notebook", "head_to_head", "--run", str(synthetic(tmp_path)),
                                "--peak-gflops", "10"])
    # 2·1000³ = 2 GFLOP per unit; the bar: 40 units in 90 s; 2 × 40/90 = 0.889 GFLOP/s, 0.0889 of 10 GFLOP/s
    assert rows[0]["gflop_per_unit"] == 2.0
    assert rows[0]["units_per_s"] == pytest.approx(40 / 90)
    assert rows[0]["gflop_per_s"] == pytest.approx(0.8889, rel=1e-3)
    assert rows[0]["fraction_of_peak"] == pytest.approx(0.08889, rel=1e-3)
    rows = dominant_loops.main(["--notebook", "head_to_head", "--rate", "toy=0.5", "--peak-gflops", "4"])
    assert rows[0]["gflop_per_s"] == 1.0 and rows[0]["fraction_of_peak"] == 0.25
    # a rate from stored results: the test frame "s1-A-test" closed an interval of 100 s; 50 units per frame
    loop.bars, loop.saves = None, (r"-test$", 50)
    rows = dominant_loops.main(["--notebook", "head_to_head", "--run", str(tmp_path / "seed0" / "synthetic.ipynb"),
                                "--peak-gflops", "10"])
    assert rows[0]["units_per_s"] == pytest.approx(0.5) and rows[0]["gflop_per_s"] == pytest.approx(1.0)


def test_a_truncation_counted_from_one_and_two_steps_equals_the_direct_count():
    from dataclasses import replace

    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig
    from l2l_utils.tasks.models import mlp
    from l2l_utils.tasks.problems import ClassifierTask

    task = ClassifierTask(mlp(784, [4], 10, "sigmoid"), dominant_loops.random_images(256), 16)
    torch.manual_seed(0)
    rule = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1)
    meta = MetaTrainConfig(steps=5, unroll=5)
    direct = dominant_loops.flops_per_unit(dominant_loops.truncation(rule, task, meta))
    linear = dominant_loops.flops_per_unit(dominant_loops.Linear(
        lambda k: dominant_loops.truncation(rule, task, replace(meta, steps=k, unroll=k)), 5))
    assert direct > 0 and linear == direct


def test_bar_rates_keep_the_bars_indices():
    from types import SimpleNamespace

    from phase_times import Bar

    report = SimpleNamespace(bars=[Bar("meta-training", 0, 4, 4, 0), Bar("pre-training", 0, 9, 9, 3),
                                   Bar("meta-training", 10, 40, 40, 60)])
    # the first meta-training bar is too short (0 s) for a rate; the evaluation bar is not a meta-training; the
    # resumed bar did 30 units in 60 s
    assert dominant_loops.bar_rates(report) == [None, 0.5]
