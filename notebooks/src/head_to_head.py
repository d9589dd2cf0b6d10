# %% [markdown]
# # Head to head: the learned optimizers of the five papers under one protocol
#
# The five other notebooks each replicate one paper: its method, its baselines, its tasks, budgets and tuning. Here
# every learned optimizer of the five papers is meta-trained and tested **under one protocol**, beside four
# hand-designed optimizers tuned the same way, and the papers' generalisation statements are judged again on the
# common ground.
#
# | optimizer | paper | its own meta-loss and truncation (used here) | its own architecture and inputs |
# |---|---|---|---|
# | L2L LSTM | Andrychowicz et al. 2016 | Eq. 2, w_t = 1, truncations of 20 (§3) | 2×20 coordinatewise LSTM, App. A preprocessing (p = 10), output ×0.1 |
# | RNNProp | Lv et al. 2017 (the SimpleOptimizer paper's baseline) | the last step of a truncation (SimpleOptimizer §3.2's account of Lv et al.); random scaling exp(U[−3, 3]) and a mixed-in convex function; no truncation given: the protocol's 20 | 2→20 ELU, 2×20 LSTM, Adam-like inputs, α·tanh output |
# | SimpleOptimizer | *Learning to Learn with Better Convergence* | Eq. 6 with w_i = i² (the sign corrected, as the SimpleOptimizer notebook shows), truncations of 20 (§4) | bias-free RNN of 10 units with mean aggregation (132 parameters) |
# | MTL2L | Kuo et al. 2020 | Algorithm 1: w_t = 1, Ξ = 5 (App. B.4); meta-gradients clamped to ±1, hypernetwork dropout, perturbations (authors' code) | SVD-LSTM 2×20 with hypernetworks on the minibatch (scenario 1, no Eq. 17) |
# | Meta-SGD | Li et al. 2017 (the MetaMD paper's baseline) | Eq. 2, w_t = 1 (the MetaMD notebook trains it so); no truncation given: the protocol's 20 | one learned rate per parameter |
# | MetaMD | *MetaMD* (ICLR submission) | Eq. 8 (Bregman divergence + k/λ + γ‖M − I‖), unrolled hypergradient over T steps (Algorithm 1) | Kronecker-factored mirror map per layer; its step size η tuned like the hand-designed rates (App. A.7 tunes it) |
# | meta-learner LSTM, TURTLE | Ravi & Larochelle 2017, Huisman et al. 2022 | — | not run: see section 2 |
#
# **The protocol, stated once.** The meta-training task family is Andrychowicz et al. §3.2's: MNIST, an MLP
# 784-20-10 with sigmoid units, minibatches of 128, θ0 ~ N(0, 0.01²), T = `train_steps` optimizee steps. Every
# learned optimizer gets the same budget of `meta_budget` optimizee steps seen in meta-training (for the truncated-BPTT
# optimizers `meta_budget / train_steps` trajectories over `epochs` epochs, the best epoch on validation optimizees
# chosen as in the L2L notebook; for MetaMD `meta_budget / (k·T)` meta-iterations of k optimizees of T steps; steps on
# validation optimizees are not counted). Its wall-clock time is measured and reported beside it. Each uses its own
# paper's meta-loss, truncation, architecture and gradient preprocessing (table above); where a paper gives none the
# protocol's value is used and the table says so. Inputs are not normalised for any optimizer (Kuo et al.'s code
# normalises MNIST; one task must be the same task for all). Adam at `meta_lr` on the meta-parameters for all.
#
# **Did it learn?** A learned optimizer is compared only after it passes the gate of
# `l2l_utils.reporting.learning_gate`: against the same network before meta-training on `test_runs` fresh optimizees
# of the training task, its mean loss over the horizon is lower and its loss at the horizon at least 10% below θ0
# (paired). MetaMD's meta-loss is not the training loss, so its gate is its own: Eq. 8 on fixed problems below that of
# its initial M. A row of an optimizer that failed says "did not learn", and every claim that uses it is inconclusive.
#
# **Hand-designed opponents.** Adam, RMSprop, SGD with momentum 0.9 (SGD-M) and NAG (torch.optim, other settings at
# torch's defaults), each with one learning rate chosen from one grid (`lr_grid`, extended past an edge by up to
# `lr_grid_extensions` rates) on `tune_runs` optimizees of the training task at its horizon, and used unchanged in
# every cell: the same information the learned optimizers got.
#
# **Generalisation grid.** The training task at its horizon; at `long_factor` × the horizon; a wider (40 units) and
# a deeper (2 hidden layers) MLP and ReLU units (L2L Fig. 5); Fashion-MNIST and KMNIST (KMNIST: its train and test
# splits where its train split is on disk, `make data PROFILE=paper`; else, as with the offline copy here, a seeded
# `kmnist_train_share` of its test split is the training pool, the rest the test set); LeNet-5 on MNIST (the
# SimpleOptimizer paper's Fig. 4a; θ0 from torch's default initialisation, since N(0, 0.01²) leaves a 5-layer ReLU
# network without signal). Per cell and optimizer `test_runs` independent runs (the same θ0 and minibatches for every
# optimizer: paired); score = mean training loss over the last `score_window` steps; accuracy on the cell's test set
# at the end; a diverged run is a failure (counted, never dropped).
#
# **Profiles.** `smoke` (default) runs every section at toy size on a CPU in about a minute: its verdicts read
# "smoke: pipeline ran" and are no evidence; `cpu` is sized for about two hours on two CPU cores; `paper` uses the
# papers' budget (L2L's 100 epochs × 100 trajectories of 100 steps). Sizes can be overridden:
# `papermill ... -p profile cpu -y "overrides: {test_runs: 8}"`; every override is named in the claims table.
#
# **How claims are judged.** By the verdict functions of `l2l_utils.reporting.verdicts` (95% intervals over the test
# runs, paired; "reproduced"/"not reproduced" only when the interval excludes the threshold, never below 6 runs).

