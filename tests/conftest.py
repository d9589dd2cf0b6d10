"""Shared test helpers."""

import pickle
from pathlib import Path

import numpy as np
import papermill as pm

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(folder: Path, per_batch: int = 4, test_size: int = 6, seed: int = 0) -> dict:
    """Write small files in CIFAR-10's on-disk format (``cifar-10-batches-py``) into ``folder``.

    The originals are Python 2 pickles (protocol 2) with str keys, read by torchvision with
    ``encoding="latin1"``. Returns ``{file name: (uint8 array (n, 3072), labels)}``.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, fname in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = test_size if fname == "test_batch" else per_batch
        arr = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(i * per_batch + j) % 10 for j in range(n)]
        with open(folder / fname, "wb") as f:
            pickle.dump({"batch_label": fname, "labels": labels, "data": arr, "filenames": ["x.png"] * n}, f,
                        protocol=2)
        written[fname] = (arr, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_NAMES, "num_cases_per_batch": per_batch}, f, protocol=2)
    return written


def run_notebook(notebook: Path, tmp_path: Path, **parameters):
    """Execute ``notebook`` with papermill, its results and figures under ``tmp_path``, progress bars off."""
    return pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), cwd=str(notebook.parent),
                               parameters={"results_dir": str(tmp_path / "results"),
                                           "figures_dir": str(tmp_path / "figures"), "progress": False, **parameters},
                               progress_bar=False, kernel_name="python3")


def write_fewshot_images(root: Path, classes_per_split: int = 5, per_class: int = 4, seed: int = 0) -> None:
    """Small noise JPEGs in the layouts of miniImageNet (csv + images/, Ravi & Larochelle) and CUB-200-2011
    (images/<class>/, 4 × ``classes_per_split`` folders so Chen et al.'s split gives 2/1/1 parts)."""
    from PIL import Image

    rng = np.random.default_rng(seed)

    def jpg(path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)).save(path)

    mini = root / "miniImageNet"
    for s, split in enumerate(("train", "val", "test")):
        lines = ["filename,label"]
        for c in range(classes_per_split):
            wnid = f"n{s}{c:07d}"
            for i in range(per_class):
                jpg(mini / "images" / f"{wnid}{i:08d}.jpg")
                lines.append(f"{wnid}{i:08d}.jpg,{wnid}")
        (mini / f"{split}.csv").write_text("\n".join(lines) + "\n")
    for c in range(4 * classes_per_split):
        for i in range(per_class):
            jpg(root / "CUB_200_2011" / "images" / f"{c + 1:03d}.Bird_{c}" / f"Bird_{c}_{i}.jpg")


def write_stl10(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> None:
    """STL-10's labelled splits in torchvision's binary layout: ``stl10_binary/{train,test}_{X,y}.bin``."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
