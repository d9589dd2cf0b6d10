"""Every notebook is paired (jupytext.toml) with its percent script under notebooks/src/, and the two agree on every
cell: its kind, its source and its tags. `make notebooks` writes the notebooks from the scripts."""

import copy
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def cells(notebook) -> list[tuple]:
    return [(cell.cell_type, cell.source.strip("\n"), tuple(cell.metadata.get("tags", ()))) for cell in notebook.cells]


def disagreements(script_nb, notebook) -> list[str]:
    """The cells where the script and the notebook differ (empty when they agree)."""
    a, b = cells(script_nb), cells(notebook)
    out = [f"cell {i}: script {x[:2]!r:.120} vs notebook {y[:2]!r:.120}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(a) != len(b):
        out.append(f"the script has {len(a)} cells, the notebook {len(b)}")
    return out


def test_every_notebook_has_its_script_and_every_script_its_notebook():
    scripts = {p.stem for p in (ROOT / "notebooks" / "src").glob("*.py")}
    assert scripts == {p.stem for p in NOTEBOOKS}
    config = (ROOT / "jupytext.toml").read_text()
    assert 'formats = "notebooks///ipynb,notebooks/src///py:percent"' in config


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_script_and_notebook_agree_on_every_cell(notebook):
    script = jupytext.read(ROOT / "notebooks" / "src" / f"{notebook.stem}.py")
    problems = disagreements(script, nbformat.read(notebook, as_version=4))
    assert not problems, f"{notebook.name} differs from its script (run `make notebooks`): " + "; ".join(problems)


def test_a_changed_cell_is_found():
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    script = jupytext.read(ROOT / "notebooks" / "src" / f"{NOTEBOOKS[0].stem}.py")
    edited = copy.deepcopy(notebook)
    code = next(i for i, c in enumerate(edited.cells) if c.cell_type == "code")
    edited.cells[code].source += "\nx = 1"
    assert disagreements(script, edited) and disagreements(script, edited)[0].startswith(f"cell {code}:")
    untagged = copy.deepcopy(notebook)
    tagged = next(i for i, c in enumerate(untagged.cells) if "parameters" in c.metadata.get("tags", ()))
    untagged.cells[tagged].metadata["tags"] = []
    assert disagreements(script, untagged)
    assert disagreements(script, nbformat.v4.new_notebook(cells=notebook.cells[:-1]))
