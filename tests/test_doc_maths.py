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
