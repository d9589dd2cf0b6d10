"""Meta-training ARUBA / ARUBA++ (Khodak et al. 2019, Algorithm 2; :mod:`l2l_utils.learned_optimizers.aruba`): the
meta-train tasks are met one after another (online); each is trained from a fresh initialisation with the current
per-coordinate rates, then its displacement and squared gradients are added to B and G."""

from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..learned_optimizers.aruba import ArubaRates, ArubaRule
from ..optimizers.unroll import unroll


def fit_aruba(aruba: ArubaRates, task, tasks: int, inner_steps: int, lr: float, online: bool = False,
              runs_per_task: int = 1, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Run ``tasks`` problems of ``task`` (anything with ``sample(n, generator)``, e.g. a MixtureTask of the
    meta-train domains) in sequence, ``inner_steps`` steps each with ARUBA (``online=False``) or ARUBA++, updating
    ``aruba`` after each. Returns one row per task: its final training loss and the mean rate η it ran with."""
    if tasks < 1 or inner_steps < 1:
        raise ValueError(f"fit_aruba needs tasks >= 1 and inner_steps >= 1, got {tasks}, {inner_steps}")
    generator, rows = torch.Generator().manual_seed(seed), []
    for index in tqdm(range(tasks), desc="ARUBA++" if online else "ARUBA", disable=not progress, leave=False):
        problem = task.sample(runs_per_task, generator)
        rate = float(torch.cat([r.reshape(-1) for r in aruba.rates().values()]).mean())
        run = unroll(ArubaRule(aruba, lr, online), problem, inner_steps)
        aruba.observe(problem.params0, run.detached_params, run.state["squared"])
        rows.append({"task": index, "final_loss": float(torch.tensor(run.final).mean()), "mean_rate": rate})
    return pd.DataFrame(rows)
