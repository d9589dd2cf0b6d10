"""Truncated-BPTT meta-training of a learned optimizer (Andrychowicz et al. §2, Eq. 3, Fig. 2).

L(φ) = E_f[Σ_t w_t f(θ_t)] with w_t = 1, θ_{t+1} = θ_t + g_t, minimised by Adam. Each trajectory of
``steps`` optimizee steps is cut into truncations of ``unroll`` steps; the optimizer's parameters are
updated after every truncation and the graph is cut between truncations. Optimizee gradients enter
as constants (∂∇_t/∂φ = 0), so no second derivatives of f are computed. After every epoch the
optimizer is frozen and evaluated on fixed validation problems; the best epoch is kept (early
stopping on the final validation loss, §3).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .learned_optimizers import detach_state
from .results import cached_training
from .rollout import loss_and_grads, run_learned


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


def truncated_meta_loss(optimizer, problem, params, state, loss, grads, unroll: int, weights=None):
    """Σ_{t=1..unroll} w_t · mean_runs f(θ_t) along one truncation, differentiable w.r.t. φ only.

    Returns (meta_loss, params, state, loss, grads) at the end of the truncation, still attached.
    """
    meta_loss = 0.0
    for t in range(unroll):
        updates, state = optimizer(grads, state, problem.groups)
        params = {k: params[k] + updates[k] for k in params}
        loss, grads = loss_and_grads(problem, params, retain_graph=True)
        meta_loss = meta_loss + (1.0 if weights is None else weights[t]) * loss.mean()
    return meta_loss, params, state, loss, grads


def train_on_trajectory(optimizer, meta_opt, problem, cfg: MetaTrainConfig) -> tuple[float, bool]:
    """One trajectory of ``cfg.steps`` steps, one Adam step per truncation. Returns (mean loss, diverged)."""
    params = {k: v.detach().clone().requires_grad_() for k, v in problem.params0.items()}
    state = optimizer.initial_state(params, problem.groups)
    loss, grads = loss_and_grads(problem, params)
    total, done = 0.0, 0
    while done < cfg.steps:
        length = min(cfg.unroll, cfg.steps - done)
        meta_loss, params, state, loss, grads = truncated_meta_loss(
            optimizer, problem, params, state, loss, grads, length)
        if not torch.isfinite(meta_loss):
            meta_opt.zero_grad(set_to_none=True)
            return float("nan"), True
        meta_opt.zero_grad(set_to_none=True)
        meta_loss.backward()
        meta_opt.step()
        total += float(meta_loss.detach()) / length
        done += length
        params = {k: v.detach().requires_grad_() for k, v in params.items()}
        state, loss = detach_state(state), loss.detach()
    return total / -(-cfg.steps // cfg.unroll), False


def validate(optimizer, task, cfg: MetaTrainConfig) -> float:
    """Mean final loss of the frozen optimizer on the fixed validation problems."""
    problem = task.sample(cfg.val_problems, torch.Generator().manual_seed(cfg.seed + 1_000_003))
    final = run_learned(optimizer, problem, cfg.steps).final
    return float(np.mean(final)) if np.all(np.isfinite(final)) else float("inf")


@dataclass
class MetaTrainResult:
    history: pd.DataFrame  # one row per epoch: train meta-loss, validation final loss, divergences
    best_epoch: int
    best_val: float


def meta_train(optimizer, task, cfg: MetaTrainConfig, checkpointer=None, progress: bool = True,
               on_epoch_end=None) -> MetaTrainResult:
    """Meta-train ``optimizer`` in place on problems sampled from ``task``; load the best epoch at the end.

    With a ``checkpointer`` (``results.Checkpointer``), state is saved after every epoch and an
    interrupted run resumes from it, ending with the same numbers as an uninterrupted run (CPU).
    """
    meta_opt = torch.optim.Adam(optimizer.parameters(), lr=cfg.meta_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history, best = [], {"epoch": 0, "val": float("inf"), "state": copy.deepcopy(optimizer.state_dict())}
    start = 0
    saved = checkpointer.restore_training(asdict(cfg), optimizer, meta_opt, generator) if checkpointer else None
    if saved is not None:
        history, best, start = saved["history"], saved["best"], saved["epoch"]
    bar = tqdm(range(start, cfg.epochs), desc="meta-training", disable=not progress,
               initial=start, total=cfg.epochs)
    for epoch in bar:
        losses, diverged = [], 0
        for _ in range(cfg.trajectories_per_epoch):
            problem = task.sample(cfg.meta_batch, generator)
            value, broke = train_on_trajectory(optimizer, meta_opt, problem, cfg)
            diverged += broke
            if not broke:
                losses.append(value)
        val = validate(optimizer, task, cfg)
        history.append({"epoch": epoch + 1, "train_meta_loss": float(np.mean(losses)) if losses else float("nan"),
                        "val_final_loss": val, "diverged_trajectories": diverged})
        if val < best["val"]:
            best = {"epoch": epoch + 1, "val": val, "state": copy.deepcopy(optimizer.state_dict())}
        bar.set_postfix(val=f"{val:.4g}", best=f"{best['val']:.4g}")
        if checkpointer is not None:
            checkpointer.save_training(asdict(cfg), optimizer, meta_opt, generator, epoch=epoch + 1,
                                       history=history, best=best)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    optimizer.load_state_dict(best["state"])
    return MetaTrainResult(pd.DataFrame(history), best["epoch"], best["val"])


def meta_train_cached(optimizer, task, cfg: MetaTrainConfig, results_dir, name: str, setting: dict,
                      progress: bool = True) -> tuple[pd.DataFrame, bool]:
    """Meta-train once per setting: load ``<name>-<key>.pt`` if a finished run with this config exists,
    else train with a checkpoint (resumable) and store the best weights and the epoch history.

    Returns ``(history, reused)``; ``optimizer`` holds the best weights either way.
    """
    config = {"meta": asdict(cfg), **setting}

    def train(checkpointer):
        result = meta_train(optimizer, task, cfg, checkpointer, progress=progress)
        return result.history.assign(best_epoch=result.best_epoch)

    return cached_training(results_dir, name, config, optimizer, train)


def meta_train_key(results_dir, name: str, cfg: MetaTrainConfig, setting: dict) -> str:
    """The derived key of a :func:`meta_train_cached` result (for the results that use the trained optimizer)."""
    from .results import training_key

    return training_key(results_dir, name, {"meta": asdict(cfg), **setting})


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
