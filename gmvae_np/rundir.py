"""The run directory: what a training run writes, the one process that may write it, and its readers.

Every file is written through :class:`RunDir` (by gmvae_np.train.Trainer, gmvae_np.restarts and
gmvae_np.series) and read through the readers below (by ``--resume``) and those of gmvae_np.runread (by
gmvae_np.plots and ``./run.sh plot RUN_DIR --follow``). The names are a contract:

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

A run with restarts (gmvae_np.restarts) keeps each restart in ``restart<i>/``, an ordinary run directory,
and its screening and choice in ``restarts.json``; a series of seeds (gmvae_np.series) each seed in
``seed<k>/``, its seeds and settings in ``seeds.json`` and its table in ``summary.json``. Those files,
and the checkpoint paths, are read and written here alone.

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

import numpy as np

from .atomic import write_atomic
from .presets import Settings
from .snapshot import display_shape

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go unlocked
    fcntl = None

__all__ = ["RunDirError", "RunDir", "read_metrics", "read_timing", "read_settings"]

CONFIG, METRICS, TIMING, SNAPSHOT, LOCK = "config.json", "metrics.jsonl", "timing.jsonl", "snapshot.npz", ".lock"
RESTARTS, SEEDS, SUMMARY = "restarts.json", "seeds.json", "summary.json"
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
        from .checkpoint import UNREADABLE

        try:
            with np.load(path, allow_pickle=False) as f:
                return {name: f[name] for name in f.files}
        except UNREADABLE as e:
            raise RunDirError(f"cannot read the neighbour graph {path}: the file is truncated or corrupt "
                              f"({type(e).__name__}); delete it and it is built again") from None

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


    # -- a run with restarts, a series of seeds: their records in the root ---------------------------
    def has_run(self) -> bool:
        """Whether the folder holds a run to continue: a checkpoint, or the record of a run with restarts."""
        return self.last.is_file() or (self.path / RESTARTS).is_file()

    def restart(self, i: int) -> "RunDir":
        """The run directory of restart i (1-based) of a run with restarts."""
        return RunDir(self.path / f"restart{i}")

    def seed(self, seed: int) -> "RunDir":
        """The run directory of one seed of a series."""
        return RunDir(self.path / f"seed{seed}")

    def read_restarts(self) -> dict | None:
        """restarts.json (the settings, each screened restart's criterion values, the choice); None if absent."""
        state = self._read_record(RESTARTS, "start the run again with a new --out")
        if state is not None and not (isinstance(state.get("screened"), dict) and "settings" in state):
            raise RunDirError(f"{self.path / RESTARTS} cannot be read (no 'screened' table or no settings); "
                              f"start the run again with a new --out")
        return state

    def write_restarts(self, state: dict) -> None:
        self.write_json(RESTARTS, state)

    def read_series(self) -> dict | None:
        """seeds.json ({"experiment", "seeds", "settings"}) of a series of seeds; None if absent."""
        series = self._read_record(SEEDS, "start the series again with --out")
        if series is not None:
            try:
                series["seeds"] = [int(s) for s in series["seeds"]]
                series["settings"] = Settings.from_dict(series["settings"])
            except (ValueError, KeyError, TypeError) as e:
                raise RunDirError(f"{self.path / SEEDS} cannot be read ({e}); start the series again with "
                                  f"--out") from None
        return series

    def write_series(self, experiment: str, seeds: list, settings: Settings) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _unwritable(self.path, e) from None
        self.write_json(SEEDS, {"experiment": experiment, "seeds": seeds, "settings": settings.to_dict()})

    def _read_record(self, name: str, fix: str) -> dict | None:
        path = self.path / name
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RunDirError(f"{path} cannot be read ({e}); {fix}") from None
        if not isinstance(value, dict):
            raise RunDirError(f"{path} holds a {type(value).__name__}, not a JSON object; {fix}")
        return value


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
# The readers of what resume needs (no lock: a run may be read while it trains; gmvae_np.runread has
# those of the figures)
# --------------------------------------------------------------------------------------------------
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


def read_timing(run_dir) -> list[dict]:
    """timing.jsonl of ``run_dir``, one record per epoch sorted by epoch ([] before the first epoch ends).

    Read as :func:`read_metrics` reads metrics.jsonl: a half-written last line is skipped, and of an epoch
    written twice (a resumed run) the later line wins."""
    return read_metrics(pathlib.Path(run_dir) / TIMING)


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
