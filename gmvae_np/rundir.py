"""The run directory: what a training run writes, the one process that may write it, and its readers.

Every file is written through :class:`RunDir` (by gmvae_np.train.Trainer) and read through the readers
below (by gmvae_np.plots, ``./run.sh plot RUN_DIR --follow`` and ``--resume``). The names are a contract:

    config.json          every setting, the model config, package version, backend and device,
                         experiment name, seed and data source
    metrics.jsonl        one JSON object per epoch, flushed line by line:
                         {"epoch", "step", "train": {objective, neg_elbo, reconstruction,
                          conditional_prior, w_prior, z_prior, consistency_violation},
                          "diagnostics": {max_q, batch_entropy, kl_gap, clusters_used},
                          "eval": {neg_elbo, the terms, kl_gap, max_q, batch_entropy, acc_paper,
                          acc_hungarian, nmi, ari, purity, clusters_used, classes_owned, n_classes}}
                         ("eval" only on evaluated epochs). No clock times, so two runs with the same
                         seed on NumPy write it byte for byte alike.
    timing.jsonl         {"epoch", "step", "seconds" (since the start, across resumes),
                          "epoch_seconds", "eval_seconds", "steps_per_second"} per epoch
    checkpoints/last.npz the latest state (each epoch, and on interruption); best.npz the lowest eval
                         neg_elbo so far (chosen without labels, even when the data has them)
    snapshot.npz         the latest evaluation's arrays for the figures (gmvae_np.snapshot)
    neighbours-<key>.npz the neighbour graph of the training rows (gmvae_np.neighbours), named by the
                         data's SHA-256 and the graph's settings; neighbours-<key>.json its summary.
                         A run with restarts, or a series of seeds, keeps it in its root, where every
                         restart and seed reads it
    figures/             drawn by gmvae_np.plots.draw_run
    .lock                the writer's lock

One writer at a time. :meth:`RunDir.create` (a new run) and :meth:`RunDir.open_for_resume` take an
exclusive ``fcntl.flock`` on ``.lock`` and write the process id into it; a second process that would
write into the folder is refused with one line naming that pid (two writers would interleave their
epochs in metrics.jsonl). The kernel drops the lock when its holder ends, however it ends (``kill -9``
too), so a killed run never blocks its ``--resume``. Readers take no lock. Where there is no ``fcntl``
(Windows), or the file system refuses locks, runs go unlocked.

I/O faults. Every write goes through :meth:`RunDir.writing`: an OSError (no space left, permission lost,
a read-only file system) becomes one :class:`RunDirError` line naming the file and the fault and saying
how to go on. Files are replaced atomically (gmvae_np.atomic), so checkpoints/last.npz stays resumable.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import platform
from dataclasses import dataclass, field

import numpy as np

from .atomic import write_atomic
from .presets import Settings
from .snapshot import display_shape

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go unlocked
    fcntl = None

__all__ = ["RunDirError", "RunDir", "Run", "read_run", "read_metrics", "read_snapshot", "read_settings",
           "signature", "run_finished", "WATCHED"]

CONFIG, METRICS, TIMING, SNAPSHOT, LOCK = "config.json", "metrics.jsonl", "timing.jsonl", "snapshot.npz", ".lock"
WATCHED = (CONFIG, METRICS, SNAPSHOT)
"""The files whose change means there is something new to draw."""
_FIXES = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
          errno.EROFS: "make the file system writable again", errno.EACCES: "restore write permission",
          errno.EPERM: "restore write permission"}


class RunDirError(ValueError):
    """A run directory that cannot be used: not one, unreadable, held by another process, or not writable."""


# ------------------------------------------------------------------------------------------------------
# The writer
# ------------------------------------------------------------------------------------------------------
class RunDir:
    """The run directory of one training run, as its one writer sees it: every write goes through here."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.created: list[pathlib.Path] = []   # folders made by create(), removed by abandon()
        self._lock = None                        # the open lock file while the lock is held

    @property
    def last(self) -> pathlib.Path:
        return self.path / "checkpoints" / "last.npz"

    @property
    def best(self) -> pathlib.Path:
        return self.path / "checkpoints" / "best.npz"

    # -- claiming the folder ------------------------------------------------------------------------
    def create(self) -> None:
        """A new run: make the folder, take the lock, refuse a folder that already holds a run."""
        d = self.path
        try:
            missing = [p for p in (d / "checkpoints", d, *d.parents) if not p.exists()]
            (d / "checkpoints").mkdir(parents=True, exist_ok=True)
            self.created = missing[::-1]
        except OSError as e:
            raise _unwritable(d, e) from None
        self.lock()
        if self.last.is_file():
            self.unlock()
            raise RunDirError(f"{d} already holds a run (checkpoints/last.npz); continue it with --resume {d} "
                              f"or choose a new --out")
        try:
            probe = d / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            self.abandon()
            raise _unwritable(d, e) from None

    def open_for_resume(self) -> None:
        """An existing run: refuse a folder without a checkpoint, take the lock."""
        d = self.path
        if not d.is_dir():
            raise RunDirError(f"cannot resume: {d} does not exist; check the path given to --resume")
        if (d / LOCK).is_file() or self.last.is_file():   # a live writer always has its lock file there
            self.lock()
        if not self.last.is_file():
            self.unlock()
            raise RunDirError(f"cannot resume: {d} has no checkpoints/last.npz (training never finished "
                              f"an epoch there); start a new run with --out")

    def lock(self) -> None:
        """Hold RUN_DIR/.lock (exclusive flock, our pid inside) until :meth:`unlock` or the process ends."""
        if self._lock is not None or fcntl is None:
            return
        path = self.path / LOCK
        try:
            f = open(path, "a+b")   # never truncates a holder's pid before we hold the lock
        except OSError as e:
            if self.last.is_file():   # an existing run: the folder is the one to fix
                raise self._fault(path, e) from None
            raise _unwritable(self.path, e) from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _pid_in(f)
            f.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = "this process" if holder == str(os.getpid()) else "another process"
                raise RunDirError(f"{self.path} is in use: {who} (pid {holder}) is training into it; wait for it "
                                  f"to finish, or stop it and continue with --resume {self.path}") from None
            return   # a file system without locks (ENOLCK, EOPNOTSUPP): go unlocked
        try:
            f.truncate(0)
            f.write(f"{os.getpid()}\n".encode())
            f.flush()
        except OSError:   # a full disk: the lock holds all the same; its pid reads "unknown"
            pass
        self._lock = f

    @contextlib.contextmanager
    def held(self):
        """The folder made if need be and locked for the ``with`` block (a run with restarts holds its root)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _unwritable(self.path, e) from None
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()   # closing the file releases the flock
            self._lock = None

    def abandon(self) -> None:
        """Setting up failed: release the lock and remove the folders create() made while still empty."""
        if self.path in self.created:   # a folder of ours: the lock file goes with it
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
        self.unlock()
        for d in reversed(self.created):
            with contextlib.suppress(OSError):
                d.rmdir()   # only if empty: nothing of the user's is ever removed

    # -- writing --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, path):
        """Turn an I/O fault while writing ``path`` into one RunDirError line (file, fault, what to do)."""
        try:
            yield
        except OSError as e:
            raise self._fault(path, e) from None

    def _fault(self, path, e: OSError) -> RunDirError:
        fix = _FIXES.get(e.errno, "fix that")
        try:
            kept = self.last.is_file()
        except OSError:
            kept = False
        then = (f"the last good checkpoint {self.last} is kept: {fix}, then continue with --resume {self.path}"
                if kept else f"no checkpoint was written yet: {fix}, then start the run again")
        return RunDirError(f"cannot write {path}: {e.strerror or e}; {then}")

    def write_config(self, settings, data, backend, config, steps_per_epoch: int, graph: dict | None = None) -> None:
        """config.json: every setting, the model config, versions, backend and data (read by --resume, plots),
        and the neighbour graph's summary when there is one."""
        from .checkpoint import _package_version

        self.write_json(CONFIG, {
            "experiment": settings.experiment,
            "seed": settings.seed,
            "backend": backend.name,
            "device": str(backend.device),
            "version": _package_version(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "settings": {**settings.to_dict(), "input_shape": list(display_shape(data)),
                         "likelihood": config.likelihood},
            "model": config.to_dict(),
            "data": {
                "name": data.name, "source": data.extra.get("source", data.name), "summary": data.summary(),
                "n_train": int(data.x_train.shape[0]), "n_eval": int(data.x_eval.shape[0]),
                "eval_split": "test" if data.has_test else "train", "has_labels": data.y_eval is not None,
                "image_shape": list(data.image_shape) if data.image_shape else None,
            },
            "training": {"steps_per_epoch": steps_per_epoch,
                         "last_partial_batch": "dropped", "optimizer": "Adam(betas=(0.9, 0.999), eps=1e-8)"},
            **({"neighbour_graph": {k: v for k, v in graph.items() if k != "line"}} if graph else {}),
        })

    def write_json(self, name: str, value: dict) -> None:
        text = json.dumps(value, indent=2) + "\n"
        with self.writing(self.path / name):
            write_atomic(self.path / name, lambda f: f.write(text.encode("utf-8")))

    def start_logs(self, resume_epoch: int | None) -> None:
        """Empty metrics.jsonl and timing.jsonl for a new run; on resume keep their lines before the epoch."""
        for name in (METRICS, TIMING):
            with self.writing(self.path / name):
                if resume_epoch is None:
                    (self.path / name).write_bytes(b"")
                else:
                    _keep_lines_before(self.path / name, resume_epoch)

    def append(self, name: str, record: dict) -> None:
        """One JSON line, flushed (a half-written last line is skipped by the readers and dropped on resume)."""
        with self.writing(self.path / name), open(self.path / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(", ", ": ")) + "\n")
            f.flush()

    def write_snapshot(self, arrays: dict) -> None:
        with self.writing(self.path / SNAPSHOT):
            write_atomic(self.path / SNAPSHOT, lambda f: np.savez(f, **arrays))

    def neighbours_path(self, key: str) -> pathlib.Path:
        return self.path / f"neighbours-{key}.npz"

    def read_neighbours(self, key: str):
        """The arrays of the stored neighbour graph ``key`` (a dict), or None when there is none."""
        path = self.neighbours_path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                return {name: f[name] for name in f.files}
        except (OSError, ValueError, KeyError) as e:
            raise RunDirError(f"cannot read the neighbour graph {path} ({e}); delete it and it is built "
                              f"again") from None

    def write_neighbours(self, key: str, arrays: dict, info: dict | None = None) -> None:
        """neighbours-<key>.npz (atomic), and a JSON summary beside it when ``info`` is given."""
        path = self.neighbours_path(key)
        with self.writing(path):
            write_atomic(path, lambda f: np.savez(f, **arrays))
        if info is not None:
            self.write_json(path.with_suffix(".json").name, info)

    def save_checkpoint(self, path, **kwargs) -> None:
        """gmvae_np.checkpoint.save_checkpoint (atomic), with its I/O faults as RunDirError."""
        from .checkpoint import save_checkpoint

        with self.writing(path):
            save_checkpoint(path, **kwargs)


