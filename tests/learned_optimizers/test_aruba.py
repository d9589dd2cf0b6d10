"""ARUBA / ARUBA++ (Khodak et al. 2019): per-coordinate learning rates on a toy sequence of tasks with two
coordinates, worked by hand."""

import math

import pytest
import torch

from l2l_utils.learned_optimizers.aruba import ArubaRates, ArubaRule
from l2l_utils.optimizers.unroll import unroll


def test_aruba_rates_on_three_tasks_by_hand():
    aruba = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=2.0, power=0.5)
    # task 1 (t = 1): η = sqrt(1·1 / (4·1)) = 0.5 in both coordinates
    assert aruba.rates()["w"].tolist() == pytest.approx([0.5, 0.5])
    # task 1 moved from (0, 0) to (2, 0.5), squared gradients summed (4, 1): B = (2, 0.125), G = (4, 1)
    aruba.observe({"w": torch.tensor([[0.0, 0.0]])}, {"w": torch.tensor([[2.0, 0.5]])}, {"w": torch.tensor([[4.0, 1.0]])})
    r2 = math.sqrt(2)  # t = 2: t^p = √2
    assert aruba.rates()["w"].tolist() == pytest.approx([math.sqrt((r2 + 2) / (4 * r2 + 4)),
                                                         math.sqrt((r2 + 0.125) / (4 * r2 + 1))])
    # task 2 moved from (1, 1) to (1, 3) with squared gradients (0, 8): B = (2, 2.125), G = (4, 9)
    aruba.observe({"w": torch.tensor([[1.0, 1.0]])}, {"w": torch.tensor([[1.0, 3.0]])}, {"w": torch.tensor([[0.0, 8.0]])})
    r3 = math.sqrt(3)
    assert aruba.rates()["w"].tolist() == pytest.approx([math.sqrt((r3 + 2) / (4 * r3 + 4)),
                                                         math.sqrt((r3 + 2.125) / (4 * r3 + 9))])


class _Quadratic:
    """f(w) = ½‖w − c‖², one run; ∇ = w − c."""

    def __init__(self, start, centre):
        self.params0, self.centre = {"w": torch.tensor([start], dtype=torch.float64)}, torch.tensor([centre], dtype=torch.float64)

    def loss(self, params):
        return 0.5 * ((params["w"] - self.centre) ** 2).sum(1)


def test_aruba_rule_fixed_rate_and_aruba_plus_plus_within_task_by_hand():
    aruba = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=1.0, power=0.0).double()
    aruba.observe({"w": torch.zeros(1, 2)}, {"w": torch.tensor([[2.0, 0.0]])}, {"w": torch.tensor([[1.0, 3.0]])})
    # η = sqrt((1 + B)/(1 + G)) = (sqrt(3/2), sqrt(1/4)) = (1.2247, 0.5); lr = 0.5; ∇ at w0 = (1, 1) − 0 = (1, 1)
    run = unroll(ArubaRule(aruba, 0.5), _Quadratic([1.0, 1.0], [0.0, 0.0]), 1)
    assert run.params["w"][0].tolist() == pytest.approx([1 - 0.5 * math.sqrt(1.5), 1 - 0.5 * 0.5])
    # ARUBA++: the first step's denominator also has ∇² = 1: η = (sqrt(3/3), sqrt(1/5)); second step adds the new ∇²
    run = unroll(ArubaRule(aruba, 0.5, online=True), _Quadratic([1.0, 1.0], [0.0, 0.0]), 2)
    w1 = [1 - 0.5 * 1.0, 1 - 0.5 * math.sqrt(1 / 5)]
    w2 = [w1[0] - 0.5 * math.sqrt(3 / (3 + w1[0] ** 2)) * w1[0],
          w1[1] - 0.5 * math.sqrt(1 / (5 + w1[1] ** 2)) * w1[1]]
    assert run.params["w"][0].tolist() == pytest.approx(w2)


def test_aruba_rejects_bad_constants():
    with pytest.raises(ValueError):
        ArubaRates({"w": torch.Size([2])}, epsilon=0.0)
    with pytest.raises(ValueError):
        ArubaRule(ArubaRates({"w": torch.Size([2])}), lr=0.0)


def test_transfer_rates_keeps_matching_accumulators_and_averages_classifier_rows():
    from l2l_utils.learned_optimizers.aruba import transfer_rates

    aruba = ArubaRates({"fc.weight": torch.Size([2, 3]), "fc.bias": torch.Size([2])})
    aruba.observe({"fc.weight": torch.zeros(1, 2, 3), "fc.bias": torch.zeros(1, 2)},
                  {"fc.weight": torch.tensor([[[2.0, 0, 0], [0, 0, 0]]]), "fc.bias": torch.tensor([[2.0, 0.0]])},
                  {"fc.weight": torch.ones(1, 2, 3), "fc.bias": torch.ones(1, 2)})
    new = transfer_rates(aruba, {"fc.weight": torch.Size([4, 3]), "fc.bias": torch.Size([4])})
    B, G = new.accumulators("fc.weight")
    assert torch.equal(B, torch.tensor([[1.0, 0, 0]]).expand(4, 3)) and torch.equal(G, torch.ones(4, 3))
    assert torch.equal(new.accumulators("fc.bias")[0], torch.full((4,), 1.0))
    assert float(new.tasks_seen) == 1
