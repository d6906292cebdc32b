"""Tests of benchmarks/gallery.py, the script behind docs/gallery.md's figure and table.

A smoke run (--quick: two small data sets, two seeds, three epochs) checks that the script measures
every method and writes its table into a page; the committed page is checked for a full table.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from blas import one_blas_thread

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gallery():
    spec = importlib.util.spec_from_file_location("gallery", ROOT / "benchmarks" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_sets_are_scikit_learns_and_the_spiral(gallery):
    sets = gallery.toy_sets(100)
    assert list(sets) == ["noisy circles", "noisy moons", "varied variances", "anisotropic", "no structure",
                          "spiral (5 arms)", "spiral, 2 rad"]
    for X, y, k in sets.values():
        assert X.shape == (100, 2) and (y is None or len(np.unique(y)) == k)


def test_quick_table_is_written_into_the_page(gallery, tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{gallery.BEGIN}\nold\n{gallery.END}\nafter\n")
    with one_blas_thread():
        assert gallery.main(["--table", "--quick", "--page", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| iris") or line.startswith("| wine")]
    assert len(rows) == 2 * len(gallery.METHODS) and all(" ± " in row for row in rows)
    assert "over seeds 0 to 1" in text



def test_the_committed_page_holds_the_full_table(gallery):
    text = (ROOT / "docs" / "gallery.md").read_text(encoding="utf-8")
    table = text[text.index(gallery.BEGIN):text.index(gallery.END)]
    for name in gallery.REAL:
        for method in gallery.METHODS:
            assert sum(line.startswith(f"| {name} (") and f"| {method} |" in line
                       for line in table.splitlines()) == 1, (name, method)
    assert "figures/gallery.png" in text and (ROOT / "docs" / "figures" / "gallery.png").is_file()
