"""Tests for gmvae_np.train: the run directory contract, exact resume, NaN stops, determinism, odd settings.

Every run here is tiny (a spiral of a few hundred points, a few epochs) so the file stays fast. The
central promise is checked bit for bit on NumPy: a run interrupted anywhere (mid-epoch, at an epoch
boundary, before its first step) and resumed ends with exactly the parameters, optimizer state and
metrics.jsonl of a run that was never interrupted. One test sends real SIGINT/SIGTERM to a training
process; the others interrupt in-process through the same flag the signal handler sets.
"""
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from blas import one_blas_thread

import autograd_lite as ag
from gmvae_np import model as model_module
from gmvae_np import stops
from gmvae_np.checkpoint import CheckpointError, load_checkpoint
from gmvae_np.data import Dataset
from gmvae_np.presets import SettingsError, preset
from gmvae_np.diagnostics import DIAGNOSTICS
from gmvae_np.train import (TRAIN_KEYS, RunDirError, Trainer, TrainingDiverged, TrainingInterrupted,
                            blas_threads, read_settings, train)
from strategies import BACKENDS

REPO = Path(__file__).resolve().parents[1]
CLUSTER_KEYS = ("acc_paper", "acc_hungarian", "nmi", "ari", "purity", "clusters_used")


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Module scope, so module fixtures run under it too (see tests/blas.py)."""
    with one_blas_thread():
        yield



def tiny(**kw):
    """A spiral run of 200 points: 12 steps of 16 per epoch (8 rows dropped), 3 epochs."""
    base = dict(n_per_arm=40, epochs=3, batch_size=16, lr=3e-3, plots=False, log_every=5, seed=3)
    base.update(kw)
    return preset("spiral", **base)


def quiet(settings, run_dir=None, **kw):
    kw.setdefault("out", io.StringIO())
    kw.setdefault("err", io.StringIO())
    return Trainer(settings, run_dir, **kw)


def final_state(run_dir):
    ckpt = load_checkpoint(Path(run_dir) / "checkpoints" / "last.npz")
    opt = ckpt.optimizer_state["state"]
    return ckpt.model_state, [None if s is None else (s["step"], s["m"], s["v"]) for s in opt]


def assert_same_state(a, b):
    (ma, oa), (mb, ob) = a, b
    assert list(ma) == list(mb)
    for k in ma:
        np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)
    assert len(oa) == len(ob)
    for sa, sb in zip(oa, ob):
        assert sa[0] == sb[0]
        np.testing.assert_array_equal(sa[1], sb[1])
        np.testing.assert_array_equal(sa[2], sb[2])


# -- the run directory --------------------------------------------------------------------------------

def test_run_directory_contract(tmp_path):
    s = tiny(epochs=2, eval_every=1)
    record = quiet(s, tmp_path).run()
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "metrics.jsonl", "timing.jsonl", "snapshot.npz", "checkpoints"} <= files
    assert (tmp_path / "checkpoints" / "last.npz").is_file() and (tmp_path / "checkpoints" / "best.npz").is_file()

    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("experiment", "seed", "backend", "device", "version", "settings", "model", "data"):
        assert key in config, key
    assert config["experiment"] == "spiral" and config["seed"] == 3 and config["backend"] == "numpy"
    assert config["settings"]["K"] == 8 and config["settings"]["input_shape"] == [2]
    assert config["data"]["n_train"] == 200 and "make_spiral" in config["data"]["source"]
    assert read_settings(tmp_path) == s.replace(likelihood="gaussian")

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2] and [r["step"] for r in records] == [12, 24]
    for r in records:
        assert set(r) == {"epoch", "step", "train", "diagnostics", "eval"}   # no clock time in metrics.jsonl
        assert set(r["train"]) == set(TRAIN_KEYS)
        assert set(r["diagnostics"]) == {*DIAGNOSTICS, "clusters_used"}
        assert 1 / 8 <= r["diagnostics"]["max_q"] <= 1 and 0 <= r["diagnostics"]["batch_entropy"] <= math.log(8)
        assert 1 <= r["diagnostics"]["clusters_used"] <= 8 and r["diagnostics"]["kl_gap"] >= 0
        assert {"neg_elbo", *CLUSTER_KEYS, *DIAGNOSTICS, "classes_owned", "n_classes"} <= set(r["eval"])
        assert all(np.isfinite(v) for v in r["train"].values())
    assert records[-1] == json.loads(json.dumps(record))
    timing = [json.loads(line) for line in (tmp_path / "timing.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in timing] == [1, 2] and timing[1]["seconds"] >= timing[0]["seconds"] > 0

    with np.load(tmp_path / "snapshot.npz") as z:
        snap = {k: z[k] for k in z.files}
    n, K, Dx, Dw = 200, 8, 2, 2
    assert snap["y"].shape == (n, 2) and snap["recon"].shape == (n, 2) and snap["labels"].shape == (n,)
    assert snap["proba"].shape == (n, K) and np.allclose(snap["proba"].sum(axis=1), 1.0, atol=1e-5)
    assert snap["x_mean"].shape == (n, Dx) and snap["w_mean"].shape == (n, Dw)
    assert snap["prior_mean"].shape == (K, Dx) and snap["prior_logvar"].shape == (K, Dx)
    assert snap["samples"].shape == (K, 10, 2) and int(snap["epoch"]) == 2
    assert sorted(np.unique(snap["labels"])) == [0, 1, 2, 3, 4]

    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.npz")
    assert ckpt.extra["position"]["epoch"] == 3 and ckpt.extra["position"]["step"] == 24


def test_eval_every_skips_eval_but_not_the_last_epoch(tmp_path):
    quiet(tiny(epochs=3, eval_every=2), tmp_path).run()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert ["eval" in r for r in records] == [False, True, True]


def test_best_checkpoint_follows_the_eval_elbo_even_with_labels(tmp_path):
    """best.npz is chosen without labels: an epoch picked by test accuracy would be a choice that uses the
    test set's labels, which no user of the method has."""
    quiet(tiny(epochs=3), tmp_path).run()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("acc_paper" in r["eval"] for r in records)
    scores = [r["eval"]["neg_elbo"] for r in records]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.npz").extra["position"]["best"]
    assert best["key"] == "neg_elbo" and best["value"] == min(scores)
    assert best["epoch"] == 1 + scores.index(min(scores))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_train_and_write_the_run(tmp_path, backend):
    s = tiny(epochs=1, backend=backend)
    record = quiet(s, tmp_path).run()
    assert json.loads((tmp_path / "config.json").read_text())["backend"] == backend
    assert all(np.isfinite(v) for v in record["train"].values())
    if backend == "cupy":
        return  # CuPy draws another random stream: same code, different numbers
    reference = quiet(tiny(epochs=1), None).run()
    # the same seeded stream (NumPy's PCG64 behind strict too) and the same arithmetic: equal up to rounding
    for part in ("train", "eval"):
        for k, v in reference[part].items():
            assert record[part][k] == pytest.approx(v, rel=1e-4, abs=1e-5), (part, k)


