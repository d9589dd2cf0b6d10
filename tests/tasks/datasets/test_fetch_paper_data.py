"""``l2l-fetch-data --profile paper``: every dataset the paper settings read that torchvision can download, fetched
from torchvision's URLs with torchvision's md5 sums, to where the loaders (and torchvision's own classes) read it.

Offline: the download function is replaced by one that serves tiny files in each dataset's on-disk format (idx gz,
USPS's LIBSVM bz2, SVHN's .mat, CIFAR-10's python-pickle tarball, STL-10's binary tarball), and the published md5
sums by those of the tiny files (their paths and URLs stay torchvision's). torchvision's classes check the original
md5 sums, which tiny files cannot pass: where they load the fetched files here, their ``check_integrity`` is
replaced by an existence check (STL-10: its ``_check_integrity``, which also wants the unlabelled file the fetcher
does not keep), so what is tested is the layout.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision

from l2l_utils.tasks.datasets import core as D
from l2l_utils.tasks.datasets import digits as DD
from l2l_utils.tasks.datasets import files as DF

from helpers import write_cifar10, write_idx, write_stl10

PAPER_ONLY = ("KMNIST-train", "USPS-train", "QMNIST", "SVHN", "CIFAR10", "STL10")
DIGITS = ("KMNIST", "KMNIST-train", "USPS", "USPS-train", "QMNIST", "SVHN")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(D, "_CACHE", {})
    monkeypatch.setattr(DD, "_CACHE", {})


def _usps_bytes(labels) -> bytes:
    lines = [f"{lab + 1} " + " ".join(f"{i + 1}:{(2 * ((i + lab) % 2) - 1):.1f}" for i in range(256))
             for lab in labels]
    return bz2.compress(("\n".join(lines) + "\n").encode())


def _svhn_bytes(n: int, seed: int) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10) + 1  # 10 is digit 0
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                           "y": labels.reshape(-1, 1).astype(np.uint8)})
    return buf.getvalue(), labels % 10


def _tarball(folder: Path, members: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in members:
            tar.add(folder / member, arcname=member)
    return buf.getvalue()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """{url: bytes} of tiny files for every paper-only dataset (and KMNIST/USPS test), the DATASET_FILES entries with
    their md5 sums, and a fake ``download_url`` recording its calls (url, folder, file name, md5)."""
    src = tmp_path / "made"
    rng = np.random.default_rng(0)
    by_path, expected = {}, {}

    def idx(path: str, arr):
        write_idx(src / path, arr)
        by_path[path] = (src / path).read_bytes()

    for split, prefix, n in (("train", "train", 6), ("test", "t10k", 4)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = (np.arange(n) % 10).astype(np.uint8)
        idx(f"KMNIST/raw/{prefix}-images-idx3-ubyte.gz", img)
        idx(f"KMNIST/raw/{prefix}-labels-idx1-ubyte.gz", lab)
        expected["KMNIST", split] = (img, lab)
        q_img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        q_lab = rng.integers(0, 1000, (n, 8)).astype(np.int32)
        q_lab[:, 0] = np.arange(n) % 10
        idx(f"QMNIST/raw/qmnist-{split}-images-idx3-ubyte.gz", q_img)
        idx(f"QMNIST/raw/qmnist-{split}-labels-idx2-int.gz", q_lab)
        expected["QMNIST", split] = (q_img, q_lab[:, 0])
        usps_labels = list(range(n))
        by_path[f"USPS/{'usps.bz2' if split == 'train' else 'usps.t.bz2'}"] = _usps_bytes(usps_labels)
        expected["USPS", split] = (None, np.array(usps_labels))
        svhn, svhn_labels = _svhn_bytes(n + 1, seed=n)
        by_path[f"SVHN/{split}_32x32.mat"] = svhn
        expected["SVHN", split] = (None, svhn_labels)

    cifar = write_cifar10(src / "cifar-10-batches-py")
    expected["CIFAR10"] = cifar
    write_stl10(src, n_train=5, n_test=3)
    (src / "stl10_binary/class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    (src / "stl10_binary/unlabeled_X.bin").write_bytes(b"\0" * 27648)  # in the archive, never extracted
    archives = {"CIFAR10": _tarball(src, [f"cifar-10-batches-py/{f}" for f in os.listdir(src / "cifar-10-batches-py")]),
                "STL10": _tarball(src, [f"stl10_binary/{f}" for f in os.listdir(src / "stl10_binary")])}

    urls = {}
    for name in DIGITS + ("CIFAR10", "STL10"):
        items = []
        for item in DF.DATASET_FILES[name]:
            if item.archive is not None:
                data = archives[name]
                archive = dataclasses.replace(item.archive, md5=hashlib.md5(data).hexdigest())
                urls[archive.url] = data
                member = (src / item.path).read_bytes()
                items.append(dataclasses.replace(item, md5=hashlib.md5(member).hexdigest(), archive=archive))
            else:
                data = by_path[item.path]
                urls[item.urls[0]] = data
                items.append(dataclasses.replace(item, md5=hashlib.md5(data).hexdigest()))
        monkeypatch.setitem(DF.DATASET_FILES, name, tuple(items))

    calls = []

    def fake_download_url(url, root, filename=None, md5=None):
        """torchvision's download_url without the network: write the served bytes, then check their md5."""
        calls.append((url, str(root), filename, md5))
        if url not in urls:
            raise urllib.error.URLError("not served")
        target = Path(root) / (filename or os.path.basename(url))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(urls[url])
        if md5 and hashlib.md5(urls[url]).hexdigest() != md5:
            raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(DF, "download_url", fake_download_url)
    return urls, calls, expected


