"""Tests for l2l_utils.tasks.datasets.core (real MNIST from $L2L_DATA_DIR, CIFAR-10 format on small files)."""

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from l2l_utils.tasks.datasets import core as D

from helpers import requires_data, write_cifar10


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Fresh in-process cache and a private staging folder for every test."""
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(D, "_CACHE", {})


def _snapshot(folder: Path):
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir())


@requires_data("MNIST")
def test_real_mnist_test_split():
    raw = D.resolve_data_dir() / "MNIST" / "raw"
    before = _snapshot(raw)
    d = D.load_image_dataset("MNIST", "test")
    assert d.images.shape == (10_000, 1, 28, 28) and d.images.dtype == torch.float32
    assert d.labels.shape == (10_000,) and d.labels.dtype == torch.int64
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    assert d.classes == list(range(10))
    assert _snapshot(raw) == before  # nothing extracted into the data root
    assert D.load_image_dataset("MNIST", "test") is d  # loaded from disk once


def test_missing_dataset_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DatasetMissingError) as info:
        D.load_image_dataset("FashionMNIST", "train", data_dir=empty, download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "t10k" not in msg  # only the requested split is checked
    assert str(empty / "FashionMNIST" / "raw") in msg and "L2L_DATA_DIR" in msg

    with pytest.raises(D.DatasetMissingError, match="test_batch"):
        D.load_image_dataset("CIFAR10", "test", data_dir=empty, download=False)


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(D.DatasetMissingError, match="t10k-images-idx3-ubyte.gz"):
        D.load_image_dataset("MNIST", "test", data_dir=tmp_path, download=True)


@pytest.fixture
def cifar_root(tmp_path):
    """Small files in CIFAR-10's on-disk format: 5 train batches of 4 images, a test batch of 6."""
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    return folder.parent, write_cifar10(folder)


