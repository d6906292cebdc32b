"""Training a GMVAE: data -> model -> ELBO -> Adam -> metrics -> run directory.

    from gmvae_np.presets import preset
    from gmvae_np.train import train
    record = train(preset("spiral", epochs=50), "runs/spiral-try")   # the last epoch's metrics

One run, step by step (:class:`Trainer`):

1. The data set is loaded on the host (gmvae_np.data), flattened for fully connected models, and copied
   to the device ONCE: every later batch is a gather on the device.
2. Each epoch draws a permutation of the training rows on the device (``Trainer.rng.permutation``) and
   walks it in slices of ``batch_size``. The last partial batch is DROPPED: every step sees exactly
   ``batch_size`` rows, so the loss scale and the BatchNorm statistics are alike at every step, and
   since the permutation changes each epoch no row is left out for long. A batch larger than the data
   is an error (there would be no step at all).
3. A step is ``model.loss(y)`` -> ``objective.backward()`` -> ``Adam.step()``. Nothing crosses to the
   host inside a step: the loss terms are added into running sums ON THE DEVICE (float64, detached),
   read once every ``log_every`` steps and at the end of the epoch. A read that finds a non-finite
   value stops training with one line naming the epoch, the step and the ELBO term, and leaves the
   last good checkpoint in place (:class:`TrainingDiverged`).
4. After every ``eval_every`` epochs (and after the last) the model is evaluated, in eval mode and in
   batches, on the held-out split (``Dataset.x_eval``: the test split, or the training rows when there
   is none): the negative ELBO and its terms, and, when labels are known, the clustering scores of
   gmvae_np.metrics (the paper's accuracy, Hungarian accuracy, NMI, ARI, purity, clusters used) plus
   ``classes_owned``: how many true classes are the majority class of at least one cluster (for the
   spiral: every arm owns a cluster). Evaluation draws its noise from a saved-and-restored random
   state, so how often one evaluates never changes the trained parameters.

The run directory (read by gmvae_np.plots; the names are a contract):

    config.json          every setting, the model config, package version, backend and device,
                         experiment name, seed and data source
    metrics.jsonl        one JSON object per epoch, flushed line by line:
                         {"epoch", "step", "train": {objective, neg_elbo, reconstruction,
                          conditional_prior, w_prior, z_prior, consistency_violation},
                          "diagnostics": {max_q, batch_entropy, kl_gap, clusters_used} (the epoch's
                          batches; gmvae_np.diagnostics),
                          "eval": {neg_elbo, the terms, kl_gap, max_q, batch_entropy, acc_paper,
                          acc_hungarian, nmi, ari, purity,
                          clusters_used, classes_owned, n_classes}}   ("eval" only on evaluated epochs)
                         It holds no clock times, so two runs with the same seed on NumPy write it
                         byte for byte alike; times go to timing.jsonl.
    timing.jsonl         {"epoch", "step", "seconds" (since the start, across resumes),
                          "epoch_seconds", "eval_seconds", "steps_per_second"} per epoch
    checkpoints/last.npz the latest state (each epoch, and on interruption); best.npz the lowest eval
                         neg_elbo so far (chosen without labels, even when the data has them)
    snapshot.npz         arrays of the latest evaluation for the figures: y (up to 5,000 eval rows, or
                         1,000 images, in their image shape), labels, proba (n, K), x_mean (n, Dx),
                         w_mean (n, Dw), recon (decoder mean, shaped like y), prior_mean and
                         prior_logvar (K, Dx) at w = 0, samples (K, 10, *shape) decoder means of
                         per-cluster draws at w = 0, epoch
    figures/             drawn by gmvae_np.plots.draw_run at the end (and every plot_every epochs)

Interruption and resume: SIGINT (Ctrl-C) and SIGTERM set a flag; the current step finishes, then
checkpoints/last.npz is written atomically with the model, Adam's state, the random state, the position
(epoch, step within the epoch, and the random state from which the epoch's permutation was drawn) and
the epoch's running sums, and :class:`TrainingInterrupted` is raised (the command line exits with 130 or
143). ``Trainer(..., resume=True)`` restores all of it, so on NumPy the resumed run ends with exactly
the parameters and metrics.jsonl of a run that was never interrupted. A second Ctrl-C stops at once.

Bit-for-bit claims (determinism, exact resume) hold for one machine and one number of BLAS threads:
a matrix product split over another number of threads may round differently. Each checkpoint records
the thread count (:func:`blas_threads`, when threadpoolctl is installed), and a resume with another
count prints a note saying so. Small models such as the
spiral's also run fastest with a single BLAS thread (``OPENBLAS_NUM_THREADS=1 ./run.sh spiral``); on a
busy machine, extra threads can make them many times slower.
"""
from __future__ import annotations

