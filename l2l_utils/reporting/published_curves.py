"""The MTL2L authors' committed test curves (Kuo et al. 2020; ``reference/kuo2020_mtl2l/``), read and put on one
stated scale: the mean cross-entropy (NLL) per test image.

The files hold numbers whose scale is written nowhere. The authors' test code for the neural optimisers sums the
batch-mean NLL over the test batches and divides by the number of test images: with 10,000 test images in batches
of 128 (78 full batches and one of 16) that is the mean NLL divided by 10,000/79 ≈ 126.6. The scripts that made the
baseline files are not in the repository. The data say what they are: at the first evaluation (after about 10 steps
at learning rate 0.01, close to the start), a 10-class problem sits near chance, NLL ≈ ln 10, so ln 10 / first value
estimates each file's divisor (:func:`implied_divisors`); the neural files give ≈ 124-127 and the slow baselines ≈ 32
(the same formula with test batches of 32: 10,000/313 ≈ 31.95). On "ToyCifar10", where no 784-32-10 MLP gets far
below chance, one common divisor is impossible: at ×126.6 SGD would sit at NLL 8-9 after 10 steps, at ×32 the LSTM
optimiser at 0.6 on grey CIFAR-10. So: neural files ×10,000/79, baseline files ×10,000/313 (the notebook shows the
evidence).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

METHODS = {"b": "SGD", "c": "SGD-M", "d": "ADAM", "e": "LSTM", "f": "MTL2L"}
NEURAL = ("LSTM", "MTL2L")
FIGURES = {"A001": "Fig. 2a / 4a", "A002": "Fig. 2b", "A003": "Fig. 4a", "A004": "Fig. 4b", "A005": "Fig. 4c",
           "A006": "Fig. 5"}
DATASETS = {"MNIST": "MNIST", "FashionMNIST": "FashionMNIST", "KMNIST": "KMNIST", "ToyCifar10": "CIFAR10-grey"}
TEST_IMAGES = 10_000
NEURAL_DIVISOR = TEST_IMAGES / math.ceil(TEST_IMAGES / 128)  # Σ_batches mean NLL / 10,000 with batches of 128
BASELINE_DIVISOR = TEST_IMAGES / math.ceil(TEST_IMAGES / 32)  # the same with batches of 32 (inferred from the data)
EVERY = 10  # steps between evaluations; the i-th value (i = 0..99) is plotted at step 10·(i + 1) by the authors


def verify(folder: str | Path) -> list[str]:
    """Names of the files whose md5 differs from ``MD5SUMS`` (empty: all intact)."""
    folder = Path(folder)
    bad = []
    for line in (folder / "MD5SUMS").read_text().splitlines():
        digest, name = line.split()
        if hashlib.md5((folder / name).read_bytes()).hexdigest() != digest:
            bad.append(name)
    return bad


def read_curves(folder: str | Path) -> pd.DataFrame:
    """Every file as tidy rows: file, figure, dataset, method, run, step, value (as stored)."""
    rows = []
    for path in sorted(Path(folder).glob("A0*_AutoML_Data.*")):
        prefix, name = path.name.split("_AutoML_Data.")
        dataset, _ = name.split("_", 1)
        runs = torch.load(path, weights_only=True)
        for run, values in enumerate(runs):
            values = np.asarray(torch.as_tensor(values, dtype=torch.float64)).reshape(-1)
            rows.append(pd.DataFrame({"file": path.name, "figure": FIGURES[prefix[:4]], "dataset": DATASETS[dataset],
                                      "method": METHODS[prefix[4]], "run": run,
                                      "step": EVERY * np.arange(1, len(values) + 1), "value": values}))
    if not rows:
        raise FileNotFoundError(f"no curve files (A0*_AutoML_Data.*) in {folder}")
    return pd.concat(rows, ignore_index=True)


def implied_divisors(frame: pd.DataFrame) -> pd.DataFrame:
    """Per file: mean first value over runs and ln 10 divided by it (the divisor if the first point were at chance)."""
    first = frame[frame["step"] == frame["step"].min()].groupby(["file", "dataset", "method"])["value"].mean()
    table = first.rename("first_value").reset_index()
    table["ln10_over_first"] = math.log(10) / table["first_value"]
    return table


def to_mean_nll(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds ``nll``: the value on the mean-NLL-per-image scale (module docstring) and the divisor used."""
    divisor = np.where(frame["method"].isin(NEURAL), NEURAL_DIVISOR, BASELINE_DIVISOR)
    return frame.assign(divisor=divisor, nll=frame["value"] * divisor)
