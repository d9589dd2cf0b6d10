"""The suite's data-free path: with an empty data root (a fresh clone without a network), every check that needs
real data is skipped with one line naming the missing dataset, never failed, and the skips are counted."""

import os
import subprocess
import sys
from pathlib import Path

from l2l_utils.tasks.datasets.files import NOTEBOOK_DATASETS, SKIP_PREFIX

ROOT = Path(__file__).resolve().parents[3]


def test_every_data_check_is_skipped_and_counted_without_data(tmp_path):
    env = dict(os.environ, L2L_DATA_DIR=str(tmp_path / "no-data"), L2L_CACHE_DIR=str(tmp_path / "cache"))
    (tmp_path / "no-data").mkdir()
    out = subprocess.run([sys.executable, "-m", "pytest", "-m", "data", "-rs", "-p", "no:cacheprovider",
                          "--nbval-lax", "tests", "notebooks"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert " failed" not in text and " error" not in text, text
    # the notebooks are all skipped, each with the reason naming what is missing and how to get it
    for notebook, datasets in NOTEBOOK_DATASETS.items():
        assert f"notebooks/{notebook}.ipynb" in text, text
    assert text.count(f"{SKIP_PREFIX}: ") >= len(NOTEBOOK_DATASETS), text
    assert "make data" in text and "L2L_DATA_DIR" in text
    assert "check(s) skipped for missing data" in text, text
    assert " passed" not in text.splitlines()[-1], text  # nothing that needs data ran
