"""Speed of MTL2L (Kuo et al. 2020) against the LSTM optimisers and Adam on the paper's learner (MLP 784-32-ReLU-10,
25,450 parameters, minibatches of 128 MNIST-sized images):

1. one update step (no graph: testing) with 1 and 10 learners at once;
2. one meta-training truncation (Ξ = 5 steps, first order, backward) with one learner.

Every measurement is warmed up, synchronised on CUDA, and reported as the median over ``--repeats`` repeats.

    .venv/bin/python benchmarks/bench_mtl2l.py --device cpu [--quick] [--threads 1] [--out bench.json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from roofline import against_roofline, describe, limits_json, measure_limits  # noqa: E402
from timing import Fixed, finish, start, time_per_call, timed_args  # noqa: E402

from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer  # noqa: E402
from l2l_utils.learned_optimizers.mtl2l import AuthorsLSTMOptimizer, MTL2LOptimizer  # noqa: E402
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT  # noqa: E402
from l2l_utils.optimizers.baselines import baseline_rule  # noqa: E402
from l2l_utils.optimizers.unroll import unroll  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset  # noqa: E402
from l2l_utils.tasks.models import mlp  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

SEED = 0
RULES = {
    "MTL2L (paper layout)": lambda: MTL2LOptimizer("paper", momentum=0.9),
    "MTL2L (authors' layout)": lambda: MTL2LOptimizer("authors", momentum=0.9),
    "LSTM (Andrychowicz et al.)": lambda: LSTMOptimizer(preprocess_p=10.0, output_scale=0.1),
    "LSTM (authors' code)": lambda: AuthorsLSTMOptimizer(),
}


def parse_args(argv=None):
    return timed_args(argv, __doc__)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, sync, env = start(args.device, args.threads, f"{'quick' if args.quick else 'full'} run")
    started = time.perf_counter()
    g = torch.Generator().manual_seed(SEED)
    data = DeviceDataset(torch.randn(10_000, 784, generator=g).to(device), torch.randint(0, 10, (10_000,),
                                                                                        generator=g).to(device))
    task = ClassifierTask(mlp(784, [32], 10, "relu"), data, 128, init_std=None)
    rows = []
    print(f"\n1. One update step on the MLP 784-32-ReLU-10 ({task.num_params} parameters per learner), median ms")
    print(f"   {'rule':<28} {'1 learner':>10} {'10 learners':>12}")
    rules = {name: make().to(device).eval() for name, make in RULES.items()}
    rules["Adam"] = baseline_rule("ADAM", 0.01)
    for name, rule in rules.items():
        row = {"rule": name}
        for n in (1, 10):
            problem = task.sample(n, torch.Generator().manual_seed(SEED + n))
            current = {}

            def reset():
                current["u"] = unroll(rule, problem, 0)

            def step():
                current["u"] = unroll(rule, problem, 1, start=current["u"])

            row[f"step_ms_{n}"] = 1e3 * time_per_call(step, setup=reset, sync=sync, **args.timing)["median_s"]
        rows.append(row)
        print(f"   {name:<28} {row['step_ms_1']:>10.2f} {row['step_ms_10']:>12.2f}")
    adam = rows[-1]
    for row in rows[:-1]:
        row["vs_adam_1"] = row["step_ms_1"] / adam["step_ms_1"]
    print("   ratio to Adam (1 learner): " + ", ".join(f"{r['rule']} {r['vs_adam_1']:.1f}×" for r in rows[:-1]))

    limits = measure_limits(device, sync, args.quick)
    print("\n2. One meta-training truncation (Ξ = 5, first order, backward), one learner, median ms, against the "
          "limits (benchmarks/roofline.py)")
    cfg = MetaTrainConfig(steps=5, unroll=5, clip_value=1.0)
    meta = []
    for name, make in RULES.items():
        rule = make().to(device)
        problem = task.sample(1, torch.Generator().manual_seed(SEED))

        def truncation():
            for p in rule.parameters():
                p.grad = None
            TruncatedBPTT(Fixed(problem), cfg).step(rule, torch.Generator().manual_seed(SEED), 1)

        ms = 1e3 * time_per_call(truncation, sync=sync, **args.timing)["median_s"]
        meta.append({"rule": name, "truncation_ms": ms, **against_roofline(truncation, ms / 1e3, limits)})
        print(f"   {name:<28} {ms:>10.1f}  {describe(meta[-1])}")
    return finish({"environment": env, **limits_json(limits), "steps": rows, "meta_training": meta}, env, started,
                  args.out)


if __name__ == "__main__":
    main()
