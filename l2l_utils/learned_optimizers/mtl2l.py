"""MTL2L, the context-aware neural optimiser of Kuo et al. 2020 (Table 1, Eqs. 9-17, App. B.5), and the LSTM
optimiser of the authors' public code it is compared with.

MTL2L is the coordinatewise LSTM optimiser of Andrychowicz et al. whose synapses are W_t = Q Γ_t Pᵀ and
U_t = S Ω_t Jᵀ (Eqs. 13-14): Q, P, S, J fixed orthogonal matrices drawn once with ``scipy.stats.ortho_group``
(App. B.5.1) and saved with the model, Γ_t = diag(N⁽¹⁾(x_t)) and Ω_t = diag(N⁽²⁾(x_t)) produced by hypernetworks
from the minibatch x_t behind the current gradient (Eqs. 15-16), in scenario 2 smoothed by Eq. 17,
N_t = 0.9 N_{t−1} + 0.1 MLP(x_t), N_0 = 0. Everything is per optimizee: a batch of optimizees (the leading run
dimension) never mixes, each run's hypernetworks see only its own minibatch.

Two layouts (``architecture``):

* ``"paper"`` — the paper's reading: 2 layers × 20 units (App. B.4), every gate with a bias (Eqs. 9-10), a linear
  head ×0.1 as in Andrychowicz et al. (its bias starts at 0, ours: the paper is silent), four hypernetworks 784-32-ReLU-20 (one per layer and synapse kind,
  App. B.5.2). The paper does not say how a 20×2 input synapse of layer 1 gets 20 singular values; we take the
  authors' answer: a learned bias-free 2→20 projection shared by the gates, then a 20×20 SVD synapse.
* ``"authors"`` — the authors' public code: the same first layer but gate biases only on the forget (+1) and input
  (−1) gates; a second layer of one unit whose input synapse of gate g is γ_g·w_g (a learned 20-vector scaled by a
  context value) and whose recurrent synapse is a context scalar; no head, the update is 0.1·h₂; hypernetworks
  784-32-ReLU-{20, 20, 4, 4}; a ReLU keeps the first layer's singular values non-negative.

In both, the singular values are the batch mean of the hypernetwork's output over the images of a run's minibatch
(authors' code; ReLU after the mean), one singular-value vector per synapse kind shared by the four gates (Eq. 15:
one Γ_t), and Eq. 17 acts on all hypernetworks, restarting at 0 for every new optimizee. Training-only noise of
the authors' code, each a switch: dropout 0.1/0.25/0.1 in the hypernetworks, and after every learner step a
perturbation θ ← θ + c·ε, c = max|θ|·(S − t)/S·s with s ∈ {0.025, 0.05} at random (App. B.5.3: "small-sized
perturbations"; sizes from the code).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy.stats import ortho_group
from torch import nn

from ..optimizers.update_rules import AdditiveRule, flatten_coordinates, unflatten_coordinates
from .fused_cells import lstm_pointwise, lstm_step, to_fused_order
from .lstm_optimizer import preprocess_gradient

GATES = ("forget", "input", "candidate", "output")  # the order in which gate parameters are stored (Eqs. 9-10)
FUSED = [GATES.index(name) for name in ("input", "forget", "output", "candidate")]  # the fused cell's order


def orthogonal_draws(count: int, size: int, seed: int) -> torch.Tensor:
    """``count`` orthogonal size×size matrices from ``scipy.stats.ortho_group`` (Haar measure), seeded."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(np.stack([ortho_group.rvs(dim=size, random_state=rng) for _ in range(count)]),
                           dtype=torch.float32)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout with masks from ``generator`` (so a meta-training run is reproducible and resumable)."""
    if p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


class Hypernetwork(nn.Module):
    """N(x_t) (App. B.5.2): an MLP in-32-ReLU-out applied to every image of a run's minibatch, averaged over the
    minibatch: images (runs, batch, ...) -> (runs, out). ``dropout`` (input, hidden, output) acts in training mode."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 32, dropout=(0.0, 0.0, 0.0)):
        super().__init__()
        self.first, self.second = nn.Linear(in_features, hidden), nn.Linear(hidden, out_features)
        self.dropout = tuple(float(p) for p in dropout)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.reshape(images.shape[0], images.shape[1], -1)
        p_in, p_hidden, p_out = self.dropout if self.training else (0.0, 0.0, 0.0)
        x = torch.relu(self.first(_dropout(x, p_in, generator)))
        x = _dropout(self.second(_dropout(x, p_hidden, generator)), p_out, generator)
        return x.mean(1)


