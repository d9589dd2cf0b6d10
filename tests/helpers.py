"""Shared test helpers (imported as `helpers`: `tests/` is on pytest's pythonpath, see pyproject.toml)."""

import gzip
import pickle
import struct
from pathlib import Path

import nbformat
import numpy as np
import papermill as pm
import pytest

from l2l_utils.tasks.datasets.files import missing_datasets, skip_reason


def data_marks(*datasets) -> list:
    """The marks of a test needing ``datasets``: ``data`` (``-m data`` selects them) and a skip, with one line saying
    what is missing and how to provide it, unless they are under the data root (for ``pytest.param(marks=...)``)."""
    missing = missing_datasets(datasets)
    return [pytest.mark.data, pytest.mark.skipif(bool(missing), reason=skip_reason(missing) if missing else "")]


def requires_data(*datasets):
    """Decorate a test with :func:`data_marks` of ``datasets``."""
    def decorate(test):
        for mark in data_marks(*datasets):
            test = mark(test)
        return test
    return decorate


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


def check_smoke_claims(claims) -> None:
    """At the smoke profile no row says "reproduced": every verdict is "smoke: pipeline ran" or "not run: ...", and
    every measured row is well-formed (non-empty, no NaN, a criterion stated)."""
    import math

    for row in claims.itertuples():
        assert row.verdict == "smoke: pipeline ran" or row.verdict.startswith("not run: "), (row.claim, row.verdict)
        if row.verdict == "smoke: pipeline ran":
            assert isinstance(row.measured, str) and row.measured not in ("", "—"), row.claim
            assert "nan" not in row.measured.replace("nan-", "").lower().split(), (row.claim, row.measured)
            assert isinstance(row.criterion, str) and row.criterion.strip() not in ("", "—"), row.claim
        assert not (isinstance(row.measured, float) and math.isnan(row.measured)), row.claim


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


HIGHRES_NAMES = ("Aircraft", "Butterfly", "Pets", "Caltech256", "DTD", "Flowers", "PubFig")


