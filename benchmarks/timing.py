"""Timing helpers shared by the benchmark scripts: warmed-up medians, CUDA sync, machine description."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from l2l_utils.harness.runtime import resolve_device


def argument_parser(doc: str, quick_help: str = "fewer calls per measurement") -> argparse.ArgumentParser:
    """The options every benchmark has: --device, --repeats, --threads, --quick, --out."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<index> (default: auto)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", type=Path, default=None, help="optional JSON file for the results")
    return p


def parse_checked(p: argparse.ArgumentParser, argv=None, positive=("repeats", "threads")) -> argparse.Namespace:
    """Parse, failing with the option's name when a count in ``positive`` is below 1."""
    args = p.parse_args(argv)
    for name in positive:
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def timed_args(argv, doc: str) -> argparse.Namespace:
    """The common options parsed, plus the usual timing settings: 3 repeats with --quick, else 5, as ``args.timing``
    (keyword arguments of :func:`time_per_call` without ``sync``)."""
    args = parse_checked(argument_parser(doc), argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.timing = dict(warmup=1 if args.quick else 2, repeats=args.repeats, target_s=0.3 if args.quick else 1.0,
                       max_calls=20)
    return args


def make_sync(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


class Fixed:
    """A task or sampler that always hands out the same problem, so that a benchmark times fixed work."""

    def __init__(self, item):
        self.item = item

    def sample(self, *args, **kwargs):
        return self.item


def time_per_call(fn, *, warmup: int, repeats: int, sync, target_s: float, max_calls: int,
                  setup=None) -> dict:
    """Median (over ``repeats``) seconds per call of ``fn``.

    After ``warmup`` untimed calls, one timed call calibrates how many calls (1..``max_calls``) make
    a repeat last about ``target_s``; every repeat then times that many calls back to back.
    ``setup`` (untimed) runs before the warm-up and before every repeat, e.g. to reset parameters.
    """
    if setup is not None:
        setup()
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    calls = int(max(1, min(max_calls, round(target_s / max(first, 1e-9)))))
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        samples.append((time.perf_counter() - start) / calls)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "repeats": repeats, "calls_per_repeat": calls}


def side_by_side(functions: dict, setups: dict | None, sync, *, warmup: int, repeats: int, target_s: float,
                 max_calls: int) -> dict:
    """Seconds per call of every function, the functions taking turns in each of ``repeats`` rounds (so that a burst
    of load from other processes hits them alike): the minimum (the least disturbed round), median and maximum."""
    setups = setups or {}
    samples = {name: [] for name in functions}
    for name, fn in functions.items():  # warm-up (allocator, kernels, compilation)
        if name in setups:
            setups[name]()
        for _ in range(warmup):
            fn()
    for _ in range(repeats):
        for name, fn in functions.items():
            t = time_per_call(fn, warmup=0, repeats=1, sync=sync, target_s=target_s, max_calls=max_calls,
                              setup=setups.get(name))
            samples[name].append(t["median_s"])
    return {name: {"min_s": min(v), "median_s": statistics.median(v), "max_s": max(v), "repeats": len(v)}
            for name, v in samples.items()}


def matmul_rate(device: torch.device, size: int = 4096, repeats: int = 3, sync=lambda: None) -> float:
    """The machine's float32 matrix-product rate in FLOP/s (best of ``repeats`` size×size products): the limit the
    fractions below are measured against."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def count_flops(fn) -> int:
    """FLOPs of the matrix products (mm, addmm, bmm, convolutions; forward and backward) one call of ``fn`` performs,
    counted by ``torch.utils.flop_counter.FlopCounterMode``; element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def recorded_products(fn) -> list:
    """The matrix products (mm, addmm, bmm; forward and backward) one call of ``fn`` performs, in order, each as
    (op, operand shapes/strides/dtypes/devices, keyword arguments)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    products = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}
    calls = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in products:
                operands = tuple((a.shape, a.stride(), a.dtype, a.device) for a in args)
                calls.append((func, operands, tuple(sorted((kwargs or {}).items()))))
            return func(*args, **(kwargs or {}))

    with Recorder():
        fn()
    return calls


def products_alone(calls: list):
    """A function doing the products of :func:`recorded_products` and nothing else, on stand-in operands of the same
    shapes and strides, one set per distinct product, so that they stay in cache: the best the products can do."""
    operands = {}
    for _, spec, _ in calls:
        if spec not in operands:
            operands[spec] = [torch.empty_strided(shape, stride, dtype=dtype, device=device).normal_()
                              for shape, stride, dtype, device in spec]
    work = [(func, operands[spec], dict(kwargs)) for func, spec, kwargs in calls]

    def run():
        for func, args, kwargs in work:
            func(*args, **kwargs)

    return run


def at_limit(flops: int, seconds: float, rate: float) -> dict:
    """Throughput and fraction of the limit: the time the counted FLOPs would take at ``rate``, over ``seconds``."""
    return {"gflop": flops / 1e9, "gflop_per_s": flops / seconds / 1e9, "fraction_of_limit": flops / rate / seconds}


def _load_average():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):  # not on every platform
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"device": str(device), "device_name": name, "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "cuda_available": torch.cuda.is_available(),
            "load_average_start": _load_average()}


def start(device_arg: str, threads: int | None, note: str = ""):
    """Resolve the device, set the thread count, print the machine line and warn on a busy CPU.

    Returns ``(device, sync, environment dict)``.
    """
    device = resolve_device(device_arg)
    if threads is not None:
        torch.set_num_threads(threads)
    env = environment(device)
    print(f"device: {env['device']} ({env['device_name']}), torch {env['torch']}, threads {env['threads']}"
          + (f", {note}" if note else ""))
    load = env["load_average_start"]
    if load is not None and device.type == "cpu" and load[0] > (os.cpu_count() or 1) - 0.5:
        print(f"WARNING: 1-min load average {load[0]:.2f} on {os.cpu_count()} CPUs: other processes compete "
              f"for the cores and CPU timings will be inflated (try --threads 1)")
    return device, make_sync(device), env


def finish(result: dict, env: dict, started: float, out=None) -> dict:
    """Record the end load average and total time, print it, and write ``result`` to ``out`` as JSON if given."""
    import json

    env["load_average_end"] = _load_average()
    result["total_s"] = time.perf_counter() - started
    print(f"\ntotal wall time: {result['total_s']:.1f} s")
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    return result
