"""Profiles of the head-to-head notebook: every learned optimizer of the five papers under one protocol. Values
marked "ours" are the protocol's, not a paper's; the notebook lists them. ``smoke`` runs the pipeline at toy size,
``cpu`` is sized for about two hours on two CPU cores, ``paper`` uses the papers' budgets."""

PAPER = {
    # the meta-training task family, Andrychowicz et al. §3.2: MNIST, MLP 784-20-10 sigmoid, minibatches of 128,
    # θ0 ~ N(0, 0.01²) (L2L §3), T = 100 optimizee steps per trajectory
    "dataset": "MNIST", "hidden": 20, "activation": "sigmoid", "batch_size": 128, "init_std": 0.01,
    "train_steps": 100,
    # one meta-training budget for every learned optimizer, in optimizee steps seen (validation excluded):
    # 100 epochs × 100 trajectories × 100 steps, the L2L authors' public defaults (1,000,000 steps)
    "meta_budget": 1_000_000, "epochs": 100, "meta_lr": 1e-3, "val_problems": 10,
    # truncations: L2L §3 and the SimpleOptimizer paper §4 give 20; Kuo et al. App. B.4 (MTL2L) give Ξ = 5; RNNProp
    # and Meta-SGD have none in their papers: the protocol's 20 (ours)
    "unroll": 20, "mtl2l_unroll": 5,
    # MetaMD (Algorithm 1): k tasks per meta-iteration (here k fresh optimizees of the one task family), T inner
    # steps = the protocol's horizon; η, k of Eq. 8, γ, init: the MetaMD notebook's values (ours there)
    "metamd_tasks_per_step": 5, "metamd_inner_lr": 0.1, "metamd_k_lambda": 0.01, "metamd_gamma": 0.01,
    "metamd_init_norm": 0.1, "metamd_hypergradient": "unrolled",
    # Meta-SGD's starting rate (the MetaMD notebook's)
    "metasgd_init_lr": 0.05,
    # evaluation: independent test runs per cell (≥ 6 so that a comparison can be decided), the score window
    "test_runs": 10, "score_window": 10, "test_images": 10_000,
    # hand-designed opponents: one learning-rate grid on the meta-training task (the L2L notebook's grid), tuning runs
    "lr_grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0], "lr_grid_extensions": 3,
    "tune_runs": 10,
    # the generalisation grid (L2L Fig. 4-5, SimpleOptimizer Fig. 2 and 4a, Kuo et al. §4, MetaMD §5.2)
    "cells": ["training", "10x horizon", "wider", "deeper", "relu", "FashionMNIST", "KMNIST", "LeNet"],
    "long_factor": 10, "wide_hidden": 40, "deep_layers": 2,
    # KMNIST without its train split on disk (the offline copy): a seeded half of its test split is the training
    # pool, the rest the test set (ours); with it (make data PROFILE=paper), the paper's split and this is unused
    "kmnist_train_share": 0.5,
    # cost: time per update against torch.optim.Adam on the same parameters, taking turns (ours)
    "timing_repeats": 7, "timing_steps": 5,
}
CPU = dict(
    PAPER,
    # about two hours on two CPU cores, estimated from a measured run of this profile with a 300-step budget (one
    # thread, a shared machine): meta-training ≈ 0.375 s per optimizee step for the six learned optimizers together
    # (MTL2L 0.18, RNNProp 0.10, L2L LSTM 0.065, SimpleOptimizer 0.017, Meta-SGD and MetaMD < 0.01), so 12,000 steps
    # ≈ 75 min; everything else ≈ 36 min (gates 1, tuning 4, the training + 10× horizon cell 15.5, LeNet 11, the
    # five other MLP cells 5): about 1 h 55 min in all. Measured: the reference run (runs/cpu/head_to_head) took
    # 48 min 47 s on one thread of a quiet 2-core machine with another run on the other core; the estimate above came
    # from a busy machine. A larger budget fits two hours (e.g. meta_budget 30,000 and 10 test runs): not yet re-run
    meta_budget=12_000, epochs=4, val_problems=4, test_runs=6, tune_runs=6,
    lr_grid=[1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0], lr_grid_extensions=2, long_factor=10,
)
SMOKE = dict(
    PAPER,
    train_steps=10, meta_budget=80, epochs=1, unroll=5, mtl2l_unroll=5, val_problems=1, metamd_tasks_per_step=2,
    test_runs=2, tune_runs=2, score_window=3, test_images=500, lr_grid=[1e-2, 0.1, 1.0], lr_grid_extensions=1,
    long_factor=3,
    timing_repeats=3, timing_steps=2,
)
CELLS = ("training", "10x horizon", "wider", "deeper", "relu", "FashionMNIST", "KMNIST", "LeNet")
CHOICES = {"dataset": ("MNIST",), "activation": ("sigmoid", "relu"), "cells": CELLS,
           "metamd_hypergradient": ("unrolled", "direct", "ift", "as_printed")}
