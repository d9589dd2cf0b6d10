"""ARUBA's online pass over the meta-train tasks (Khodak et al. 2019, Algorithm 2): B and G after two tasks, by hand."""

import math

import torch

from l2l_utils.learned_optimizers.aruba import ArubaRates
from l2l_utils.meta_training.aruba_training import fit_aruba


class _Quadratic:
    """f(w) = ½‖w − c‖², one run; ∇ = w − c."""

    def __init__(self, start, centre):
        self.params0, self.centre = {"w": torch.tensor([start], dtype=torch.float64)}, torch.tensor([centre], dtype=torch.float64)

    def loss(self, params):
        return 0.5 * ((params["w"] - self.centre) ** 2).sum(1)


def test_fit_aruba_accumulates_displacements_and_squared_gradients_of_each_task():
    class Task:
        def sample(self, n, generator):
            return _Quadratic([1.0, -2.0], [0.0, 0.0])

    aruba = ArubaRates({"w": torch.Size([2])}, epsilon=1.0, zeta=1.0, power=0.0).double()
    history = fit_aruba(aruba, Task(), tasks=2, inner_steps=1, lr=0.5, progress=False)
    # task 1: B = G = 1, η = 1, one step w = (1, −2) − 0.5·(1, −2) = (0.5, −1): B = 1 + ½(0.25, 1) + 1, G = 1 + (1, 4) + 1
    # task 2: η = (sqrt(2.125/3), sqrt(2.5/6)); w − w0 = −0.5·η·w0, ∇ = w0 = (1, −2)
    eta2 = torch.tensor([math.sqrt(2.125 / 3), math.sqrt(2.5 / 6)], dtype=torch.float64)
    B, G = aruba.accumulators("w")
    disp2 = -0.5 * eta2 * torch.tensor([1.0, -2.0], dtype=torch.float64)
    assert torch.allclose(B, torch.tensor([2.125, 2.5], dtype=torch.float64) + 0.5 * disp2 ** 2 + 1)
    assert torch.allclose(G, torch.tensor([5.0, 11.0], dtype=torch.float64))
    assert len(history) == 2 and float(aruba.tasks_seen) == 2
