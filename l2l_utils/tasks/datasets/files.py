"""The dataset files the notebooks read, where to fetch them, and their md5 sums.

``l2l-fetch-data`` (``make data``, also run by ``make test`` and ``make reproduce``) fetches every missing file
into the data root (``$L2L_DATA_DIR``, else ``<project>/data``) through torchvision's downloader, from
torchvision's own mirrors and md5 lists where torchvision has the dataset, and from the official repository
otherwise (Omniglot's small background sets). Files already present are only verified, never fetched again.
Without a network nothing is fetched: it says which datasets are missing and how to provide them, and the tests
that need them are skipped with that message (:func:`missing_datasets`).

Which files, by profile (``--profile``, :data:`PROFILE_DATASETS`):

* ``smoke`` (the default): the files the smoke profiles read, so a fetched data root holds exactly what the offline
  copy used by CI holds (same names, same md5) and the committed notebook outputs match either way. KMNIST and USPS
  are their test splits only (used as seeded pools, see the MetaMD notebook). One more: VGG-19's ImageNet weights
  (``VGG19``, 548 MB, torchvision's file checked by the sha256 prefix in its name), which the L2L notebook's
  neural-art section reads together with content and style images that cannot be fetched (their layout:
  :mod:`l2l_utils.tasks.datasets.neural_art_images`); without those images the section reports "not run" either way.
* ``cpu`` and ``paper``: everything the notebooks' paper settings read that torchvision can download: the above, the
  train splits of KMNIST and USPS (``KMNIST-train``, ``USPS-train``), QMNIST and SVHN (train and test), CIFAR-10
  (the python batches, extracted from torchvision's archive), STL-10's labelled splits (extracted from torchvision's
  archive; the 2.7 GB unlabelled file is not kept) and torchvision's ImageNet ResNet-18 weights (MetaMD App. A.14).

Every file lands where the loaders of :mod:`l2l_utils.tasks.datasets` look for it (torchvision's layout under the
data root). With a train split on disk, the notebooks that otherwise split a test split into seeded pools use the
paper's train/test split (:func:`has_train_split`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torchvision.datasets.utils import download_url

from .core import resolve_data_dir
from .digits import available_splits
from .pretrained import RESNET18_FILE, VGG19_FILE, VGG19_URL

FETCH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Archive:
    """A tarball published with an md5 sum (CIFAR-10's, STL-10's), whose members are :class:`DataFile` s: fetched once
    into a temporary folder under the data root, the missing members (and ``extras``, files without a published
    checksum) extracted under the data root by their member names, the archive deleted."""

    url: str
    filename: str
    md5: str
    extras: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataFile:
    """One file under the data root, its md5 and the URLs it can be fetched from (tried in order). A file published
    with a sha256 prefix instead (torchvision's weights) has ``md5=""`` and ``sha256_prefix``; a member of an
    archive has ``archive`` (and no URLs of its own; its path is its member name)."""

    path: str
    md5: str
    urls: tuple[str, ...]
    sha256_prefix: str | None = None
    archive: Archive | None = None

    def intact(self, path: Path) -> bool:
        """Whether the file at ``path`` has the published checksum."""
        if self.md5:
            return md5sum(path) == self.md5
        return sha256sum(path).startswith(self.sha256_prefix or "")

    def download(self, url: str, target: Path) -> None:
        """Fetch ``url`` to ``target``; raises on any failure or checksum mismatch (nothing is left behind)."""
        if self.md5:
            download_url(url, str(target.parent), target.name, self.md5)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(target), hash_prefix=self.sha256_prefix, progress=False)


def _torchvision_idx(name: str, prefixes: tuple[str, ...] = ("train", "t10k")) -> tuple[DataFile, ...]:
    cls = getattr(torchvision.datasets, name)
    return tuple(DataFile(f"{name}/raw/{fname}", md5, tuple(m + fname for m in cls.mirrors))
                 for fname, md5 in cls.resources if fname.startswith(prefixes))


def _split_list(name: str, split: str) -> DataFile:
    """One split of a dataset torchvision lists as ``split_list[split] = [url, file name, md5]`` (USPS, SVHN), in
    the folder ``<root>/<name>/`` the loaders read it from."""
    url, fname, md5 = getattr(torchvision.datasets, name).split_list[split]
    return DataFile(f"{name}/{fname}", md5, (url,))


def _qmnist(split: str) -> tuple[DataFile, ...]:
    """QMNIST's ``split`` (torchvision's ``resources[split]``: (url, md5) pairs), in ``<root>/QMNIST/raw/``."""
    return tuple(DataFile(f"QMNIST/raw/{os.path.basename(url)}", md5, (url,))
                 for url, md5 in torchvision.datasets.QMNIST.resources[split])


def _cifar10() -> tuple[DataFile, ...]:
    """CIFAR-10's python batches, ``<root>/cifar-10-batches-py/`` (torchvision's ``base_folder``), with the md5 of
    each batch from torchvision's ``train_list``/``test_list``/``meta``."""
    cls = torchvision.datasets.CIFAR10
    archive = Archive(cls.url, cls.filename, cls.tgz_md5)
    members = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
    return tuple(DataFile(f"{cls.base_folder}/{fname}", md5, (), archive=archive) for fname, md5 in members)