def test_same_seed_gives_byte_identical_metrics(tmp_path):
    for name in ("a", "b"):
        quiet(tiny(), tmp_path / name).run()
    quiet(tiny(seed=4), tmp_path / "c").run()
    a, b, c = ((tmp_path / n / "metrics.jsonl").read_bytes() for n in "abc")
    assert a == b
    assert a != c
    assert_same_state(final_state(tmp_path / "a"), final_state(tmp_path / "b"))


def test_host_crossings_do_not_grow_with_the_number_of_steps(monkeypatch):
    """With log_every=0 the loss crosses to the host once per epoch, whatever the number of steps."""
    calls = []
    original = ag.Backend.to_numpy

    def counting(self, a):
        calls.append(1)
        return original(self, a)

    monkeypatch.setattr(ag.Backend, "to_numpy", counting)
    counts = {}
    for batch in (50, 10):       # 4 and 20 steps per epoch
        for log_every in (0, 1):
            calls.clear()
            quiet(tiny(epochs=2, eval_every=5, batch_size=batch, log_every=log_every)).run()
            counts[batch, log_every] = len(calls)
    assert counts[50, 0] == counts[10, 0]
    assert counts[10, 1] - counts[50, 1] == 2 * (19 - 3)   # one read per step except each epoch's last


# -- interruption and exact resume ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("uninterrupted")
    quiet(tiny(), d).run()
    return d


