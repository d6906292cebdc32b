"""Tests of gmvae_np.plots and experiments/plot.py on synthetic run directories.

Each test builds a run directory in tmp_path with the layout training writes (config.json,
metrics.jsonl, snapshot.npz), draws it, and reads the PNGs back: the expected files exist, they decode,
have the size the layout implies, are not blank, and stay small. Plotting runs on the host with NumPy
only, so these tests do not depend on the array backend.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from gmvae_np import plots
from gmvae_np.plots.images import _as_images, _display

REPO = pathlib.Path(__file__).resolve().parents[1]
PLOT_CLI = REPO / "experiments" / "plot.py"
MAX_BYTES = 300 * 1024


# --------------------------------------------------------------------------------------------------
# Synthetic run directories
# --------------------------------------------------------------------------------------------------
def _softmax(a):
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


def write_metrics(run_dir, epochs=12, labelled=True, eval_every=1, truncated=False):
    """metrics.jsonl with decaying losses and rising accuracies; optionally a half-written last line."""
    lines = []
    for e in range(1, epochs + 1):
        decay = np.exp(-e / 4.0)
        train = {"objective": 3.0 + 20.0 * decay, "neg_elbo": 2.8 + 19.0 * decay,
                 "reconstruction": 2.0 + 15.0 * decay, "conditional_prior": 0.5 + 3.0 * decay,
                 "w_prior": 0.2 + 0.5 * decay, "z_prior": 0.1 * decay,
                 "consistency_violation": 0.05 + 0.4 * decay}
        record = {"epoch": e, "step": 25 * e, "train": train}
        if e % eval_every == 0:
            ev = {"neg_elbo": 3.1 + 19.0 * decay, "reconstruction": 2.2 + 15.0 * decay,
                  "conditional_prior": 0.6 + 3.0 * decay}
            if labelled:
                ev.update(acc_paper=0.9 - 0.6 * decay, acc_hungarian=0.85 - 0.6 * decay,
                          nmi=0.8 - 0.5 * decay, ari=0.7 - 0.5 * decay, purity=0.9 - 0.5 * decay,
                          clusters_used=8)
            record["eval"] = ev
        lines.append(json.dumps(record))
    text = "\n".join(lines) + "\n"
    if truncated:
        text += json.dumps({"epoch": epochs + 1, "step": 1, "train": {"objective": 1.0}})[:25]
    (pathlib.Path(run_dir) / "metrics.jsonl").write_text(text)


def make_run(root, kind, *, labelled=True, truncated=False, k=None, dx=None, epochs=12, n=None,
             seed=0):
    """A run directory of one kind: 'spiral', 'mnist' (1x28x28), 'colour' (3x32x32), 'features' (20-D)."""
    rng = np.random.default_rng(seed)
    run = pathlib.Path(root) / f"{kind}-run"
    run.mkdir(parents=True)
    if kind == "spiral":
        k = k or 8
        dx = dx or 2
        dw = 2
        arms, per = 5, (n or 1000) // 5
        t = np.tile(np.linspace(0.3, 1.0, per), arms)
        arm = np.repeat(np.arange(arms), per)
        angle = 3.5 * t + 2 * np.pi * arm / arms
        y = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) + 0.02 * rng.normal(size=(arms * per, 2))
        labels = arm
        centres = 3.0 * rng.normal(size=(k, dx))
        logits = -((y[:, None, :] - 0.8 * np.stack([np.cos(2 * np.pi * np.arange(k) / k),
                                                  np.sin(2 * np.pi * np.arange(k) / k)], 1)) ** 2
                   ).sum(-1) * 20.0
        proba = _softmax(logits)
        pred = proba.argmax(1)
        x_mean = centres[pred] + 0.4 * rng.normal(size=(len(y), dx))
        w_mean = rng.normal(size=(len(y), dw))
        recon = y + 0.03 * rng.normal(size=y.shape)
        prior_mean = centres
        prior_logvar = np.log(0.4 ** 2) + 0.3 * rng.normal(size=(k, dx))
        samples = y[rng.integers(0, len(y), size=(k, 30))] + 0.02 * rng.normal(size=(k, 30, 2))
        input_shape = [2]
        likelihood = "gaussian"
    elif kind in ("mnist", "colour"):
        k = k or (14 if kind == "mnist" else 10)
        c, h = (1, 28) if kind == "mnist" else (3, 32)
        dx, dw = dx or 20, 10
        n = n or 300
        yy, xx = np.mgrid[0:h, 0:h] / (h - 1)
        labels = rng.integers(0, 10, size=n)
        # class-dependent blobs and stripes, values in [0, 1]
        cx, cy = 0.2 + 0.06 * labels, 0.8 - 0.06 * labels
        blob = np.exp(-((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2) / 0.03)
        img = np.repeat(blob[:, None], c, axis=1)
        if c == 3:
            img = img * rng.uniform(0.3, 1.0, size=(n, 3, 1, 1))
        y = np.clip(img + 0.05 * rng.random(img.shape), 0.0, 1.0)
        proba = _softmax(rng.normal(size=(n, k)) + 4.0 * np.eye(k)[labels % k])
        x_mean = rng.normal(size=(n, dx))
        w_mean = rng.normal(size=(n, dw))
        recon = np.clip(0.8 * y + 0.1, 0.0, 1.0)
        prior_mean = rng.normal(size=(k, dx))
        prior_logvar = rng.normal(size=(k, dx)) * 0.1
        samples = np.clip(y[rng.integers(0, n, size=(k, 10))] * 0.9, 0.0, 1.0)
        input_shape = [c, h, h]
        likelihood = "bernoulli"
    elif kind == "features":
        k = k or 10
        dx, dw, d = dx or 10, 5, 20
        n = n or 800
        labels = rng.integers(0, 10, size=n)
        means = 3.0 * rng.normal(size=(10, d))
        y = means[labels] + rng.normal(size=(n, d))
        proba = _softmax(rng.normal(size=(n, k)) + 3.0 * np.eye(k)[labels % k])
        x_mean = rng.normal(size=(n, dx))
        w_mean = rng.normal(size=(n, dw))
        recon = y + 0.3 * rng.normal(size=y.shape)
        prior_mean = rng.normal(size=(k, dx))
        prior_logvar = np.zeros((k, dx))
        samples = rng.normal(size=(k, 5, d))
        input_shape = [d]
        likelihood = "gaussian"
    else:
        raise ValueError(kind)
    config = {"experiment": kind, "settings": {"K": k, "Dx": dx, "Dw": dw, "variant": "cv",
                                               "likelihood": likelihood, "input_shape": input_shape,
                                               "epochs": epochs},
              "version": "0.1.0", "backend": "numpy", "device": "cpu", "seed": seed}
    (run / "config.json").write_text(json.dumps(config))
    write_metrics(run, epochs=epochs, labelled=labelled, truncated=truncated)
    arrays = dict(y=y.astype(np.float32), proba=proba.astype(np.float32),
                  x_mean=x_mean.astype(np.float32), w_mean=w_mean.astype(np.float32),
                  recon=recon.astype(np.float32), prior_mean=prior_mean.astype(np.float32),
                  prior_logvar=prior_logvar.astype(np.float32), samples=samples.astype(np.float32),
                  epoch=np.asarray(epochs))
    if labelled:
        arrays["labels"] = labels.astype(np.int64)
    np.savez(run / "snapshot.npz", **arrays)
    return run


def check_png(path, min_hw=(200, 200)):
    """Decode a PNG; assert it is RGB(A), at least min_hw pixels, not blank, and under 300 KB."""
    path = pathlib.Path(path)
    assert path.is_file(), path
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4), img.shape
    assert img.shape[0] >= min_hw[0] and img.shape[1] >= min_hw[1], img.shape
    assert float(img[..., :3].var()) > 1e-4, f"{path.name} is blank"
    return img


def names(paths):
    return sorted(p.name for p in paths)


# --------------------------------------------------------------------------------------------------
# draw_run on every kind of data
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_spiral_run_draws_curves_latent_and_recon(tmp_path, labelled):
    run = make_run(tmp_path, "spiral", labelled=labelled, n=500)
    paths = plots.draw_run(run)
    assert names(paths) == ["latent.png", "learning_curves.png", "recon.png"]
    assert all(p.parent == run / "figures" for p in paths)
    latent = check_png(run / "figures" / "latent.png")
    assert latent.shape[1] > 2 * latent.shape[0], "three side-by-side panels should be wide"
    check_png(run / "figures" / "recon.png")
    check_png(run / "figures" / "learning_curves.png")
    assert not list((run / "figures").glob("*.tmp")), "temporary files were left behind"


def test_mnist_like_images_draw_samples_grid_and_recon_pairs(tmp_path):
    run = make_run(tmp_path, "mnist")
    paths = plots.draw_run(run)
    assert names(paths) == ["learning_curves.png", "recon.png", "samples.png"]
    samples = check_png(run / "figures" / "samples.png")
    # 14 rows of 28 px images with 2 px gaps, drawn at >= 1 screen pixel per image pixel
    assert samples.shape[0] >= 14 * 30 - 2
    check_png(run / "figures" / "recon.png")


def test_colour_images_are_drawn_in_colour(tmp_path):
    run = make_run(tmp_path, "colour", labelled=False)
    plots.draw_run(run)
    img = check_png(run / "figures" / "samples.png")
    rgb = img[..., :3]
    assert float(np.abs(rgb[..., 0] - rgb[..., 2]).max()) > 0.1, "colour images came out grey"
    check_png(run / "figures" / "recon.png")


def test_images_stored_flat_are_reshaped_by_input_shape(tmp_path):
    run = make_run(tmp_path, "mnist")
    with np.load(run / "snapshot.npz") as npz:
        arrays = dict(npz)
    arrays["y"] = arrays["y"].reshape(len(arrays["y"]), -1)
    arrays["recon"] = arrays["recon"].reshape(len(arrays["recon"]), -1)
    np.savez(run / "snapshot.npz", **arrays)
    assert names(plots.draw_run(run)) == ["learning_curves.png", "recon.png", "samples.png"]


def test_gaussian_images_outside_unit_range_are_rescaled(tmp_path):
    run = make_run(tmp_path, "mnist")
    with np.load(run / "snapshot.npz") as npz:
        arrays = dict(npz)
    for key in ("y", "recon", "samples"):
        arrays[key] = (arrays[key] - 0.5) * 6.0      # z-scored-like pixels
    np.savez(run / "snapshot.npz", **arrays)
    r = plots.read_run(run)
    imgs, note = _display(_as_images(r.snapshot["samples"], (1, 28, 28), "samples"))
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0 and "min-max" in note
    plots.draw_run(run)
    check_png(run / "figures" / "samples.png")


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_feature_vectors_draw_usage_and_pca(tmp_path, labelled):
    run = make_run(tmp_path, "features", labelled=labelled)
    assert names(plots.draw_run(run)) == ["clusters.png", "learning_curves.png"]
    img = check_png(run / "figures" / "clusters.png")
    # usage bars and PCA by cluster, plus PCA by true label when there are labels
    assert img.shape[1] > (2.5 if labelled else 1.6) * img.shape[0]


def test_many_clusters_and_high_dimensional_latent(tmp_path):
    # K = 30 takes the continuous colour map and no legend; Dx = 5 is projected on its first two dims
    run = make_run(tmp_path, "spiral", k=30, dx=5, n=500)
    check_png(plots.draw_latent(plots.read_run(run), tmp_path / "latent.png"))


def add_diagnostics(run_dir, K=8, collapse=False):
    """Give each record of metrics.jsonl the diagnostics training writes (gmvae_np.diagnostics)."""
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        e = r["epoch"]
        used = 3 if collapse else K
        d = {"max_q": 1 - 0.5 * np.exp(-e / 3), "batch_entropy": np.log(used) - 0.01 * e,
             "kl_gap": 4.0 * e, "clusters_used": used}
        r["diagnostics"] = d
        if "eval" in r:
            r["eval"].update({k: v for k, v in d.items()})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_diagnostics_are_drawn_for_one_run_and_for_several(tmp_path):
    run = make_run(tmp_path / "a", "spiral", n=500)
    add_diagnostics(run)
    assert "diagnostics.png" in names(plots.draw_run(run))
    one = check_png(run / "figures" / "diagnostics.png")
    assert one.shape[1] > 3 * one.shape[0], "four side-by-side panels should be wide"
    other = make_run(tmp_path / "b", "spiral", n=500)
    add_diagnostics(other, collapse=True)
    both = plots.draw_diagnostics({"balanced": plots.read_run(run), "collapsed": plots.read_run(other)},
                                  tmp_path / "both.png", title="two runs")
    check_png(both)
    assert plots.draw_diagnostics(plots.read_run(make_run(tmp_path / "c", "spiral", n=500)),
                                  tmp_path / "none.png") is None      # a run from before the diagnostics


def test_truncated_last_metrics_line_is_tolerated(tmp_path):
    run = make_run(tmp_path, "features", truncated=True, epochs=7, n=100)
    records = plots.read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == list(range(1, 8))
    check_png(plots.draw_learning_curves(plots.read_run(run), tmp_path / "lc.png"))


def test_repeated_epochs_keep_the_later_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"epoch": 1, "train": {"objective": 5.0}}, {"epoch": 2, "train": {"objective": 4.0}},
            {"epoch": 2, "train": {"objective": 3.0}}, "not json", {"epoch": 3, "train": {}}]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    records = plots.read_metrics(path)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[1]["train"]["objective"] == 3.0


def test_run_without_snapshot_draws_only_curves_and_empty_run_draws_nothing(tmp_path):
    run = make_run(tmp_path, "spiral", n=100)
    (run / "snapshot.npz").unlink()
    assert names(plots.draw_run(run)) == ["learning_curves.png"]
    (run / "metrics.jsonl").write_text("")
    assert plots.draw_run(run) == []


def test_one_epoch_and_metrics_only_every_other_epoch(tmp_path):
    run = make_run(tmp_path, "features", epochs=1, n=100)
    check_png(plots.draw_learning_curves(plots.read_run(run), tmp_path / "one.png"))
    write_metrics(run, epochs=9, eval_every=3)
    check_png(plots.draw_learning_curves(plots.read_run(run), tmp_path / "lc.png"))


def test_redraw_replaces_figures_atomically(tmp_path):
    run = make_run(tmp_path, "features", n=200)
    first = plots.draw_run(run)
    inode = {p.name: os.stat(p).st_ino for p in first}
    second = plots.draw_run(run)
    # os.replace puts a new file in place; it never rewrites the old one in place
    assert all(os.stat(p).st_ino != inode[p.name] for p in second)
    assert sorted(os.listdir(run / "figures")) == names(second)


def test_cluster_colors_are_distinct_up_to_twenty():
    for k in (1, 8, 10, 14, 20, 50):
        c = plots.cluster_colors(k)
        assert c.shape == (k, 4)
        assert len({tuple(np.round(row, 4)) for row in c}) == k


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("file", "is a file"), ("no_config", "no config.json"),
    ("bad_config", "not valid JSON"), ("bad_snapshot", "cannot be read"),
    ("bad_proba", "'proba' has shape"), ("no_y", "no 'y' array"), ("series", "pass one of them"),
    ("bad_shape", "input_shape"), ("wrong_image_size", "does not hold images"),
])
def test_bad_run_directories_raise_one_clear_error(tmp_path, case, message):
    target = tmp_path / "run"
    if case == "file":
        target.write_text("x")
    elif case == "series":                       # --seeds 1-2 writes RUN_DIR/seed1, RUN_DIR/seed2
        target.mkdir()
        for seed in ("seed1", "seed2"):
            make_run(tmp_path / seed, "features", n=20).rename(target / seed)
    elif case != "missing":
        target = make_run(tmp_path, "spiral", n=50)
        if case == "no_config":
            (target / "config.json").unlink()
        elif case == "bad_config":
            (target / "config.json").write_text("{not json")
        elif case in ("bad_shape", "wrong_image_size"):
            config = json.loads((target / "config.json").read_text())
            config["settings"]["input_shape"] = "2" if case == "bad_shape" else [1, 28, 28]
            (target / "config.json").write_text(json.dumps(config))
        elif case == "bad_snapshot":
            (target / "snapshot.npz").write_bytes(b"PK\x03\x04 truncated")
        else:
            with np.load(target / "snapshot.npz") as npz:
                arrays = dict(npz)
            if case == "bad_proba":
                arrays["proba"] = arrays["proba"][:10]
            else:
                del arrays["y"]
            np.savez(target / "snapshot.npz", **arrays)
    with pytest.raises(plots.RunDirError, match=message) as info:
        plots.draw_run(target)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# experiments/plot.py
# --------------------------------------------------------------------------------------------------
def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, str(PLOT_CLI), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("case", ["missing", "not_a_run"])
def test_cli_error_is_one_line_and_exit_code_two(tmp_path, case):
    target = tmp_path / "nope"
    if case == "not_a_run":
        target.mkdir()
    result = run_cli(target)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_draws_a_run(tmp_path):
    run = make_run(tmp_path, "features", n=200)
    result = run_cli(run)
    assert result.returncode == 0, result.stderr
    assert "clusters.png" in result.stdout
    check_png(run / "figures" / "clusters.png")


def test_cli_follow_stops_after_a_finished_run_settles(tmp_path):
    run = make_run(tmp_path, "features", n=200, epochs=3)
    result = run_cli(run, "--follow", "--interval", "0.1", "--settle", "0.3", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout
    check_png(run / "figures" / "learning_curves.png")


@pytest.mark.parametrize("kind", ["spiral", "features", "mnist"])
def test_degenerate_snapshots_still_draw(tmp_path, kind):
    # one cluster, three examples, a non-finite latent mean and a huge prior variance
    run = make_run(tmp_path, kind, k=1, n=5)
    with np.load(run / "snapshot.npz") as npz:
        arrays = {key: value[:3] if key in ("y", "labels", "proba", "x_mean", "w_mean", "recon")
                  else value for key, value in dict(npz).items()}
    arrays["x_mean"][0, 0] = np.nan
    arrays["prior_logvar"][:] = 500.0
    np.savez(run / "snapshot.npz", **arrays)
    for path in plots.draw_run(run):
        check_png(path, min_hw=(100, 100))


def test_cli_follow_redraws_on_change_and_exits_cleanly_on_ctrl_c(tmp_path):
    import signal
    import time

    run = make_run(tmp_path, "features", n=200, epochs=3)
    config = json.loads((run / "config.json").read_text())
    config["settings"]["epochs"] = 50                      # still training: follow must not stop
    (run / "config.json").write_text(json.dumps(config))
    # A shell's background jobs inherit SIGINT ignored; give the child the terminal's default back.
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", str(PLOT_CLI), str(run), "--follow", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        figures = [run / "figures" / "learning_curves.png", run / "figures" / "clusters.png"]
        deadline = time.monotonic() + 30
        while not all(f.exists() for f in figures) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(f.exists() for f in figures), "the first drawing never appeared"
        first = [f.stat().st_ino for f in figures]
        write_metrics(run, epochs=4)                       # training logs another epoch
        while any(f.stat().st_ino == i for f, i in zip(figures, first)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(f.stat().st_ino != i for f, i in zip(figures, first)), \
            "the figures were not redrawn after metrics.jsonl changed"
        assert proc.poll() is None, "follow stopped although the run is not finished"
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=15)
            raise AssertionError(err[-4000:])
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out.count("wrote") >= 2
    check_png(figures[0])