def _stl10() -> tuple[DataFile, ...]:
    """STL-10's labelled splits, ``<root>/stl10_binary/{train,test}_{X,y}.bin`` (torchvision's layout), md5 from
    torchvision's lists; its class names come along unverified (torchvision lists no md5 for them)."""
    cls = torchvision.datasets.STL10
    archive = Archive(cls.url, cls.filename, cls.tgz_md5, extras=(f"{cls.base_folder}/{cls.class_names_file}",))
    return tuple(DataFile(f"{cls.base_folder}/{fname}", md5, (), archive=archive)
                 for fname, md5 in [*cls.train_list, *cls.test_list] if not fname.startswith("unlabeled"))


def _weights(folder: str, fname: str, url: str) -> DataFile:
    """torchvision's weights file ``fname`` (checked by the sha256 prefix in its name) in ``<root>/<folder>/``."""
    return DataFile(f"{folder}/{fname}", "", (url,), sha256_prefix=fname.rsplit("-", 1)[1].split(".")[0][:8])


# the official Omniglot repository (brendenlake/omniglot, MIT licence); torchvision lists md5 sums only for the two
# full sets, so these two are ours, computed from the files that repository serves
_OMNIGLOT_SMALL = {"images_background_small1.zip": "e704a628b5459e08445c13499850abc4",
                   "images_background_small2.zip": "b75a71a51d3b13f821f212756fe481fd"}

DATASET_FILES: dict[str, tuple[DataFile, ...]] = {
    "MNIST": _torchvision_idx("MNIST"),
    "FashionMNIST": _torchvision_idx("FashionMNIST"),
    "KMNIST": _torchvision_idx("KMNIST", ("t10k",)),
    "USPS": (_split_list("USPS", "test"),),
    "Omniglot": tuple(DataFile(f"omniglot/{fname}", md5,
                               (f"{torchvision.datasets.Omniglot.download_url_prefix}/{fname}",))
                      for fname, md5 in _OMNIGLOT_SMALL.items()),
    "VGG19": (_weights("vgg19", VGG19_FILE, VGG19_URL),),
    # read by the paper settings only (profiles cpu and paper)
    "KMNIST-train": _torchvision_idx("KMNIST", ("train",)),
    "USPS-train": (_split_list("USPS", "train"),),
    "QMNIST": _qmnist("train") + _qmnist("test"),
    "SVHN": (_split_list("SVHN", "train"), _split_list("SVHN", "test")),
    "CIFAR10": _cifar10(),
    "STL10": _stl10(),
    "ResNet18": (_weights("pretrained", RESNET18_FILE, torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url),),
}

_SMOKE = ("MNIST", "FashionMNIST", "KMNIST", "USPS", "Omniglot", "VGG19")
# the datasets ``l2l-fetch-data --profile`` fetches: the smoke profiles' files, or everything the paper settings read
PROFILE_DATASETS: dict[str, tuple[str, ...]] = {"smoke": _SMOKE, "cpu": tuple(DATASET_FILES),
                                                "paper": tuple(DATASET_FILES)}

