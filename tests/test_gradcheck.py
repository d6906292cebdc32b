"""gradcheck itself: it must pass correct backwards, catch wrong ones, and say clearly what went wrong.

A checker that never fails proves nothing, so this file defines primitives with deliberately wrong
backward functions (the way ops.py defines real ones, through ``make_node``) and asserts that gradcheck
rejects them with a message naming the op, the shapes, the largest error, eps and the tolerances.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.ops import make_node
from strategies import BACKENDS, on


def cube(x):
    """x ** 3 with the right backward, 3 x^2."""
    xd = x.data
    return make_node(xd * xd * xd, (x,), lambda g: (g * 3.0 * xd * xd,), "cube")


def broken_cube(x):
    """x ** 3 with a wrong backward: 2 x^2 (a typo'd constant)."""
    xd = x.data
    return make_node(xd * xd * xd, (x,), lambda g: (g * 2.0 * xd * xd,), "broken_cube")


def broken_sub(a, b):
    """a - b whose backward forgets the minus sign for b (only the second input is wrong)."""
    return make_node(a.data - b.data, (a, b), lambda g: (g, g), "broken_sub")


def slightly_broken_exp(x):
    """exp with a backward 1e-4 too large in relative terms: small, but far above the tolerance."""
    xp = x.backend.xp
    out = xp.exp(x.data)
    return make_node(out, (x,), lambda g: (g * out * 1.0001,), "slightly_broken_exp")


def _x(backend, shape=(2, 3), seed=0):
    return on(backend, np.random.default_rng(seed).uniform(0.5, 2.0, size=shape))


@pytest.mark.parametrize("backend", BACKENDS)
def test_passes_a_correct_primitive(backend):
    x = _x(backend)
    report = ag.gradcheck(cube, x)
    assert report.comparisons == 1 + 6  # one random direction, then every element
    assert report.max_rel_error < 1e-7
    assert x.grad is None  # gradcheck works on its own leaves, not the caller's tensors


@pytest.mark.parametrize("backend", BACKENDS)
def test_catches_a_wrong_backward_and_says_what_and_where(backend):
    with pytest.raises(ag.GradcheckError) as info:
        ag.gradcheck(lambda t: broken_cube(t) * 2.0, _x(backend), eps=1e-6, atol=1e-6, rtol=1e-5)
    msg = str(info.value)
    assert "broken_cube" in msg  # the op, found in the graph even though fn is a lambda
    assert "(2, 3)" in msg  # the input and output shapes
    assert "eps=1e-06" in msg and "atol=1e-06" in msg and "rtol=1e-05" in msg
    assert "largest error" in msg
    assert "\n" not in msg
    # the reported error is the largest of all comparisons: recompute it by hand
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=(2, 3))
    reported = float(re.search(r"largest error is ([0-9.e+-]+)", msg).group(1))
    u = np.random.default_rng(0).standard_normal((2, 3))  # gradcheck's weighting (seed 0 draws it first)
    per_element = np.abs(2.0 * u * x ** 2)  # |wrong - right| = |u (4 - 6) x^2|
    assert reported >= per_element.max() * (1 - 1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_catches_a_wrong_gradient_for_the_second_input_only(backend):
    a, b = _x(backend, seed=1), _x(backend, seed=2)
    with pytest.raises(ag.GradcheckError, match=r"wrong elements in input\(s\) \[1\]; ops broken_sub"):
        ag.gradcheck(broken_sub, a, b)
    # with b as a constant, only a's (correct) gradient is checked, and it passes
    b.requires_grad = False
    ag.gradcheck(broken_sub, a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_catches_a_small_relative_error_on_a_large_input(backend):
    x = _x(backend, shape=(10, 10))  # above elementwise_max: only the random direction runs
    with pytest.raises(ag.GradcheckError, match="along a random direction"):
        ag.gradcheck(slightly_broken_exp, x)
    assert ag.gradcheck(ag.exp, x).comparisons == 1


def test_refuses_float32_inputs():
    x = ag.tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match=r"input 0 is float32.*float64"):
        ag.gradcheck(cube, x)
    # a float32 constant (no requires_grad) is not differentiated, so it is allowed
    c = ag.tensor(np.ones(2, dtype=np.float32))
    ag.gradcheck(lambda t, k: t * ag.astype(k, "float64"), ag.tensor(np.ones(2), requires_grad=True), c)


def test_refuses_bad_arguments_clearly():
    x = ag.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="inputs must be Tensors"):
        ag.gradcheck(cube, np.ones(2))
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        ag.gradcheck(cube, ag.tensor(np.ones(2)))
    with pytest.raises(TypeError, match="must return a Tensor"):
        ag.gradcheck(lambda t: 3.0, x)


def test_the_name_argument_appears_in_the_report_and_errors():
    x = ag.tensor(np.ones(3), requires_grad=True)
    assert "my_fn" in repr(ag.gradcheck(cube, x, name="my_fn"))
    with pytest.raises(ag.GradcheckError, match=r"gradcheck\(my_fn\)"):
        ag.gradcheck(broken_cube, x, name="my_fn")
