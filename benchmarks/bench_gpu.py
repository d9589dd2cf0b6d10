"""The L2L learned step and trajectory on a GPU (Andrychowicz et al. 2016, the LSTM optimizer of §3.2), one short run.

1. The GPU's limits, measured now: the float32 matmul rate and the triad bandwidth (``benchmarks/roofline.py``).
2. One learned step (the 5,301-parameter LSTM optimizer, update alone, no graph) compiled with
   ``torch.compile(mode="reduce-overhead")`` (CUDA graphs) against ``torch.optim.Adam(fused=True)`` on the same
   parameters, for MLPs 784-h-10 with h = 20 (15,910 parameters, the paper's), 1,280 (1,017,610) and 12,800
   (10,176,010); the target is a learned step at most 1.5× an Adam step from 1M parameters on.
3. One meta-training trajectory (T = 100, truncations of 20, one optimizee, as ``bench_l2l.py``) with the fused cell,
   eager and compiled (``L2L_COMPILE=1``): seconds and the fraction of the GPU's roofline.

Without a CUDA device it prints a message and exits (status 0). ``--quick`` runs it on the CPU in seconds with small
sizes (a 1024² product, 16 MiB triad arrays, T = 4, only the eager trajectory) and ``torch.compile(backend="eager")``
(no code generation), so that a test exercises the script; its numbers mean nothing. The data are random images of MNIST's shape (60,000 × 784, 10 classes): the cost does not
depend on the pixels, and the GPU machine need not hold the data set.

    .venv/bin/python benchmarks/bench_gpu.py [--device cuda] [--repeats 5] [--out gpu.json]   # a few minutes
    .venv/bin/python benchmarks/bench_gpu.py --quick                                          # CPU, seconds
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from roofline import count_bytes, limits_json, measure_limits, roofline_row  # noqa: E402
from timing import argument_parser, count_flops, finish, parse_checked, side_by_side, start  # noqa: E402

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

SEED = 0
HIDDEN = (20, 1280, 12800)  # 15,910, 1,017,610 and 10,176,010 parameters
TARGET_RATIO = 1.5  # learned step / fused Adam step at >= 1M parameters (the speed issue's target)


def mlp_shapes(hidden: int) -> dict:
    return {"0.weight": (1, hidden, 784), "0.bias": (1, hidden), "2.weight": (1, 10, hidden), "2.bias": (1, 10)}


def compile_step(fn, device: torch.device):
    """CUDA: ``torch.compile(mode="reduce-overhead")`` (inductor kernels replayed as CUDA graphs); CPU (``--quick``):
    ``torch.compile(backend="eager")``, which traces without generating code."""
    if device.type == "cuda":
        return torch.compile(fn, mode="reduce-overhead")
    return torch.compile(fn, backend="eager")


def step_pair(hidden: int, device: torch.device):
    """(learned step, its setup, Adam step, the learned step eager) on the same parameters and gradients."""
    g = torch.Generator().manual_seed(SEED)
    params = {k: (0.01 * torch.randn(s, generator=g)).to(device) for k, s in mlp_shapes(hidden).items()}
    grads = {k: (1e-3 * torch.randn(s, generator=g)).to(device) for k, s in mlp_shapes(hidden).items()}
    torch.manual_seed(SEED)
    rule = LSTMOptimizer(preprocess_p=10.0, output_scale=0.1).to(device)
    rule.requires_grad_(False)

    def learned(p, gr, state):
        return rule.update(p, gr, state, 0)

    compiled = compile_step(learned, device)
    holder = {}

    def setup():
        holder["state"] = rule.init(params)

    def learned_call(fn=compiled):
        if device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs are this call's inputs
        with torch.no_grad():
            _, holder["state"] = fn(params, grads, holder["state"])

    leaves = [v.clone().requires_grad_() for v in params.values()]
    for leaf, gr in zip(leaves, grads.values()):
        leaf.grad = gr
    try:
        adam = torch.optim.Adam(leaves, lr=1e-3, fused=True)
        adam.step()
    except RuntimeError:  # a torch without the fused CPU implementation: the quick check uses foreach
        adam = torch.optim.Adam(leaves, lr=1e-3, foreach=True)
    return learned_call, setup, adam.step, (lambda: learned_call(learned)), sum(v.numel() for v in params.values())


def bench_steps(device, sync, limits, args) -> list[dict]:
    rows = []
    for hidden in args.hidden:
        learned_call, setup, adam_step, eager_call, n = step_pair(hidden, device)
        times = side_by_side({"learned, compiled": learned_call, "learned, eager": eager_call, "Adam (fused)": adam_step},
                             {"learned, compiled": setup, "learned, eager": setup}, sync, warmup=args.warmup,
                             repeats=args.repeats, target_s=args.target_s, max_calls=args.max_calls)
        setup()
        counted = roofline_row(count_flops(eager_call), count_bytes(eager_call), times["learned, eager"]["min_s"],
                               limits)
        ms = {name: 1e3 * t["min_s"] for name, t in times.items()}
        rows.append({"hidden": hidden, "parameters": n, **{f"{k} ms": v for k, v in ms.items()},
                     "ratio": ms["learned, compiled"] / ms["Adam (fused)"],
                     "eager_ratio": ms["learned, eager"] / ms["Adam (fused)"],
                     "eager_roofline": counted["fraction_of_roofline"],
                     "compiled_roofline": counted["fraction_of_roofline"] * ms["learned, eager"] / ms["learned, compiled"]})
    return rows


def bench_trajectory(device, sync, limits, args) -> list[dict]:
    import bench_l2l

    g = torch.Generator().manual_seed(SEED)
    data = DeviceDataset(torch.rand(args.examples, 784, generator=g).to(device),
                         torch.randint(0, 10, (args.examples,), generator=g).to(device))
    task = ClassifierTask(mlp(784, [20], 10, "sigmoid"), data, 128)
    cfg = MetaTrainConfig(steps=args.steps, unroll=min(20, args.steps), meta_batch=1)
    problem = task.sample(1, torch.Generator().manual_seed(SEED))
    runs = {name: bench_l2l.trajectory_runner(bench_l2l.variant(name)(device), problem, cfg)
            for name in args.trajectory_variants}
    switch = {name: (lambda c=bench_l2l.VARIANTS[name][1]: os.environ.__setitem__("L2L_COMPILE", c)) for name in runs}
    for name, run in runs.items():
        switch[name]()
        run()  # warm-up and compilation
    os.environ["L2L_COMPILE"] = "0"
    flops, nbytes = count_flops(runs["fused"]), count_bytes(runs["fused"])
    times = side_by_side(runs, switch, sync, warmup=0, repeats=args.repeats, target_s=0.0, max_calls=1)
    os.environ["L2L_COMPILE"] = "0"
    return [{"variant": name, "seconds": t["min_s"], **roofline_row(flops, nbytes, t["min_s"], limits)}
            for name, t in times.items()]


def parse_args(argv=None):
    p = argument_parser(__doc__, quick_help="CPU, small sizes, no code generation: checks the script in seconds")
    args = parse_checked(p, argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.hidden = (20,) if args.quick else HIDDEN
    args.steps = 4 if args.quick else 100
    args.examples = 1_000 if args.quick else 60_000
    args.trajectory_variants = ("fused",) if args.quick else ("fused", "fused + compiled")  # quick: no inductor
    args.warmup, args.target_s, args.max_calls = (1, 0.0, 1) if args.quick else (3, 0.2, 200)
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.quick:
        args.device = "cpu"
    elif not torch.cuda.is_available() or args.device == "cpu":
        print("bench_gpu.py: no CUDA device here (torch.cuda.is_available() is False); nothing measured. "
              "Run it on a machine with a GPU, or with --quick to check the script on the CPU.")
        return None
    device, sync, env = start(args.device, args.threads, "quick check on the CPU" if args.quick else "GPU run")
    started = time.perf_counter()
    limits = measure_limits(device, sync, elements=2 ** 22 if args.quick else None,
                            matmul_size=1024 if args.quick else 4096)
    steps = bench_steps(device, sync, limits, args)
    print("\n2. One learned step (update alone) vs torch.optim.Adam(fused=True), ms (min of "
          f"{args.repeats}); target: ≤ {TARGET_RATIO}× from 1M parameters on")
    for r in steps:
        print(f"   {r['parameters']:>11,} parameters: learned compiled {r['learned, compiled ms']:.3f} "
              f"({r['ratio']:.2f}×), eager {r['learned, eager ms']:.3f} ({r['eager_ratio']:.2f}×), Adam "
              f"{r['Adam (fused) ms']:.3f}; fraction of the roofline eager {r['eager_roofline']:.2f}, compiled "
              f"{r['compiled_roofline']:.2f} (bytes of the eager operations)")
    trajectory = bench_trajectory(device, sync, limits, args)
    print(f"\n3. One meta-training trajectory (T = {args.steps}, one optimizee, 15,910 coordinates)")
    for r in trajectory:
        print(f"   {r['variant']:<18} {r['seconds']:.3f} s, {r['gflop']:.1f} GFLOP, {r['gbytes']:.1f} GB: "
              f"{r['fraction_of_limit']:.3f} of the matmul limit, {r['fraction_of_roofline']:.3f} of the roofline "
              f"(memory), {r['fraction_of_roofline_in_cache']:.3f} (in-cache triad)")
    result = {"environment": env, "quick": args.quick, **limits_json(limits), "steps": steps,
              "trajectory": trajectory}
    return finish(result, env, started, args.out)


if __name__ == "__main__":
    main()
