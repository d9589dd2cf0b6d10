"""The benchmarks' limit arithmetic (``benchmarks/timing.py``): the products a workload performs are recorded in
full (forward and backward) and their replay does exactly those FLOPs, so "its products alone" is the same work."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from timing import at_limit, count_flops, products_alone, recorded_products  # noqa: E402


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
