"""Checkpoints: one ``.npz`` file holding a model, its optimizer and everything needed to resume.

Layout of the file (a zip of ``.npy`` arrays, readable by ``numpy.load`` without pickle):

    model/<parameter or buffer name>    the model's state_dict(), host NumPy arrays
    optimizer/<path>                    every array inside the optimizer's state_dict() (Adam's m and v)
    __meta__                            a JSON string: format_version, package version, the run config,
                                        the optimizer's non-array state (step counts, hyperparameters) with
                                        placeholders where its arrays were, the RNG state, extra

Writing is atomic (atomic.py): the file is written under a temporary name in the same directory,
flushed and fsync'ed, then renamed over the target with ``os.replace``, so a crash leaves either the old
checkpoint or the new one, never half of one, with the permissions of any new file. Reading never unpickles (``allow_pickle=False``) and refuses, with one
line naming the file and what to do, a missing file, a truncated or corrupt one, and one written by a
newer version of the format. Arrays are stored on the host, so a checkpoint written on one backend
(say CuPy) restores onto any other.

    >>> save_checkpoint("run/ckpt.npz", model=model, optimizer=opt, rng_state=model.rng.get_state(),
    ...                 config={"model": model.config.to_dict()}, extra={"epoch": 3})
    >>> ckpt = load_checkpoint("run/ckpt.npz")
    >>> restore(ckpt, model, opt)                       # checks the settings, then loads the states
    >>> model.rng.set_state(ckpt.rng_state)             # to continue the same random stream
"""
from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_atomic

UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)
"""What reading a truncated, emptied or corrupt .npz raises (the checkpoints', the neighbour graph's)."""

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "restore"]

FORMAT_VERSION = 1
"""Bumped whenever the layout changes; a reader refuses files with a larger number."""

_META = "__meta__"
_MODEL = "model/"
_OPTIMIZER = "optimizer/"
_ARRAY = "__array__"   # placeholder key in the optimizer's JSON skeleton


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, read or restored; the message names the file and the fix."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (arrays on the host unless ``load_checkpoint(backend=...)``)."""

    config: dict
    model_state: dict
    optimizer_state: dict | None = None
    rng_state: dict | None = None
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    package_version: str | None = None
    path: str | None = None


# -- writing ---------------------------------------------------------------------------------------

def _package_version() -> str:
    """The version of the code running (gmvae_np.__version__), recorded in checkpoints and config.json.

    Not importlib.metadata's: that names the installed distribution, which is "unknown" from a source
    tree and may be another copy than the one imported.
    """
    from .version import __version__
    return __version__


def _json_default(value):
    """Let NumPy scalars, tuples and the config dataclass through json.dumps; refuse anything else."""
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _split_arrays(value, prefix: str, arrays: dict):
    """A JSON-able skeleton of ``value`` with every NumPy array moved into ``arrays`` under a path key."""
    if isinstance(value, np.ndarray):
        arrays[prefix] = value
        return {_ARRAY: prefix}
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise CheckpointError(f"optimizer state keys must be strings, got {k!r}")
        return {k: _split_arrays(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]
    return value


def _join_arrays(value, arrays: dict):
    """The inverse of :func:`_split_arrays`."""
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return arrays[value[_ARRAY]]
        return {k: _join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays) for v in value]
    return value


def save_checkpoint(path, *, model, optimizer=None, rng_state: dict | None = None, config: dict,
                    extra: dict | None = None) -> Path:
    """Write model (and optimizer) state, config, RNG state and ``extra`` to one ``.npz``, atomically.

    ``config`` is the run's configuration (a dict; a GMVAEConfig is accepted and stored as its dict);
    ``extra`` holds anything else JSON-able (epoch, step, best score). Returns the path written.
    """
    path = Path(path)
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config must be a dict (e.g. {{'model': model.config.to_dict()}}), "
                              f"got {type(config).__name__}")
    arrays = {_MODEL + name: np.asarray(a) for name, a in model.state_dict().items()}
    optimizer_skeleton = None
    if optimizer is not None:
        optimizer_skeleton = _split_arrays(optimizer.state_dict(), _OPTIMIZER.rstrip("/"), arrays)
    meta = {
        "format_version": FORMAT_VERSION,
        "package": "gmvae-np",
        "package_version": _package_version(),
        "config": config,
        "model_keys": [k[len(_MODEL):] for k in arrays if k.startswith(_MODEL)],
        "optimizer": optimizer_skeleton,
        "rng_state": rng_state,
        "extra": extra or {},
    }
    try:
        meta_json = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: config, rng_state and extra must be JSON-serialisable ({exc}); store "
                              f"plain numbers, strings, lists and dicts") from None
    arrays[_META] = np.array(meta_json)

    return write_atomic(path, lambda f: np.savez(f, **arrays))


