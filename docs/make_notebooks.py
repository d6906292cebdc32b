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
  NotImplementedError), so that "Run all" goes through;
* a ```python solution block becomes a code cell tagged "solution", its source collapsed (JupyterLab
  and VS Code hide it until clicked). The solution calls the same check, so the test suite proves it.

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
    """The page as (kind, source) pairs: kind "markdown", or "code" / "exercise" / "solution"."""
    cells, prose = [], []
    lines = text.splitlines()
    i = 0

    def flush():
        body = "\n".join(prose).strip("\n")
        if body.strip():
            cells.append(("markdown", body))
        prose.clear()

    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        marker, lang, rest = m.groups()
        end = i + 1
        while end < len(lines) and not re.match(rf"^{marker[0]}{{{len(marker)},}}\s*$", lines[end]):
            end += 1
        if lang != "python":                      # another language: part of the prose
            prose.extend(lines[i:end + 1])
            i = end + 1
            continue
        kind = rest.split()[0] if rest.split() else ""
        if kind not in KINDS:
            raise ValueError(f"line {i + 1}: unknown python block kind {kind!r}; use one of {KINDS}")
        flush()
        cells.append((kind or "code", "\n".join(lines[i + 1:end])))
        i = end + 1
    flush()
    return cells


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
    for kind, text in cells_of(page.read_text(encoding="utf-8")):
        if kind == "markdown":
            cells.append({"cell_type": "markdown", "metadata": {}, "source": _source(jupyter_maths(text))})
            continue
        metadata = {}
        if kind == "exercise":
            metadata = {"tags": ["exercise"]}
        elif kind == "solution":
            metadata = {"tags": ["solution"], "jupyter": {"source_hidden": True}}
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
