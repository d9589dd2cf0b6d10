"""Micro-benchmarks of MetaMD (Meta Mirror Descent) on the LeNet task of the DiverseDigits experiment (§5.2).

1. Per-iteration cost of one MetaMD step (forward, backward, θ ← θ − ηB⁻¹GA⁻¹ per layer) vs one SGD and one
   SGD-M step (torch.optim) on LeNet, minibatch 128 of 28×28 images. The paper's Table 7 reports MetaMD about 11%
   above SGD-M per iteration on ResNet-18.
2. Cost of one implicit hypergradient (Algorithm 2, J = 20 Neumann terms) vs one inner training step.
3. Table 7: wall clock per iteration of ResNet-18 on ``--resnet-size``² images (224 in the paper's high-resolution
   setting; minibatch ``--resnet-batch``, 100 classes) with SGD-M, Adam, PowerSign, AddSign, Meta-SGD and MetaMD
   (``--no-resnet`` skips it).

Random images of the right shape are used (timing does not depend on pixel values), so no dataset is needed.
Medians over ``--repeats`` after warm-up, synchronised on CUDA.

    .venv/bin/python benchmarks/bench_metamd.py --device cpu [--quick] [--out bench.json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from roofline import against_roofline, describe, limits_json, measure_limits  # noqa: E402
from timing import argument_parser, finish, parse_checked, start, time_per_call  # noqa: E402

from l2l_utils.learned_optimizers.lstm_optimizer import PerParameterLearningRates  # noqa: E402
from l2l_utils.learned_optimizers.mirror_descent import KroneckerMirrorMap  # noqa: E402
from l2l_utils.meta_training.hypergradients import fixed_point_hypergradient, unrolled_hypergradient  # noqa: E402
from l2l_utils.optimizers.baselines import make_baseline  # noqa: E402
from l2l_utils.tasks.datasets import DeviceDataset  # noqa: E402
from l2l_utils.tasks.models import lenet, resnet18  # noqa: E402
from l2l_utils.tasks.problems import ClassifierTask  # noqa: E402

SEED, BATCH = 0, 128


def main(argv=None) -> dict:
    p = argument_parser(__doc__)
    p.add_argument("--resnet-size", type=int, default=224)
    p.add_argument("--resnet-batch", type=int, default=64)
    p.add_argument("--no-resnet", action="store_true")
    args = parse_checked(p, argv, ("repeats", "threads", "resnet_size", "resnet_batch"))
    repeats = args.repeats or (3 if args.quick else 7)
    device, sync, env = start(args.device, args.threads)
    kw = dict(sync=sync, warmup=2, repeats=repeats, target_s=0.3 if args.quick else 1.0, max_calls=50)
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    net = lenet().to(device)
    x = torch.rand(BATCH, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)
    mirror = KroneckerMirrorMap({k: v.shape for k, v in net.named_parameters()}, init_norm=1.0).to(device)
    params = {k: v.detach().clone().requires_grad_() for k, v in net.named_parameters()}

    def metamd_step():
        loss = F.cross_entropy(functional_call(net, params, (x,)), y)
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        with torch.no_grad():
            for k, v in mirror.step(params, grads, 0.01).items():
                params[k].copy_(v)

    def torch_step(momentum):
        model = lenet().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=momentum)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    rows = {"SGD": time_per_call(torch_step(0.0), **kw)["median_s"],
            "SGD-M": time_per_call(torch_step(0.9), **kw)["median_s"],
            "MetaMD": time_per_call(metamd_step, **kw)["median_s"]}
    print(f"\n1. One training step of LeNet (batch {BATCH}), median ms")
    for name, seconds in rows.items():
        print(f"   {name:<8} {1e3 * seconds:8.2f} ms")
    print(f"   MetaMD / SGD-M: {rows['MetaMD'] / rows['SGD-M']:.2f}x (paper, ResNet-18: 1.11x)")

    theta1 = {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()}
    theta_T = {k: v + 0.1 * torch.randn_like(v) for k, v in theta1.items()}
    hyper = time_per_call(lambda: fixed_point_hypergradient(mirror, theta_T, theta1, 0.01, 0.01, "ift", terms=20),
                          **kw)["median_s"]
    print(f"\n2. One IFT hypergradient of Eq. 13 (J = 20): {1e3 * hyper:.2f} ms = {hyper / rows['MetaMD']:.1f} MetaMD steps")
    # the default (exact) hypergradient: T inner steps forward, then T recomputed steps with a Hessian-vector product
    inner = 20
    task = ClassifierTask(net, DeviceDataset(torch.rand(512, 1, 28, 28, device=device),
                                             torch.randint(0, 10, (512,), device=device)), BATCH, init_std=None,
                          vectorize=device.type == "cuda")
    problem = task.sample(1, torch.Generator().manual_seed(SEED))
    unrolled = time_per_call(lambda: unrolled_hypergradient(mirror, problem, inner, 0.01, 0.01, 0.01), **kw)["median_s"]
    print(f"3. The unrolled hypergradient over T = {inner} inner steps (forward included): {1e3 * unrolled:.1f} ms = "
          f"{unrolled / inner / rows['MetaMD']:.1f} MetaMD steps per inner step")
    limits = measure_limits(device, sync, args.quick)
    work = {"MetaMD inner step": (metamd_step, rows["MetaMD"]),
            "unrolled hypergradient (T = 20)": (lambda: unrolled_hypergradient(mirror, problem, inner, 0.01, 0.01, 0.01),
                                                unrolled)}
    print("\n4. Against the limits: FLOPs of the matrix products (convolutions included), bytes of every operation "
          "(benchmarks/roofline.py)")
    at_limits = {}
    for name, (fn, seconds) in work.items():
        at_limits[name] = against_roofline(fn, seconds, limits)
        print(f"   {name:<34} {describe(at_limits[name])}")
    result = {"environment": env, "step_ms": {k: 1e3 * v for k, v in rows.items()}, "hypergradient_ms": 1e3 * hyper,
              "unrolled_ms_per_inner_step": 1e3 * unrolled / inner, **limits_json(limits), "at_limit": at_limits}
    if not args.no_resnet:
        result["resnet18_step_ms"] = resnet_table7(device, args.resnet_size, args.resnet_batch, kw)
    return finish(result, env, t0, args.out)


def resnet_table7(device, size: int, batch: int, kw: dict) -> dict:
    """Table 7: median wall clock of one ResNet-18 training iteration per optimiser (ms) and the ratio to SGD-M."""
    torch.manual_seed(SEED)
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.randint(0, 100, (batch,), device=device)

    def torch_step(name):
        model = resnet18(100).to(device)
        opt = make_baseline(name, 0.01)(list(model.parameters()))

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    def functional_step(make_update):
        model = resnet18(100).to(device)
        params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
        update = make_update({k: v.shape for k, v in params.items()})

        def step():
            loss = F.cross_entropy(functional_call(model, params, (x,)), y)
            grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
            with torch.no_grad():
                for k, v in update(params, grads).items():
                    params[k].copy_(v)

        return step

    def metasgd(shapes):
        rates = PerParameterLearningRates(shapes, 0.01).to(device)
        return lambda params, grads: {k: params[k] + u for k, u in rates(grads, {})[0].items()}

    def metamd(shapes):
        mirror = KroneckerMirrorMap(shapes, init_norm=1.0).to(device)
        return lambda params, grads: mirror.step(params, grads, 0.01)

    steps = {"SGD-M": torch_step("SGD-M"), "Adam": torch_step("ADAM"), "PowerSign": torch_step("PowerSign"),
             "AddSign": torch_step("AddSign"), "Meta-SGD": functional_step(metasgd),
             "MetaMD": functional_step(metamd)}
    rows = {name: 1e3 * time_per_call(step, **kw)["median_s"] for name, step in steps.items()}
    print(f"\n3. Table 7: one ResNet-18 iteration, {batch} images of {size}×{size}, median ms (ratio to SGD-M)")
    for name, ms in rows.items():
        print(f"   {name:<10} {ms:9.1f} ms  ({ms / rows['SGD-M']:.2f}x)")
    print("   paper (GPU): SGD-M 118.21, Adam 121.16, PowerSign 121.30, AddSign 122.45, Meta-SGD 120.29, "
          "MetaMD 131.12 (1.11x)")
    return rows


if __name__ == "__main__":
    main()
