"""Table 1 of "Learning to Learn with Better Convergence": time per step of SimpleOptimizer, DMOptimizer and RNNProp
(ADAM for reference) on the base MLP (784-500-ReLU-10, 397,510 coordinates, minibatch 128), measured side by side.

The paper gives 1.96 / 21.88 / 37.02 ms per step on unstated hardware, i.e. DMOptimizer 11.2× and RNNProp 18.9×
SimpleOptimizer's time; absolute times depend on the machine, so this reports ratios from one run in which the
optimizers take turns in every repeat (a change of machine load touches all of them). Measured:

1. the update alone (``rule.update`` without a graph: Table 1's "inference speed"), per optimizer;
2. the whole step of an evaluation run (update, then loss and gradient of the next minibatch);
3. with ``--meta``: one truncation of meta-training (``--meta-steps`` optimizee steps forward and backward through
   the optimizer, the shared ``TruncatedBPTT`` estimator), per learned optimizer, and its peak memory (Linux).

    .venv/bin/python benchmarks/bench_simple_optimizer.py --device cpu --threads 1 [--quick] [--meta] [--out b.json]
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from roofline import against_roofline, describe, limits_json, measure_limits  # noqa: E402
from timing import Fixed, argument_parser, finish, parse_checked, start  # noqa: E402
from timing import side_by_side as timing_side_by_side  # noqa: E402

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer  # noqa: E402
from l2l_utils.learned_optimizers.rnnprop import RNNProp  # noqa: E402
from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer  # noqa: E402
from l2l_utils.meta_training.meta_losses import step_weights, term  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.optimizers.baselines import baseline_rule  # noqa: E402
from l2l_utils.optimizers.unroll import unroll  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset, load_image_dataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

PAPER_MS = {"SimpleOptimizer": 1.96, "DMOptimizer": 21.88, "RNNProp": 37.02}
SEED = 0


def rules() -> dict:
    torch.manual_seed(SEED)
    return {"SimpleOptimizer": SimpleOptimizer(), "DMOptimizer": LSTMOptimizer(preprocess_p=10.0, output_scale=0.1),
            "RNNProp": RNNProp(), "ADAM": baseline_rule("ADAM", 1e-3)}


def side_by_side(functions: dict, setups: dict, sync, args) -> dict:
    """Milliseconds per call of every function, the functions taking turns in each of ``args.repeats`` repeats."""
    rows = timing_side_by_side(functions, setups, sync, warmup=args.warmup, repeats=args.repeats,
                               target_s=args.target_s, max_calls=args.max_calls)
    return {name: {"median_ms": 1e3 * r["median_s"], "min_ms": 1e3 * r["min_s"], "max_ms": 1e3 * r["max_s"],
                   "repeats": r["repeats"]} for name, r in rows.items()}


def bench_updates(problem, device, sync, limits, args) -> dict:
    """1. ``rule.update`` alone on the same θ and gradient (no graph)."""
    start_point = unroll(SimpleOptimizer().to(device), problem, 0)
    params, grads = start_point.detached_params, start_point.grads
    functions, setups = {}, {}
    for name, rule in rules().items():
        rule = rule.to(device) if isinstance(rule, torch.nn.Module) else rule
        holder = {}

        def setup(rule=rule, holder=holder):
            holder["state"] = rule.init(params)

        def call(rule=rule, holder=holder):
            with torch.no_grad():
                _, holder["state"] = rule.update(params, grads, holder["state"], 0)

        functions[name], setups[name] = call, setup
    rows = side_by_side(functions, setups, sync, args)
    for name, fn in functions.items():  # the update against the limits (its FLOPs and bytes counted on one more call)
        setups[name]()
        rows[name]["roofline"] = against_roofline(fn, rows[name]["min_ms"] / 1e3, limits)
    return rows


def bench_steps(problem, device, sync, args) -> dict:
    """2. One evaluation step of :func:`l2l_utils.optimizers.unroll.unroll`: the update, then loss and gradient."""
    functions, setups = {}, {}
    for name, rule in rules().items():
        rule = rule.to(device) if isinstance(rule, torch.nn.Module) else rule
        holder = {}

        def setup(rule=rule, holder=holder):
            holder["current"] = unroll(rule, problem, 0)

        def call(rule=rule, holder=holder):
            holder["current"] = unroll(rule, problem, 1, start=holder["current"])

        functions[name], setups[name] = call, setup
    return side_by_side(functions, setups, sync, args)


def bench_meta(problem, device, sync, args) -> dict:
    """3. One truncation of meta-training per learned optimizer (forward and backward through ``meta_steps`` steps)."""
    out = {}
    cfg = MetaTrainConfig(steps=args.meta_steps, unroll=args.meta_steps)
    for name, rule in rules().items():
        if name == "ADAM":
            continue
        rule = rule.to(device)
        options = {"weights": lambda p, n: step_weights("square", n, p), "term": term("difference")}
        estimator = TruncatedBPTT(Fixed(problem), cfg, **options)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sync()
        t0 = time.perf_counter()
        estimate = estimator.step(rule, None, None)
        sync()
        seconds = time.perf_counter() - t0
        rule.zero_grad(set_to_none=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out[name] = {"truncation_s": seconds, "per_step_ms": 1e3 * seconds / args.meta_steps,
                     "failed": estimate.failed, "peak_rss_gb": peak / 2**20, "peak_rss_growth_gb": (peak - before) / 2**20}
    return out


def report(title: str, rows: dict, key: str = "median_ms") -> None:
    base = rows["SimpleOptimizer"][key]
    print(f"\n{title}")
    print(f"   {'optimizer':<16} {'ms':>10} {'× Simple':>9} {'paper ms':>9} {'paper ×':>8}")
    for name, row in rows.items():
        paper = PAPER_MS.get(name)
        print(f"   {name:<16} {row[key]:>10.2f} {row[key] / base:>8.1f}x "
              + (f"{paper:>9.2f} {paper / PAPER_MS['SimpleOptimizer']:>7.1f}x" if paper else f"{'':>9} {'':>8}"))


def parse_args(argv=None):
    p = argument_parser(__doc__, quick_help="fewer repeats (about a minute on one CPU thread)")
    p.add_argument("--meta", action="store_true", help="also time one truncation of meta-training per optimizer")
    p.add_argument("--meta-steps", type=int, default=20, help="truncation length for --meta (default 20, §4)")
    p.add_argument("--hidden", type=int, default=500, help="hidden units of the MLP (default 500: the base MLP)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=None, help="data root (default: $L2L_DATA_DIR, else <project>/data)")
    args = parse_checked(p, argv, ("threads", "repeats", "meta_steps", "hidden", "batch_size"))
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.warmup, args.target_s, args.max_calls = (1, 0.0, 1) if args.quick else (2, 0.5, 20)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, sync, env = start(args.device, args.threads, f"{'quick' if args.quick else 'full'} run, "
                                                         f"repeats {args.repeats}")
    began = time.perf_counter()
    data = DeviceDataset.from_image_data(load_image_dataset("MNIST", "train", args.data_dir), device, flatten=True)
    task = ClassifierTask(mlp(784, [args.hidden], 10, "relu"), data, args.batch_size, init_std=None)
    problem = task.sample(1, torch.Generator().manual_seed(SEED))
    print(f"MLP 784-{args.hidden}-10 (ReLU): {task.num_params:,} coordinates, minibatch {args.batch_size}")
    limits = measure_limits(device, sync, args.quick)
    result = {"environment": env, **limits_json(limits), "coordinates": task.num_params,
              "updates": bench_updates(problem, device, sync, limits, args)}
    report("1. update alone (Table 1's time per step)", result["updates"])
    print("   the update against the limits (minimum time; benchmarks/roofline.py):")
    for name, row in result["updates"].items():
        print(f"   {name:<16} {describe(row['roofline'])}")
    result["steps"] = bench_steps(problem, device, sync, args)
    report("2. whole evaluation step (update + loss and gradient)", result["steps"])
    if args.meta:
        result["meta_training"] = bench_meta(problem, device, sync, args)
        print(f"\n3. one truncation of meta-training ({args.meta_steps} steps, forward and backward)")
        for name, row in result["meta_training"].items():
            print(f"   {name:<16} {row['truncation_s']:>8.2f} s ({row['per_step_ms']:.0f} ms/step), peak RSS "
                  f"{row['peak_rss_gb']:.2f} GB")
    return finish(result, env, began, args.out)


if __name__ == "__main__":
    main()
