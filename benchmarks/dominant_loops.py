"""The loop that dominates each notebook's ``cpu`` run, against what the machine's cores can do in FLOP/s.

For each notebook a small builder (:data:`LOOPS`) constructs its dominant loop(s) with the same ``l2l_utils`` pieces
and sizes as the notebook at a profile (``cpu`` where ``l2l_utils/harness/profiles/<paper>.py`` has one, else
``paper``, said in the output), on random data of the datasets' shapes (the FLOPs do not depend on the pixels), and
counts the FLOPs of one unit of work with the benchmarks' counter (:func:`timing.count_flops`: the matrix products,
forward and backward, ``FlopCounterMode``; element-wise work is not counted, so the achieved rate is a rate of
products). A unit is what the run's progress bar counts: for truncated BPTT one truncation (``unroll`` optimizee
steps of ``meta_batch`` optimizees through the learned optimizer, its backward pass and the Adam step on φ); for the
episodic meta-learners of Huisman et al. one training task (1/J of an Adam step on a meta-batch of J tasks, plus the
task's share of the validations the driver runs inside the bar); for MetaMD one meta-iteration of its Algorithm 1
(k tasks trained T steps, their hypergradients, Adam on the factors, and the validation the driver runs after every
meta-iteration, counted as the difference of two meta-trainings of 2 and 1 meta-iterations). The run's own rate
(units per second, :mod:`phase_times` reads it from the bars of the executed notebook) times the FLOPs per unit is
the achieved FLOP/s. The peak is the float32 rate of a 4096² matrix product with ``--threads``
threads (:func:`timing.matmul_rate`, measured now, quiet cores needed; or given with ``--peak-gflops``).

    python benchmarks/dominant_loops.py --notebook kuo2020_mtl2l [--profile cpu] [--run EXECUTED.ipynb]
        [--rate LOOP=UNITS_PER_S ...] [--threads 2] [--peak-gflops G] [--json out.json]

Without ``--run`` or ``--rate`` it prints the FLOPs per unit only, and where each loop's rate would come from (which
bars of a run, in the order the notebook trains when nothing was reused; or ``--rate`` only, where no bar can be tied
to the loop). The bar rate of a truncated-BPTT loop includes what the driver does inside the bar that the unit does
not count (the validation at the end of every epoch), so its achieved rate is slightly understated.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Fixed, count_flops, matmul_rate  # noqa: E402

from l2l_utils.harness.profiles import PAPER_PROFILES  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

SEED = 0


@dataclass
class Loop:
    """One loop: ``name``; ``unit`` (what one call does, in words); ``work`` (one unit: the call whose FLOPs are
    counted); ``bars``: which of the run's progress bars measure it (indices among the run's meta-training bars, in
    the order the notebook trains when none was reused, which :mod:`phase_times` reports); ``saves``: or which
    stored results close its intervals (:mod:`phase_times`: the seconds from the previous save in the cell) and how
    many units one such result holds; neither: the rate must be given with ``--rate``."""

    name: str
    unit: str
    work: object
    bars: tuple | None = None
    saves: tuple | None = None  # (pattern of a stored result's name, units per save): rate from the intervals


def profile_of(paper: str, profile: str) -> tuple[dict, str]:
    """The profile's settings, or ``paper``'s with a note when the paper has no such profile yet."""
    profiles = PAPER_PROFILES[paper]
    if profile in profiles:
        return dict(profiles[profile]), profile
    return dict(profiles["paper"]), f"paper (no `{profile}` profile for {paper} yet)"


def random_images(n: int = 10_000, pixels: int = 784) -> DeviceDataset:
    g = torch.Generator().manual_seed(SEED)
    return DeviceDataset(torch.randn(n, pixels, generator=g), torch.randint(0, 10, (n,), generator=g))


def truncation(rule: torch.nn.Module, task, cfg: MetaTrainConfig):
    """One unit of truncated-BPTT meta-training (what the driver's bar counts): a truncation of ``cfg.unroll`` steps
    of ``cfg.meta_batch`` optimizees, its backward pass and Adam on φ."""
    problem = task.sample(cfg.meta_batch, torch.Generator().manual_seed(SEED))
    adam = torch.optim.Adam(rule.parameters(), lr=cfg.meta_lr)

    def work():
        adam.zero_grad(set_to_none=True)
        TruncatedBPTT(Fixed(problem), cfg).step(rule, torch.Generator().manual_seed(SEED), cfg.unroll)
        adam.step()

    return work


class Linear:
    """A unit of ``steps`` identical optimizee steps, counted as F(1) + (steps − 1)·(F(2) − F(1)) from truncations of
    one and two steps (``make(k)``: the work of a k-step truncation, or of a MetaMD meta-iteration at T = k), for
    loops whose full truncation would hold gigabytes of graph (e.g. an LSTM optimizer on 397,510 coordinates) or take
    minutes to count (MetaMD at T = 300); exact when every step does the same products
    (``tests/project/test_phase_times.py`` compares it with the direct count)."""

    def __init__(self, make, steps: int):
        self.make, self.one, self.two, self.steps = make, make(1), make(2), steps


class Weighted:
    """A unit as a weighted sum of calls, Σ weight·FLOPs(call) over ``parts`` ((call, weight) pairs): e.g. an Adam
    step on a meta-batch of two tasks at weight ½ when the bar counts tasks, plus the unit's share of the
    validations that the driver runs inside the bar."""

    def __init__(self, *parts):
        self.parts = parts


def validations_in_bar(total: int, amount: int, every: int) -> int:
    """How many validations :func:`l2l_utils.meta_training.meta_train.meta_train` runs inside its bar for ``total``
    units done ``amount`` at a time: one whenever the count reaches a multiple of ``every``, and one at the end."""
    done = count = 0
    while done < total:
        step = min(amount, total - done)
        done += step
        count += done % every < step or done >= total
    return count


def kuo2020(profile: str):
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.learned_optimizers.mtl2l import AuthorsLSTMOptimizer, MTL2LOptimizer

    cfg, used = profile_of("kuo2020", profile)
    task = ClassifierTask(mlp(784, [cfg["learner_hidden"]], 10, "relu"), random_images(), cfg["batch_size"],
                          init_std=None)
    meta = MetaTrainConfig(steps=cfg["train_steps"], unroll=cfg["unroll"], meta_batch=1, epochs=1,
                           trajectories_per_epoch=cfg["trajectories"], meta_lr=cfg["meta_lr"],
                           clip_value=1.0 if cfg["clamp_meta_gradients"] else None)
    torch.manual_seed(SEED)
    lstm = (AuthorsLSTMOptimizer() if cfg["lstm"] == "authors"
            else LSTMOptimizer(preprocess_p=10.0, output_scale=0.1, init_std=0.1, init="normal"))
    mtl2l = MTL2LOptimizer(cfg["architecture"], momentum=0.0,
                           dropout=(0.1, 0.25, 0.1) if cfg["hyper_dropout"] else (0.0, 0.0, 0.0),
                           perturbation=cfg["perturbation"], perturbation_horizon=cfg["train_steps"], seed=SEED)
    unit = f"one truncation of Ξ = {cfg['unroll']} steps, 1 learner (MLP 784-{cfg['learner_hidden']}-ReLU-10, " \
           f"minibatch {cfg['batch_size']})"
    from l2l_utils.optimizers.baselines import baseline_rule

    hand = ("SGD", "SGD-M", "ADAM")  # the notebook's HAND; their tuned copies run beside them (scenario 1)
    frame_rules = {"LSTM": lstm, "MTL2L": mtl2l, **{h: baseline_rule(h, cfg["baseline_lr"]) for h in hand},
                   **{f"{h} (tuned)": baseline_rule(h, cfg["baseline_lr"]) for h in hand}}
    periods = cfg["test_steps"] // cfg["eval_every"]
    # bars in the notebook's order when nothing is reused: per scenario-1 dataset LSTM then MTL2L; then scenario 2's
    # MTL2L (its LSTM on KMNIST is reused from scenario 1)
    n = len(cfg["datasets_s1"])
    return used, [Loop("meta-training LSTM", unit, truncation(lstm, task, meta), tuple(range(0, 2 * n, 2))),
                  Loop("meta-training MTL2L", unit, truncation(mtl2l, task, meta),
                       tuple(range(1, 2 * n, 2)) + (2 * n,)),
                  Loop("meta-testing, a scenario-1 test frame",
                       f"one evaluation period of the frame: {cfg['eval_every']} steps of {cfg['test_runs']} learners "
                       f"(one batch) for each of its {len(frame_rules)} rules (LSTM, MTL2L, 3 baselines, 3 tuned) "
                       f"and their test loss on 10,000 images; {periods} periods per frame",
                       test_steps(frame_rules, task, cfg["eval_every"], cfg["test_runs"]),
                       saves=(r"^s1-.*-test$", periods))]


def test_steps(rules: dict, task, every: int, runs: int):
    """One evaluation period of :func:`l2l_utils.evaluation.comparison.held_out_loss_curves` (Kuo et al. §4's
    curves): ``every`` steps of ``runs`` learners for every rule and one evaluation of the test loss on 10,000
    images, as the difference of 2·every and every steps (both evaluate at step 0)."""
    from l2l_utils.evaluation.comparison import held_out_loss_curves

    test = random_images()
    make = lambda: task.sample(runs, torch.Generator().manual_seed(SEED))  # noqa: E731

    class Difference:
        def __call__(self):
            held_out_loss_curves(rules, make, 2 * every, every, task, test)

        def baseline(self):
            held_out_loss_curves(rules, make, every, every, task, test)

    return Difference()


def andrychowicz2016(profile: str):
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer

    cfg, used = profile_of("andrychowicz2016", profile)
    task = ClassifierTask(mlp(784, [cfg["mnist_hidden"]], 10, "sigmoid"), random_images(), cfg["mnist_batch"])
    meta = MetaTrainConfig(steps=cfg["mnist_steps"], unroll=cfg["mnist_unroll"], meta_batch=cfg["mnist_meta_batch"],
                           meta_lr=cfg["mnist_meta_lr"])
    torch.manual_seed(SEED)
    lstm = LSTMOptimizer(preprocess_p=cfg["preprocess_p"], output_scale=cfg["output_scale"])
    return used, [Loop("meta-training LSTM (MNIST, §3.2)",
                       f"one truncation of {cfg['mnist_unroll']} steps, {cfg['mnist_meta_batch']} optimizee(s) "
                       f"(MLP 784-{cfg['mnist_hidden']}-10 sigmoid, minibatch {cfg['mnist_batch']})",
                       truncation(lstm, task, meta))]


def head_to_head(profile: str):
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer, PerParameterLearningRates
    from l2l_utils.learned_optimizers.mtl2l import MTL2LOptimizer
    from l2l_utils.learned_optimizers.rnnprop import RNNProp
    from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer

    cfg, used = profile_of("head_to_head", profile)
    task = ClassifierTask(mlp(784, [cfg["hidden"]], 10, cfg["activation"]), random_images(), cfg["batch_size"],
                          init_std=cfg["init_std"])
    factories = {  # the notebook's BPTT table (§2), in its order: the bars come in this order
        "L2L LSTM": (lambda: LSTMOptimizer(preprocess_p=10.0, output_scale=0.1, init_std=0.1, init="normal"),
                     cfg["unroll"], None),
        "RNNProp": (lambda: RNNProp(init="authors"), cfg["unroll"], None),
        "SimpleOptimizer": (lambda: SimpleOptimizer(10, mean_over="network", init="pytorch"), cfg["unroll"], None),
        "MTL2L": (lambda: MTL2LOptimizer("paper", momentum=0.0, dropout=(0.1, 0.25, 0.1), perturbation=True,
                                         perturbation_horizon=cfg["train_steps"], seed=SEED), cfg["mtl2l_unroll"], 1.0),
        "Meta-SGD": (lambda: PerParameterLearningRates(task.shapes, cfg["metasgd_init_lr"]), cfg["unroll"], None),
    }
    loops = []
    for index, (name, (make, length, clamp)) in enumerate(factories.items()):
        torch.manual_seed(SEED)
        meta = MetaTrainConfig(steps=cfg["train_steps"], unroll=length, meta_batch=1, meta_lr=cfg["meta_lr"],
                               clip_value=clamp)
        loops.append(Loop(f"meta-training {name}", f"one truncation of {length} steps, 1 optimizee (MLP "
                          f"784-{cfg['hidden']}-10 {cfg['activation']}, minibatch {cfg['batch_size']}; the "
                          "notebook's meta-loss weights/terms are element-wise and not built here)",
                          truncation(make(), task, meta), (index,)))
    return used, loops


def simple_optimizer(profile: str):
    from dataclasses import replace

    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.learned_optimizers.rnnprop import RNNProp
    from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer

    cfg, used = profile_of("simple_optimizer", profile)
    init_std = None if cfg["optimizee_init"] == "pytorch" else cfg["optimizee_init_std"]
    task = ClassifierTask(mlp(784, [cfg["train_hidden"]], 10, "relu"), random_images(), cfg["batch_size"], init_std)
    meta = MetaTrainConfig(steps=cfg["train_steps"], unroll=cfg["unroll"], meta_batch=cfg["meta_batch"],
                           meta_lr=cfg["meta_lr"])
    factories = {  # the notebook's VARIANTS (§3) that train distinct networks, in its order (four SimpleOptimizer
        # variants first: bars 0-3, then DMOptimizer 4, RNNProp 5)
        "SimpleOptimizer": (lambda: SimpleOptimizer(cfg["hidden_size"], mean_over=cfg["mean_over"],
                                                    init=cfg["simple_init"]), (0,)),
        "DMOptimizer": (lambda: LSTMOptimizer(preprocess_p=10.0, output_scale=cfg["dm_output_scale"],
                                              init_std=cfg["lstm_init_std"], init=cfg["lstm_init"]), (4,)),
        "RNNProp": (lambda: RNNProp(init=cfg["rnnprop_init"]), (5,)),
    }
    loops = []
    for name, (make, bars) in factories.items():
        torch.manual_seed(SEED)
        rule = make()
        loops.append(Loop(f"meta-training {name}", f"one truncation of {cfg['unroll']} steps, {cfg['meta_batch']} "
                          f"optimizee(s) (MLP 784-{cfg['train_hidden']}-ReLU-10, minibatch {cfg['batch_size']}; "
                          "counted from 1- and 2-step truncations; RNNProp's scaled and convex-mixed training task "
                          "and the meta-loss weights are element-wise and not built)",
                          Linear(lambda k, rule=rule: truncation(rule, task, replace(meta, steps=k, unroll=k)),
                                 cfg["unroll"]), bars))
    return used, loops


def huisman2022(profile: str):
    from l2l_utils.learned_optimizers.meta_learners import MAML, MetaLearnerLSTM, Turtle, turtle_inputs
    from l2l_utils.meta_training.episodic_training import EpisodicConfig, EpisodicQueryLoss, evaluate, fixed_episodes
    from l2l_utils.tasks.episodes import SineTasks
    from l2l_utils.tasks.models import FunctionalNetwork, sine_network

    cfg, used = profile_of("huisman2022", profile)
    sine = SineTasks(cfg["sine_support"], cfg["sine_query"])
    learner = FunctionalNetwork(sine_network(), "regression")
    val = fixed_episodes(sine, cfg["sine_val_tasks"], SEED, cfg["eval_chunk"], "cpu")

    def theta():  # the notebook's sine_theta
        return dict(sine_network(zero_bias=cfg["zero_biases"]).named_parameters())

    def method(name: str, T: int, layers=None, second_order=True, fig3=False):
        """The notebook's clamps and sine_method: (maker of a fresh meta-learner, EpisodicConfig settings)."""
        clip = cfg["clip_value"] if T > 1 else None
        inner = clip if cfg["inner_clamp"] else None
        outer = dict(outer_clamp=clip) if cfg["outer_clamp_per_task"] else dict(clip_value=clip)
        base = dict(train_tasks=cfg["sine_train_tasks"], steps=T, val_every=cfg["val_every"],
                    val_tasks=cfg["sine_val_tasks"], eval_chunk=cfg["eval_chunk"], meta_lr=cfg["meta_lr"],
                    second_order=second_order)
        if name == "MAML":
            return (lambda: MAML(theta(), cfg["maml_inner_lr"], inner),
                    dict(base, meta_batch=cfg["maml_meta_batch_sine"], **outer))
        if name == "LSTM":
            feedback = "pre-sigmoid" if cfg["lstm_presigmoid_feedback"] else "post-sigmoid"
            return (lambda: MetaLearnerLSTM(theta(), cfg["lstm_hidden"], gate_feedback=feedback),
                    dict(base, meta_batch=1, clip_norm=cfg["lstm_clip_norm"], second_order=False))
        inputs, rates = (("gradient",), False) if fig3 else (turtle_inputs(T, cfg["turtle_average_at_T1"]), True)
        return (lambda: Turtle(theta(), layers or cfg["turtle_layers"], cfg["turtle_hidden"], inputs,
                               cfg["turtle_beta"], rates, zero_bias=cfg["zero_biases"], inner_clamp=inner),
                dict(base, meta_batch=cfg["turtle_meta_batch"], **outer))

    def unit(make, settings):
        """One training task of the bar: 1/J of the driver's unit (J tasks adapted together, the query loss's
        backward pass, one Adam step on Θ), plus the task's share of the validations inside the bar."""
        torch.manual_seed(SEED)
        meta, config = make(), EpisodicConfig(seed=SEED, **settings)
        estimator = EpisodicQueryLoss(learner, sine, config)
        adam = torch.optim.Adam(meta.parameters(), lr=config.meta_lr)

        def step():
            adam.zero_grad(set_to_none=True)
            if estimator.step(meta, torch.Generator().manual_seed(SEED), config.train_tasks).failed:
                raise RuntimeError("the counted meta-step failed (non-finite meta-loss or meta-gradient)")
            adam.step()

        def validation():
            evaluate(meta, learner, val, config.test_steps, config.eval_chunk)

        validations = validations_in_bar(config.train_tasks, config.meta_batch, config.val_every)
        order = "second" if config.second_order else "first"
        text = (f"one training task: 1/{config.meta_batch} of an Adam step on a meta-batch of {config.meta_batch} "
                f"(T = {config.steps} updates of the 1-40-40-1 sine network on {cfg['sine_support']} support points, "
                f"query loss on {cfg['sine_query']}, {order} order) + its share of the bar's {validations} "
                f"validations ({validations}×{config.val_tasks}/{config.train_tasks} evaluated tasks)")
        return text, Weighted((step, 1 / config.meta_batch), (validation, validations / config.train_tasks))

    # the bars in the notebook's order when nothing is reused (one bar per run): Fig. 3 (for each T, SO then FO:
    # MAML, then TURTLE at each depth, fig3_runs runs each), then Fig. 4 (for each T: MAML, LSTM, TURTLE, runs each)
    bars, index = {}, 0
    for T in cfg["fig3_T"]:
        for order in ("SO", "FO"):
            for layers in (None, *cfg["fig3_layers"]):
                bars["fig3", T, order, layers] = tuple(range(index, index + cfg["fig3_runs"]))
                index += cfg["fig3_runs"]
    for T in cfg["fig4_T"]:
        for name in ("MAML", "LSTM", "TURTLE"):
            bars["fig4", T, name] = tuple(range(index, index + cfg["runs"]))
            index += cfg["runs"]
    loops = []
    for T in cfg["fig4_T"]:  # Fig. 4 (§5.2): second-order MAML and TURTLE, the first-order meta-learner LSTM
        for name, label in (("MAML", "MAML"), ("LSTM", "meta-learner LSTM"), ("TURTLE", "TURTLE")):
            text, work = unit(*method(name, T))
            loops.append(Loop(f"meta-training {label} (Fig. 4, T = {T})", text, work, bars["fig4", T, name]))
    for T in cfg["fig3_T"]:  # Fig. 3 (§5.1): TURTLE with α = 1 and the gradient as its only input, MAML beside it
        for order in ("SO", "FO"):
            text, work = unit(*method("MAML", T, second_order=order == "SO"))
            loops.append(Loop(f"meta-training {order}-MAML (Fig. 3, T = {T})", text, work,
                              bars["fig3", T, order, None]))
            for layers in cfg["fig3_layers"]:
                text, work = unit(*method("TURTLE", T, layers, order == "SO", fig3=True))
                loops.append(Loop(f"meta-training {order}-TURTLE, {layers} layer(s) (Fig. 3, T = {T})", text, work,
                                  bars["fig3", T, order, layers]))
    return used, loops


def metamd(profile: str):
    from dataclasses import replace

    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.learned_optimizers.mirror_descent import KroneckerMirrorMap
    from l2l_utils.meta_training.mirror_map_training import MetaMDConfig, meta_train_mirror
    from l2l_utils.tasks.problems import MixtureTask

    cfg, used = profile_of("metamd", profile)
    held = cfg["rotated_heldout"][0]
    g = torch.Generator().manual_seed(SEED)  # pixels in [0, 1) as MNIST's, so that T steps at η do not diverge
    images = DeviceDataset(torch.rand(10_000, 784, generator=g), torch.randint(0, 10, (10_000,), generator=g))
    model = mlp(784, cfg["mlp_hidden"], 10, "relu")
    tasks = [ClassifierTask(model, images, cfg["batch_size"], init_std=None)  # the notebook's classifier_task
             for domain in cfg["rotated_domains"] if domain != held]
    shapes = {k: v.shape for k, v in model.named_parameters()}
    sizes = "-".join(str(n) for n in (784, *cfg["mlp_hidden"], 10))

    def meta_iteration(estimator: str, T: int):
        """One unit of the bar `MetaMD meta-training` at T inner steps: meta_train_mirror for 2 meta-steps minus 1
        (both validate once before the bar)."""
        mcfg = MetaMDConfig(tasks_per_step=cfg["tasks_per_step"], runs_per_task=cfg["runs_per_task"], inner_steps=T,
                            inner_lr=cfg["inner_lr"], k_lambda=cfg["k_lambda"], gamma=cfg["gamma"],
                            neumann_terms=cfg["neumann_terms"], meta_lr=cfg["meta_lr"], estimator=estimator,
                            seed=SEED)

        def train(steps):
            mirror = KroneckerMirrorMap(shapes, init_norm=cfg["init_norm"],
                                        generator=torch.Generator().manual_seed(SEED))
            history = meta_train_mirror(mirror, tasks, replace(mcfg, meta_steps=steps), None, False,
                                        cfg["val_problems_per_task"])
            if history["skipped_tasks"].sum():
                raise RuntimeError("a counted inner problem diverged: its hypergradient was skipped")

        class Iteration:
            def __call__(self):
                train(2)

            def baseline(self):
                train(1)

        return Iteration()

    # the bars in the notebook's order when nothing is reused and no CIFAR-10 is on disk: the quadratics' diagonal
    # M for each family (§2), then per held-out RotatedMNIST domain MetaMD and the learned baselines meta-trained in
    # learned_optimizers' order, then (DiverseDigits) the ablation's MetaMD for each other estimator
    learned = ["MetaMD"] + [n for n in ("L2O", "Meta-SGD", "MetaCur") if n in cfg["optimizers"]] + (
        ["ARUBA"] if {"ARUBA", "ARUBA++"} & set(cfg["optimizers"]) else [])
    first = len(cfg["quad_q0_means"])
    per_domain = {name: tuple(first + i * len(learned) + learned.index(name)
                              for i in range(len(cfg["rotated_heldout"]))) for name in learned}
    ablation = [e for e in cfg["hypergradient_ablation"] if e != cfg["hypergradient"]]
    after = first + len(learned) * len(cfg["rotated_heldout"])
    T, k, v = cfg["rotated_inner_steps"], cfg["tasks_per_step"], cfg["val_problems_per_task"]
    neumann = f" (J = {cfg['neumann_terms']} Neumann terms)"
    loops = []
    for i, estimator in enumerate([cfg["hypergradient"], *ablation]):
        bars = per_domain["MetaMD"] if i == 0 else (None if cfg["digits_heldout"] else (after + i - 1,))
        loops.append(Loop(
            f"meta-training MetaMD ({estimator} hypergradient{', the ablation' if i else ''})",
            f"one meta-iteration of Algorithm 1 on RotatedMNIST ({held}° held out): {k} tasks, each a fresh MLP "
            f"{sizes} (minibatch {cfg['batch_size']}) trained T = {T} mirror-descent steps and dE/dM by the "
            f"{estimator} estimator{neumann if estimator != 'unrolled' else ''}, "
            f"Adam on the factors, and the driver's validation: E on {v * len(tasks)} fixed problems ({T} steps "
            f"each); counted as F(1) + {T - 1}·(F(2) − F(1)) from T = 1 and 2",
            Linear(lambda steps, estimator=estimator: meta_iteration(estimator, steps), T), bars))
    if "L2O" in cfg["optimizers"]:
        lcfg = MetaTrainConfig(steps=cfg["l2o_steps"], unroll=cfg["l2o_unroll"], meta_batch=1, epochs=cfg["l2o_epochs"],
                               trajectories_per_epoch=cfg["l2o_trajectories"], val_problems=2,
                               meta_lr=cfg["l2o_meta_lr"], seed=SEED)
        torch.manual_seed(SEED)
        l2o = LSTMOptimizer(output_scale=0.1)
        loops.append(Loop(
            "meta-training L2O", f"one truncation of {cfg['l2o_unroll']} steps, 1 optimizee (MLP {sizes} ReLU, "
            f"minibatch {cfg['batch_size']}) through the LSTM optimizer; counted from 1- and 2-step truncations "
            "(the validation at each epoch's end is inside the bar and not counted)",
            Linear(lambda steps: truncation(l2o, MixtureTask(tasks), replace(lcfg, steps=steps, unroll=steps)),
                   cfg["l2o_unroll"]), per_domain["L2O"]))
    return used, loops


LOOPS = {"kuo2020_mtl2l": ("kuo2020", kuo2020), "andrychowicz2016_l2l": ("andrychowicz2016", andrychowicz2016),
         "head_to_head": ("head_to_head", head_to_head),
         "simple_optimizer": ("simple_optimizer", simple_optimizer),
         "huisman2022_turtle": ("huisman2022", huisman2022), "metamd": ("metamd", metamd)}
NOT_BUILT: dict[str, str] = {}  # notebook -> why its loop is not built (every notebook's is)


def flops_per_unit(work) -> float:
    """FLOPs of one unit; a :func:`test_steps` unit is the difference of its two lengths (what one more evaluation
    period adds); a :class:`Linear` unit is extrapolated from one and two steps; a :class:`Weighted` unit is the
    weighted sum of its calls' counts."""
    if isinstance(work, Weighted):
        return sum(weight * flops_per_unit(call) for call, weight in work.parts)
    if isinstance(work, Linear):
        one, two = flops_per_unit(work.one), flops_per_unit(work.two)
        return one + (work.steps - 1) * (two - one)
    if hasattr(work, "baseline"):  # each call builds its own state: no warm-up needed
        return count_flops(work) - count_flops(work.baseline)
    work()  # warm-up (lazily built state)
    return count_flops(work)


def bar_rates(report) -> list[float | None]:
    """Units per second of every meta-training bar of an executed notebook (a :mod:`phase_times` report), in
    order; None for a bar too short to give one (under a second, or no units: a resumed bar that was done), so that
    the indices stay those of the bars."""
    from phase_times import META_BARS

    return [b.units / b.elapsed if b.elapsed > 0 and b.units > 0 else None
            for b in report.bars if META_BARS.search(b.desc)]


def save_rate(report, pattern: str, units_per_save: int) -> tuple[float, int] | None:
    """Units per second over the intervals closed by the stored results matching ``pattern`` (made by this run),
    and how many there were."""
    import re

    seconds = [s for c in report.cells for name, _, _, s in c.saves if re.search(pattern, name) and s > 0]
    return (units_per_save * len(seconds) / sum(seconds), len(seconds)) if seconds else None


def _ranges(indices) -> str:
    """0, 1, 2, 5 -> "0-2, 5"."""
    parts, indices = [], sorted(indices)
    for i in indices:
        if parts and i == parts[-1][1] + 1:
            parts[-1][1] = i
        else:
            parts.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--notebook", required=True, choices=sorted(set(LOOPS) | set(NOT_BUILT)))
    p.add_argument("--profile", default="cpu")
    p.add_argument("--run", type=Path, help="the executed notebook whose progress bars give the rates")
    p.add_argument("--rate", action="append", default=[], metavar="LOOP=UNITS_PER_S",
                   help="a measured rate for a loop (its name as printed), instead of the bars")
    p.add_argument("--threads", type=int, default=2, help="threads for the peak (default 2: the machine's cores)")
    p.add_argument("--peak-gflops", type=float, help="the peak, if measured before (skips the measurement)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.notebook in NOT_BUILT:
        print(f"{args.notebook}: {NOT_BUILT[args.notebook]}")
        return []
    rates = {}
    for item in args.rate:
        name, _, value = item.rpartition("=")
        if not name:
            p.error(f"--rate wants LOOP=UNITS_PER_S, got {item!r}")
        rates[name] = float(value)
    torch.manual_seed(SEED)
    paper, build = LOOPS[args.notebook]
    used, loops = build(args.profile)
    print(f"{args.notebook}: profile {used}")
    report = None
    if args.run:
        from phase_times import analyse

        report = analyse(args.run)
    bars = bar_rates(report) if report else []
    if args.run:
        print(f"  {len(bars)} meta-training bars in {args.run}: "
              + ", ".join("too short" if r is None else f"{r:.3f}/s" for r in bars))
        for flag in report.flags:
            print(f"  note: {flag}")
    peak = None
    if args.peak_gflops:
        peak = args.peak_gflops * 1e9
    elif args.run or rates:
        torch.set_num_threads(args.threads)
        peak = matmul_rate(torch.device("cpu"))
        print(f"  peak: float32 4096² matrix product, {args.threads} thread(s): {peak / 1e9:.1f} GFLOP/s")
    torch.set_num_threads(1)
    rows = []
    for loop in loops:
        flops = flops_per_unit(loop.work)
        row = {"notebook": args.notebook, "profile": used, "loop": loop.name, "unit": loop.unit,
               "gflop_per_unit": flops / 1e9}
        rate, source = rates.get(loop.name), "--rate"
        # a run still going has the first bars only
        present = [i for i in (loop.bars or ()) if i < len(bars) and bars[i] is not None]
        if rate is None and present:
            chosen = [bars[i] for i in present]
            rate, source = sum(chosen) / len(chosen), f"mean of bars {present} of {list(loop.bars)}"
        if rate is None and loop.saves and report is not None:
            found = save_rate(report, *loop.saves)
            if found:
                rate, source = found[0], f"{found[1]} stored result(s) {loop.saves[0]}, {loop.saves[1]} units each"
        if rate is not None:
            row.update(units_per_s=rate, rate_source=source, gflop_per_s=flops * rate / 1e9)
            if peak:
                row.update(peak_gflop_per_s=peak / 1e9, fraction_of_peak=flops * rate / peak,
                           peak_threads=args.threads)
        rows.append(row)
        line = f"  {loop.name}: {flops / 1e9:.4g} GFLOP per unit ({loop.unit})"
        if rate is not None:
            line += f"; {rate:.3f} units/s ({source}) -> {row['gflop_per_s']:.2f} GFLOP/s"
            if peak:
                line += f", {row['fraction_of_peak']:.3f} of the peak"
        elif not args.run:  # where a run's rate would come from
            line += (f"; rate: bars {_ranges(loop.bars)} of --run" if loop.bars else
                     f"; rate: stored results {loop.saves[0]} of --run" if loop.saves else "; rate: --rate only")
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
