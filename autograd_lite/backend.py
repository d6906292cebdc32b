"""Array backends: one small record per name (``numpy``, ``cupy``, ``strict``).

A :class:`Backend` bundles everything the engine needs to know about where arrays live:

* ``xp``      the array namespace (the Python array API standard, through ``array-api-compat``),
* ``device``  the device arrays are created on,
* ``to_numpy`` the one sanctioned way back to the host.

It holds no state that changes: random generators are separate objects (``autograd_lite.random``),
owned by whoever draws.

Library code never imports NumPy or CuPy to compute: it calls ``backend.xp`` (or ``array_namespace`` of
the data) and creates arrays with ``device=backend.device``. The ``strict`` backend is
``array-api-strict`` on a non-default device: it rejects NumPy calls, non-standard array methods,
host conversions and arrays created on the wrong device, so a CPU-only test run proves that the same
lines will run on CuPy.
"""
from __future__ import annotations

import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "strict")
GPU_INSTALL_HINT = "pip install 'gmvae-np[gpu]'"
CPU_BLOCK_SIZE = 1 << 16  # elements per block of in-place elementwise work on the host (Backend.block_size)


class BackendError(ValueError):
    """An unknown backend name, or a backend that cannot run on this machine."""


class BackendMismatchError(ValueError):
    """Tensors that live on two different backends were combined."""


class Backend:
    """Everything the engine needs to know about one array library on one device."""

    def __init__(self, name: str, xp, device, block_size: int | None = None):
        self.name = name
        self.xp = xp
        self.device = device
        # How many elements a long chain of in-place elementwise passes (an optimizer step) should
        # handle at a time: on a CPU, 64K float32 values (256 KB) keep a block and its temporaries in
        # the cache from the first pass to the last; on a GPU, None (whole arrays, one kernel a pass).
        self.block_size = block_size

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"

    def __reduce__(self):
        """Pickle a backend by its name: unpickling gives this process's shared record of that name.

        The record holds a module (``xp``) and a device, which cannot be pickled and mean nothing in
        another process anyway; the name is what a model needs to find its arrays' library again.
        """
        return get_backend, (self.name,)

    # -- dtypes and transfer -----------------------------------------------------------------------
    def dtype(self, name):
        """The namespace's dtype object for a name such as ``"float32"`` (or a dtype, returned as is)."""
        if isinstance(name, str):
            try:
                return getattr(self.xp, name)
            except AttributeError:
                raise BackendError(f"unknown dtype {name!r}; use 'float32' or 'float64'") from None
        return name

    def asarray(self, data, dtype=None):
        """Put host data (nested lists, NumPy arrays, Python scalars) on this backend's device."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        if self.name == "cupy":
            return self.xp.asarray(data, dtype=dtype)
        if self.name == "strict" and isinstance(data, np.ndarray):
            # hand array-api-strict a plain C-ordered copy (np.ascontiguousarray would turn a 0-d
            # array into shape (1,))
            data = np.array(data, order="C", copy=True)
        return self.xp.asarray(data, dtype=dtype, device=self.device)

    def to_numpy(self, a) -> np.ndarray:
        """Copy an array of this backend to a NumPy array on the host (the only host crossing).

        Always a copy, on NumPy too: parameters are updated in place, so a view would change under the
        caller's feet at the next optimizer step.
        """
        if self.name == "numpy":
            return np.array(a, copy=True)
        if self.name == "cupy":
            return a.get()
        # array-api-strict: only the CPU device may be exported, so move there first
        import array_api_strict

        cpu = array_api_strict.Device("CPU_DEVICE")
        return np.asarray(self.xp.asarray(a, device=cpu, copy=True))

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU); used by benchmarks."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()


def dtype_name(dtype) -> str:
    """The plain name of any backend's dtype, ``"float32"``, ``"int64"``, ``"bool"``: the name every
    namespace knows. NumPy and CuPy dtypes (or scalar types) have it; array-api-strict prints its module
    before it."""
    if isinstance(dtype, (np.dtype, type)):
        return np.dtype(dtype).name
    return str(dtype).rsplit(".", 1)[-1]


_BACKENDS: dict[str, Backend] = {}


def _make_backend(name: str) -> Backend:
    if name == "numpy":
        import array_api_compat.numpy as xp

        return Backend("numpy", xp, "cpu", block_size=CPU_BLOCK_SIZE)
    if name == "strict":
        import array_api_strict

        # A non-default device: creating an array without device=... lands on CPU_DEVICE and any
        # mixing with ours raises, so forgotten device arguments are caught on a CPU-only machine.
        return Backend("strict", array_api_strict, array_api_strict.Device("device1"),
                       block_size=CPU_BLOCK_SIZE)
    if name == "cupy":
        try:
            import cupy
            import array_api_compat.cupy as xp
        except Exception as exc:  # ImportError, or a CUDA library that fails to load
            raise BackendError(
                f"backend 'cupy' needs CuPy, which could not be imported ({type(exc).__name__}: {exc}); "
                f"install it with: {GPU_INSTALL_HINT}") from None
        needs = (f"it needs an NVIDIA GPU with its driver and CuPy ({GPU_INSTALL_HINT}); "
                 f"elsewhere use --backend numpy")
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            raise BackendError(f"backend 'cupy' found no usable CUDA device ({exc}); {needs}") from None
        if n < 1:
            raise BackendError(f"backend 'cupy' found no CUDA device; {needs}")
        return Backend("cupy", xp, cupy.cuda.Device())
    raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")


def get_backend(name="numpy") -> Backend:
    """The backend record for a name (created once, then shared); a Backend passes through."""
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise BackendError(f"backend must be a name, one of {', '.join(BACKEND_NAMES)}; got {name!r}")
    b = _BACKENDS.get(name)
    if b is None:
        b = _BACKENDS[name] = _make_backend(name)
    return b


def gpu_available() -> bool:
    """True when the cupy backend can run here (CuPy importable and a CUDA device present)."""
    try:
        get_backend("cupy")
        return True
    except BackendError:
        return False


def backend_of_array(a) -> Backend:
    """The backend that an array belongs to, found from the array itself."""
    mod = type(a).__module__
    if mod.startswith("numpy"):
        return get_backend("numpy")
    if mod.startswith("cupy"):
        return get_backend("cupy")
    if mod.startswith("array_api_strict"):
        return get_backend("strict")
    raise BackendError(f"cannot tell the backend of a {type(a).__name__}; pass backend='numpy'|'cupy'|'strict'")