# %% tags=["parameters"]
profile = "smoke"     # "smoke", "cpu" or "paper"
seed = 0              # non-negative integer
device = "auto"       # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
data_dir = None       # data root; default: $L2L_DATA_DIR, else <project>/data
results_dir = None    # default: runs/<profile>/results/head_to_head
figures_dir = None    # default: figures/head_to_head
overrides = {}        # any profile size, e.g. {"test_runs": 8}
progress = True       # tqdm progress bars

# %%
import time
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from l2l_utils.evaluation.comparison import best_learning_rates, scores_at, tidy, tune_baselines, tuned_at_edge
from l2l_utils.evaluation.meta_test import split_data
from l2l_utils.harness.notebook_setup import start_notebook
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer, PerParameterLearningRates
from l2l_utils.learned_optimizers.mirror_descent import KroneckerMirrorMap, MirrorDescentOptimizer
from l2l_utils.learned_optimizers.mtl2l import MTL2LOptimizer
from l2l_utils.learned_optimizers.rnnprop import RNNProp
from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer, update_times
from l2l_utils.meta_training.meta_losses import step_weights, term
from l2l_utils.meta_training.mirror_map_training import (MetaMDConfig, fixed_problems, meta_train_mirror,
                                                         validation_objectives)
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, meta_train_cached, meta_train_key
from l2l_utils.optimizers.baselines import baseline_rule
from l2l_utils.optimizers.grid_search import search_grid
from l2l_utils.optimizers.unroll import loss_and_grads, unroll
from l2l_utils.optimizers.update_rules import Context, state_numel
from l2l_utils.reporting.claims import frame_to_markdown
from l2l_utils.reporting.confidence import confidence_interval
from l2l_utils.reporting.learning_gate import CHANCE_10_CLASSES, did_it_learn_from_validation, gate, gated
from l2l_utils.reporting.plotting import profile_title, save_figure
from l2l_utils.reporting.verdicts import (across, all_of, better, better_than_all, negate, short_of_horizon,
                                         with_positive_control)
from l2l_utils.storage.results import cached_frame, cached_training, training_key
from l2l_utils.tasks.datasets import DatasetMissingError, DeviceDataset, load_dataset
from l2l_utils.tasks.datasets.files import has_train_split
from l2l_utils.tasks.models import lenet, mlp
from l2l_utils.tasks.problems import ClassifierTask, ConvexMixedTask, RandomlyScaledTask

PAPER = "head_to_head"
# Every parameter is checked here, before any compute; a bad value stops with a message naming it.
run = start_notebook(PAPER, "Head to head (learned optimizers of the five papers)", profile, seed, device,
                     results_dir, figures_dir, overrides)
cfg, dev, results_dir, figures_dir, store, claims, run_note = (
    run.cfg, run.device, run.results_dir, run.figures_dir, run.store, run.claims, run.run_note)
started = run.started
TUNE_SEED, TEST_SEED = 1_000 * seed + 7, 1_000 * seed + 123   # tuning and test optimizees differ from training
HAND = {"Adam": "ADAM", "RMSprop": "RMSprop", "SGD-M": "SGD-M", "NAG": "NAG"}  # shown name: torch.optim rule
PAIRED = dict(paired=True, unit="test runs", seed=seed)
vectorize = dev.type == "cuda"  # on a CPU a loop over runs is faster for convolutions (l2l_utils.tasks.models)


def problems(task, n, problem_seed):
    """The same n optimizees (θ0 and minibatch streams) at every call: every optimizer sees the same runs."""
    return lambda: task.sample(n, torch.Generator().manual_seed(problem_seed))


# %% [markdown]
# ## 1. Data and the meta-training task

# %%
pools, data_notes = {}, {}
KMNIST_PAPER_SPLIT = has_train_split("KMNIST", data_dir)  # else a seeded share of its test split is the training pool
for name in ("MNIST", "FashionMNIST", "KMNIST"):
    if name != "MNIST" and name not in cfg.cells:
        continue
    try:
        if name == "KMNIST" and not KMNIST_PAPER_SPLIT:
            train, test = split_data(load_dataset("KMNIST", "test", data_dir), cfg.kmnist_train_share, seed)
            data_notes[name] = (f"KMNIST: only the test split is on disk; its seeded {cfg.kmnist_train_share:g} share "
                                f"({len(train)} images) is the training pool, the other {len(test)} the test set")
        else:
            train, test = load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)
            data_notes[name] = f"{name}: {len(train)} train / {len(test)} test images" + (
                " (the paper's split)" if name == "KMNIST" else "")
        pools[name] = (train, test)
    except DatasetMissingError as missing:
        data_notes[name] = f"{name} data missing"
        print(f"{name}: not available\n{missing}")
print("\n".join(data_notes.values()))
HAVE_MNIST = "MNIST" in pools


def device_data(name, split, flatten):
    """The training pool or the test set of ``name`` on the device (test sets cut to `test_images`)."""
    data = pools[name][0 if split == "train" else 1]
    if split == "test" and cfg.test_images < len(data):  # a seeded subset of the test set (smaller profiles)
        data = split_data(data, cfg.test_images / len(data), seed)[0]
    return DeviceDataset.from_image_data(data, dev, flatten=flatten)


def mlp_task(hidden, activation="sigmoid", dataset="MNIST"):
    return ClassifierTask(mlp(784, hidden, 10, activation), device_data(dataset, "train", True), cfg.batch_size,
                          cfg.init_std)


if HAVE_MNIST:
    train_task = mlp_task([cfg.hidden], cfg.activation)
    print(f"meta-training task: MNIST MLP 784-{cfg.hidden}-10 {cfg.activation}, {train_task.num_params:,} parameters, "
          f"batch {cfg.batch_size}, θ0 ~ N(0, {cfg.init_std}²), T = {cfg.train_steps}")