def test_the_paper_profile_lists_every_downloadable_dataset_with_torchvisions_urls_and_md5():
    """Paths are the loaders' layout; URLs and md5 sums are read from torchvision's classes, not written here."""
    tv = torchvision.datasets
    assert DF.PROFILE_DATASETS["paper"] == DF.PROFILE_DATASETS["cpu"]
    assert set(DF.PROFILE_DATASETS["paper"]) == set(DF.PROFILE_DATASETS["smoke"]) | set(PAPER_ONLY) | {"ResNet18"}
    files = {f.path: f for name in DF.PROFILE_DATASETS["paper"] for f in DF.DATASET_FILES[name]}
    kmnist = dict(tv.KMNIST.resources)
    for fname in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert files[f"KMNIST/raw/{fname}"].md5 == kmnist[fname]
        assert files[f"KMNIST/raw/{fname}"].urls == tuple(m + fname for m in tv.KMNIST.mirrors)
    for split in ("train", "test"):
        for name in ("USPS", "SVHN"):
            url, fname, md5 = getattr(tv, name).split_list[split]
            assert files[f"{name}/{fname}"].md5 == md5 and files[f"{name}/{fname}"].urls == (url,)
        for url, md5 in tv.QMNIST.resources[split]:
            assert files[f"QMNIST/raw/{os.path.basename(url)}"].md5 == md5
    assert files["SVHN/train_32x32.mat"].md5 == "e26dedcc434d2e4c54c9b2d4a06d8373"  # torchvision's published sum
    cifar = [f for f in files.values() if f.path.startswith("cifar-10-batches-py/")]
    assert {f.archive.url for f in cifar} == {tv.CIFAR10.url} and cifar[0].archive.md5 == tv.CIFAR10.tgz_md5
    assert {f.path.split("/")[1]: f.md5 for f in cifar} == {**dict(tv.CIFAR10.train_list), **dict(tv.CIFAR10.test_list),
                                                           "batches.meta": tv.CIFAR10.meta["md5"]}
    stl = [f for f in files.values() if f.path.startswith("stl10_binary/")]
    assert sorted(f.path for f in stl) == [f"stl10_binary/{s}_{k}.bin" for s in ("test", "train") for k in "Xy"]
    assert {f.archive.md5 for f in stl} == {tv.STL10.tgz_md5}
    resnet, = DF.DATASET_FILES["ResNet18"]
    assert resnet.sha256_prefix == "f37072fd"
    assert resnet.urls == (torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url,)


def test_resnet18_weights_land_where_metamd_reads_them(tmp_path):
    from l2l_utils.tasks.datasets.pretrained import pretrained_resnet18_path

    resnet, = DF.DATASET_FILES["ResNet18"]
    (tmp_path / resnet.path).parent.mkdir(parents=True)
    (tmp_path / resnet.path).write_bytes(b"x")
    assert pretrained_resnet18_path(tmp_path) == tmp_path / resnet.path


