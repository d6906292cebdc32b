"""The docs run: every ```python block of README.md and docs/*.md, and every relative link resolves.

For each page, all its ```python blocks run in order in one namespace (a page is one script told in
pieces), from a temporary working directory, with matplotlib's non-interactive Agg backend (a page that
has a notebook made from it, docs/notebooks/NAME.md, is run as that notebook by test_notebooks.py). A block
whose fence line is ```python slow runs only with --runslow: the page then has a second test id,
``<page>::with-slow``, marked slow, that runs every block. Tracebacks point at the page's own line
numbers. Pages added later are picked up automatically: the list is read when the tests are collected.

A second test per page checks that every relative link and image reference points at a file that exists,
and a third that every link to an anchor (``page.md#heading``) names a heading of that page.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent


class Block(NamedTuple):
    line: int  # line number of the first code line in the page
    code: str
    slow: bool


def doc_pages() -> list:
    """README.md and every Markdown page under docs/, as paths relative to the repository root."""
    pages = [ROOT / "README.md"] if (ROOT / "README.md").exists() else []
    pages += sorted((ROOT / "docs").rglob("*.md")) if (ROOT / "docs").is_dir() else []
    return [p.relative_to(ROOT).as_posix() for p in pages]


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)\s*(.*)$")


def parse_fences(text: str):
    """Yield (info word, rest of the fence line, first code line number, code) for each fenced block.

    As in CommonMark, a block closes at a line of the opening character, at least as many of them.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        i += 1
        if not m:
            continue
        marker, lang, rest = m.groups()
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
        start = i
        while i < len(lines) and not closing.match(lines[i]):
            i += 1
        yield lang, rest.strip(), start + 1, "\n".join(lines[start:i])
        i += 1  # past the closing fence


def python_blocks(page: str) -> list:
    blocks = []
    for lang, rest, line, code in parse_fences((ROOT / page).read_text(encoding="utf-8")):
        if lang == "python":
            blocks.append(Block(line, code, slow=rest.split()[:1] == ["slow"]))
    return blocks


def _run_params():
    params = []
    for page in doc_pages():
        if (ROOT / page).with_suffix(".ipynb").exists():
            continue   # a notebook's page: tests/test_notebooks.py runs the notebook made from it
        blocks = python_blocks(page)
        if not blocks:
            continue
        params.append(pytest.param(page, False, id=page))
        if any(b.slow for b in blocks):
            params.append(pytest.param(page, True, id=f"{page}::with-slow", marks=pytest.mark.slow))
    return params


@pytest.mark.parametrize("page, with_slow", _run_params())
def test_python_blocks_run(page, with_slow, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__", "__file__": str(ROOT / page)}
    ran = 0
    try:
        for block in python_blocks(page):
            if block.slow and not with_slow:
                continue
            # pad with blank lines so a traceback names the page and its real line number
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(ROOT / page), "exec"), namespace)  # noqa: S102 - the docs are ours
            ran += 1
    finally:
        plt.close("all")
    assert ran > 0, f"{page}: every python block is marked slow; run with --runslow"


# -- links -----------------------------------------------------------------------------------------