def _unwritable(d: pathlib.Path, e: OSError) -> RunDirError:
    return RunDirError(f"cannot write to the run directory {d} ({e.strerror or e}); choose a writable --out")


def _pid_in(f) -> str:
    try:
        f.seek(0)
        text = f.read(32).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _keep_lines_before(path: pathlib.Path, epoch: int) -> None:
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


# --------------------------------------------------------------------------------------------------
# The readers (no lock: a run may be read while it trains)
# --------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a run directory holds: its config, its metric records (one per epoch) and its snapshot."""

    path: pathlib.Path
    config: dict
    metrics: list = field(default_factory=list)
    snapshot: dict | None = None

    @property
    def settings(self) -> dict:
        settings = self.config.get("settings")
        return settings if isinstance(settings, dict) else {}

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment") or self.path.name)


def read_metrics(path) -> list[dict]:
    """Parse metrics.jsonl into a list of per-epoch records, sorted by epoch.

    Lines that do not parse are skipped: the last one may be half written while training runs, and a
    run that crashed and resumed may have left one behind. When an epoch appears twice (a run resumed
    from an earlier checkpoint) the later line wins.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    by_epoch: dict = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), (int, float)):
                continue
            by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def read_snapshot(path) -> dict | None:
    """Load snapshot.npz into a dict of NumPy arrays (None when there is no snapshot yet).

    ``y`` and ``proba`` are required; the other arrays are optional and the panels that need a missing
    one are left out. Shapes are checked against each other so a bad file gives one clear error.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            snap = {key: np.asarray(npz[key]) for key in npz.files}
    except Exception as exc:  # a zip, pickle or format error: say which file and what to do
        raise RunDirError(f"{path} cannot be read ({type(exc).__name__}: {exc}); "
                          "rerun the evaluation to rewrite it") from None
    for key in ("y", "proba"):
        if key not in snap:
            raise RunDirError(f"{path} has no '{key}' array; it holds {sorted(snap)}")
    n = snap["y"].shape[0] if snap["y"].ndim else 0
    if n == 0:
        raise RunDirError(f"{path}: 'y' has no rows (shape {snap['y'].shape}); the snapshot needs at least "
                          "one evaluation example")
    proba = snap["proba"]
    if proba.ndim != 2 or proba.shape[0] != n or proba.shape[1] < 1:
        raise RunDirError(f"{path}: 'proba' has shape {proba.shape}, expected (n, K) with n = {n} "
                          "rows like 'y'")
    k = proba.shape[1]
    for key in ("labels", "x_mean", "w_mean", "recon"):
        if key in snap and (snap[key].ndim == 0 or snap[key].shape[0] != n):
            raise RunDirError(f"{path}: '{key}' has shape {snap[key].shape} but 'y' has {n} rows")
    if "recon" in snap and snap["recon"].size != snap["y"].size:
        raise RunDirError(f"{path}: 'recon' has shape {snap['recon'].shape}, expected the shape of "
                          f"'y' {snap['y'].shape}")
    for key in ("prior_mean", "prior_logvar", "samples"):
        if key in snap and (snap[key].ndim < 2 or snap[key].shape[0] != k):
            raise RunDirError(f"{path}: '{key}' has shape {snap[key].shape}, expected K = {k} "
                              "rows like 'proba' has columns")
    if "prior_mean" in snap and "prior_logvar" in snap \
            and snap["prior_mean"].shape != snap["prior_logvar"].shape:
        raise RunDirError(f"{path}: 'prior_mean' {snap['prior_mean'].shape} and 'prior_logvar' "
                          f"{snap['prior_logvar'].shape} differ in shape")
    return snap