import json
import math
import platform
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

import autograd_lite as ag

from .atomic import write_atomic
from .data import Dataset, load_dataset, load_matrix, make_spiral
from .diagnostics import DIAGNOSTICS
from .metrics import clustering_report, contingency
from .presets import Settings, SettingsError

__all__ = ["train", "Trainer", "TrainingInterrupted", "TrainingDiverged", "RunDirError", "load_data",
           "model_config", "read_settings", "blas_threads", "TERM_NAMES", "TRAIN_KEYS"]

TERM_NAMES = ("reconstruction", "conditional_prior", "w_prior", "z_prior", "consistency_violation")
TRAIN_KEYS = ("objective", "neg_elbo") + TERM_NAMES
SNAPSHOT_ROWS_VECTORS = 5000
SNAPSHOT_ROWS_IMAGES = 1000
SAMPLES_PER_CLUSTER = 10
SPIRAL_DATA_SEED = 0  # the spiral points are one fixed data set (the original's spiral.t7), whatever --seed


class RunDirError(ValueError):
    """A run directory that cannot be used: not writable, already holding a run, or missing a checkpoint."""


class TrainingDiverged(RuntimeError):
    """A loss term (or a parameter) became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training after a step; the state was saved to checkpoints/last.npz."""

    def __init__(self, signum: int, run_dir, epoch: int, step: int):
        self.signum, self.run_dir, self.epoch, self.step = signum, run_dir, epoch, step
        name = signal.Signals(signum).name
        where = f"; checkpoint saved to {Path(run_dir) / 'checkpoints' / 'last.npz'}" if run_dir else ""
        super().__init__(f"{name} received: stopped at epoch {epoch}, step {step}{where}")

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


# ------------------------------------------------------------------------------------------------------
# Data and model from settings
# ------------------------------------------------------------------------------------------------------
def load_data(settings: Settings) -> Dataset:
    """The data set named by the settings, on the host, shaped for the settings' network."""
    if settings.dataset == "spiral":
        data = make_spiral(n_per_arm=settings.n_per_arm, curl=settings.curl, seed=SPIRAL_DATA_SEED)
    elif settings.dataset == "custom":
        data = load_matrix(settings.data, labels=settings.labels, standardize=settings.standardize)
    else:
        data = load_dataset(settings.dataset, data_dir=settings.data_dir)
    return shape_for(settings, data)


def shape_for(settings: Settings, data: Dataset) -> Dataset:
    """Flatten images for fc networks; refuse a conv network on vectors."""
    if settings.arch == "conv":
        if data.x_train.ndim != 4:
            raise SettingsError(f"--arch conv needs image data, but {data.name} has rows of "
                                f"{data.n_features} features; use --arch fc")
        return data
    return data.flat() if data.x_train.ndim != 2 else data


def model_config(settings: Settings, data: Dataset):
    """The GMVAEConfig for these settings and this data (input shape and likelihood from the data)."""
    from .model import GMVAEConfig

    likelihood = data.likelihood if settings.likelihood == "auto" else settings.likelihood
    try:
        return GMVAEConfig(input_shape=tuple(int(s) for s in data.x_train.shape[1:]), arch=settings.arch,
                           likelihood=likelihood, K=settings.K, Dx=settings.Dx, Dw=settings.Dw,
                           hidden=settings.hidden, variant=settings.variant, alpha=settings.alpha,
                           eta=settings.eta, lam=settings.lam, balance=settings.balance, mc=settings.mc,
                           dtype=settings.dtype)
    except (ValueError, TypeError) as e:  # the config's own validation: a settings problem
        raise SettingsError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def display_shape(data: Dataset) -> tuple:
    """The shape one sample is drawn in: its image shape when it has one, else (features,)."""
    return tuple(data.image_shape) if data.image_shape else tuple(int(s) for s in data.x_train.shape[1:])


def read_settings(run_dir) -> Settings:
    """The settings stored in a run directory's config.json."""
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        stored = config["settings"]
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} has no config.json, so it is not a run directory; check the path "
                          f"given to --resume") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{path} cannot be read ({type(e).__name__}: {e}); the run cannot be resumed, "
                          f"start a new one with --out") from None
    known = {k: v for k, v in stored.items() if k in Settings.__dataclass_fields__}
    return Settings.from_dict(known)