# the datasets each notebook's committed (smoke-profile) outputs were computed from
NOTEBOOK_DATASETS: dict[str, tuple[str, ...]] = {
    "andrychowicz2016_l2l": ("MNIST",),
    "head_to_head": ("MNIST", "FashionMNIST", "KMNIST"),
    "huisman2022_turtle": ("Omniglot",),
    "kuo2020_mtl2l": ("MNIST", "FashionMNIST", "KMNIST"),
    "metamd": ("MNIST", "FashionMNIST", "KMNIST", "USPS"),
    "simple_optimizer": ("MNIST", "FashionMNIST"),
}

SKIP_PREFIX = "data missing"


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Paths (relative to the data root) of ``name``'s files that are not there."""
    if name not in DATASET_FILES:
        raise ValueError(f"unknown dataset {name!r}; allowed values are {sorted(DATASET_FILES)}")
    root = resolve_data_dir(data_dir)
    return [f.path for f in DATASET_FILES[name] if not (root / f.path).is_file()]


def missing_datasets(names, data_dir: str | os.PathLike | None = None) -> list[str]:
    """The datasets among ``names`` that have a file missing under the data root."""
    return [name for name in names if missing_files(name, data_dir)]


def skip_reason(names, data_dir: str | os.PathLike | None = None) -> str:
    """One line for a skipped check: which datasets are missing, where they were looked for, how to get them."""
    root = resolve_data_dir(data_dir)
    return (f"{SKIP_PREFIX}: {', '.join(names)} not under {root} "
            f"(run `make data` where the network is reachable, or set L2L_DATA_DIR to a folder holding the files)")


