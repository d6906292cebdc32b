"""The notebooks of docs/notebooks/: generated from their pages, up to date, and every cell runs.

Each NAME.ipynb is made from NAME.md by docs/make_notebooks.py (so no text exists twice by hand); the
first tests check that the committed notebooks are what the pages make now, and that every exercise is
followed by its solution in a collapsed Markdown cell (which Jupyter never runs, so "Run all" cannot
overwrite the learner's code). Then every code cell of each committed notebook runs in order, in one
fresh namespace, in a temporary working directory, with matplotlib's non-interactive Agg backend,
in-process (no Jupyter kernel needed), twice: once as a learner's "Run all" finds it, every exercise
as it stands (its check says "not done yet" and the cells after it still run), and once with each
solution in place of its exercise, as a learner who has done them all, where every check must pass. A last test reads the code for checks
without a message. (tests/test_docs.py runs the other pages' blocks; it leaves these pages to this file.)
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
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


def _cells(name: str) -> list:
    return json.loads((FOLDER / name).read_text(encoding="utf-8"))["cells"]


def _tags(cell) -> tuple:
    return tuple(cell["metadata"].get("tags", ()))


def test_the_notebooks_are_numbered_in_learning_order():
    assert NOTEBOOKS[0] == "1_engine.ipynb", NOTEBOOKS
    assert [int(n.split("_")[0]) for n in NOTEBOOKS] == list(range(1, len(NOTEBOOKS) + 1)), NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_exercise_has_its_solution_in_a_collapsed_markdown_cell(name):
    cells = _cells(name)
    assert any(_tags(c) == ("exercise",) for c in cells), f"{name} has no exercise"
    for k, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert _tags(cell) in ((), ("exercise",)), f"{name}: code cell {k} is tagged {_tags(cell)}"
        if _tags(cell) == ("exercise",):
            after = cells[k + 1] if k + 1 < len(cells) else None
            assert after is not None and _tags(after) == ("solution",), \
                f"{name}: cell {k} is an exercise with no solution after it"
            text = "".join(after["source"])
            assert after["cell_type"] == "markdown", f"{name}: the solution after cell {k} is not a Markdown cell"
            assert text.startswith("<details>") and text.rstrip().endswith("</details>"), \
                f"{name}: the solution after cell {k} is not collapsed in <details> ... </details>"
            assert make_notebooks.solution_code(text).strip(), f"{name}: the solution after cell {k} has no code"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_what_its_page_makes(name):
    page = FOLDER / name.replace(".ipynb", ".md")
    assert (FOLDER / name).read_text(encoding="utf-8") == make_notebooks.render(page), \
        f"{name} is out of date with {page.name}: run python docs/make_notebooks.py"


def _run(name: str, with_solutions: bool) -> str:
    """Run the notebook's code cells in order, each solution in place of its exercise if asked; the output."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__main__"}
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")   # plt.show() on Agg
            for k, cell in enumerate(_cells(name)):
                if cell["cell_type"] == "code" and not (with_solutions and _tags(cell) == ("exercise",)):
                    source, where = "".join(cell["source"]), f"{name}, cell {k}"
                elif with_solutions and _tags(cell) == ("solution",):
                    source, where = make_notebooks.solution_code("".join(cell["source"])), f"{name}, solution {k}"
                else:
                    continue
                exec(compile(source, where, "exec"), namespace)  # noqa: S102
                plt.close("all")
    finally:
        plt.close("all")
    return printed.getvalue()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_goes_through_before_any_exercise_is_done(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = _run(name, with_solutions=False)
    exercises = sum(_tags(c) == ("exercise",) for c in _cells(name))
    assert printed.count("not done yet") >= exercises, \
        f"{name}: {exercises} exercises, but 'not done yet' printed {printed.count('not done yet')} times:\n{printed}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_cell_runs_and_every_solution_passes_its_check(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = _run(name, with_solutions=True)
    assert "not done yet" not in printed, f"{name}: a check still says 'not done yet' after its solution:\n{printed}"


def _checks_without_a_message(source: str) -> list:
    """Lines of `source` with an assert that has no message, or an np.testing.assert_* without err_msg."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and node.msg is None:
            found.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr.startswith("assert_") and not any(k.arg == "err_msg" for k in node.keywords)):
            found.append(node.lineno)
    return found


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_check_says_what_is_wrong(name):
    bare = []
    for k, cell in enumerate(_cells(name)):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
        elif _tags(cell) == ("solution",):
            source = make_notebooks.solution_code("".join(cell["source"]))
        else:
            continue
        bare += [f"cell {k}, line {line}" for line in _checks_without_a_message(source)]
    assert not bare, f"{name}: checks that would fail with no message (give each assert one): {', '.join(bare)}"


def test_the_message_reader_finds_bare_checks():
    source = ("assert x == 1\n"
              "assert y, 'y is empty'\n"
              "np.testing.assert_allclose(a, b)\n"
              "np.testing.assert_allclose(a, b, err_msg='a is not b')\n")
    assert _checks_without_a_message(source) == [1, 3]


def test_a_solution_outside_details_is_refused(tmp_path):
    page = tmp_path / "9_x.md"
    page.write_text("# x\n```python exercise\nf = 1\n```\n```python solution\nf = 2\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="inside <details>"):
        make_notebooks.notebook(page)
    page.write_text("# x\n```python exercise\nf = 1\n```\n<details><summary>Solution</summary>\n\n"
                    "```python solution\nf = 2\n```\n\n</details>\n\nafter\n", encoding="utf-8")
    cells = make_notebooks.notebook(page)["cells"]
    assert [(c["cell_type"], _tags(c)) for c in cells] == [("markdown", ()), ("code", ("exercise",)),
                                                          ("markdown", ("solution",)), ("markdown", ())]
    assert make_notebooks.solution_code("".join(cells[2]["source"])) == "f = 2\n"
