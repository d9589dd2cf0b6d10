"""Tests for l2l_utils.tasks.datasets.digits: small files in each on-disk format, real files from $L2L_DATA_DIR."""

from __future__ import annotations

import bz2
import math
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from l2l_utils.tasks.datasets import core as D
from l2l_utils.tasks.datasets import digits as DD
from l2l_utils.tasks.models import lenet, resnet18

from helpers import requires_data, write_idx

@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Fresh in-process caches and a private staging folder for every test."""
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(D, "_CACHE", {})
    monkeypatch.setattr(DD, "_CACHE", {})
    monkeypatch.setattr(DD, "_ROTATED_CACHE", {})


def _snapshot(folder: Path):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


USPS_TOP = [1.0] * 128 + [-1.0] * 128  # top 8 rows white, bottom 8 black


@pytest.fixture
def fake_root(tmp_path):
    """A data root with tiny files in the layouts of KMNIST (test + train labels, like the offline copy),
    USPS (test), QMNIST (test), SVHN (test) and MNIST (test, uncompressed so no md5 check applies)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "root"
    info = {}

    k_img = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    k_lab = np.array([0, 1, 2, 3, 9], dtype=np.uint8)
    write_idx(root / "KMNIST/raw/t10k-images-idx3-ubyte.gz", k_img)
    write_idx(root / "KMNIST/raw/t10k-labels-idx1-ubyte.gz", k_lab)
    write_idx(root / "KMNIST/raw/train-labels-idx1-ubyte.gz", k_lab)
    info["KMNIST"] = (k_img, k_lab)

    lines = ["1 " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(USPS_TOP)),
             "10 " + " ".join(f"{i + 1}:0.500000" for i in range(256)),
             "5 1:1.000000 256:-1.000000"]  # sparse: omitted features are 0 -> 0.5
    (root / "USPS").mkdir(parents=True)
    with bz2.open(root / "USPS/usps.t.bz2", "wt") as f:
        f.write("\n".join(lines) + "\n")

    q_img = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    q_lab = rng.integers(0, 300_000, (4, 8)).astype(np.int32)
    q_lab[:, 0] = [3, 1, 4, 1]
    write_idx(root / "QMNIST/raw/qmnist-test-images-idx3-ubyte.gz", q_img)
    write_idx(root / "QMNIST/raw/qmnist-test-labels-idx2-int.gz", q_lab)
    info["QMNIST"] = (q_img, q_lab)

    import scipy.io

    x = np.zeros((32, 32, 3, 3), dtype=np.uint8)
    x[:, :, :, 0] = np.array([200, 100, 50], dtype=np.uint8)  # constant colour
    x[:16, :, :, 1] = 255  # top half white
    x[:, :, :, 2] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (root / "SVHN").mkdir(parents=True)
    scipy.io.savemat(root / "SVHN/test_32x32.mat", {"X": x, "y": np.array([[10], [1], [9]], dtype=np.uint8)})

    m_img = np.zeros((3, 28, 28), dtype=np.uint8)
    m_img[:, 2:10, 4:8] = 255  # an asymmetric bar
    m_img[1, 20:26, 3:25] = 128
    m_img[2] = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    write_idx(root / "MNIST/raw/t10k-images-idx3-ubyte", m_img, compress=False)
    write_idx(root / "MNIST/raw/t10k-labels-idx1-ubyte", np.array([7, 2, 1], dtype=np.uint8), compress=False)
    info["MNIST"] = (m_img,)
    return root, info


def _check_standard(d: D.ImageData, n: int) -> None:
    assert d.images.shape == (n, 1, 28, 28) and d.images.dtype == torch.float32
    assert d.labels.shape == (n,) and d.labels.dtype == torch.int64
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    assert 0 <= int(d.labels.min()) and int(d.labels.max()) <= 9