def test_cifar10_format(cifar_root):
    root, written = cifar_root
    train = D.load_image_dataset("CIFAR10", "train", data_dir=root, download=False)
    test = D.load_image_dataset("CIFAR10", "test", data_dir=root, download=False)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (6, 3, 32, 32)
    train_labels = sum((written[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    assert train.labels.tolist() == train_labels and train.classes == list(range(10))
    assert test.labels.tolist() == written["test_batch"][1]
    # Image 1 of data_batch_2 is train index 5; a row is 1024 R, then 1024 G, then 1024 B values.
    row = written["data_batch_2"][0][1]
    expected = torch.from_numpy(row.reshape(3, 32, 32).astype(np.float32) / 255.0)
    assert torch.equal(train.images[5], expected)
    assert float(train.images[5, 1, 0, 2]) == pytest.approx(row[1024 + 2] / 255.0)


def test_cifar10_nested_layout(cifar_root, tmp_path):
    root, written = cifar_root
    nested = tmp_path / "nested"
    (nested / "CIFAR10").mkdir(parents=True)
    (root / "cifar-10-batches-py").rename(nested / "CIFAR10" / "cifar-10-batches-py")
    test = D.load_image_dataset("CIFAR10", "test", data_dir=nested, download=False)
    assert test.labels.tolist() == written["test_batch"][1]


def test_label_subset():
    labels = torch.tensor([3, 5, 1, 3, 7, 5, 0])
    d = D.ImageData(torch.arange(7.0).reshape(7, 1, 1, 1), labels, "toy", "train", [0, 1, 3, 5, 7])
    sub = D.label_subset(d, [5, 3])
    assert sub.labels.tolist() == [1, 0, 1, 0]
    assert sub.images.flatten().tolist() == [0.0, 1.0, 3.0, 5.0]
    assert sub.classes == [0, 1]
    with pytest.raises(ValueError):
        D.label_subset(d, [3, 3])


def test_device_dataset_sample():
    images = torch.rand(50, 1, 4, 4)
    d = D.ImageData(images, torch.arange(50) % 10, "toy", "train", list(range(10)))
    ds = D.DeviceDataset.from_image_data(d, "cpu", flatten=True)
    assert ds.inputs.shape == (50, 16)
    x1, y1 = ds.sample(8, torch.Generator().manual_seed(0))
    x2, y2 = ds.sample(8, torch.Generator().manual_seed(0))
    assert x1.shape == (8, 16) and y1.shape == (8,)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    xb, yb = ds.sample(8, torch.Generator().manual_seed(1), num_batches=3)
    assert xb.shape == (3, 8, 16) and yb.shape == (3, 8)
    # inputs and targets stay paired
    idx = [int(torch.nonzero((ds.inputs == row).all(1))[0]) for row in xb[2]]
    assert ds.targets[idx].tolist() == yb[2].tolist()


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="MNIST, FashionMNIST, CIFAR10"):
        D.load_image_dataset("SVHN")
    with pytest.raises(ValueError, match="split"):
        D.load_image_dataset("MNIST", split="val")


# ----------------------------------------------------------------------------- a cache shared by parallel jobs

STAGE_AND_LOAD = """
import hashlib, os, sys, time
from pathlib import Path
from l2l_utils.tasks.datasets import core as D, digits as DD
folder, rounds, me = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
(folder / f"ready-{me}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
for r in range(rounds):  # every process stages into the same fresh cache folder, round after round
    os.environ["L2L_CACHE_DIR"] = str(folder / f"cache-{r}")
    DD._CACHE.clear()
    try:
        d = DD.load_digit_dataset("KMNIST", "test", data_dir=folder / "root", download=False)
        digest = hashlib.sha1(d.images.numpy().tobytes() + d.labels.numpy().tobytes()).hexdigest()
    except Exception as exc:
        digest = f"{type(exc).__name__}: {exc}"
    print(r, digest, flush=True)
"""


@pytest.mark.slow
def test_processes_staging_into_one_cache_at_once_all_read_whole_files(tmp_path):
    """Parallel batch jobs share ``$L2L_CACHE_DIR``: four processes stage and extract the same idx files (KMNIST's
    layout) into the same empty cache at once, five times over; every one reads exactly the data, none half a file."""
    import hashlib
    import os
    import subprocess
    import sys
    import time

    from helpers import write_idx

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12_000, 28, 28), dtype=np.uint8)  # 9 MB raw: copies take a while
    labels = rng.integers(0, 10, size=12_000, dtype=np.uint8)
    raw = tmp_path / "root" / "KMNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte.gz", images)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", labels)
    from l2l_utils.tasks.datasets import digits as DD

    expected = DD.load_digit_dataset("KMNIST", "test", data_dir=tmp_path / "root", download=False)
    expected = hashlib.sha1(expected.images.numpy().tobytes() + expected.labels.numpy().tobytes()).hexdigest()

    rounds, n = 5, 4
    repo = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", STAGE_AND_LOAD, str(tmp_path), str(rounds), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(n)]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < n and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    for (out, err), p in zip(outputs, procs):
        assert p.returncode == 0, err
        assert out.split() == [w for r in range(rounds) for w in (str(r), expected)], out + err
    for r in range(rounds):  # no temporary file left behind
        assert not [p for p in (tmp_path / f"cache-{r}").rglob("*") if ".tmp" in p.name or ".download-" in p.name]


def test_staging_is_atomic(tmp_path, monkeypatch):
    """A copy or an extraction that breaks off leaves no file under its final name (readers see none or a whole one)."""
    import shutil

    from helpers import write_idx

    src, dst = tmp_path / "src", tmp_path / "dst"
    write_idx(src / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))

    def broken(fsrc, fdst, length=0):
        fdst.write(fsrc.read(5))
        raise OSError("disk full")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(shutil, "copyfileobj", broken)
        D._stage_files(src, dst, ["t10k-labels-idx1-ubyte"])
    assert list(dst.iterdir()) == []
    D._stage_files(src, dst, ["t10k-labels-idx1-ubyte"])
    assert sorted(p.name for p in dst.iterdir()) == ["t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"]
    assert (dst / "t10k-labels-idx1-ubyte").read_bytes()[8:] == bytes(range(10))


def test_a_staged_gz_must_match_the_published_md5(tmp_path):
    """Extraction moved out of torchvision (to make it atomic) keeps its md5 check of the .gz files."""
    from helpers import write_idx

    raw = tmp_path / "root" / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(2, dtype=np.uint8))
    with pytest.raises(D.DatasetMissingError, match="md5 mismatch: t10k-images-idx3-ubyte.gz, t10k-labels"):
        D.load_image_dataset("MNIST", "test", data_dir=tmp_path / "root", download=False)
