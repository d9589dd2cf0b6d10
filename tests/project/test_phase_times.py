"""``benchmarks/phase_times.py`` and ``benchmarks/dominant_loops.py`` on a synthetic executed notebook whose cell
durations, stored results and progress bars are known, so that every share is worked by hand; the dominant loops of
the TURTLE and MetaMD notebooks built at tiny sizes, their FLOPs per unit counted by hand."""

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


def _tiny(monkeypatch, paper, **sizes):
    """A profile ``tiny`` of ``paper``: its ``paper`` settings with ``sizes`` changed."""
    from l2l_utils.harness.profiles import PAPER_PROFILES

    monkeypatch.setitem(PAPER_PROFILES[paper], "tiny", dict(PAPER_PROFILES[paper]["paper"], **sizes))


def test_turtle_units_counted_by_hand(monkeypatch):
    """First-order MAML and TURTLE at T = 1 on the sine network 1-40-40-1, K = 5 support and Q = 10 query points.
    A forward pass on n points does the products n×1·1×40, n×40·40×40, n×40·40×1: F(n) = 2n(40 + 1600 + 40) =
    3360n. The gradient of the weights needs, per layer, the weight product (2n(1·40 + 40·40 + 40·1)) and the input
    product of layers 2 and 3 (2n(40·40 + 40·1); layer 1's input is data): B(n) = 2n(1680 + 1640) = 6640n.
    FO-MAML's meta-step: the support pass and gradient, the query pass and its backward pass into θ0 (the first-order
    step passes the gradient straight through): F(K) + B(K) + F(Q) + B(Q) = 10000·15 = 150,000. A validation task:
    F(K) + B(K) (the support step, no graph) + F(Q) (its score) = 50,000 + 33,600 = 83,600; the bar of 4 training
    tasks, a meta-batch of 1 and validation every 2 tasks validates twice on 3 tasks: 6/4 validation tasks per
    training task, 125,400. Per unit: 275,400."""
    _tiny(monkeypatch, "huisman2022", sine_support=5, sine_query=10, sine_train_tasks=4, sine_val_tasks=3, val_every=2,
          fig3_T=[1], fig3_layers=[1], fig3_runs=1, fig4_T=[1], runs=1, turtle_hidden=6)
    used, loops = dominant_loops.huisman2022("tiny")
    by_name = {loop.name: loop for loop in loops}
    assert used == "tiny" and len(loops) == 3 + 2 * 2
    maml = by_name["meta-training FO-MAML (Fig. 3, T = 1)"]
    assert dominant_loops.flops_per_unit(maml.work) == 275_400
    # FO-TURTLE with one hidden layer of h = 6 and the gradient as its only input, over both tasks' 2·1761 = 3522
    # coordinates N: forward N×1·1×6 and N×6·6×1, 2N·6 each; backward into φ: both weights' products and layer 2's
    # input product, 2N·6 each: 10·N·6 = 211,320 for the meta-batch of 2, whose sine-network passes are 2 × 150,000.
    # Per task: (300,000 + 211,320) / 2 = 255,660. A validation task adds g_φ's forward on its 1761 coordinates
    # (4·1761·6 = 42,264) to MAML's 83,600: 125,864 × 6/4 = 188,796. Per unit: 444,456.
    turtle = by_name["meta-training FO-TURTLE, 1 layer(s) (Fig. 3, T = 1)"]
    assert dominant_loops.flops_per_unit(turtle.work) == 444_456
    assert "1/2 of an Adam step on a meta-batch of 2" in turtle.unit and "2 validations" in turtle.unit


def test_turtle_bars_in_the_notebooks_order():
    """The cpu run's 180 bars: Fig. 3 first (T = 1, 5; SO, FO; MAML then depths 1, 5, 6, 7; 6 runs each: 120 bars),
    then Fig. 4 (T = 1, 5; MAML, LSTM, TURTLE; 10 runs each)."""
    used, loops = dominant_loops.huisman2022("cpu")
    bars = {loop.name: loop.bars for loop in loops}
    assert used == "cpu" and len(loops) == 6 + 20
    assert bars["meta-training SO-MAML (Fig. 3, T = 1)"] == tuple(range(0, 6))
    assert bars["meta-training SO-TURTLE, 7 layer(s) (Fig. 3, T = 1)"] == tuple(range(24, 30))
    assert bars["meta-training FO-MAML (Fig. 3, T = 5)"] == tuple(range(90, 96))
    assert bars["meta-training MAML (Fig. 4, T = 1)"] == tuple(range(120, 130))
    assert bars["meta-training TURTLE (Fig. 4, T = 5)"] == tuple(range(170, 180))
    assert dominant_loops.validations_in_bar(4_000, 2, 2_500) == 2  # at 2,500 tasks and at the end
    assert dominant_loops.validations_in_bar(5, 2, 2) == 3  # 2, 4 and the last unit of one task


