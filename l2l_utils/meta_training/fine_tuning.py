"""Fast fine-tuning of a learned optimizer on a new problem (SimpleOptimizer paper §3.4).

"We firstly sub-sample 5% of the training data and then fine-tune the meta-optimizer on it. [...] meta-optimizer
keeps taking input batches and update the optimizee for certain fixed steps until the average training loss is less
than 1/2 of initial sampled training loss. We repeat this procedure for 5 times": five trajectories on the subset,
each a fresh optimizee meta-trained over by truncated BPTT (the shared driver and estimator) until the mean training
loss of a truncation falls below half the loss at θ_0. The paper says fewer than 1,000 batches are usually used; it
gives no cap, ours is ``max_steps`` per repetition (5 × 200 = 1,000 at most).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..tasks.datasets import DeviceDataset
from .meta_train import meta_train
from .truncated_bptt import MetaTrainConfig, TruncatedBPTT


def subsample(dataset: DeviceDataset, fraction: float, generator: torch.Generator) -> DeviceDataset:
    """A random ``fraction`` of ``dataset`` (at least one example), drawn without replacement."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    count = max(1, int(round(fraction * len(dataset))))
    index = torch.randperm(len(dataset), generator=generator)[:count].to(dataset.device)
    return DeviceDataset(dataset.inputs[index], dataset.targets[index])


@dataclass(frozen=True)
class FineTuneConfig:
    fraction: float = 0.05  # share of the training data fine-tuned on (§3.4: 5%; 3-5% "leads to good results")
    repeats: int = 5  # §3.4: "we repeat this procedure for 5 times"
    target: float = 0.5  # until the mean training loss of a truncation < target × the loss at θ_0 (§3.4: 1/2)
    max_steps: int = 200  # optimizee steps per repetition at most (ours)
    unroll: int = 20  # truncation length (§4: 20 BPTT steps)
    meta_lr: float = 1e-3  # §4: Adam 1e-3
    seed: int = 0


def fine_tune(rule, task, cfg: FineTuneConfig, estimator_options: dict | None = None,
              progress: bool = True) -> pd.DataFrame:
    """Fine-tune ``rule`` in place on problems of ``task`` (built on the subsample). One row per repetition: the
    optimizee steps it took, its loss at θ_0 and the mean loss of its last truncation, whether it reached the target
    (a repetition whose meta-loss was not finite is abandoned and reported as diverged). ``estimator_options``
    (``weights``, ``term``) set the meta-loss of :class:`~l2l_utils.meta_training.truncated_bptt.TruncatedBPTT`."""
    meta = MetaTrainConfig(steps=cfg.max_steps, unroll=cfg.unroll, meta_batch=1, epochs=1,
                           trajectories_per_epoch=cfg.repeats, val_problems=1, meta_lr=cfg.meta_lr, seed=cfg.seed)
    last = {}  # repetition -> its latest truncation

    def halved(first, part) -> bool:
        level, start = float(np.mean(part.losses[1:])), float(np.mean(first))
        last[estimator.trajectory] = {"steps": estimator.position, "initial_loss": start,
                                      "last_truncation_loss": level, "reached": level < cfg.target * start}
        return last[estimator.trajectory]["reached"]

    estimator = TruncatedBPTT(task, meta, stop=halved, **(estimator_options or {}))
    meta_train(rule, estimator, lambda model: {}, meta.truncations * cfg.repeats, meta.truncations, cfg.meta_lr,
               cfg.seed, {"fine_tune": asdict(cfg)}, progress=progress, select_best=False, desc="fine-tuning")
    rows = []
    for r in range(1, cfg.repeats + 1):
        row = last.get(r, {"steps": 0, "initial_loss": np.nan, "last_truncation_loss": np.nan, "reached": False})
        rows.append({"repetition": r, **row, "diverged": not row["reached"] and row["steps"] < cfg.max_steps})
    return pd.DataFrame(rows)
