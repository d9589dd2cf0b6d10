"""The MTL2L authors' committed curves: intact, read whole, and put on one scale that the data themselves support
(a 10-class learner at its start sits at ln 10 = 2.303 nats)."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from l2l_utils.reporting.published_curves import (BASELINE_DIVISOR, NEURAL_DIVISOR, implied_divisors, read_curves,
                                                  to_mean_nll, verify)

FOLDER = Path(__file__).resolve().parents[2] / "reference" / "kuo2020_mtl2l"


def test_files_are_intact_and_a_changed_byte_is_caught(tmp_path):
    assert verify(FOLDER) == []
    copy = tmp_path / "copy"
    shutil.copytree(FOLDER, copy)
    target = copy / "A001b_AutoML_Data.MNIST_SGD"
    data = bytearray(target.read_bytes())
    data[-20] ^= 1
    target.write_bytes(bytes(data))
    assert verify(copy) == ["A001b_AutoML_Data.MNIST_SGD"]


def test_every_file_is_read_with_its_runs_and_100_evaluations():
    frame = read_curves(FOLDER)
    runs = frame.groupby("file")["run"].nunique()
    assert runs["A001b_AutoML_Data.MNIST_SGD"] == 10 and runs["A001e_AutoML_Data.MNIST_LSTMoptimiser"] == 5
    assert runs["A006f_AutoML_Data.ToyCifar10_MTL2L"] == 20 and len(runs) == 24
    assert (frame.groupby(["file", "run"]).size() == 100).all()
    assert sorted(frame["step"].unique())[:2] == [10, 20] and frame["step"].max() == 1000


def test_divisors_follow_from_the_test_code_formula():
    # Σ over ⌈10,000/b⌉ test batches of the batch-mean NLL, divided by 10,000 images
    assert NEURAL_DIVISOR == pytest.approx(10_000 / 79) and BASELINE_DIVISOR == pytest.approx(10_000 / 313)


def test_the_data_put_the_slow_methods_at_chance_on_their_own_scales():
    """ToyCifar10 SGD barely moves in 10 steps and the LSTM optimiser starts at chance: on their scales both first
    values are ln 10 within 3%; the other scale would put them at 9 nats or 0.6 nats."""
    frame = to_mean_nll(read_curves(FOLDER))
    first = frame[frame["step"] == 10].groupby(["file"])["nll"].mean()
    for name in ("A006b_AutoML_Data.ToyCifar10_SGD", "A006e_AutoML_Data.ToyCifar10_LSTMoptimiser",
                 "A005b_AutoML_Data.KMNIST_SGD", "A001e_AutoML_Data.MNIST_LSTMoptimiser"):
        assert first[name] == pytest.approx(math.log(10), rel=0.03), name
    raw = read_curves(FOLDER)
    sgd = raw.query("file == 'A006b_AutoML_Data.ToyCifar10_SGD' and step == 10")["value"].mean()
    assert sgd * NEURAL_DIVISOR > 8.0  # one common scale (the neural one) is impossible for SGD after 10 steps
    table = implied_divisors(raw).set_index("file")["ln10_over_first"]
    assert 31 < table["A006b_AutoML_Data.ToyCifar10_SGD"] < 33 and 120 < table["A006e_AutoML_Data.ToyCifar10_LSTMoptimiser"] < 130
    assert np.all(frame["nll"] > 0)
