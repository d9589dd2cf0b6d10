"""MetaMD's outer loop (MetaMD Algorithm 1) and its meta-test evaluation (§5.2, App. A.7).

Each meta-iteration draws a minibatch of k meta-train tasks (datasets or domains); on each, fresh base
models (random initialisation) are trained with the current mirror map for T steps (to convergence,
line 7), the implicit hypergradient of Eq. 13 is computed (Algorithm 2) and averaged over the k tasks
(line 8), and the factors are updated (line 10; Adam). A non-finite inner loss or hypergradient skips that
task and is counted. The state is checkpointed after every meta-iteration: an interrupted run resumes and
ends with the same numbers (CPU, same seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .hypergradients import implicit_hypergradient
from .results import Checkpointer
from .rollout import loss_and_grads


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
    seed: int = 0


def train_inner(mirror, problem, steps: int, lr: float) -> tuple[dict, np.ndarray, bool]:
    """θ_{t+1} = θ_t − η M⁻¹∇L(θ_t) for ``steps`` steps without a meta-graph (Algorithm 1, line 7).

    Returns (θ_T, losses (steps + 1, runs), diverged).
    """
    params = {k: v.detach().clone().requires_grad_() for k, v in problem.params0.items()}
    losses = []
    for _ in range(steps):
        loss, grads = loss_and_grads(problem, params)
        losses.append(loss.detach())
        if not torch.isfinite(loss).all():
            return params, torch.stack(losses).cpu().numpy(), True
        with torch.no_grad():
            params = {k: v.requires_grad_() for k, v in mirror.step(params, grads, lr).items()}
    loss, _ = loss_and_grads(problem, params)
    losses.append(loss.detach())
    return params, torch.stack(losses).cpu().numpy(), not bool(torch.isfinite(loss).all())


def meta_train_mirror(mirror, tasks: list, cfg: MetaMDConfig, checkpointer: Checkpointer | None = None,
                      progress: bool = True, as_printed: bool = False) -> pd.DataFrame:
    """Algorithm 1 in place on ``mirror``; one history row per meta-iteration. ``as_printed``: the hypergradient
    of Eq. 13 as printed (no IFT minus sign; see :func:`implicit_hypergradient`), for the ablation."""
    optimizer = torch.optim.Adam(mirror.parameters(), lr=cfg.meta_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history, start = [], 0
    saved = checkpointer.restore_training(asdict(cfg), mirror, optimizer, generator) if checkpointer else None
    if saved is not None:
        history, start = saved["history"], saved["step"]
    k = min(cfg.tasks_per_step, len(tasks))
    for step in tqdm(range(start, cfg.meta_steps), desc="MetaMD meta-training", disable=not progress,
                     initial=start, total=cfg.meta_steps):
        chosen = torch.randperm(len(tasks), generator=generator)[:k].tolist()
        total = {name: torch.zeros_like(p) for name, p in mirror.named_parameters()}
        objectives, finals, skipped = [], [], 0
        for index in chosen:
            problem = tasks[index].sample(cfg.runs_per_task, generator)
            theta_T, losses, diverged = train_inner(mirror, problem, cfg.inner_steps, cfg.inner_lr)
            if diverged:
                skipped += 1
                continue
            objective, grads = implicit_hypergradient(mirror, theta_T, problem.params0, cfg.k_lambda, cfg.gamma,
                                                      cfg.neumann_terms, as_printed=as_printed)
            if not (torch.isfinite(objective) and all(torch.isfinite(g).all() for g in grads.values())):
                skipped += 1
                continue
            for name in total:
                total[name] += grads[name] / k
            objectives.append(float(objective))
            finals.append(float(np.mean(losses[-1])))
        if objectives:  # line 10: M = update(M, H)
            optimizer.zero_grad(set_to_none=True)
            for name, p in mirror.named_parameters():
                p.grad = total[name]
            optimizer.step()
        # A = aaᵀ + I and B = bbᵀ + I make every block positive definite (λ ≥ 1) whatever the factors are
        assert float(mirror.strong_convexity()) >= 1.0 - 1e-6, "M lost positive definiteness"
        with torch.no_grad():
            history.append({"meta_step": step + 1, "meta_objective": float(np.mean(objectives)) if objectives else np.nan,
                            "final_inner_loss": float(np.mean(finals)) if finals else np.nan,
                            "skipped_tasks": skipped, "frobenius_M_minus_I": float(mirror.frobenius_distance()),
                            "lambda": float(mirror.strong_convexity()),
                            "lambda_max": float(mirror.largest_eigenvalue())})
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