# %% [markdown]
# ## 2. Meta-training every learned optimizer under one budget
#
# **Not run: the meta-learner LSTM (Ravi & Larochelle) and TURTLE (Huisman et al.).** Both are episodic few-shot
# meta-learners (Huisman et al. Algorithm 1): what they learn is, jointly, the initialisation θ of *one* base network
# and a rule that adapts it in T ≤ 10 steps to a support set of a few examples per class, judged on the query set;
# TURTLE's per-parameter rates α and the meta-learner LSTM's cell state are tied to that network's parameter vector,
# and TURTLE's g_φ reads the step number t ∈ {0..T−1}. Meta-training them on the protocol's task (100-step
# trajectories from random θ0 on minibatches of 10 classes) would train a different method under their names, and
# using the rule without its learned θ would drop half of what they learn. They are therefore listed with this
# reason in every cell; the TURTLE notebook compares them on their own few-shot problems (MAML likewise: it learns
# an initialisation, not an optimizer).

# %%
NOT_RUN = {
    "meta-learner LSTM": "few-shot episodic meta-learner: learns θ0 of one base network with a ≤10-step support-set "
                         "rule (Huisman et al. Alg. 1); not an optimizer of fresh networks over 100+ steps",
    "TURTLE": "few-shot episodic meta-learner: learns θ0 and per-parameter rates of one base network, g_φ reads the "
              "step t of a ≤10-step episode (Huisman et al. §4.3); not an optimizer of fresh networks over 100+ "
              "steps",
}
BPTT = {  # name: (module factory, meta-loss weights, term, truncation, training-task wrapper, meta-gradient clamp)
    "L2L LSTM": (lambda shapes: LSTMOptimizer(preprocess_p=10.0, output_scale=0.1, init_std=0.1, init="normal"),
                 "uniform", "sum", cfg.unroll, None, None),
    "RNNProp": (lambda shapes: RNNProp(init="authors"), "last", "sum", cfg.unroll,
                lambda task: ConvexMixedTask(RandomlyScaledTask(task, 3.0)), None),
    "SimpleOptimizer": (lambda shapes: SimpleOptimizer(10, mean_over="network", init="pytorch"), "square",
                        "difference", cfg.unroll, None, None),
    "MTL2L": (lambda shapes: MTL2LOptimizer("paper", momentum=0.0, dropout=(0.1, 0.25, 0.1), perturbation=True,
                                            perturbation_horizon=cfg.train_steps, seed=seed),
              "uniform", "sum", cfg.mtl2l_unroll, None, 1.0),
    "Meta-SGD": (lambda shapes: PerParameterLearningRates(shapes, cfg.metasgd_init_lr), "uniform", "sum", cfg.unroll,
                 None, None),
}
LEARNED = [*BPTT, "MetaMD"]
TASK_KEY = {"task": f"MNIST-mlp-784-{cfg.hidden}-10-{cfg.activation}", "batch": cfg.batch_size,
            "init_std": cfg.init_std, "steps": cfg.train_steps}


def new_rule(name):
    torch.manual_seed(seed)
    return BPTT[name][0](train_task.shapes).to(dev)


def options(weights, loss_term):
    return {"weights": lambda position, length: step_weights(weights, length, position), "term": term(loss_term)}