def write_highres_images(root: Path, names=HIGHRES_NAMES, per_class: int = 3, classes: int = 2, size: int = 12,
                         seed: int = 0, pooled_per_class: int = 22) -> dict:
    """Tiny noise images (``size`` high, ``size + 5`` wide) in the on-disk layouts that
    :mod:`l2l_utils.tasks.datasets.highres` reads (torchvision's for Aircraft, Pets, DTD, Flowers and Caltech256).

    Standard splits get ``per_class`` images per class in the first part and one more in each further part
    (DTD/Flowers: train, val, test; Aircraft/Pets: trainval, test; Butterfly: train, test), so a wrong choice of
    parts changes the counts. Caltech256 and PubFig get ``pooled_per_class`` images per class (Caltech256 also a
    257.clutter folder and one greyscale image). Returns ``{name: {"train": n, "test": n}}`` as the paper's
    splits should give them (Caltech256: 20 test and up to 60 train per class; PubFig: 20 test, rest train).
    """
    from PIL import Image
    from scipy.io import savemat

    rng = np.random.default_rng(seed)

    def img(path: Path, mode: str = "RGB"):
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (size, size + 5, 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(path)

    counts = {}
    k = [per_class + i for i in range(3)]  # images per class in part 0, 1, 2
    if "Aircraft" in names:
        d = root / "fgvc-aircraft-2013b" / "data"
        variants = [f"Boeing 7{c}7-200" for c in range(classes)]  # names with spaces, like "Boeing 737-200"
        d.mkdir(parents=True, exist_ok=True)
        (d / "variants.txt").write_text("\n".join(variants) + "\n")
        n = 0
        for part, per in (("trainval", k[0]), ("test", k[1])):
            lines = []
            for c, v in enumerate(variants):
                for _ in range(per):
                    img(d / "images" / f"{1000000 + n}.jpg")
                    lines.append(f"{1000000 + n} {v}")
                    n += 1
            (d / f"images_variant_{part}.txt").write_text("\n".join(lines) + "\n")
        counts["Aircraft"] = {"train": classes * k[0], "test": classes * k[1]}
    if "Pets" in names:
        d = root / "oxford-iiit-pet"
        (d / "annotations").mkdir(parents=True, exist_ok=True)
        n = 0
        for part, per in (("trainval", k[0]), ("test", k[1])):
            lines = []
            for c in range(classes):
                for _ in range(per):
                    n += 1
                    img(d / "images" / f"breed_{c}_{n}.jpg")
                    lines.append(f"breed_{c}_{n} {c + 1} {c % 2 + 1} {c + 1}")
            (d / "annotations" / f"{part}.txt").write_text("\n".join(lines) + "\n")
        counts["Pets"] = {"train": classes * k[0], "test": classes * k[1]}
    if "DTD" in names:
        d = root / "dtd" / "dtd"
        (d / "labels").mkdir(parents=True, exist_ok=True)
        for part, per in zip(("train", "val", "test"), k):
            lines = []
            for c in range(classes):
                for i in range(per):
                    fname = f"texture{c}_{part}_{i:04d}.jpg"
                    img(d / "images" / f"texture{c}" / fname)
                    lines.append(f"texture{c}/{fname}")
            (d / "labels" / f"{part}1.txt").write_text("\n".join(lines) + "\n")
        counts["DTD"] = {"train": classes * (k[0] + k[1]), "test": classes * k[2]}
    if "Flowers" in names:
        d = root / "flowers-102"
        labels, ids, n = [], {}, 0
        for key, per in zip(("trnid", "valid", "tstid"), k):
            ids[key] = []
            for c in range(classes):
                for _ in range(per):
                    n += 1
                    img(d / "jpg" / f"image_{n:05d}.jpg")
                    labels.append(c + 1)
                    ids[key].append(n)
        savemat(d / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
        savemat(d / "setid.mat", {key: np.array([v], dtype=np.uint16) for key, v in ids.items()})
        counts["Flowers"] = {"train": classes * (k[0] + k[1]), "test": classes * k[2]}
    if "Caltech256" in names:
        d = root / "caltech256" / "256_ObjectCategories"
        for c in range(classes):
            for i in range(pooled_per_class):
                img(d / f"{c + 1:03d}.object{c}" / f"{c + 1:03d}_{i + 1:04d}.jpg", "L" if c == i == 0 else "RGB")
        for i in range(3):
            img(d / "257.clutter" / f"257_{i + 1:04d}.jpg")
        counts["Caltech256"] = {"train": classes * min(60, pooled_per_class - 20), "test": classes * 20}
    if "Butterfly" in names:
        for part, per in (("train", k[0]), ("test", k[1])):
            for c in range(classes):
                for i in range(per):
                    img(root / "butterfly200" / part / f"{c:03d}.Species_{c}" / f"{part}_{i}.jpg")
        counts["Butterfly"] = {"train": classes * k[0], "test": classes * k[1]}
    if "PubFig" in names:
        for c in range(classes):
            for i in range(pooled_per_class):
                ext = "png" if i % 2 else "jpg"
                img(root / "pubfig83" / f"Person {c}" / f"{i:04d}.{ext}")
        counts["PubFig"] = {"train": classes * (pooled_per_class - 20), "test": classes * 20}
    return counts


def check_fails_before_compute(notebook: Path, tmp_path: Path, parameters: dict, fragment: str) -> None:
    """Running ``notebook`` with a bad parameter stops with a ParameterError naming it, before anything is written."""
    with pytest.raises(pm.PapermillExecutionError) as error:
        run_notebook(notebook, tmp_path, **parameters)
    assert "ParameterError" in error.value.ename
    assert fragment in error.value.evalue
    assert not (tmp_path / "results").exists()  # nothing was computed or written


_IDX_TYPES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}


def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> None:
    """An idx file: magic (0, 0, type, ndim), big-endian uint32 dims, big-endian data."""
    arr = np.asarray(arr)
    header = struct.pack(">I", (_IDX_TYPES[arr.dtype] << 8) | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_kmnist_both_splits(root: Path, n_train: int = 40, n_test: int = 20) -> None:
    """Tiny KMNIST train and test splits in torchvision's layout (``<root>/KMNIST/raw/*.gz``), as after
    ``make data PROFILE=paper``."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"KMNIST/raw/{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"KMNIST/raw/{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


# A tiny notebook for the batch runner's tests: it passes its seed through to a claims table and can be told to fail
# (``mode``: "raise" as for a bad parameter, "kill" its Dask worker, "die_once" its kernel after a checkpoint).
TINY_PARAMETERS = '''profile = "smoke"
seed = 0
results_dir = "r"
figures_dir = "f"
mode = "ok"
sleep = 0.0
marker = ""'''
TINY_BODY = '''\
import json, os, signal, time
import torch
from l2l_utils.reporting.claims import ClaimsTable
from l2l_utils.reporting.verdicts import Result
start = time.time()
os.makedirs(results_dir, exist_ok=True)
checkpoint = os.path.join(results_dir, "step.txt")
step = int(open(checkpoint).read()) if os.path.exists(checkpoint) else 0
resumed_at = step
if mode == "raise":
    raise ValueError(f"bad parameter mode={mode!r}")
if mode == "kill":  # the kernel's parent is the Dask worker running the job
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(60)
while step < 3:
    step += 1
    with open(checkpoint, "w") as f:
        f.write(str(step))
    if mode == "die_once" and step == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
time.sleep(sleep)
table = ClaimsTable("Tiny", profile)
table.add("Fig. 1", "seed is passed through", 3, "seed == 3",
          Result("reproduced" if seed == 3 else "not reproduced", str(seed)))
table.save(os.path.join(results_dir, "claims.csv"))
with open(os.path.join(results_dir, "info.json"), "w") as f:
    json.dump({"pid": os.getpid(), "worker": os.getppid(), "start": start, "end": time.time(),
               "resumed_at": resumed_at, "omp": os.environ.get("OMP_NUM_THREADS"),
               "torch_threads": torch.get_num_threads(), "figures_dir": figures_dir,
               "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}, f)
print(table.display_verdicts())
'''


def write_tiny_notebook(path: Path) -> Path:
    """Write the tiny notebook (parameters cell + body) to ``path``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(TINY_PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TINY_BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def untrained_steps(make_rule, seeds=range(5), steps=5):
    """Per seed: the largest median |u_t| / median |θ0| over ``steps`` steps, and the largest share of coordinates
    stepping with the majority's sign, for the untrained rule ``make_rule()`` (built after ``torch.manual_seed(seed)``)
    on a 784-50-ReLU-10 MLP at torch's default θ0 under N(0, 1e-3²) gradients."""
    import torch

    from l2l_utils.tasks.models import mlp

    module = mlp(784, [50], 10, "relu")
    theta = {k: v.detach().unsqueeze(0) for k, v in module.named_parameters()}
    typical = float(torch.cat([v.reshape(-1) for v in theta.values()]).abs().median())
    sizes, majorities = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        rule = make_rule()
        g = torch.Generator().manual_seed(seed)
        params, state = theta, rule.init(theta)
        worst = majority = 0.0
        with torch.no_grad():
            for t in range(steps):
                grads = {k: 1e-3 * torch.randn(v.shape, generator=g) for k, v in params.items()}
                new, state = rule.update(params, grads, state, t)
                u = torch.cat([(new[k] - params[k]).reshape(-1) for k in params])
                worst = max(worst, float(u.abs().median()) / typical)
                majority = max(majority, float(torch.maximum((u > 0).float().mean(), (u < 0).float().mean())))
                params = new
        sizes.append(worst)
        majorities.append(majority)
    return sizes, majorities


def write_neural_art(root: Path, content: int = 7, size: int = 24, seed: int = 0) -> None:
    """Files in the neural-art layout under the data root ``root`` (:mod:`l2l_utils.tasks.datasets.neural_art_images`):
    randomly initialised VGG-19 weights saved as torchvision's state dict (``features.*`` and a stand-in classifier
    key), ``content`` random content images and the two styles."""
    import torch
    import torchvision
    from PIL import Image

    torch.manual_seed(seed)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    (root / "vgg19").mkdir(parents=True, exist_ok=True)
    torch.save(state, root / "vgg19" / "vgg19-dcbb9e9d.pth")
    rng = np.random.default_rng(seed)
    (root / "neural_art" / "content").mkdir(parents=True, exist_ok=True)
    for i in range(content):
        Image.fromarray(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)).save(
            root / "neural_art" / "content" / f"img{i:02d}.png")
    for which in ("train", "test"):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            root / "neural_art" / f"style_{which}.jpg")


def check_meta_gradient_by_finite_differences(module, meta_loss, eps: float = 1e-6, rel: float = 1e-5) -> None:
    """The gradient of ``meta_loss()`` (a scalar of ``module``'s parameters, float64) along a random direction against
    the central finite difference (f(φ + εd) − f(φ − εd)) / 2ε; leaves the parameters where they were."""
    import torch

    module.zero_grad()
    meta_loss().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    direction = [torch.randn_like(p) for p in module.parameters()]
    analytic = sum(float((p.grad * d).sum()) for p, d in zip(module.parameters(), direction))

    def shift(scale):  # the meta-loss itself may differentiate (order="second"): evaluate it outside no_grad
        with torch.no_grad():
            for p, d in zip(module.parameters(), direction):
                p.add_(scale * d)

    shift(eps)
    plus = float(meta_loss().detach())
    shift(-2 * eps)
    minus = float(meta_loss().detach())
    shift(eps)
    assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=rel)
