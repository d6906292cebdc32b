"""Tests of docs/make_figures.py, the one script that redraws the docs' figures, and of the figures.

The script is run on tiny runs trained here (a few epochs of a small spiral and a small MNIST-shaped
image set), so it is tested without the long runs the real figures come from. The committed figures
are checked for size and for being used by a page.
"""
from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gmvae_np.data import Dataset
from gmvae_np.presets import preset
from gmvae_np.restarts import train_with_restarts
from gmvae_np.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_figures():
    return _load_script()


def _tiny_spiral(run_dir: Path, **changes) -> None:
    settings = preset("spiral", epochs=2, n_per_arm=40, batch_size=50, hidden=8, plots=False, **changes)
    Trainer(settings, run_dir, verbose=False).run()


def _tiny_image_data() -> Dataset:
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(60, 1, 28, 28)) > 0.5).astype(np.float32)
    return Dataset(name="mnist", x_train=x[:50], y_train=np.arange(50) % 10, x_test=x[50:],
                   y_test=np.arange(10), likelihood="bernoulli").flat()


def _tiny_images(run_dir: Path) -> None:
    settings = preset("mnist_fc", epochs=1, K=4, Dx=3, Dw=2, hidden=8, batch_size=25, plots=False)
    Trainer(settings, run_dir, dataset=_tiny_image_data(), verbose=False).run()


def _tiny_recipe_series(root: Path, seeds=(1, 2)) -> None:
    root.mkdir(parents=True)
    (root / "seeds.json").write_text(json.dumps({"seeds": list(seeds)}))
    for seed in seeds:
        settings = preset("mnist_recipe", epochs=2, restarts=2, restart_epochs=1, K=4, Dx=3, Dw=2, hidden=8,
                          batch_size=25, plots=False, seed=seed)
        train_with_restarts(settings, root / f"seed{seed}", dataset=_tiny_image_data(), verbose=False,
                            out=io.StringIO())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_figures):
    root = tmp_path_factory.mktemp("runs")
    for name in ["spiral", *make_figures.CV_ABLATION]:
        _tiny_spiral(root / name)
    for name in make_figures.MI_ABLATION:
        _tiny_spiral(root / name, variant="mi")
    _tiny_images(root / "mnist_fc-K16-M1")
    _tiny_images(root / "mnist_fc-K10-M1")
    for name in make_figures.DIAGNOSIS:
        _tiny_images(root / name)
    _tiny_recipe_series(root / "mnist_recipe-K10")
    _tiny_recipe_series(root / "mnist_recipe-K10-entropy")
    _tiny_images(root / "screen-K16-recipe-s1")        # one screen and one long run of the invariance table
    _tiny_images(root / "long-K16-agree5-s2")
    faithful = root / "mnist_fc-K10-seeds2-3"         # a series with one of its two seeds trained
    _tiny_images(faithful / "seed2")
    (faithful / "seeds.json").write_text(json.dumps({"seeds": [2, 3]}))
    return root


def test_draws_every_figure_from_run_directories(make_figures, runs, tmp_path, capsys):
    out = tmp_path / "figures"
    code = make_figures.main(["--runs", str(runs), "--out", str(out), "--tables"])
    printed = capsys.readouterr()
    # two MNIST runs are left out on purpose: the script names them with their commands and exits 1
    assert code == 1
    assert "mnist_fc-K10-M10" in printed.err and "./run.sh mnist-fc --K 10 --mc 10" in printed.err
    expected = {"spiral_small.png", "spiral_latent.png", "spiral_recon.png", "spiral_curves.png",
                "ablation_cv.png", "ablation_mi.png", "mnist_fc_samples.png", "mnist_fc_curves.png",
                "mnist_diagnosis.png", "mnist_recipe_curves.png", "mnist_recipe_samples.png"}
    assert {p.name for p in out.iterdir()} == expected
    for path in out.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path.name
        assert path.stat().st_size < make_figures.MAX_BYTES, path.name
    # the tables hold one row per run, with the run's own numbers
    for caption in ("η=1, α=0", "η=0, α=0", "η=0, α=1", "η=1, α=2 (the preset)", "mi, λ=0.5", "K=16, M=1"):
        assert f"| {caption} |" in printed.out
    assert "mnist_fc-K16-M1 per epoch" in printed.out
    assert "| faithful + balance 10 | 1 |" in printed.out and "mnist_recipe-K16" in printed.err
    rows = [line for line in printed.out.splitlines() if line.startswith("| recipe, K=10, kept by train_elbo | ")]
    assert [line.split("|")[2].strip() for line in rows] == ["1", "2", "1", "2"]   # results, then selection
    assert "mean ± std over 2 seeds" in printed.out and "kept by train_elbo" in printed.out
    # the faithful preset: seed 1 from its own run, seed 2 from the series, seed 3 not trained yet
    table = printed.out.split("small moves of the image")[1]
    assert re.search(r"\| K=16, the recipe \| 1 \| 1 \| \d+\.\d \| \d+ \| \d+ % \| \d+ % \|", table)
    assert "| K=16, invariance weight 5, trained on | 2 | 1 |" in table
    assert "weight 1" not in table and "| K=16, the recipe, trained on" not in table    # runs not there
    assert "| faithful mnist_fc, K=10 | 1 | 1 |" in printed.out
    assert "| faithful mnist_fc, K=10 | 2 | 1 |" in printed.out
    assert "| faithful mnist_fc, K=10 | 3 |" not in printed.out
    assert "mean ± std over the 2 seeds that ran every epoch" in printed.out
    assert "| recipe, K=10 (the preset) (10 test images) | 2 |" in printed.out     # errors by digit
    assert "| recipe, K=10 (the preset) | 2 | " in printed.out and "gain from epoch" in printed.out   # climb
    assert "| recipe, K=10 (the preset) (10 test images) | 2 | " in printed.out.split("small shifts")[1]
    assert re.search(r"\| recipe, K=10 \(the preset\) \| 2 \| \d+\.\d \| \d+\.\d \| nan \| nan \|", printed.out)


