"""Backends: names, the GPU error a machine without CuPy gives, host transfers and dtype names.

The cupy failure is simulated with monkeypatch (a missing ``cupy`` module, or one that sees no CUDA
device), so its message is tested on every machine, GPU or not.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import backend as backend_module
from strategies import BACKENDS


@pytest.fixture
def fresh_cupy(monkeypatch):
    """Forget any cupy backend made earlier so the next get_backend('cupy') builds it again."""
    monkeypatch.delitem(backend_module._BACKENDS, "cupy", raising=False)
    return monkeypatch


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ag.BackendError, match="unknown backend 'jax'.*numpy, cupy, strict"):
        ag.get_backend("jax")
    with pytest.raises(ag.BackendError, match="must be a name"):
        ag.get_backend(3)


def test_cupy_missing_says_how_to_install_it(fresh_cupy):
    fresh_cupy.setitem(sys.modules, "cupy", None)  # "import cupy" now raises ImportError
    with pytest.raises(ag.BackendError, match=r"pip install 'gmvae-np\[gpu\]'"):
        ag.get_backend("cupy")
    assert ag.gpu_available() is False


@pytest.mark.parametrize("device_count", [0, RuntimeError("cudaErrorNoDevice")], ids=["zero", "raises"])
def test_cupy_without_a_gpu_says_what_is_needed(fresh_cupy, device_count):
    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    fresh_cupy.setitem(sys.modules, "cupy", fake)
    fresh_cupy.setitem(sys.modules, "array_api_compat.cupy", types.ModuleType("array_api_compat.cupy"))
    with pytest.raises(ag.BackendError, match=r"no (usable )?CUDA device.*pip install 'gmvae-np\[gpu\]'"):
        ag.get_backend("cupy")
    assert ag.gpu_available() is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_records_are_shared_and_pass_through(backend):
    b = ag.get_backend(backend)
    assert ag.get_backend(backend) is b and ag.get_backend(b) is b
    assert b.name == backend and backend in repr(b)


def test_strict_lives_on_a_non_default_device():
    import array_api_strict

    b = ag.get_backend("strict")
    assert b.device != array_api_strict.Device("CPU_DEVICE")
    assert b.asarray([1.0, 2.0]).device == b.device


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", [np.float64(2.5) * np.ones(()), np.arange(6, dtype=np.float32).reshape(2, 3),
                                   np.arange(4, dtype=np.int64), np.array([True, False]),
                                   np.arange(12.0).reshape(3, 4)[:, ::-2]],
                         ids=["0d", "float32", "int64", "bool", "strided"])
def test_asarray_to_numpy_round_trip(backend, value):
    b = ag.get_backend(backend)
    a = b.asarray(value)
    assert a.device == b.device
    back = b.to_numpy(a)
    assert isinstance(back, np.ndarray) and back.shape == value.shape and back.dtype == value.dtype
    np.testing.assert_array_equal(back, value)
    assert b.asarray([[1.0, 2.0]], dtype="float64").dtype == b.dtype("float64")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_names(backend):
    b = ag.get_backend(backend)
    assert b.dtype("float32") == b.xp.float32 and b.dtype(b.xp.float64) == b.xp.float64
    with pytest.raises(ag.BackendError, match="unknown dtype 'float17'"):
        b.dtype("float17")
    for name in ("float32", "float64", "int64", "bool"):  # the one name helper, for every backend
        assert ag.dtype_name(b.dtype(name)) == name and ag.dtype_name(b.asarray([1], dtype=name).dtype) == name
        assert b.dtype(ag.dtype_name(b.dtype(name))) == b.dtype(name)


def test_a_backend_record_holds_no_random_generator():
    """Randomness belongs to whoever draws (autograd_lite.random), never to the shared record."""
    for name in ("numpy", "strict"):
        b = ag.get_backend(name)
        assert not hasattr(b, "rng") and not hasattr(b, "seed")


def test_backend_of_an_array():
    from autograd_lite.backend import backend_of_array

    assert backend_of_array(np.zeros(1)) is ag.get_backend("numpy")
    strict = ag.get_backend("strict")
    assert backend_of_array(strict.asarray([1.0])) is strict
    with pytest.raises(ag.BackendError, match="cannot tell the backend"):
        backend_of_array([1.0])