_INLINE_LINK = re.compile(r"(!?)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_HTML_REF = re.compile(r"<(img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _outside_fences(text: str) -> list:
    """The page's lines, with the fenced code blocks (fence lines included) blanked out."""
    lines = text.splitlines()
    for _, _, line, code in parse_fences(text):
        n = code.count("\n") + 1 if code else 0
        for k in range(line - 2, line - 1 + n + 1):  # fence lines and the code between them
            if 0 <= k < len(lines):
                lines[k] = ""
    return lines


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code spans (links there are examples, not links)."""
    return re.sub(r"(`+).*?\1", "", "\n".join(_outside_fences(text)), flags=re.DOTALL)


def _resolve(page: str, path: str) -> Path:
    """Where a link's path (without its #anchor) points, from the page; the page itself when empty."""
    path = unquote(path.split("?", 1)[0])
    if not path:
        return ROOT / page
    return (ROOT / path.lstrip("/")) if path.startswith("/") else ((ROOT / page).parent / path)


def _links(page: str) -> list:
    """(target, is_image) for every link and image reference of the page."""
    text = _prose((ROOT / page).read_text(encoding="utf-8"))
    found = [(m.group(2), m.group(1) == "!") for m in _INLINE_LINK.finditer(text)]
    found += [(m.group(1), False) for m in _REFERENCE_DEF.finditer(text)]
    found += [(m.group(2), m.group(1).lower() in ("img", "source")) for m in _HTML_REF.finditer(text)]
    return found


def relative_links(page: str) -> list:
    """(target, is_image) for every link of the page that points inside the repository."""
    return [(t, img) for t, img in _links(page) if not _SCHEME.match(t) and not t.startswith("#")]


_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")


def heading_anchors(path: Path) -> set:
    """The anchors GitHub gives a Markdown file's headings: the heading's text (link text for a link,
    code without its backticks) in lower case, with everything but letters, digits, spaces, hyphens and
    underscores dropped and spaces turned into hyphens; a repeated anchor gets -1, -2, ..."""
    anchors, seen = set(), {}
    for line in _outside_fences(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


@pytest.mark.parametrize("page", doc_pages())
def test_link_anchors_name_a_heading(page):
    """A link to ``page.md#anchor`` (or ``#anchor`` on the same page) must land on a heading."""
    broken = []
    for target, _ in _links(page):
        if _SCHEME.match(target) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        file = _resolve(page, path)
        if file.suffix == ".md" and file.is_file() and unquote(anchor) not in heading_anchors(file):
            broken.append(target)
    assert not broken, f"{page}: these anchors name no heading of the page they point at: {', '.join(broken)}"


@pytest.mark.parametrize("page", doc_pages())
def test_relative_links_resolve(page):
    broken = []
    for target, is_image in relative_links(page):
        resolved = _resolve(page, target.split("#", 1)[0])
        if not (resolved.is_file() if is_image else resolved.exists()):
            broken.append(f"{'image' if is_image else 'link'} {target!r}")
    assert not broken, f"{page}: these point at nothing (paths are relative to the page): {', '.join(broken)}"


# -- the parser itself ---------------------------------------------------------------------------

def test_parser_finds_blocks_slow_marks_and_links(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n"
        "See [the code](code.py), ![a plot](figures/p.png) and [the web](https://example.org).\n"
        "```python\n"
        "x = 1\n"
        "```\n"
        "````text\n"
        "```python\n"
        "not python: inside a text fence\n"
        "```\n"
        "````\n"
        "```python slow\n"
        "y = x + 1\n"
        "```\n"
        "`[not a link](nowhere.md)`\n"
        "[ref]: other.md\n",
        encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    blocks = python_blocks("page.md")
    assert blocks == [Block(4, "x = 1", False), Block(12, "y = x + 1", True)]
    assert sorted(relative_links("page.md")) == [("code.py", False), ("figures/p.png", True), ("other.md", False)]


def test_heading_anchors_follow_github(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# 3. The spiral: the bar, and more\n"
        "## The paper's `purity` (Figure 2) ##\n"
        "## Overview\n"
        "```text\n"
        "## not a heading: inside a fence\n"
        "```\n"
        "## Overview\n"
        "### See [the code](code.py)\n"
        "#no-space is no heading\n",
        encoding="utf-8")
    assert heading_anchors(page) == {"3-the-spiral-the-bar-and-more", "the-papers-purity-figure-2", "overview",
                                     "overview-1", "see-the-code"}


def test_the_docs_are_collected():
    assert "docs/autodiff.md" in doc_pages()
    assert python_blocks("docs/autodiff.md"), "docs/autodiff.md has no python blocks to run"