# -- reading ---------------------------------------------------------------------------------------

def load_checkpoint(path, *, backend=None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; refuse clearly what cannot be trusted.

    Arrays come back as host NumPy arrays, which :func:`restore` moves onto the model's backend. With
    ``backend`` ("numpy", "cupy", "strict" or a Backend), the model state is put on that backend's device
    instead (to use the weights directly); the optimizer state stays on the host, where
    ``Optimizer.load_state_dict`` expects it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; check the path or list the run directory "
                              f"for the checkpoints it holds")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = list(npz.files)
            if _META not in files:
                raise CheckpointError(f"{path}: not a gmvae-np checkpoint (no {_META} record); pass a file "
                                      f"written by gmvae_np.checkpoint.save_checkpoint")
            meta = json.loads(str(npz[_META]))
            arrays = {k: npz[k] for k in files if k != _META}   # reads (and CRC-checks) every array now
    except CheckpointError:
        raise
    except UNREADABLE as exc:
        raise CheckpointError(f"{path}: cannot be read, the file is truncated or corrupt ({type(exc).__name__}: "
                              f"{exc}); use an earlier checkpoint of the run or retrain") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise CheckpointError(f"{path}: the checkpoint's metadata has no format_version; the file is corrupt "
                              f"or not a gmvae-np checkpoint")
    version = meta["format_version"]
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer gmvae-np ({meta.get('package_version', '?')}, "
                              f"checkpoint format {version}); this version ({_package_version()}) reads "
                              f"format {FORMAT_VERSION} and older: upgrade gmvae-np to load it")
    try:
        model_state = {k: arrays[_MODEL + k] for k in meta["model_keys"]}
        optimizer_state = None if meta.get("optimizer") is None else _join_arrays(meta["optimizer"], arrays)
    except KeyError as exc:
        raise CheckpointError(f"{path}: the array {exc} listed in the metadata is missing; the file is corrupt, "
                              f"use an earlier checkpoint of the run") from None
    if backend is not None:
        from autograd_lite.backend import get_backend

        b = get_backend(backend)
        model_state = {k: b.asarray(a, dtype=str(a.dtype)) for k, a in model_state.items()}
    return Checkpoint(config=meta.get("config", {}), model_state=model_state, optimizer_state=optimizer_state,
                      rng_state=meta.get("rng_state"), extra=meta.get("extra") or {}, format_version=version,
                      package_version=meta.get("package_version"), path=str(path))


# -- restoring -------------------------------------------------------------------------------------

def _model_settings(config: dict) -> dict:
    """The model's settings inside a run config: config["model"] if present, else the config itself."""
    inner = config.get("model") if isinstance(config, dict) else None
    return inner if isinstance(inner, dict) else (config if isinstance(config, dict) else {})


def _normalised(value):
    return list(value) if isinstance(value, tuple) else value


def restore(checkpoint: Checkpoint, model, optimizer=None) -> Checkpoint:
    """Load a checkpoint's states into ``model`` (and ``optimizer``) after checking they match.

    Every model setting the checkpoint records (input_shape, arch, K, Dx, ...) must equal the model's;
    otherwise nothing is loaded and the error lists the differing settings. The RNG state is left to the
    caller: ``model.rng.set_state(checkpoint.rng_state)``. Returns the checkpoint.
    """
    where = checkpoint.path or "checkpoint"
    mine = model.config.to_dict() if hasattr(model, "config") else {}
    theirs = _model_settings(checkpoint.config)
    differing = [f"{k} (checkpoint {_normalised(theirs[k])!r}, model {_normalised(mine[k])!r})"
                 for k in mine if k in theirs and _normalised(theirs[k]) != _normalised(mine[k])]
    if differing:
        raise CheckpointError(f"{where}: was saved from a model with different settings: {'; '.join(differing)}; "
                              f"build the model from the checkpoint's config "
                              f"(GMVAE(GMVAEConfig.from_dict(checkpoint.config['model'])))")
    if optimizer is not None and checkpoint.optimizer_state is None:
        raise CheckpointError(f"{where}: holds no optimizer state; restore without an optimizer (a fresh "
                              f"optimizer starts from zero moments)")
    before = model.state_dict()
    try:
        model.load_state_dict(checkpoint.model_state)
        if optimizer is not None:
            optimizer.load_state_dict(checkpoint.optimizer_state)
    except (ValueError, TypeError) as exc:
        model.load_state_dict(before)   # all or nothing
        raise CheckpointError(f"{where}: does not fit this model/optimizer ({exc})") from None
    return checkpoint