class SVDSynapses(nn.Module):
    """The four gates' synapses of one kind (input or recurrent) of one layer: W_g = L_g diag(γ) R_gᵀ (Eqs. 13-14)
    with fixed orthogonal L_g, R_g (buffers in the order of :data:`GATES`: saved and loaded with the model, never
    trained) and singular values γ shared by the gates. Feature-major: ``forward(x (runs, H, coords), γ (runs, H))``
    gives the pre-activations (runs, 4H, coords), W_g x for the gates in the fused order (input, forget, output,
    candidate) of :mod:`l2l_utils.learned_optimizers.fused_cells`."""

    def __init__(self, size: int, seed: int):
        super().__init__()
        draws = orthogonal_draws(8, size, seed)
        self.register_buffer("left", draws[:4].contiguous())
        self.register_buffer("right", draws[4:].contiguous())

    def forward(self, x: torch.Tensor, singular_values: torch.Tensor) -> torch.Tensor:
        runs, H, coords = x.shape
        right, left = self.right[FUSED], self.left[FUSED]
        z = torch.matmul(right.transpose(1, 2).reshape(4 * H, H), x)  # R_gᵀ x for every gate: (runs, 4H, coords)
        z = z * singular_values.repeat(1, 4)[:, :, None]  # diag(γ)
        return torch.matmul(left, z.view(runs, 4, H, coords)).view(runs, 4 * H, coords)  # L_g (·)

    def matrices(self, singular_values: torch.Tensor) -> torch.Tensor:
        """W_g for one run's singular values (H,): (4, H, H) (for checks)."""
        return self.left @ torch.diag_embed(singular_values.expand(4, -1)) @ self.right.transpose(1, 2)


