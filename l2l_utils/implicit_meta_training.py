"""MetaMD's outer loop (MetaMD Algorithm 1) and its meta-test evaluation (§5.2, App. A.7).

Each meta-iteration draws a minibatch of k meta-train tasks (datasets or domains); on each, fresh base
models (random initialisation) are trained with the current mirror map for T steps (line 7), dE/dM is
estimated (line 8; ``estimator``, see :mod:`l2l_utils.hypergradients`) and averaged over the tasks that did not
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
from tqdm.auto import tqdm

from .hypergradients import ESTIMATORS, inner_loop, mirror_hypergradient
from .results import Checkpointer


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
    estimator: str = "unrolled"  # one of hypergradients.ESTIMATORS
    clip_norm: float | None = None  # of the averaged hypergradient (ours), None: no clipping
    seed: int = 0


def validation_objective(mirror, problems: list, states: list, cfg: MetaMDConfig) -> float:
    """Mean E over fixed validation problems, each replayed from its stored minibatch-stream state."""
    values = []
    for problem, state in zip(problems, states):
        if state is not None:
            problem.generator.set_state(state)
        theta_T, _, diverged, _ = inner_loop(mirror, problem, cfg.inner_steps, cfg.inner_lr)
        if diverged:
            return float("nan")
        with torch.no_grad():
            values.append(float(mirror.meta_objective(theta_T, problem.params0, cfg.k_lambda, cfg.gamma)))
    return float(np.mean(values)) if values else float("nan")


def fixed_problems(tasks: list, per_task: int, runs: int, seed: int) -> tuple[list, list]:
    """``per_task`` problems of every task, drawn once with ``seed``, and their minibatch-stream start states."""
    generator = torch.Generator().manual_seed(seed)
    problems = [task.sample(runs, generator) for task in tasks for _ in range(per_task)]
    return problems, [None if getattr(p, "generator", None) is None else p.generator.get_state() for p in problems]


def meta_train_mirror(mirror, tasks: list, cfg: MetaMDConfig, checkpointer: Checkpointer | None = None,
                      progress: bool = True, val_tasks: int = 1) -> pd.DataFrame:
    """Algorithm 1 in place on ``mirror``; one history row per meta-iteration, with E on ``val_tasks`` fixed
    problems per meta-train task before the first update (meta_step 0) and after every update."""
    if cfg.estimator not in ESTIMATORS:
        raise ValueError(f"estimator={cfg.estimator!r}; allowed values are {list(ESTIMATORS)}")
    optimizer = torch.optim.Adam(mirror.parameters(), lr=cfg.meta_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    val_problems, val_states = fixed_problems(tasks, val_tasks, cfg.runs_per_task, cfg.seed + 7_919)

    def snapshot(step, **row):
        with torch.no_grad():
            return {"meta_step": step, **row, "val_meta_objective": validation_objective(mirror, val_problems,
                                                                                         val_states, cfg),
                    "frobenius_M_minus_I": float(mirror.frobenius_distance()),
                    "lambda": float(mirror.strong_convexity()), "lambda_max": float(mirror.largest_eigenvalue())}

    history, start = [], 0
    saved = checkpointer.restore_training(asdict(cfg), mirror, optimizer, generator) if checkpointer else None
    if saved is not None:
        history, start = saved["history"], saved["step"]
    else:
        history.append(snapshot(0, meta_objective=np.nan, final_inner_loss=np.nan, skipped_tasks=0))
    k = min(cfg.tasks_per_step, len(tasks))
    for step in tqdm(range(start, cfg.meta_steps), desc="MetaMD meta-training", disable=not progress,
                     initial=start, total=cfg.meta_steps):
        chosen = torch.randperm(len(tasks), generator=generator)[:k].tolist()
        total = {name: torch.zeros_like(p) for name, p in mirror.named_parameters()}
        objectives, finals, skipped = [], [], 0
        for index in chosen:
            problem = tasks[index].sample(cfg.runs_per_task, generator)
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
        if objectives:  # line 8 averages over the tasks that gave a hypergradient; line 10: M = update(M, H)
            optimizer.zero_grad(set_to_none=True)
            scale = 1.0 / len(objectives)
            norm = float(torch.sqrt(sum((g * scale).pow(2).sum() for g in total.values())))
            if cfg.clip_norm is not None and norm > cfg.clip_norm:
                scale *= cfg.clip_norm / norm
            for name, p in mirror.named_parameters():
                p.grad = total[name] * scale
            optimizer.step()
        # A = aaᵀ + I and B = bbᵀ + I make every block positive definite (λ ≥ 1) whatever the factors are
        assert float(mirror.strong_convexity()) >= 1.0 - 1e-6, "M lost positive definiteness"
        history.append(snapshot(step + 1, meta_objective=float(np.mean(objectives)) if objectives else np.nan,
                                final_inner_loss=float(np.mean(finals)) if finals else np.nan, skipped_tasks=skipped))
        if checkpointer is not None:
            checkpointer.save_training(asdict(cfg), mirror, optimizer, generator, step=step + 1, history=history)
    return pd.DataFrame(history)


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


def meta_train_diagonal(mirror, family, cfg: QuadraticMetaConfig, progress: bool = True) -> pd.DataFrame:
    """Adam on log m with dE/d log m from :func:`forward_mode_hypergradient` (App. A.6)."""
    from .hypergradients import forward_mode_hypergradient, mirror_descent_quadratics
    from .tasks import DiagonalQuadratics

    optimizer = torch.optim.Adam(mirror.parameters(), lr=cfg.meta_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    rows = []
    for step in tqdm(range(cfg.meta_steps), desc="MetaMD (quadratics)", disable=not progress):
        problems = family.sample(cfg.tasks_per_step, generator)
        # problems on which the current M diverges (an unstable step) stay in the objective: their growth is
        # what pushes M back up; a non-finite one is left out and counted
        theta_T = mirror_descent_quadratics(mirror, problems, cfg.inner_lr, cfg.inner_steps)
        finite_tasks = torch.isfinite(problems.gap(theta_T))
        stable = finite_tasks & (problems.gap(theta_T) <= problems.gap(problems.theta1))
        objective, finite = float("nan"), False
        if finite_tasks.any():
            keep = DiagonalQuadratics(problems.q[finite_tasks], problems.b[finite_tasks], problems.theta1[finite_tasks])
            value, grad, _ = forward_mode_hypergradient(mirror, keep, cfg.inner_lr, cfg.inner_steps, cfg.k_lambda,
                                                        cfg.gamma)
            objective, finite = float(value), bool(torch.isfinite(value) and torch.isfinite(grad).all())
        if finite:
            optimizer.zero_grad(set_to_none=True)
            # a diverging problem makes the hypergradient huge; clipping its norm (ours) keeps Adam's second
            # moment from being swamped by one outlier, which would freeze M
            mirror.log_m.grad = grad.to(mirror.log_m.dtype) * min(1.0, cfg.clip_norm / float(grad.norm()))
            optimizer.step()
        rows.append({"meta_step": step + 1, "meta_objective": objective, "skipped": not finite,
                     "diverged_tasks": int((~stable).sum()),
                     **{f"m{i}": float(v) for i, v in enumerate(mirror.m.detach())}})
    return pd.DataFrame(rows)
