"""autograd_lite.random: seeded generators, their state (checkpoints resume the exact stream), moving
and pickling them, and the default generator used when none is passed."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import autograd_lite as ag
from strategies import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_rng_is_seeded_and_reproducible(backend):
    b = ag.get_backend(backend)
    rng = ag.Generator(b, 123)
    first = [b.to_numpy(rng.normal((3, 2), dtype="float64")), b.to_numpy(rng.uniform((5,))),
             b.to_numpy(rng.permutation(6))]
    rng.seed(123)
    again = [b.to_numpy(rng.normal((3, 2), dtype="float64")), b.to_numpy(rng.uniform((5,))),
             b.to_numpy(rng.permutation(6))]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    rng.seed(124)
    assert not np.array_equal(b.to_numpy(rng.normal((3, 2), dtype="float64")), first[0])


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_get_state_set_state_resumes_the_exact_stream(backend):
    b = ag.get_backend(backend)
    rng = ag.Generator(b, 7)
    rng.normal((4,))  # move somewhere into the stream
    state = json.loads(json.dumps(rng.get_state()))  # a checkpoint stores it as JSON
    expected = [b.to_numpy(rng.normal((3,), dtype="float64")), b.to_numpy(rng.uniform((2, 2))),
                b.to_numpy(rng.permutation(5))]
    rng.seed(99)  # wander off
    rng.normal((10,))
    rng.set_state(state)
    resumed = [b.to_numpy(rng.normal((3,), dtype="float64")), b.to_numpy(rng.uniform((2, 2))),
               b.to_numpy(rng.permutation(5))]
    for x, y in zip(expected, resumed):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_draws_land_on_the_device_with_the_requested_dtype(backend, dtype):
    b = ag.get_backend(backend)
    rng = ag.Generator(b, 0)
    normal = rng.normal((200,), dtype=dtype)
    uniform = rng.uniform((200,), low=-2.0, high=3.0, dtype=dtype)
    perm = rng.permutation(7)
    for a in (normal, uniform, perm):
        assert a.device == b.device
    assert normal.dtype == b.dtype(dtype) and uniform.dtype == b.dtype(dtype)
    assert perm.dtype == b.dtype("int64")
    u = b.to_numpy(uniform)
    assert u.min() >= -2.0 and u.max() < 3.0 and u.max() - u.min() > 2.5
    assert abs(float(np.mean(b.to_numpy(normal)))) < 0.5  # 200 standard normals: mean within ~7 sd
    np.testing.assert_array_equal(np.sort(b.to_numpy(perm)), np.arange(7))


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_a_generator_pickles_and_moves_to_another_backend_with_its_stream(backend):
    rng = ag.Generator("numpy", 5)
    rng.normal((3,))
    want = ag.Generator("numpy", 5)
    want.normal((3,))
    expected = want.normal((4,), dtype="float64")
    for other in (pickle.loads(pickle.dumps(rng)), rng.on(backend)):
        assert other.backend is ag.get_backend(other.backend.name)
        got = other.normal((4,), dtype="float64")
        assert got.device == other.backend.device
        np.testing.assert_array_equal(other.backend.to_numpy(got), expected)


def test_the_default_generator_is_one_per_backend_and_serves_randn():
    numpy_rng, strict_rng = ag.default_generator("numpy"), ag.default_generator("strict")
    assert ag.default_generator(ag.get_backend("numpy")) is numpy_rng and strict_rng is not numpy_rng
    state = numpy_rng.get_state()
    try:
        numpy_rng.seed(3)
        first = ag.randn(4).numpy()
        np.testing.assert_array_equal(ag.randn(4, generator=ag.Generator("numpy", 3)).numpy(), first)
    finally:
        numpy_rng.set_state(state)
