"""The L2L hot loops against what the machine can do (Andrychowicz et al. 2016, MNIST MLP of §3.2).

0. The limits, measured in the same run: the float32 matrix-product rate (a 4096² product) and the memory bandwidth
   (a triad over arrays far larger than the cache, and over arrays of 4 MiB, the size of the loop's tensors, which
   the cache serves); the counting is stated in ``benchmarks/roofline.py``.
1. One meta-training trajectory (MLP 784-20-10 sigmoid, minibatch 128, T = 100, truncations of 20, one optimizee,
   the 5,301-parameter LSTM optimizer, Adam on φ after every truncation): seconds, the FLOPs of its matrix products
   and the bytes its operations move (both counted), the fraction of the matmul limit and of the roofline bound
   max(FLOPs / rate, bytes / bandwidth), for the replaced implementation (``nn.LSTMCell`` on (coordinates,
   features)), the fused cell, and the fused cell compiled (``L2L_COMPILE=1``); the same trajectory's matrix
   products alone; and the operations that hold it back (measured with ``torch.profiler``).
2. Our interface against ``torch.optim``: every hand-designed baseline (SGD, SGD-M, NAG, RMSprop, Adam) through the
   update-rule interface (``baseline_rule``) against the same ``torch.optim`` optimizer (``foreach=True``) stepping
   the same parameters directly: the update alone, and whole steps (update, loss and gradient) through ``unroll``
   against a plain loop (loss, ``backward``, ``step``) on the same problem.
3. The learned step against ``torch.optim.Adam`` (``foreach=True``) on the same parameters, 1 and 20 optimizees: the
   update alone (and its fraction of the roofline) and the whole step.
4. A meta-batch of 20 optimizees: all at once, in chunks (``MetaTrainConfig.meta_chunk``), and one at a time:
   seconds per optimizee-step and the peak memory of the stored graph.
5. Data path: a minibatch drawn by index on the device vs a ``torch.utils.data.DataLoader``.

Every measurement is warmed up and synchronised on CUDA; compared implementations take turns in every repeat, and
the minimum over ``--repeats`` repeats is reported (the least disturbed by other processes; the load average is
printed at the start and end).

    .venv/bin/python benchmarks/bench_l2l.py --device cpu [--quick] [--threads 2] [--out bench.json]
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from roofline import (count_bytes, limits_json, measure_limits, passes, print_passes,  # noqa: E402
                      roofline_row)
from timing import (Fixed, argument_parser, count_flops, finish, parse_checked,  # noqa: E402
                    products_alone, recorded_products, side_by_side, start, time_per_call)

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.optimizers.baselines import TORCH_OPTIMIZERS, baseline_rule  # noqa: E402
from l2l_utils.optimizers.unroll import unroll  # noqa: E402
from l2l_utils.optimizers.update_rules import Context  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset, load_image_dataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

BATCH_SIZE = 128
SEED = 0
VARIANTS = {"replaced (nn.LSTMCell)": (True, "0"), "fused": (False, "0"), "fused + compiled": (False, "1")}
BASELINES = ("SGD", "SGD-M", "NAG", "RMSprop", "ADAM")  # the hand-designed rules of the notebooks from torch.optim


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
def bench_trajectory(task, device, sync, limits, args) -> tuple[list[dict], list[dict]]:
    cfg = MetaTrainConfig(steps=args.steps, unroll=args.unroll, meta_batch=1)
    problem = task.sample(1, torch.Generator().manual_seed(SEED))
    runs, counts = {}, {}
    for name in VARIANTS:
        make = variant(name)
        runs[name] = trajectory_runner(make(device), problem, cfg)
        runs[name]()  # warm-up (and compilation)
        if VARIANTS[name][1] == "0":  # bytes of the operations as written (eager); the compiled cell has the fused's
            counts[name] = (count_flops(runs[name]), count_bytes(runs[name]))
    counts["fused + compiled"] = counts["fused"]
    os.environ["L2L_COMPILE"] = "0"
    products = products_alone(recorded_products(trajectory_runner(variant("fused")(device), problem, cfg)))
    products()
    runs["its products alone"] = products
    counts["its products alone"] = (count_flops(products), count_bytes(products))

    def compile_switch(name):
        return lambda: os.environ.__setitem__("L2L_COMPILE", VARIANTS.get(name, (False, "0"))[1])

    times = side_by_side(runs, {name: compile_switch(name) for name in runs}, sync, warmup=0, repeats=args.repeats,
                         target_s=0.0, max_calls=1)
    os.environ["L2L_COMPILE"] = "0"
    rows = [{"variant": name, "seconds": times[name]["min_s"], "median_s": times[name]["median_s"],
             **roofline_row(*counts[name], times[name]["min_s"], limits)} for name in runs]
    return rows, passes(runs["fused"], limits["cache_bandwidth"])


# ------------------------------------------------------------------------------- 2./3. against torch.optim
def starting_point(problem, device):
    """θ, ∇ and the loss of a problem's first step (a detached copy for every caller)."""
    start = unroll(baseline_rule("SGD", 0.0), problem, 0)
    return start.detached_params, start.grads, start.loss.detach()