def blas_threads() -> int | None:
    """The number of threads the host BLAS (OpenBLAS, MKL, ...) uses now; None when it cannot be told.

    Read through the optional threadpoolctl. Recorded in each checkpoint, because a matrix product split
    over another number of threads may round differently: resume is bit-identical only when this number
    is the same as when the run was interrupted.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("gmvae-np")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "unknown"


# ------------------------------------------------------------------------------------------------------
# Small host-side helpers: JSON lines (files are written with atomic.write_atomic)
# ------------------------------------------------------------------------------------------------------
def _json_line(record: dict) -> str:
    return json.dumps(record, separators=(", ", ": ")) + "\n"


def _keep_lines_before(path: Path, epoch: int) -> None:
    """Drop the lines of a .jsonl file whose epoch is >= ``epoch`` (written after the checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            e = json.loads(line).get("epoch")
        except (ValueError, AttributeError):
            continue  # a half-written last line
        if isinstance(e, int) and e < epoch:
            kept.append(line if line.endswith("\n") else line + "\n")
    write_atomic(path, lambda f: f.write("".join(kept).encode("utf-8")))


def assignment_summary(proba: np.ndarray) -> dict:
    """max_q and batch_entropy (gmvae_np.diagnostics) of the cluster probabilities of a whole split."""
    p = np.asarray(proba, dtype=np.float64)
    p_bar = p.mean(axis=0)
    nonzero = p_bar[p_bar > 0]
    return {"max_q": float(p.max(axis=1).mean()), "batch_entropy": float(-np.sum(nonzero * np.log(nonzero)))}


def _classes_owned(pred: np.ndarray, labels: np.ndarray) -> int:
    """How many true classes are the majority class of at least one (non-empty) cluster."""
    table = contingency(pred, labels)
    return int(np.unique(np.argmax(table, axis=1)).size)


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ------------------------------------------------------------------------------------------------------
# Running sums on the device
# ------------------------------------------------------------------------------------------------------
class RunningSums:
    """Per-sample sums of the training terms and diagnostics, kept on the device in float64 until read.

    One vector holds them all: the TRAIN_KEYS, then the DIAGNOSTICS (each weighted by its batch's size),
    then the K per-cluster counts. ``add`` is a handful of device operations and no host crossing;
    ``read`` crosses once for all of it.
    """

    def __init__(self, backend):
        self.backend = backend
        self.reset()

    def reset(self) -> None:
        self.sums = None  # a float64 device vector: TRAIN_KEYS, DIAGNOSTICS, counts
        self.count = 0

    def add(self, result, n: int) -> None:
        """Add one step's LossResult (objective: batch mean; terms and neg_elbo: per sample)."""
        xp = self.backend.xp
        f64 = xp.float64
        per_sample = _per_sample_terms(result)
        d = result.diagnostics
        values = [xp.astype(result.objective.data, f64) * float(n)]
        values += [xp.sum(xp.astype(per_sample[name].data, f64)) for name in TRAIN_KEYS[1:]]
        values += [xp.astype(d[name].data, f64) * float(n) for name in DIAGNOSTICS]
        v = xp.concat([xp.stack(values), xp.astype(d["counts"].data, f64)])
        self.sums = v if self.sums is None else self.sums + v
        self.count += n

    def _host(self):
        return None if self.sums is None else self.backend.to_numpy(self.sums)

    def read(self) -> dict:
        """{name: per-sample mean} of the TRAIN_KEYS as Python floats (one host crossing)."""
        host = self._host()
        if host is None:
            return {name: 0.0 for name in TRAIN_KEYS}
        return {name: float(host[i]) / self.count for i, name in enumerate(TRAIN_KEYS)}

    def read_diagnostics(self) -> dict:
        """{diagnostic: per-sample mean} and "clusters_used": clusters some point took as most probable."""
        host = self._host()
        if host is None:
            return {}
        first = len(TRAIN_KEYS)
        out = {name: float(host[first + i]) / self.count for i, name in enumerate(DIAGNOSTICS)}
        out["clusters_used"] = int(np.count_nonzero(host[first + len(DIAGNOSTICS):]))
        return out

    def state(self) -> dict:
        """JSON-able exact copy (float64 values round-trip through Python floats exactly)."""
        host = self._host()
        return {"sums": None if host is None else [float(v) for v in host], "count": self.count}

    def load(self, state: dict, K: int) -> None:
        """Restore ``state()``; a checkpoint written before the diagnostics existed resumes with them at 0."""
        self.count = int(state["count"])
        sums = state["sums"]
        if sums is not None:
            sums = np.asarray(sums, dtype=np.float64)
            full = len(TRAIN_KEYS) + len(DIAGNOSTICS) + K
            sums = np.concatenate([sums, np.zeros(full - sums.size)])
        self.sums = None if sums is None else self.backend.asarray(sums, dtype="float64")


def _per_sample_terms(result) -> dict:
    """{name: (B,) Tensor} for neg_elbo and the five ELBO terms of a LossResult."""
    terms = dict(result.terms)
    if "neg_elbo" not in terms:
        terms["neg_elbo"] = result.neg_elbo
    return terms


def _first_nonfinite(values: dict):
    """The first name (ELBO terms first, then the totals) whose value is not finite, else None."""
    for name in TERM_NAMES + ("neg_elbo", "objective"):
        if name in values and not math.isfinite(values[name]):
            return name
    return None


# ------------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------------
class Trainer:
    """One training run of a GMVAE (see the module docstring for what it does and writes).

    settings        a validated :class:`~gmvae_np.presets.Settings`
    run_dir         the run directory, or None to keep everything in memory (no files, no figures)
    resume          continue the run in ``run_dir`` from checkpoints/last.npz
    dataset         a Dataset to use instead of loading the one the settings name
    out, err        streams for the per-epoch summary lines and the live progress line / warnings
    handle_signals  turn SIGINT/SIGTERM into a checkpoint and a clean stop (the command line sets it)
    verbose         print the per-epoch summary lines
    """

    def __init__(self, settings: Settings, run_dir=None, *, resume: bool = False, dataset: Dataset | None = None,
                 out=None, err=None, handle_signals: bool = False, verbose: bool = True):
        self.settings = settings.validate()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = bool(resume)
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.handle_signals = handle_signals
        self.verbose = verbose
        self.history: list[dict] = []
        self._stop_signal = None
        if self.resume and self.run_dir is None:
            raise RunDirError("resume needs a run directory")
        self._created: list[Path] = []  # folders this trainer made, removed again if setting up fails
        if self.run_dir is not None:
            self._check_run_dir()
        try:
            self._setup(dataset)
        except BaseException:
            for d in reversed(self._created):
                try:
                    d.rmdir()  # only if still empty: nothing of the user's is ever removed
                except OSError:
                    pass
            raise

    def _setup(self, dataset) -> None:
        s = self.settings
        self.backend = ag.get_backend(s.backend)
        data = shape_for(s, dataset) if dataset is not None else load_data(s)
        self.data = data
        self.n_train = int(data.x_train.shape[0])
        if s.batch_size > self.n_train:
            raise SettingsError(f"--batch-size {s.batch_size} is larger than the {self.n_train} training rows "
                                f"of {data.name}; use --batch-size {self.n_train} or less")
        self.steps_per_epoch = self.n_train // s.batch_size
        self.config = model_config(s, data)
        self.likelihood = self.config.likelihood

        from .model import GMVAE
        from .optim import Adam

        b = self.backend
        self.rng = ag.Generator(b, s.seed)  # initial weights, then the training stream
        self.model = GMVAE(self.config, backend=b, generator=self.rng)
        self.optimizer = Adam(self.model.parameters(), lr=s.lr)
        # the data crosses to the device once; batches are gathers on the device
        self.x_train = b.asarray(data.x_train, dtype=s.dtype)
        self.x_eval = b.asarray(data.x_eval, dtype=s.dtype)
        self.y_eval = data.y_eval
        self.sums = RunningSums(b)

        # position: the epoch being trained (1-based), steps done in it, steps done in all
        self.epoch, self.step_in_epoch, self.step = 1, 0, 0
        self.epoch_rng_state = None  # the random state the current epoch's permutation was drawn from
        self.perm = None
        self.seconds = 0.0  # training time so far, across resumes
        self.best = None  # {"key", "value", "epoch"}
        if self.resume:
            self._restore()

    # -- the run directory ----------------------------------------------------------------------------
    @property
    def _last(self) -> Path:
        return self.run_dir / "checkpoints" / "last.npz"

    def _check_run_dir(self) -> None:
        d = self.run_dir
        if self.resume:
            if not d.is_dir():
                raise RunDirError(f"cannot resume: {d} does not exist; check the path given to --resume")
            if not (d / "checkpoints" / "last.npz").is_file():
                raise RunDirError(f"cannot resume: {d} has no checkpoints/last.npz (training never finished "
                                  f"an epoch there); start a new run with --out")
            return
        if (d / "checkpoints" / "last.npz").is_file():
            raise RunDirError(f"{d} already holds a run (checkpoints/last.npz); continue it with --resume {d} "
                              f"or choose a new --out")
        try:
            missing = [p for p in (d / "checkpoints", d, *d.parents) if not p.exists()]
            (d / "checkpoints").mkdir(parents=True, exist_ok=True)
            self._created = missing[::-1]
            probe = d / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RunDirError(f"cannot write to the run directory {d} ({e.strerror or e}); choose a writable "
                              f"--out") from None

    def _write_config(self) -> None:
        s, d, b = self.settings, self.data, self.backend
        config = {
            "experiment": s.experiment,
            "seed": s.seed,
            "backend": b.name,
            "device": str(b.device),
            "version": _package_version(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "settings": {**s.to_dict(), "input_shape": list(display_shape(d)), "likelihood": self.likelihood},
            "model": self.config.to_dict(),
            "data": {
                "name": d.name, "source": d.extra.get("source", d.name), "summary": d.summary(),
                "n_train": self.n_train, "n_eval": int(d.x_eval.shape[0]),
                "eval_split": "test" if d.has_test else "train", "has_labels": self.y_eval is not None,
                "image_shape": list(d.image_shape) if d.image_shape else None,
            },
            "training": {"steps_per_epoch": self.steps_per_epoch,
                         "last_partial_batch": "dropped", "optimizer": "Adam(betas=(0.9, 0.999), eps=1e-8)"},
        }
        text = json.dumps(config, indent=2) + "\n"
        write_atomic(self.run_dir / "config.json", lambda f: f.write(text.encode("utf-8")))

    def _append(self, name: str, record: dict) -> None:
        with open(self.run_dir / name, "a", encoding="utf-8") as f:
            f.write(_json_line(record))
            f.flush()

    # -- checkpoints ----------------------------------------------------------------------------------
    def _checkpoint_config(self) -> dict:
        return {"settings": self.settings.to_dict(), "model": self.config.to_dict()}

    def _position(self) -> dict:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
                "epoch_rng_state": self.epoch_rng_state, "sums": self.sums.state(),
                "seconds": self.seconds, "best": self.best, "blas_threads": blas_threads()}

    def _save(self, path: Path) -> None:
        from .checkpoint import save_checkpoint

        self._check_parameters()
        save_checkpoint(path, model=self.model, optimizer=self.optimizer, rng_state=self.rng.get_state(),
                        config=self._checkpoint_config(), extra={"position": self._position()})

    def _check_parameters(self) -> None:
        """Refuse to save non-finite parameters (one host crossing for all of them)."""
        xp = self.backend.xp
        finite = xp.stack([xp.all(xp.isfinite(p.data)) for p in self.model.parameters()])
        ok = self.backend.to_numpy(finite)
        if not bool(np.all(ok)):
            names = [n for (n, _), good in zip(self.model.named_parameters(), ok) if not good]
            # the last step taken: the end of the previous epoch when the position is at an epoch's start
            epoch, step = ((self.epoch - 1, self.steps_per_epoch) if self.step_in_epoch == 0
                           else (self.epoch, self.step_in_epoch))
            raise TrainingDiverged(
                f"training stopped: parameter(s) {', '.join(names[:3])} became non-finite by epoch {epoch}, "
                f"step {step}; {self._kept()}")

    def _kept(self) -> str:
        if self.run_dir is not None and self._last.is_file():
            return f"the last good checkpoint is kept in {self._last}; lower --lr and start a new run"
        return "lower --lr and start a new run"

    def _restore(self) -> None:
        from .checkpoint import load_checkpoint, restore

        ckpt = load_checkpoint(self._last)
        restore(ckpt, self.model, self.optimizer)  # refuses a checkpoint of another model
        pos = ckpt.extra.get("position") if isinstance(ckpt.extra, dict) else None
        if not isinstance(pos, dict) or ckpt.rng_state is None:
            raise RunDirError(f"cannot resume: {self._last} is a model checkpoint without a training position "
                              f"(not written by the trainer); start a new run with --out")
        self.epoch, self.step_in_epoch, self.step = int(pos["epoch"]), int(pos["step_in_epoch"]), int(pos["step"])
        self.seconds, self.best = float(pos["seconds"]), pos["best"]
        self.sums.load(pos["sums"], self.config.K)
        self.epoch_rng_state = pos["epoch_rng_state"]
        rng = self.rng
        if self.epoch_rng_state is not None:  # mid-epoch: draw the epoch's permutation again
            rng.set_state(self.epoch_rng_state)
            self.perm = rng.permutation(self.n_train)
        rng.set_state(ckpt.rng_state)
        then, now = pos.get("blas_threads"), blas_threads()
        if then is not None and now is not None and then != now and self.backend.name != "cupy":
            print(f"note: {self.run_dir} was trained with {then} BLAS thread(s) and resumes with {now}; the "
                  f"result will not be bit-identical to an uninterrupted run (OPENBLAS_NUM_THREADS={then} "
                  f"restores that)", file=self.err, flush=True)
        done = self.epoch - 1
        if self.settings.epochs < done:
            raise SettingsError(f"--epochs {self.settings.epochs} is fewer than the {done} epochs already trained in "
                                f"{self.run_dir}; give --epochs {done} or more")

    # -- signals --------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self._stop_signal = signum

    def _install_signals(self) -> dict:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    # -- training ------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train until ``settings.epochs``; return the last epoch's record (as in metrics.jsonl)."""
        previous = self._install_signals()
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> dict:
        s = self.settings
        if self.run_dir is not None:
            self._write_config()
            if self.resume:
                _keep_lines_before(self.run_dir / "metrics.jsonl", self.epoch)
                _keep_lines_before(self.run_dir / "timing.jsonl", self.epoch)
            else:
                for name in ("metrics.jsonl", "timing.jsonl"):
                    (self.run_dir / name).write_bytes(b"")
        if self.verbose and not self.resume:
            about = self.data.summary()   # starts with the data set's name; add the experiment's if other
            about = about if about.startswith(f"{s.experiment}:") else f"{s.experiment}: {about}"
            print(f"{about}; {self.model.num_parameters():,} parameters; "
                  f"backend {self.backend.name} ({self.backend.device}); "
                  f"{self.steps_per_epoch} steps of {s.batch_size} per epoch", file=self.out, flush=True)
        elif self.verbose and self.epoch > s.epochs:
            print(f"{self.run_dir} is complete ({s.epochs} epochs); nothing to do (give a larger --epochs to "
                  f"train on)", file=self.out, flush=True)
        elif self.verbose:
            print(f"resuming {self.run_dir} at epoch {self.epoch}, step {self.step_in_epoch} of "
                  f"{self.steps_per_epoch}", file=self.out, flush=True)
        record = self._last_record()
        while self.epoch <= s.epochs:
            record = self._train_epoch()
        return record

    def _last_record(self) -> dict:
        if self.history:
            return self.history[-1]
        if self.run_dir is not None and (self.run_dir / "metrics.jsonl").is_file():
            lines = (self.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
            for line in reversed(lines):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        return {}

    def _train_epoch(self) -> dict:
        s, b = self.settings, self.backend
        xp = b.xp
        B = s.batch_size
        if self.perm is None:
            self.epoch_rng_state = self.rng.get_state()
            self.perm = self.rng.permutation(self.n_train)
            self.step_in_epoch = 0
            self.sums.reset()
        self.model.train()
        started = time.perf_counter()
        first_step = self.step_in_epoch
        tty = self.verbose and hasattr(self.err, "isatty") and self.err.isatty()
        for i in range(first_step, self.steps_per_epoch):
            if self._stop_signal is not None:
                self._interrupt(started)
            idx = self.perm[i * B:(i + 1) * B]
            y = ag.tensor(xp.take(self.x_train, idx, axis=0), backend=b)
            result = self.model.loss(y)
            self.optimizer.zero_grad()
            result.objective.backward()
            self.optimizer.step()
            self.sums.add(result, B)
            self.step_in_epoch, self.step = i + 1, self.step + 1
            if s.log_every and (i + 1) % s.log_every == 0 and i + 1 < self.steps_per_epoch:
                values = self._read_sums()
                if tty:
                    self._progress(values, i + 1 - first_step, time.perf_counter() - started)
        train = self._read_sums()
        diagnostics = self.sums.read_diagnostics()
        if tty:
            self.err.write("\r\033[K")
            self.err.flush()
        train_seconds = time.perf_counter() - started

        epoch = self.epoch
        record = {"epoch": epoch, "step": self.step, "train": train, "diagnostics": diagnostics}
        eval_started = time.perf_counter()
        if epoch % s.eval_every == 0 or epoch == s.epochs:
            record["eval"] = self._evaluate()
        eval_seconds = time.perf_counter() - eval_started
        self.seconds += train_seconds + eval_seconds
        self.history.append(record)

        # the epoch is complete: the position moves to the start of the next one
        self.epoch, self.step_in_epoch, self.perm, self.epoch_rng_state = epoch + 1, 0, None, None
        self.sums.reset()
        if self.run_dir is not None:
            self._append("metrics.jsonl", record)
            steps = self.steps_per_epoch - first_step
            self._append("timing.jsonl", {
                "epoch": epoch, "step": self.step, "seconds": round(self.seconds, 3),
                "epoch_seconds": round(train_seconds + eval_seconds, 3), "eval_seconds": round(eval_seconds, 3),
                "steps_per_second": round(steps / train_seconds, 2) if train_seconds > 0 else None})
            if "eval" in record:
                self._update_best(record["eval"], epoch)
            self._save(self._last)
        if self.verbose:
            self._summary(record, train_seconds + eval_seconds)
        if self.run_dir is not None and s.plots and (
                (s.plot_every and epoch % s.plot_every == 0) or epoch == s.epochs):
            self.draw()
        return record

    def _read_sums(self) -> dict:
        """Cross the running sums to the host; stop on a non-finite value."""
        values = self.sums.read()
        bad = _first_nonfinite(values)
        if bad is not None:
            others = [n for n in TRAIN_KEYS if n != bad and not math.isfinite(values[n])]
            also = f" (also {', '.join(others)})" if others else ""
            every = f"read every {self.settings.log_every} steps" if self.settings.log_every else "read per epoch"
            raise TrainingDiverged(
                f"training stopped: the ELBO term {bad!r} became {values[bad]} at epoch {self.epoch}, step "
                f"{self.step_in_epoch} of {self.steps_per_epoch} ({every}){also}; {self._kept()}")
        return values

    def _interrupt(self, started: float) -> None:
        signum = self._stop_signal
        self._read_sums()  # never checkpoint a diverged state
        self.seconds += time.perf_counter() - started
        if self.run_dir is not None:
            self._save(self._last)
        raise TrainingInterrupted(signum, self.run_dir, self.epoch, self.step_in_epoch)

    def _update_best(self, ev: dict, epoch: int) -> None:
        """best.npz: the lowest held-out negative ELBO so far. It reads no label, so it is a choice the
        user of unlabelled data can make too (an epoch picked by test accuracy would not be)."""
        key = "neg_elbo"
        value = ev[key]
        stale = self.best is not None and self.best.get("key") != key   # a run begun when best read labels
        if self.best is None or stale or value < self.best["value"]:
            self.best = {"key": key, "value": value, "epoch": epoch}
            self._save(self.run_dir / "checkpoints" / "best.npz")

    # -- evaluation ----------------------------------------------------------------------------------
    def _batches(self, x, n=None):
        eb = self.settings.eval_batch
        n = int(x.shape[0]) if n is None else n
        for lo in range(0, n, eb):
            yield ag.tensor(x[lo:min(lo + eb, n), ...], backend=self.backend)

    def _evaluate(self) -> dict:
        """Eval-mode ELBO terms and clustering scores on the held-out split (one host crossing each)."""
        b = self.backend
        xp = b.xp
        rng_state = self.rng.get_state()  # evaluation must not move the training stream
        self.model.eval()
        try:
            with ag.no_grad():
                sums, probas = None, []
                for y in self._batches(self.x_eval):
                    result = self.model.loss(y)
                    terms = _per_sample_terms(result)
                    v = xp.stack([xp.sum(xp.astype(terms[name].data, xp.float64))
                                  for name in ("neg_elbo",) + TERM_NAMES]
                                 + [xp.astype(result.diagnostics["kl_gap"].data, xp.float64) * float(y.shape[0])])
                    sums = v if sums is None else sums + v
                    probas.append(self.model.predict_proba(y).data)
                proba = b.to_numpy(xp.concat(probas, axis=0))
                host = b.to_numpy(sums)
                n = int(self.x_eval.shape[0])
                ev = {name: float(host[i]) / n for i, name in enumerate(("neg_elbo", *TERM_NAMES, "kl_gap"))}
                ev.update(assignment_summary(proba))
                bad = [k for k, v in ev.items() if not math.isfinite(v)]
                if bad or not np.all(np.isfinite(proba)):
                    what = f"the ELBO term {bad[0]!r}" if bad else "the cluster probabilities"
                    raise TrainingDiverged(f"training stopped: {what} became non-finite in the evaluation after "
                                           f"epoch {self.epoch}; {self._kept()}")
                if self.y_eval is not None:
                    ev.update(clustering_report(proba, self.y_eval))
                    ev["classes_owned"] = _classes_owned(np.argmax(proba, axis=1), self.y_eval)
                    ev["n_classes"] = int(np.unique(self.y_eval).size)
                if self.run_dir is not None:
                    self._write_snapshot(proba)
        finally:
            self.model.train()
            self.rng.set_state(rng_state)
        return ev

    def _write_snapshot(self, proba: np.ndarray) -> None:
        b, cfg = self.backend, self.config
        xp = b.xp
        shape = display_shape(self.data)
        limit = SNAPSHOT_ROWS_IMAGES if self.data.image_shape else SNAPSHOT_ROWS_VECTORS
        n = min(int(self.x_eval.shape[0]), limit)
        x_means, w_means, recons = [], [], []
        for y in self._batches(self.x_eval, n):
            enc = self.model.encode(y)
            x_means.append(enc["x_mean"].data)
            w_means.append(enc["w_mean"].data)
            recons.append(self.model.reconstruct(y).data)
        w0 = ag.zeros(1, cfg.Dw, dtype=self.settings.dtype, backend=b)
        prior_mean, prior_logvar = self.model.prior(w0)
        mean, logvar = prior_mean.data[0, ...], prior_logvar.data[0, ...]  # (K, Dx)
        eps = self.rng.normal((cfg.K, SAMPLES_PER_CLUSTER, cfg.Dx), dtype=self.settings.dtype)
        x = mean[:, None, :] + xp.exp(0.5 * logvar)[:, None, :] * eps
        x = ag.tensor(xp.reshape(x, (cfg.K * SAMPLES_PER_CLUSTER, cfg.Dx)), backend=b)
        samples = self.model.decode_mean(x).data
        arrays = {
            "y": np.asarray(self.data.x_eval[:n]).reshape((n,) + shape),
            "proba": proba[:n].astype(np.float32),
            "x_mean": b.to_numpy(xp.concat(x_means, axis=0)),
            "w_mean": b.to_numpy(xp.concat(w_means, axis=0)),
            "recon": b.to_numpy(xp.concat(recons, axis=0)).reshape((n,) + shape),
            "prior_mean": b.to_numpy(mean),
            "prior_logvar": b.to_numpy(logvar),
            "samples": b.to_numpy(samples).reshape((cfg.K, SAMPLES_PER_CLUSTER) + shape),
            "epoch": np.asarray(self.epoch, dtype=np.int64),
        }
        if self.y_eval is not None:
            arrays["labels"] = np.asarray(self.y_eval[:n], dtype=np.int64)
        write_atomic(self.run_dir / "snapshot.npz", lambda f: np.savez(f, **arrays))

    # -- output ---------------------------------------------------------------------------------------
    def _progress(self, v: dict, steps_done: int, elapsed: float) -> None:
        rate = steps_done / elapsed if elapsed > 0 else 0.0
        left = (self.steps_per_epoch - self.step_in_epoch) / rate if rate > 0 else 0.0
        line = (f"epoch {self.epoch}/{self.settings.epochs} step {self.step_in_epoch}/{self.steps_per_epoch} "
                f"{rate:.1f} step/s ETA {_fmt_duration(left)} | obj {v['objective']:.4g} "
                f"rec {v['reconstruction']:.4g} cond {v['conditional_prior']:.4g} w {v['w_prior']:.4g} "
                f"z {v['z_prior']:.4g} cv {v['consistency_violation']:.4g}")
        self.err.write("\r\033[K" + line)
        self.err.flush()

    def _summary(self, record: dict, seconds: float) -> None:
        t, ev = record["train"], record.get("eval", {})
        parts = [f"epoch {record['epoch']:>3}/{self.settings.epochs}", f"obj {t['objective']:.4f}",
                 f"-elbo {t['neg_elbo']:.4f}"]
        if ev:
            parts.append(f"eval -elbo {ev['neg_elbo']:.4f}")
        if "acc_paper" in ev:
            parts.append(f"acc {ev['acc_paper']:.3f}/{ev['acc_hungarian']:.3f} nmi {ev['nmi']:.3f} "
                         f"purity {ev['purity']:.3f} clusters {ev['clusters_used']}")
        parts.append(f"{seconds:.1f}s")
        print("  ".join(parts), file=self.out, flush=True)

    def draw(self) -> list:
        """Draw the run's figures (gmvae_np.plots); a failure prints one warning and training goes on."""
        try:
            from .plots import draw_run
            return draw_run(self.run_dir)
        except Exception as e:  # figures are a convenience: never let them stop a run
            first = str(e).splitlines()[0] if str(e) else ""
            print(f"warning: figures not drawn ({type(e).__name__}: {first}); training goes on",
                  file=self.err, flush=True)
            return []


def train(settings: Settings, run_dir=None, resume: bool = False, **kwargs) -> dict:
    """Run training (see :class:`Trainer` for the keyword arguments); return the last epoch's record."""
    return Trainer(settings, run_dir, resume=resume, **kwargs).run()
