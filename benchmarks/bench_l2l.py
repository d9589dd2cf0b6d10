"""Micro-benchmarks of the L2L hot paths (Andrychowicz et al. 2016, MNIST MLP of §3.2).

1. Step time of the learned LSTM optimizer vs one ADAM step on the MNIST MLP (n=1 and n=20 optimizees).
2. Meta-training throughput (optimizee-steps/s) of one truncated-BPTT trajectory (``TruncatedBPTT``): 20
   optimizees as one batch vs the same 20 optimizees one at a time.
3. Data path: a minibatch drawn by index on the device (``DeviceDataset.sample``) vs a
   ``torch.utils.data.DataLoader`` over the same tensors.

Every measurement is warmed up, synchronised on CUDA, timed with ``time.perf_counter`` and reported
as the median over ``--repeats`` repeats.

    .venv/bin/python benchmarks/bench_l2l.py --device cpu [--quick] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from l2l_utils.baselines import baseline_rule  # noqa: E402
from l2l_utils.datasets import DeviceDataset, load_image_dataset  # noqa: E402
from l2l_utils.learned_optimizers import LSTMOptimizer  # noqa: E402
from l2l_utils.models import mlp  # noqa: E402
from l2l_utils.tasks import ClassifierProblem, ClassifierTask  # noqa: E402
from l2l_utils.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.unroll import unroll  # noqa: E402
from timing import Fixed, _load_average, start, time_per_call  # noqa: E402

BATCH_SIZE = 128
SEED = 0


# ------------------------------------------------------------------------------------------ 1. steps
class Stepper:
    """One step of :func:`l2l_utils.unroll.unroll` (no graph): the rule's update, then the loss and its gradient."""

    def __init__(self, rule, problem):
        self.rule, self.problem = rule, problem
        self.reset()

    def reset(self):
        self.current = unroll(self.rule, self.problem, 0)

    def step(self):
        self.current = unroll(self.rule, self.problem, 1, start=self.current)


def bench_steps(task, device, sync, args) -> list[dict]:
    rows = []
    for n in args.step_sizes:
        gen = torch.Generator().manual_seed(SEED + n)
        problem = task.sample(n, gen)
        optimizer = LSTMOptimizer(preprocess_p=10, output_scale=0.1).to(device)
        learned, adam = Stepper(optimizer, problem), Stepper(baseline_rule("ADAM", 1e-3), problem)
        kw = dict(warmup=args.warmup_steps, repeats=args.repeats, sync=sync, target_s=args.target_s,
                  max_calls=args.max_step_calls)
        t_learned = time_per_call(learned.step, setup=learned.reset, **kw)
        t_adam = time_per_call(adam.step, setup=adam.reset, **kw)
        rows.append({"optimizees": n, "coordinates": n * task.num_params,
                     "learned_ms": 1e3 * t_learned["median_s"], "adam_ms": 1e3 * t_adam["median_s"],
                     "ratio": t_learned["median_s"] / t_adam["median_s"],
                     "learned_detail": t_learned, "adam_detail": t_adam})
    return rows


