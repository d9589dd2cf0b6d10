"""The benchmarks' limit arithmetic (``benchmarks/timing.py``, ``benchmarks/roofline.py``): the products a workload
performs are recorded in full (forward and backward) and their replay does exactly those FLOPs, so "its products
alone" is the same work; the bytes a workload moves are counted as stated (worked by hand below), and the roofline
fraction is max(FLOPs / rate, bytes / bandwidth) over the measured time."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from roofline import bound, count_bytes, passes, triad_bandwidth  # noqa: E402
from timing import at_limit, count_flops, products_alone, recorded_products, side_by_side  # noqa: E402


def _workload():
    w = torch.randn(8, 5, requires_grad=True)
    x, b = torch.randn(5, 7), torch.randn(8, 1, requires_grad=True)
    (torch.addmm(b, w, x).sigmoid() * 2).sum().backward()  # one product forward, one for w's gradient
    torch.bmm(torch.randn(2, 3, 4), torch.randn(2, 4, 6))


def test_recorded_products_are_every_product_forward_and_backward_and_nothing_else():
    calls = recorded_products(_workload)
    names = [str(func) for func, _, _ in calls]
    assert names == ["aten.addmm.default", "aten.mm.default", "aten.bmm.default"]
    assert [tuple(shape) for shape, *_ in calls[0][1]] == [(8, 1), (8, 5), (5, 7)]
    # by hand: addmm 2·8·5·7, its weight gradient (8×7)·(7×5) 2·8·7·5, bmm 2·(2·3·4·6)
    assert count_flops(_workload) == 560 + 560 + 288


def test_products_alone_do_the_recorded_flops():
    replay = products_alone(recorded_products(_workload))
    assert count_flops(replay) == count_flops(_workload) == 1408


def test_fraction_of_the_limit():
    out = at_limit(flops=2e9, seconds=0.5, rate=8e9)  # 2 GFLOP at 8 GFLOP/s take 0.25 s, done in 0.5 s
    assert out == {"gflop": 2.0, "gflop_per_s": 4.0, "fraction_of_limit": 0.5}


def test_bytes_are_counted_per_operation_as_stated():
    a, b = torch.randn(100, 10), torch.randn(10)

    def work():
        x = a + b  # reads 100·10·4 + 10·4, writes 4,000
        x[:, :5].sigmoid()  # the slice is a view (nothing); sigmoid reads its 500 elements, writes 500: 2,000 + 2,000
        x.t().reshape(-1, 100).contiguous()  # transpose: a view; reshape of a transposed tensor copies: 4,000 + 4,000
        x.mul_(2)  # in place: read 4,000 and write 4,000
        torch.add(a, a, out=x)  # out= is written, not read: 8,000 + 4,000

    assert count_bytes(work) == (4_000 + 40 + 4_000) + (2_000 + 2_000) + 8_000 + 8_000 + (8_000 + 4_000)


def test_views_and_broadcasts_move_nothing_beyond_their_memory():
    x = torch.randn(64, 32)
    assert count_bytes(lambda: (x.t(), x[3:9], x.view(32, 64), x.unsqueeze(0), x.expand(2, 64, 32))) == 0
    column = torch.randn(64, 1)
    # the broadcast operand counts its 64 floats once, not 64 × 32: 256 + 8,192 read, 8,192 written
    assert count_bytes(lambda: x * column.expand(64, 32)) == 256 + 8_192 + 8_192


def test_the_triad_moves_twelve_bytes_per_element_and_its_bandwidth_is_a_rate():
    n = 4096
    b, c, a = torch.rand(n), torch.rand(n), torch.empty(n)
    assert count_bytes(lambda: torch.add(b, c, alpha=3.0, out=a)) == 3 * 4 * n
    torch.testing.assert_close(a, b + 3.0 * c)
    assert 1e6 < triad_bandwidth(torch.device("cpu"), n, repeats=2) < 1e13
    with pytest.raises(ValueError):
        triad_bandwidth(torch.device("cpu"), 0)


def test_the_roofline_bound_is_the_slower_of_compute_and_memory():
    # 2 GFLOP at 8 GFLOP/s take 0.25 s; 3 GB at 6 GB/s take 0.5 s: memory-bound, the bound 0.5 s, done in 1 s
    out = bound(flops=2e9, nbytes=3e9, seconds=1.0, rate=8e9, bandwidth=6e9)
    assert out["bound_by"] == "memory" and out["bound_s"] == 0.5 and out["fraction_of_roofline"] == 0.5
    out = bound(flops=8e9, nbytes=3e9, seconds=2.0, rate=8e9, bandwidth=6e9)  # 1 s of products, 0.5 s of memory
    assert out["bound_by"] == "compute" and out["fraction_of_roofline"] == 0.5


def test_the_passes_are_every_counted_operation_with_its_measured_time():
    x = torch.randn(256, 256)
    rows = passes(lambda: (x.sigmoid() * x).tanh(), bandwidth=1e10, top=10)
    by_op = {r["op"]: r for r in rows}
    assert set(by_op) == {"sigmoid", "mul", "tanh"}
    size = 256 * 256 * 4
    assert by_op["mul"]["mbytes"] * 1e6 == 3 * size and by_op["sigmoid"]["mbytes"] * 1e6 == 2 * size
    assert all(r["ms"] > 0 and r["ms_at_bandwidth"] == pytest.approx(r["mbytes"] * 1e6 / 1e10 * 1e3) for r in rows)


def test_side_by_side_takes_turns_and_reports_the_least_disturbed_round():
    order = []
    out = side_by_side({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, None, lambda: None,
                       warmup=0, repeats=3, target_s=0.0, max_calls=1)
    # per round: one calibrating call and one timed call of each function, the functions taking turns
    assert order == ["a", "a", "b", "b"] * 3
    assert all(r["min_s"] <= r["median_s"] <= r["max_s"] and r["repeats"] == 3 for r in out.values())
