"""The dataset files the notebooks' smoke profiles read, where to fetch them, and their md5 sums.

``l2l-fetch-data`` (``make data``, also run by ``make test`` and ``make reproduce``) fetches every missing file
into the data root (``$L2L_DATA_DIR``, else ``<project>/data``) through torchvision's downloader, from
torchvision's own mirrors and md5 lists where torchvision has the dataset, and from the official repository
otherwise (Omniglot's small background sets). Files already present are only verified, never fetched again.
Without a network nothing is fetched: it says which datasets are missing and how to provide them, and the tests
that need them are skipped with that message (:func:`missing_datasets`).

Only the files the smoke profiles read are listed, so a fetched data root holds exactly what the offline copy used
by CI holds (same names, same md5) and the committed notebook outputs match either way. KMNIST and USPS are read
from their test splits only (used as pools, see the MetaMD notebook). One more: VGG-19's ImageNet weights (``VGG19``,
548 MB, torchvision's file checked by the sha256 prefix in its name), which the L2L notebook's neural-art section
reads together with content and style images that cannot be fetched (their layout:
:mod:`l2l_utils.tasks.datasets.neural_art_images`); without those images the section reports "not run" either way.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torchvision.datasets.utils import download_url

from .core import resolve_data_dir
from .pretrained import VGG19_FILE, VGG19_URL

FETCH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DataFile:
    """One file under the data root, its md5 and the URLs it can be fetched from (tried in order). A file published
    with a sha256 prefix instead (torchvision's weights) has ``md5=""`` and ``sha256_prefix``."""

    path: str
    md5: str
    urls: tuple[str, ...]
    sha256_prefix: str | None = None

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


def _usps_test() -> DataFile:
    url, fname, md5 = torchvision.datasets.USPS.split_list["test"]
    return DataFile(f"USPS/{fname}", md5, (url,))


# the official Omniglot repository (brendenlake/omniglot, MIT licence); torchvision lists md5 sums only for the two
# full sets, so these two are ours, computed from the files that repository serves
_OMNIGLOT_SMALL = {"images_background_small1.zip": "e704a628b5459e08445c13499850abc4",
                   "images_background_small2.zip": "b75a71a51d3b13f821f212756fe481fd"}

DATASET_FILES: dict[str, tuple[DataFile, ...]] = {
    "MNIST": _torchvision_idx("MNIST"),
    "FashionMNIST": _torchvision_idx("FashionMNIST"),
    "KMNIST": _torchvision_idx("KMNIST", ("t10k",)),
    "USPS": (_usps_test(),),
    "Omniglot": tuple(DataFile(f"omniglot/{fname}", md5,
                               (f"{torchvision.datasets.Omniglot.download_url_prefix}/{fname}",))
                      for fname, md5 in _OMNIGLOT_SMALL.items()),
    "VGG19": (DataFile(f"vgg19/{VGG19_FILE}", "", (VGG19_URL,), sha256_prefix=VGG19_FILE.split("-")[1][:8]),),
}

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


def fetch(names, data_dir: str | os.PathLike | None = None, log=print) -> dict[str, str]:
    """Fetch the missing files of every dataset in ``names``; verify the md5 of those present.

    Returns ``{dataset: "present" | "fetched" | "missing: <why>" | "corrupt: <file>"}``; never raises for an
    unreachable network (each URL fails at once when names cannot be resolved; a stalled connection is cut after
    :data:`FETCH_TIMEOUT_S` seconds).
    """
    root = resolve_data_dir(data_dir)
    status = {}
    for name in names:
        if name not in DATASET_FILES:
            raise ValueError(f"unknown dataset {name!r}; allowed values are {sorted(DATASET_FILES)}")
        fetched, corrupt, missing, errors = False, [], [], []
        for item in DATASET_FILES[name]:
            target = root / item.path
            if target.is_file():
                if not item.intact(target):
                    corrupt.append(str(target))
                continue
            for url in item.urls:
                old = socket.getdefaulttimeout()
                socket.setdefaulttimeout(FETCH_TIMEOUT_S)
                try:
                    item.download(url, target)  # raises on a checksum mismatch
                    fetched = True
                    break
                except Exception as exc:  # offline, HTTP error, timeout, md5 mismatch: try the next URL
                    errors.append(f"{url}: {type(exc).__name__}: {exc}")
                    target.unlink(missing_ok=True)
                finally:
                    socket.setdefaulttimeout(old)
            else:
                missing.append(item.path)
        if corrupt:
            status[name] = (f"corrupt: {', '.join(corrupt)} do(es) not have the published checksum "
                            "(delete to fetch again)")
        elif missing:
            status[name] = f"missing: {', '.join(missing)} (could not fetch: {errors[0]})"
        else:
            status[name] = "fetched" if fetched else "present"
        log(f"{name:<13} {status[name]}")
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the datasets the notebooks' smoke profiles read, and VGG-19's "
                                                 "ImageNet weights, into the data root ($L2L_DATA_DIR, else "
                                                 "<project>/data).")
    parser.add_argument("datasets", nargs="*", default=sorted(DATASET_FILES),
                        help=f"datasets to fetch (default: all of {', '.join(sorted(DATASET_FILES))})")
    parser.add_argument("--data-dir", default=None, help="data root (overrides $L2L_DATA_DIR)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if anything is still missing")
    args = parser.parse_args(argv)
    unknown = [n for n in args.datasets if n not in DATASET_FILES]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; allowed values are {sorted(DATASET_FILES)}")
    root = resolve_data_dir(args.data_dir)
    print(f"data root: {root}")
    status = fetch(args.datasets, args.data_dir)
    bad = [n for n, s in status.items() if s not in ("present", "fetched")]
    if bad:
        print(f"not available: {', '.join(bad)}. The checks that need them will be skipped. To provide them, put the "
              f"files named above under {root} (or point L2L_DATA_DIR at a folder holding them) and run this again.")
    return 1 if bad and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
