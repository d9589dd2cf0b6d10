"""Tests for l2l_utils.tasks.datasets.fewshot on small fake datasets in the real layouts (and real Omniglot)."""

import csv
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from l2l_utils.tasks.datasets import DatasetMissingError
from l2l_utils.tasks.datasets import fewshot as F

from helpers import requires_data

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
          (128, 128, 128), (255, 255, 255)]


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.setattr(F, "_OMNIGLOT_CACHE", {})


def _snapshot(root: Path):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def _png_1bit(k: int) -> bytes:
    """105x105 1-bit drawing like Omniglot's: white background, a black stroke."""
    img = Image.new("1", (105, 105), 1)
    ImageDraw.Draw(img).rectangle([10 + k, 10, 40 + k, 60], fill=0)
    buf = BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_omniglot(root: Path, zips=F.OMNIGLOT_ZIPS) -> list[str]:
    """Each zip: 2 alphabets x 2 characters x 3 images, with directory entries as in the originals."""
    folder = root / "omniglot"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for z, zname in enumerate(zips):
        top = zname.removesuffix(".zip")
        with zipfile.ZipFile(folder / zname, "w") as zf:
            zf.writestr(top + "/", b"")
            for alphabet in (f"Alpha{z}", f"Beta{z}"):
                for c in (1, 2):
                    char = f"{top}/{alphabet}/character{c:02d}"
                    zf.writestr(char + "/", b"")
                    names.append(char)
                    for i in range(3):
                        zf.writestr(f"{char}/01{c}{z}_{i + 1:02d}.png", _png_1bit(i))
    return sorted(names)


def _write_jpg(path: Path, color, size=(100, 90)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


def _write_miniimagenet(root: Path) -> dict:
    """3 classes x 2 images per split; class k of split s has colour COLORS[...]."""
    folder = root / "miniImageNet"
    wnids = {"train": ["n03", "n01", "n02"], "val": ["n11", "n12", "n10"], "test": ["n21", "n20", "n22"]}
    for split, ids in wnids.items():
        rows = []
        for wnid in ids:
            for j in range(2):
                fn = f"{wnid}{j:08d}.jpg"
                _write_jpg(folder / "images" / fn, COLORS[sorted(ids).index(wnid)], size=(100 + j, 90))
                rows.append((fn, wnid))
        with open(folder / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["filename", "label"])
            w.writerows(rows)
    return wnids


def _write_cub(root: Path) -> list[str]:
    names = [f"{i + 1:03d}.Bird_{i}" for i in range(8)]
    for i, name in enumerate(names):
        for j in range(2):
            _write_jpg(root / "CUB_200_2011" / "images" / name / f"Bird_{i}_{j:04d}_{j}.jpg", COLORS[i])
    return names


def _mean_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(2, 3))


# ----------------------------------------------------------------------------- Omniglot


def test_omniglot_fake_zips(tmp_path):
    names = _write_omniglot(tmp_path)
    before = _snapshot(tmp_path)
    d = F.load_omniglot_subsets(tmp_path)
    assert d.images.shape == (24, 1, 28, 28) and d.images.dtype == torch.float32
    assert d.labels.dtype == torch.int64 and d.labels.tolist() == [c for c in range(8) for _ in range(3)]
    assert d.classes == list(range(8)) and d.name == "Omniglot"
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    assert float(d.images[:, :, 0, 0].min()) == 1.0 and float(d.images.min()) == 0.0  # background 1, ink 0
    assert F.omniglot_class_names(tmp_path) == names
    assert names[0].startswith("images_background_small1/Alpha0/")
    assert names[-1].startswith("images_background_small2/")
    assert F.load_omniglot_subsets(tmp_path) is d  # cached
    full = F.load_omniglot_subsets(tmp_path, image_size=105)
    assert full.images.shape == (24, 1, 105, 105)
    assert set(full.images.unique().tolist()) <= {0.0, 1.0}
    assert float(full.images[0, 0, 30, 20]) == 0.0 and float(full.images[0, 0, 80, 80]) == 1.0
    assert _snapshot(tmp_path) == before  # nothing extracted or written into the data root


def test_omniglot_missing_zip(tmp_path):
    _write_omniglot(tmp_path, zips=F.OMNIGLOT_ZIPS[:1])
    with pytest.raises(DatasetMissingError) as info:
        F.load_omniglot_subsets(tmp_path)
    msg = str(info.value)
    assert "images_background_small2.zip" in msg and "images_background_small1.zip" not in msg.split("\n")[0]
    assert str(tmp_path / "omniglot") in msg


@requires_data("Omniglot")
def test_real_omniglot():
    d = F.load_omniglot_subsets()
    assert d.images.shape == (5840, 1, 28, 28) and len(d.classes) == 292
    assert torch.bincount(d.labels).tolist() == [20] * 292
    assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
    assert len(set(F.omniglot_class_names())) == 292


# ----------------------------------------------------------------------------- split_classes


def test_split_classes_disjoint_and_seeded():
    tr, va, te = F.split_classes(292)
    assert (len(tr), len(va), len(te)) == (175, 58, 59)
    assert sorted(tr + va + te) == list(range(292))
    assert F.split_classes(292) == (tr, va, te)
    assert F.split_classes(292, seed=1) != (tr, va, te)
    assert [len(p) for p in F.split_classes(3, (0.4, 0.3, 0.3))] == [1, 1, 1]