class MTL2LOptimizer(AdditiveRule):
    """The MTL2L update rule (module docstring). ``context.inputs`` must hold each run's minibatch (runs, batch,
    ...); ``momentum`` is Eq. 17's 0.9 (scenario 2) or 0 (scenario 1: N_t = MLP(x_t))."""

    ARCHITECTURES = ("paper", "authors")

    def __init__(self, architecture: str = "paper", hidden_size: int = 20, image_features: int = 784,
                 hyper_hidden: int = 32, preprocess_p: float = 10.0, output_scale: float = 0.1,
                 momentum: float = 0.0, dropout: Sequence[float] = (0.0, 0.0, 0.0), perturbation: bool = False,
                 perturbation_horizon: int = 100, seed: int = 0):
        super().__init__()
        if architecture not in self.ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r}; allowed values are {list(self.ARCHITECTURES)}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        H = hidden_size
        self.architecture, self.hidden_size, self.preprocess_p = architecture, H, preprocess_p
        self.output_scale, self.momentum = output_scale, momentum
        self.perturbation, self.perturbation_horizon = perturbation, perturbation_horizon
        self.projection = nn.Linear(2, H, bias=False)  # layer 1's input, 2 -> H, shared by the gates
        nn.init.uniform_(self.projection.weight, -1 / math.sqrt(H), 1 / math.sqrt(H))  # authors' code
        self.input1, self.recurrent1 = SVDSynapses(H, seed), SVDSynapses(H, seed + 1)
        second = H if architecture == "paper" else 4  # context values per synapse kind of layer 2
        self.hypernets = nn.ModuleList(Hypernetwork(image_features, k, hyper_hidden, dropout) for k in (H, H, second,
                                                                                                        second))
        if architecture == "paper":
            self.input2, self.recurrent2 = SVDSynapses(H, seed + 2), SVDSynapses(H, seed + 3)
            self.bias1, self.bias2 = nn.Parameter(self._gate_bias(H)), nn.Parameter(self._gate_bias(H))
            self.head = nn.Linear(H, 1)
            nn.init.zeros_(self.head.bias)  # ours: a non-zero bias would move every coordinate alike at every step
        else:
            self.input2 = nn.Parameter(torch.empty(4, H).uniform_(-1.0, 1.0))  # authors: nn.Linear(1, H), U(±1)
            self.bias1 = nn.Parameter(torch.tensor([1.0, -1.0])[:, None].repeat(1, H))  # forget +1, input −1
            self.bias2 = nn.Parameter(torch.tensor([[1.0], [-1.0]]))
        self._seed, self._generator = seed, None

    @staticmethod
    def _gate_bias(size: int) -> torch.Tensor:
        """Forget +1, input −1 (the authors' starting values), candidate and output 0."""
        return torch.tensor([1.0, -1.0, 0.0, 0.0])[:, None].repeat(1, size)

    def _full_bias(self, bias: torch.Tensor) -> torch.Tensor:
        return bias if bias.shape[0] == 4 else torch.cat([bias, bias.new_zeros(2, bias.shape[1])])

    # -------------------------------------------------------------------------------------------------- state
    def begin_trajectory(self, generator: torch.Generator) -> None:
        """Seed the training-only noise (dropout, perturbation) from the meta-training stream."""
        self._seed = int(torch.randint(2**62, (1,), generator=generator))
        self._generator = None

    def _noise(self, device) -> torch.Generator:
        if self._generator is None or self._generator.device != torch.device(device):
            self._generator = torch.Generator(device=device).manual_seed(self._seed)
        return self._generator

    def initial_state(self, params, groups=None) -> dict:
        some = next(iter(params.values()))
        runs, coords = some.shape[0], sum(p[0].numel() for p in params.values())
        second = self.hidden_size if self.architecture == "paper" else 1
        zeros = lambda *shape: torch.zeros(*shape, device=some.device, dtype=some.dtype)  # noqa: E731
        return {"h": [zeros(runs, self.hidden_size, coords), zeros(runs, second, coords)],  # feature-major
                "c": [zeros(runs, self.hidden_size, coords), zeros(runs, second, coords)],
                "context": [zeros(runs, net.second.out_features) for net in self.hypernets],  # N_0 = 0 (Eq. 17)
                "t": 0}

    # ------------------------------------------------------------------------------------------------- update
    def context_values(self, images: torch.Tensor, previous: list) -> list:
        """Eqs. 15-17: each hypernetwork's batch mean (ReLU for the singular values that must be non-negative),
        smoothed by N_t = m N_{t−1} + (1 − m) MLP(x_t)."""
        generator = self._noise(images.device) if self.training else None
        values = []
        for k, (net, before) in enumerate(zip(self.hypernets, previous)):
            value = net(images, generator)
            if self.architecture == "paper" or k < 2:
                value = torch.relu(value)
            values.append(self.momentum * before + (1.0 - self.momentum) * value if self.momentum else value)
        return values

    def step_coordinates(self, grads: torch.Tensor, state: dict, values: list) -> tuple[torch.Tensor, dict]:
        """One step on flat coordinates ``grads`` (runs, coords): the update (runs, coords) and the new h, c (each
        (runs, units, coords), feature-major: the gates are fused as in :mod:`l2l_utils.learned_optimizers.fused_cells`)."""
        (h1, h2), (c1, c2) = state["h"], state["c"]
        H = self.hidden_size
        x = torch.matmul(self.projection.weight, preprocess_gradient(grads, self.preprocess_p, dim=1))
        bias1 = self._full_bias(self.bias1)[FUSED].reshape(4 * H, 1)
        h1, c1 = lstm_pointwise(self.input1(x, values[0]) + self.recurrent1(h1, values[1]) + bias1, c1, H)
        if self.architecture == "paper":
            bias2 = self.bias2[FUSED].reshape(4 * H, 1)
            h2, c2 = lstm_pointwise(self.input2(h1, values[2]) + self.recurrent2(h2, values[3]) + bias2, c2, H)
            out = torch.matmul(self.head.weight, h2)[:, 0] + self.head.bias
        else:  # one unit: gate g's input synapse is γ_g·w_g, its recurrent one the scalar ω_g
            pre2 = (torch.matmul(self.input2, h1) * values[2][:, :, None] + h2 * values[3][:, :, None]
                    + self._full_bias(self.bias2))
            h2, c2 = lstm_pointwise(pre2[:, FUSED], c2, 1)
            out = h2[:, 0]
        return out * self.output_scale, {"h": [h1, h2], "c": [c1, c2]}

    def update(self, params, grads, state, t, context=None):
        images = None if context is None else context.inputs
        if images is None:
            raise ValueError("MTL2L needs the minibatch behind each gradient (context.inputs, one per run); "
                             "the problem must record it (ClassifierProblem does)")
        runs = next(iter(params.values())).shape[0]
        if images.shape[0] != runs:
            raise ValueError(f"context.inputs holds {images.shape[0]} minibatches for {runs} runs")
        values = self.context_values(images, state["context"])
        update, cells = self.step_coordinates(flatten_coordinates(grads), state, values)
        new = {k: params[k] + u for k, u in unflatten_coordinates(update, params).items()}
        if self.training and self.perturbation:
            new = self._perturb(new, state["t"])
        return new, {**cells, "context": values, "t": state["t"] + 1}

    def _perturb(self, params: dict, t: int) -> dict:
        """θ ← θ + c·ε, c = max|θ|·(S − t)/S·s per run, s = 0.025 or 0.05 with probability ½ (authors' code)."""
        decay = max(self.perturbation_horizon - t, 0) / self.perturbation_horizon
        if decay == 0.0:
            return params
        some = next(iter(params.values()))
        generator = self._noise(some.device)
        runs = some.shape[0]
        largest = torch.stack([v.detach().abs().reshape(runs, -1).amax(1) for v in params.values()]).amax(0)
        size = torch.where(torch.rand(runs, generator=generator, device=some.device) < 0.5, 0.025, 0.05)
        scale = (largest * decay * size).to(some.dtype)
        return {k: v + scale.view(-1, *[1] * (v.dim() - 1)) * torch.randn(v.shape, generator=generator,
                                                                          device=v.device, dtype=v.dtype)
                for k, v in params.items()}

    # ------------------------------------------------------------------------------------------------- forward
    def forward(self, grads, state, groups=None):  # pragma: no cover - MTL2L needs the context: use update()
        raise TypeError("MTL2L reads the minibatch of each gradient: call update(params, grads, state, t, context)")


