"""Profiles of Andrychowicz et al. 2016 (L2L): ``paper`` holds the paper's settings; where the paper is silent the
value is ours and the notebook says so. ``cpu`` cuts amounts only, to about two hours on two CPU cores; ``smoke`` is
the same pipeline at toy size."""

PAPER = {
    # §3.1 quadratics: 10-D, 100 steps, unroll 20, no pre/post-processing
    # (not in the paper: 100 epochs x 100 trajectories = 10,000 trajectories and Adam 1e-3, as the authors'
    # public code defaults; 128 functions per trajectory, also from that code)
    "quad_dim": 10, "quad_steps": 100, "quad_unroll": 20, "quad_meta_batch": 128, "quad_epochs": 100,
    "quad_trajectories": 100, "quad_val": 128, "quad_test": 1000, "quad_tune_runs": 128, "quad_meta_lr": 1e-3,
    # §3.2 MNIST MLP: 1×20 sigmoid, minibatch 128, 100 steps, unroll 20, preprocessing, output ×0.1
    "dataset": "MNIST", "mnist_hidden": 20, "mnist_batch": 128, "mnist_steps": 100, "mnist_long_steps": 200,
    "mnist_unroll": 20, "mnist_meta_batch": 1, "mnist_epochs": 100, "mnist_trajectories": 100, "mnist_val": 20,
    "mnist_test": 100, "mnist_tune_runs": 20, "mnist_meta_lr": 1e-3, "output_scale": 0.1, "preprocess_p": 10.0,
    # Fig. 6 sweep; baselines re-tuned for every architecture, as for every problem in §3
    "sweep_hidden": [5, 10, 20, 40, 80], "sweep_layers": [1, 2, 3], "tune_per_architecture": True,
    # §3.3 CIFAR-10 conv net with two LSTMs
    "cifar_batch": 128, "cifar_steps": 100, "cifar_unroll": 20, "cifar_meta_batch": 10, "cifar_epochs": 30,
    "cifar_trajectories": 10, "cifar_val": 10, "cifar_test": 50, "cifar_tune_runs": 10, "cifar_meta_lr": 1e-3,
    # §3.4 neural art (App. C): one training style, 64×64 training and 128×128 test images (with a new style), 128
    # steps, unroll 32, App. A preprocessing (preprocess_p), no output scaling; 1800 training, 20 validation and 100
    # test content images (the validation images also tune the baselines' rates)
    "art_train_size": 64, "art_test_size": 128, "art_steps": 128, "art_unroll": 32, "art_output_scale": 1.0,
    "art_train_images": 1800, "art_val": 20, "art_test": 100,
    # not in the paper (ours): optimizees per trajectory, amount of meta-training, fixed meta rate (if no search)
    "art_meta_batch": 4, "art_epochs": 50, "art_trajectories": 20, "art_meta_lr": 1e-3,
    # f = α content + β style + γ smoothness on VGG-19 (Gatys et al. 2015: content relu4_2, style relu1_1-relu5_1
    # with w_l = 1/5, average pooling, α/β = 1e-3, start from white noise); the paper gives no weights: γ, the
    # total-variation form and the noise's std are ours
    "art_content_weight": 1.0, "art_style_weight": 1e3, "art_tv_weight": 1.0, "art_pooling": "avg",
    "art_init_std": 0.25,
    # the baselines' rates: the loss is in the 1e3-1e6 range, so the grid reaches far lower rates than lr_grid (ours)
    "art_lr_grid": [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0],
    # shared: learning-rate grid of the baselines, Gaussian initialisations, Appendix B trace
    "lr_grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0],
    # a tuned rate at the edge of the grid extends it by up to this many rates (ours; the paper gives no grid)
    "lr_grid_extensions": 3,
    # §3: Adam's learning rate "chosen by random search" (trials, their length and the range are ours)
    "meta_lr_search": True, "meta_lr_trials": 8, "meta_lr_search_epochs": 5, "meta_lr_bounds": [1e-4, 3e-2],
    # IID Gaussian initialisations (§3); the LSTM's own start is ours, chosen in section 1 from lstm_init_choices
    # meta-trained for lstm_init_epochs × mnist_trajectories trajectories each
    "init_std": 0.01, "lstm_init_std": 0.1, "lstm_init": "normal",
    "lstm_init_choices": ["normal", "normal-zero-head-bias", "pytorch"], "lstm_init_epochs": 5,
    # Appendix B trace: steps, coordinates plotted, coordinates the statistics use
    "trace_steps": 32, "trace_coords": 2, "trace_stat_coords": 256,
    # a test problem's score: its mean loss over the last score_window steps (ours: one minibatch is too noisy)
    "score_window": 10,
    # App. D (the paper gives no setting and no figure for these optimizers; all ours): global averaging cells per
    # LSTM layer of 20, the NTM-BFGS memory's start M_0 = appd_memory_init · I, read / write heads as App. D's
    # construction (1 and 3); meta-trained on §3.1's quadratics by the LSTM's protocol for appd_epochs epochs, Adam's
    # rate searched as for the LSTM when appd_meta_lr_search (else the LSTM's); the constructions are checked on
    # appd_check_problems quadratics for appd_check_iterations BFGS iterations, NTM-L-BFGS for these histories
    "appd_gac_cells": 5, "appd_read_heads": 1, "appd_write_heads": 3, "appd_memory_init": 1.0, "appd_epochs": 100,
    "appd_meta_lr_search": True, "appd_check_problems": 100, "appd_check_iterations": 30,
    "appd_lbfgs_histories": [1, 2, 5],
    # App. A's ablation (the paper gives no constants, problems or numbers; all ours): on each problem of
    # appa_problems the LSTM optimizer with App. A preprocessing against the same optimizer fed the raw gradient times
    # each constant of appa_input_scales (one meta-training per constant, Adam's rate searched for each when
    # appa_meta_lr_search, else the preprocessed optimizer's); "not worse" than the best constant = mean score ratio
    # below 1 + appa_noninferiority
    "appa_problems": ["MNIST", "quadratics"], "appa_input_scales": [0.1, 1.0, 10.0, 100.0, 1000.0],
    "appa_meta_lr_search": True, "appa_noninferiority": 0.05,
}
CPU = dict(
    PAPER,
    # about 1 h 40 min on one CPU thread (the notebook's share of two cores), cutting only amounts. Per-unit costs:
    # process CPU time of one unit of the notebook's own code on one thread (nice'd, on a shared machine, so if anything
    # pessimistic): a quadratic trajectory (128 functions, 100 steps, unroll 20) 0.34 s, its validation (128
    # functions) 0.13 s, LSTM+GAC / NTM-BFGS trajectories 0.47 / 0.56 s; an MNIST trajectory (1×20 MLP, 100 steps)
    # 2.7 s, one validation MLP 0.9 s; evaluation per run and step 9 ms for the LSTM on the 1×20 MLP (∝ coordinates)
    # and 0.7 ms for a baseline; baseline tuning at 128 quadratics ≈ 1 s. Each meta-training with its random search
    # (the paper profile's 8 trials, each 1 epoch instead of 5):
    #   quadratics (20 epochs × 20 trajectories = 400) 20 × 7.1 s + 8 × 7.1 s ≈ 3.3 min; MNIST (20 epochs × 10
    #   trajectories = 200, 5 validation MLPs) 20 × 31.5 s + 8 × 31.5 s ≈ 14.7 min.
    # Phases: §3.1 quadratics 3.3 min; App. A on quadratics, 4 new meta-trainings (preprocessed, c = 0.1, 10, 1000;
    # c = 1 is section 2's) 13 min; App. D LSTM+GAC and NTM-BFGS (20 epochs, searched) 9.8 min; the LSTM-start evidence
    # (3 starts × 1 epoch) 1.8 min; §3.2 MNIST 14.7 min; App. A on MNIST, 3 new meta-trainings 44 min; Fig. 4
    # (tuning 4 × 12 rates × 6 runs, 12 test runs of 200 steps, gate) 1.3 min; Fig. 5 3.3 min; Fig. 6 (15
    # architectures, each tuned on 6 runs and tested on 12; LSTM cost ∝ coordinates, extrapolated from the 1×20 MLP)
    # 14 min; App. A tests and gates 1.8 min; start-up, App. B, App. D checks, plots 1.5 min: about 108 min in all
    # (first sized at 15 MNIST epochs, 97.5 min; the head-to-head notebook's estimate made the same way came out
    # 2.3× too long, so MNIST's meta-training, the one the main claims rest on, got the margin).
    # Measured in the reference run (runs/cpu/andrychowicz2016/, one thread beside another run, from its stored
    # results' times): §1-8 and App. D 51 min (§3.2's MNIST meta-training 19 min, the Fig. 6 sweep 14 min), App. A
    # on the quadratics 13 min, App. A on MNIST about 52 min with subnormal floats flushed to zero (c = 0.1: 8 search
    # trials 13 min + meta-training 10 min; c = 10 and c = 1000 about 15 min each), App. A's tests and gates 4 min:
    # about 2 h in one sitting. Before the flushing (start_notebook), the raw-gradient meta-trainings at c = 10 ran
    # 4-5x slower on subnormal arithmetic (benchmarks/subnormal_floats.py), and the run took 2 h 24 min over three
    # sittings.
    # CIFAR-10 (section 6) and neural art (section 7) are not on disk here and print "not run": their sizes stay the
    # paper's, which need a GPU (with their data on disk this profile no longer fits two hours).
    quad_epochs=20, quad_trajectories=20,
    mnist_epochs=20, mnist_trajectories=10, mnist_val=5, mnist_test=12, mnist_tune_runs=6,
    meta_lr_search_epochs=1, lstm_init_epochs=1, appd_epochs=20, appa_input_scales=[0.1, 10.0, 1000.0],
)
SMOKE = dict(
    PAPER,
    quad_meta_batch=32, quad_epochs=3, quad_trajectories=4, quad_val=32, quad_test=64, quad_tune_runs=32,
    quad_meta_lr=1e-2,
    mnist_steps=20, mnist_long_steps=40, mnist_unroll=10, mnist_meta_batch=2, mnist_epochs=2,
    mnist_trajectories=2, mnist_val=2, mnist_test=4, mnist_tune_runs=2, mnist_meta_lr=3e-3,
    sweep_hidden=[10, 40], sweep_layers=[1, 2], tune_per_architecture=False,
    cifar_batch=32, cifar_steps=20, cifar_unroll=10, cifar_meta_batch=2, cifar_epochs=1, cifar_trajectories=2,
    cifar_val=2, cifar_test=2, cifar_tune_runs=2,
    lr_grid=[1e-2, 1e-1, 1.0], lr_grid_extensions=1, trace_steps=16, meta_lr_trials=2, meta_lr_search_epochs=1, lstm_init_epochs=1,
    trace_stat_coords=64, score_window=5,
    # neural art runs only where VGG-19's weights and the images are on disk (never in CI): then at toy size
    art_train_size=16, art_test_size=32, art_steps=8, art_unroll=4, art_train_images=8, art_val=2, art_test=4,
    art_meta_batch=2, art_epochs=1, art_trajectories=2, art_meta_lr=3e-3, art_lr_grid=[1e-4, 1e-2, 1.0],
    appd_epochs=1, appd_meta_lr_search=False, appd_check_problems=8, appd_check_iterations=10,
    appa_problems=["MNIST"], appa_input_scales=[100.0], appa_meta_lr_search=False,  # one new meta-training
)
CHOICES = {"dataset": ("MNIST", "FashionMNIST"),
           "lstm_init": ("normal", "normal-zero-head-bias", "pytorch"),
           "lstm_init_choices": ("normal", "normal-zero-head-bias", "pytorch"),
           "art_pooling": ("avg", "max"),
           "appa_problems": ("MNIST", "quadratics")}
