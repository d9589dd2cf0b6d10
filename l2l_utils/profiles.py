"""Profiles: named, validated sets of experiment sizes (DESIGN.md, "Profiles").

``smoke`` runs the whole pipeline at toy size on a CPU; ``paper`` holds the paper's own settings.
Every value can be overridden, and any bad value fails at once with a message naming the parameter
and what is allowed.
"""

from __future__ import annotations

import ast
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Mapping


class ParameterError(ValueError):
    """A notebook parameter or profile override has a value that is not allowed."""


class Profile(dict):
    """A resolved profile: a read-only dict whose keys are also attributes.

    Reads can be recorded (:meth:`recording`): the results store keys a cached computation by the fields it
    actually read, so a changed field recomputes exactly what depends on it (:mod:`l2l_utils.results`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._recorders: list[set] = []

    def __getitem__(self, key):
        value = super().__getitem__(key)
        for reads in self._recorders:
            reads.add(key)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setitem__(self, key, value):  # pragma: no cover - guard only
        raise TypeError("a resolved profile is read-only; pass overrides to resolve_profile")

    def __reduce__(self):
        return (type(self), (dict(self),))

    @contextmanager
    def recording(self):
        """Collect the names of the fields read inside the block (nested blocks all see the inner reads)."""
        reads: set = set()
        self._recorders.append(reads)
        try:
            yield reads
        finally:
            self._recorders.remove(reads)

    def replay(self, keys) -> None:
        """Count ``keys`` as read (a cached result reused inside a recording depends on what it read)."""
        for key in keys:
            self[key]

    def snapshot(self, keys) -> dict:
        """{field: value} for ``keys`` (without recording them), to store beside a result."""
        return {key: dict.__getitem__(self, key) for key in sorted(keys)}


def parse_overrides(overrides: Mapping[str, Any] | str | None) -> dict:
    """Accept a dict, or its text form (as papermill ``-p overrides "{...}"`` passes it)."""
    if overrides is None or overrides == "":
        return {}
    if isinstance(overrides, str):
        try:
            overrides = ast.literal_eval(overrides)
        except (ValueError, SyntaxError) as exc:
            raise ParameterError(f"overrides must be a dict literal, got {overrides!r}") from exc
    if not isinstance(overrides, Mapping):
        raise ParameterError(f"overrides must be a dict, got {type(overrides).__name__}")
    return dict(overrides)


def _check_value(key: str, value: Any, default: Any, choices: Mapping[str, tuple]) -> Any:
    if key in choices:
        allowed = choices[key]
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ParameterError(f"{key}={value!r}: {bad} not allowed; allowed values are {list(allowed)}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"{key} must be True or False, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{key} must be a positive number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ParameterError(f"{key} must be a positive integer, got {value!r}")
        if not value > 0:
            raise ParameterError(f"{key} must be positive, got {value!r}")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise ParameterError(f"{key} must be a non-empty list, got {value!r}")
        integers = all(isinstance(d, int) and not isinstance(d, bool) for d in default)
        zero_ok = key.endswith("weight_decays")  # a weight-decay grid may include 0 (MetaMD App. A.9)
        for item in value:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not (item > 0 or zero_ok and item == 0):
                raise ParameterError(f"{key} must hold {'non-negative' if zero_ok else 'positive'} values, "
                                     f"got {value!r}")
            if integers and (isinstance(item, bool) or not isinstance(item, int)):
                raise ParameterError(f"{key} must hold positive integers, got {value!r}")
        return list(value)
    return value


def resolve_profile(profile: str, profiles: Mapping[str, Mapping[str, Any]],
                    overrides: Mapping[str, Any] | str | None = None,
                    choices: Mapping[str, tuple] | None = None) -> Profile:
    """Return ``profiles[profile]`` with ``overrides`` applied, everything validated.

    Numbers must be positive (and integers where the profile's value is an integer), lists non-empty
    with positive entries, and keys listed in ``choices`` must take one of the allowed values.
    """
    if not isinstance(profile, str) or profile not in profiles:
        raise ParameterError(f"profile={profile!r} is unknown; allowed values are {sorted(profiles)}")
    choices = choices or {}
    base = dict(profiles[profile])
    overrides = parse_overrides(overrides)
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ParameterError(f"unknown override(s) {unknown}; allowed keys are {sorted(base)}")
    resolved = {}
    for key, default in base.items():
        value = overrides.get(key, default)
        resolved[key] = _check_value(key, value, default, choices)
    resolved["profile"] = profile
    return Profile(resolved)


def frozen(mapping: Mapping) -> Mapping:
    """Read-only view, so profile tables in code cannot be changed by accident."""
    return MappingProxyType(dict(mapping))


# --------------------------------------------------------------------------------------------------
# Profiles of each paper. ``paper`` holds the paper's settings; where the paper is silent the value
# is ours and the notebook says so. ``smoke`` is the same pipeline at toy size.
_L2L_PAPER = {
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
    # shared: learning-rate grid of the baselines, Gaussian initialisations, Appendix B trace
    "lr_grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0],
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
}
_L2L_SMOKE = dict(
    _L2L_PAPER,
    quad_meta_batch=32, quad_epochs=3, quad_trajectories=4, quad_val=32, quad_test=64, quad_tune_runs=32,
    quad_meta_lr=1e-2,
    mnist_steps=20, mnist_long_steps=40, mnist_unroll=10, mnist_meta_batch=2, mnist_epochs=2,
    mnist_trajectories=2, mnist_val=2, mnist_test=4, mnist_tune_runs=2, mnist_meta_lr=3e-3,
    sweep_hidden=[10, 40], sweep_layers=[1, 2], tune_per_architecture=False,
    cifar_batch=32, cifar_steps=20, cifar_unroll=10, cifar_meta_batch=2, cifar_epochs=1, cifar_trajectories=2,
    cifar_val=2, cifar_test=2, cifar_tune_runs=2,
    lr_grid=[1e-2, 1e-1, 1.0], trace_steps=16, meta_lr_trials=2, meta_lr_search_epochs=1, lstm_init_epochs=1,
    trace_stat_coords=64, score_window=5,
)
PAPER_PROFILES = {"andrychowicz2016": {"smoke": _L2L_SMOKE, "paper": _L2L_PAPER}}
PAPER_CHOICES = {"andrychowicz2016": {"dataset": ("MNIST", "FashionMNIST"),
                                      "lstm_init": ("normal", "normal-zero-head-bias", "pytorch"),
                                      "lstm_init_choices": ("normal", "normal-zero-head-bias", "pytorch")}}

# Huisman et al. 2022 (TURTLE). Values marked "ours" are not in the paper; the notebook lists them.
_TURTLE_PAPER = {
    # §5.1-5.2 sine waves (Finn et al.): 5-shot, 70K / 1K / 2K tasks, validation every 2.5K, 30 runs
    "sine_support": 5, "sine_query": 50,  # query size: ours
    "sine_train_tasks": 70_000, "sine_val_tasks": 1_000, "sine_test_tasks": 2_000, "val_every": 2_500,
    "runs": 30,
    # Fig. 3: T and meta-network depth (the axis values and the number of runs are ours)
    "fig3_T": [1, 5, 10], "fig3_layers": [1, 2, 3, 4, 5, 6, 7], "fig3_runs": 5,
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
    "image_train_tasks_5shot": 40_000, "image_val_tasks": 600, "image_test_tasks": 600, "image_runs": 5,
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
_TURTLE_SMOKE = dict(
    _TURTLE_PAPER,
    sine_train_tasks=150, sine_val_tasks=50, sine_test_tasks=100, val_every=50, runs=2, init_inits=4, init_tasks=50,
    fig3_T=[1, 5], fig3_layers=[1, 5], fig3_runs=2, fig4_T=[5],
    shots=[1], image_train_tasks_1shot=4, image_train_tasks_5shot=4, image_val_tasks=5, image_test_tasks=10,
    image_runs=1, image_T=3, lstm_steps_1shot=2, lstm_steps_5shot=2, lstm_enhanced_steps=2, maml_eval_T=3,
    transfer_pretrain_steps=20, transfer_test_steps=25, eval_chunk=50,
)
PAPER_PROFILES["huisman2022"] = {"smoke": _TURTLE_SMOKE, "paper": _TURTLE_PAPER}
PAPER_CHOICES["huisman2022"] = {"shots": (1, 5)}

# MetaMD (anonymous ICLR submission). Values marked "ours" are not in the paper; the notebook lists them.
_METAMD_PAPER = {
    # §5.1 / App. A.1 2-D quadratics: means of Q00 per setting (Q11 mean 14); std of Q, θ1 law, T, η, k, γ: ours
    "quad_q0_means": [0.3, 0.02], "quad_q1_mean": 14.0, "quad_q_rel_std": 0.1, "quad_init_std": 1.0,
    "quad_meta_steps": 300, "quad_tasks": 16, "quad_inner_steps": 1000, "quad_lr": 0.05, "quad_meta_lr": 0.05,
    "quad_tol": 1e-6, "quad_max_iters": 100_000, "quad_tune_problems": 5, "quad_test_problems": 20,
    "quad_sgd_lrs": [0.001, 0.003, 0.01, 0.03, 0.05, 0.07], "quad_adam_lrs": [0.01, 0.03, 0.1, 0.3, 1.0],
    "quad_md_lrs": [0.01, 0.02, 0.03, 0.04, 0.05],
    # Eq. 8 and Algorithm 1-2 (k, γ, meta learning rate, number of meta-steps, init: ours; J = 20 from App. A.12);
    # the hypergradient estimator and the meta learning rate are chosen by the notebook's section 1b
    "k_lambda": 0.01, "gamma": 0.01, "neumann_terms": 20, "meta_lr": 1e-3, "meta_steps": 100,
    "tasks_per_step": 5, "runs_per_task": 1, "inner_lr": 0.1, "init_norm": 0.1, "hypergradient": "unrolled",
    # section 1b: estimators against the exact hypergradient (problems per T, the T values, other meta-lrs probed)
    "hypergrad_problems": 4, "hypergrad_mlp_T": [10, 50, 300, 1000, 2000], "hypergrad_lenet_T": [10, 50, 500],
    "hypergrad_meta_lrs": [0.01, 0.001, 0.0001],
    # the ablation: MetaMD meta-trained again with these estimators on the first held-out RotatedMNIST domain
    "hypergradient_ablation": ["direct", "ift", "as_printed"], "val_problems_per_task": 1,
    # §5.2 RotatedMNIST: 6 domains, leave-one-domain-out, 3-layer MLP (widths ours), inner problem "to convergence"
    "rotated_domains": [0, 15, 30, 45, 60, 75], "rotated_heldout": [0, 15, 30, 45, 60, 75], "mlp_hidden": [256, 128],
    "rotated_inner_steps": 2000,
    # §5.2 DiverseDigits with LeNet, T = 500
    "digits": ["MNIST", "QMNIST", "KMNIST", "FashionMNIST", "USPS", "SVHN"],
    "digits_heldout": ["MNIST", "QMNIST", "KMNIST", "FashionMNIST", "USPS", "SVHN"], "digits_inner_steps": 500,
    "pool_train_fraction": 0.8,  # datasets with only a test split here: their train/test split (ours)
    # meta-test: train each optimiser for test_steps on minibatches (ours), 3 trials, grid search (App. A.7)
    "batch_size": 128, "test_steps": 3000, "trials": 3, "val_fraction": 0.1,
    "sgd_lrs": [0.1, 0.05, 0.01, 0.005, 0.001], "adam_lrs": [0.3, 0.2, 0.1, 0.01, 0.001],
    "weight_decays": [0.001, 0.0001, 0.0005], "learned_lrs": [0.1, 0.01, 0.005, 0.001, 0.0005, 0.0001],
    # L2O (the LSTM optimizer of Andrychowicz et al.) and Meta-SGD meta-trained on the same tasks by truncated
    # BPTT on the training loss (sizes ours)
    "l2o_steps": 100, "l2o_unroll": 20, "l2o_epochs": 20, "l2o_trajectories": 20, "l2o_meta_lr": 1e-3,
    "metasgd_init_lr": 0.05,
    # the optimisers compared at meta-test (all of them in the paper's tables that are implemented here)
    "optimizers": ["SGD", "SGD-M", "Adam", "RMSprop", "L2O", "Meta-SGD", "MetaMD"],
    # Table 2 / 5: ResNet-18 on CIFAR-10, meta-trained on STL-10 + DiverseDigits (all as 3×32×32); T: ours
    "cifar_inner_steps": 500,
    # the optimisers of the ResNet-18 tables (2, 3, 5, 6) that are implemented here
    "resnet_optimizers": ["SGD-M", "Adam", "PowerSign", "AddSign", "Meta-SGD", "MetaMD"],
    # §5.2 / App. A.9 high resolution: datasets, 224×224, 20 random classes per meta-training task, the A.9 grid;
    # T, meta-test steps, batch size, accuracy-curve interval and training-accuracy subset: ours
    "highres_meta_train": ["Aircraft", "Butterfly", "Pets"], "highres_meta_test": ["Caltech256", "DTD", "Flowers", "PubFig"],
    "highres_image_size": 224, "highres_classes": 20, "highres_inner_steps": 500, "highres_batch_size": 64,
    "highres_test_steps": 3000, "highres_lrs": [0.1, 0.01, 0.001, 0.0001],
    "highres_weight_decays": [0.001, 0.0005, 0.0001, 0.00001, 0.0], "accuracy_every": 250,
    "train_accuracy_images": 2000,
    # App. A.10-A.11: loss along the top Hessian eigenvector (±radius, points) on landscape_images training images,
    # power-iteration steps (all ours)
    "landscape_images": 512, "landscape_radius": 1.0, "landscape_points": 21, "landscape_iters": 30,
    # App. A.16: weight decay as domain shift (0, the meta-training setting, is always included)
    "shift_weight_decays": [1e-5, 1e-4, 1e-3],
    # Theorem 4.1: confidence 1 − δ
    "delta": 0.05,
}
_METAMD_SMOKE = dict(
    _METAMD_PAPER,
    quad_meta_steps=40, quad_tasks=8, quad_tune_problems=2, quad_max_iters=20_000,
    quad_sgd_lrs=[0.01, 0.05], quad_adam_lrs=[0.1, 1.0],
    meta_steps=2, tasks_per_step=2, rotated_domains=[0, 30, 60], rotated_heldout=[0], rotated_inner_steps=30,
    hypergrad_problems=1, hypergrad_mlp_T=[5, 20], hypergrad_lenet_T=[5], hypergradient_ablation=["ift"],
    quad_test_problems=3,
    mlp_hidden=[32, 16], digits_heldout=["USPS"], digits_inner_steps=30, test_steps=40, trials=2,
    sgd_lrs=[0.05], adam_lrs=[0.001], weight_decays=[0.0001], learned_lrs=[0.1],
    l2o_steps=10, l2o_unroll=5, l2o_epochs=1, l2o_trajectories=2, shift_weight_decays=[1e-3],
    highres_image_size=32, highres_classes=2, highres_inner_steps=3, highres_batch_size=8, highres_test_steps=6,
    highres_lrs=[0.01], highres_weight_decays=[0.0], accuracy_every=3, train_accuracy_images=16,
    landscape_images=128, landscape_points=7, landscape_iters=10,
)
PAPER_PROFILES["metamd"] = {"smoke": _METAMD_SMOKE, "paper": _METAMD_PAPER}
PAPER_CHOICES["metamd"] = {"hypergradient": ("unrolled", "direct", "ift", "as_printed"),
                           "hypergradient_ablation": ("unrolled", "direct", "ift", "as_printed"),
                           "optimizers": ("SGD", "SGD-M", "Adam", "RMSprop", "L2O", "PowerSign", "AddSign", "Meta-SGD",
                                          "MetaMD"),
                           "digits": ("MNIST", "QMNIST", "KMNIST", "FashionMNIST", "USPS", "SVHN"),
                           "digits_heldout": ("MNIST", "QMNIST", "KMNIST", "FashionMNIST", "USPS", "SVHN"),
                           "rotated_domains": (0, 15, 30, 45, 60, 75), "rotated_heldout": (0, 15, 30, 45, 60, 75),
                           "resnet_optimizers": ("SGD", "SGD-M", "Adam", "RMSprop", "PowerSign", "AddSign",
                                                 "Meta-SGD", "MetaMD"),
                           "highres_meta_train": ("Aircraft", "Butterfly", "Pets", "Caltech256", "DTD", "Flowers",
                                                  "PubFig"),
                           "highres_meta_test": ("Aircraft", "Butterfly", "Pets", "Caltech256", "DTD", "Flowers",
                                                 "PubFig")}
