"""Truncated-BPTT meta-training of a learned optimizer (Andrychowicz et al. §2, Eq. 3, Fig. 2).

L(φ) = E_f[Σ_t w_t f(θ_t)] with w_t = 1, θ_{t+1} = θ_t + g_t, minimised by Adam. Each trajectory of
``steps`` optimizee steps is cut into truncations of ``unroll`` steps; the optimizer's parameters are
updated after every truncation and the graph is cut between truncations. Optimizee gradients enter
as constants (∂∇_t/∂φ = 0, ``order="first"`` of :func:`~l2l_utils.optimizers.unroll.unroll`), so no second derivatives of
f are computed. After every epoch the optimizer is frozen and evaluated on fixed validation problems; the best
epoch is kept (early stopping on the final validation loss, §3). The outer loop is the shared driver
(:func:`l2l_utils.meta_training.meta_train.meta_train`); this module is its estimator and the paper's configuration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch

from ..learned_optimizers.lstm_optimizer import detach_state
from ..optimizers.unroll import Unrolled, unroll
from ..storage.results import cached_training, training_key
from .meta_train import Estimate, meta_train


@dataclass(frozen=True)
class MetaTrainConfig:
    steps: int = 100  # optimizee steps per trajectory (the horizon T)
    unroll: int = 20  # truncation length of BPTT
    meta_batch: int = 1  # optimizees per trajectory, run as one batch
    epochs: int = 10
    trajectories_per_epoch: int = 20
    val_problems: int = 10
    meta_lr: float = 1e-3
    seed: int = 0
    clip_value: float | None = None  # clamp every meta-gradient element to ±clip_value (None: no clamping)
    meta_chunk: int | None = None  # optimizees per backward pass (None: the whole meta-batch at once)

    @property
    def truncations(self) -> int:
        return -(-self.steps // self.unroll)

    def as_config(self) -> dict:
        """The fields that identify a run. Unset ``clip_value`` and ``meta_chunk`` are left out (earlier results keep
        their keys), and so is ``meta_chunk`` altogether: chunking changes the memory, not the numbers."""
        return {k: v for k, v in asdict(self).items()
                if k != "meta_chunk" and not (k == "clip_value" and v is None)}


class TruncatedBPTT:
    """The estimator: one truncation per driver unit. A trajectory starts on a problem drawn from the driver's
    stream; each call unrolls the next ``unroll`` steps with the graph through φ, backpropagates Σ_t w_t mean f(θ_t)
    and cuts the graph. A non-finite meta-loss abandons the trajectory (counted as diverged).

    ``weights``: w_t of a truncation's steps, a sequence or ``weights(position, length)`` of the trajectory position
    the truncation starts at; ``term``: the meta-loss term (:func:`l2l_utils.optimizers.unroll.unroll`, e.g. the weighted
    difference of :mod:`l2l_utils.meta_training.meta_losses`); ``stop(first_losses, part)``: ends the trajectory after a truncation
    when it returns True (its remaining truncations count as done), e.g. once the loss has halved (SimpleOptimizer
    paper §3.4).

    With ``cfg.meta_chunk`` a meta-batch is unrolled and backpropagated a chunk of optimizees at a time, the
    meta-gradients added up: the stored graph is that of one chunk, not of the whole batch. Each chunk replays the
    problem's minibatch stream from the truncation's start, so the numbers are those of the whole batch at once."""

    def __init__(self, task, cfg: MetaTrainConfig, weights=None, term=None, stop=None):
        self.task, self.cfg, self.weights, self.term, self.stop = task, cfg, weights, term, stop
        self.problem, self.parts, self.current, self.position, self.trajectory, self.first = None, [], None, 0, 0, None

    def _chunks(self, problem) -> list:
        size = self.cfg.meta_chunk
        if size is None or size >= self.cfg.meta_batch:
            return [(problem, 1.0)]
        if not hasattr(problem, "select"):
            raise ValueError(f"meta_chunk needs problems that can select runs; {type(problem).__name__} cannot")
        rows = torch.arange(self.cfg.meta_batch).split(size)
        return [(problem.select(r), len(r) / self.cfg.meta_batch) for r in rows]

    def _each(self, run) -> list:
        """``run(part, k)`` on every chunk, each from the same minibatch-stream state (the whole batch's draws)."""
        stream = getattr(self.problem, "generator", None)
        start = None if stream is None else stream.get_state()
        out = []
        for k, (part, _) in enumerate(self.parts):
            if start is not None:
                stream.set_state(start)
            out.append(run(part, k))
        return out

    def step(self, optimizer, generator, remaining) -> Estimate:
        optimizer.train()  # rules with training-only noise (MTL2L's dropout and perturbation) switch it on here
        if self.current is None:  # a new trajectory: θ_0, its loss and gradient, the optimizer's fresh state
            if hasattr(optimizer, "begin_trajectory"):  # a rule's own randomness, drawn from the driver's stream
                optimizer.begin_trajectory(generator)
            self.problem = self.task.sample(self.cfg.meta_batch, generator)
            self.parts = self._chunks(self.problem)
            self.current, self.position = self._each(lambda part, k: unroll(optimizer, part, 0)), 0
            self.trajectory = self.trajectory + 1
            self.first = np.concatenate([u.losses[0] for u in self.current])
        length = min(self.cfg.unroll, self.cfg.steps - self.position)
        weights = self.weights(self.position, length) if callable(self.weights) else self.weights
        info = {"trajectory": self.trajectory, "length": length}
        failed = []

        def truncation(part, k):
            if failed:
                return None
            out = unroll(optimizer, part, length, order="first", start=self.current[k], weights=weights,
                         term=self.term)
            if not torch.isfinite(torch.as_tensor(out.meta_loss)):
                failed.append(k)
                return out
            (out.meta_loss * self.parts[k][1]).backward()  # the whole batch's mean: chunks weighted by their share
            return out

        pieces = self._each(truncation)
        if failed:  # the rest of the trajectory is not run: its truncations count as done (epochs stay aligned)
            self.current = None
            return Estimate(float("nan"), self.cfg.truncations - self.position // self.cfg.unroll, True, info)
        if self.cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(optimizer.parameters(), self.cfg.clip_value)
        self.position += length
        value = sum(float(p.meta_loss.detach()) * share for p, (_, share) in zip(pieces, self.parts))
        amount = 1
        whole = pieces[0] if len(pieces) == 1 else Unrolled(np.concatenate([p.losses for p in pieces], 1), {})
        if self.stop is not None and self.stop(self.first, whole) and self.position < self.cfg.steps:
            amount += self.cfg.truncations - -(-self.position // self.cfg.unroll)
            info["stopped_at"] = self.position
            self.position = self.cfg.steps
        self.current = None if self.position >= self.cfg.steps else [Unrolled(
            p.losses, {k: v.detach().requires_grad_() for k, v in p.params.items()}, detach_state(p.state),
            p.loss.detach(), p.grads) for p in pieces]
        return Estimate(value, amount, info=info)

    def summary(self, estimates) -> dict:
        """Mean per-step meta-loss over the trajectories that did not diverge, and how many diverged."""
        totals, broken = {}, set()
        for e in estimates:
            t = e.info["trajectory"]
            if e.failed:
                broken.add(t)
            else:
                totals[t] = totals.get(t, 0.0) + e.value / e.info["length"]
        kept = [v / self.cfg.truncations for t, v in totals.items() if t not in broken]
        return {"train_meta_loss": float(np.mean(kept)) if kept else float("nan"), "diverged_trajectories": len(broken)}


def validation_loss(optimizer, task, cfg: MetaTrainConfig) -> float:
    """Mean final loss of the frozen optimizer on the fixed validation problems (+inf if a run diverged)."""
    problem = task.sample(cfg.val_problems, torch.Generator().manual_seed(cfg.seed + 1_000_003))
    was_training = optimizer.training
    optimizer.eval()
    try:
        final = unroll(optimizer, problem, cfg.steps).final
    finally:
        optimizer.train(was_training)
    return float(np.mean(final)) if np.all(np.isfinite(final)) else float("inf")


def train_learned_optimizer(optimizer, task, cfg: MetaTrainConfig, checkpointer=None, progress: bool = True,
                            estimator_options: dict | None = None, val_task=None):
    """Meta-train ``optimizer`` in place (best epoch loaded at the end); one history row per epoch.
    ``estimator_options`` go to :class:`TruncatedBPTT` (``weights``, ``term``, ``stop``). The best epoch is chosen
    on problems of ``val_task`` (default: ``task`` itself), e.g. the plain optimizee when training on a transformed
    one (RNNProp's random scaling and convex mixing)."""
    per_epoch = cfg.trajectories_per_epoch * cfg.truncations

    def validate(model):
        val = validation_loss(model, task if val_task is None else val_task, cfg)
        return {"score": val, "val_final_loss": val}

    estimator = TruncatedBPTT(task, cfg, **(estimator_options or {}))
    result = meta_train(optimizer, estimator, validate, cfg.epochs * per_epoch, per_epoch,
                        cfg.meta_lr, cfg.seed, cfg.as_config(), checkpointer, progress, desc="meta-training")
    history = result.history.assign(epoch=lambda h: h["done"] // per_epoch)
    best_epoch = int(result.best["done"] // per_epoch)
    return history[["epoch", "train_meta_loss", "val_final_loss", "diverged_trajectories"]], best_epoch


def meta_train_cached(optimizer, task, cfg: MetaTrainConfig, results_dir, name: str, setting: dict,
                      progress: bool = True, estimator_options: dict | None = None,
                      val_task=None) -> tuple[pd.DataFrame, bool]:
    """Meta-train once per setting: load ``<name>-<key>.pt`` if a finished run with this config exists,
    else train with a checkpoint (resumable) and store the best weights and the epoch history.
    ``setting`` must name whatever ``estimator_options`` and ``val_task`` change (they are not part of the key).

    Returns ``(history, reused)``; ``optimizer`` holds the best weights either way.
    """
    config = {"meta": cfg.as_config(), **setting}

    def train(checkpointer):
        history, best_epoch = train_learned_optimizer(optimizer, task, cfg, checkpointer, progress=progress,
                                                      estimator_options=estimator_options, val_task=val_task)
        return history.assign(best_epoch=best_epoch)

    return cached_training(results_dir, name, config, optimizer, train)


def meta_train_key(results_dir, name: str, cfg: MetaTrainConfig, setting: dict) -> str:
    """The derived key of a :func:`meta_train_cached` result (for the results that use the trained optimizer)."""
    return training_key(results_dir, name, {"meta": cfg.as_config(), **setting})


def random_search_meta_lr(make_optimizer, task, cfg: MetaTrainConfig, trials: int, search_epochs: int,
                          bounds: tuple[float, float], results_dir, name: str, setting: dict,
                          progress: bool = True) -> tuple[float, pd.DataFrame]:
    """Choose Adam's meta learning rate by random search (§3: "a learning rate chosen by random search").

    ``trials`` rates are drawn log-uniformly from ``bounds`` (seeded by ``cfg.seed``); each meta-trains a
    fresh optimizer from ``make_optimizer()`` for ``search_epochs`` epochs, and the rate with the lowest
    validation loss wins. Every trial is cached like a full run.
    """
    low, high = np.log10(bounds[0]), np.log10(bounds[1])
    rates = 10 ** np.random.default_rng(cfg.seed).uniform(low, high, trials)
    rows = []
    for rate in rates:
        trial = replace(cfg, meta_lr=float(rate), epochs=search_epochs)
        history, _ = meta_train_cached(make_optimizer(), task, trial, results_dir, f"{name}-search", setting, progress)
        rows.append({"meta_lr": float(rate), "best_val_final_loss": float(history["val_final_loss"].min())})
    table = pd.DataFrame(rows).sort_values("meta_lr", ignore_index=True)
    return float(table.loc[table["best_val_final_loss"].idxmin(), "meta_lr"]), table
