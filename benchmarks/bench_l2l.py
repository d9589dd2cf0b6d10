"""The L2L hot loops against what the machine can do (Andrychowicz et al. 2016, MNIST MLP of §3.2).

0. The limit: the machine's float32 matrix-product rate (a 4096² product).
1. One meta-training trajectory (MLP 784-20-10 sigmoid, minibatch 128, T = 100, truncations of 20, one optimizee,
   the 5,301-parameter LSTM optimizer, Adam on φ after every truncation): seconds, the FLOPs of its matrix products
   (counted), GFLOP/s and the fraction of the limit, for the replaced implementation (``nn.LSTMCell`` on
   (coordinates, features)), the fused cell, and the fused cell compiled (``L2L_COMPILE=1``); then the same
   trajectory's matrix products alone (recorded, then replayed on stand-in operands that stay in cache, with no
   element-wise work): the ceiling any fusion of the element-wise work could reach with these library products.
2. One learned step (no graph) against one Adam step on the same MLP, 1 and 20 optimizees.
3. A meta-batch of 20 optimizees: all at once, in chunks (``MetaTrainConfig.meta_chunk``), and one at a time:
   seconds per optimizee-step and the peak memory of the stored graph.
4. Data path: a minibatch drawn by index on the device vs a ``torch.utils.data.DataLoader``.

Every measurement is warmed up, synchronised on CUDA and reported as the median over ``--repeats`` repeats.

    .venv/bin/python benchmarks/bench_l2l.py --device cpu [--quick] [--threads 2] [--out bench.json]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import (Fixed, argument_parser, at_limit, count_flops, finish, matmul_rate, parse_checked,  # noqa: E402
                    products_alone, recorded_products, start, time_per_call)

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.optimizers.baselines import baseline_rule  # noqa: E402
from l2l_utils.optimizers.unroll import unroll  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset, load_image_dataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

BATCH_SIZE = 128
SEED = 0
VARIANTS = {"replaced (nn.LSTMCell)": (True, "0"), "fused": (False, "0"), "fused + compiled": (False, "1")}


def new_optimizer(unfused: bool, device) -> LSTMOptimizer:
    torch.manual_seed(SEED)
    return LSTMOptimizer(unfused=unfused, preprocess_p=10.0, output_scale=0.1).to(device)


def variant(name: str):
    """Set the compile switch of ``name`` and return a fresh optimizer factory for it."""
    unfused, compiled = VARIANTS[name]
    os.environ["L2L_COMPILE"] = compiled
    return lambda device: new_optimizer(unfused, device)


def trajectory_runner(optimizer, problem, cfg: MetaTrainConfig):
    """One meta-training trajectory on a fixed problem: every truncation backpropagated, then an Adam step on φ."""
    meta = torch.optim.Adam(optimizer.parameters(), lr=1e-3)

    def run():
        estimator = TruncatedBPTT(Fixed(problem), cfg)
        for _ in range(cfg.truncations):
            meta.zero_grad(set_to_none=True)
            if not estimator.step(optimizer, None, 1).failed:
                meta.step()

    return run


# ------------------------------------------------------------------------------------------- 1. trajectory
def bench_trajectory(task, device, sync, rate, args) -> list[dict]:
    cfg = MetaTrainConfig(steps=args.steps, unroll=args.unroll, meta_batch=1)
    problem = task.sample(1, torch.Generator().manual_seed(SEED))
    rows = []
    for name in VARIANTS:
        make = variant(name)
        run = trajectory_runner(make(device), problem, cfg)
        run()  # warm-up (and compilation)
        flops = count_flops(run)
        seconds = time_per_call(run, sync=sync, warmup=0, repeats=args.repeats, target_s=0.0, max_calls=1)["median_s"]
        rows.append({"variant": name, "seconds": seconds, **at_limit(flops, seconds, rate)})
    os.environ["L2L_COMPILE"] = "0"
    products = products_alone(recorded_products(trajectory_runner(variant("fused")(device), problem, cfg)))
    products()
    seconds = time_per_call(products, sync=sync, warmup=0, repeats=args.repeats, target_s=0.0, max_calls=1)["median_s"]
    rows.append({"variant": "its products alone", "seconds": seconds, **at_limit(count_flops(products), seconds, rate)})
    return rows


# ------------------------------------------------------------------------------------------- 2. steps
def bench_steps(task, device, sync, args) -> list[dict]:
    rows = []
    for n in (1, 20):
        problem = task.sample(n, torch.Generator().manual_seed(SEED + n))
        row = {"optimizees": n, "coordinates": n * task.num_params}
        rules = {name: variant(name)(device) for name in VARIANTS}
        rules["Adam"] = baseline_rule("ADAM", 1e-3)
        for name, rule in rules.items():
            os.environ["L2L_COMPILE"] = VARIANTS.get(name, (False, "0"))[1]
            current = {}

            def reset():
                current["u"] = unroll(rule, problem, 0)

            def step():
                current["u"] = unroll(rule, problem, 1, start=current["u"])

            row[name] = 1e3 * time_per_call(step, setup=reset, sync=sync, warmup=args.warmup_steps,
                                            repeats=args.repeats, target_s=args.target_s,
                                            max_calls=args.max_step_calls)["median_s"]
        os.environ["L2L_COMPILE"] = "0"
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------- 3. meta-batch
def peak_graph_bytes(fn) -> int:
    """Peak bytes of the tensors autograd holds for backward while ``fn`` runs."""
    live, peak = [0], [0]

    class Held:
        def __init__(self, tensor):
            self.tensor, self.size = tensor, tensor.numel() * tensor.element_size()
            live[0] += self.size
            peak[0] = max(peak[0], live[0])

        def __del__(self):
            live[0] -= self.size

    with torch.autograd.graph.saved_tensors_hooks(Held, lambda held: held.tensor):
        fn()
    return peak[0]


def bench_meta_batch(task, device, sync, args) -> list[dict]:
    n, steps = args.meta_n, args.meta_steps
    problem = task.sample(n, torch.Generator().manual_seed(SEED + 100))
    variants = {f"one batch of {n}": (n, [problem]), **{f"chunks of {c}": (c, [problem]) for c in args.chunks},
                f"one at a time ({n} problems)": (1, [problem.select(torch.tensor([i])) for i in range(n)])}
    rows = []
    for name, (chunk, problems) in variants.items():
        cfg = MetaTrainConfig(steps=steps, unroll=steps, meta_batch=len(problems[0].params0["0.weight"]),
                              meta_chunk=chunk)
        optimizer = new_optimizer(False, device)
        runs = [trajectory_runner(optimizer, p, cfg) for p in problems]

        def all_runs():
            for r in runs:
                r()

        all_runs()
        seconds = time_per_call(all_runs, sync=sync, warmup=0, repeats=args.meta_repeats, target_s=0.0,
                                max_calls=1)["median_s"]
        rows.append({"variant": name, "seconds": seconds, "ms_per_optimizee_step": 1e3 * seconds / (n * steps),
                     "peak_graph_mb": peak_graph_bytes(runs[0]) / 2**20})
    return rows


# ----------------------------------------------------------------------------------------------- 4. data
def bench_data(dataset: DeviceDataset, device, sync, args) -> list[dict]:
    gen = torch.Generator(device=device).manual_seed(SEED)
    kw = dict(warmup=args.data_warmup, repeats=args.repeats, sync=sync, target_s=args.target_s,
              max_calls=args.max_data_calls)
    loader = DataLoader(TensorDataset(dataset.inputs, dataset.targets), batch_size=BATCH_SIZE, shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    state = {"it": iter(loader)}

    def next_batch():
        try:
            return next(state["it"])
        except StopIteration:  # new epoch: the reshuffle cost is part of the per-batch average
            state["it"] = iter(loader)
            return next(state["it"])

    rows = [{"method": "DeviceDataset.sample (index on device)",
             "us_per_batch": 1e6 * time_per_call(lambda: dataset.sample(BATCH_SIZE, gen), **kw)["median_s"]},
            {"method": "DataLoader(TensorDataset, shuffle)",
             "us_per_batch": 1e6 * time_per_call(next_batch, **kw)["median_s"]}]
    for row in rows:
        row["relative"] = row["us_per_batch"] / rows[0]["us_per_batch"]
    return rows


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argument_parser(__doc__, quick_help="short trajectories (T = 20), fewer calls")
    p.add_argument("--data-dir", default=None, help="data root (default: $L2L_DATA_DIR, else <project>/data)")
    args = parse_checked(p, argv)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.steps, args.unroll = (20, 20) if args.quick else (100, 20)
    args.meta_n, args.meta_steps, args.chunks = 20, (5 if args.quick else 20), (5,)
    args.meta_repeats = 1
    args.target_s, args.warmup_steps, args.max_step_calls = (0.2, 2, 10) if args.quick else (1.0, 3, 50)
    args.data_warmup, args.max_data_calls = (20, 200) if args.quick else (100, 1000)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, sync, env = start(args.device, args.threads, f"{'quick' if args.quick else 'full'} run")
    started = time.perf_counter()
    rate = matmul_rate(device, sync=sync)
    print(f"\n0. Limit: float32 4096² matrix product at {rate / 1e9:.1f} GFLOP/s")
    data = load_image_dataset("MNIST", "train", data_dir=args.data_dir)
    dataset = DeviceDataset.from_image_data(data, device, flatten=True)
    task = ClassifierTask(mlp(784, [20], 10, "sigmoid"), dataset, BATCH_SIZE)

    trajectory = bench_trajectory(task, device, sync, rate, args)
    print(f"\n1. One meta-training trajectory (T = {args.steps}, truncations of {args.unroll}, one optimizee, "
          f"{task.num_params} coordinates)")
    print(f"   {'variant':<24} {'s':>8} {'GFLOP':>8} {'GFLOP/s':>9} {'of limit':>9}")
    for r in trajectory:
        print(f"   {r['variant']:<24} {r['seconds']:>8.3f} {r['gflop']:>8.1f} {r['gflop_per_s']:>9.1f} "
              f"{r['fraction_of_limit']:>9.2f}")

    steps = bench_steps(task, device, sync, args)
    print("\n2. One step on the MNIST MLP, median ms (ratio to Adam)")
    for r in steps:
        print(f"   {r['optimizees']:>2} optimizee(s): " + ", ".join(
            f"{k} {v:.2f}" + ("" if k == "Adam" else f" ({v / r['Adam']:.1f}×)")
            for k, v in r.items() if k not in ("optimizees", "coordinates")))

    meta = bench_meta_batch(task, device, sync, args)
    print(f"\n3. Meta-training {args.meta_n} optimizees, one truncation of {args.meta_steps} steps each")
    print(f"   {'variant':<28} {'s':>8} {'ms/optimizee-step':>18} {'peak graph MB':>14}")
    for r in meta:
        print(f"   {r['variant']:<28} {r['seconds']:>8.2f} {r['ms_per_optimizee_step']:>18.1f} "
              f"{r['peak_graph_mb']:>14.0f}")

    data_rows = bench_data(dataset, device, sync, args)
    print(f"\n4. Data path, one minibatch of {BATCH_SIZE} from MNIST train; median µs/batch")
    for r in data_rows:
        print(f"   {r['method']:<44} {r['us_per_batch']:>10.1f} ({r['relative']:.1f}×)")
    result = {"environment": env, "quick": args.quick, "matmul_gflop_per_s": rate / 1e9, "trajectory": trajectory,
              "steps": steps, "meta_batch": meta, "data_path": data_rows}
    return finish(result, env, started, args.out)


if __name__ == "__main__":
    main()