def test_digit_errors_count_each_digit_outside_the_clusters_it_labels(make_figures):
    # cluster 0: three 0s and a 1 (labelled 0); cluster 1: two 1s (labelled 1); cluster 2: two 2s and a 3
    pred = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3])
    errors, clusters = make_figures.digit_errors(np.eye(4)[pred], labels)
    np.testing.assert_allclose(errors[:4], [0.0, 1 / 3, 0.0, 1.0])
    assert clusters.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert np.isnan(errors[4:]).all()      # digits absent from the sample have no error rate


def test_moved_by_shifts_counts_the_images_whose_cluster_changes(make_figures):
    class RightHalf:      # cluster 1 when the brightest pixel is in column 14 or right of it
        config = type("Config", (), {"input_shape": (1, 28, 28)})

        def predict(self, y):
            columns = np.argmax(y.reshape(len(y), 784), axis=1) % 28
            return type("T", (), {"data": (columns >= 14).astype(np.int64)})

    images = np.zeros((2, 1, 28, 28), dtype=np.float32)
    images[0, 0, 10, 14] = 1.0        # moves to cluster 0 when shifted left, by one pixel or two
    images[1, 0, 10, 3] = 1.0         # stays in cluster 0 whichever way it moves
    assert make_figures.moved_by_shifts(RightHalf(), images) == [pytest.approx(0.125), pytest.approx(0.125)]


def test_code_probes_read_separated_codes_and_see_a_clustering_that_merges_two_digits(make_figures):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    codes = 4.0 * np.eye(10)[labels] + 0.3 * rng.standard_normal((200, 10))
    merged = np.where(labels == 9, 4, labels)          # the model puts the 9s with the 4s
    found = make_figures.code_probes(codes, np.eye(10)[merged], labels)
    assert found["probe"] == pytest.approx(1.0) and found["probe_4_9"] == pytest.approx(1.0)
    assert found["kmeans"] == pytest.approx(1.0)
    assert found["model"] == pytest.approx(0.9)


def test_epoch_table_keeps_the_first_epochs_then_every_tenth_and_the_last(make_figures, tmp_path):
    settings = preset("spiral", epochs=25, n_per_arm=10, batch_size=50, hidden=4, plots=False)
    Trainer(settings, tmp_path / "long", verbose=False).run()
    rows = make_figures.epoch_table(make_figures.plots.read_run(tmp_path / "long")).splitlines()[2:]
    assert [int(row.split("|")[1]) for row in rows] == [*range(1, 11), 20, 25]
    assert all(len(row.split("|")) == 10 for row in rows)     # eight columns, clusters used among them


def test_missing_runs_name_their_commands(make_figures, tmp_path, capsys):
    code = make_figures.main(["--runs", str(tmp_path / "nothing"), "--out", str(tmp_path / "figs")])
    err = capsys.readouterr().err
    assert code == 1
    for name, (command, _) in make_figures.RUNS.items():
        assert f"{command} --out {tmp_path / 'nothing' / name}" in err


