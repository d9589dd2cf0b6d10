"""The package's layout: concept folders only, imports running one way (the import-linter contract in
pyproject.toml), and the contract itself able to fail."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"optimizers", "learned_optimizers", "tasks", "meta_training", "evaluation", "reporting", "harness", "storage"}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run import-linter's ``lint-imports`` on the package found under ``cwd`` (its pyproject.toml's contract)."""
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_the_package_has_only_concept_folders_at_its_top_level():
    package = ROOT / "l2l_utils"
    assert sorted(p.name for p in package.glob("*.py")) == ["__init__.py"]
    folders = {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == FOLDERS
    for folder in FOLDERS:  # each says what lives there and who uses it
        doc = (package / folder / "__init__.py").read_text()
        assert doc.startswith('"""') and len(doc.strip().strip('"').strip()) > 40, folder


def test_imports_run_one_way():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout, out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The same contract on a copy of the package in which a floor imports from the floor above it."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copytree(ROOT / "l2l_utils", copy / "l2l_utils", ignore=shutil.ignore_patterns("__pycache__"))
    unroll = copy / "l2l_utils" / "optimizers" / "unroll.py"
    unroll.write_text(unroll.read_text() + "\nfrom ..meta_training.meta_train import meta_train  # upward\n")
    out = lint_imports(copy)
    assert out.returncode != 0, out.stdout
    assert "BROKEN" in out.stdout and "l2l_utils.optimizers.unroll -> l2l_utils.meta_training.meta_train" in out.stdout, \
        out.stdout
