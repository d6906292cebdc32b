"""Seeded random generators that draw directly on a backend's device.

A :class:`Generator` is an object its owner passes to whatever draws: the Trainer and the estimator
each make one from their seed and hand it to the model (initial weights, reparameterisation noise) and
to the batch order, so two runs in one process never share a stream. The backend record holds none.

    >>> import autograd_lite as ag
    >>> rng = ag.Generator("numpy", seed=0)
    >>> rng.normal((2, 3)).shape
    (2, 3)

:func:`default_generator` is one generator per backend, for interactive use and for code that passes
none (``ag.randn``, a layer built without ``generator=``).
"""
from __future__ import annotations

import numpy as np

from .backend import Backend, get_backend

__all__ = ["Generator", "default_generator"]


class Generator:
    """A seeded random generator that returns arrays on its backend's device.

    NumPy and array-api-strict draw from a NumPy ``PCG64`` generator (strict moves the draw onto its
    device); CuPy draws on the GPU. ``get_state``/``set_state`` give a JSON-able snapshot, so a checkpoint
    resumes the exact random stream (bit for bit on NumPy and strict; on CuPy the stream is re-seeded
    from the seed and the number of draws, which is deterministic but not the uninterrupted stream).
    """

    def __init__(self, backend: Backend | str = "numpy", seed: int = 0):
        self.backend = get_backend(backend)
        self.seed(seed)

    def __reduce__(self):
        """Pickle by backend name and state (a CuPy generator cannot be pickled itself)."""
        return _from_state, (self.backend.name, self.get_state())

    def __repr__(self) -> str:
        return f"Generator({self.backend.name!r}, seed={self._seed}, draws={self._draws})"

    def seed(self, seed: int) -> None:
        """Restart the stream from ``seed``."""
        self._seed = int(seed)
        self._draws = 0
        if self.backend.name == "cupy":
            import cupy

            self._gen = cupy.random.default_rng(self._seed)
        else:
            self._gen = np.random.Generator(np.random.PCG64(self._seed))

    def on(self, backend) -> "Generator":
        """A generator on another backend that continues this one's stream (see ``set_state``)."""
        moved = Generator(backend, self._seed)
        moved.set_state(self.get_state())
        return moved

    # -- state -------------------------------------------------------------------------------------
    def get_state(self) -> dict:
        if self.backend.name == "cupy":
            return {"kind": "cupy", "seed": self._seed, "draws": self._draws}
        return {"kind": "pcg64", "state": self._gen.bit_generator.state, "seed": self._seed,
                "draws": self._draws}

    def set_state(self, state: dict) -> None:
        if state.get("kind") == "pcg64" and self.backend.name != "cupy":
            self._seed, self._draws = int(state["seed"]), int(state["draws"])
            self._gen = np.random.Generator(np.random.PCG64(self._seed))
            self._gen.bit_generator.state = state["state"]
        else:
            # Across kinds (or on CuPy) the exact stream cannot be restored: continue deterministically
            # from a stream keyed by (seed, number of draws so far).
            seed, draws = int(state["seed"]), int(state["draws"])
            self.seed(seed * 1_000_003 + draws)
            self._seed, self._draws = seed, draws

    # -- draws -------------------------------------------------------------------------------------
    def _finish(self, host_or_device_array, dtype):
        self._draws += 1
        b = self.backend
        if b.name == "cupy":
            return host_or_device_array
        a = host_or_device_array.astype(np.dtype(dtype), copy=False)
        if b.name == "numpy":
            return a
        return b.xp.asarray(a, device=b.device)

    def normal(self, shape, dtype="float32"):
        """Standard normal draws of the given shape."""
        if self.backend.name == "cupy":
            return self._finish(self._gen.standard_normal(tuple(shape), dtype=dtype), dtype)
        return self._finish(self._gen.standard_normal(tuple(shape), dtype=np.dtype(dtype)), dtype)

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        """Uniform draws on [low, high)."""
        if self.backend.name == "cupy":
            u = self._gen.random(tuple(shape), dtype=dtype)
            return self._finish(u * (high - low) + low, dtype)
        u = self._gen.random(tuple(shape), dtype=np.dtype(dtype))
        return self._finish((u * (high - low) + low).astype(np.dtype(dtype)), dtype)

    def permutation(self, n: int):
        """A random permutation of range(n) as an int64 array on the device."""
        p = self._gen.permutation(int(n))
        return self._finish(p, "int64")


def _from_state(backend_name: str, state: dict) -> Generator:
    rng = Generator(backend_name, int(state["seed"]))
    rng.set_state(state)
    return rng


_DEFAULTS: dict[str, Generator] = {}


def default_generator(backend="numpy") -> Generator:
    """The generator that draws when none is passed (seed 0 at first use); one per backend name."""
    b = get_backend(backend)
    if b.name not in _DEFAULTS:
        _DEFAULTS[b.name] = Generator(b, 0)
    return _DEFAULTS[b.name]
