"""Hypothesis strategies for the engine tests: shapes, float64 arrays kept away from danger, operand pairs.

Finite differences only agree with a derivative where the function is smooth, so every array strategy
takes a *domain* that keeps the drawn values away from kinks and domain edges (the minitorch habit of
testing ``log(a + c)`` rather than ``log(a)``):

=============  ===================================================================================
``real``       any value in [-3, 3]
``positive``   [0.1, 3]: log, sqrt, non-integer powers, denominators
``above_m1``   [-0.9, 3]: log1p
``nonzero``    |x| in [0.1, 3]: relu, abs (the kink at 0 is avoided)
``grid``       distinct multiples of 0.01 in [-3, 3]: max and sort-like ops (no ties)
``offgrid``    odd multiples of 0.005 in [-3, 3]: never equal to a ``grid`` value, so
               maximum(grid, offgrid) and clamp(offgrid, grid bounds) never sit on a tie
=============  ===================================================================================

Values from neighbouring domains are at least 0.005 apart, far more than gradcheck's eps = 1e-6.

``BACKENDS`` is the list to parametrise backend-dependent tests with: numpy and strict always, cupy
marked ``gpu`` and skipped (with the reason) where no CUDA device is present.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd_lite as ag

BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("strict", id="strict"),
    pytest.param("cupy", id="cupy", marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not ag.gpu_available(), reason="cupy backend: no CuPy or no CUDA device here")]),
]
OTHER_THAN_NUMPY = BACKENDS[1:]  # the backends whose results are compared with NumPy's

MAX_SIDE = 3  # small sides keep gradcheck's element-by-element pass cheap
MAX_DIMS = 3

# -- element strategies per domain ---------------------------------------------------------------

_GRID = 300  # grid values are k / 100 for |k| <= 300


def _elements(domain: str):
    if domain == "real":
        return st.floats(-3.0, 3.0, allow_subnormal=False)
    if domain == "positive":
        return st.floats(0.1, 3.0)
    if domain == "above_m1":
        return st.floats(-0.9, 3.0)
    if domain == "nonzero":
        return st.tuples(st.floats(0.1, 3.0), st.sampled_from([-1.0, 1.0])).map(lambda t: t[0] * t[1])
    if domain == "grid":
        return st.integers(-_GRID, _GRID).map(lambda k: k / 100.0)
    if domain == "offgrid":
        return st.integers(-_GRID, _GRID - 1).map(lambda k: (k + 0.5) / 100.0)
    raise ValueError(f"unknown domain {domain!r}; use one of real, positive, above_m1, nonzero, grid, offgrid")



# -- shapes ----------------------------------------------------------------------------------------

def shapes(min_dims: int = 0, max_dims: int = MAX_DIMS, min_side: int = 1, max_side: int = MAX_SIDE):
    """Array shapes, scalars (``()``) included unless ``min_dims`` > 0."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shape_pairs(min_dims: int = 0, max_dims: int = MAX_DIMS, max_side: int = MAX_SIDE):
    """Two shapes that broadcast together (each may prepend axes or hold length-1 axes)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=1, max_side=max_side).map(lambda r: r.input_shapes)


@st.composite
def broadcast_to_pairs(draw, max_dims: int = MAX_DIMS, max_side: int = MAX_SIDE):
    """(shape, target): ``shape`` broadcasts *to* ``target`` (fewer leading axes, some sides set to 1)."""
    target = draw(shapes(max_dims=max_dims, max_side=max_side))
    keep = draw(st.integers(0, len(target)))
    tail = target[len(target) - keep:]
    shape = tuple(1 if draw(st.booleans()) else n for n in tail)
    return shape, target


# -- arrays ----------------------------------------------------------------------------------------

def arrays(shape, domain: str = "real"):
    """float64 NumPy arrays of ``shape`` with values from ``domain`` (grid values are all distinct)."""
    return hnp.arrays(np.float64, shape, elements=_elements(domain), unique=domain == "grid")


@st.composite
def array_and_shape(draw, domain: str = "real", **shape_kw):
    """A float64 array of a drawn shape."""
    return draw(arrays(draw(shapes(**shape_kw)), domain))


# -- operands of particular ops --------------------------------------------------------------------

@st.composite
def matmul_shape_pairs(draw, max_batch_dims: int = 2, max_side: int = MAX_SIDE):
    """Shapes (a, b) for ``a @ b``: batched with broadcasting batch axes, or 1-D on either side."""
    n, k, m = (draw(st.integers(1, max_side)) for _ in range(3))
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_batch_dims, max_side=max_side)).input_shapes
    a = (k,) if draw(st.booleans()) and draw(st.booleans()) else batch_a + (n, k)
    b = (k,) if draw(st.booleans()) and draw(st.booleans()) else batch_b + (k, m)
    return a, b


@st.composite
def axes(draw, ndim: int, allow_none: bool = True, allow_tuple: bool = True):
    """A valid ``axis`` argument for ``ndim`` dimensions: None, an int (maybe negative) or a tuple."""
    if ndim == 0:
        return None
    kinds = (["none"] if allow_none else []) + ["int"] + (["tuple"] if allow_tuple else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    negative = st.booleans()
    if kind == "int":
        a = draw(st.integers(0, ndim - 1))
        return a - ndim if draw(negative) else a
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(negative) else a for a in chosen)


def axis(ndim: int):
    """One axis of ``ndim`` >= 1 dimensions, negative or not."""
    return axes(ndim, allow_none=False, allow_tuple=False)


@st.composite
def index_vectors(draw, n: int, max_len: int = 5):
    """An int64 index vector into an axis of length n that repeats at least one index."""
    idx = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=max_len))
    return np.asarray(idx + [idx[0]], dtype=np.int64)


def on(backend: str, host: np.ndarray, requires_grad: bool = True) -> ag.Tensor:
    """A tensor on ``backend`` holding ``host`` with its dtype (float64 arrays get requires_grad)."""
    return ag.tensor(host, requires_grad=requires_grad and host.dtype.kind == "f", backend=backend)
