"""Profiles of Huisman et al. 2022 (TURTLE). Values marked "ours" are not in the paper; the notebook lists them."""

PAPER = {
    # §5.1-5.2 sine waves (Finn et al.): 5-shot, 70K / 1K / 2K tasks, validation every 2.5K, 30 runs
    "sine_support": 5, "sine_query": 50,  # query size: ours
    "sine_train_tasks": 70_000, "sine_val_tasks": 1_000, "sine_test_tasks": 2_000, "val_every": 2_500,
    "runs": 30,
    # Fig. 3: T and meta-network depth (the axis values and the number of runs are ours)
    "fig3_T": [1, 5, 10], "fig3_layers": [1, 2, 3, 4, 5, 6, 7], "fig3_runs": 6,  # ≥ MIN_UNITS of the verdicts
    # Fig. 4: updates per task compared (ours: the T values of Fig. 3)
    "fig4_T": [1, 5, 10],
    # App. A hyperparameters
    "meta_lr": 1e-3, "maml_inner_lr": 0.01, "clip_value": 10.0, "maml_meta_batch_sine": 1,
    # where the paper is silent, the authors' public code (each a switch; the notebook shows what they change):
    # zero biases in g_phi and the sine network; support gradients clamped to +-clip_value inside the inner loop
    # (T > 1, MAML and TURTLE); each task's meta-gradient of theta clamped to +-clip_value (T > 1; else the summed
    # gradients of all meta-parameters are value-clipped); the meta-learner LSTM feeds back pre-sigmoid gates;
    # no moving-average input to g_phi at T = 1
    "zero_biases": True, "inner_clamp": True, "outer_clamp_per_task": True, "lstm_presigmoid_feedback": True,
    "turtle_average_at_T1": False,
    # the initialisation diagnostic: query MSE after T steps of untrained TURTLE, over init_inits initialisations
    "init_inits": 20, "init_tasks": 500,
    "lstm_hidden": 20, "lstm_clip_norm": 0.25, "lstm_enhanced_steps": 8,
    "turtle_layers": 5, "turtle_hidden": 20, "turtle_beta": 0.9, "turtle_meta_batch": 2,
    # §5.3 few-shot classification: 5-way 1/5-shot, Conv-4, 5 runs; 60K (1-shot) / 40K (5-shot) training
    # tasks and 600 validation / test tasks as the authors' code; query 15 per class (ours: Omniglot has 20
    # images per class)
    "n_way": 5, "shots": [1, 5], "image_query": 15, "image_train_tasks_1shot": 60_000,
    "image_train_tasks_5shot": 40_000, "image_val_tasks": 600, "image_test_tasks": 600, "image_runs": 6,
    # Tables 1-2 report 5 runs; 6 is the verdicts' MIN_UNITS (ours)
    "image_T": 5, "maml_eval_T": 10, "maml_meta_batch_1shot": 4, "maml_meta_batch_5shot": 2,
    "lstm_steps_1shot": 12, "lstm_steps_5shot": 5, "conv_channels": 64,
    # transfer baselines: pre-training minibatches of 16 (steps: ours), 100 test steps on minibatches of 4,
    # support-set evaluation every 25 steps, Adam 1e-3 (authors' code)
    "transfer_pretrain_steps": 40_000, "transfer_batch": 16, "transfer_test_steps": 100, "transfer_test_batch": 4,
    "transfer_eval_every": 25, "transfer_lr": 1e-3,
    # Omniglot extension (not in the paper): 28×28, classes split by character 60/20/20
    "omniglot_extension": True, "omniglot_image_size": 28, "omniglot_split": [0.6, 0.2, 0.2],
    "eval_chunk": 250,
}
CPU = dict(
    PAPER,
    # About 1 h 36 min on one thread of a 2-core CPU (measured in the reference run, runs/cpu/huisman2022/: about
    # 1 h 31 min of computing over three sittings). Per-unit costs: process CPU time of the notebook's own code at
    # these sizes (one thread, the other core busy, as in the reference run): ms per meta-step / per evaluated task,
    # T = 1 -> T = 5: MAML 2.7 -> 7.2 / 0.04 -> 0.08, meta-learner LSTM 5.1 -> 17.4 / 2.3 -> 9.5, TURTLE (meta-batch
    # 2) 5.2 -> 21.6 / 0.8 -> 4.2, Fig. 3's TURTLE 3-6 -> 12-25 / 0.2-1.1 -> 1.2-5.7 (1 to 7 layers); T = 10 costs
    # about twice T = 5. A run = 4,000 training tasks + 3 evaluations of the 500 validation tasks (before, at 2,500
    # and at 4,000) + 1,000 test tasks, e.g. TURTLE at T = 5: 2,000 × 21.6 ms + 2,500 × 4.2 ms = 54 s.
    #   Fig. 4: 10 runs × (MAML, LSTM, TURTLE) = 10 × (11 + 26 + 13 s) at T = 1 + 10 × (29 + 93 + 54 s) at T = 5
    #           = 38 min
    #   Fig. 3: 6 runs × 2 orders × (MAML + 4 depths) = 11 min at T = 1 + 44.5 min at T = 5 = 55.5 min
    #   initialisation diagnostic (T = 1, 5, both bias settings, 20 × 500 tasks) 1.7 min; Theorem 1, set-up, plots
    #   about 1 min: about 96 min in all (the paper's sine-wave sizes would take about 145 h here).
    # Cuts, amounts only: training tasks 70,000 -> 4,000 (validation still every 2,500, the paper's), validation /
    # test tasks 1,000 / 2,000 -> 500 / 1,000, Fig. 4 runs 30 -> 10, Fig. 3 and Fig. 4 sweep T = 1, 5 (T = 10 costs
    # twice T = 5: the stability claim compares T = 1 with T = 5), Fig. 3 depths 1, 5, 6, 7 (the claim's 5 and 6,
    # and both ends of the axis). The Omniglot extension (not in the paper) is off: Conv-4 meta-training costs
    # 0.1-0.3 s per task for MAML and TURTLE and 0.5-1.3 s per task for the meta-learner LSTMs at T = 5 (12 updates
    # for the 1-shot LSTM), benchmarks/README.md, so 6 runs × 9 methods × 2 shots at even a few hundred tasks (plus
    # 600 validation and test tasks, and the transfer baselines' pre-training) take many hours on one thread.
    sine_train_tasks=4_000, sine_val_tasks=500, sine_test_tasks=1_000, runs=10,
    fig3_T=[1, 5], fig3_layers=[1, 5, 6, 7], fig3_runs=6, fig4_T=[1, 5],
    omniglot_extension=False,
)
SMOKE = dict(
    PAPER,
    sine_train_tasks=150, sine_val_tasks=50, sine_test_tasks=100, val_every=50, runs=2, init_inits=4, init_tasks=50,
    fig3_T=[1, 5], fig3_layers=[1, 5], fig3_runs=2, fig4_T=[5],
    shots=[1], image_train_tasks_1shot=4, image_train_tasks_5shot=4, image_val_tasks=5, image_test_tasks=10,
    image_runs=1, image_T=3, lstm_steps_1shot=2, lstm_steps_5shot=2, lstm_enhanced_steps=2, maml_eval_T=3,
    transfer_pretrain_steps=20, transfer_test_steps=25, eval_chunk=50,
)
CHOICES = {"shots": (1, 5)}
