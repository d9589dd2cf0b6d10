"""The one meta-training driver: an outer loop with a swappable meta-gradient estimator.

Every learned optimizer or meta-learner of the collection is meta-trained by :func:`meta_train`: the meta-optimizer
(Adam), the seeded stream of training problems, checkpoint/resume, validation with best-state selection, skipping
and counting updates whose meta-gradient is not finite, the history and the progress bar live here once. What
differs between papers is the estimator, an object with

* ``step(model, generator, remaining) -> Estimate``: draw the next training problem(s) from ``generator``, put the
  meta-gradient into ``.grad`` of the model's parameters (or report ``failed``), say how much work it did;
* ``summary(estimates) -> dict``: history columns for the units since the last validation.

Estimators: :class:`l2l_utils.meta_training.truncated_bptt.TruncatedBPTT` (Andrychowicz et al.), :class:`l2l_utils.
episodic_training.EpisodicQueryLoss` (MAML, meta-learner LSTM, TURTLE; first or second order), and MetaMD's
:class:`l2l_utils.meta_training.mirror_map_training.MirrorHypergradients` (unrolled, direct, IFT, as printed) and
:class:`l2l_utils.meta_training.mirror_map_training.ForwardModeQuadratics`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm


@dataclass
class Estimate:
    """One unit of meta-training: the meta-loss ``value``, the work done (``amount``: tasks, truncations), whether
    the meta-gradient failed (non-finite: the update is skipped and counted), and estimator-specific ``info``."""

    value: float
    amount: int = 1
    failed: bool = False
    info: dict = field(default_factory=dict)


@dataclass
class MetaTrainResult:
    history: pd.DataFrame  # one row per validation
    best: dict  # {"score", "done", "state"} of the best validation (the last one without selection)


def meta_train(model: torch.nn.Module, estimator, validate: Callable[[torch.nn.Module], dict], total: int,
               validate_every: int, meta_lr: float, seed: int, config: dict, checkpointer=None,
               progress: bool = True, select_best: bool = True, validate_at_start: bool = False,
               desc: str = "meta-training") -> MetaTrainResult:
    """Meta-train ``model`` in place for ``total`` units of work (what ``estimator.step`` reports as its amount).

    Adam on the model's parameters at ``meta_lr``; problems come from one ``torch.Generator`` seeded with ``seed``.
    Every ``validate_every`` units (and at the end) ``validate(model)`` gives the history row's metrics; its
    ``"score"`` (lower is better) picks the best state, loaded at the end when ``select_best``. With a
    ``checkpointer`` the state is saved at every validation (``config`` must match to resume) and an interrupted run
    resumes there and ends with the same numbers (CPU).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)
    generator = torch.Generator().manual_seed(seed)
    history, done = [], 0
    best = {"score": float("inf"), "done": 0, "state": copy.deepcopy(model.state_dict())}
    saved = checkpointer.restore_training(config, model, optimizer, generator) if checkpointer else None
    if saved is not None:
        history, best, done = saved["history"], saved["best"], saved["done"]
    elif validate_at_start:
        history.append({"done": 0, **estimator.summary([]), "skipped": 0, **validate(model)})
    bar = tqdm(total=total, initial=done, desc=desc, disable=not progress)
    since: list[Estimate] = []
    while done < total:
        optimizer.zero_grad(set_to_none=True)
        estimate = estimator.step(model, generator, total - done)
        if estimate.failed:
            optimizer.zero_grad(set_to_none=True)
        else:
            optimizer.step()
        since.append(estimate)
        done += estimate.amount
        bar.update(estimate.amount)
        if done % validate_every < estimate.amount or done >= total:
            row = {"done": done, **estimator.summary(since), "skipped": sum(e.failed for e in since),
                   **validate(model)}
            history.append(row)
            score = row.get("score", float("nan"))
            if select_best and np.isfinite(score) and score < best["score"]:
                best = {"score": score, "done": done, "state": copy.deepcopy(model.state_dict())}
            elif not select_best:
                best = {"score": score, "done": done, "state": None}
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k == "score" and np.isfinite(v)})
            since = []
            if checkpointer is not None:
                checkpointer.save_training(config, model, optimizer, generator, done=done, history=history,
                                           best=best)
    bar.close()
    if select_best and best["state"] is not None:
        model.load_state_dict(best["state"])
    return MetaTrainResult(pd.DataFrame(history), best)
