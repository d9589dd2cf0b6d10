"""Tests for l2l_utils.tasks.datasets.highres (MetaMD §5.2 / App. A.9) on tiny files in each dataset's real layout."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat

from l2l_utils.tasks.datasets import DatasetMissingError
from l2l_utils.tasks.datasets import highres as H

from helpers import write_highres_images

SIZE = 16


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("L2L_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("L2L_DATA_DIR", raising=False)
    monkeypatch.setattr(H, "_CACHE", {})


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("highres")
    return root, write_highres_images(root)


def _resized(path: Path, size: int = SIZE) -> bytes:
    """The written file as the paper prescribes it: RGB, plain resize of the whole image to size × size."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)).tobytes()


def _as_bytes(image: torch.Tensor) -> bytes:
    return (image * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy().tobytes()


def _written(root: Path, name: str) -> dict[bytes, int]:
    """Resized pixels of every written image of ``name`` -> its class (read from the layout, not the code)."""
    out = {}
    if name == "Aircraft":
        d = root / "fgvc-aircraft-2013b" / "data"
        variants = d.joinpath("variants.txt").read_text().splitlines()
        for part in ("trainval", "test"):
            for line in d.joinpath(f"images_variant_{part}.txt").read_text().splitlines():
                image_id, variant = line.split(" ", 1)
                out[_resized(d / "images" / f"{image_id}.jpg")] = variants.index(variant)
    elif name == "Flowers":
        d = root / "flowers-102"
        labels = loadmat(d / "imagelabels.mat")["labels"].ravel()
        for i, label in enumerate(labels, 1):
            out[_resized(d / "jpg" / f"image_{i:05d}.jpg")] = int(label) - 1
    else:
        folder, pattern = {"Pets": ("oxford-iiit-pet/images", r"breed_(\d+)_"),
                           "DTD": ("dtd/dtd/images", r"texture(\d+)/"),
                           "Caltech256": ("caltech256/256_ObjectCategories", r"object(\d+)/"),
                           "Butterfly": ("butterfly200", r"Species_(\d+)/"),
                           "PubFig": ("pubfig83", r"Person (\d+)/")}[name]
        for path in sorted((root / folder).rglob("*.*")):
            match = re.search(pattern, path.relative_to(root).as_posix())
            if match:  # the clutter images match no class
                out[_resized(path)] = int(match.group(1))
    return out


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", H.HIGHRES_DATASETS)
def test_every_dataset_loads_with_the_papers_split(fake_root, name):
    root, counts = fake_root
    written = _written(root, name)
    seen = []
    for split in ("train", "test"):
        data = H.load_highres(name, split, data_dir=root, image_size=SIZE)
        assert (data.name, data.split) == (name, split)
        assert data.images.shape == (counts[name][split], 3, SIZE, SIZE)
        assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
        assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
        assert data.classes == [0, 1] and set(data.labels.tolist()) == {0, 1}
        # every image is one of the written files (clutter excluded), resized whole, with that file's class
        for image, label in zip(data.images, data.labels):
            key = _as_bytes(image)
            assert key in written, f"{name}/{split}: an image that is no written (non-clutter) file"
            assert written[key] == int(label)
            seen.append(key)
        if name in ("Caltech256", "PubFig") and split == "test":
            assert torch.bincount(data.labels).tolist() == [20, 20]  # exactly 20 test images per class
    assert len(seen) == len(set(seen)), "train and test overlap"


def test_standard_splits_pick_the_right_parts(fake_root):
    """DTD/Flowers train = train + val, test = test; Aircraft/Pets trainval / test (parts have 3, 4, 5 per class)."""
    root, _ = fake_root
    per_class = {name: [int(n) for n in torch.bincount(H.load_highres(name, s, root, SIZE).labels)]
                 for name in ("DTD", "Flowers", "Aircraft", "Pets", "Butterfly") for s in ("train", "test")}
    assert per_class == {"DTD": [5, 5], "Flowers": [5, 5], "Aircraft": [4, 4], "Pets": [4, 4], "Butterfly": [4, 4]}


def test_each_split_counts(fake_root):
    root, _ = fake_root
    sizes = {(n, s): len(H.load_highres(n, s, root, SIZE)) for n in ("DTD", "Flowers", "Caltech256", "PubFig")
             for s in ("train", "test")}
    # DTD/Flowers: 2 classes x (3 train + 4 val) / 2 x 5 test; Caltech (22 per class, clutter dropped): 2 x 2 / 2 x 20
    assert sizes == {("DTD", "train"): 14, ("DTD", "test"): 10, ("Flowers", "train"): 14, ("Flowers", "test"): 10,
                     ("Caltech256", "train"): 4, ("Caltech256", "test"): 40,
                     ("PubFig", "train"): 4, ("PubFig", "test"): 40}


def test_caltech_caps_train_at_60_per_class(tmp_path):
    counts = write_highres_images(tmp_path, names=("Caltech256",), classes=2, size=6, pooled_per_class=83)
    assert counts["Caltech256"] == {"train": 120, "test": 40}
    train = H.load_highres("Caltech256", "train", tmp_path, image_size=4)
    test = H.load_highres("Caltech256", "test", tmp_path, image_size=4)
    assert torch.bincount(train.labels).tolist() == [60, 60]
    assert torch.bincount(test.labels).tolist() == [20, 20]


def test_per_class_split_needs_more_than_20_images(tmp_path):
    write_highres_images(tmp_path, names=("PubFig",), classes=2, size=6, pooled_per_class=20)
    with pytest.raises(ValueError, match="Person 0.*20 images"):
        H.load_highres("PubFig", "train", tmp_path, image_size=4)


def test_greyscale_and_png_files_become_rgb(fake_root):
    root, _ = fake_root
    grey = root / "caltech256" / "256_ObjectCategories" / "001.object0" / "001_0001.jpg"
    assert Image.open(grey).mode == "L"
    both = torch.cat([H.load_highres("Caltech256", s, root, SIZE).images for s in ("train", "test")])
    assert _resized(grey) in {_as_bytes(x) for x in both}


def test_resize_is_the_plain_pil_resize_of_the_whole_image(fake_root):
    root, _ = fake_root
    first = sorted((root / "butterfly200" / "train").iterdir())[0]
    path = sorted(first.iterdir())[0]
    with Image.open(path) as im:
        assert im.size[0] != im.size[1]  # non-square, so a crop would show
        expected = np.asarray(im.convert("RGB").resize((10, 10), Image.BILINEAR))
    data = H.load_highres("Butterfly", "train", root, image_size=10)
    expected = torch.from_numpy(expected.copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(data.images[0], expected)  # ImageFolder order: first class, first file


def test_worker_processes_decode_the_same(fake_root, monkeypatch):
    root, _ = fake_root
    single = H.load_highres("PubFig", "test", root, SIZE)
    monkeypatch.setattr(H, "_CACHE", {})
    monkeypatch.setattr(H, "_WORKER_THRESHOLD", 4)
    shutil.rmtree(H.cache_dir())
    multi = H.load_highres("PubFig", "test", root, SIZE)
    assert multi is not single
    assert torch.equal(single.images, multi.images) and torch.equal(single.labels, multi.labels)


# ----------------------------------------------------------------------------- per-class split


def test_per_class_split_is_deterministic_disjoint_and_covering():
    labels = np.repeat(np.arange(4), [30, 21, 50, 25])
    train, test = H.per_class_split(labels, 20, None, seed=3)
    again = H.per_class_split(labels, 20, None, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not set(train) & set(test)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[test]).tolist() == [20, 20, 20, 20]
    other = H.per_class_split(labels, 20, None, seed=4)
    assert not np.array_equal(test, other[1])


def test_per_class_split_caps_train():
    labels = np.repeat(np.arange(3), [100, 80, 70])
    train, test = H.per_class_split(labels, 20, 60, seed=0)
    assert np.bincount(labels[train]).tolist() == [60, 60, 50]  # under 80 images: all but 20 to train
    assert np.bincount(labels[test]).tolist() == [20, 20, 20]
    assert not set(train) & set(test)


def test_seeded_loads_are_disjoint_covering_and_seed_dependent(fake_root):
    root, _ = fake_root
    written = set(_written(root, "PubFig"))

    def split(seed):
        return {s: [_as_bytes(x) for x in H.load_highres("PubFig", s, root, SIZE, seed=seed).images]
                for s in ("train", "test")}

    a, b, c = split(0), split(0), split(1)
    assert a == b
    assert not set(a["train"]) & set(a["test"])
    assert set(a["train"]) | set(a["test"]) == written
    assert set(a["test"]) != set(c["test"])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", H.HIGHRES_DATASETS)
def test_missing_data_names_dataset_and_layout(tmp_path, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetMissingError) as info:
        H.load_highres(name, "train", data_dir=empty, image_size=8)
    message = str(info.value)
    assert repr(name) in message and H.highres_layout(name) in message and str(empty) in message
    assert "not downloaded" in message
    assert list(empty.iterdir()) == []  # the data root is never written to (Caltech256's makedirs included)


def test_missing_annotation_file_and_missing_image(tmp_path):
    write_highres_images(tmp_path, names=("Flowers", "Aircraft"), size=6)
    (tmp_path / "flowers-102" / "setid.mat").unlink()
    with pytest.raises(DatasetMissingError, match="setid.mat"):
        H.load_highres("Flowers", "test", tmp_path, image_size=4)
    next((tmp_path / "fgvc-aircraft-2013b" / "data" / "images").iterdir()).unlink()
    with pytest.raises(DatasetMissingError, match="Aircraft"):
        H.load_highres("Aircraft", "train", tmp_path, image_size=4)


def test_bad_arguments(fake_root):
    root, _ = fake_root
    with pytest.raises(ValueError, match="Aircraft.*PubFig"):
        H.load_highres("CUB", "train", root)
    with pytest.raises(ValueError, match="Aircraft.*PubFig"):
        H.highres_layout("CUB")
    with pytest.raises(ValueError, match="train.*test"):
        H.load_highres("DTD", "val", root)
    for size in (0, -3, 2.5):
        with pytest.raises(ValueError, match="image_size"):
            H.load_highres("DTD", "train", root, image_size=size)


def test_public_names():
    assert H.META_TRAIN == ("Aircraft", "Butterfly", "Pets")
    assert H.META_TEST == ("Caltech256", "DTD", "Flowers", "PubFig")
    assert H.HIGHRES_DATASETS == H.META_TRAIN + H.META_TEST
    assert all(isinstance(H.highres_layout(n), str) and "\n" not in H.highres_layout(n) for n in H.HIGHRES_DATASETS)


# ----------------------------------------------------------------------------- caching


def test_disk_cache_is_used_and_keyed_by_image_size(tmp_path):
    src = tmp_path / "src"
    write_highres_images(src, names=("PubFig", "DTD"), size=8)
    first = H.load_highres("PubFig", "test", src, image_size=6, seed=2)
    dtd = H.load_highres("DTD", "train", src, image_size=6)
    assert H.load_highres("PubFig", "test", src, image_size=6, seed=2) is first  # in-process cache
    files = sorted(p.name for p in (H.cache_dir() / "highres").iterdir())
    assert len(files) == 2 and all(f.endswith(".pt") for f in files)
    shutil.rmtree(src)
    H._CACHE.clear()
    again = H.load_highres("PubFig", "test", src, image_size=6, seed=2)
    assert again is not first
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert torch.equal(H.load_highres("DTD", "train", src, image_size=6).images, dtd.images)
    with pytest.raises(DatasetMissingError):
        H.load_highres("PubFig", "test", src, image_size=7, seed=2)  # another size is not in the cache
    with pytest.raises(DatasetMissingError):
        H.load_highres("PubFig", "test", src, image_size=6, seed=3)  # nor another seed
    with pytest.raises(DatasetMissingError):
        H.load_highres("PubFig", "train", src, image_size=6, seed=2)  # nor another split
