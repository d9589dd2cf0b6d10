"""pyproject.toml and environment.yml must list the same dependencies with the same ranges."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONDA_ONLY = {"python", "pip"}
SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def normalise(requirement: str) -> tuple[str, str]:
    """Split ``name>=1,<2`` into (normalised name, sorted specifier string)."""
    name, spec = SPEC.match(requirement.split(";")[0]).groups()
    parts = sorted(p.replace(" ", "") for p in spec.split(",") if p.strip())
    return name.lower().replace("_", "-"), ",".join(parts)


def requirements_map(requirements) -> dict:
    return dict(normalise(r) for r in requirements)


def pyproject_requirements(text: str) -> dict:
    return requirements_map(tomllib.loads(text)["project"]["dependencies"])


def conda_requirements(text: str) -> dict:
    entries = []
    for dep in yaml.safe_load(text)["dependencies"]:
        entries.extend(dep.get("pip", []) if isinstance(dep, dict) else [dep])
    entries = [e for e in entries if not e.startswith("-")]  # skip "-e ." and pip options
    found = requirements_map(entries)
    return {k: v for k, v in found.items() if k not in CONDA_ONLY}


def compare(a: dict, b: dict) -> list[str]:
    """Differences between two {name: specifier} maps (empty when they agree)."""
    problems = [f"{n} only in the first" for n in sorted(a.keys() - b.keys())]
    problems += [f"{n} only in the second" for n in sorted(b.keys() - a.keys())]
    problems += [f"{n}: {a[n]!r} != {b[n]!r}" for n in sorted(a.keys() & b.keys()) if a[n] != b[n]]
    return problems


def test_pyproject_and_environment_agree():
    py = pyproject_requirements((ROOT / "pyproject.toml").read_text())
    conda = conda_requirements((ROOT / "environment.yml").read_text())
    assert py, "no dependencies found in pyproject.toml"
    assert compare(py, conda) == []


PYPROJECT = """
[project]
name = "x"
dependencies = ["torch>=2.4,<2.15", "jupyter-client>=8"]
"""
ENV_SAME = """
dependencies:
  - python=3.11
  - pip
  - jupyter_client>=8
  - pip:
      - torch<2.15, >=2.4
      - -e .
"""


def test_compare_accepts_equivalent_spellings():
    assert compare(pyproject_requirements(PYPROJECT), conda_requirements(ENV_SAME)) == []


@pytest.mark.parametrize("env_text, expected", [
    (ENV_SAME + "      - seaborn>=0.13\n", "seaborn only in the second"),
    (ENV_SAME.replace("  - jupyter_client>=8\n", ""), "jupyter-client only in the first"),
    (ENV_SAME.replace("torch<2.15, >=2.4", "torch>=2.4"), "torch: '<2.15,>=2.4' != '>=2.4'"),
])
def test_compare_detects_differences(env_text, expected):
    assert compare(pyproject_requirements(PYPROJECT), conda_requirements(env_text)) == [expected]
