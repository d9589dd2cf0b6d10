"""Cost plan of a CPU run of notebooks/simple_optimizer.ipynb at a profile (default ``cpu``).

Measures, on one CPU thread, the CPU time of each piece the notebook repeats (one optimizee step of each optimizer on
the base MLP, LeNet and the 5-layer MLP; one step of meta-training through each learned optimizer on the MLP it is
meta-trained on and on LeNet), resolves the profile with the given overrides and prints the estimated CPU time of every section and in total. CPU time (``time.process_time``) on one thread is what
the run would take on an otherwise idle core; on a busy machine the wall time is longer.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/simple_optimizer_costs.py [--quick] [--profile cpu] [--set FIELD=VALUE]
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from l2l_utils.harness.profiles import PAPER_CHOICES, PAPER_PROFILES, resolve_profile  # noqa: E402
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer  # noqa: E402
from l2l_utils.learned_optimizers.rnnprop import RNNProp  # noqa: E402
from l2l_utils.learned_optimizers.simple_optimizer import SimpleOptimizer  # noqa: E402
from l2l_utils.meta_training.meta_losses import step_weights, term  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.optimizers.baselines import baseline_rule  # noqa: E402
from l2l_utils.optimizers.unroll import unroll  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset, load_image_dataset  # noqa: E402
from l2l_utils.tasks.models import lenet, mlp, mlp_width_for  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402


class Fixed:
    def __init__(self, problem):
        self.problem = problem

    def sample(self, *args):
        return self.problem


def cpu_seconds(fn, calls: int) -> float:
    fn()  # warm-up
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def eval_step(rule, problem, calls):
    """CPU seconds of one evaluation step (update, then loss and gradient) on ``problem``."""
    holder = {"current": unroll(rule, problem, 0)}

    def step():
        holder["current"] = unroll(rule, problem, 1, start=holder["current"])
    return cpu_seconds(step, calls)


def meta_step(rule, problem, steps):
    """CPU seconds per optimizee step of one truncation of meta-training (forward and backward)."""
    estimator = TruncatedBPTT(Fixed(problem), MetaTrainConfig(steps=steps, unroll=steps),
                              weights=lambda p, n: step_weights("square", n, p), term=term("difference"))
    start = time.process_time()
    estimator.step(rule, None, None)
    rule.zero_grad(set_to_none=True)
    return (time.process_time() - start) / steps


def measure(cfg, quick: bool) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    calls = 2 if quick else 5
    mnist = load_image_dataset("MNIST", "train")
    flat, images = DeviceDataset.from_image_data(mnist, flatten=True), DeviceDataset.from_image_data(mnist)
    base = ClassifierTask(mlp(784, [cfg.base_hidden], 10, "relu"), flat, cfg.batch_size, None).sample(
        1, torch.Generator().manual_seed(0))
    train = ClassifierTask(mlp(784, [cfg.train_hidden], 10, "relu"), flat, cfg.batch_size, None).sample(
        1, torch.Generator().manual_seed(0))
    le = ClassifierTask(lenet(), images, cfg.batch_size, None, vectorize=False).sample(1, torch.Generator().manual_seed(0))
    base_params = sum(p.numel() for p in mlp(784, [cfg.base_hidden], 10).parameters())
    width = mlp_width_for(cfg.deep_factor * base_params, cfg.deep_layers)
    deep = ClassifierTask(mlp(784, [width] * (cfg.deep_layers - 1), 10, "relu"), flat, cfg.batch_size, None).sample(
        1, torch.Generator().manual_seed(0))
    rules = {"Simple": SimpleOptimizer(), "DM": LSTMOptimizer(preprocess_p=10.0, output_scale=0.1), "RNNProp": RNNProp()}
    costs = {}
    for name, rule in rules.items():
        slow = name != "Simple"
        costs[f"base eval {name}"] = eval_step(rule, base, 1 if slow else calls)
        costs[f"train eval {name}"] = eval_step(rule, train, 1 if slow else calls)
        costs[f"train meta {name}"] = meta_step(rule, train, 3 if slow or quick else 10)
        costs[f"lenet eval {name}"] = eval_step(rule, le, calls)
    costs["base eval SGD"] = eval_step(baseline_rule("SGD", 0.1), base, calls * 4)
    costs["lenet eval SGD"] = eval_step(baseline_rule("SGD", 0.1), le, calls * 4)
    costs["lenet meta Simple"] = meta_step(rules["Simple"], le, 5 if quick else 20)
    costs["deep eval Simple"] = eval_step(rules["Simple"], deep, 1 if quick else 3)
    costs["deep eval SGD"] = eval_step(baseline_rule("SGD", 0.1), deep, 1 if quick else 3)
    costs["deep width"] = width
    return costs


def plan(cfg, c) -> dict:
    """Estimated CPU seconds per section (every cost is per optimizee step and per run; runs are batched, so a
    batch of n runs costs n times one run, to first order). Meta-training runs on the MLP of ``train_hidden`` units,
    everything else on the base MLP (``base_hidden``), LeNet and the 5-layer MLP."""
    n, grid = cfg.test_runs, len(cfg.lr_grid)
    trajectories = cfg.epochs * cfg.trajectories
    validation = cfg.epochs * cfg.val_problems * cfg.train_steps  # the best-epoch validation, steps per epoch × runs

    def meta(name):
        return trajectories * cfg.train_steps * c[f"train meta {name}"] + validation * c[f"train eval {name}"]

    lstm = min(cfg.lstm_long_steps, cfg.long_steps)
    lenet_lstm = min(cfg.lenet_steps, cfg.lstm_long_steps)
    gate = 2 * n * cfg.train_steps * (4 * c["train eval Simple"] + c["train eval DM"] + c["train eval RNNProp"])
    return {
        "meta-training: SimpleOptimizer and 3 ablations": 4 * meta("Simple"),
        "meta-training: DMOptimizer": meta("DM"),
        "meta-training: RNNProp": meta("RNNProp"),
        "did it learn? (6 optimizers, trained and untrained)": gate,
        "Fig. 2/3: 4 SimpleOptimizer variants": 4 * cfg.long_steps * n * c["base eval Simple"],
        "Fig. 2: DMOptimizer and RNNProp": lstm * n * (c["base eval DM"] + c["base eval RNNProp"]),
        "Fig. 4a: learned optimizers on LeNet": n * (cfg.lenet_steps * c["lenet eval Simple"]
                                                     + lenet_lstm * (c["lenet eval DM"] + c["lenet eval RNNProp"])),
        "Fig. 4a: SGD and ADAM, best of the grid": 2 * grid * cfg.lenet_steps * n * c["lenet eval SGD"],
        "substitute: fine-tuning (at most)": cfg.finetune_repeats * cfg.finetune_max_steps * c["lenet meta Simple"],
        "substitute: tuning on the subset": 2 * grid * cfg.subset_tune_steps * n * c["lenet eval SGD"],
        "substitute: evaluation": cfg.transfer_steps * n * (2 * c["lenet eval Simple"] + 4 * c["lenet eval SGD"]),
        "Fig. 5a: 5-layer MLP": cfg.deep_steps * n * (c["deep eval Simple"] + 2 * grid * c["deep eval SGD"]),
        "§3.1 probe, Table 1 timing, data, start-up": 60.0
        + cfg.timing_repeats * cfg.timing_steps * (c["base eval DM"] + c["base eval RNNProp"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    parser.add_argument("--profile", default="cpu", help="the profile to estimate (default cpu)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of --profile (Python literal), e.g. --set train_hidden=100")
    args = parser.parse_args(argv)
    name = args.profile
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = resolve_profile(name, PAPER_PROFILES["simple_optimizer"], overrides, PAPER_CHOICES["simple_optimizer"])
    costs = measure(cfg, args.quick)
    print("CPU seconds per optimizee step and run (one thread):")
    for key, value in costs.items():
        print(f"  {key:<22} {value:10.4f}" if key != "deep width" else f"  {key:<22} {value:10d}")
    sections = plan(cfg, costs)
    print(f"\nestimate for profile {name} with overrides {overrides}:")
    for key, seconds in sections.items():
        print(f"  {key:<52} {seconds / 60:7.1f} min")
    print(f"  {'total':<52} {sum(sections.values()) / 3600:7.2f} h")


if __name__ == "__main__":
    main()