def bptt_config(name):
    unroll_length, clamp = BPTT[name][3], BPTT[name][5]
    trajectories = max(1, cfg.meta_budget // (cfg.train_steps * cfg.epochs))
    return MetaTrainConfig(steps=cfg.train_steps, unroll=unroll_length, meta_batch=1, epochs=cfg.epochs,
                           trajectories_per_epoch=trajectories, val_problems=cfg.val_problems, meta_lr=cfg.meta_lr,
                           seed=seed, clip_value=clamp)


def metamd_config():
    per_step = cfg.metamd_tasks_per_step * cfg.train_steps
    return MetaMDConfig(meta_steps=max(1, cfg.meta_budget // per_step), tasks_per_step=cfg.metamd_tasks_per_step,
                        runs_per_task=1, inner_steps=cfg.train_steps, inner_lr=cfg.metamd_inner_lr,
                        k_lambda=cfg.metamd_k_lambda, gamma=cfg.metamd_gamma, meta_lr=cfg.meta_lr,
                        estimator=cfg.metamd_hypergradient, seed=seed)


def new_mirror():
    return KroneckerMirrorMap(train_task.shapes, init_norm=cfg.metamd_init_norm,
                              generator=torch.Generator().manual_seed(seed)).to(dev)


def meta_train_all():
    """Every learned optimizer meta-trained (cached by its setting): {name: module}, {name: key}, cost rows."""
    trained, keys, rows = {}, {}, []
    for name, (make, weights, loss_term, length, wrap, clamp) in BPTT.items():
        rule, meta = new_rule(name), bptt_config(name)
        setting = {"optimizer": name, **TASK_KEY, "weights": weights, "term": loss_term, "module": repr(rule)}
        begun = time.perf_counter()
        history, reused = meta_train_cached(rule, wrap(train_task) if wrap else train_task, meta, results_dir,
                                            name.replace(" ", "_"), setting, progress, options(weights, loss_term),
                                            val_task=train_task if wrap else None)
        wall = time.perf_counter() - begun
        trained[name], keys[name] = rule.eval(), meta_train_key(results_dir, name.replace(" ", "_"), meta, setting)
        steps_seen = meta.epochs * meta.trajectories_per_epoch * meta.steps * meta.meta_batch
        rows.append({"optimizer": name, "key": keys[name], "meta-loss": f"{weights} weights, {loss_term}",
                     "truncation": length, "optimizee steps seen": steps_seen, "wall_s": wall, "reused": reused,
                     "best epoch": int(history.best_epoch.iloc[0]),
                     "meta-parameters": sum(p.numel() for p in rule.parameters())})
    mirror, mcfg = new_mirror(), metamd_config()
    key = {"meta": asdict(mcfg), "init_norm": cfg.metamd_init_norm, **TASK_KEY}
    begun = time.perf_counter()
    _, reused = cached_training(results_dir, "metamd", key, mirror,
                                lambda checkpointer: meta_train_mirror(mirror, [train_task], mcfg, checkpointer,
                                                                       progress, val_tasks=1))
    trained["MetaMD"], keys["MetaMD"] = mirror, training_key(results_dir, "metamd", key)
    rows.append({"optimizer": "MetaMD", "key": keys["MetaMD"], "meta-loss": "Eq. 8, unrolled hypergradient",
                 "truncation": cfg.train_steps,
                 "optimizee steps seen": mcfg.meta_steps * mcfg.tasks_per_step * mcfg.inner_steps,
                 "wall_s": time.perf_counter() - begun, "reused": reused, "best epoch": mcfg.meta_steps,
                 "meta-parameters": mirror.num_meta_parameters})
    return trained, keys, rows


if HAVE_MNIST:
    trained, keys, cost_rows = meta_train_all()
    # wall-clock of a reused run is the stored one (a cached frame keyed by the trained optimizers)
    meta_cost, _ = cached_frame(store, "meta-training-cost", {"keys": keys},
                                lambda: pd.DataFrame(cost_rows).drop(columns="reused"))
    display(meta_cost.set_index("optimizer").drop(columns="key"))

# %% [markdown]
# ### Did each learned optimizer learn?

# %%
gates = {}
if HAVE_MNIST:
    for name in BPTT:
        gates[name] = gate(name, trained[name], new_rule(name).eval(), problems(train_task, cfg.test_runs, TEST_SEED),
                           cfg.train_steps, chance=CHANCE_10_CLASSES)
    gate_problems, gate_states = fixed_problems([train_task], cfg.test_runs, 1, TEST_SEED)
    view = MetaMDConfig(inner_steps=cfg.train_steps, inner_lr=cfg.metamd_inner_lr, k_lambda=cfg.metamd_k_lambda,
                        gamma=cfg.metamd_gamma)
    with torch.no_grad():
        gates["MetaMD"] = did_it_learn_from_validation(
            "MetaMD", validation_objectives(new_mirror(), gate_problems, gate_states, view),
            validation_objectives(trained["MetaMD"], gate_problems, gate_states, view), unit="test problems")
    display(pd.DataFrame({"gate": {n: g.verdict for n, g in gates.items()},
                          "measured": {n: g.measured for n, g in gates.items()}}))


def learned_label(name):
    """A learned optimizer's row name: "did not learn" where its gate failed, "not shown to learn" where the gate
    could not decide (e.g. too few test runs)."""
    kind = gates[name].kind if name in gates else "reproduced"
    return {"reproduced": name, "not reproduced": f"{name} (did not learn)"}.get(kind, f"{name} (not shown to learn)")


def uses(*names):
    return {name: gates[name] for name in names if name in gates}


# %% [markdown]
# ## 3. Hand-designed opponents, tuned on the meta-training task
#
# One grid for every hand-designed optimizer and for MetaMD's step size η (its deployment needs one; MetaMD App. A.7
# grid-searches it): the best mean final loss on `tune_runs` optimizees of the training task at its horizon.

# %%
if HAVE_MNIST:
    tune = problems(train_task, cfg.tune_runs, TUNE_SEED)

    def tune_all():
        _, table = tune_baselines(list(HAND.values()), cfg.lr_grid, tune, cfg.train_steps, cfg.lr_grid_extensions)

        def metamd_score(lr):
            final = unroll(MirrorDescentOptimizer(trained["MetaMD"], lr), tune(), cfg.train_steps).final
            return float(np.mean(final)) if np.all(np.isfinite(final)) else float("inf")

        grid = search_grid(metamd_score, cfg.lr_grid, cfg.lr_grid_extensions)
        metamd = pd.DataFrame([{"optimizer": "MetaMD", "lr": lr, "mean_final_loss": score,
                                "extended": lr in grid.extended} for lr, score in grid.scores.items()])
        return pd.concat([table, metamd], ignore_index=True)

    tuning, _ = cached_frame(store, "tuning", {"keys": keys, "grid": cfg.lr_grid, "ext": cfg.lr_grid_extensions,
                                               "n": cfg.tune_runs, **TASK_KEY}, tune_all)
    rates = best_learning_rates(tuning)
    edge = tuned_at_edge(tuning)
    print("grid:", cfg.lr_grid, f"(extended past an edge by up to {cfg.lr_grid_extensions} rates)")
    shown = {rule: name for name, rule in HAND.items()}
    display(tuning.assign(optimizer=tuning.optimizer.map(lambda n: shown.get(n, n)))
            .pivot_table(index="lr", columns="optimizer", values="mean_final_loss"))
    print("chosen rates:", {shown: rates[rule] for shown, rule in HAND.items()}, "| MetaMD η:", rates["MetaMD"],
          "| at the edge of the grid searched:", edge or "none")

# %% [markdown]
# ## 4. The generalisation grid
#
# Every optimizer on every cell, on the same test optimizees. Learned optimizers whose tensors are tied to the
# training network's shapes are carried over as their papers do for new networks: Meta-SGD's rates and MetaMD's
# factors keep every tensor (factor) whose size matches and fall back where it does not (`transfer` of each class:
# Meta-SGD a mean rate, MetaMD an identity factor). Tensors are matched by name, not by role: in the deeper MLP the
# training network's output layer "2" meets a hidden layer "2" of 20×20, and keeps what fits (its input side). This
# carry-over is ours (neither paper meta-tests on other architectures than it meta-trains on in this way); the
# coordinatewise optimizers (the LSTMs, RNNProp, SimpleOptimizer, MTL2L) need nothing. MTL2L's hypernetworks read 784-pixel minibatches, so they apply to every cell here.

# %%
CELL_SPECS = {  # cell: (network, activation, dataset, steps factor, flatten)
    "training": (("mlp", [cfg.hidden]), cfg.activation, "MNIST", 1),
    "10x horizon": (("mlp", [cfg.hidden]), cfg.activation, "MNIST", cfg.long_factor),
    "wider": (("mlp", [cfg.wide_hidden]), cfg.activation, "MNIST", 1),
    "deeper": (("mlp", [cfg.hidden] * cfg.deep_layers), cfg.activation, "MNIST", 1),
    "relu": (("mlp", [cfg.hidden]), "relu", "MNIST", 1),
    "FashionMNIST": (("mlp", [cfg.hidden]), cfg.activation, "FashionMNIST", 1),
    "KMNIST": (("mlp", [cfg.hidden]), cfg.activation, "KMNIST", 1),
    "LeNet": (("lenet", None), "relu", "MNIST", 1),
}
CELL_NAMES = {"training": f"training task, {cfg.train_steps} steps",
              "10x horizon": f"{cfg.long_factor}× horizon ({cfg.long_factor * cfg.train_steps} steps)",
              "wider": f"MLP 784-{cfg.wide_hidden}-10", "deeper": f"MLP {cfg.deep_layers}×{cfg.hidden} hidden",
              "relu": "ReLU MLP", "FashionMNIST": "Fashion-MNIST",
              "KMNIST": "KMNIST (the paper's split)" if KMNIST_PAPER_SPLIT else "KMNIST (test split as pool)",
              "LeNet": "LeNet-5 on MNIST"}
cells = [c for c in CELL_SPECS if c in cfg.cells]


def cell_task(cell):
    (kind, hidden), activation, dataset, _ = CELL_SPECS[cell]
    if kind == "lenet":
        return ClassifierTask(lenet(), device_data(dataset, "train", False), cfg.batch_size, None,
                              vectorize=vectorize), device_data(dataset, "test", False)
    return mlp_task(hidden, activation, dataset), device_data(dataset, "test", True)


def rules_for(task):
    """Every optimizer that runs on ``task``: the learned ones (carried over to its shapes where needed) and the
    hand-designed ones at their tuned rates."""
    same = dict(task.shapes) == dict(train_task.shapes)
    rules = {name: trained[name] for name in ("L2L LSTM", "RNNProp", "SimpleOptimizer", "MTL2L")}
    rules["Meta-SGD"] = trained["Meta-SGD"] if same else trained["Meta-SGD"].transfer(task.shapes)
    mirror = trained["MetaMD"] if same else trained["MetaMD"].transfer(task.shapes)
    rules["MetaMD"] = MirrorDescentOptimizer(mirror, rates["MetaMD"])
    rules.update({shown: baseline_rule(rule, rates[rule]) for shown, rule in HAND.items()})
    return rules


def evaluate(rules, task, test_data, steps, at):
    """Every rule on the same ``test_runs`` optimizees for ``steps`` steps: tidy losses, and test-set accuracy and
    loss at each step of ``at`` (NaN where a run diverged)."""
    frames, finals = [], []
    for name, rule in rules.items():
        if isinstance(rule, torch.nn.Module):
            rule.eval()
        checks = {}
        bar = tqdm(total=steps, desc=name, disable=not progress, leave=False)

        def monitor(t, params):
            bar.update(1 if t else 0)
            if t in at:
                with torch.no_grad():
                    checks[t] = (task.accuracy(params, test_data).float().cpu().numpy(),
                                 task.test_loss(params, test_data).float().cpu().numpy())

        result = unroll(rule, problems(task, cfg.test_runs, TEST_SEED)(), steps, monitor=monitor)
        bar.close()
        frames.append(tidy(result, name))
        for t, (accuracy, loss) in checks.items():
            broke = ~np.isfinite(result.losses[t])
            finals.append(pd.DataFrame({"optimizer": name, "run": np.arange(len(accuracy)), "step": t,
                                        "test_accuracy": np.where(broke, np.nan, accuracy),
                                        "test_loss": np.where(broke, np.nan, loss)}))
    return pd.concat(frames, ignore_index=True), pd.concat(finals, ignore_index=True)


curves, finals, not_run_cells = {}, {}, {}
if HAVE_MNIST:
    groups = {}  # the training cell is the first train_steps of the long run when both are asked for
    for cell in cells:
        dataset = CELL_SPECS[cell][2]
        if dataset not in pools:
            not_run_cells[cell] = f"{dataset} data missing"
            continue
        base = "training" if cell == "10x horizon" and "training" in cells else cell
        groups.setdefault(base, []).append(cell)
    for base, members in groups.items():
        task, test_data = cell_task(base)
        steps = {c: cfg.train_steps * CELL_SPECS[c][3] for c in members}
        horizon = max(steps.values())
        setting = {"keys": keys, "rates": rates, "n": cfg.test_runs, "steps": sorted(steps.values()),
                   "network": repr(task.module), "data": [data_notes[CELL_SPECS[base][2]], cfg.test_images], **TASK_KEY}
        combined, _ = cached_frame(store, f"cell-{base}", setting, lambda: pd.concat(
            [part.assign(kind=kind) for kind, part in
             zip(("curve", "final"), evaluate(rules_for(task), task, test_data, horizon, set(steps.values())))],
            ignore_index=True))
        frame, final = combined[combined.kind == "curve"], combined[combined.kind == "final"]
        for cell, cell_steps in steps.items():
            curves[cell] = frame[frame.step <= cell_steps]
            finals[cell] = final[final.step == cell_steps]
        print(f"{base}: {', '.join(members)} done ({time.perf_counter() - started:.0f} s so far)")

# %% [markdown]
# ## 5. The table: final training loss per cell (mean and 95% interval over the test runs)
#
# Each cell: the mean over test runs of the run's mean training loss over its last `score_window` steps, with the
# Student-t 95% interval (a diverged run makes the mean infinite: "diverged k/n"). The lowest mean of a column is
# **bold**; ★ marks it where the verdict functions decide it is below every other optimizer of the column (paired
# over the test runs), "(n.d.)" where they do not. Learned optimizers that failed their gate say so in their row
# name and are not candidates for the mark. A second table gives the test accuracy at the end.

# %%
def cell_scores(cell):
    steps = cfg.train_steps * CELL_SPECS[cell][3]
    return scores_at(curves[cell], steps, cfg.score_window)


def accuracy_scores(cell):
    part = finals[cell].sort_values("run")
    return {name: g.test_accuracy.to_numpy(dtype=float) for name, g in part.groupby("optimizer", sort=False)}


def describe(values, digits=3):
    values = np.asarray(values, dtype=float)
    failed = int((~np.isfinite(values)).sum())
    if failed:
        return f"diverged {failed}/{len(values)}"
    mean, low, high = confidence_interval(values, "mean")
    return f"{mean:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def best_marks(scores, direction):
    """The best mean of a column among the optimizers that may be compared, and whether it is decided."""
    candidates = {n: v for n, v in scores.items() if n not in gates or gates[n].kind == "reproduced"}
    finite = {n: np.mean(v) for n, v in candidates.items() if np.all(np.isfinite(v))}
    if not finite:
        return None, None
    pick = (min if direction == "lower" else max)(finite, key=finite.get)
    others = [n for n in candidates if n != pick]
    return pick, better_than_all(candidates, pick, others, direction=direction, **PAIRED) if others else None


ROWS = [*LEARNED, *NOT_RUN, *HAND]


def results_table(score_of, direction, digits):
    table, decisions = {}, {}
    for cell in cells:
        column = {}
        if cell in not_run_cells:
            column = {row: f"not run: {not_run_cells[cell]}" for row in ROWS}
        else:
            scores = score_of(cell)
            best, decided = best_marks(scores, direction)
            decisions[cell] = (best, decided)
            for row in ROWS:
                if row in NOT_RUN:
                    column[row] = "not run (section 2)"
                    continue
                text = describe(scores[row], digits)
                if row == best:
                    shown = decided is not None and decided.kind == "reproduced"
                    text = f"**{text}** " + ("★" if shown else "(n.d.)")
                column[row] = text
        table[CELL_NAMES[cell]] = column
    frame = pd.DataFrame(table)
    frame.index = [learned_label(r) if r in LEARNED else r for r in frame.index]
    return frame, decisions


if HAVE_MNIST:
    loss_table, loss_decisions = results_table(cell_scores, "lower", 3)
    accuracy_table, _ = results_table(accuracy_scores, "higher", 3)
    store.save("table-final-loss", loss_table.reset_index(names="optimizer"))
    store.save("table-test-accuracy", accuracy_table.reset_index(names="optimizer"))
    display(Markdown("**Final training loss**\n\n" + frame_to_markdown(loss_table.reset_index(names="optimizer"))))
    display(Markdown("**Test accuracy at the end**\n\n"
                     + frame_to_markdown(accuracy_table.reset_index(names="optimizer"))))
    print("not run, why:", NOT_RUN)
    for cell, (best, decided) in loss_decisions.items():
        print(f"{cell}: lowest mean {best}; {'decided' if decided and decided.kind == 'reproduced' else 'not decided'}"
              + (f" — {decided.verdict}" if decided else ""))

# %% [markdown]
# ## 6. Curves per cell and the rank plot

# %%
STYLE = {"L2L LSTM": "tab:orange", "RNNProp": "tab:red", "SimpleOptimizer": "tab:blue", "MTL2L": "black",
         "Meta-SGD": "tab:olive", "MetaMD": "tab:cyan", "Adam": "tab:purple", "RMSprop": "tab:brown",
         "SGD-M": "tab:green", "NAG": "tab:gray"}


def plot_cell(ax, frame, title):
    ok = frame[~frame.diverged.astype(bool)]
    mean = ok.groupby(["step", "optimizer"]).loss.mean().unstack("optimizer")
    for name in [n for n in STYLE if n in mean.columns]:
        failed = int(frame[frame.optimizer == name].drop_duplicates("run").diverged.sum())
        ax.plot(mean.index, mean[name], color=STYLE[name], linestyle="--" if name in HAND else "-", linewidth=1.4,
                label=learned_label(name) + (f" ({failed} diverged)" if failed else ""))
    ax.set(yscale="log", xlabel="step", ylabel="training loss", title=title)


if curves:
    columns = min(4, len(curves))
    rows_ = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows_, columns, figsize=(4.2 * columns, 3.4 * rows_), constrained_layout=True,
                             squeeze=False)
    for ax, cell in zip(axes.flat, curves):
        plot_cell(ax, curves[cell], CELL_NAMES[cell])
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8)
    fig.suptitle(profile_title("Mean training loss per cell", profile, run_note))
    save_figure(fig, figures_dir, "curves_per_cell")
    plt.show()

    ranks = pd.DataFrame({cell: pd.Series({n: (np.mean(v) if np.all(np.isfinite(v)) else np.inf)
                                           for n, v in cell_scores(cell).items()}).rank(method="min")
                          for cell in curves})
    fig, ax = plt.subplots(figsize=(1.2 * len(curves) + 4, 4), constrained_layout=True)
    for name in ranks.index:
        ax.plot(range(len(curves)), ranks.loc[name], marker="o", color=STYLE[name],
                linestyle="--" if name in HAND else "-", label=learned_label(name))
    ax.set_xticks(range(len(curves)), [CELL_NAMES[c] for c in curves], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="rank by mean final loss (1 = best)", title=profile_title("Ranks per cell", profile, run_note))
    ax.invert_yaxis()
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    save_figure(fig, figures_dir, "ranks")
    plt.show()
    store.save("ranks", ranks.reset_index(names="optimizer"))
    display(ranks)

