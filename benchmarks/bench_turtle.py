"""Micro-benchmarks of the episodic meta-learners of Huisman et al. 2022 (TURTLE notebook).

1. Time per meta-iteration (adapt on the support sets, query loss, backward, Adam step) of first- and
   second-order MAML, the meta-learner LSTM (original and enhanced) and first- and second-order TURTLE,
   on 5-shot sine waves (1-40-40-1) and on 5-way 1-shot Omniglot-sized episodes (Conv-4, 28×28), all with
   T = 5 and the same meta-batch, so the columns compare the update rules only. The paper (§5.5): TURTLE's
   cost is comparable to second-order MAML.
2. Tasks of a meta-batch (and of an evaluation chunk) processed together (vmap over the task dimension)
   vs one task at a time in a Python loop with accumulated gradients, and vs the whole meta-batch adapted
   together but with the network evaluated task by task (``FunctionalNetwork(vectorize=False)``).

Medians over ``--repeats`` after warm-up, synchronised on CUDA. Random inputs of the right shapes are used
for the image episodes (timing does not depend on pixel values), so no dataset is needed.

    .venv/bin/python benchmarks/bench_turtle.py --device cpu [--quick] [--out bench.json]
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

from l2l_utils.learned_optimizers.meta_learners import MAML, MetaLearnerLSTM, Turtle  # noqa: E402
from l2l_utils.meta_training.episodic_training import EpisodicConfig, EpisodicQueryLoss  # noqa: E402
from l2l_utils.tasks.episodes import EpisodeBatch, SineTasks  # noqa: E402
from l2l_utils.tasks.models import Conv4, FunctionalNetwork, sine_network  # noqa: E402

SEED = 0
METHODS = {  # name -> (maker from θ, second order, extra config)
    "FO-MAML": (lambda theta: MAML(theta, inner_clamp=10.0), False, {"outer_clamp": 10.0}),
    "SO-MAML": (lambda theta: MAML(theta, inner_clamp=10.0), True, {"outer_clamp": 10.0}),
    "LSTM (first order)": (lambda theta: MetaLearnerLSTM(theta), False, {"clip_norm": 0.25}),
    "LSTM enhanced (second order)": (lambda theta: MetaLearnerLSTM(theta, raw_inputs=True), True, {"clip_norm": 0.25}),
    "FO-TURTLE": (lambda theta: Turtle(theta, inner_clamp=10.0), False, {"outer_clamp": 10.0}),
    "SO-TURTLE": (lambda theta: Turtle(theta, inner_clamp=10.0), True, {"outer_clamp": 10.0}),
}


def image_episodes(num_tasks: int, device, n_way=5, shots=1, query=15, size=28) -> EpisodeBatch:
    generator = torch.Generator().manual_seed(SEED)
    labels = lambda k: torch.arange(n_way).repeat_interleave(k).repeat(num_tasks, 1)  # noqa: E731
    return EpisodeBatch(torch.rand(num_tasks, n_way * shots, 1, size, size, generator=generator), labels(shots),
                        torch.rand(num_tasks, n_way * query, 1, size, size, generator=generator), labels(query)).to(device)


def problems(device):
    sine = SineTasks(5, 50).sample(64, torch.Generator().manual_seed(SEED), device=device)
    return {
        "sine (1-40-40-1, 5-shot)": (lambda: sine_network(), "regression", sine),
        "Omniglot-sized (Conv-4 28x28, 5-way 1-shot)": (lambda: Conv4(1, 5, 28), "classification",
                                                        image_episodes(8, device)),
    }


def meta_iteration(method, make_net, kind, batch: EpisodeBatch, meta_batch: int, steps: int, device,
                   vectorize: bool = True):
    maker, second_order, extra = METHODS[method]
    torch.manual_seed(SEED)
    net = make_net().to(device)
    meta = maker(dict(net.named_parameters())).to(device)
    learner = FunctionalNetwork(net, kind, vectorize=vectorize)
    cfg = EpisodicConfig(steps=steps, meta_batch=meta_batch, second_order=second_order, **extra)
    optimizer = torch.optim.Adam(meta.parameters(), lr=1e-3)
    estimator = EpisodicQueryLoss(learner, Fixed(batch.slice(0, meta_batch)), cfg, device)

    def step():  # one unit of the shared driver: estimate the meta-gradient, one Adam step
        optimizer.zero_grad(set_to_none=True)
        if not estimator.step(meta, None, meta_batch).failed:
            optimizer.step()

    return step


def looped_meta_iteration(make_net, kind, batch: EpisodeBatch, meta_batch: int, steps: int, device):
    """Second-order TURTLE, one task at a time, gradients accumulated, one Adam step: the loop the vmap replaces."""
    torch.manual_seed(SEED)
    net = make_net().to(device)
    meta = Turtle(dict(net.named_parameters())).to(device)
    learner = FunctionalNetwork(net, kind)
    optimizer = torch.optim.Adam(meta.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        for j in range(meta_batch):
            task = batch.slice(j, j + 1)
            params = meta.adapt(learner, task.support_x, task.support_y, steps, True)
            learner.loss(params, task.query_x, task.query_y).sum().backward()
        torch.nn.utils.clip_grad_value_(meta.parameters(), 10.0)
        optimizer.step()

    return step


def evaluation(make_net, kind, batch: EpisodeBatch, chunk: int, steps: int, device):
    torch.manual_seed(SEED)
    net = make_net().to(device)
    meta, learner = MAML(dict(net.named_parameters())).to(device), FunctionalNetwork(net, kind)

    def run():
        for first in range(0, len(batch), chunk):
            part = batch.slice(first, first + chunk)
            params = meta.adapt(learner, part.support_x, part.support_y, steps, False, differentiable=False)
            with torch.no_grad():
                learner.loss(params, part.query_x, part.query_y)

    return run


def parse_args(argv=None):
    return timed_args(argv, __doc__)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, sync, env = start(args.device, args.threads)
    t0 = time.perf_counter()
    kw = dict(sync=sync, **args.timing)
    limits = measure_limits(device, sync, args.quick)
    result = {"environment": env, **limits_json(limits), "per_method": [], "batching": []}

    print("\n1. Time per meta-iteration (T = 5, meta-batch 2), median ms; FLOPs of its matrix products, bytes of its "
          "operations, fractions of the limits (benchmarks/roofline.py)")
    for problem, (make_net, kind, batch) in problems(device).items():
        row = {"problem": problem}
        print(f"   {problem}")
        for method in METHODS:
            iteration = meta_iteration(method, make_net, kind, batch, 2, 5, device)
            seconds = time_per_call(iteration, **kw)["median_s"]
            row[method] = 1e3 * seconds
            row[f"{method} at limit"] = against_roofline(iteration, seconds, limits)
            print(f"     {method:<30} {row[method]:>9.1f} ms  {describe(row[f'{method} at limit'])}")
        row["SO-TURTLE / SO-MAML"] = row["SO-TURTLE"] / row["SO-MAML"]
        result["per_method"].append(row)
        print(f"     SO-TURTLE / SO-MAML: {row['SO-TURTLE / SO-MAML']:.2f}x (paper: comparable)")

    print("\n2. Tasks together (vmap over the task dimension) vs one at a time, median ms")
    for problem, (make_net, kind, batch) in problems(device).items():
        meta_batch = 8
        together = time_per_call(meta_iteration("SO-TURTLE", make_net, kind, batch, meta_batch, 5, device), **kw)
        unvectorized = time_per_call(meta_iteration("SO-TURTLE", make_net, kind, batch, meta_batch, 5, device,
                                                    vectorize=False), **kw)
        looped = time_per_call(looped_meta_iteration(make_net, kind, batch, meta_batch, 5, device), **kw)
        chunk = len(batch)
        eval_together = time_per_call(evaluation(make_net, kind, batch, chunk, 5, device), **kw)
        eval_looped = time_per_call(evaluation(make_net, kind, batch, 1, 5, device), **kw)
        row = {"problem": problem, "meta_batch": meta_batch, "meta_together_ms": 1e3 * together["median_s"],
               "meta_looped_ms": 1e3 * looped["median_s"], "meta_unvectorized_ms": 1e3 * unvectorized["median_s"],
               "eval_tasks": chunk,
               "eval_together_ms": 1e3 * eval_together["median_s"], "eval_looped_ms": 1e3 * eval_looped["median_s"]}
        result["batching"].append(row)
        print(f"   {problem}")
        print(f"     SO-TURTLE meta-iteration, {meta_batch} tasks: together {row['meta_together_ms']:.1f}, loop "
              f"{row['meta_looped_ms']:.1f} ({row['meta_looped_ms'] / row['meta_together_ms']:.2f}x); "
              f"FunctionalNetwork(vectorize=False) {row['meta_unvectorized_ms']:.1f}")
        print(f"     MAML evaluation (T = 5), {chunk} tasks: together {row['eval_together_ms']:.1f}, loop "
              f"{row['eval_looped_ms']:.1f} ({row['eval_looped_ms'] / row['eval_together_ms']:.2f}x)")
    return finish(result, env, t0, args.out)


if __name__ == "__main__":
    main()
