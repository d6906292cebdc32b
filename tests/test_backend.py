"""Backends: names, the GPU error a machine without CuPy gives, the seeded RNG, and host transfers.

The cupy failure is simulated with monkeypatch (a missing ``cupy`` module, or one that sees no CUDA
device), so its message is tested on every machine, GPU or not.
"""
from __future__ import annotations

import json
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


@pytest.fixture
def saved_rng():
    """Restore every backend's random stream after the test (other tests share the records)."""
    states = {name: ag.get_backend(name).rng.get_state() for name in ("numpy", "strict")}
    yield
    for name, state in states.items():
        ag.get_backend(name).rng.set_state(state)


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
def test_rng_is_seeded_and_reproducible(backend, saved_rng):
    b = ag.get_backend(backend)
    b.seed(123)
    first = [b.to_numpy(b.rng.normal((3, 2), dtype="float64")), b.to_numpy(b.rng.uniform((5,))),
             b.to_numpy(b.rng.permutation(6))]
    b.seed(123)
    again = [b.to_numpy(b.rng.normal((3, 2), dtype="float64")), b.to_numpy(b.rng.uniform((5,))),
             b.to_numpy(b.rng.permutation(6))]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    b.seed(124)
    assert not np.array_equal(b.to_numpy(b.rng.normal((3, 2), dtype="float64")), first[0])


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_get_state_set_state_resumes_the_exact_stream(backend, saved_rng):
    b = ag.get_backend(backend)
    b.seed(7)
    b.rng.normal((4,))  # move somewhere into the stream
    state = json.loads(json.dumps(b.rng.get_state()))  # a checkpoint stores it as JSON
    expected = [b.to_numpy(b.rng.normal((3,), dtype="float64")), b.to_numpy(b.rng.uniform((2, 2))),
                b.to_numpy(b.rng.permutation(5))]
    b.seed(99)  # wander off
    b.rng.normal((10,))
    b.rng.set_state(state)
    resumed = [b.to_numpy(b.rng.normal((3,), dtype="float64")), b.to_numpy(b.rng.uniform((2, 2))),
               b.to_numpy(b.rng.permutation(5))]
    for x, y in zip(expected, resumed):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_draws_land_on_the_device_with_the_requested_dtype(backend, dtype, saved_rng):
    b = ag.get_backend(backend)
    b.seed(0)
    normal = b.rng.normal((200,), dtype=dtype)
    uniform = b.rng.uniform((200,), low=-2.0, high=3.0, dtype=dtype)
    perm = b.rng.permutation(7)
    for a in (normal, uniform, perm):
        assert a.device == b.device
    assert normal.dtype == b.dtype(dtype) and uniform.dtype == b.dtype(dtype)
    assert perm.dtype == b.dtype("int64")
    u = b.to_numpy(uniform)
    assert u.min() >= -2.0 and u.max() < 3.0 and u.max() - u.min() > 2.5
    assert abs(float(np.mean(b.to_numpy(normal)))) < 0.5  # 200 standard normals: mean within ~7 sd
    np.testing.assert_array_equal(np.sort(b.to_numpy(perm)), np.arange(7))


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


def test_backend_of_an_array():
    from autograd_lite.backend import backend_of_array

    assert backend_of_array(np.zeros(1)) is ag.get_backend("numpy")
    strict = ag.get_backend("strict")
    assert backend_of_array(strict.asarray([1.0])) is strict
    with pytest.raises(ag.BackendError, match="cannot tell the backend"):
        backend_of_array([1.0])
