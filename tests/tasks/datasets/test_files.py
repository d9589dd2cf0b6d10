"""``l2l-fetch-data`` (``make data``): fetches exactly the files the smoke profiles read, md5-verified, never fetches
a file that is present, and reports (never raises) when the network is unreachable. The network is a loopback HTTP
server serving files the test writes, with the published md5 sums replaced by theirs."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from l2l_utils.tasks.datasets import files as DF


@pytest.fixture
def server(tmp_path):
    """(base URL, folder it serves, list of requested paths)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requests
    httpd.shutdown()


def _fake_dataset(monkeypatch, base, served, names=("a.bin", "b.bin")):
    files = []
    for i, fname in enumerate(names):
        payload = bytes([i]) * (1000 + i)
        (served / fname).write_bytes(payload)
        files.append(DF.DataFile(f"Fake/raw/{fname}", hashlib.md5(payload).hexdigest(),
                                 (f"{base}/nowhere/{fname}", f"{base}/{fname}")))  # the first mirror is a 404
    monkeypatch.setitem(DF.DATASET_FILES, "Fake", tuple(files))
    return files


def test_fetches_missing_files_verifies_them_and_never_fetches_twice(tmp_path, server, monkeypatch):
    base, served, requests = server
    files = _fake_dataset(monkeypatch, base, served)
    root = tmp_path / "root"
    assert DF.missing_files("Fake", root) == [f.path for f in files]
    assert DF.fetch(["Fake"], root, log=lambda *_: None) == {"Fake": "fetched"}
    assert DF.missing_files("Fake", root) == []
    assert all(DF.md5sum(root / f.path) == f.md5 for f in files)
    before = len(requests)
    assert DF.fetch(["Fake"], root, log=lambda *_: None) == {"Fake": "present"}
    assert len(requests) == before  # present files are verified, not fetched again


def test_a_file_with_the_wrong_md5_is_not_kept_and_a_corrupt_local_file_is_reported(tmp_path, server, monkeypatch):
    base, served, _ = server
    files = _fake_dataset(monkeypatch, base, served)
    (served / "b.bin").write_bytes(b"tampered")
    root = tmp_path / "root"
    status = DF.fetch(["Fake"], root, log=lambda *_: None)["Fake"]
    assert status.startswith("missing: Fake/raw/b.bin") and not (root / files[1].path).exists()
    (root / files[1].path).write_bytes(b"also wrong")
    assert DF.fetch(["Fake"], root, log=lambda *_: None)["Fake"].startswith("corrupt: ")


def test_unreachable_network_reports_what_is_missing_and_how_to_provide_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(DF.DATASET_FILES, "Fake", (DF.DataFile("Fake/x.gz", "0" * 32, ("http://unresolvable.invalid/x.gz",)),))
    assert DF.main(["Fake", "--data-dir", str(tmp_path)]) == 0
    assert DF.main(["Fake", "--data-dir", str(tmp_path), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "Fake          missing: Fake/x.gz (could not fetch: http://unresolvable.invalid/x.gz" in out
    assert f"put the files named above under {tmp_path}" in out
    with pytest.raises(SystemExit):
        DF.main(["ImageNet"])
    reason = DF.skip_reason(["Fake"], tmp_path)
    assert reason.startswith("data missing: Fake not under") and "make data" in reason and "L2L_DATA_DIR" in reason


def test_the_listed_files_are_what_the_smoke_profiles_read_with_torchvisions_md5():
    """The md5 sums are torchvision's published ones (Omniglot's: the official repository's files), so a fetched data
    root and the offline copy CI uses are byte-identical."""
    smoke = DF.PROFILE_DATASETS["smoke"]
    assert smoke == ("MNIST", "FashionMNIST", "KMNIST", "USPS", "Omniglot", "VGG19")
    paths = {f.path: f.md5 for name in smoke for f in DF.DATASET_FILES[name]}
    assert paths["MNIST/raw/train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert paths["KMNIST/raw/t10k-images-idx3-ubyte.gz"] == "5c965bf0a639b31b8f53240b1b52f4d7"
    assert paths["USPS/usps.t.bz2"] == "8ea070ee2aca1ac39742fdd1ef5ed118"
    assert not any(p.startswith("KMNIST/raw/train") for p in paths)  # smoke reads KMNIST's test split only
    assert set(DF.NOTEBOOK_DATASETS.values()) and all(set(v) <= set(DF.DATASET_FILES)
                                                      for v in DF.NOTEBOOK_DATASETS.values())


def test_weights_published_with_a_sha256_prefix_are_fetched_checked_and_reported(tmp_path, server, monkeypatch):
    """torchvision's weight files carry the first hex digits of their sha256 in their name (VGG-19's: dcbb9e9d):
    fetched through torch.hub's downloader, checked against that prefix, a mismatch not kept."""
    base, served, _ = server
    payload = b"weights" * 100
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    (served / "w.pth").write_bytes(payload)
    item = DF.DataFile(f"w/w-{prefix}.pth", "", (f"{base}/w.pth",), sha256_prefix=prefix)
    monkeypatch.setitem(DF.DATASET_FILES, "FakeWeights", (item,))
    root = tmp_path / "root"
    assert DF.fetch(["FakeWeights"], root, log=lambda *_: None) == {"FakeWeights": "fetched"}
    assert (root / item.path).read_bytes() == payload
    assert DF.fetch(["FakeWeights"], root, log=lambda *_: None) == {"FakeWeights": "present"}
    (root / item.path).write_bytes(b"tampered")
    assert DF.fetch(["FakeWeights"], root, log=lambda *_: None)["FakeWeights"].startswith("corrupt: ")
    (root / item.path).unlink()
    (served / "w.pth").write_bytes(b"not the published file")
    assert DF.fetch(["FakeWeights"], root, log=lambda *_: None)["FakeWeights"].startswith("missing: w/w-")
    assert not (root / item.path).exists()


def test_vgg19_is_torchvisions_imagenet_file_where_the_neural_art_section_looks_for_it(tmp_path):
    from torchvision.models import VGG19_Weights

    from l2l_utils.tasks.datasets.pretrained import pretrained_vgg19_path

    item, = DF.DATASET_FILES["VGG19"]
    assert item.urls == (VGG19_Weights.IMAGENET1K_V1.url,) and item.sha256_prefix == "dcbb9e9d"
    (tmp_path / item.path).parent.mkdir(parents=True)
    (tmp_path / item.path).write_bytes(b"x")
    assert pretrained_vgg19_path(tmp_path) == tmp_path / item.path
    assert "VGG19" not in {name for names in DF.NOTEBOOK_DATASETS.values() for name in names}  # never required
