"""The episodic meta-learning of Huisman et al. (Algorithm 1) for MAML, the meta-learner LSTM and TURTLE.

:class:`EpisodicQueryLoss` is the estimator of the shared driver (:func:`l2l_utils.meta_training.meta_train.meta_train`): sample a
meta-batch of J tasks, adapt θ on each support set (T steps), and backpropagate Σ_j L_{D^te_j}(θ_j^(T)) (line 11).
Meta-validation on a fixed set of validation tasks every ``val_every`` training tasks; the best validation
checkpoint is the one evaluated at meta-test (App. A). A non-finite meta-loss or meta-gradient skips that update and
is counted, never a crash. Training state is checkpointed at every validation, so an interrupted run resumes and
ends with the same numbers (CPU, same seed).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..storage.results import Checkpointer, ResultsStore, atomic_save_torch, config_key, provenance, recorded_reads
from ..tasks.episodes import EpisodeBatch
from .meta_train import Estimate, meta_train


@dataclass(frozen=True)
class EpisodicConfig:
    train_tasks: int = 70_000  # meta-training tasks (sine: 70K, §5.2)
    meta_batch: int = 1  # tasks per outer update J
    steps: int = 1  # inner updates T during meta-training
    eval_steps: int | None = None  # inner updates at validation/test (default: ``steps``)
    second_order: bool = True
    meta_lr: float = 1e-3  # Adam (App. A, all methods)
    outer_clamp: float | None = None  # each task's meta-gradient of θ clamped to ± this (authors' code, T > 1: 10)
    clip_value: float | None = None  # value clipping of the summed gradients of all meta-parameters (alternative)
    clip_norm: float | None = None  # gradient norm clipping (meta-learner LSTM: 0.25)
    val_every: int = 2_500  # training tasks between meta-validations (App. A)
    val_tasks: int = 1_000
    eval_chunk: int = 250  # tasks evaluated together
    seed: int = 0

    @property
    def test_steps(self) -> int:
        return self.steps if self.eval_steps is None else self.eval_steps


def evaluate(meta_learner, learner, episodes: "EpisodeBatch | list", steps: int, chunk: int = 250) -> pd.DataFrame:
    """Query metrics of every task after ``steps`` inner updates; one row per task (loss [, accuracy]).

    ``episodes`` is an EpisodeBatch or a list of them (evaluated chunk by chunk, no meta-gradient).
    """
    batches = episodes if isinstance(episodes, list) else [episodes]
    rows = []
    for batch in batches:
        for start in range(0, len(batch), chunk):
            part = batch.slice(start, start + chunk)
            with torch.enable_grad():
                params = meta_learner.adapt(learner, part.support_x, part.support_y, steps,
                                            second_order=False, differentiable=False)
            with torch.no_grad():
                scores = learner.score(params, part.query_x, part.query_y)
            rows.append(pd.DataFrame({k: v.detach().cpu().numpy() for k, v in scores.items()}))
    frame = pd.concat(rows, ignore_index=True)
    frame.insert(0, "task", np.arange(len(frame)))
    return frame


def fixed_episodes(sampler, num_tasks: int, seed: int, chunk: int, device) -> list:
    """The same ``num_tasks`` tasks every time (validation and test sets), drawn in chunks."""
    generator = torch.Generator().manual_seed(seed)
    return [sampler.sample(min(chunk, num_tasks - s), generator, device=device) for s in range(0, num_tasks, chunk)]


class EpisodicQueryLoss:
    """The estimator of Algorithm 1, line 11: adapt θ on each support set of a meta-batch of J tasks (T steps, first
    or second order), backpropagate Σ_j L_{D^te_j}(θ_j^(T)) into Θ. Per-task clamping of θ's gradient happens in
    the unroll (``outer_clamp``); value or norm clipping of all gradients after it. A non-finite meta-loss or
    meta-gradient fails the unit (the update is skipped and counted)."""

    def __init__(self, learner, sampler, cfg: EpisodicConfig, device="cpu"):
        self.learner, self.sampler, self.cfg, self.device = learner, sampler, cfg, device

    def step(self, meta_learner, generator, remaining) -> Estimate:
        cfg = self.cfg
        size = min(cfg.meta_batch, remaining)
        batch = self.sampler.sample(size, generator, device=self.device)
        params = meta_learner.adapt(self.learner, batch.support_x, batch.support_y, cfg.steps, cfg.second_order,
                                    outer_clamp=cfg.outer_clamp)
        meta_loss = self.learner.loss(params, batch.query_x, batch.query_y).sum()  # Algorithm 1, line 11
        if not torch.isfinite(meta_loss):
            return Estimate(float("nan"), size, failed=True)
        meta_loss.backward()
        grads = [p.grad for p in meta_learner.parameters() if p.grad is not None]
        if not all(torch.isfinite(g).all() for g in grads):
            return Estimate(float("nan"), size, failed=True)
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(meta_learner.parameters(), cfg.clip_value)
        if cfg.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(meta_learner.parameters(), cfg.clip_norm)
        return Estimate(float(meta_loss.detach()) / size, size)

    def summary(self, estimates) -> dict:
        losses = [e.value for e in estimates if not e.failed]
        return {"train_loss": float(np.mean(losses)) if losses else float("nan")}


def _validation_score(frame: pd.DataFrame) -> float:
    """Lower is better: the mean query loss; non-finite counts as +inf."""
    value = float(frame["loss"].mean())
    return value if np.isfinite(value) else float("inf")


def train_meta_learner(meta_learner, learner, train_sampler, val_episodes: list, cfg: EpisodicConfig, device="cpu",
                       checkpointer: Checkpointer | None = None, progress: bool = True):
    """Meta-train in place with the shared driver; returns (history frame, best-validation dict).

    ``history`` has one row per validation: training tasks seen, mean training meta-loss since the
    previous validation, skipped (non-finite) updates, validation loss (and accuracy).
    """
    def validate(model):
        val = evaluate(model, learner, val_episodes, cfg.test_steps, cfg.eval_chunk)
        row = {"score": _validation_score(val), "val_loss": _validation_score(val)}
        if "accuracy" in val:
            row["val_accuracy"] = float(val["accuracy"].mean())
        return row

    result = meta_train(meta_learner, EpisodicQueryLoss(learner, train_sampler, cfg, device), validate,
                               cfg.train_tasks, cfg.val_every, cfg.meta_lr, cfg.seed, asdict(cfg), checkpointer,
                               progress, desc="meta-training (tasks)")
    history = result.history.rename(columns={"done": "tasks", "skipped": "skipped_updates"}).drop(columns="score")
    columns = ["tasks", "train_loss", "skipped_updates", "val_loss"] + (["val_accuracy"] if "val_accuracy" in history
                                                                         else [])
    return history[columns], {"val": result.best["score"], "tasks": result.best["done"], "state": result.best["state"]}


def train_and_test(make_meta_learner, learner, train_sampler, val_episodes, test_episodes, cfg: EpisodicConfig,
                   results_dir, name: str, setting: dict, device="cpu", progress: bool = True) -> dict:
    """One run, cached: meta-train (resumable), evaluate the best checkpoint on the test tasks.

    Returns {"history", "test" (one row per test task), "seconds" (meta-training + evaluation wall
    time of the run that computed it), "best_tasks", "val_before" (the validation loss of the same meta-learner
    before meta-training: the "did it learn?" gate's reference)}; loads stored results when this setting ran
    before.
    """
    config = {"episodic": asdict(cfg), **setting}
    stem = f"{name}-{config_key(config)}"
    store = ResultsStore(results_dir)
    if store.has(f"{stem}-test", config) and store.has(f"{stem}-history", config):
        test, meta = store.load(f"{stem}-test")
        return {"history": store.load(f"{stem}-history")[0], "test": test, "seconds": meta["seconds"],
                "best_tasks": meta["best_tasks"], "val_before": meta["val_before"], "reused": True}
    with recorded_reads() as reads:
        torch.manual_seed(cfg.seed)  # base- and meta-network initialisation of this run
        meta_learner = make_meta_learner().to(device)
        checkpointer = Checkpointer(Path(results_dir) / f"{stem}.ckpt")
        with torch.random.fork_rng(devices=[]):  # the reference leaves the run's random stream as it was
            val_before = _validation_score(evaluate(meta_learner, learner, val_episodes, cfg.test_steps,
                                                    cfg.eval_chunk))
        start = time.perf_counter()
        history, best = train_meta_learner(meta_learner, learner, train_sampler, val_episodes, cfg, device,
                                           checkpointer, progress)
        test = evaluate(meta_learner, learner, test_episodes, cfg.test_steps, cfg.eval_chunk)
        seconds = time.perf_counter() - start
    atomic_save_torch(meta_learner.state_dict(), Path(results_dir) / f"{stem}.pt")
    extra = {**provenance(reads, config), "seconds": seconds, "best_tasks": best["tasks"], "val_before": val_before}
    store.save(f"{stem}-history", history, extra)
    store.save(f"{stem}-test", test, extra)
    checkpointer.clear()
    return {"history": history, "test": test, "seconds": seconds, "best_tasks": best["tasks"], "val_before": val_before,
            "reused": False}