def test_metamd_unit_counted_by_hand(monkeypatch):
    """MetaMD with the direct hypergradient on an MLP 784-4-10, minibatches of n = 8, T = 3: the mirror map's
    B⁻¹GA⁻¹ (Sherman-Morrison), the Bregman term and the factors' gradients are matrix-vector products, which the
    counter does not count, so only the network's passes count. A pass and its gradient: forward n×784·784×4 and
    n×4·4×10; backward layer 2's weight and input products and layer 1's weight product: 2n(2·784·4 + 3·4·10) =
    102,272. Every inner problem evaluates the loss and gradient at θ_0..θ_T (T + 1 = 4 passes); one unit of the bar
    holds the 2 tasks of the meta-step and the validation on 2 fixed problems (one per meta-train domain): 4 × 4 ×
    102,272 = 1,636,352."""
    _tiny(monkeypatch, "metamd", rotated_domains=[0, 15, 30], rotated_heldout=[0], mlp_hidden=[4], batch_size=8,
          tasks_per_step=2, runs_per_task=1, val_problems_per_task=1, rotated_inner_steps=3, hypergradient="direct",
          hypergradient_ablation=[], optimizers=["SGD", "MetaMD"], digits_heldout=[])
    used, loops = dominant_loops.metamd("tiny")
    assert [loop.name for loop in loops] == ["meta-training MetaMD (direct hypergradient)"]
    assert loops[0].bars == (2,)  # after the two quadratic families' bars
    assert dominant_loops.flops_per_unit(loops[0].work) == 1_636_352


def test_metamd_unrolled_unit_extrapolated_equals_the_direct_count(monkeypatch):
    """The unrolled hypergradient's unit counted from T = 1 and 2 equals the count of a T = 3 unit, and exceeds the
    network passes that the direct estimator's unit does (2 problems × 4 passes × 102,272: the test above): the
    reverse pass recomputes every step's gradient with its graph and differentiates through it."""
    _tiny(monkeypatch, "metamd", rotated_domains=[0, 15], rotated_heldout=[0], mlp_hidden=[4], batch_size=8,
          tasks_per_step=1, runs_per_task=1, val_problems_per_task=1, rotated_inner_steps=3,
          hypergradient="unrolled", hypergradient_ablation=["ift"], optimizers=["MetaMD"], digits_heldout=[])
    used, loops = dominant_loops.metamd("tiny")
    unrolled, ift = loops
    assert unrolled.bars == (2,) and ift.bars == (3,)
    linear = dominant_loops.flops_per_unit(unrolled.work)
    direct = dominant_loops.flops_per_unit(unrolled.work.make(3))
    assert linear > 2 * 4 * 102_272 and linear == direct


def test_metamd_bars_in_the_notebooks_order():
    """The cpu run: 2 quadratic families, then on RotatedMNIST (0° held out) MetaMD, L2O, Meta-SGD, MetaCur, then
    the IFT ablation's MetaMD."""
    used, loops = dominant_loops.metamd("cpu")
    assert used == "cpu"
    assert {loop.name: loop.bars for loop in loops} == {"meta-training MetaMD (unrolled hypergradient)": (2,),
                                                        "meta-training MetaMD (ift hypergradient, the ablation)": (6,),
                                                        "meta-training L2O": (3,)}


def test_every_notebook_has_a_builder():
    assert not dominant_loops.NOT_BUILT
    assert set(dominant_loops.LOOPS) == {"kuo2020_mtl2l", "andrychowicz2016_l2l", "head_to_head", "simple_optimizer",
                                         "huisman2022_turtle", "metamd"}
    assert dominant_loops.profile_of("andrychowicz2016", "cpu")[1] == "cpu"