@pytest.mark.parametrize("stop_after", [0, 5, 12, 29])   # before any step, mid-epoch, at a boundary, later
def test_interrupt_then_resume_is_bit_identical(tmp_path, uninterrupted, stop_after):
    trainer = quiet(tiny(), tmp_path, handle_signals=True)
    original_loss = trainer.model.loss
    seen = []

    def loss(y, *a, **k):
        if trainer.model.training:
            seen.append(1)
            if len(seen) == stop_after:
                stops.record(signal.SIGTERM)   # what the signal handler does
        return original_loss(y, *a, **k)

    trainer.model.loss = loss
    if stop_after == 0:
        stops.record(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.run()
    assert info.value.exit_code in (130, 143)
    pos = load_checkpoint(tmp_path / "checkpoints" / "last.npz").extra["position"]
    assert pos["epoch"] * 12 - 12 + pos["step_in_epoch"] == stop_after
    resumed = quiet(tiny(), tmp_path, resume=True)
    resumed.run()
    assert (tmp_path / "metrics.jsonl").read_bytes() == (uninterrupted / "metrics.jsonl").read_bytes()
    assert_same_state(final_state(tmp_path), final_state(uninterrupted))


def test_real_signals_stop_cleanly_and_resume_exactly(tmp_path, uninterrupted):
    """SIGINT and SIGTERM to a training process: exit 130/143, one resume line, exact continuation."""
    from gmvae_np.cli import run

    rng = random.Random()
    # the child must compute with as many BLAS threads as this process (which made `uninterrupted` and
    # runs the resume): with 1 thread here and 2 there, evaluation sums round differently, and the bytes
    # differ whenever the signal lands after the first evaluation
    threads = blas_threads()
    pinned = {} if threads is None else {k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                    "MKL_NUM_THREADS")}
    env = dict(os.environ, PYTHONUNBUFFERED="1", **pinned)
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        run_dir = tmp_path / sig.name
        args = ["--n-per-arm", "40", "--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--no-plots",
                "--log-every", "5", "--seed", "3", "--out", str(run_dir)]
        # slow each step a little so the signal lands inside training, at a random step
        code_text = ("import time, gmvae_np.model as m; f = m.GMVAE.loss\n"
                     "def slow(self, y, *a, **k):\n    time.sleep(0.02)\n    return f(self, y, *a, **k)\n"
                     "m.GMVAE.loss = slow\nfrom gmvae_np.cli import main; main('spiral', " + repr(args) + ")")
        proc = subprocess.Popen([sys.executable, "-c", code_text], cwd=REPO, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proc.stdout.readline()            # the start line: training is about to begin
        assert line.startswith("spiral:"), line + proc.stderr.read()
        time.sleep(rng.uniform(0.05, 0.5))        # 36 steps of >= 20 ms: stop somewhere inside
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        last = err.strip().splitlines()[-1]
        assert f"{sig.name} received" in last and f"--resume {run_dir}" in last
        pos = load_checkpoint(run_dir / "checkpoints" / "last.npz").extra["position"]
        assert 0 <= (pos["epoch"] - 1) * 12 + pos["step_in_epoch"] < 36      # stopped inside training
        assert run("spiral", ["--resume", str(run_dir)]) == 0
        assert (run_dir / "metrics.jsonl").read_bytes() == (uninterrupted / "metrics.jsonl").read_bytes()
        assert_same_state(final_state(run_dir), final_state(uninterrupted))


def test_truncated_checkpoint_is_refused_at_resume(tmp_path):
    quiet(tiny(epochs=1), tmp_path).run()
    last = tmp_path / "checkpoints" / "last.npz"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        quiet(tiny(epochs=2), tmp_path, resume=True)


def test_run_directory_misuse_is_refused(tmp_path):
    with pytest.raises(RunDirError, match="no checkpoints/last.npz"):
        tmp_path.joinpath("empty").mkdir()
        quiet(tiny(), tmp_path / "empty", resume=True)
    quiet(tiny(epochs=1), tmp_path / "done").run()
    with pytest.raises(RunDirError, match="already holds a run.*--resume"):
        quiet(tiny(), tmp_path / "done")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="cannot write"):
        quiet(tiny(), blocker / "run")


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path):
    quiet(tiny(epochs=2), tmp_path).run()
    with pytest.raises(SettingsError, match="--epochs 1 is fewer than the 2 epochs"):
        quiet(tiny(epochs=1), tmp_path, resume=True)
    # a larger --epochs trains on from where the run stopped
    quiet(tiny(epochs=3), tmp_path, resume=True).run()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_drops_metric_lines_written_after_the_checkpoint(tmp_path, uninterrupted):
    """A crash between writing metrics.jsonl and checkpointing leaves an extra line: resume drops it."""
    quiet(tiny(epochs=2), tmp_path).run()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "step": 36, "train": {}}\n{"epoch": 4, "tru')
    quiet(tiny(), tmp_path, resume=True).run()
    assert (tmp_path / "metrics.jsonl").read_bytes() == (uninterrupted / "metrics.jsonl").read_bytes()


# -- non-finite values ---------------------------------------------------------------------------------

def test_nan_in_a_term_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = model_module.GMVAE.loss
    calls = []

    def poisoned(self, y, *a, **k):
        out = original(self, y, *a, **k)
        if self.training:
            calls.append(1)
            if len(calls) == 12 + 7:          # epoch 2, step 7
                xp = out.terms["w_prior"].backend.xp
                out.terms["w_prior"] = ag.tensor(out.terms["w_prior"].data * xp.nan)
        return out

    monkeypatch.setattr(model_module.GMVAE, "loss", poisoned)
    with pytest.raises(TrainingDiverged) as info:
        quiet(tiny(log_every=1), tmp_path).run()
    message = str(info.value)
    assert "\n" not in message
    assert "'w_prior'" in message and "epoch 2" in message and "step 7 of 12" in message
    assert str(tmp_path / "checkpoints" / "last.npz") in message
    pos = load_checkpoint(tmp_path / "checkpoints" / "last.npz").extra["position"]
    assert (pos["epoch"], pos["step_in_epoch"]) == (2, 0)          # the end of epoch 1, untouched
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_nan_found_at_the_epoch_read_when_log_every_is_zero(tmp_path, monkeypatch):
    original = model_module.GMVAE.loss

    def poisoned(self, y, *a, **k):
        out = original(self, y, *a, **k)
        if self.training:
            xp = out.terms["reconstruction"].backend.xp
            out.terms["reconstruction"] = ag.tensor(out.terms["reconstruction"].data + xp.inf)
        return out

    monkeypatch.setattr(model_module.GMVAE, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"'reconstruction' became inf at epoch 1, step 12 of 12 "
                                               r"\(read per epoch\)"):
        quiet(tiny(log_every=0), tmp_path).run()
    assert not (tmp_path / "checkpoints" / "last.npz").exists()


def test_nan_parameters_are_never_checkpointed(tmp_path, monkeypatch):
    from gmvae_np import optim

    original = optim.Adam.step
    steps = []

    def step(self):
        original(self)
        steps.append(1)
        if len(steps) == 12:   # the last step of epoch 1: its losses were finite, its update is not
            self.params[0].data = self.params[0].data * float("nan")

    monkeypatch.setattr(optim.Adam, "step", step)
    with pytest.raises(TrainingDiverged, match=r"parameter\(s\) encoder.1.weight became non-finite by epoch 1, step 12"):
        quiet(tiny(log_every=0, eval_every=5), tmp_path).run()
    assert not (tmp_path / "checkpoints" / "last.npz").exists()


# -- odd but valid settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    dict(mc=3),
    dict(K=2),
    dict(K=100),
    dict(Dx=1),
    dict(dtype="float64"),
    dict(variant="mi"),
    dict(batch_size=200),          # one step per epoch, the whole data set
    dict(batch_size=33),           # does not divide 200: 6 steps, 2 rows dropped
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_odd_but_valid_settings(tmp_path, changes):
    s = tiny(epochs=2, **changes)
    record = quiet(s, tmp_path).run()
    assert record["step"] == 2 * (200 // s.batch_size)
    assert all(np.isfinite(v) for v in record["train"].values())
    assert 1 <= record["eval"]["clusters_used"] <= s.K
    with np.load(tmp_path / "snapshot.npz") as z:
        assert z["proba"].shape == (200, s.K) and z["x_mean"].shape == (200, s.Dx)
        assert z["samples"].shape == (s.K, 10, 2)


def test_batch_larger_than_the_data_is_a_clear_error():
    with pytest.raises(SettingsError, match="--batch-size 201 is larger than the 200 training rows"):
        quiet(tiny(batch_size=201))


def test_images_keep_their_shape_in_the_snapshot(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((24, 1, 28, 28)) > 0.7).astype(np.float32)
    data = Dataset(name="dots", x_train=x[:16], y_train=np.arange(16) % 2, x_test=x[16:],
                   y_test=np.arange(8) % 2, likelihood="bernoulli")
    for arch in ("fc", "conv"):
        s = preset("mnist", arch=arch, K=3, Dx=3, Dw=2, hidden=8, epochs=1, batch_size=8, plots=False)
        run_dir = tmp_path / arch
        quiet(s, run_dir, dataset=data).run()
        with np.load(run_dir / "snapshot.npz") as z:
            assert z["y"].shape == (8, 1, 28, 28) and z["recon"].shape == (8, 1, 28, 28)
            assert z["samples"].shape == (3, 10, 1, 28, 28)
            assert np.all((z["recon"] >= 0) & (z["recon"] <= 1))
        assert json.loads((run_dir / "config.json").read_text())["settings"]["input_shape"] == [1, 28, 28]


# -- output -----------------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_only_on_a_terminal():
    err = _Terminal()
    out = io.StringIO()
    Trainer(tiny(epochs=1, log_every=2), None, out=out, err=err).run()
    text = err.getvalue()
    assert "\r" in text and "step/s" in text and "ETA" in text and "epoch 1/1 step 10/12" in text
    summary = out.getvalue().splitlines()[-1]
    assert summary.startswith("epoch   1/1") and "acc " in summary and "nmi" in summary

    err = io.StringIO()
    Trainer(tiny(epochs=1, log_every=2), None, out=io.StringIO(), err=err).run()
    assert err.getvalue() == ""


def test_a_failing_figure_never_stops_training(tmp_path, monkeypatch):
    from gmvae_np import plots

    def broken(run_dir):
        raise RuntimeError("no canvas\nsecond line")

    monkeypatch.setattr(plots, "draw_run", broken)
    err = io.StringIO()
    record = quiet(tiny(epochs=2, plots=True, plot_every=1), tmp_path, err=err).run()
    assert record["epoch"] == 2
    warnings = err.getvalue().splitlines()
    assert warnings == ["warning: figures not drawn (RuntimeError: no canvas); training goes on"] * 2


def test_train_function_returns_the_last_record(tmp_path):
    record = train(tiny(epochs=1), tmp_path, out=io.StringIO())
    assert record == json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])


