"""Problem families that sample optimizees (the networks themselves are in :mod:`l2l_utils.tasks.models`).

A task samples *problems*. A problem holds the initial parameters of ``n`` optimizees as a dict of
tensors with a leading optimizee dimension, and ``loss(params)`` returns one loss per optimizee.
Optimizees are plain ``nn.Module``s evaluated functionally (``torch.func.functional_call`` under
``torch.func.vmap``), so ``n`` optimizees run as one batch and learned optimizers can be
differentiated through them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .datasets import DeviceDataset
from .models import FunctionalNetwork


def gaussian_params(shapes: Mapping[str, torch.Size], n: int, std: float, generator: torch.Generator,
                    device=None) -> dict:
    """IID Gaussian initial values for ``n`` optimizees (§3: "sampled from an IID Gaussian")."""
    return {k: (torch.randn((n, *s), generator=generator) * std).to(device) for k, s in shapes.items()}


def default_init_params(module: nn.Module, n: int, generator: torch.Generator, device=None) -> dict:
    """``n`` fresh draws of the module's own (PyTorch default) initialisation, seeded by ``generator``.

    The global RNG is left untouched (the draws happen inside ``torch.random.fork_rng``).
    """
    draws = []
    for _ in range(n):
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = copy.deepcopy(module).cpu()
            for sub in fresh.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
        draws.append({k: v.detach() for k, v in fresh.named_parameters()})
    return {k: torch.stack([d[k] for d in draws]).to(device) for k in draws[0]}


# --------------------------------------------------------------------------------------------- §3.1
@dataclass
class QuadraticProblem:
    """f(θ) = ||Wθ - y||² for a batch of (W, y) (Andrychowicz et al. §3.1)."""

    W: torch.Tensor  # (n, d, d)
    y: torch.Tensor  # (n, d)
    params0: dict
    groups: dict = field(default_factory=lambda: {"theta": "all"})

    def loss(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        residual = torch.einsum("nij,nj->ni", self.W, params["theta"]) - self.y
        return residual.pow(2).sum(-1)

    def select(self, rows: torch.Tensor) -> "QuadraticProblem":
        """The problem of the runs ``rows`` only (a chunk of a batch of optimizees)."""
        return QuadraticProblem(self.W[rows], self.y[rows], {k: v[rows] for k, v in self.params0.items()},
                                self.groups)


@dataclass
class QuadraticTask:
    """Random d-dimensional quadratics with W, y IID standard Gaussian."""

    dim: int = 10
    init_std: float = 0.01
    device: torch.device | str = "cpu"

    def sample(self, n: int, generator: torch.Generator) -> QuadraticProblem:
        W = torch.randn(n, self.dim, self.dim, generator=generator).to(self.device)
        y = torch.randn(n, self.dim, generator=generator).to(self.device)
        params0 = gaussian_params({"theta": torch.Size([self.dim])}, n, self.init_std, generator, self.device)
        return QuadraticProblem(W, y, params0)


# ------------------------------------------------------------------------------------------ §3.2-3.3
class ClassifierProblem:
    """Cross-entropy of ``n`` classifiers, each on its own random minibatch at every call."""

    def __init__(self, task: "ClassifierTask", params0: dict, generator: torch.Generator,
                 rows: torch.Tensor | None = None, runs: int | None = None):
        self.task, self.params0, self.generator = task, params0, generator
        self.groups = task.groups
        self.last_inputs = None
        self.rows, self.runs = rows, runs  # a chunk: these rows of the draws of a batch of ``runs`` optimizees

    def select(self, rows: torch.Tensor) -> "ClassifierProblem":
        """The problem of the runs ``rows`` only, on the same generator: it draws the whole batch's minibatches and
        keeps its rows, so a chunk sees exactly the minibatches it would see inside the batch (replay the generator
        from the same state for every chunk)."""
        total = next(iter(self.params0.values())).shape[0]
        return ClassifierProblem(self.task, {k: v[rows] for k, v in self.params0.items()}, self.generator,
                                 rows.to(self.task.dataset.device), total)

    def loss(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        n = next(iter(params.values())).shape[0] if self.runs is None else self.runs
        x, y = self.task.dataset.sample(self.task.batch_size, self.generator, num_batches=n, rows=self.rows)
        self.last_inputs = x  # (runs, batch, ...): the minibatch behind the next gradient (a context-aware rule reads it)
        return self.task.network.loss(params, x, y)


class RegularisedProblem:
    """A problem whose loss gets an L2 penalty ½·wd·‖θ‖² per run (weight decay as in torch.optim's SGD)."""

    def __init__(self, problem, weight_decay: float):
        self.problem, self.weight_decay = problem, weight_decay
        self.params0, self.groups = problem.params0, problem.groups

    @property
    def generator(self):
        """The wrapped problem's minibatch stream (replayed by the unrolled MetaMD hypergradient)."""
        return getattr(self.problem, "generator", None)

    @property
    def last_inputs(self):
        return getattr(self.problem, "last_inputs", None)

    def loss(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        penalty = sum(v.pow(2).flatten(1).sum(1) for v in params.values())
        return self.problem.loss(params) + 0.5 * self.weight_decay * penalty


class ClassifierTask:
    """A network trained by minibatch cross-entropy on a dataset held on the device (§3.2, §3.3).

    The only randomness between runs is θ0 and minibatch selection, as in §3.2.
    """

    def __init__(self, module: nn.Module, dataset: DeviceDataset, batch_size: int = 128,
                 init_std: float | None = 0.01, group_fn: Callable | None = None, vectorize: bool = True,
                 start_from_module: bool = False):
        self.module = module.to(dataset.inputs.device)
        self.dataset, self.batch_size, self.init_std = dataset, batch_size, init_std
        self.start_from_module = start_from_module  # θ0 = the module's own weights (fine-tuning, MetaMD A.14)
        self.shapes = {k: p.shape for k, p in self.module.named_parameters()}
        self.groups = group_fn(self.shapes) if group_fn else {k: "all" for k in self.shapes}
        self.network = FunctionalNetwork(self.module, "classification", vectorize)

    def accuracy(self, params: Mapping[str, torch.Tensor], data: DeviceDataset, chunk: int = 2000) -> torch.Tensor:
        """Accuracy of every run (leading dimension of ``params``) on all of ``data``."""
        return self.network.accuracy_on(params, data.inputs, data.targets, chunk)

    def test_loss(self, params: Mapping[str, torch.Tensor], data: DeviceDataset, chunk: int = 2000) -> torch.Tensor:
        """Mean cross-entropy of every run on all of ``data`` (e.g. the whole test set)."""
        return self.network.loss_on(params, data.inputs, data.targets, chunk)

    @property
    def num_params(self) -> int:
        return sum(s.numel() for s in self.shapes.values())

    def sample(self, n: int, generator: torch.Generator) -> ClassifierProblem:
        device = self.dataset.inputs.device
        if self.start_from_module:
            params0 = {k: v.detach().unsqueeze(0).repeat(n, *[1] * v.dim()).to(device)
                       for k, v in self.module.named_parameters()}
        elif self.init_std is None:  # the module's own initialisation (MetaMD: "random weights for base model")
            params0 = default_init_params(self.module, n, generator, device)
        else:
            params0 = gaussian_params(self.shapes, n, self.init_std, generator, device)
        # minibatches are drawn on the data's device by a generator seeded from the problem stream
        seed = int(torch.randint(2**62, (1,), generator=generator))
        return ClassifierProblem(self, params0, torch.Generator(device=device).manual_seed(seed))


class ScaledProblem:
    """f_c(θ) = f(c ⊙ θ) started at θ0 / c, so it starts where ``problem`` starts (Lv et al. 2017, random scaling)."""

    def __init__(self, problem, scales: dict):
        self.problem, self.scales = problem, scales
        self.params0 = {k: v / scales[k] for k, v in problem.params0.items()}
        self.groups = getattr(problem, "groups", None)

    @property
    def generator(self):
        return getattr(self.problem, "generator", None)

    def loss(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.problem.loss({k: v * self.scales[k] for k, v in params.items()})


class RandomlyScaledTask:
    """Problems of ``task`` with every coordinate of every optimizee rescaled by its own c = exp(U[−spread, spread])
    (Lv et al. 2017, §3 "random scaling", spread 3: RNNProp's meta-training trick, applied afresh to every problem
    drawn). θ0 is divided by c (Lv et al.'s public code), so the scaled problem starts at the same loss."""

    def __init__(self, task, spread: float = 3.0):
        if not spread > 0:
            raise ValueError(f"spread must be positive, got {spread!r}")
        self.task, self.spread = task, spread

    def sample(self, n: int, generator: torch.Generator) -> ScaledProblem:
        problem = self.task.sample(n, generator)
        scales = {k: torch.exp((torch.rand(v.shape, generator=generator) * 2 - 1) * self.spread).to(v.device, v.dtype)
                  for k, v in problem.params0.items()}
        return ScaledProblem(problem, scales)


class ConvexMixedProblem:
    """F(θ, x) = f(θ) + weight · (1/n) Σ_i min((c_i·x_i − a_i)², clip): ``problem`` with n extra coordinates x (the
    parameter ``key``) on a randomly scaled, clipped quadratic, started at x = 0 (Lv et al. 2017, "combination with
    convex functions"; their public code, ``optimizee/trivial.py`` ``Square`` and ``optimizee/tricks.py``
    ``Mixed``). ``targets`` a and ``scales`` c are (runs, n). The clip bounds each term at ``clip`` (its gradient is
    0 beyond, as TensorFlow's ``clip_by_value``)."""

    def __init__(self, problem, targets: torch.Tensor, scales: torch.Tensor, weight: float = 1.0, clip: float = 10.0,
                 key: str = "convex"):
        if key in problem.params0:
            raise ValueError(f"the problem already has a parameter called {key!r}")
        self.problem, self.targets, self.scales, self.weight, self.clip, self.key = (
            problem, targets, scales, weight, clip, key)
        self.params0 = {**problem.params0, key: torch.zeros_like(targets)}
        groups = getattr(problem, "groups", None)
        self.groups = None if groups is None else {**groups, key: "all"}

    @property
    def generator(self):
        return getattr(self.problem, "generator", None)

    @property
    def last_inputs(self):
        return getattr(self.problem, "last_inputs", None)

    def convex_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The convex part alone, one value per run."""
        return self.weight * (self.scales * x - self.targets).pow(2).clamp(max=self.clip).mean(-1)

    def loss(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        inner = {k: v for k, v in params.items() if k != self.key}
        return self.problem.loss(inner) + self.convex_loss(params[self.key])


class ConvexMixedTask:
    """Problems of ``task`` combined with a convex function of ``dim`` extra coordinates (Lv et al. 2017, the
    training trick "combination with convex functions": the optimizer always sees a well-conditioned part whose loss
    it can lower, so the meta-gradient does not vanish where the optimizee's does). As in their public code
    (``task_list.py``, task "rnnprop"): dim 20, targets a ~ U[−1, 1], the quadratic's coordinates randomly scaled by
    exp(U[−spread, spread]) with spread 1, each squared term clipped at 10, the two parts added with weight 1 (they
    scale the network's coordinates separately, by exp(U[−3, 3]): wrap ``task`` in
    :class:`RandomlyScaledTask` for that). Fresh a and c for every problem drawn."""

    def __init__(self, task, dim: int = 20, spread: float = 1.0, weight: float = 1.0, clip: float = 10.0,
                 key: str = "convex"):
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim!r}")
        if spread < 0:
            raise ValueError(f"spread must be non-negative, got {spread!r}")
        self.task, self.dim, self.spread, self.weight, self.clip, self.key = task, dim, spread, weight, clip, key

    def sample(self, n: int, generator: torch.Generator) -> ConvexMixedProblem:
        problem = self.task.sample(n, generator)
        like = next(iter(problem.params0.values()))
        targets = torch.rand(n, self.dim, generator=generator) * 2 - 1
        scales = torch.exp((torch.rand(n, self.dim, generator=generator) * 2 - 1) * self.spread)
        return ConvexMixedProblem(problem, targets.to(like.device, like.dtype), scales.to(like.device, like.dtype),
                                  self.weight, self.clip, self.key)


# ------------------------------------------------------------------------------ MetaMD, App. A.1
class MixtureTask:
    """Problems from one of several tasks (datasets or domains), chosen uniformly per call (MetaMD §5.2)."""

    def __init__(self, tasks: Sequence):
        if not tasks:
            raise ValueError("MixtureTask needs at least one task")
        self.tasks = list(tasks)

    def sample(self, n: int, generator: torch.Generator):
        choice = int(torch.randint(len(self.tasks), (1,), generator=generator))
        return self.tasks[choice].sample(n, generator)


class AlternatingTask:
    """Problems from several tasks in turn: the first call gives a problem of ``tasks[0]``, the second of
    ``tasks[1]``, ... (Kuo et al. App. B.5.3: odd trials on Fashion-MNIST, even ones on KMNIST)."""

    def __init__(self, tasks: Sequence):
        if not tasks:
            raise ValueError("AlternatingTask needs at least one task")
        self.tasks, self.calls = list(tasks), 0

    def sample(self, n: int, generator: torch.Generator):
        task = self.tasks[self.calls % len(self.tasks)]
        self.calls += 1
        return task.sample(n, generator)


class ClassSubsetTask:
    """Problems on ``n_classes`` classes of a dataset, drawn afresh at every call and relabelled 0..n_classes − 1
    (MetaMD §5.2, high resolution: "we train the base model on 20 subcategories of each domain which are
    randomly sampled in each outer loop iteration"). ``module`` must have ``n_classes`` outputs."""

    def __init__(self, module: nn.Module, dataset: DeviceDataset, n_classes: int, batch_size: int = 128,
                 vectorize: bool = True):
        self.classes = dataset.targets.unique()
        if not 1 < n_classes <= len(self.classes):
            raise ValueError(f"n_classes must lie in 2..{len(self.classes)} (the dataset's classes), got {n_classes}")
        outputs = [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]
        if outputs and outputs[-1] != n_classes:
            raise ValueError(f"the module has {outputs[-1]} outputs but tasks have n_classes={n_classes}")
        self.module, self.dataset, self.n_classes = module, dataset, n_classes
        self.batch_size, self.vectorize = batch_size, vectorize

    def sample(self, n: int, generator: torch.Generator) -> ClassifierProblem:
        pick = self.classes[torch.randperm(len(self.classes), generator=generator)[:self.n_classes].to(
            self.classes.device)]
        mask = torch.isin(self.dataset.targets, pick)
        lookup = torch.full((int(self.classes.max()) + 1,), -1, dtype=torch.int64, device=self.classes.device)
        lookup[pick] = torch.arange(self.n_classes, device=self.classes.device)
        subset = DeviceDataset(self.dataset.inputs[mask], lookup[self.dataset.targets[mask]])
        task = ClassifierTask(self.module, subset, self.batch_size, init_std=None, vectorize=self.vectorize)
        return task.sample(n, generator)


class LeastSquaresProblem:
    """Over-parameterised linear least squares L(w) = ½‖Xw − y‖²/n for ``runs`` copies of a (1, d) weight ``w``
    (n < d): S = argmin L = {w : Xw = y} is an affine set, and mirror descent with φ(w) = ½wᵀMw started at w1
    converges to the Bregman projection of w1 onto S (Azizan et al., as MetaMD §4.4 uses it), in closed form
    w* = w1 − M⁻¹Xᵀ(XM⁻¹Xᵀ)⁻¹(Xw1 − y). The check that tells which MetaMD hypergradient is right."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, w1: torch.Tensor, runs: int = 1):
        if X.shape[0] >= X.shape[1]:
            raise ValueError(f"needs fewer samples than weights (n < d), got X of shape {tuple(X.shape)}")
        self.X, self.y = X, y
        self.params0 = {"w": w1.reshape(1, 1, -1).expand(runs, 1, -1).clone()}
        self.groups = {"w": "all"}

    def loss(self, params) -> torch.Tensor:
        residual = params["w"][:, 0, :] @ self.X.T - self.y
        return 0.5 * residual.pow(2).mean(-1)

    def projection(self, M: torch.Tensor) -> torch.Tensor:
        """w* for a dense M (d × d), differentiable in M."""
        w1 = self.params0["w"][0, 0]
        Minv_Xt = torch.linalg.solve(M, self.X.T)
        return w1 - Minv_Xt @ torch.linalg.solve(self.X @ Minv_Xt, self.X @ w1 - self.y)


@dataclass
class DiagonalQuadratics:
    """f(θ) = θᵀQθ − bᵀθ with Q = diag(q) (MetaMD §5.1, App. A.1), n problems stacked: q, b, θ1 are (n, d).
    As a problem of :func:`~l2l_utils.optimizers.unroll.unroll` its parameters are ``{"theta": θ}``."""

    q: torch.Tensor
    b: torch.Tensor
    theta1: torch.Tensor

    @property
    def params0(self) -> dict:
        return {"theta": self.theta1}

    def loss(self, theta) -> torch.Tensor:
        theta = theta["theta"] if isinstance(theta, Mapping) else theta
        return (self.q * theta**2).sum(-1) - (self.b * theta).sum(-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        return 2 * self.q * theta - self.b

    @property
    def minimiser(self) -> torch.Tensor:
        return self.b / (2 * self.q)

    def one(self, i: int) -> "DiagonalQuadratics":
        """Problem ``i`` alone (tensors of shape (1, d))."""
        return DiagonalQuadratics(self.q[i:i + 1], self.b[i:i + 1], self.theta1[i:i + 1])

    def gap(self, theta) -> torch.Tensor:
        """f(θ) − f(θ*), the sub-optimality used as stopping criterion."""
        return self.loss(theta) - self.loss(self.minimiser)


@dataclass(frozen=True)
class QuadraticFamily2D:
    """App. A.1: Q00 and Q11 drawn independently from Gaussians (means 0.3 / 14 or 0.02 / 14), b ~ N([1, 1], I),
    a random initial point. The paper gives neither the standard deviations of Q nor the distribution of
    θ1: ours are ``q_rel_std`` × the mean (kept above ``q_floor``) and θ1 ~ N(0, ``init_std``² I)."""

    q_mean: tuple[float, float] = (0.3, 14.0)
    q_rel_std: float = 0.1
    q_floor: float = 1e-3
    init_std: float = 1.0

    def sample(self, n: int, generator: torch.Generator, dtype=torch.float64) -> DiagonalQuadratics:
        mean = torch.tensor(self.q_mean, dtype=dtype)
        q = (mean + self.q_rel_std * mean * torch.randn(n, 2, generator=generator, dtype=dtype)).clamp_min(self.q_floor)
        b = 1.0 + torch.randn(n, 2, generator=generator, dtype=dtype)
        theta1 = self.init_std * torch.randn(n, 2, generator=generator, dtype=dtype)
        return DiagonalQuadratics(q, b, theta1)
