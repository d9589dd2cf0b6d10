"""MetaMD's outer loop (MetaMD Algorithm 1) and its meta-test evaluation (§5.2, App. A.7).

Each meta-iteration draws a minibatch of k meta-train tasks (datasets or domains); on each, fresh base
models (random initialisation) are trained with the current mirror map for T steps (line 7), dE/dM is
estimated (line 8; ``estimator``, see :mod:`l2l_utils.meta_training.hypergradients`) and averaged over the tasks that did not
diverge, and the factors are updated (line 10; Adam, its step optionally clipped). A non-finite inner loss or
hypergradient skips that task and is counted. After every meta-iteration E is also measured on fixed validation
problems (the same base-model initialisations and minibatches every time), so its curve shows what the update did,
not the noise between random tasks. The state is checkpointed after every meta-iteration: an interrupted run
resumes and ends with the same numbers (CPU, same seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..storage.results import Checkpointer
from ..tasks.problems import DiagonalQuadratics
from .hypergradients import (DEFAULT_ESTIMATOR, ESTIMATORS, forward_mode_hypergradient, mirror_descent_quadratics,
                             mirror_hypergradient, objective_on, objectives_on)
from .meta_train import Estimate, meta_train


@dataclass(frozen=True)
class MetaMDConfig:
    meta_steps: int = 100  # outer iterations (ours: the paper does not give a number)
    tasks_per_step: int = 5  # k of Algorithm 1: meta-train tasks per outer iteration
    runs_per_task: int = 1  # freshly initialised base models per task
    inner_steps: int = 500  # T (DiverseDigits: 500, §5.2)
    inner_lr: float = 0.1  # η of the mirror-descent step
    k_lambda: float = 0.01  # k of Eq. 8 (ours)
    gamma: float = 0.01  # γ of g(M) = γ‖M − I‖_F (ours)
    neumann_terms: int = 20  # J of Algorithm 2 (App. A.12)
    meta_lr: float = 1e-3  # Adam on the factors (ours)
    estimator: str = DEFAULT_ESTIMATOR  # one of hypergradients.ESTIMATORS
    clip_norm: float | None = None  # of the averaged hypergradient (ours), None: no clipping
    seed: int = 0


def validation_objective(mirror, problems: list, states: list, cfg: MetaMDConfig) -> float:
    """Mean E over fixed validation problems, each replayed from its stored minibatch-stream state."""
    return objective_on(mirror, problems, states, cfg.inner_steps, cfg.inner_lr, cfg.k_lambda, cfg.gamma)


def validation_objectives(mirror, problems: list, states: list, cfg: MetaMDConfig) -> np.ndarray:
    """E of each fixed validation problem (NaN where it diverged): the units that decide whether a learned M beats
    another, e.g. the identity (SGD)."""
    return objectives_on(mirror, problems, states, cfg.inner_steps, cfg.inner_lr, cfg.k_lambda, cfg.gamma)


def fixed_problems(tasks: list, per_task: int, runs: int, seed: int) -> tuple[list, list]:
    """``per_task`` problems of every task, drawn once with ``seed``, and their minibatch-stream start states."""
    generator = torch.Generator().manual_seed(seed)
    problems = [task.sample(runs, generator) for task in tasks for _ in range(per_task)]
    return problems, [None if getattr(p, "generator", None) is None else p.generator.get_state() for p in problems]


class MirrorHypergradients:
    """The estimator of Algorithm 1, lines 5-9: k meta-train tasks per unit, fresh base models trained with the
    current M for T steps, dE/dM by ``cfg.estimator`` averaged over the tasks that gave one (a diverged or
    non-finite task is skipped and counted), its norm optionally clipped to ``cfg.clip_norm``."""

    def __init__(self, tasks: list, cfg: MetaMDConfig):
        self.tasks, self.cfg = tasks, cfg

    def step(self, mirror, generator, remaining) -> Estimate:
        cfg = self.cfg
        k = min(cfg.tasks_per_step, len(self.tasks))
        chosen = torch.randperm(len(self.tasks), generator=generator)[:k].tolist()
        total = {name: torch.zeros_like(p) for name, p in mirror.named_parameters()}
        objectives, finals, skipped = [], [], 0
        for index in chosen:
            problem = self.tasks[index].sample(cfg.runs_per_task, generator)
            result = mirror_hypergradient(cfg.estimator, mirror, problem, cfg.inner_steps, cfg.inner_lr,
                                          cfg.k_lambda, cfg.gamma, cfg.neumann_terms)
            if result.diverged or not (torch.isfinite(result.objective)
                                       and all(torch.isfinite(g).all() for g in result.grads.values())):
                skipped += 1
                continue
            for name in total:
                total[name] += result.grads[name]
            objectives.append(float(result.objective))
            finals.append(float(np.mean(result.losses[-1])))
        info = {"final_inner_loss": float(np.mean(finals)) if finals else np.nan, "skipped_tasks": skipped}
        if not objectives:
            return Estimate(np.nan, failed=True, info=info)
        scale = 1.0 / len(objectives)  # line 8 averages over the tasks that gave a hypergradient
        norm = float(torch.sqrt(sum((g * scale).pow(2).sum() for g in total.values())))
        if cfg.clip_norm is not None and norm > cfg.clip_norm:
            scale *= cfg.clip_norm / norm
        for name, p in mirror.named_parameters():
            p.grad = total[name] * scale
        return Estimate(float(np.mean(objectives)), info=info)

    def summary(self, estimates) -> dict:
        if not estimates:
            return {"meta_objective": np.nan, "final_inner_loss": np.nan, "skipped_tasks": 0}
        last = estimates[-1]
        return {"meta_objective": last.value, **last.info}


def meta_train_mirror(mirror, tasks: list, cfg: MetaMDConfig, checkpointer: Checkpointer | None = None,
                      progress: bool = True, val_tasks: int = 1) -> pd.DataFrame:
    """Algorithm 1 in place on ``mirror`` with the shared driver; one history row per meta-iteration, with E on
    ``val_tasks`` fixed problems per meta-train task before the first update (meta_step 0) and after every update."""
    if cfg.estimator not in ESTIMATORS:
        raise ValueError(f"estimator={cfg.estimator!r}; allowed values are {list(ESTIMATORS)}")
    val_problems, val_states = fixed_problems(tasks, val_tasks, cfg.runs_per_task, cfg.seed + 7_919)

    def validate(model):
        # A = aaᵀ + I and B = bbᵀ + I make every block positive definite (λ ≥ 1) whatever the factors are
        assert float(model.strong_convexity()) >= 1.0 - 1e-6, "M lost positive definiteness"
        with torch.no_grad():
            return {"val_meta_objective": validation_objective(model, val_problems, val_states, cfg),
                    "frobenius_M_minus_I": float(model.frobenius_distance()),
                    "lambda": float(model.strong_convexity()), "lambda_max": float(model.largest_eigenvalue())}

    result = meta_train(mirror, MirrorHypergradients(tasks, cfg), validate, cfg.meta_steps, 1, cfg.meta_lr, cfg.seed,
                        asdict(cfg), checkpointer, progress, select_best=False, validate_at_start=True,
                        desc="MetaMD meta-training")
    return result.history.rename(columns={"done": "meta_step"})[
        ["meta_step", "meta_objective", "final_inner_loss", "skipped_tasks", "val_meta_objective",
         "frobenius_M_minus_I", "lambda", "lambda_max"]]


@dataclass(frozen=True)
class QuadraticMetaConfig:
    """Meta-training of a diagonal M on the 2-D quadratics of §5.1 with exact forward-mode hypergradients."""

    meta_steps: int = 300
    tasks_per_step: int = 16
    inner_steps: int = 200  # T
    inner_lr: float = 0.05  # η
    k_lambda: float = 0.01
    gamma: float = 0.01
    meta_lr: float = 0.05
    clip_norm: float = 1.0  # of the hypergradient w.r.t. log m (ours)
    seed: int = 0


class ForwardModeQuadratics:
    """The estimator of App. A.6 for a diagonal M on the 2-D quadratics: ``tasks_per_step`` problems, dE/d log m by
    forward mode through the T inner steps. Problems on which the current M diverges stay in the objective (their
    growth is what pushes M back up); a non-finite one is left out and counted. The meta-gradient's norm is clipped
    (ours): a diverging problem makes it huge, and one such outlier would swamp Adam's second moment and freeze M."""

    def __init__(self, family, cfg: QuadraticMetaConfig):
        self.family, self.cfg = family, cfg

    def step(self, mirror, generator, remaining) -> Estimate:
        cfg = self.cfg
        problems = self.family.sample(cfg.tasks_per_step, generator)
        theta_T = mirror_descent_quadratics(mirror, problems, cfg.inner_lr, cfg.inner_steps)
        finite_tasks = torch.isfinite(problems.gap(theta_T))
        stable = finite_tasks & (problems.gap(theta_T) <= problems.gap(problems.theta1))
        info = {"diverged_tasks": int((~stable).sum())}
        if not finite_tasks.any():
            return Estimate(float("nan"), failed=True, info=info)
        keep = DiagonalQuadratics(problems.q[finite_tasks], problems.b[finite_tasks], problems.theta1[finite_tasks])
        value, grad, _ = forward_mode_hypergradient(mirror, keep, cfg.inner_lr, cfg.inner_steps, cfg.k_lambda,
                                                    cfg.gamma)
        if not (torch.isfinite(value) and torch.isfinite(grad).all()):
            return Estimate(float(value), failed=True, info=info)
        mirror.log_m.grad = grad.to(mirror.log_m.dtype) * min(1.0, cfg.clip_norm / float(grad.norm()))
        return Estimate(float(value), info=info)

    def summary(self, estimates) -> dict:
        last = estimates[-1]
        return {"meta_objective": last.value, "skipped": last.failed, **last.info}


def meta_train_diagonal(mirror, family, cfg: QuadraticMetaConfig, progress: bool = True) -> pd.DataFrame:
    """Adam on log m with dE/d log m from :func:`forward_mode_hypergradient` (App. A.6), by the shared driver."""
    def validate(model):
        return {f"m{i}": float(v) for i, v in enumerate(model.m.detach())}

    result = meta_train(mirror, ForwardModeQuadratics(family, cfg), validate, cfg.meta_steps, 1, cfg.meta_lr, cfg.seed,
                        asdict(cfg), progress=progress, select_best=False, desc="MetaMD (quadratics)")
    history = result.history.drop(columns="skipped").rename(columns={"done": "meta_step"})
    history.insert(2, "skipped", result.history["skipped"].astype(bool))
    return history[["meta_step", "meta_objective", "skipped", "diverged_tasks", "m0", "m1"]]