# %% [markdown]
# ## 7. The papers' generalisation statements, judged under the common protocol
#
# Each is a measured ranking: who is below whom in which cell, decided by the verdict functions over the test runs
# (paired), every row gated on the learned optimizers it uses. A statement the paper makes at a horizon this profile
# does not reach is at most "partly" (`short_of_horizon`).

# %%
def at(cell, names):
    scores = cell_scores(cell)
    return {n: scores[n] for n in names}


def has(*needed):
    return HAVE_MNIST and all(c in curves for c in needed)


def halving(cell_from, cell_to, name):
    a, b = cell_scores(cell_to)[name], cell_scores(cell_from)[name]
    return better(a, b, (f"{name} at {CELL_NAMES[cell_to]}", f"{name} at {CELL_NAMES[cell_from]}"), margin=0.5,
                  **PAIRED)


hand = list(HAND)
STATEMENTS = {
    "L2L Fig. 4 (training task)": ("Andrychowicz et al. §3.2: on the task it was trained on, the LSTM optimizer "
                                   "outperforms the hand-designed optimizers", ("training",)),
    "L2L Fig. 4 (longer horizon)": ("Andrychowicz et al. Fig. 4 right: run beyond its training horizon (2× there) the "
                                    "LSTM optimizer keeps outperforming the hand-designed optimizers",
                                    ("10x horizon",)),
    "L2L Fig. 5 (wider, deeper)": ("Andrychowicz et al. Fig. 5: the LSTM optimizer generalises to a wider (40 units) "
                                   "and a deeper (2 hidden layers) MLP, outperforming the hand-designed optimizers",
                                   ("wider", "deeper")),
    "L2L Fig. 5 (ReLU)": ("Andrychowicz et al. Fig. 5 right: with ReLU activations the LSTM optimizer does not "
                          "generalise (it no longer outperforms the hand-designed optimizers)", ("relu",)),
    "SimpleOptimizer Fig. 2 (long horizon)": ("SimpleOptimizer keeps decreasing the loss far beyond its training "
                                              "horizon, where the LSTM optimizers (L2L LSTM, RNNProp) stall",
                                              ("training", "10x horizon")),
    "SimpleOptimizer Fig. 2a (RNNProp)": ("Over the training horizon RNNProp improves over the L2L LSTM (DMOptimizer)",
                                          ("training",)),
    "SimpleOptimizer Fig. 4a (LeNet)": ("SimpleOptimizer, trained on an MLP, outperforms a well-tuned SGD (here SGD-M "
                                        "and NAG) on LeNet", ("LeNet",)),
    "MTL2L §4 (other domains)": ("Kuo et al. §4: the context-aware MTL2L generalises to other domains better than "
                                 "the LSTM optimizer (trained on MNIST here, tested on Fashion-MNIST and KMNIST)",
                                 ("FashionMNIST", "KMNIST")),
    "MetaMD Table 1 (held-out domains)": ("MetaMD's learned mirror map beats SGD-M and the other learned optimizers "
                                          "(L2O = L2L LSTM, Meta-SGD) on held-out domains", ("FashionMNIST", "KMNIST")),
    "Learned vs Adam (every cell)": ("(the question of this notebook) Some learned optimizer is below tuned Adam in "
                                     "every cell of the grid", tuple(cells)),
}


