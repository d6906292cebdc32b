r"""The docs' maths is written in forms that render: on GitHub for the pages, in Jupyter for the notebooks.

GitHub's Markdown pass runs before its maths renderer, and it changes what is between dollars: a
backslash before punctuation is an escape, so ``\,`` ``\;`` ``\!`` ``\{`` ``\}`` ``\|`` lose their
backslash, and an underscore or asterisk can start emphasis (``\mathbb{E}_{q} ... \sigma_{k}`` becomes
italics). Display maths in a ```` ```math ```` fence and inline maths written ``$`...`$`` reach the
renderer verbatim. So every page (README.md, docs/**/*.md, the notebooks' pages included) must have no
``$$`` and no bare ``$...$`` outside code.

Jupyter renders ``$$``/``$`` itself and shows the GitHub forms as code, so docs/make_notebooks.py turns
them back into dollars in the notebooks' Markdown cells; there the maths must also survive a Markdown
pass unchanged (no backslash before punctuation, no underscore or asterisk that could open emphasis),
so that GitHub's notebook view shows it as Jupyter does.

Two more things GitHub does not render as written. In a table, GitHub's Markdown (GFM) splits a row into
cells at every ``|`` that has no backslash before it, before it reads code spans or maths, so
``q(x|y)`` inside a code span, or $`p(y \mid x)`$ written with a bare ``|``, cuts the cell in two:
inside a table row every ``|`` that is not a cell border must be written ``\|`` (GitHub shows ``|``).
And ``\texttt{...}`` inside a ```` ```math ```` fence shows the backslashes of ``\_`` on GitHub; code
names belong in the prose around the maths.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_docs import _outside_fences, doc_pages

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))

# What a CommonMark pass changes inside maths: a backslash before ASCII punctuation (an escape), an
# asterisk (emphasis, even inside a word), and an underscore that can open emphasis, which is one not
# preceded by a letter or digit (``}_{`` can, ``\sigma_k`` and ``x_{k}`` cannot).
_CHANGED = re.compile(r"\\[!-/:-@\[-`{-~]|(?<![A-Za-z0-9])_|\*")
_SAFE_INLINE = re.compile(r"\$`[^`]*`\$")
_CODE_SPAN = re.compile(r"(`+).*?\1")


def markdown_would_change(maths: str) -> list:
    """The pieces of `maths` that a Markdown pass would change, in order."""
    return [m.group(0) for m in _CHANGED.finditer(maths)]


def maths_problems(text: str) -> list:
    """Every line of a Markdown page whose maths GitHub would not render as written, with the reason."""
    problems = []
    for number, line in enumerate(_outside_fences(text), start=1):   # ```math blocks are fences: fine
        rest = _CODE_SPAN.sub("", _SAFE_INLINE.sub("", line))
        if "$$" in rest:
            problems.append(f"line {number}: display maths between $$: GitHub's Markdown pass eats its "
                            f"backslash escapes; put it in a ```math fence")
            continue
        for m in re.finditer(r"\$([^$]*)\$?", rest):
            changed = markdown_would_change(m.group(1))
            why = f" (GitHub would change {' '.join(dict.fromkeys(changed))})" if changed else ""
            problems.append(f"line {number}: inline maths as bare {m.group(0)!r}: write it $`...`${why}")
    return problems


@pytest.mark.parametrize("page", doc_pages())
def test_maths_is_in_a_form_github_renders(page):
    problems = maths_problems((ROOT / page).read_text(encoding="utf-8"))
    assert not problems, f"{page}:\n" + "\n".join(problems)


def notebook_maths(cell_text: str) -> list:
    """The maths of a notebook's Markdown cell: the text between $$ ... $$ and between $ ... $."""
    text = "\n".join(_outside_fences(cell_text))
    text = _CODE_SPAN.sub("", text)
    found = re.findall(r"\$\$(.+?)\$\$", text, flags=re.DOTALL)
    found += re.findall(r"\$([^$]+)\$", re.sub(r"\$\$.+?\$\$", "", text, flags=re.DOTALL))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_maths_renders_in_jupyter_and_on_github(path):
    problems = []
    for k, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        if "```math" in text or "$`" in text:
            problems.append(f"cell {k}: GitHub's maths forms, which Jupyter shows as code: run "
                            f"python docs/make_notebooks.py")
        for maths in notebook_maths(text):
            changed = markdown_would_change(maths)
            if changed:
                problems.append(f"cell {k}: {maths.strip()[:60]!r}: a Markdown pass would change "
                                f"{' '.join(dict.fromkeys(changed))}; use \\Vert, \\lbrace, \\thinspace, ..., "
                                f"and no underscore after a brace (\\mathbb E_q, not \\mathbb{{E}}_q)")
    assert not problems, f"{path.name} (edit its .md page):\n" + "\n".join(problems)