def test_commands_option_lists_every_run(make_figures, capsys):
    assert make_figures.main(["--commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(make_figures.RUNS)
    assert all(line.startswith("./run.sh ") for line in lines)


def test_committed_figures_are_small_and_used():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages if p.exists())
    used = set(re.findall(r"figures/([\w.-]+\.png)", text))
    present = {p.name for p in FIGURES.glob("*.png")}
    assert present, "docs/figures holds no figures; run python docs/make_figures.py"
    assert present <= used, f"figures no page shows: {sorted(present - used)}"
    for path in FIGURES.glob("*.png"):
        assert path.stat().st_size < 300_000, f"{path.name} is {path.stat().st_size:,} bytes; keep figures < 300 KB"


def test_spiral_curves_keep_an_evaluation_every_25_epochs_and_the_last(make_figures, tmp_path):
    run = make_figures.plots.Run(tmp_path, {}, [{"epoch": e, "train": {"neg_elbo": 1.0}, "eval": {"neg_elbo": 0.5}}
                                                for e in range(1, 61)])
    sparse = make_figures.sparse_evaluations(run)
    assert [m["epoch"] for m in sparse.metrics if "eval" in m] == [25, 50, 60]
    assert all("train" in m for m in sparse.metrics) and len(sparse.metrics) == 60
    assert all("eval" in m for m in run.metrics), "the run read from disk must be left as it was"


# -- the graph's candidate spaces (docs/neighbour_study.py, space_study) -----------------------------------

def test_space_study_scores_a_separating_space_above_a_mixing_one(make_figures):
    """Two classes told apart by the first column only: the graph in that column joins each row to its own
    class and its partition finds them; the graph in the noise columns does neither."""
    study = make_figures.neighbour_study
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 2
    x = np.concatenate([10.0 * labels[:, None] + rng.normal(size=(120, 1)), rng.normal(size=(120, 6))], axis=1)
    rows = study.space_study(x, labels, {"signal": ("--flag", lambda x: x[:, :1]), "noise": ("", lambda x: x[:, 1:])},
                             k=5, K=2)
    signal, noise = rows
    assert signal["share"] == 1.0 and signal["partition"] == 1.0 and signal["dims"] == 1
    assert 0.3 < noise["share"] < 0.7 and noise["partition"] < 0.75 and noise["dims"] == 6
    table = study.space_table(rows).splitlines()
    assert len(table) == 4 and "| signal | `--flag` | 1 | 100.0 % | 100.0 % |" in table[2]
    assert "| noise | (none) | 6 |" in table[3]


def test_space_study_command_on_a_small_image_set(make_figures, tmp_path, capsys):
    """`python docs/neighbour_study.py --spaces fashion-mnist --data-dir DIR` measures every candidate space
    (the autoencoder's too) on the files given; a folder without them is one error line and exit code 2."""
    folder = _fashion_folder(tmp_path)
    study = make_figures.neighbour_study
    assert study.main(["--spaces", "fashion-mnist", "--data-dir", str(folder), "--no-partition"]) == 0
    lines = capsys.readouterr().out.splitlines()
    spaces = study.candidate_spaces((1, 28, 28))
    assert len(lines) == 2 + len(spaces) and [ln.split(" | ")[0][2:] for ln in lines[2:]] == list(spaces)
    assert all(0.0 <= float(ln.split(" | ")[3].rstrip(" %")) <= 100.0 for ln in lines[2:])
    assert study.main(["--spaces", "fashion-mnist", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: Fashion-MNIST: data directory") and "does not exist" in err[0]


def test_cluster_contents_counts_the_classes_of_each_cluster(make_figures, tmp_path, capsys):
    """Each line: a cluster of the run's last checkpoint, its size, the classes above a tenth of it; the sizes
    add up to the rows. A folder that is no run: one error line and exit code 2 from the command line."""
    import re

    study = make_figures.neighbour_study
    _tiny_images(tmp_path / "run")
    data = _tiny_image_data()
    clusters = study.run_clusters(tmp_path / "run", data.x_test)
    lines = study.cluster_contents(tmp_path / "run", data.x_test, data.y_test).splitlines()
    sizes = [int(re.match(r"- cluster (\d+), (\d+) rows: ", ln).group(2)) for ln in lines]
    assert sum(sizes) == 10 and len(lines) == len(set(clusters.tolist()))
    first = int(re.match(r"- cluster (\d+)", lines[0]).group(1))
    assert sizes[0] == int(np.sum(clusters == first))
    assert study.main(["--spaces", "fashion-mnist", "--data-dir", str(_fashion_folder(tmp_path)),
                       "--clusters", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --clusters {tmp_path / 'nowhere'}: not a finished run")


def _fashion_folder(tmp_path: Path) -> Path:
    import debs

    folder = tmp_path / "fashion"
    folder.mkdir(exist_ok=True)
    for name, data in debs.fashion_files(n_train=40, n_test=10).items():
        (folder / name).write_bytes(data)
    return folder