def judge(claim):
    statement, needed = STATEMENTS[claim]
    criterion = {
        "L2L Fig. 4 (training task)": "score at the horizon: L2L LSTM below each of Adam, RMSprop, SGD-M, NAG",
        "L2L Fig. 4 (longer horizon)": f"score at {cfg.long_factor}× the horizon: L2L LSTM below each hand-designed "
                                       "optimizer",
        "L2L Fig. 5 (wider, deeper)": "in each of the wider and deeper cells, L2L LSTM below each hand-designed "
                                      "optimizer (across both cells)",
        "L2L Fig. 5 (ReLU)": "ReLU cell: NOT (L2L LSTM below every hand-designed optimizer); positive control: it is "
                             "below them on the training task",
        "SimpleOptimizer Fig. 2 (long horizon)": f"SimpleOptimizer halves its score from step {cfg.train_steps} to "
                                                 f"{cfg.long_factor}× it and is below L2L LSTM and RNNProp there; "
                                                 "each LSTM does not halve its score (positive control: "
                                                 "SimpleOptimizer does)",
        "SimpleOptimizer Fig. 2a (RNNProp)": "training cell: RNNProp below L2L LSTM",
        "SimpleOptimizer Fig. 4a (LeNet)": "LeNet cell: SimpleOptimizer below SGD-M and NAG",
        "MTL2L §4 (other domains)": "in each of Fashion-MNIST and KMNIST, MTL2L below L2L LSTM (across both)",
        "MetaMD Table 1 (held-out domains)": "in each of Fashion-MNIST and KMNIST, MetaMD below SGD-M, L2L LSTM and "
                                             "Meta-SGD (across both)",
        "Learned vs Adam (every cell)": "per cell, the learned optimizer with the lowest mean (among those that "
                                        "learned) below Adam; across all cells",
    }[claim]
    if not has(*needed):
        missing = [c for c in needed if c not in curves]
        why = ("MNIST data missing" if not HAVE_MNIST else "; ".join(
            not_run_cells.get(c, f"cell {c!r} not in this profile's cells") for c in missing))
        claims.not_run(claim, statement, "qualitative (plot)", why, criterion)
        return
    lstm = "L2L LSTM"
    if claim == "L2L Fig. 4 (training task)":
        result = gated(better_than_all(cell_scores("training"), lstm, hand, **PAIRED), uses(lstm))
    elif claim == "L2L Fig. 4 (longer horizon)":
        result = gated(better_than_all(cell_scores("10x horizon"), lstm, hand, **PAIRED), uses(lstm))
    elif claim == "L2L Fig. 5 (wider, deeper)":
        result = gated(across({c: better_than_all(cell_scores(c), lstm, hand, **PAIRED) for c in needed}), uses(lstm))
    elif claim == "L2L Fig. 5 (ReLU)":
        control = better_than_all(cell_scores("training"), lstm, hand, **PAIRED) if "training" in curves else None
        negative = negate(better_than_all(cell_scores("relu"), lstm, hand, **PAIRED), "outperforms on ReLU")
        result = gated(with_positive_control(negative, control, "outperforms on the training task")
                       if control is not None else negative, uses(lstm))
    elif claim == "SimpleOptimizer Fig. 2 (long horizon)":
        simple = "SimpleOptimizer"
        control = halving("training", "10x horizon", simple)
        result = gated(all_of({
            "SimpleOptimizer halves": control,
            "below the LSTMs": better_than_all(cell_scores("10x horizon"), simple, [lstm, "RNNProp"], **PAIRED),
            "LSTMs stall": across({n: with_positive_control(negate(halving("training", "10x horizon", n),
                                                                   "halves its score"), control,
                                                            "SimpleOptimizer halves its score")
                                   for n in (lstm, "RNNProp")})}), uses(simple, lstm, "RNNProp"))
    elif claim == "SimpleOptimizer Fig. 2a (RNNProp)":
        s = cell_scores("training")
        result = gated(better(s["RNNProp"], s[lstm], ("RNNProp", lstm), **PAIRED), uses("RNNProp", lstm))
    elif claim == "SimpleOptimizer Fig. 4a (LeNet)":
        result = gated(better_than_all(cell_scores("LeNet"), "SimpleOptimizer", ["SGD-M", "NAG"], **PAIRED),
                       uses("SimpleOptimizer"))
    elif claim == "MTL2L §4 (other domains)":
        result = gated(across({c: better(cell_scores(c)["MTL2L"], cell_scores(c)[lstm], ("MTL2L", lstm), **PAIRED)
                               for c in needed}), uses("MTL2L", lstm))
    elif claim == "MetaMD Table 1 (held-out domains)":
        result = gated(across({c: better_than_all(cell_scores(c), "MetaMD", ["SGD-M", lstm, "Meta-SGD"], **PAIRED)
                               for c in needed}), uses("MetaMD", lstm, "Meta-SGD"))
    else:
        per_cell = {}
        for cell in needed:
            scores = cell_scores(cell)
            learned = {n: scores[n] for n in LEARNED
                       if gates[n].kind == "reproduced" and np.all(np.isfinite(scores[n]))}
            if not learned:
                per_cell[cell] = better(np.full(cfg.test_runs, np.inf), scores["Adam"],
                                        ("no learned optimizer", "Adam"), **PAIRED)
                continue
            pick = min(learned, key=lambda n: np.mean(learned[n]))
            per_cell[cell] = better(scores[pick], scores["Adam"], (pick, "Adam"), **PAIRED)
        result = across(per_cell)
    horizon = {"L2L Fig. 4 (longer horizon)": (cfg.long_factor, 2),
               "SimpleOptimizer Fig. 2 (long horizon)": (cfg.long_factor * cfg.train_steps, 10_000)}
    if claim == "SimpleOptimizer Fig. 2 (long horizon)":
        result = short_of_horizon(result, *horizon[claim])
    claims.add(claim, statement, "qualitative (plot)", criterion, result)