def torch_optim_update(name: str, params: dict, grads: dict, lr: float = 1e-3):
    """``torch.optim`` (``foreach=True``) stepping its own copy of ``params`` with ``grads``, driven directly."""
    leaves = [v.clone().requires_grad_() for v in params.values()]
    for leaf, g in zip(leaves, grads.values()):
        leaf.grad = g
    optimizer = TORCH_OPTIMIZERS[name](leaves, lr)
    for group in optimizer.param_groups:
        group["foreach"] = True
    return optimizer.step


def rule_update(rule, params: dict, grads: dict, loss, groups):
    """``rule.update`` alone (no graph), carrying the rule's state from call to call."""
    holder = {"params": {k: v.clone() for k, v in params.items()}}

    def setup():
        holder["state"] = rule.init(holder["params"], Context(groups=groups))

    def call():
        with torch.no_grad():
            out, holder["state"] = rule.update(holder["params"], grads, holder["state"], 0,
                                               Context(loss=loss, groups=groups))
        if not isinstance(rule, torch.nn.Module):  # torch.optim rules update in place; learned ones return new θ
            holder["params"] = out

    return call, setup


def unrolled_steps(rule, problem, steps: int):
    """``steps`` whole steps through ``unroll`` (update, then loss and gradient), continuing from call to call."""
    holder = {}

    def setup():
        holder["u"] = unroll(rule, problem, 0)

    def call():
        holder["u"] = unroll(rule, problem, steps, start=holder["u"])

    return call, setup


def plain_loop(name: str, problem, steps: int, lr: float = 1e-3):
    """The same ``steps`` whole steps as a plain ``torch.optim`` loop: loss, ``backward``, ``step``."""
    holder = {}

    def setup():
        holder["leaves"] = [v.detach().clone().requires_grad_() for v in problem.params0.values()]
        holder["optimizer"] = TORCH_OPTIMIZERS[name](holder["leaves"], lr)
        for group in holder["optimizer"].param_groups:
            group["foreach"] = True

    def call():
        params = dict(zip(problem.params0, holder["leaves"]))
        for _ in range(steps):
            holder["optimizer"].zero_grad(set_to_none=True)
            problem.loss(params).sum().backward()
            holder["optimizer"].step()

    return call, setup


def module_loop(task, problem, steps: int, lr: float = 1e-3):
    """The same steps on the module itself (``nn.Module`` forward, no ``vmap``/``functional_call``), one optimizee:
    what a plain PyTorch training loop with ``torch.optim.Adam`` costs."""
    holder = {}

    def setup():
        holder["model"] = copy.deepcopy(task.module)
        with torch.no_grad():
            for name, p in holder["model"].named_parameters():
                p.copy_(problem.params0[name][0])
        holder["optimizer"] = torch.optim.Adam(holder["model"].parameters(), lr=lr, foreach=True)
        holder["generator"] = torch.Generator(device=task.dataset.device).manual_seed(SEED)

    def call():
        for _ in range(steps):
            x, y = task.dataset.sample(task.batch_size, holder["generator"])
            holder["optimizer"].zero_grad(set_to_none=True)
            F.cross_entropy(holder["model"](x), y).backward()
            holder["optimizer"].step()

    return call, setup


def compare(functions: dict, args, sync) -> dict:
    """Milliseconds per call (minimum over the repeats, the functions taking turns)."""
    calls = {name: fn for name, (fn, _) in functions.items()}
    setups = {name: setup for name, (_, setup) in functions.items() if setup is not None}
    times = side_by_side(calls, setups, sync, warmup=args.warmup_steps, repeats=args.repeats,
                         target_s=args.target_s, max_calls=args.max_step_calls)
    return {name: 1e3 * t["min_s"] for name, t in times.items()}


