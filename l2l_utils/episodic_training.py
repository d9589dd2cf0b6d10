"""The outer loop shared by MAML, the meta-learner LSTM and TURTLE (Huisman et al. Algorithm 1).

Repeat: sample a meta-batch of J tasks, adapt θ on each support set (T steps), and update Θ with Adam
on Σ_j L_{D^te_j}(θ_j^(T)) (line 11). Meta-validation on a fixed set of validation tasks every
``val_every`` training tasks; the best validation checkpoint is the one evaluated at meta-test
(App. A). A non-finite meta-loss or meta-gradient skips that update and is counted, never a crash.
Training state is checkpointed at every validation, so an interrupted run resumes and ends with the
same numbers (CPU, same seed).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .results import Checkpointer, ResultsStore, atomic_save_torch, config_key, provenance, recorded_reads


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


def _meta_step(meta_learner, learner, batch, cfg: EpisodicConfig, optimizer) -> tuple[float, bool]:
    params = meta_learner.adapt(learner, batch.support_x, batch.support_y, cfg.steps, cfg.second_order,
                                outer_clamp=cfg.outer_clamp)
    meta_loss = learner.loss(params, batch.query_x, batch.query_y).sum()  # Algorithm 1, line 11
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(meta_loss):
        return float("nan"), True
    meta_loss.backward()
    grads = [p.grad for p in meta_learner.parameters() if p.grad is not None]
    if not all(torch.isfinite(g).all() for g in grads):
        optimizer.zero_grad(set_to_none=True)
        return float("nan"), True
    if cfg.clip_value is not None:
        torch.nn.utils.clip_grad_value_(meta_learner.parameters(), cfg.clip_value)
    if cfg.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(meta_learner.parameters(), cfg.clip_norm)
    optimizer.step()
    return float(meta_loss.detach()) / len(batch), False


def _validation_score(frame: pd.DataFrame) -> float:
    """Lower is better: the mean query loss; non-finite counts as +inf."""
    value = float(frame["loss"].mean())
    return value if np.isfinite(value) else float("inf")


def meta_train(meta_learner, learner, train_sampler, val_episodes: list, cfg: EpisodicConfig, device="cpu",
               checkpointer: Checkpointer | None = None, progress: bool = True):
    """Meta-train in place; returns (history frame, best-validation state dict).

    ``history`` has one row per validation: training tasks seen, mean training meta-loss since the
    previous validation, skipped (non-finite) updates, validation loss (and accuracy).
    """
    optimizer = torch.optim.Adam(meta_learner.parameters(), lr=cfg.meta_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history, best, seen = [], {"val": float("inf"), "tasks": 0, "state": copy.deepcopy(meta_learner.state_dict())}, 0
    saved = checkpointer.restore_training(asdict(cfg), meta_learner, optimizer, generator) if checkpointer else None
    if saved is not None:
        history, best, seen = saved["history"], saved["best"], saved["seen"]
    bar = tqdm(total=cfg.train_tasks, initial=seen, desc="meta-training (tasks)", disable=not progress)
    losses, skipped = [], 0
    while seen < cfg.train_tasks:
        size = min(cfg.meta_batch, cfg.train_tasks - seen)
        batch = train_sampler.sample(size, generator, device=device)
        value, broke = _meta_step(meta_learner, learner, batch, cfg, optimizer)
        skipped += broke
        if not broke:
            losses.append(value)
        seen += size
        bar.update(size)
        if seen % cfg.val_every < size or seen == cfg.train_tasks:
            val = evaluate(meta_learner, learner, val_episodes, cfg.test_steps, cfg.eval_chunk)
            row = {"tasks": seen, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                   "skipped_updates": skipped, "val_loss": _validation_score(val)}
            if "accuracy" in val:
                row["val_accuracy"] = float(val["accuracy"].mean())
            history.append(row)
            if row["val_loss"] < best["val"]:
                best = {"val": row["val_loss"], "tasks": seen, "state": copy.deepcopy(meta_learner.state_dict())}
            bar.set_postfix(val=f"{row['val_loss']:.4g}", best=f"{best['val']:.4g}")
            losses, skipped = [], 0
            if checkpointer is not None:
                checkpointer.save_training(asdict(cfg), meta_learner, optimizer, generator, seen=seen,
                                           history=history, best=best)
    bar.close()
    meta_learner.load_state_dict(best["state"])
    return pd.DataFrame(history), best


def train_and_test(make_meta_learner, learner, train_sampler, val_episodes, test_episodes, cfg: EpisodicConfig,
                   results_dir, name: str, setting: dict, device="cpu", progress: bool = True) -> dict:
    """One run, cached: meta-train (resumable), evaluate the best checkpoint on the test tasks.

    Returns {"history", "test" (one row per test task), "seconds" (meta-training + evaluation wall
    time of the run that computed it), "best_tasks"}; loads stored results when this setting ran before.
    """
    config = {"episodic": asdict(cfg), **setting}
    stem = f"{name}-{config_key(config)}"
    store = ResultsStore(results_dir)
    if store.has(f"{stem}-test", config) and store.has(f"{stem}-history", config):
        test, meta = store.load(f"{stem}-test")
        return {"history": store.load(f"{stem}-history")[0], "test": test, "seconds": meta["seconds"],
                "best_tasks": meta["best_tasks"], "reused": True}
    with recorded_reads() as reads:
        torch.manual_seed(cfg.seed)  # base- and meta-network initialisation of this run
        meta_learner = make_meta_learner().to(device)
        checkpointer = Checkpointer(Path(results_dir) / f"{stem}.ckpt")
        start = time.perf_counter()
        history, best = meta_train(meta_learner, learner, train_sampler, val_episodes, cfg, device, checkpointer,
                                   progress)
        test = evaluate(meta_learner, learner, test_episodes, cfg.test_steps, cfg.eval_chunk)
        seconds = time.perf_counter() - start
    atomic_save_torch(meta_learner.state_dict(), Path(results_dir) / f"{stem}.pt")
    extra = {**provenance(reads, config), "seconds": seconds, "best_tasks": best["tasks"]}
    store.save(f"{stem}-history", history, extra)
    store.save(f"{stem}-test", test, extra)
    checkpointer.clear()
    return {"history": history, "test": test, "seconds": seconds, "best_tasks": best["tasks"], "reused": False}