def read_run(run_dir) -> Run:
    """Read config.json, metrics.jsonl and snapshot.npz of ``run_dir``.

    Raises RunDirError when the folder does not exist or holds no config.json (it is not a run
    directory), or when a file is unreadable.
    """
    path = pathlib.Path(run_dir)
    if not path.exists():
        raise RunDirError(f"run directory {path} does not exist; pass the --out folder of a training run")
    if not path.is_dir():
        raise RunDirError(f"{path} is a file, not a run directory; pass the --out folder of a training run")
    config_path = path / "config.json"
    if not config_path.is_file():
        inner = sorted(p.name for p in path.iterdir() if (p / "config.json").is_file())
        if inner:   # a series of seeds: RUN_DIR/seed1, RUN_DIR/seed2, ...
            shown = ", ".join(inner[:3]) + (", ..." if len(inner) > 3 else "")
            raise RunDirError(f"{path} holds {len(inner)} run directories ({shown}) but is not one "
                              f"itself; pass one of them, e.g. {path / inner[0]}")
        raise RunDirError(f"{path} has no config.json, so it is not a run directory; pass the --out "
                          "folder of a training run")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{config_path} is not valid JSON ({exc}); it is written when training starts, "
                          "so restart the run or restore the file") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{config_path} holds a {type(config).__name__}, expected a JSON object")
    return Run(path=path, config=config, metrics=read_metrics(path / "metrics.jsonl"),
               snapshot=read_snapshot(path / "snapshot.npz"))


def read_settings(run_dir) -> Settings:
    """The settings stored in a run directory's config.json (what ``--resume`` continues with)."""
    path = pathlib.Path(run_dir) / CONFIG
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


def signature(run_dir) -> tuple:
    """What changes when training writes: modification time and size of each WATCHED file."""
    out = []
    for name in WATCHED:
        try:
            st = (pathlib.Path(run_dir) / name).stat()
            out.append((name, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((name, None, None))
    return tuple(out)


def run_finished(run_dir) -> bool:
    """True once metrics.jsonl holds every epoch the config asks for (epochs counted from 0 or 1)."""
    try:
        run = read_run(run_dir)
    except RunDirError:
        return False
    epochs = run.settings.get("epochs")
    if not isinstance(epochs, int) or epochs <= 0 or not run.metrics:
        return False
    return len(run.metrics) >= epochs or run.metrics[-1]["epoch"] >= epochs
