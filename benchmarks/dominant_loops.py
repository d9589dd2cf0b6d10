"""The loop that dominates each notebook's ``cpu`` run, against what the machine's cores can do in FLOP/s.

For each notebook a small builder (:data:`LOOPS`) constructs its dominant loop(s) with the same ``l2l_utils`` pieces
and sizes as the notebook at a profile (``cpu`` where ``l2l_utils/harness/profiles/<paper>.py`` has one, else
``paper``, said in the output), on random data of the datasets' shapes (the FLOPs do not depend on the pixels), and
counts the FLOPs of one unit of work with the benchmarks' counter (:func:`timing.count_flops`: the matrix products,
forward and backward, ``FlopCounterMode``; element-wise work is not counted, so the achieved rate is a rate of
products). A unit is what the run's progress bar counts: for truncated BPTT one truncation (``unroll`` optimizee
steps of ``meta_batch`` optimizees through the learned optimizer, its backward pass and the Adam step on φ), so that
the run's own rate (units per second, :mod:`phase_times` reads it from the bars of the executed notebook) times the
FLOPs per unit is the achieved FLOP/s. The peak is the float32 rate of a 4096² matrix product with ``--threads``
threads (:func:`timing.matmul_rate`, measured now, quiet cores needed; or given with ``--peak-gflops``).

    python benchmarks/dominant_loops.py --notebook kuo2020_mtl2l [--profile cpu] [--run EXECUTED.ipynb]
        [--rate LOOP=UNITS_PER_S ...] [--threads 2] [--peak-gflops G] [--json out.json]

Without ``--run`` or ``--rate`` it prints the FLOPs per unit only. The bar rate includes what the driver does inside
the bar (the validation at the end of every epoch), so the achieved rate is slightly understated.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Fixed, count_flops, matmul_rate  # noqa: E402

from l2l_utils.harness.profiles import PAPER_PROFILES  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

SEED = 0


@dataclass
class Loop:
    """One loop: ``name``; ``unit`` (what one call does, in words); ``work`` (one unit: the call whose FLOPs are
    counted); ``bars``: which of the run's progress bars measure it (indices among the run's meta-training bars, in
    the order the notebook trains when none was reused, which :mod:`phase_times` reports); ``saves``: or which
    stored results close its intervals (:mod:`phase_times`: the seconds from the previous save in the cell) and how
    many units one such result holds; neither: the rate must be given with ``--rate``."""

    name: str
    unit: str
    work: object
    bars: tuple | None = None
    saves: tuple | None = None  # (pattern of a stored result's name, units per save): rate from the intervals


def profile_of(paper: str, profile: str) -> tuple[dict, str]:
    """The profile's settings, or ``paper``'s with a note when the paper has no such profile yet."""
    profiles = PAPER_PROFILES[paper]
    if profile in profiles:
        return dict(profiles[profile]), profile
    return dict(profiles["paper"]), f"paper (no `{profile}` profile for {paper} yet)"


def random_images(n: int = 10_000, pixels: int = 784) -> DeviceDataset:
    g = torch.Generator().manual_seed(SEED)
    return DeviceDataset(torch.randn(n, pixels, generator=g), torch.randint(0, 10, (n,), generator=g))


def truncation(rule: torch.nn.Module, task, cfg: MetaTrainConfig):
    """One unit of truncated-BPTT meta-training (what the driver's bar counts): a truncation of ``cfg.unroll`` steps
    of ``cfg.meta_batch`` optimizees, its backward pass and Adam on φ."""
    problem = task.sample(cfg.meta_batch, torch.Generator().manual_seed(SEED))
    adam = torch.optim.Adam(rule.parameters(), lr=cfg.meta_lr)

    def work():
        adam.zero_grad(set_to_none=True)
        TruncatedBPTT(Fixed(problem), cfg).step(rule, torch.Generator().manual_seed(SEED), cfg.unroll)
        adam.step()

    return work


class Linear:
    """A unit of ``steps`` identical optimizee steps, counted as F(1) + (steps − 1)·(F(2) − F(1)) from truncations of
    one and two steps (``make(k)``: the work of a k-step truncation), for loops whose full truncation would hold
    gigabytes of graph (e.g. an LSTM optimizer on 397,510 coordinates); exact when every step does the same products
    (``tests/project/test_phase_times.py`` compares it with the direct count)."""

    def __init__(self, make, steps: int):
        self.one, self.two, self.steps = make(1), make(2), steps


def kuo2020(profile: str):
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.learned_optimizers.mtl2l import AuthorsLSTMOptimizer, MTL2LOptimizer

    cfg, used = profile_of("kuo2020", profile)
    task = ClassifierTask(mlp(784, [cfg["learner_hidden"]], 10, "relu"), random_images(), cfg["batch_size"],
                          init_std=None)
    meta = MetaTrainConfig(steps=cfg["train_steps"], unroll=cfg["unroll"], meta_batch=1, epochs=1,
                           trajectories_per_epoch=cfg["trajectories"], meta_lr=cfg["meta_lr"],
                           clip_value=1.0 if cfg["clamp_meta_gradients"] else None)
    torch.manual_seed(SEED)
    lstm = (AuthorsLSTMOptimizer() if cfg["lstm"] == "authors"
            else LSTMOptimizer(preprocess_p=10.0, output_scale=0.1, init_std=0.1, init="normal"))
    mtl2l = MTL2LOptimizer(cfg["architecture"], momentum=0.0,
                           dropout=(0.1, 0.25, 0.1) if cfg["hyper_dropout"] else (0.0, 0.0, 0.0),
                           perturbation=cfg["perturbation"], perturbation_horizon=cfg["train_steps"], seed=SEED)
    unit = f"one truncation of Ξ = {cfg['unroll']} steps, 1 learner (MLP 784-{cfg['learner_hidden']}-ReLU-10, " \
           f"minibatch {cfg['batch_size']})"
    from l2l_utils.optimizers.baselines import baseline_rule

    hand = ("SGD", "SGD-M", "ADAM")  # the notebook's HAND; their tuned copies run beside them (scenario 1)
    frame_rules = {"LSTM": lstm, "MTL2L": mtl2l, **{h: baseline_rule(h, cfg["baseline_lr"]) for h in hand},
                   **{f"{h} (tuned)": baseline_rule(h, cfg["baseline_lr"]) for h in hand}}
    periods = cfg["test_steps"] // cfg["eval_every"]
    # bars in the notebook's order when nothing is reused: per scenario-1 dataset LSTM then MTL2L; then scenario 2's
    # MTL2L (its LSTM on KMNIST is reused from scenario 1)
    n = len(cfg["datasets_s1"])
    return used, [Loop("meta-training LSTM", unit, truncation(lstm, task, meta), tuple(range(0, 2 * n, 2))),
                  Loop("meta-training MTL2L", unit, truncation(mtl2l, task, meta),
                       tuple(range(1, 2 * n, 2)) + (2 * n,)),
                  Loop("meta-testing, a scenario-1 test frame",
                       f"one evaluation period of the frame: {cfg['eval_every']} steps of {cfg['test_runs']} learners "
                       f"(one batch) for each of its {len(frame_rules)} rules (LSTM, MTL2L, 3 baselines, 3 tuned) "
                       f"and their test loss on 10,000 images; {periods} periods per frame",
                       test_steps(frame_rules, task, cfg["eval_every"], cfg["test_runs"]),
                       saves=(r"^s1-.*-test$", periods))]


def test_steps(rules: dict, task, every: int, runs: int):
    """One evaluation period of :func:`l2l_utils.evaluation.comparison.held_out_loss_curves` (Kuo et al. §4's
    curves): ``every`` steps of ``runs`` learners for every rule and one evaluation of the test loss on 10,000
    images, as the difference of 2·every and every steps (both evaluate at step 0)."""
    from l2l_utils.evaluation.comparison import held_out_loss_curves

    test = random_images()
    make = lambda: task.sample(runs, torch.Generator().manual_seed(SEED))  # noqa: E731

    class Difference:
        def __call__(self):
            held_out_loss_curves(rules, make, 2 * every, every, task, test)

        def baseline(self):
            held_out_loss_curves(rules, make, every, every, task, test)

    return Difference()


def andrychowicz2016(profile: str):
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer

    cfg, used = profile_of("andrychowicz2016", profile)
    task = ClassifierTask(mlp(784, [cfg["mnist_hidden"]], 10, "sigmoid"), random_images(), cfg["mnist_batch"])
    meta = MetaTrainConfig(steps=cfg["mnist_steps"], unroll=cfg["mnist_unroll"], meta_batch=cfg["mnist_meta_batch"],
                           meta_lr=cfg["mnist_meta_lr"])
    torch.manual_seed(SEED)
    lstm = LSTMOptimizer(preprocess_p=cfg["preprocess_p"], output_scale=cfg["output_scale"])
    return used, [Loop("meta-training LSTM (MNIST, §3.2)",
                       f"one truncation of {cfg['mnist_unroll']} steps, {cfg['mnist_meta_batch']} optimizee(s) "
                       f"(MLP 784-{cfg['mnist_hidden']}-10 sigmoid, minibatch {cfg['mnist_batch']})",
                       truncation(lstm, task, meta))]


def head_to_head(profile: str):
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer, PerParameterLearningRates
    from l2l_utils.learned_optimizers.mtl2l import MTL2LOptimizer
    from l2l_utils.learned_optimizers.rnnprop import RNNProp
    from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer

    cfg, used = profile_of("head_to_head", profile)
    task = ClassifierTask(mlp(784, [cfg["hidden"]], 10, cfg["activation"]), random_images(), cfg["batch_size"],
                          init_std=cfg["init_std"])
    factories = {  # the notebook's BPTT table (§2), in its order: the bars come in this order
        "L2L LSTM": (lambda: LSTMOptimizer(preprocess_p=10.0, output_scale=0.1, init_std=0.1, init="normal"),
                     cfg["unroll"], None),
        "RNNProp": (lambda: RNNProp(init="authors"), cfg["unroll"], None),
        "SimpleOptimizer": (lambda: SimpleOptimizer(10, mean_over="network", init="pytorch"), cfg["unroll"], None),
        "MTL2L": (lambda: MTL2LOptimizer("paper", momentum=0.0, dropout=(0.1, 0.25, 0.1), perturbation=True,
                                         perturbation_horizon=cfg["train_steps"], seed=SEED), cfg["mtl2l_unroll"], 1.0),
        "Meta-SGD": (lambda: PerParameterLearningRates(task.shapes, cfg["metasgd_init_lr"]), cfg["unroll"], None),
    }
    loops = []
    for index, (name, (make, length, clamp)) in enumerate(factories.items()):
        torch.manual_seed(SEED)
        meta = MetaTrainConfig(steps=cfg["train_steps"], unroll=length, meta_batch=1, meta_lr=cfg["meta_lr"],
                               clip_value=clamp)
        loops.append(Loop(f"meta-training {name}", f"one truncation of {length} steps, 1 optimizee (MLP "
                          f"784-{cfg['hidden']}-10 {cfg['activation']}, minibatch {cfg['batch_size']}; the "
                          "notebook's meta-loss weights/terms are element-wise and not built here)",
                          truncation(make(), task, meta), (index,)))
    return used, loops


def simple_optimizer(profile: str):
    from dataclasses import replace

    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.learned_optimizers.rnnprop import RNNProp
    from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer

    cfg, used = profile_of("simple_optimizer", profile)
    init_std = None if cfg["optimizee_init"] == "pytorch" else cfg["optimizee_init_std"]
    task = ClassifierTask(mlp(784, [cfg["train_hidden"]], 10, "relu"), random_images(), cfg["batch_size"], init_std)
    meta = MetaTrainConfig(steps=cfg["train_steps"], unroll=cfg["unroll"], meta_batch=cfg["meta_batch"],
                           meta_lr=cfg["meta_lr"])
    factories = {  # the notebook's VARIANTS (§3) that train distinct networks, in its order (four SimpleOptimizer
        # variants first: bars 0-3, then DMOptimizer 4, RNNProp 5)
        "SimpleOptimizer": (lambda: SimpleOptimizer(cfg["hidden_size"], mean_over=cfg["mean_over"],
                                                    init=cfg["simple_init"]), (0,)),
        "DMOptimizer": (lambda: LSTMOptimizer(preprocess_p=10.0, output_scale=cfg["dm_output_scale"],
                                              init_std=cfg["lstm_init_std"], init=cfg["lstm_init"]), (4,)),
        "RNNProp": (lambda: RNNProp(init=cfg["rnnprop_init"]), (5,)),
    }
    loops = []
    for name, (make, bars) in factories.items():
        torch.manual_seed(SEED)
        rule = make()
        loops.append(Loop(f"meta-training {name}", f"one truncation of {cfg['unroll']} steps, {cfg['meta_batch']} "
                          f"optimizee(s) (MLP 784-{cfg['train_hidden']}-ReLU-10, minibatch {cfg['batch_size']}; "
                          "counted from 1- and 2-step truncations; RNNProp's scaled and convex-mixed training task "
                          "and the meta-loss weights are element-wise and not built)",
                          Linear(lambda k, rule=rule: truncation(rule, task, replace(meta, steps=k, unroll=k)),
                                 cfg["unroll"]), bars))
    return used, loops


LOOPS = {"kuo2020_mtl2l": ("kuo2020", kuo2020), "andrychowicz2016_l2l": ("andrychowicz2016", andrychowicz2016),
         "head_to_head": ("head_to_head", head_to_head),
         "simple_optimizer": ("simple_optimizer", simple_optimizer)}
NOT_BUILT = {
    "huisman2022_turtle": "not built yet: episodic meta-training (bench_turtle.py times one meta-iteration)",
    "metamd": "not built yet: MetaMD's hypergradients (bench_metamd.py counts one unrolled hypergradient)",
}


def flops_per_unit(work) -> int:
    """FLOPs of one unit; a :func:`test_steps` unit is the difference of its two lengths (what one more evaluation
    period adds); a :class:`Linear` unit is extrapolated from one and two steps."""
    if isinstance(work, Linear):
        work.one()  # warm-up
        one, two = count_flops(work.one), count_flops(work.two)
        return one + (work.steps - 1) * (two - one)
    if hasattr(work, "baseline"):
        return count_flops(work) - count_flops(work.baseline)
    work()  # warm-up (lazily built state)
    return count_flops(work)


def bar_rates(report) -> list[float | None]:
    """Units per second of every meta-training bar of an executed notebook (a :mod:`phase_times` report), in
    order; None for a bar too short to give one (under a second, or no units: a resumed bar that was done), so that
    the indices stay those of the bars."""
    from phase_times import META_BARS

    return [b.units / b.elapsed if b.elapsed > 0 and b.units > 0 else None
            for b in report.bars if META_BARS.search(b.desc)]


def save_rate(report, pattern: str, units_per_save: int) -> tuple[float, int] | None:
    """Units per second over the intervals closed by the stored results matching ``pattern`` (made by this run),
    and how many there were."""
    import re

    seconds = [s for c in report.cells for name, _, _, s in c.saves if re.search(pattern, name) and s > 0]
    return (units_per_save * len(seconds) / sum(seconds), len(seconds)) if seconds else None


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebook", required=True, choices=sorted(set(LOOPS) | set(NOT_BUILT)))
    p.add_argument("--profile", default="cpu")
    p.add_argument("--run", type=Path, help="the executed notebook whose progress bars give the rates")
    p.add_argument("--rate", action="append", default=[], metavar="LOOP=UNITS_PER_S",
                   help="a measured rate for a loop (its name as printed), instead of the bars")
    p.add_argument("--threads", type=int, default=2, help="threads for the peak (default 2: the machine's cores)")
    p.add_argument("--peak-gflops", type=float, help="the peak, if measured before (skips the measurement)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.notebook in NOT_BUILT:
        print(f"{args.notebook}: {NOT_BUILT[args.notebook]}")
        return []
    rates = {}
    for item in args.rate:
        name, _, value = item.rpartition("=")
        if not name:
            p.error(f"--rate wants LOOP=UNITS_PER_S, got {item!r}")
        rates[name] = float(value)
    torch.manual_seed(SEED)
    paper, build = LOOPS[args.notebook]
    used, loops = build(args.profile)
    print(f"{args.notebook}: profile {used}")
    report = None
    if args.run:
        from phase_times import analyse

        report = analyse(args.run)
    bars = bar_rates(report) if report else []
    if args.run:
        print(f"  {len(bars)} meta-training bars in {args.run}: "
              + ", ".join("too short" if r is None else f"{r:.3f}/s" for r in bars))
        for flag in report.flags:
            print(f"  note: {flag}")
    peak = None
    if args.peak_gflops:
        peak = args.peak_gflops * 1e9
    elif args.run or rates:
        torch.set_num_threads(args.threads)
        peak = matmul_rate(torch.device("cpu"))
        print(f"  peak: float32 4096² matrix product, {args.threads} thread(s): {peak / 1e9:.1f} GFLOP/s")
    torch.set_num_threads(1)
    rows = []
    for loop in loops:
        flops = flops_per_unit(loop.work)
        row = {"notebook": args.notebook, "profile": used, "loop": loop.name, "unit": loop.unit,
               "gflop_per_unit": flops / 1e9}
        rate, source = rates.get(loop.name), "--rate"
        # a run still going has the first bars only
        present = [i for i in (loop.bars or ()) if i < len(bars) and bars[i] is not None]
        if rate is None and present:
            chosen = [bars[i] for i in present]
            rate, source = sum(chosen) / len(chosen), f"mean of bars {present} of {list(loop.bars)}"
        if rate is None and loop.saves and report is not None:
            found = save_rate(report, *loop.saves)
            if found:
                rate, source = found[0], f"{found[1]} stored result(s) {loop.saves[0]}, {loop.saves[1]} units each"
        if rate is not None:
            row.update(units_per_s=rate, rate_source=source, gflop_per_s=flops * rate / 1e9)
            if peak:
                row.update(peak_gflop_per_s=peak / 1e9, fraction_of_peak=flops * rate / peak,
                           peak_threads=args.threads)
        rows.append(row)
        line = f"  {loop.name}: {flops / 1e9:.4f} GFLOP per unit ({loop.unit})"
        if rate is not None:
            line += f"; {rate:.3f} units/s ({source}) -> {row['gflop_per_s']:.2f} GFLOP/s"
            if peak:
                line += f", {row['fraction_of_peak']:.3f} of the peak"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
