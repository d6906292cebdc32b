"""Reading a run directory for its figures: its config, metric records and snapshot, and whether it changed.

The readers of gmvae_np.plots, ``./run.sh plot RUN_DIR --follow`` and the docs' figure scripts. They take
no lock: a run may be read while it trains. What the files hold, and their one writer: gmvae_np.rundir.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

import numpy as np

from .rundir import CONFIG, METRICS, SNAPSHOT, RunDirError, read_metrics
from .snapshot import snapshot_problem

__all__ = ["Run", "read_run", "read_snapshot", "read_metrics", "signature", "run_finished", "WATCHED", "RunDirError"]

WATCHED = (CONFIG, METRICS, SNAPSHOT)
"""The files whose change means there is something new to draw."""


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
    problem = snapshot_problem(snap)
    if problem:
        raise RunDirError(f"{path}{problem}")
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