def bench_interface(task, device, sync, args) -> list[dict]:
    """2. Every baseline through our interface against the same torch.optim optimizer driven directly."""
    problem = task.sample(1, torch.Generator().manual_seed(SEED + 1))
    params, grads, loss = starting_point(problem, device)
    rows = []
    for name in BASELINES:
        functions = {"ours": rule_update(baseline_rule(name, 1e-3), params, grads, loss, problem.groups),
                     "torch.optim": (torch_optim_update(name, params, grads), None),
                     "ours, whole steps": unrolled_steps(baseline_rule(name, 1e-3), problem, args.loop_steps),
                     "torch.optim, whole steps": plain_loop(name, problem, args.loop_steps)}
        if name == "ADAM":
            functions["nn.Module loop"] = module_loop(task, problem, args.loop_steps)
        ms = compare(functions, args, sync)
        rows.append({"rule": name, "update_ms": ms["ours"], "torch_optim_update_ms": ms["torch.optim"],
                     "update_ratio": ms["ours"] / ms["torch.optim"],
                     "step_ms": ms["ours, whole steps"] / args.loop_steps,
                     "torch_optim_step_ms": ms["torch.optim, whole steps"] / args.loop_steps,
                     "step_ratio": ms["ours, whole steps"] / ms["torch.optim, whole steps"]})
        if name == "ADAM":
            rows.append({"rule": "ADAM, one nn.Module (no vmap)", "step_ms": ms["nn.Module loop"] / args.loop_steps,
                         "ours_vs_module": ms["ours, whole steps"] / ms["nn.Module loop"]})
    return rows