for claim in STATEMENTS:
    judge(claim)
for name, why in NOT_RUN.items():
    claims.not_run(f"{name} (every cell)", f"{name} compared with the other learned optimizers", "—", why)
claims.show(*STATEMENTS, *(f"{n} (every cell)" for n in NOT_RUN))

# %% [markdown]
# ## 8. Cost: time per step, memory, meta-training
#
# Time per update of every optimizer on one optimizee of the training task (the same parameters and gradient, no
# graph; the rules take turns in every repeat, `l2l_utils.learned_optimizers.simple_optimizer.update_times`), as the
# ratio to `torch.optim.Adam` measured in the same repeat (median over repeats and the 95% interval of the mean
# ratio); the numbers an optimizer keeps between steps per optimizee parameter (`state_numel`: Adam keeps 2) and the
# learned numbers it needs per optimizee parameter (Meta-SGD: one rate each; the coordinatewise networks: a fixed
# count whatever the optimizee); the meta-parameters; the meta-training cost of section 2 (optimizee steps seen,
# wall-clock).

# %%
if HAVE_MNIST:
    timing_problem = problems(train_task, 1, TEST_SEED)()
    params = {k: v.detach() for k, v in timing_problem.params0.items()}
    _, grads = loss_and_grads(timing_problem, {k: v.clone().requires_grad_() for k, v in params.items()})
    context = Context(inputs=timing_problem.last_inputs)
    timed = {name: rule for name, rule in rules_for(train_task).items()}
    times = update_times(timed, params, grads, cfg.timing_repeats, cfg.timing_steps, context)
    n_params = train_task.num_params
    rows = []
    for name, rule in timed.items():
        ratio = times[name] / times["Adam"]
        _, low, high = confidence_interval(ratio, "mean")
        state = rule.init(params, context)
        _, state = rule.update(params, grads, state, 0, context)
        rows.append({"optimizer": learned_label(name) if name in LEARNED else name,
                     "ms per update (median)": 1e3 * float(np.median(times[name])),
                     "× Adam (median)": float(np.median(ratio)), "× Adam 95% interval": f"[{low:.3g}, {high:.3g}]",
                     "state numbers per parameter": state_numel(state) / n_params,
                     "meta-parameters per parameter": (sum(p.numel() for p in rule.parameters()) / n_params
                                                       if isinstance(rule, torch.nn.Module) else 0.0)})
    cost = pd.DataFrame(rows).set_index("optimizer")
    learned_cost = meta_cost.set_index("optimizer")[["meta-parameters", "optimizee steps seen", "wall_s"]]
    learned_cost.index = [learned_label(n) for n in learned_cost.index]
    cost = cost.join(learned_cost.rename(columns={"wall_s": "meta-training wall-clock (s)"}))
    store.save("cost", cost.reset_index(names="optimizer"))
    display(cost)
    speed = "Table 1 (speed)"
    statement = "SimpleOptimizer is more than 10 times faster per step than DMOptimizer (L2L LSTM) and RNNProp"
    claims.add(speed, statement, "1.96 / 21.88 / 37.02 ms (11.2× / 18.9×)",
               f"per repeat, the L2L LSTM's and RNNProp's update time over SimpleOptimizer's above 10 "
               f"({n_params:,} coordinates, {dev}; paired over repeats)",
               all_of({name: better(times[name] / times["SimpleOptimizer"], np.full(cfg.timing_repeats, 10.0),
                                    (f"{name}/SimpleOptimizer", "threshold"), direction="higher", relative=False,
                                    paired=True, unit="timing repeats", seed=seed)
                       for name in ("L2L LSTM", "RNNProp")}))
    claims.show(speed)

# %% [markdown]
# ## 9. Claims table

# %%
claims.save(results_dir / "claims.csv")
print(claims.counts())
display(Markdown(claims.to_markdown()))
print(f"took {time.perf_counter() - started:.1f} s")

# %%
# NBVAL_CHECK_OUTPUT
print(claims.display_verdicts())
