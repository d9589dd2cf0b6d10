"""Episodic tasks for few-shot meta-learning (Huisman et al. 2022 §3.1, §5; Finn et al. 2017 §5.1).

A task T_j has a support set D^tr (learned from) and a query set D^te (evaluated on). Samplers
return an :class:`EpisodeBatch` of J tasks stacked along a leading task dimension, so a meta-batch
(or a chunk of evaluation tasks) runs as one batch: :class:`BaseLearner` evaluates one network per
task with ``torch.func.functional_call`` under ``vmap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .tasks import loop_over_runs


@dataclass
class EpisodeBatch:
    """J tasks: support (J, S, ...) and query (J, Q, ...) inputs and targets."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __len__(self) -> int:
        return int(self.support_x.shape[0])

    def slice(self, start: int, stop: int) -> "EpisodeBatch":
        return EpisodeBatch(self.support_x[start:stop], self.support_y[start:stop],
                            self.query_x[start:stop], self.query_y[start:stop])

    def to(self, device) -> "EpisodeBatch":
        return EpisodeBatch(*(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y)))


@dataclass(frozen=True)
class SineTasks:
    """Sine-wave regression (Finn et al. 2017 §5.1): y = A sin(x − φ), A ~ U[0.1, 5], φ ~ U[0, π],
    x ~ U[−5, 5]; ``support`` points to learn from (5-shot) and ``query`` points to evaluate on."""

    support: int = 5
    query: int = 50
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def sample(self, num_tasks: int, generator: torch.Generator, device="cpu") -> EpisodeBatch:
        def uniform(shape, bounds):
            return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(shape, generator=generator)

        amplitude = uniform((num_tasks, 1, 1), self.amplitude)
        phase = uniform((num_tasks, 1, 1), self.phase)
        x = uniform((num_tasks, self.support + self.query, 1), self.x_range)
        y = amplitude * torch.sin(x - phase)
        s = self.support
        return EpisodeBatch(x[:, :s], y[:, :s], x[:, s:], y[:, s:]).to(device)


class FewShotEpisodes:
    """N-way k-shot classification tasks drawn from the given classes of an image set (§3.1).

    Each task picks ``n_way`` distinct classes, then ``k_shot`` support and ``query`` query images per
    class without overlap; labels are renumbered 0..N−1 in a random order per task.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[int], n_way: int,
                 k_shot: int, query: int):
        classes = list(classes)
        if n_way > len(classes):
            raise ValueError(f"n_way={n_way} but only {len(classes)} classes are available")
        self.images, self.n_way, self.k_shot, self.query = images, n_way, k_shot, query
        self.by_class = [torch.nonzero(labels == c).flatten() for c in classes]
        smallest = min(len(i) for i in self.by_class)
        if smallest < k_shot + query:
            raise ValueError(f"k_shot + query = {k_shot + query} images per class needed, but a class has only "
                             f"{smallest}")

    def sample(self, num_tasks: int, generator: torch.Generator, device=None) -> EpisodeBatch:
        per_class = self.k_shot + self.query
        index = torch.empty(num_tasks, self.n_way, per_class, dtype=torch.long)
        for j in range(num_tasks):
            chosen = torch.randperm(len(self.by_class), generator=generator)[: self.n_way]
            for slot, c in enumerate(chosen.tolist()):
                members = self.by_class[c]
                index[j, slot] = members[torch.randperm(len(members), generator=generator)[:per_class]]
        index = index.to(self.images.device)
        labels = torch.arange(self.n_way, device=self.images.device).view(1, -1, 1).expand(num_tasks, -1, per_class)

        def part(lo, hi):
            x = self.images[index[:, :, lo:hi].reshape(num_tasks, -1)]
            return x, labels[:, :, lo:hi].reshape(num_tasks, -1)

        sx, sy = part(0, self.k_shot)
        qx, qy = part(self.k_shot, per_class)
        batch = EpisodeBatch(sx, sy, qx, qy)
        return batch if device is None else batch.to(device)


class BaseLearner:
    """The base-learner network of every task, evaluated functionally: ``loss(params, x, y)`` returns
    one loss per task for a dict of parameters with a leading task dimension.

    ``kind="regression"`` uses the MSE (sine waves), ``"classification"`` the cross-entropy (§5.3).
    ``vectorize=False`` loops over the tasks instead of vmapping (same numbers): on a CPU, vmapped
    convolutions become grouped convolutions whose double backward is ~3× slower than a loop for Conv-4
    (``benchmarks/bench_turtle.py``).
    """

    KINDS = ("regression", "classification")

    def __init__(self, module: nn.Module, kind: str, vectorize: bool = True):
        if kind not in self.KINDS:
            raise ValueError(f"kind={kind!r}; allowed values are {list(self.KINDS)}")
        self.module, self.kind, self.vectorize = module, kind, vectorize
        criterion = F.mse_loss if kind == "regression" else F.cross_entropy

        def single_loss(params, x, y):
            return criterion(functional_call(self.module, params, (x,)), y)

        def single_predict(params, x):
            return functional_call(self.module, params, (x,))

        batch = vmap if vectorize else loop_over_runs
        self._loss, self._predict = batch(single_loss), batch(single_predict)

    def initial_params(self) -> dict:
        """A fresh copy of the module's own (randomly initialised) parameters: θ of Algorithm 1, line 1."""
        return {k: v.detach().clone() for k, v in self.module.named_parameters()}

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def loss(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._loss(dict(params), x, y)

    def accuracy(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fraction of correct predictions per task (classification only)."""
        return (self._predict(dict(params), x).argmax(-1) == y).float().mean(-1)

    def score(self, params, x, y) -> dict:
        """Query metrics per task: ``loss`` and, for classification, ``accuracy``."""
        out = {"loss": self.loss(params, x, y)}
        if self.kind == "classification":
            out["accuracy"] = self.accuracy(params, x, y)
        return out
