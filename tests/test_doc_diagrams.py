"""docs/make_diagrams.py, the one command that redraws the teaching diagrams, runs and writes small PNGs
that are committed and shown by a page."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("make_diagrams", ROOT / "docs" / "make_diagrams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_diagram_is_drawn_small_committed_and_shown(tmp_path, capsys):
    make_diagrams = _load_script()
    assert make_diagrams.main(["--out", str(tmp_path)]) == 0
    pages = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    shown = set(re.findall(r"figures/([\w.-]+\.png)", pages))
    for name in make_diagrams.DIAGRAMS:
        path = tmp_path / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size < make_diagrams.MAX_BYTES, name
        assert (ROOT / "docs" / "figures" / name).is_file(), f"{name}: run python docs/make_diagrams.py and commit it"
        assert name in shown, f"{name} is drawn but no page shows it"
    assert len(capsys.readouterr().out.splitlines()) == len(make_diagrams.DIAGRAMS)
