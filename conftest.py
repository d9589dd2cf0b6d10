"""Hooks for both pytest runs of ``make test`` (the suite under ``tests/`` and nbval over ``notebooks/``).

nbval: a notebook whose data are missing is skipped, with one line saying which datasets are missing and how to
provide them (its committed outputs were computed from those data). Both runs end by counting the checks skipped
for missing data. Notebooks executed by nbval draw their figures into a temporary folder (``$L2L_FIGURES_DIR``), so
a test run never rewrites the committed ``figures/``. Test helpers live in ``tests/conftest.py``."""

import os
import tempfile
from pathlib import Path

import pytest

from l2l_utils.tasks.datasets.files import NOTEBOOK_DATASETS, missing_datasets, report_data_skips, skip_reason


def pytest_configure(config):
    os.environ.setdefault("L2L_FIGURES_DIR", tempfile.mkdtemp(prefix="l2l-figures-"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb":
            continue
        needed = NOTEBOOK_DATASETS.get(path.stem, ())
        if needed:
            item.add_marker(pytest.mark.data)
        missing = missing_datasets(needed)
        if missing:
            item.add_marker(pytest.mark.skip(reason=skip_reason(missing)))


def pytest_terminal_summary(terminalreporter):
    report_data_skips(terminalreporter)