def test_paper_profile_fetches_each_file_once_to_where_the_loaders_read_it(tmp_path, served):
    urls, calls, expected = served
    root = tmp_path / "root"
    assert not DF.has_train_split("KMNIST", root) and not DF.has_train_split("USPS", root)
    status = DF.fetch(DIGITS + ("CIFAR10", "STL10"), root, log=lambda *_: None)
    assert status == {name: "fetched" for name in DIGITS + ("CIFAR10", "STL10")}
    assert sorted(c[0] for c in calls) == sorted(urls)  # every URL exactly once (each archive once)
    assert not list(root.glob(".fetch-*")) and not (root / "stl10_binary/unlabeled_X.bin").exists()
    assert (root / "stl10_binary/class_names.txt").is_file()
    assert DF.has_train_split("KMNIST", root) and DF.has_train_split("USPS", root)

    for name in ("KMNIST", "QMNIST", "USPS", "SVHN"):
        for split in ("train", "test"):
            data = DD.load_digit_dataset(name, split, data_dir=root, download=False)
            images, labels = expected[name, split]
            assert data.labels.tolist() == list(labels), (name, split)
            if images is not None:
                assert torch.equal((data.images[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(images))
    for split, fnames in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        data = D.load_image_dataset("CIFAR10", split, data_dir=root, download=False)
        assert data.labels.tolist() == [lab for f in fnames for lab in expected["CIFAR10"][f][1]]
    assert len(DD.load_stl10("train", root)) == 5 and len(DD.load_stl10("test", root)) == 3

    before = len(calls)
    assert DF.fetch(DIGITS + ("CIFAR10", "STL10"), root, log=lambda *_: None) == {
        name: "present" for name in DIGITS + ("CIFAR10", "STL10")}
    assert len(calls) == before  # present and md5-correct: verified, not fetched


def test_torchvisions_classes_load_the_fetched_files(tmp_path, served, monkeypatch):
    """The layout is torchvision's: its own classes read the fetched files (md5 checks replaced by existence)."""
    root = tmp_path / "root"
    DF.fetch(DIGITS + ("CIFAR10", "STL10"), root, log=lambda *_: None)
    _, _, expected = served
    exists = lambda fpath, md5=None: os.path.isfile(fpath)  # noqa: E731
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist
    import torchvision.datasets.svhn as tv_svhn
    import torchvision.datasets.utils as tv_utils
    for module in (tv_utils, tv_mnist, tv_svhn, tv_cifar):
        monkeypatch.setattr(module, "check_integrity", exists)
    monkeypatch.setattr(tv_utils, "_urlretrieve", lambda *a, **k: pytest.fail("torchvision tried the network"))
    tv = torchvision.datasets
    for train in (True, False):
        split = "train" if train else "test"
        k = tv.KMNIST(str(root), train=train, download=True)  # finds the .gz files, extracts them, reads them
        assert k.targets.tolist() == list(expected["KMNIST", split][1])
        q = tv.QMNIST(str(root), what=split, download=True)
        assert q.targets[:, 0].tolist() == list(expected["QMNIST", split][1])
        assert tv.USPS(str(root / "USPS"), train=train).targets == list(expected["USPS", split][1])
        assert tv.SVHN(str(root / "SVHN"), split=split).labels.tolist() == list(expected["SVHN", split][1])
        assert len(tv.CIFAR10(str(root), train=train)) == (20 if train else 6)
    labelled = lambda self: all((root / "stl10_binary" / f).is_file()  # noqa: E731
                                for f in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"))
    monkeypatch.setattr(tv.STL10, "_check_integrity", labelled)
    assert len(tv.STL10(str(root), split="train")) == 5 and len(tv.STL10(str(root), split="test")) == 3


def test_a_missing_file_is_fetched_alone_and_a_wrong_md5_is_named(tmp_path, served):
    urls, calls, _ = served
    root = tmp_path / "root"
    DF.fetch(DIGITS + ("CIFAR10", "STL10"), root, log=lambda *_: None)
    (root / "USPS/usps.bz2").unlink()
    calls.clear()
    assert DF.fetch(["USPS-train"], root, log=lambda *_: None) == {"USPS-train": "fetched"}
    item, = DF.DATASET_FILES["USPS-train"]
    assert calls == [(item.urls[0], str(root / "USPS"), "usps.bz2", item.md5)]

    batch = root / "cifar-10-batches-py/data_batch_3"
    batch.unlink()
    other = root / "cifar-10-batches-py/data_batch_1"
    os.utime(other, ns=(0, 0))  # a present member is not rewritten
    calls.clear()
    assert DF.fetch(["CIFAR10"], root, log=lambda *_: None) == {"CIFAR10": "fetched"}
    assert [c[0] for c in calls] == [torchvision.datasets.CIFAR10.url] and batch.is_file()
    assert other.stat().st_mtime_ns == 0

    (root / "SVHN/test_32x32.mat").write_bytes(b"not the published file")
    (root / "stl10_binary/test_y.bin").write_bytes(b"\1")
    calls.clear()
    status = DF.fetch(["SVHN", "STL10"], root, log=lambda *_: None)
    assert status["SVHN"].startswith(f"corrupt: {root / 'SVHN/test_32x32.mat'} ")
    assert status["STL10"].startswith(f"corrupt: {root / 'stl10_binary/test_y.bin'} ") and calls == []


def test_an_archive_with_the_wrong_md5_leaves_nothing_behind(tmp_path, served, monkeypatch):
    urls, _, _ = served
    urls[torchvision.datasets.STL10.url] = b"something else"
    root = tmp_path / "root"
    status = DF.fetch(["STL10"], root, log=lambda *_: None)["STL10"]
    assert status.startswith("missing: stl10_binary/train_X.bin") and "RuntimeError" in status
    assert not (root / "stl10_binary").exists() and not list(root.glob(".fetch-*"))


def test_without_a_network_the_paper_profile_lists_what_is_missing_and_exits_0(tmp_path, monkeypatch, capsys):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(DF, "download_url", offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert DF.main(["--profile", "paper", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in DF.PROFILE_DATASETS["paper"]:
        assert f"\n{name:<13} missing: {DF.DATASET_FILES[name][0].path}" in out
    assert "cifar-10-batches-py/data_batch_1" in out and "usps.bz2" in out and "train_32x32.mat" in out
    assert f"put the files named above under {tmp_path}" in out and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []  # no empty folders left behind (the data root may be a shared copy)
    assert DF.main(["--profile", "paper", "--data-dir", str(tmp_path), "--strict"]) == 1


def test_the_default_profile_is_smoke_and_the_profile_chooses_the_datasets(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(DF, "fetch", lambda names, data_dir, log=print: asked.append(list(names)) or {})
    for argv in ([], ["--profile", "smoke"], ["--profile", "cpu"], ["--profile", "paper"], ["SVHN"]):
        assert DF.main([*argv, "--data-dir", str(tmp_path)]) == 0
    smoke, paper = list(DF.PROFILE_DATASETS["smoke"]), list(DF.PROFILE_DATASETS["paper"])
    assert asked == [smoke, smoke, paper, paper, ["SVHN"]]
    with pytest.raises(SystemExit):
        DF.main(["--profile", "huge"])


def test_has_train_split_is_true_only_with_the_whole_train_split(tmp_path):
    """The offline copy's KMNIST has the train labels but not the train images: still the test split only."""
    root = tmp_path / "root"
    write_idx(root / "KMNIST/raw/t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    write_idx(root / "KMNIST/raw/t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    write_idx(root / "KMNIST/raw/train-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    assert not DF.has_train_split("KMNIST", root)
    write_idx(root / "KMNIST/raw/train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    assert DF.has_train_split("KMNIST", root)
    (root / "USPS").mkdir()
    (root / "USPS/usps.t.bz2").write_bytes(bz2.compress(b"1 1:0\n"))
    assert not DF.has_train_split("USPS", root)


def test_an_archive_without_a_listed_member_extracts_nothing(tmp_path, served, monkeypatch):
    urls, _, _ = served
    made = tmp_path / "partial"
    write_stl10(made, n_train=2, n_test=1)
    (made / "stl10_binary/test_y.bin").unlink()
    data = _tarball(made, ["stl10_binary/train_X.bin", "stl10_binary/train_y.bin", "stl10_binary/test_X.bin"])
    urls[torchvision.datasets.STL10.url] = data
    archive = dataclasses.replace(DF.DATASET_FILES["STL10"][0].archive, md5=hashlib.md5(data).hexdigest())
    monkeypatch.setitem(DF.DATASET_FILES, "STL10", tuple(dataclasses.replace(f, archive=archive)
                                                         for f in DF.DATASET_FILES["STL10"]))
    root = tmp_path / "root"
    status = DF.fetch(["STL10"], root, log=lambda *_: None)["STL10"]
    assert "FileNotFoundError" in status and "stl10_binary/test_y.bin" in status
    assert not (root / "stl10_binary").exists() and not list(root.glob(".fetch-*"))