def test_the_checks_catch_what_github_would_change():
    page = ("Fine: $`\\mathrm{KL}(q \\,\\|\\, p)`$ and `$HOME`.\n"
            "```math\n\\max\\!\\Big(0, \\{x\\}\\Big)\n```\n"
            "$$\n"
            "x\n"
            "$$\n"
            "Bare: $\\mathbb{E}_{q} \\sigma_{k}$, and $a + b$.\n")
    problems = maths_problems(page)
    assert len(problems) == 4, problems
    assert problems[0].startswith("line 5: display maths between $$") and problems[1].startswith("line 7:")
    assert "GitHub would change _)" in problems[2] and "$a + b$" in problems[3]
    assert "would change" not in problems[3]
    assert markdown_would_change(r"\,\|\,\{\}\!\;\#") == [r"\,", r"\|", r"\,", r"\{", r"\}", r"\!", r"\;", r"\#"]
    assert markdown_would_change(r"\mathbb{E}_{q} x^* \sigma_k y_{b}") == ["_", "*"]
    assert markdown_would_change(r"\mathrm{KL}(q \Vert p) \lbrace x \rbrace \mathbb E_q") == []
    assert notebook_maths("a $x_k$ and\n$$\n\\frac12\n$$\n`$no$`") == ["\n\\frac12\n", "x_k"]


_TABLE_ROW = re.compile(r"^ {0,3}\|")
_DELIMITER_ROW = re.compile(r"^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _cells(row: str) -> int:
    """How many cells GFM makes of a table row: split at every | without a backslash before it."""
    inner = row.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return len(_UNESCAPED_PIPE.split(inner))


def table_problems(text: str) -> list:
    """Every table row of a Markdown page that GFM would cut wrongly: a bare | inside a code span or
    inline maths, or a row with more or fewer cells than its table's delimiter row."""
    problems, lines = [], _outside_fences(text)
    width = None
    for number, line in enumerate(lines, start=1):
        if not _TABLE_ROW.match(line) and not (width is not None and line.strip()):
            width = None
            continue
        if width is None:
            following = lines[number] if number < len(lines) else ""
            if not _DELIMITER_ROW.match(following):
                continue
            width = _cells(following)
        if _DELIMITER_ROW.match(line):
            continue
        for m in re.finditer(r"(`+)(.+?)\1", line):
            if _UNESCAPED_PIPE.search(m.group(2)):
                problems.append(f"line {number}: {m.group(0)!r}: a bare | inside a code span or maths splits "
                                f"the table cell on GitHub; write \\|")
        if _cells(line) != width:
            problems.append(f"line {number}: {_cells(line)} cells, the table has {width}: a bare | in the "
                            f"text splits a cell; write \\|")
    return problems


@pytest.mark.parametrize("page", doc_pages())
def test_table_cells_are_not_split_by_a_bare_pipe(page):
    problems = table_problems((ROOT / page).read_text(encoding="utf-8"))
    assert not problems, f"{page}:\n" + "\n".join(problems)


def math_fence_problems(text: str) -> list:
    """Every ```math fence of a page that names code with \\texttt (GitHub shows its escapes)."""
    from test_docs import parse_fences

    return [f"line {line}: \\texttt in a math fence: name the code in the prose around it"
            for lang, _, line, code in parse_fences(text) if lang == "math" and "\\texttt" in code]


@pytest.mark.parametrize("page", doc_pages())
def test_no_code_names_inside_maths(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    problems = math_fence_problems(text)
    problems += [f"line {n}: \\texttt in inline maths: name the code in the prose" for n, line
                 in enumerate(text.splitlines(), start=1) if re.search(r"\$`[^`]*\\texttt", line)]
    assert not problems, f"{page}:\n" + "\n".join(problems)


def test_the_table_check_catches_a_bare_pipe():
    page = ("| term | formula |\n"
            "|---|---|\n"
            "| fine | `E_q(x\\|y)[ log p(y\\|x) ]` and $`p(y \\mid x)`$ |\n"
            "| code | `-E_q(x|y)[ log p(y|x) ]` |\n"
            "| maths | $`p(z|x)`$ |\n"
            "| text | p(z|x) |\n"
            "\n"
            "not | a table\n"
            "```text\n| a | b |\n|---|---|\n| `x|y` | fenced |\n```\n")
    problems = table_problems(page)
    assert [p.split(":")[0] for p in problems] == ["line 4", "line 4", "line 5", "line 5", "line 6"], problems
    assert "inside a code span" in problems[0] and "3 cells, the table has 2" in problems[-1]
    assert math_fence_problems("```math\nx \\qquad (\\texttt{a\\_b})\n```\n```math\nx\n```\n") == \
        ["line 2: \\texttt in a math fence: name the code in the prose around it"]
