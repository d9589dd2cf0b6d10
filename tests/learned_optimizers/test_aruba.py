"""ARUBA / ARUBA++ (Khodak et al. 2019): per-coordinate learning rates on a toy sequence of tasks with two
coordinates, worked by hand."""

import math

import pytest
import torch

from l2l_utils.learned_optimizers.aruba import ArubaRates, ArubaRule
from l2l_utils.optimizers.unroll import unroll


def test_aruba_rates_on_three_tasks_by_hand():
    # B starts at ε² = 1, G at ζ² = 4; task s adds ½(θ̂ − φ)² + ε²/(s+1)^p to B and Σ∇² + ζ²/(s+1)^p to G (p = ½)
    aruba = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=2.0, power=0.5)
    assert aruba.rates()["w"].tolist() == pytest.approx([0.5, 0.5])  # sqrt(1/4)
    # task 1 moved from (0, 0) to (2, 0.5), squared gradients summed (4, 1)
    aruba.observe({"w": torch.tensor([[0.0, 0.0]])}, {"w": torch.tensor([[2.0, 0.5]])}, {"w": torch.tensor([[4.0, 1.0]])})
    b, g = [1 + 2 + 1 / math.sqrt(2), 1 + 0.125 + 1 / math.sqrt(2)], [4 + 4 + 4 / math.sqrt(2), 4 + 1 + 4 / math.sqrt(2)]
    assert aruba.rates()["w"].tolist() == pytest.approx([math.sqrt(b[0] / g[0]), math.sqrt(b[1] / g[1])])
    # task 2 moved from (1, 1) to (1, 3) with squared gradients (0, 8)
    aruba.observe({"w": torch.tensor([[1.0, 1.0]])}, {"w": torch.tensor([[1.0, 3.0]])}, {"w": torch.tensor([[0.0, 8.0]])})
    b = [b[0] + 0 + 1 / math.sqrt(3), b[1] + 2 + 1 / math.sqrt(3)]
    g = [g[0] + 0 + 4 / math.sqrt(3), g[1] + 8 + 4 / math.sqrt(3)]
    assert aruba.rates()["w"].tolist() == pytest.approx([math.sqrt(b[0] / g[0]), math.sqrt(b[1] / g[1])])
    # two tasks in one call (two runs) add the same as two calls: tasks 3 and 4
    twice = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=2.0, power=0.5)
    once = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=2.0, power=0.5)
    start, end, sq = torch.zeros(2, 2), torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([[1.0, 1.0], [2.0, 5.0]])
    once.observe({"w": start}, {"w": end}, {"w": sq})
    for r in range(2):
        twice.observe({"w": start[r:r + 1]}, {"w": end[r:r + 1]}, {"w": sq[r:r + 1]})
    assert torch.allclose(once.rates()["w"], twice.rates()["w"])


class _Quadratic:
    """f(w) = ½‖w − c‖², one run; ∇ = w − c."""

    def __init__(self, start, centre):
        self.params0, self.centre = {"w": torch.tensor([start], dtype=torch.float64)}, torch.tensor([centre], dtype=torch.float64)

    def loss(self, params):
        return 0.5 * ((params["w"] - self.centre) ** 2).sum(1)


def test_aruba_rule_fixed_rate_and_aruba_plus_plus_within_task_by_hand():
    aruba = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=1.0, power=0.0).double()
    aruba.observe({"w": torch.zeros(1, 2)}, {"w": torch.tensor([[2.0, 0.0]])}, {"w": torch.tensor([[1.0, 3.0]])})
    # B = 1 + ½(4, 0) + 1 = (4, 2), G = 1 + (1, 3) + 1 = (3, 5); lr = 0.5; ∇ at w0 = (1, 1) − 0 = (1, 1)
    eta = [math.sqrt(4 / 3), math.sqrt(2 / 5)]
    run = unroll(ArubaRule(aruba, 0.5), _Quadratic([1.0, 1.0], [0.0, 0.0]), 1)
    assert run.params["w"][0].tolist() == pytest.approx([1 - 0.5 * eta[0], 1 - 0.5 * eta[1]])
    # ARUBA++ with coefficient c: step 1 uses G alone (no gradient of this task yet); step 2's G has c·∇₁² = c·1
    for c in (1.0, 10.0):
        run = unroll(ArubaRule(aruba, 0.5, online=True, coefficient=c), _Quadratic([1.0, 1.0], [0.0, 0.0]), 2)
        w1 = [1 - 0.5 * eta[0], 1 - 0.5 * eta[1]]
        w2 = [w1[0] - 0.5 * math.sqrt(4 / (3 + c)) * w1[0], w1[1] - 0.5 * math.sqrt(2 / (5 + c)) * w1[1]]
        assert run.params["w"][0].tolist() == pytest.approx(w2)


def test_aruba_rejects_bad_constants():
    with pytest.raises(ValueError):
        ArubaRates({"w": torch.Size([2])}, epsilon=0.0)
    with pytest.raises(ValueError):
        ArubaRule(ArubaRates({"w": torch.Size([2])}), lr=0.0)
    with pytest.raises(ValueError):
        ArubaRule(ArubaRates({"w": torch.Size([2])}), lr=0.1, online=True, coefficient=0.0)


def test_transfer_rates_keeps_matching_accumulators_and_averages_classifier_rows():
    from l2l_utils.learned_optimizers.aruba import transfer_rates

    aruba = ArubaRates({"fc.weight": torch.Size([2, 3]), "fc.bias": torch.Size([2])})
    aruba.observe({"fc.weight": torch.zeros(1, 2, 3), "fc.bias": torch.zeros(1, 2)},
                  {"fc.weight": torch.tensor([[[2.0, 0, 0], [0, 0, 0]]]), "fc.bias": torch.tensor([[2.0, 0.0]])},
                  {"fc.weight": torch.ones(1, 2, 3), "fc.bias": torch.ones(1, 2)})
    new = transfer_rates(aruba, {"fc.weight": torch.Size([4, 3]), "fc.bias": torch.Size([4])})
    B, G = new.accumulators("fc.weight")
    # defaults ε = ζ = p = 1: B = 1 + ½ disp² + 1/2 (rows (3.5, 1.5, 1.5) and (1.5, 1.5, 1.5), averaged), G = 1 + 1 + 1/2
    assert torch.equal(B, torch.tensor([[2.5, 1.5, 1.5]]).expand(4, 3)) and torch.equal(G, torch.full((4, 3), 2.5))
    assert torch.equal(new.accumulators("fc.bias")[0], torch.full((4,), 2.5))
    assert float(new.tasks_seen) == 1