def bench_steps(task, device, sync, limits, args) -> list[dict]:
    """3. The learned step against torch.optim.Adam (foreach) on the same parameters, 1 and 20 optimizees."""
    rows = []
    for n in (1, 20):
        problem = task.sample(n, torch.Generator().manual_seed(SEED + n))
        params, grads, loss = starting_point(problem, device)
        functions = {"Adam (torch.optim)": (torch_optim_update("ADAM", params, grads), None),
                     "Adam, whole step (torch.optim)": plain_loop("ADAM", problem, 1)}
        learned = {}
        for name in VARIANTS:
            rule = variant(name)(device)
            learned[name] = rule_update(rule, params, grads, loss, problem.groups)
            functions[name] = learned[name]
            functions[f"{name}, whole step"] = unrolled_steps(rule, problem, 1)
        switches = {name: VARIANTS.get(name.split(",")[0], (False, "0"))[1] for name in functions}
        for name, (fn, setup) in list(functions.items()):  # every call sets its variant's compile switch
            functions[name] = (fn, (lambda s=setup, c=switches[name]: (os.environ.__setitem__("L2L_COMPILE", c),
                                                                        s and s())))
        ms = compare(functions, args, sync)
        os.environ["L2L_COMPILE"] = "0"
        counts = {}
        for name, (call, setup) in learned.items():  # the operations as written (eager); compiled: the fused cell's
            setup()
            counts[name] = (count_flops(call), count_bytes(call)) if VARIANTS[name][1] == "0" else counts["fused"]
        adam = ms["Adam (torch.optim)"]
        row = {"optimizees": n, "coordinates": n * task.num_params, "adam_ms": adam,
               "adam_step_ms": ms["Adam, whole step (torch.optim)"], "learned": {}}
        for name in VARIANTS:
            row["learned"][name] = {"update_ms": ms[name], "update_ratio": ms[name] / adam,
                                    "step_ms": ms[f"{name}, whole step"],
                                    "step_ratio": ms[f"{name}, whole step"] / ms["Adam, whole step (torch.optim)"],
                                    **roofline_row(*counts[name], ms[name] / 1e3, limits)}
        if n == 1:  # which operations hold the learned step back (measured)
            call, setup = learned["fused"]
            setup()
            row["held_back"] = passes(call, limits["cache_bandwidth"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------- 4. meta-batch
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


# ----------------------------------------------------------------------------------------------- 5. data
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
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.steps, args.unroll = (20, 20) if args.quick else (100, 20)
    args.meta_n, args.meta_steps, args.chunks = 20, (5 if args.quick else 20), (5,)
    args.meta_repeats = 1
    args.target_s, args.warmup_steps, args.max_step_calls = (0.2, 2, 10) if args.quick else (0.5, 3, 50)
    args.loop_steps = 10  # whole steps per call in the interface comparison
    args.data_warmup, args.max_data_calls = (20, 200) if args.quick else (100, 1000)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, sync, env = start(args.device, args.threads, f"{'quick' if args.quick else 'full'} run")
    started = time.perf_counter()
    limits = measure_limits(device, sync, args.quick)
    data = load_image_dataset("MNIST", "train", data_dir=args.data_dir)
    dataset = DeviceDataset.from_image_data(data, device, flatten=True)
    task = ClassifierTask(mlp(784, [20], 10, "sigmoid"), dataset, BATCH_SIZE)

    trajectory, held_back = bench_trajectory(task, device, sync, limits, args)
    print(f"\n1. One meta-training trajectory (T = {args.steps}, truncations of {args.unroll}, one optimizee, "
          f"{task.num_params} coordinates); fractions of the matmul limit and of the roofline max(FLOPs / rate, "
          f"bytes / bandwidth) with the memory / in-cache bandwidth")
    print(f"   {'variant':<24} {'s':>7} {'GFLOP':>7} {'GB':>7} {'of matmul':>10} {'of roofline':>12} {'(in cache)':>11}")
    for r in trajectory:
        print(f"   {r['variant']:<24} {r['seconds']:>7.3f} {r['gflop']:>7.1f} {r['gbytes']:>7.1f} "
              f"{r['fraction_of_limit']:>10.2f} {r['fraction_of_roofline']:>12.2f} "
              f"{r['fraction_of_roofline_in_cache']:>11.2f}")
    print("   the fused trajectory's operations by time lost against the in-cache bandwidth (torch.profiler):")
    print_passes(held_back, indent="     ")

    interface = bench_interface(task, device, sync, args)
    print(f"\n2. Our interface vs torch.optim (foreach) on the same parameters, ms (min of {args.repeats}): update "
          f"alone; whole steps (unroll vs a plain loss/backward/step loop, {args.loop_steps} steps per call)")
    for r in interface:
        if "ours_vs_module" in r:
            print(f"   ADAM as a plain nn.Module loop (one optimizee, no vmap/functional_call): step {r['step_ms']:.3f}; "
                  f"ours {r['ours_vs_module']:.2f}× that")
            continue
        print(f"   {r['rule']:<8} update {r['update_ms']:.3f} vs {r['torch_optim_update_ms']:.3f} "
              f"({r['update_ratio']:.2f}×); step {r['step_ms']:.3f} vs {r['torch_optim_step_ms']:.3f} "
              f"({r['step_ratio']:.2f}×)")

    steps = bench_steps(task, device, sync, limits, args)
    print("\n3. The learned step vs torch.optim.Adam (foreach) on the same parameters, ms (ratio); update alone "
          "with its fraction of the roofline (memory / in cache); whole step")
    for r in steps:
        print(f"   {r['optimizees']:>2} optimizee(s), {r['coordinates']:,} coordinates: Adam update {r['adam_ms']:.3f},"
              f" whole step {r['adam_step_ms']:.3f}")
        for name, v in r["learned"].items():
            print(f"      {name:<24} update {v['update_ms']:8.2f} ({v['update_ratio']:5.1f}×, roofline "
                  f"{v['fraction_of_roofline']:.2f} / {v['fraction_of_roofline_in_cache']:.2f}); "
                  f"whole step {v['step_ms']:8.2f} ({v['step_ratio']:5.1f}×)")
        if "held_back" in r:
            print("      the fused step's operations by time lost against the in-cache bandwidth (torch.profiler):")
            print_passes(r["held_back"], indent="        ")

    meta = bench_meta_batch(task, device, sync, args)
    print(f"\n4. Meta-training {args.meta_n} optimizees, one truncation of {args.meta_steps} steps each")
    print(f"   {'variant':<28} {'s':>8} {'ms/optimizee-step':>18} {'peak graph MB':>14}")
    for r in meta:
        print(f"   {r['variant']:<28} {r['seconds']:>8.2f} {r['ms_per_optimizee_step']:>18.1f} "
              f"{r['peak_graph_mb']:>14.0f}")

    data_rows = bench_data(dataset, device, sync, args)
    print(f"\n5. Data path, one minibatch of {BATCH_SIZE} from MNIST train; median µs/batch")
    for r in data_rows:
        print(f"   {r['method']:<44} {r['us_per_batch']:>10.1f} ({r['relative']:.1f}×)")
    result = {"environment": env, "quick": args.quick, **limits_json(limits), "trajectory": trajectory, "held_back": held_back, "interface": interface, "steps": steps,
              "meta_batch": meta, "data_path": data_rows}
    return finish(result, env, started, args.out)


if __name__ == "__main__":
    main()
