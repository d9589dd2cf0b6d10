"""The roofline shared by the benchmark scripts: the machine's memory bandwidth beside its matrix-product rate, the
bytes a workload moves beside its FLOPs, and the fraction of the bound max(FLOPs / rate, bytes / bandwidth) a
measured time reaches (Williams, Waterman & Patterson 2009, "Roofline").

Counting, stated once here and quoted by every benchmark:

* **bandwidth**: a STREAM-like triad a = b + s·c (``torch.add(b, c, alpha=s, out=a)``) over float32 arrays larger
  than the last-level cache; per element it reads b and c and writes a, 3 × 4 bytes (the write-allocate read of a is
  not counted, as in STREAM); the best of the repeats.
* **bytes moved** by a workload: every ATen operation it dispatches (forward and backward, under a
  ``TorchDispatchMode``) reads each tensor argument once and writes each result once; views (slices, reshapes,
  transposes, expands: no data moved) count nothing, an ``out=`` argument is a write, not a read, an in-place result is
  read and written; a tensor counts min(elements × item size, its storage's size) bytes, so a broadcast (expanded)
  operand counts the memory behind it. This is the traffic of the operations as written, each a pass over memory, as
  eager PyTorch runs them; a fused (compiled) version can move less, and caches can serve some passes faster than the
  triad's memory bandwidth (then the fraction can exceed 1).
* **FLOPs**: those of the matrix products (``torch.utils.flop_counter.FlopCounterMode``, :func:`timing.count_flops`);
  element-wise arithmetic is not counted (memory-bound: its bytes are).
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from timing import at_limit, count_flops, matmul_rate

TRIAD_ELEMENTS = 2 ** 27  # 512 MiB per float32 array, 1.5 GiB for the three: beyond any last-level cache here
CACHE_TRIAD = 2 ** 20  # 4 MiB per array: the size of the hot loops' tensors (e.g. 80 × 15,910 float32 = 5 MB)


def triad_bandwidth(device: torch.device, elements: int = TRIAD_ELEMENTS, repeats: int = 5,
                    sync=lambda: None) -> float:
    """Memory bandwidth in bytes/s: the best of ``repeats`` triads a = b + s·c over ``elements`` float32 numbers,
    counting 3 × 4 bytes per element (read b, read c, write a)."""
    if elements < 1 or repeats < 1:
        raise ValueError(f"elements and repeats must be >= 1, got {elements} and {repeats}")
    b = torch.rand(elements, device=device)
    c = torch.rand(elements, device=device)
    a = torch.empty_like(b)
    torch.add(b, c, alpha=3.0, out=a)  # first touch of a, warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.add(b, c, alpha=3.0, out=a)
        sync()
        best = min(best, time.perf_counter() - start)
    return 3 * 4 * elements / best


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes behind a tensor: its elements, or its storage if smaller (a broadcast view)."""
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


def _is_view(func) -> bool:
    """An operation whose every result aliases an argument without writing it (a view: no data moved)."""
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


class ByteCounter(TorchDispatchMode):
    """Bytes read and written per ATen operation while active (module docstring), summed by operation name."""

    def __init__(self):
        super().__init__()
        self.bytes = defaultdict(int)
        self.calls = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not _is_view(func):
            read = sum(tensor_bytes(t) for t in _tensors(list(args) + [v for k, v in kwargs.items() if k != "out"]))
            written = sum(tensor_bytes(t) for t in _tensors(out))
            name = func.overloadpacket.__name__
            self.bytes[name] += read + written
            self.calls[name] += 1
        return out

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


def count_bytes(fn) -> int:
    """Bytes one call of ``fn`` moves, counted per ATen operation (module docstring)."""
    with ByteCounter() as counter:
        fn()
    return counter.total


def bound(flops: float, nbytes: float, seconds: float, rate: float, bandwidth: float) -> dict:
    """The roofline bound max(FLOPs / rate, bytes / bandwidth) and the fraction of it a measured time reaches."""
    compute_s, memory_s = flops / rate, nbytes / bandwidth
    limit_s = max(compute_s, memory_s)
    return {"gflop": flops / 1e9, "gbytes": nbytes / 1e9, "compute_s": compute_s, "memory_s": memory_s,
            "bound_s": limit_s, "bound_by": "memory" if memory_s >= compute_s else "compute",
            "fraction_of_roofline": limit_s / seconds}


