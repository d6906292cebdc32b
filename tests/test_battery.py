"""Tests of benchmarks/battery.py: the estimator on the clustering benchmark suite beside the baselines.

Run on a small root the test writes in the suite's layout (two batteries, noise points labelled 0), so
nothing outside the repository is read: the scores, the table, the JSON, the page and the figure, and the
one-line refusals of a root without sets, a set without labels, and a setting the estimator lacks.
"""
import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "epochs=3", "--set", "hidden=16", "--set", "Dx=2", "--set", "Dw=2"]


@pytest.fixture(scope="module")
def battery():
    spec = importlib.util.spec_from_file_location("battery", ROOT / "benchmarks" / "battery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, name: str, x: np.ndarray, labels: np.ndarray, with_labels: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"{name}.data.gz", "wt") as f:
        np.savetxt(f, x)
    if with_labels:
        with gzip.open(folder / f"{name}.labels0.gz", "wt") as f:
            np.savetxt(f, labels, fmt="%d")


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal((0, 0), 0.3, (60, 2)), rng.normal((5, 5), 0.3, (60, 2))])
    labels = np.repeat([1, 2], 60)
    labels[:3] = 0                                   # three noise points: left out of the score
    _write(tmp_path / "wut", "z3", blobs, labels)     # one of the hard sets the figure draws
    three = np.concatenate([blobs, rng.normal((10, 0), 0.3, (40, 2))])
    _write(tmp_path / "other", "three", three, np.concatenate([np.repeat([1, 2], 60), np.full(40, 3)]))
    big = rng.normal(size=(300, 2))
    _write(tmp_path / "other", "big", big, np.repeat([1, 2], 150))
    return tmp_path


def test_sets_are_found_sorted_and_the_large_ones_left_out(battery, root):
    found = [name for name, _, _ in battery.find_sets(root, max_n=200)]
    assert found == ["other/three", "wut/z3"]
    assert [n for n, _, _ in battery.find_sets(root, max_n=0)] == ["other/big", "other/three", "wut/z3"]


def test_the_run_scores_every_method_on_the_non_noise_points(battery, root, tmp_path, capsys):
    out = tmp_path / "out.json"
    page = tmp_path / "page.md"
    page.write_text(f"before\n{battery.BEGIN}\nold\n{battery.END}\nafter\n")
    figure = tmp_path / "fig.png"
    code = battery.main(["--root", str(root), "--max-n", "200", "--methods", "GMVAEClustering,KMeans,Ward",
                         "--json", str(out), "--page", str(page), "--figure", str(figure), *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| wut/z3 |" in printed and "**median**" in printed and "worst set against the baselines' mean" in printed
    report = json.loads(out.read_text())
    assert report["settings"] == {"epochs": 3, "hidden": 16, "Dx": 2, "Dw": 2}
    z3 = report["results"]["wut/z3"]
    assert z3["KMeans"]["nca"] == pytest.approx(1.0) and z3["Ward"]["nca"] == pytest.approx(1.0)
    assert len(z3["GMVAEClustering"]["labels"]) == 120 and z3["GMVAEClustering"]["seconds"] > 0
    assert set(report["summary"]) == {"GMVAEClustering", "KMeans", "Ward", "gap"}
    gap = report["summary"]["gap"]["per_set"]["wut/z3"]
    assert gap == pytest.approx(z3["GMVAEClustering"]["nca"] - 1.0)
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text and "| wut/z3 |" in text
    assert figure.stat().st_size > 1000


def test_a_baseline_keeps_the_better_of_raw_and_z_scored(battery):
    """Two groups apart along a column of small range: KMeans on the raw rows splits the wide column,
    on the z-scored rows it finds the groups; the battery keeps the z-scored score and says so."""
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(0, 100, 200), np.repeat([0.0, 1.0], 100) + rng.normal(0, 0.05, 200)])
    y = np.repeat([1, 2], 100)
    result = battery.fit_one("KMeans", x, y, 0, {})
    assert result["space"] == "z-scored" and result["nca"] == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["no root", "empty root", "no labels", "unknown set", "bad setting"])
def test_bad_input_is_one_line_and_exit_2(battery, root, tmp_path, capsys, case):
    args = {"no root": ["--root", str(tmp_path / "nowhere")],
            "empty root": ["--root", str(tmp_path / "empty")],
            "no labels": ["--root", str(tmp_path / "bare")],
            "unknown set": ["--root", str(root), "--sets", "wut/nothing"],
            "bad setting": ["--root", str(root), "--set", "no_such_setting=3"]}[case]
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "bare" / "b", "s", np.zeros((4, 2)), np.ones(4), with_labels=False)
    assert battery.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("battery: ") and "\n" not in err and "Traceback" not in err
    assert {"no root": "no such folder", "empty root": "holds no set", "no labels": "has no labels file",
            "unknown set": "wut/nothing not under", "bad setting": "no_such_setting"}[case] in err