@pytest.mark.parametrize("fractions, match", [
    ((0.5, 0.2, 0.2), "sum to 1"),
    ((1.2, -0.1, -0.1), "non-negative"),
    ((0.9, 0.05, 0.05), "non-empty"),
    ((0.5, 0.5), "3 entries"),
])
def test_split_classes_bad_fractions(fractions, match):
    with pytest.raises(ValueError, match=match):
        F.split_classes(10, fractions)


# ----------------------------------------------------------------------------- miniImageNet


def test_miniimagenet_splits(tmp_path):
    wnids = _write_miniimagenet(tmp_path)
    before = _snapshot(tmp_path)
    seen = {}
    for split in F.FEWSHOT_SPLITS:
        d = F.load_miniimagenet(split, data_dir=tmp_path)
        assert d.images.shape == (6, 3, 84, 84) and d.images.dtype == torch.float32
        assert d.classes == [0, 1, 2] and d.split == split and d.name == "miniImageNet"
        assert 0.0 <= float(d.images.min()) and float(d.images.max()) <= 1.0
        # label k is the k-th sorted wnid, whose images have colour COLORS[k]
        expected = torch.tensor([COLORS[int(k)] for k in d.labels], dtype=torch.float32) / 255
        assert torch.allclose(_mean_rgb(d.images), expected, atol=0.03)
        assert d.labels.tolist() == [sorted(wnids[split]).index(w) for w in wnids[split] for _ in range(2)]
        seen[split] = set(wnids[split])
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])
    assert F.load_miniimagenet("val", data_dir=tmp_path, image_size=32).images.shape == (6, 3, 32, 32)
    assert _snapshot(tmp_path) == before


def test_miniimagenet_missing(tmp_path):
    with pytest.raises(DatasetMissingError) as info:
        F.load_miniimagenet("train", data_dir=tmp_path)
    msg = str(info.value)
    assert "train.csv" in msg and "images/" in msg and str(tmp_path / "miniImageNet") in msg
    assert "not downloaded automatically" in msg and "download=True" not in msg  # no torchvision advice here

    _write_miniimagenet(tmp_path)
    for fn in sorted((tmp_path / "miniImageNet" / "images").glob("n2*.jpg")):
        fn.unlink()
    F.load_miniimagenet("train", data_dir=tmp_path)  # other splits unaffected
    with pytest.raises(DatasetMissingError) as info:
        F.load_miniimagenet("test", data_dir=tmp_path)
    msg = str(info.value)
    assert "n2000000000.jpg" in msg and "6 missing in all" in msg
    assert str(tmp_path / "miniImageNet" / "images") in msg


def test_bad_split_names(tmp_path):
    for loader in (F.load_miniimagenet, F.load_cub):
        with pytest.raises(ValueError, match="train, val, test"):
            loader("validation", data_dir=tmp_path)


# ----------------------------------------------------------------------------- CUB


def test_cub_class_split_rule():
    names = [f"{i + 1:03d}.Class_{i}" for i in range(200)]
    parts = F.cub_class_split(reversed(names))
    assert [len(parts[s]) for s in F.FEWSHOT_SPLITS] == [100, 50, 50]
    assert sorted(sum(parts.values(), [])) == names
    assert parts["val"][:2] == [names[1], names[5]] and parts["test"][:2] == [names[3], names[7]]


def test_cub_fake(tmp_path):
    names = _write_cub(tmp_path)
    parts = F.cub_class_split(names)
    assert [len(parts[s]) for s in F.FEWSHOT_SPLITS] == [4, 2, 2]
    assert not set(parts["train"]) & set(parts["val"]) and not set(parts["val"]) & set(parts["test"])
    before = _snapshot(tmp_path)
    for split, n_cls in zip(F.FEWSHOT_SPLITS, (4, 2, 2)):
        d = F.load_cub(split, data_dir=tmp_path, image_size=16)
        assert d.images.shape == (2 * n_cls, 3, 16, 16) and d.classes == list(range(n_cls))
        assert d.labels.tolist() == [c for c in range(n_cls) for _ in range(2)]
        folder_idx = [names.index(parts[split][int(k)]) for k in d.labels]
        expected = torch.tensor([COLORS[i] for i in folder_idx], dtype=torch.float32) / 255
        assert torch.allclose(_mean_rgb(d.images), expected, atol=0.03)
    assert _snapshot(tmp_path) == before

    with pytest.raises(DatasetMissingError) as info:
        F.load_cub("train", data_dir=tmp_path / "nowhere")
    assert "CUB_200_2011/images/" in str(info.value) and str(tmp_path / "nowhere") in str(info.value)


# ----------------------------------------------------------------------------- registry


def test_load_fewshot_dataset(tmp_path):
    _write_miniimagenet(tmp_path)
    _write_cub(tmp_path)
    assert F.load_fewshot_dataset("miniImageNet", "test", tmp_path).images.shape == (6, 3, 84, 84)
    assert F.load_fewshot_dataset("CUB", "val", tmp_path, image_size=20).images.shape == (4, 3, 20, 20)
    with pytest.raises(ValueError, match="miniImageNet, CUB"):
        F.load_fewshot_dataset("Omniglot", "train", tmp_path)