def passes(fn, bandwidth: float, top: int = 6) -> list[dict]:
    """Which operations hold a workload back, measured: for each ATen operation, its calls and bytes (counted as
    above), its own time (``torch.profiler``, self CPU/CUDA time, which adds some overhead per call) and the time its
    bytes would take at ``bandwidth``; the ``top`` operations by time lost (measured − bytes / bandwidth)."""
    from torch.profiler import ProfilerActivity, profile

    with ByteCounter() as counter:
        fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        fn()
    seconds = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            own = event.self_device_time_total if getattr(event, "self_device_time_total", 0) else 0
            seconds[event.key[len("aten::"):]] += (event.self_cpu_time_total + own) / 1e6
    rows = []
    for name, nbytes in counter.bytes.items():
        measured = seconds.get(name, 0.0)
        rows.append({"op": name, "calls": counter.calls[name], "mbytes": nbytes / 1e6, "ms": 1e3 * measured,
                     "ms_at_bandwidth": 1e3 * nbytes / bandwidth, "ms_lost": 1e3 * (measured - nbytes / bandwidth)})
    return sorted(rows, key=lambda r: -r["ms_lost"])[:top]


def print_passes(rows: list[dict], indent: str = "   ") -> None:
    print(f"{indent}{'op':<26} {'calls':>6} {'MB':>9} {'ms':>9} {'ms at bw':>9}")
    for r in rows:
        print(f"{indent}{r['op']:<26} {r['calls']:>6} {r['mbytes']:>9.1f} {r['ms']:>9.1f} {r['ms_at_bandwidth']:>9.1f}")


def measure_limits(device: torch.device, sync=lambda: None, quick: bool = False, elements: int | None = None,
                   matmul_size: int = 4096) -> dict:
    """The machine's limits, measured now: the float32 matmul rate (FLOP/s, ``matmul_size``² products), the triad
    bandwidth over arrays beyond the cache (bytes/s; ``elements`` per array, by default 128 MiB with ``quick``, else
    512 MiB) and over 4 MiB arrays (in cache); printed."""
    elements = elements or (TRIAD_ELEMENTS // 4 if quick else TRIAD_ELEMENTS)
    limits = {"rate": matmul_rate(device, size=matmul_size, sync=sync),
              "bandwidth": triad_bandwidth(device, elements, sync=sync),
              "cache_bandwidth": triad_bandwidth(device, CACHE_TRIAD, repeats=200, sync=sync),
              "triad_mib": elements * 4 / 2 ** 20}
    print(f"\n0. Limits: float32 {matmul_size}² matrix product {limits['rate'] / 1e9:.1f} GFLOP/s; triad a = b + s·c "
          f"(3 × 4 bytes per element) {limits['bandwidth'] / 1e9:.1f} GB/s over arrays of {limits['triad_mib']:.0f} "
          f"MiB, {limits['cache_bandwidth'] / 1e9:.1f} GB/s over arrays of {CACHE_TRIAD * 4 / 2 ** 20:.0f} MiB "
          f"(in cache)")
    return limits


def limits_json(limits: dict) -> dict:
    return {"matmul_gflop_per_s": limits["rate"] / 1e9, "triad_gb_per_s": limits["bandwidth"] / 1e9,
            "triad_in_cache_gb_per_s": limits["cache_bandwidth"] / 1e9, "triad_mib": limits["triad_mib"]}


def roofline_row(flops: float, nbytes: float, seconds: float, limits: dict) -> dict:
    """A workload against the limits: its fraction of the matmul limit, and of the roofline bound with the memory
    and with the in-cache bandwidth."""
    memory = bound(flops, nbytes, seconds, limits["rate"], limits["bandwidth"])
    cache = bound(flops, nbytes, seconds, limits["rate"], limits["cache_bandwidth"])
    return {**at_limit(flops, seconds, limits["rate"]), "gbytes": nbytes / 1e9, "bound_by": memory["bound_by"],
            "fraction_of_roofline": memory["fraction_of_roofline"],
            "fraction_of_roofline_in_cache": cache["fraction_of_roofline"]}


def against_roofline(fn, seconds: float, limits: dict) -> dict:
    """:func:`roofline_row` of one call of ``fn`` taking ``seconds``, its FLOPs and bytes counted (one more call)."""
    return roofline_row(count_flops(fn), count_bytes(fn), seconds, limits)


def describe(row: dict) -> str:
    """One line: GFLOP, GB, fractions of the matmul limit and of the roofline (memory / in cache)."""
    return (f"{row['gflop']:.2f} GFLOP, {row['gbytes']:.2f} GB: {row['fraction_of_limit']:.2f} of the matmul limit, "
            f"{row['fraction_of_roofline']:.2f} / {row['fraction_of_roofline_in_cache']:.2f} of the roofline "
            f"(memory / in cache)")
