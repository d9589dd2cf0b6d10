"""Episodic tasks for few-shot meta-learning (Huisman et al. 2022 §3.1, §5; Finn et al. 2017 §5.1).

A task T_j has a support set D^tr (learned from) and a query set D^te (evaluated on). Samplers
return an :class:`EpisodeBatch` of J tasks stacked along a leading task dimension, so a meta-batch
(or a chunk of evaluation tasks) runs as one batch: :class:`l2l_utils.tasks.models.FunctionalNetwork` evaluates one
network per task with ``torch.func.functional_call`` under ``vmap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch


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