class AuthorsLSTMOptimizer(AdditiveRule):
    """The LSTM optimiser of the authors' public code (their baseline): a coordinatewise 2-layer LSTM on Appendix-A
    preprocessed gradients, 20 units then 1 unit, every synapse with a bias plus extra forget (+1) and input (−1)
    biases on the first layer, no head: the update is 0.1·h₂. Initialised as that code: U(±1/√(4H)) for layer 1,
    U(±1/2) for layer 2. 2,052 parameters for H = 20."""

    def __init__(self, hidden_size: int = 20, preprocess_p: float = 10.0, output_scale: float = 0.1):
        super().__init__()
        H = hidden_size
        self.hidden_size, self.preprocess_p, self.output_scale = H, preprocess_p, output_scale
        self.input1, self.recurrent1 = nn.Linear(2, 4 * H), nn.Linear(H, 4 * H)
        self.extra_bias1 = nn.Parameter(torch.tensor([1.0, -1.0])[:, None].repeat(1, H))
        self.input2, self.recurrent2 = nn.Linear(H, 4), nn.Linear(1, 4)
        for layer, bound in ((self.input1, 1 / math.sqrt(4 * H)), (self.recurrent1, 1 / math.sqrt(4 * H)),
                             (self.input2, 0.5), (self.recurrent2, 0.5)):
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)

    def initial_state(self, params, groups=None) -> dict:
        some = next(iter(params.values()))
        n = some.shape[0] * sum(p[0].numel() for p in params.values())  # every coordinate of every run
        zeros = lambda size: torch.zeros(size, n, device=some.device, dtype=some.dtype)  # noqa: E731
        return {"h": [zeros(self.hidden_size), zeros(1)], "c": [zeros(self.hidden_size), zeros(1)]}  # feature-major

    def _layer(self, x, h, c, synapses):
        """One layer through the fused cell (:mod:`l2l_utils.learned_optimizers.fused_cells`): [W_x, W_h], b_x + b_h (+ the extra
        biases), the gate rows put in the fused order."""
        (inputs, recurrent), extra = synapses
        weight = torch.cat([inputs.weight, recurrent.weight], 1)
        bias = inputs.bias + recurrent.bias
        if extra is not None:
            bias = bias + torch.cat([extra.reshape(-1), extra.new_zeros(extra.numel())])
        units = h.shape[0]
        return lstm_step(x, h, c, to_fused_order(weight, GATES, units), to_fused_order(bias, GATES, units)[:, None])

    def update(self, params, grads, state, t, context=None):
        flat = flatten_coordinates(grads)
        runs = flat.shape[0]
        (h1, h2), (c1, c2) = state["h"], state["c"]
        x = preprocess_gradient(flat.reshape(-1), self.preprocess_p, dim=0)
        h1, c1 = self._layer(x, h1, c1, ((self.input1, self.recurrent1), self.extra_bias1))
        h2, c2 = self._layer(h1, h2, c2, ((self.input2, self.recurrent2), None))
        update = (h2[0] * self.output_scale).view(runs, -1)
        new = {k: params[k] + u for k, u in unflatten_coordinates(update, params).items()}
        return new, {"h": [h1, h2], "c": [c1, c2]}

    def forward(self, grads, state, groups=None):  # pragma: no cover - the update works on runs × coordinates
        raise TypeError("call update(params, grads, state, t, context)")


def count_parameters(module: nn.Module) -> int:
    """Learned parameters (the fixed orthogonal matrices are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())