# ---------------------------------------------------------------------------------- 2. meta-training
def bench_meta(task, device, sync, args) -> dict:
    cfg_batch = MetaTrainConfig(steps=args.meta_steps, unroll=args.meta_unroll, meta_batch=args.meta_n)
    cfg_single = MetaTrainConfig(steps=args.meta_steps, unroll=args.meta_unroll, meta_batch=1)
    problem = task.sample(args.meta_n, torch.Generator().manual_seed(SEED + 100))
    # the same optimizees, one problem each (own minibatch stream, as sampling would give them)
    singles = [ClassifierProblem(task, {k: v[i:i + 1] for k, v in problem.params0.items()},
                                 torch.Generator(device=device).manual_seed(SEED + 200 + i))
               for i in range(args.meta_n)]
    optimizer = LSTMOptimizer(preprocess_p=10, output_scale=0.1).to(device)
    meta_opt = torch.optim.Adam(optimizer.parameters(), lr=cfg_batch.meta_lr)
    diverged = {"batched": 0, "one_at_a_time": 0}

    def trajectory(prob, cfg) -> bool:
        """One trajectory on ``prob``: every truncation backpropagated and followed by an Adam step on φ."""
        estimator = TruncatedBPTT(Fixed(prob), cfg)
        for _ in range(cfg.truncations):
            meta_opt.zero_grad(set_to_none=True)
            estimate = estimator.step(optimizer, None, None)
            if estimate.failed:
                return True
            meta_opt.step()
        return False

    def batched():
        diverged["batched"] += trajectory(problem, cfg_batch)

    def one_at_a_time():
        for single in singles:
            diverged["one_at_a_time"] += trajectory(single, cfg_single)

    # warm-up: short trajectories of both shapes (allocator, kernels), then the timed full ones
    warm = MetaTrainConfig(steps=2, unroll=2)
    trajectory(problem, warm)
    trajectory(singles[0], warm)
    kw = dict(warmup=0, repeats=args.meta_repeats, sync=sync, target_s=0.0, max_calls=1)
    t_batched = time_per_call(batched, **kw)
    t_single = time_per_call(one_at_a_time, **kw)
    opt_steps = args.meta_n * args.meta_steps  # optimizee-steps per timed call, in both variants
    return {"optimizees": args.meta_n, "steps": args.meta_steps, "unroll": args.meta_unroll,
            "optimizee_steps_per_call": opt_steps,
            "batched_s": t_batched["median_s"], "one_at_a_time_s": t_single["median_s"],
            "batched_steps_per_s": opt_steps / t_batched["median_s"],
            "one_at_a_time_steps_per_s": opt_steps / t_single["median_s"],
            "speedup": t_single["median_s"] / t_batched["median_s"], "diverged_trajectories": diverged,
            "batched_detail": t_batched, "one_at_a_time_detail": t_single}


# ----------------------------------------------------------------------------------------- 3. data
def bench_data(dataset: DeviceDataset, device, sync, args) -> list[dict]:
    gen = torch.Generator(device=device).manual_seed(SEED)
    kw = dict(warmup=args.data_warmup, repeats=args.repeats, sync=sync, target_s=args.target_s,
              max_calls=args.max_data_calls)

    def device_sample():
        x, y = dataset.sample(BATCH_SIZE, gen)
        return x, y

    def loader_fn(tensors, to_device: bool, pin: bool):
        loader = DataLoader(TensorDataset(*tensors), batch_size=BATCH_SIZE, shuffle=True, num_workers=0,
                            pin_memory=pin, generator=torch.Generator().manual_seed(SEED))
        it = iter(loader)

        def next_batch():
            nonlocal it
            try:
                x, y = next(it)
            except StopIteration:  # new epoch: the reshuffle cost is part of the per-batch average
                it = iter(loader)
                x, y = next(it)
            if to_device:
                x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
            return x, y

        return next_batch

    rows = [{"method": "DeviceDataset.sample (index on device)",
             **_us(time_per_call(device_sample, **kw))},
            {"method": "DataLoader(TensorDataset on device, shuffle)",
             **_us(time_per_call(loader_fn((dataset.inputs, dataset.targets), False, False), **kw))}]
    if device.type == "cuda":
        cpu = (dataset.inputs.cpu(), dataset.targets.cpu())
        rows.append({"method": "DataLoader(TensorDataset on CPU, pinned) + .to(device)",
                     **_us(time_per_call(loader_fn(cpu, True, True), **kw))})
    base = rows[0]["us_per_batch"]
    for row in rows:
        row["relative_to_device_sample"] = row["us_per_batch"] / base
    return rows


def _us(t: dict) -> dict:
    return {"us_per_batch": 1e6 * t["median_s"], "detail": t}