def test_a_failed_setup_leaves_no_empty_run_directory(tmp_path):
    with pytest.raises(SettingsError, match="larger than"):
        quiet(tiny(batch_size=500), tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_without_labels_the_best_checkpoint_follows_the_eval_elbo(tmp_path):
    rng = np.random.default_rng(0)
    data = Dataset(name="unlabelled", x_train=rng.normal(size=(120, 3)), likelihood="gaussian")
    s = preset("custom", data="unused.csv", K=3, Dx=2, Dw=2, hidden=16, epochs=3, batch_size=40, plots=False)
    record = quiet(s, tmp_path, dataset=data).run()
    assert "acc_paper" not in record["eval"] and np.isfinite(record["eval"]["neg_elbo"])
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    best = load_checkpoint(tmp_path / "checkpoints" / "best.npz").extra["position"]["best"]
    scores = [r["eval"]["neg_elbo"] for r in records]
    assert best["key"] == "neg_elbo" and best["value"] == min(scores)
    with np.load(tmp_path / "snapshot.npz") as z:
        assert "labels" not in z.files and z["y"].shape == (120, 3)


def test_running_sums_from_before_the_diagnostics_resume_with_them_at_zero():
    """A checkpoint of an older version holds only the TRAIN_KEYS' sums: it loads, the terms keep their
    values and the diagnostics start from zero."""
    from gmvae_np.train import RunningSums

    sums = RunningSums(ag.get_backend("numpy"))
    old = {"sums": [float(i + 1) for i in range(len(TRAIN_KEYS))], "count": 4}
    sums.load(old, K=3)
    assert sums.read() == {name: (i + 1) / 4 for i, name in enumerate(TRAIN_KEYS)}
    assert sums.read_diagnostics() == {**{name: 0.0 for name in DIAGNOSTICS}, "clusters_used": 0}
    assert len(sums.state()["sums"]) == len(TRAIN_KEYS) + len(DIAGNOSTICS) + 3


def test_the_experiments_page_quotes_train_step_as_it_is():
    """docs/experiments.md shows the whole training step; the copy there must be the code."""
    import inspect
    import re

    from gmvae_np import train as train_module

    page = (REPO / "docs" / "experiments.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", page, flags=re.M | re.S)
    quoted = [b for b in blocks if b.startswith("def train_step(")]
    assert len(quoted) == 1, "experiments.md quotes train_step once"
    assert quoted[0].rstrip("\n") == inspect.getsource(train_module.train_step).rstrip("\n")
    assert len(quoted[0].splitlines()) <= 12   # the whole step, in sight
