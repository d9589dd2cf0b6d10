"""Subnormal floats in L2L's App. A ablation: meta-training with and without flushing them to zero.

Appendix A of Andrychowicz et al. (2016) compares the LSTM optimizer fed preprocessed gradients with the same
optimizer fed the raw gradient times a constant c. With raw inputs, the MNIST MLP's meta-training produces subnormal
floats (below 1.2e-38 in float32), whose arithmetic x86 cores do in microcode, many times slower than normal floats.
The notebooks flush them to zero (``torch.set_flush_denormal(True)`` in ``start_notebook``, as TensorFlow's CPU
kernels do by default); this script measures what that buys and what it costs:

1. the process CPU time of a few meta-training trajectories (MLP 784-20-10 sigmoid, minibatch 128, 100 steps,
   truncations of 20; the notebook's ``cpu`` settings otherwise) for raw inputs at c = 10 and for App. A's
   preprocessing, with subnormals kept and flushed, each in a fresh process (the setting is process-wide);
2. how far the two meta-trained optimizers' final validation losses are apart (flushing changes only values below
   1.2e-38, so the runs should agree to float rounding over the trajectories measured).

    .venv/bin/python benchmarks/subnormal_floats.py [--trajectories 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(flush: bool, scale: float, trajectories: int, threads: int) -> dict:
    """In this process: meta-train an LSTM optimizer for ``trajectories`` trajectories (``scale`` 0: preprocessed
    inputs, else raw gradient × ``scale``) with subnormals flushed or kept; CPU seconds and the validation loss."""
    import torch

    sys.path.insert(0, str(ROOT))
    from l2l_utils.harness.profiles import PAPER_PROFILES
    from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
    from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, train_learned_optimizer
    from l2l_utils.tasks.datasets import DatasetMissingError, DeviceDataset, load_image_dataset
    from l2l_utils.tasks.models import mlp
    from l2l_utils.tasks.problems import ClassifierTask

    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush)
    cfg = PAPER_PROFILES["andrychowicz2016"]["cpu"]
    try:
        images = DeviceDataset.from_image_data(load_image_dataset("MNIST", "train", None), "cpu", flatten=True)
    except DatasetMissingError as missing:
        sys.exit(f"MNIST is needed: {missing}")
    task = ClassifierTask(mlp(784, [cfg["mnist_hidden"]], 10, "sigmoid"), images, cfg["mnist_batch"], cfg["init_std"])
    torch.manual_seed(0)
    inputs = dict(preprocess_p=None, input_scale=scale) if scale else dict(preprocess_p=cfg["preprocess_p"])
    rule = LSTMOptimizer(output_scale=cfg["output_scale"], init_std=cfg["lstm_init_std"], init=cfg["lstm_init"], **inputs)
    meta = MetaTrainConfig(steps=cfg["mnist_steps"], unroll=cfg["mnist_unroll"], meta_batch=cfg["mnist_meta_batch"],
                           epochs=1, trajectories_per_epoch=trajectories, val_problems=1, meta_lr=1e-2, seed=0)
    start = time.process_time()
    history = train_learned_optimizer(rule, task, meta, progress=False)[0]
    return {"flush": flush, "inputs": f"raw x {scale:g}" if scale else "preprocessed",
            "cpu_s": time.process_time() - start, "val_final_loss": float(history["val_final_loss"].iloc[-1])}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trajectories", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", type=float, default=10.0, help="App. A's constant c for the raw inputs")
    p.add_argument("--one", nargs=2, metavar=("FLUSH", "SCALE"), help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0] == "1", float(args.one[1]), args.trajectories, args.threads)))
        return []
    rows = []
    for scale in (args.scale, 0.0):
        for flush in (False, True):
            out = subprocess.run([sys.executable, __file__, "--trajectories", str(args.trajectories), "--threads",
                                  str(args.threads), "--one", str(int(flush)), str(scale)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{rows[-1]['inputs']:>13}  subnormals {'flushed' if flush else 'kept   '}  "
                  f"{rows[-1]['cpu_s']:7.1f} CPU s  validation loss {rows[-1]['val_final_loss']:.6f}", flush=True)
    for inputs in dict.fromkeys(row["inputs"] for row in rows):
        kept, flushed = (row for row in rows if row["inputs"] == inputs)
        print(f"{inputs}: flushing is {kept['cpu_s'] / flushed['cpu_s']:.2f}x faster; validation loss differs by "
              f"{abs(kept['val_final_loss'] - flushed['val_final_loss']):.2e}")
    return rows


if __name__ == "__main__":
    main()
