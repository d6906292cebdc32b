r"""Make the Jupyter notebooks of docs/notebooks/ from their Markdown pages: each NAME.md becomes NAME.ipynb.

    python docs/make_notebooks.py            write every notebook
    python docs/make_notebooks.py --check    exit 1 if a committed notebook differs from what its page makes

The pages are the source; the notebooks are generated and committed, so that they open on GitHub and in
Jupyter, and no text exists twice by hand (tests/test_notebooks.py checks that they are up to date and
runs every cell). In a page:

* prose, and fenced blocks in any other language, become Markdown cells;
* a ```python block becomes a code cell;
* a ```python exercise block becomes a code cell tagged "exercise": the learner's to fill in. It must
  still run as it stands (the page's check function says "not done yet" when it meets
  NotImplementedError), and every later cell must run whether or not it is done, so that "Run all"
  goes through;
* a ```python solution block sits between a ``<details><summary>...</summary>`` line and a
  ``</details>`` line, one per such block, and the whole becomes one Markdown cell tagged "solution":
  collapsed in Jupyter and on GitHub, page and notebook alike, and never run by Jupyter, so that "Run
  all" cannot overwrite the learner's code with it. The solution calls the same check as the exercise;
  tests/test_notebooks.py runs it in place of the exercise cell, so the test suite proves it.

Maths is written on the pages as GitHub renders it in Markdown: display maths in a ```math fence, inline
maths as $`...`$, because GitHub's Markdown pass runs before the maths and would eat the backslash escapes
of $$ ... $$ and $...$. Jupyter (Lab, Notebook, VS Code) renders neither form: it shows the fence as code
and the inline form as a code span between two dollars, while it renders $$ ... $$ and $...$ itself and
hides them from its own Markdown pass. So a notebook's Markdown cells get $$ ... $$ and $...$ (see
`jupyter_maths`), and the maths on these pages is written with no backslash before punctuation and no
underscore or asterisk that could start emphasis (\Vert, \lbrace, \thinspace for \|, \{, \,; and
\mathbb E_q, since the underscore of \mathbb{E}_q follows a brace and may open emphasis): a Markdown pass leaves that text as it is, so the same cell renders in Jupyter and in
GitHub's view of the notebook alike (tests/test_doc_maths.py checks both).

Only the standard library is used: a notebook is JSON (nbformat 4), and the output is deterministic
(no execution counts, no outputs, sorted keys), so regenerating an unchanged page changes nothing.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "docs" / "notebooks"

_FENCE = re.compile(r"^(`{3,})\s*([^`\s]*)\s*(.*)$")
KINDS = ("", "exercise", "solution")


def cells_of(text: str) -> list:
    """The page as (kind, source) pairs: kind "markdown", "code", "exercise" or "solution" (a Markdown cell)."""
    cells, prose = [], []
    lines = text.splitlines()
    i, in_details, solutions = 0, False, 0

    def flush(kind="markdown"):
        body = "\n".join(prose).strip("\n")
        if body.strip():
            cells.append((kind, body))
        prose.clear()

    while i < len(lines):
        if lines[i].lstrip().startswith("<details") and not in_details:
            flush()
            in_details, solutions = True, 0
        elif lines[i].strip() == "</details>" and in_details:
            prose.append(lines[i])
            if solutions != 1:
                raise ValueError(f"line {i + 1}: a <details> block holds {solutions} python solution blocks; "
                                 f"it must hold exactly one")
            flush("solution")
            in_details = False
            i += 1
            continue
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        marker, lang, rest = m.groups()
        end = i + 1
        while end < len(lines) and not re.match(rf"^{marker[0]}{{{len(marker)},}}\s*$", lines[end]):
            end += 1
        kind = rest.split()[0] if lang == "python" and rest.split() else ""
        if lang == "python" and kind not in KINDS:
            raise ValueError(f"line {i + 1}: unknown python block kind {kind!r}; use one of {KINDS}")
        if (kind == "solution") != in_details:
            raise ValueError(f"line {i + 1}: a python solution block, and only one, goes inside <details> ... "
                             f"</details>")
        if kind == "solution":                    # stays Markdown: shown, highlighted, never run by Jupyter
            solutions += 1
            prose.extend([f"{marker}python", *lines[i + 1:end + 1]])
        elif lang != "python":                    # another language: part of the prose
            prose.extend(lines[i:end + 1])
        else:
            flush()
            cells.append((kind or "code", "\n".join(lines[i + 1:end])))
        i = end + 1
    if in_details:
        raise ValueError("a <details> block is not closed by a </details> line")
    flush()
    return cells


def solution_code(cell_text: str) -> str:
    """The Python code of a solution cell: its one ```python block."""
    m = re.search(r"^(`{3,})python\s*\n(.*?)^\1\s*$", cell_text, flags=re.DOTALL | re.MULTILINE)
    if m is None:
        raise ValueError("a solution cell without a ```python block")
    return m.group(2)


_MATH_FENCE = re.compile(r"^(`{3,})\s*math\s*$")


def jupyter_maths(text: str) -> str:
    """A Markdown cell's maths in the form Jupyter renders: a ```math fence becomes $$ ... $$, and
    inline $`...`$ becomes $...$ (other fenced blocks are left alone)."""
    out, fence = [], None
    for line in text.split("\n"):
        if fence is None:
            m = _MATH_FENCE.match(line)
            if m:
                fence, line = ("math", m.group(1)), "$$"
            else:
                m = _FENCE.match(line)
                if m:
                    fence = ("other", m.group(1))
                else:
                    line = re.sub(r"\$`([^`]+)`\$", r"$\1$", line)
        elif re.match(rf"^{fence[1][0]}{{{len(fence[1])},}}\s*$", line):
            line = "$$" if fence[0] == "math" else line
            fence = None
        out.append(line)
    return "\n".join(out)


def _source(text: str) -> list:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def notebook(page: Path) -> dict:
    cells = []
    try:
        page_cells = cells_of(page.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{page.name}, {err}") from None
    for kind, text in page_cells:
        if kind in ("markdown", "solution"):
            metadata = {"tags": ["solution"]} if kind == "solution" else {}
            cells.append({"cell_type": "markdown", "metadata": metadata, "source": _source(jupyter_maths(text))})
            continue
        metadata = {"tags": ["exercise"]} if kind == "exercise" else {}
        cells.append({"cell_type": "code", "execution_count": None, "metadata": metadata, "outputs": [],
                      "source": _source(text)})
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(page: Path) -> str:
    nb = notebook(page)
    for k, cell in enumerate(nb["cells"]):
        cell["id"] = f"{page.stem}-{k}"          # nbformat 4.5 wants cell ids; stable ones keep diffs small
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def pages(folder: Path = NOTEBOOKS) -> list:
    return sorted(folder.glob("*.md"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed notebooks, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        target = page.with_suffix(".ipynb")
        text = render(page)
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python docs/make_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