# ------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<index> (default: auto)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median is reported)")
    p.add_argument("--out", type=Path, default=None, help="optional JSON file for the results")
    p.add_argument("--quick", action="store_true", help="short run (< 60 s on 2 CPU cores)")
    p.add_argument("--data-dir", default=None, help="data root (default: $L2L_DATA_DIR, else <project>/data)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy machine")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    # sizes of each measurement. --quick keeps the optimizee problem sizes but times fewer calls and
    # meta-trains on short trajectories (steps = unroll = 5) so that it fits in a minute on 2 CPU cores.
    args.step_sizes = (1, 20)
    args.meta_n = 20
    if args.quick:
        args.repeats = args.repeats or 3
        args.meta_steps = args.meta_unroll = 5
        args.meta_repeats = 1
        args.target_s, args.warmup_steps, args.max_step_calls = 0.2, 2, 20
        args.data_warmup, args.max_data_calls = 20, 200
    else:
        args.repeats = args.repeats or 5
        args.meta_steps = args.meta_unroll = 20
        args.meta_repeats = max(1, min(args.repeats, 2))  # meta-training dominates the run time
        args.target_s, args.warmup_steps, args.max_step_calls = 1.0, 5, 100
        args.data_warmup, args.max_data_calls = 100, 1000
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, sync, env = start(args.device, args.threads,
                              f"{'quick' if args.quick else 'full'} run, repeats {args.repeats}")
    torch.manual_seed(SEED)
    t0 = time.perf_counter()

    data = load_image_dataset("MNIST", "train", data_dir=args.data_dir)
    dataset = DeviceDataset.from_image_data(data, device, flatten=True)  # on the device once
    task = ClassifierTask(mlp(dataset.inputs.shape[1], [20], 10, "sigmoid"), dataset, batch_size=BATCH_SIZE)

    steps = bench_steps(task, device, sync, args)
    print(f"\n1. Step time, MNIST MLP (1x20 sigmoid, {task.num_params} params/optimizee, batch {BATCH_SIZE});"
          f" median ms/step")
    print(f"   {'optimizees':>10} {'coords':>8} {'LSTM opt':>10} {'ADAM':>10} {'LSTM/ADAM':>10}")
    for r in steps:
        print(f"   {r['optimizees']:>10} {r['coordinates']:>8} {r['learned_ms']:>10.3f} {r['adam_ms']:>10.3f}"
              f" {r['ratio']:>9.2f}x")
    print("   (target on GPU: LSTM/ADAM <= 2x)")

    meta = bench_meta(task, device, sync, args)
    print(f"\n2. Meta-training throughput, truncated BPTT (steps={meta['steps']}, unroll={meta['unroll']}),"
          f" {meta['optimizees']} optimizees")
    print(f"   {'variant':<32} {'s/call':>9} {'opt-steps/s':>12}")
    print(f"   {'one batch (meta_batch=' + str(meta['optimizees']) + ')':<32} {meta['batched_s']:>9.3f}"
          f" {meta['batched_steps_per_s']:>12.1f}")
    print(f"   {'one at a time (' + str(meta['optimizees']) + 'x meta_batch=1)':<32}"
          f" {meta['one_at_a_time_s']:>9.3f} {meta['one_at_a_time_steps_per_s']:>12.1f}")
    print(f"   speed-up of batching: {meta['speedup']:.2f}x (target on GPU >= 5x);"
          f" diverged trajectories: {meta['diverged_trajectories']}")

    data_rows = bench_data(dataset, device, sync, args)
    print(f"\n3. Data path, one minibatch of {BATCH_SIZE} from MNIST train ({len(dataset)} examples); median us/batch")
    for r in data_rows:
        print(f"   {r['method']:<56} {r['us_per_batch']:>10.1f} us  ({r['relative_to_device_sample']:.1f}x)")

    total = time.perf_counter() - t0
    print(f"\ntotal wall time: {total:.1f} s")
    env["load_average_end"] = _load_average()
    result = {"environment": env, "quick": args.quick, "repeats": args.repeats,
              "step_time": steps, "meta_training": meta, "data_path": data_rows, "wall_time_s": total}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
