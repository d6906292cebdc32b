"""The notebooks of docs/notebooks/: generated from their pages, up to date, and every cell runs.

Each NAME.ipynb is made from NAME.md by docs/make_notebooks.py (so no text exists twice by hand); the
first test checks that the committed notebooks are what the pages make now. The second runs every code
cell of each committed notebook in order, in one fresh namespace, in a temporary working directory,
with matplotlib's non-interactive Agg backend, in-process (no Jupyter kernel needed): exercise cells
as they stand (their check says "not done yet") and the hidden solutions, whose checks must pass.
(tests/test_docs.py runs the other pages' blocks; it leaves these pages to this file.)
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "notebooks"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "docs" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_notebooks = _load_script()
NOTEBOOKS = [p.with_suffix(".ipynb").name for p in make_notebooks.pages(FOLDER)]


def test_there_are_notebooks_and_each_has_checked_exercises():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS
    for name in NOTEBOOKS:
        cells = json.loads((FOLDER / name).read_text(encoding="utf-8"))["cells"]
        tags = [tuple(c["metadata"].get("tags", ())) for c in cells]
        assert ("exercise",) in tags, f"{name} has no exercise"
        for k, t in enumerate(tags):   # every exercise is followed by its solution
            if t == ("exercise",):
                assert tags[k + 1] == ("solution",), f"{name}: cell {k} is an exercise with no solution after it"
                assert cells[k + 1]["metadata"]["jupyter"]["source_hidden"] is True


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_what_its_page_makes(name):
    page = FOLDER / name.replace(".ipynb", ".md")
    assert (FOLDER / name).read_text(encoding="utf-8") == make_notebooks.render(page), \
        f"{name} is out of date with {page.name}: run python docs/make_notebooks.py"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_cell_runs(name, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    cells = json.loads((FOLDER / name).read_text(encoding="utf-8"))["cells"]
    namespace = {"__name__": "__main__"}
    ran = 0
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")   # plt.show() on Agg
            for k, cell in enumerate(cells):
                if cell["cell_type"] != "code":
                    continue
                exec(compile("".join(cell["source"]), f"{name}, cell {k}", "exec"), namespace)  # noqa: S102
                ran += 1
                plt.close("all")
    finally:
        plt.close("all")
    assert ran > 0