def test_idx_writer_headers(tmp_path):
    write_idx(tmp_path / "i", np.zeros((2, 28, 28), np.uint8), compress=False)
    write_idx(tmp_path / "l", np.zeros(2, np.uint8), compress=False)
    write_idx(tmp_path / "q", np.zeros((2, 8), np.int32), compress=False)
    magic = {k: struct.unpack(">I", (tmp_path / k).read_bytes()[:4])[0] for k in "ilq"}
    assert magic == {"i": 2051, "l": 2049, "q": 3074}


def test_kmnist_single_split(fake_root):
    root, info = fake_root
    before = _snapshot(root)
    d = DD.load_digit_dataset("KMNIST", "test", data_dir=root, download=False)
    _check_standard(d, 5)
    img, lab = info["KMNIST"]
    assert torch.equal(d.images[:, 0], torch.from_numpy(img).float() / 255.0)
    assert d.labels.tolist() == lab.tolist() and d.name == "KMNIST" and d.split == "test"
    assert DD.load_digit_dataset("KMNIST", "test", data_dir=root, download=False) is d
    with pytest.raises(D.DatasetMissingError) as e:
        DD.load_digit_dataset("KMNIST", "train", data_dir=root, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels" not in msg and "t10k" not in msg
    assert str(root / "KMNIST" / "raw") in msg
    assert DD.available_splits("KMNIST", root) == ["test"]
    assert _snapshot(root) == before  # decompressed in the cache, not next to the originals


def test_usps_libsvm(fake_root):
    root, _ = fake_root
    raw, labels = DD.read_usps_file(root / "USPS/usps.t.bz2")
    assert raw.shape == (3, 1, 16, 16) and labels.tolist() == [0, 9, 4]
    assert torch.equal(raw[0, 0, :8], torch.ones(8, 16)) and torch.equal(raw[0, 0, 8:], torch.zeros(8, 16))
    assert float(raw[2, 0, 0, 0]) == 1.0 and float(raw[2, 0, 15, 15]) == 0.0 and float(raw[2, 0, 5, 5]) == 0.5

    before = _snapshot(root)
    d = DD.load_digit_dataset("USPS", "test", data_dir=root, download=False)
    _check_standard(d, 3)
    assert d.labels.tolist() == [0, 9, 4]  # label 1 is digit 0
    torch.testing.assert_close(d.images[1], torch.full((1, 28, 28), 0.75))
    assert torch.allclose(d.images[0, 0, :12], torch.ones(12, 28)) and torch.allclose(d.images[0, 0, 16:],
                                                                                      torch.zeros(12, 28))
    assert DD.available_splits("USPS", root) == ["test"]
    with pytest.raises(D.DatasetMissingError, match=r"usps\.bz2"):
        DD.load_digit_dataset("USPS", "train", data_dir=root, download=False)
    assert _snapshot(root) == before


def test_qmnist_via_torchvision(fake_root):
    root, info = fake_root
    before = _snapshot(root)
    d = DD.load_digit_dataset("QMNIST", "test", data_dir=root, download=False)
    _check_standard(d, 4)
    img, lab = info["QMNIST"]
    assert d.labels.tolist() == [3, 1, 4, 1]
    assert torch.equal(d.images[:, 0], torch.from_numpy(img).float() / 255.0)
    assert DD.available_splits("QMNIST", root) == ["test"]
    with pytest.raises(D.DatasetMissingError) as e:
        DD.load_digit_dataset("QMNIST", "train", data_dir=root, download=False)
    assert "qmnist-train-images-idx3-ubyte.gz" in str(e.value) and "qmnist-train-labels-idx2-int.gz" in str(e.value)
    assert _snapshot(root) == before


def test_svhn_mat(fake_root):
    root, _ = fake_root
    before = _snapshot(root)
    d = DD.load_digit_dataset("SVHN", "test", data_dir=root, download=False)
    _check_standard(d, 3)
    assert d.labels.tolist() == [0, 1, 9]  # 10 means digit 0
    grey = (0.2989 * 200 + 0.587 * 100 + 0.114 * 50) / 255.0
    torch.testing.assert_close(d.images[0], torch.full((1, 28, 28), grey), atol=1e-5, rtol=0)
    top, bottom = d.images[1, 0, :12], d.images[1, 0, 16:]
    white = 0.2989 + 0.587 + 0.114  # torchvision's luma weights sum to 0.9999
    assert torch.allclose(top, torch.full_like(top, white), atol=1e-5)
    assert torch.allclose(bottom, torch.zeros_like(bottom))
    assert DD.available_splits("SVHN", root) == ["test"]
    with pytest.raises(D.DatasetMissingError, match="train_32x32.mat"):
        DD.load_digit_dataset("SVHN", "train", data_dir=root, download=False)
    assert _snapshot(root) == before


def test_missing_files_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    expected = {"KMNIST": ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"], "USPS": ["usps.t.bz2"],
                "QMNIST": ["qmnist-test-images-idx3-ubyte.gz"], "SVHN": ["test_32x32.mat"],
                "FashionMNIST": ["t10k-images-idx3-ubyte.gz"]}
    for name, files in expected.items():
        with pytest.raises(D.DatasetMissingError) as e:
            DD.load_digit_dataset(name, "test", data_dir=empty, download=False)
        assert all(f in str(e.value) for f in files) and "L2L_DATA_DIR" in str(e.value)
        assert DD.available_splits(name, empty) == []
    assert list(empty.iterdir()) == []


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise URLError("no network")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    for name, fname in [("KMNIST", "t10k-images-idx3-ubyte.gz"), ("USPS", "usps.t.bz2"),
                        ("QMNIST", "qmnist-test-images-idx3-ubyte.gz"), ("SVHN", "test_32x32.mat")]:
        with pytest.raises(D.DatasetMissingError) as e:
            DD.load_digit_dataset(name, "test", data_dir=tmp_path / "nothing", download=True)
        assert fname in str(e.value) and "no network" in str(e.value)
    assert len(calls) == 4 and any("usps.t.bz2" in c for c in calls)
    assert not (tmp_path / "nothing").exists()


def test_unknown_names_and_splits(fake_root):
    root, _ = fake_root
    with pytest.raises(ValueError, match="QMNIST"):
        DD.load_digit_dataset("CIFAR10", "test", data_dir=root)
    with pytest.raises(ValueError, match="train, test"):
        DD.load_digit_dataset("USPS", "val", data_dir=root)
    with pytest.raises(ValueError, match="SVHN"):
        DD.available_splits("EMNIST", root)
    with pytest.raises(ValueError, match="train, test"):
        DD.rotated_mnist(15, "validation", data_dir=root)
    assert DD.DIVERSE_DIGITS == ("MNIST", "QMNIST", "KMNIST", "FashionMNIST", "USPS", "SVHN")
    assert DD.ROTATED_MNIST_ANGLES == (0, 15, 30, 45, 60, 75)


def test_rotate_images_quarter_turns():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for angle, k in [(90, 1), (-90, -1), (180, 2), (270, 3)]:
        torch.testing.assert_close(DD.rotate_images(x, angle), torch.rot90(x, k, dims=(-2, -1)), atol=1e-5, rtol=0)
    assert DD.rotate_images(x, 0) is x and DD.rotate_images(x, 360.0) is x
    r = DD.rotate_images(x, 15)
    assert r.shape == x.shape and not torch.allclose(r, x) and float(r.min()) >= 0.0
    assert float(r[0, 0, 0, 0]) == 0.0  # corners come from outside the image: filled with 0
    d = D.ImageData(x, torch.tensor([1, 2, 3]), "toy", "test", [1, 2, 3])
    rd = DD.rotate_images(d, 90)
    assert isinstance(rd, D.ImageData) and rd.labels is d.labels
    torch.testing.assert_close(rd.images, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_rotated_mnist(fake_root):
    root, info = fake_root
    mnist = D.load_image_dataset("MNIST", "test", data_dir=root, download=False)
    r0 = DD.rotated_mnist(0, "test", data_dir=root, download=False)
    assert r0.name == "RotatedMNIST-0" and torch.equal(r0.images, mnist.images) and torch.equal(r0.labels,
                                                                                                mnist.labels)
    r90 = DD.rotated_mnist(90, "test", data_dir=root, download=False)
    expected = torch.rot90(torch.from_numpy(info["MNIST"][0]).float().div(255.0), 1, dims=(-2, -1)).unsqueeze(1)
    torch.testing.assert_close(r90.images, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(r90.images, mnist.images)  # the images are not rotation symmetric
    r15 = DD.rotated_mnist(15.0, "test", data_dir=root, download=False)
    assert r15.name == "RotatedMNIST-15" and r15.images.shape == (3, 1, 28, 28)
    assert DD.rotated_mnist(15, "test", data_dir=root, download=False) is r15
    for bad in ("15", None, True, math.nan, math.inf):
        with pytest.raises(ValueError, match="angle"):
            DD.rotated_mnist(bad, "test", data_dir=root)
    assert DD.available_splits("MNIST", root) == ["test"]


def test_lenet():
    m = lenet()
    assert sum(p.numel() for p in m.parameters()) == 61_706
    assert m(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert lenet(num_classes=5)(torch.rand(2, 1, 28, 28)).shape == (2, 5)


def test_resnet18_parameter_counts():
    m = resnet18()
    named = dict(m.named_parameters())
    assert sum(p.numel() for n, p in named.items() if not n.startswith("fc.")) == 11_176_512  # MetaMD Table 9
    assert sum(p.numel() for p in named.values()) == 11_181_642
    m.eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)


# ----------------------------------------------------------------------------- real files


@requires_data("KMNIST", "USPS")
def test_real_kmnist_and_usps_test_splits():
    root = D.resolve_data_dir()
    for name, sub, n in [("KMNIST", "KMNIST/raw", 10_000), ("USPS", "USPS", 2_007)]:
        before = _snapshot(root / sub)
        d = DD.load_digit_dataset(name, "test")
        _check_standard(d, n)
        assert d.classes == list(range(10))
        assert _snapshot(root / sub) == before
    assert DD.available_splits("KMNIST") == ["test"]
    assert DD.available_splits("USPS") == ["test"]
    assert torch.bincount(DD.load_digit_dataset("KMNIST", "test").labels).tolist() == [1000] * 10
    assert torch.bincount(DD.load_digit_dataset("USPS", "test").labels)[0] == 359  # most frequent digit: 0


@requires_data("MNIST")
def test_real_rotated_mnist_test_split():
    mnist = D.load_image_dataset("MNIST", "test")
    assert torch.equal(DD.rotated_mnist(0, "test").images, mnist.images)
    r = DD.rotated_mnist(45, "test")
    _check_standard(r, 10_000)
    assert r.name == "RotatedMNIST-45" and torch.equal(r.labels, mnist.labels)


def test_stl10_reader_and_rgb_conversion(tmp_path):
    from l2l_utils.tasks.datasets import load_stl10, to_rgb

    from helpers import write_stl10

    write_stl10(tmp_path, n_train=6, n_test=3)
    data = load_stl10("train", tmp_path)
    assert data.images.shape == (6, 3, 96, 96) and data.labels.tolist() == [0, 1, 2, 3, 4, 5]
    raw = np.fromfile(tmp_path / "stl10_binary" / "train_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    assert torch.allclose(data.images[1, 2, 5, 7] * 255, torch.tensor(float(raw[1, 2, 7, 5])))  # column-major
    small = to_rgb(data, 32)
    assert small.images.shape == (6, 3, 32, 32) and small.images.max() <= 1.0
    grey = D.ImageData(torch.rand(2, 1, 28, 28), torch.tensor([0, 1]), "g", "train", [0, 1])
    rgb = to_rgb(grey, 32)
    assert rgb.images.shape == (2, 3, 32, 32) and torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    with pytest.raises(D.DatasetMissingError, match="test_X.bin"):
        (tmp_path / "stl10_binary" / "test_X.bin").unlink()
        load_stl10("test", tmp_path)


def test_resnet18_uses_batch_statistics_only():
    from l2l_utils.tasks.models import resnet18

    net = resnet18(10)
    assert all(not m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not list(net.buffers())