def report_data_skips(terminalreporter) -> None:
    """pytest summary line: how many checks were skipped because their data are missing (``make test``)."""
    skipped = terminalreporter.stats.get("skipped", [])
    count = sum(1 for report in skipped if SKIP_PREFIX in str(report.longrepr))
    if count:
        terminalreporter.write_line(f"{count} check(s) skipped for missing data: run `make data` where the network is "
                                    f"reachable, or set L2L_DATA_DIR to a folder holding the files", yellow=True)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256sum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def has_train_split(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``name``'s train split is on disk where its loader reads it (data root or cache; never downloads).

    The notebooks that otherwise draw seeded train/test pools from a test split (KMNIST, USPS: the offline copy has
    their test splits only) use the paper's split, train for training and test for testing, when this is true.
    """
    return "train" in available_splits(name, data_dir)


def _with_timeout(call, *args) -> None:
    """``call(*args)`` with a socket timeout of :data:`FETCH_TIMEOUT_S` seconds (a stalled connection is cut)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(FETCH_TIMEOUT_S)
    try:
        call(*args)
    finally:
        socket.setdefaulttimeout(old)


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents below ``root`` while they are empty (left by a download that failed)."""
    while folder != root and root in folder.parents and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _fetch_archive(archive: Archive, members: list[str], root: Path) -> None:
    """Download ``archive`` (md5-checked by torchvision's ``download_url``) into a temporary folder under ``root``
    and extract ``members`` (and its ``extras``) to ``root/<member name>``, each by ``os.replace`` of a complete
    file; the archive is deleted. Raises on any failure (nothing partial is left behind)."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        _with_timeout(download_url, archive.url, tmp, archive.filename, archive.md5)
        wanted = set(members) | {e for e in archive.extras if not (root / e).is_file()}
        extracted, part = {}, Path(tmp) / "member"
        with tarfile.open(Path(tmp) / archive.filename, "r:*") as tar:
            for info in tar:  # one pass in the archive's order (a .tar.gz is read as a stream)
                if info.name in wanted and info.isfile():
                    with tar.extractfile(info) as fin, open(part, "wb") as fout:
                        while block := fin.read(1 << 20):
                            fout.write(block)
                    extracted[info.name] = Path(tmp) / f"member-{len(extracted)}"
                    os.replace(part, extracted[info.name])
        absent = [m for m in members if m not in extracted]
        if absent:
            raise FileNotFoundError(f"{archive.filename} has no member(s) {', '.join(absent)}")
        for member, path in extracted.items():  # all or nothing: moved in only once every member is there
            (root / member).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, root / member)


def fetch(names, data_dir: str | os.PathLike | None = None, log=print) -> dict[str, str]:
    """Fetch the missing files of every dataset in ``names``; verify the md5 of those present.

    Returns ``{dataset: "present" | "fetched" | "missing: <why>" | "corrupt: <file>"}``; never raises for an
    unreachable network (each URL fails at once when names cannot be resolved; a stalled connection is cut after
    :data:`FETCH_TIMEOUT_S` seconds). Members of an archive (CIFAR-10, STL-10) are fetched by one download of the
    archive.
    """
    root = resolve_data_dir(data_dir)
    status = {}
    for name in names:
        if name not in DATASET_FILES:
            raise ValueError(f"unknown dataset {name!r}; allowed values are {sorted(DATASET_FILES)}")
        fetched, corrupt, missing, errors = False, [], [], []
        archives: dict[Archive, list[str]] = {}
        for item in DATASET_FILES[name]:
            if item.archive is not None and not (root / item.path).is_file():
                archives.setdefault(item.archive, []).append(item.path)
        for archive, members in archives.items():
            try:
                _fetch_archive(archive, members, root)
                fetched = True
            except Exception as exc:  # offline, HTTP error, timeout, md5 mismatch, bad archive
                errors.append(f"{archive.url}: {type(exc).__name__}: {exc}")
        for item in DATASET_FILES[name]:
            target = root / item.path
            if target.is_file():
                if not item.intact(target):
                    corrupt.append(str(target))
                continue
            for url in item.urls:
                try:
                    _with_timeout(item.download, url, target)  # raises on a checksum mismatch
                    fetched = True
                    break
                except Exception as exc:  # offline, HTTP error, timeout, md5 mismatch: try the next URL
                    errors.append(f"{url}: {type(exc).__name__}: {exc}")
                    target.unlink(missing_ok=True)
            else:
                missing.append(item.path)
                _prune_empty(target.parent, root)
        if corrupt:
            status[name] = (f"corrupt: {', '.join(corrupt)} do(es) not have the published checksum "
                            "(delete to fetch again)")
        elif missing:
            status[name] = f"missing: {', '.join(missing)} (could not fetch: {errors[0] if errors else 'no URL'})"
        else:
            status[name] = "fetched" if fetched else "present"
        log(f"{name:<13} {status[name]}")
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the datasets the notebooks read (for a profile) into the data "
                                                 "root ($L2L_DATA_DIR, else <project>/data); files already there are "
                                                 "only verified. Exit status 0 even when the network is unreachable "
                                                 "(it lists what is missing), unless --strict.")
    parser.add_argument("datasets", nargs="*",
                        help=f"datasets to fetch (default: those of --profile); any of {', '.join(DATASET_FILES)}")
    parser.add_argument("--profile", choices=sorted(PROFILE_DATASETS), default="smoke",
                        help="smoke (default): the files the smoke profiles read, and VGG-19's weights; cpu, paper: "
                             "also everything the paper settings read that torchvision can download (KMNIST and USPS "
                             "train splits, QMNIST, SVHN, CIFAR-10, STL-10, ResNet-18's weights)")
    parser.add_argument("--data-dir", default=None, help="data root (overrides $L2L_DATA_DIR)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if anything is still missing")
    args = parser.parse_args(argv)
    unknown = [n for n in args.datasets if n not in DATASET_FILES]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; allowed values are {sorted(DATASET_FILES)}")
    names = args.datasets or list(PROFILE_DATASETS[args.profile])
    root = resolve_data_dir(args.data_dir)
    print(f"data root: {root} (profile {args.profile})" if not args.datasets else f"data root: {root}")
    status = fetch(names, args.data_dir)
    bad = [n for n, s in status.items() if s not in ("present", "fetched")]
    if bad:
        print(f"not available: {', '.join(bad)}. The checks that need them will be skipped. To provide them, put the "
              f"files named above under {root} (or point L2L_DATA_DIR at a folder holding them) and run this again.")
    return 1 if bad and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
