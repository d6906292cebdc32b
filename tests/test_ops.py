"""Every primitive in autograd_lite/ops.py: forward against NumPy, backward against central differences.

The tests read as tables: one row per op, ``(name, autograd_lite function, NumPy reference, domains)``.
For each row hypothesis draws float64 inputs (of mutually broadcastable shapes for binary ops) from the
row's domains (see strategies.py: values away from kinks, ties and domain edges), and ``check``

1. runs the op and compares its value with the NumPy reference,
2. runs ``ag.gradcheck`` (backward against float64 central differences, along a random direction and
   element by element).

Every row runs on each backend (numpy, array-api-strict on a non-default device, cupy where a GPU is).
After the tables come the properties no table expresses: ``sum_to`` on its own, extreme inputs
(|x| up to 1e4, rows of -inf), no gradient through comparisons, and errors for bad arguments.
"""
from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd_lite as ag
from autograd_lite import ops
from strategies import (BACKENDS, array_and_shape, arrays, axes, axis, broadcast_to_pairs,
                        broadcastable_shape_pairs, index_vectors, matmul_shape_pairs, on, shapes)

RTOL, ATOL = 1e-12, 1e-14  # forward agreement with NumPy (both compute in float64)


class Case(NamedTuple):
    name: str
    fn: Callable  # tensors -> tensor
    ref: Callable  # NumPy arrays -> NumPy array
    domains: tuple  # one domain per input (see strategies.py)


def check(backend: str, fn, ref, *hosts: np.ndarray, name: str = "op"):
    """Forward against the NumPy reference, then gradcheck; inputs are float64 host arrays."""
    inputs = [on(backend, h) for h in hosts]
    out = fn(*inputs)
    assert isinstance(out, ag.Tensor) and out.backend is ag.get_backend(backend)
    expected = np.asarray(ref(*hosts))
    got = out.numpy()
    assert got.shape == expected.shape, f"{name}: shape {got.shape}, NumPy gives {expected.shape}"
    assert got.dtype == np.float64, f"{name}: float64 inputs gave {got.dtype}"
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=name)
    report = ag.gradcheck(fn, *inputs, name=name)
    assert report.comparisons >= 1
    return report


# -- elementwise, one input ------------------------------------------------------------------------

UNARY = [
    Case("neg", ag.neg, np.negative, ("real",)),
    Case("neg_operator", lambda x: -x, np.negative, ("real",)),
    Case("exp", ag.exp, np.exp, ("real",)),
    Case("exp_method", lambda x: x.exp(), np.exp, ("real",)),
    Case("log", ag.log, np.log, ("positive",)),
    Case("log_method", lambda x: x.log(), np.log, ("positive",)),
    Case("log1p", ag.log1p, np.log1p, ("above_m1",)),
    Case("sqrt", ag.sqrt, np.sqrt, ("positive",)),
    Case("square", ag.square, np.square, ("real",)),
    Case("tanh", ag.tanh, np.tanh, ("real",)),
    Case("sin", ag.sin, np.sin, ("real",)),
    Case("cos", ag.cos, np.cos, ("real",)),
    Case("sigmoid", ag.sigmoid, sp.expit, ("real",)),
    Case("relu", ag.relu, lambda x: np.maximum(x, 0.0), ("nonzero",)),
    Case("softplus", ag.softplus, lambda x: np.logaddexp(0.0, x), ("real",)),
    Case("abs", ag.abs, np.abs, ("nonzero",)),
    Case("abs_builtin", lambda x: abs(x), np.abs, ("nonzero",)),
    Case("pow_2", lambda x: x ** 2, lambda x: x ** 2, ("real",)),
    Case("pow_3", lambda x: ag.pow(x, 3), lambda x: x ** 3, ("real",)),
    Case("pow_0.5", lambda x: x ** 0.5, np.sqrt, ("positive",)),
    Case("pow_2.7", lambda x: x ** 2.7, lambda x: x ** 2.7, ("positive",)),
    Case("pow_-1.5", lambda x: x ** -1.5, lambda x: x ** -1.5, ("positive",)),
    Case("astype_float64", lambda x: ag.astype(x, "float64"), lambda x: x, ("real",)),
    Case("clamp_both", lambda x: ag.clamp(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), ("offgrid",)),
    Case("clamp_min", lambda x: ag.clamp(x, min=-0.25), lambda x: np.maximum(x, -0.25), ("offgrid",)),
    Case("clamp_max", lambda x: ag.clamp(x, max=1.0), lambda x: np.minimum(x, 1.0), ("offgrid",)),
    # operators with a Python number on either side (the number never enters the graph)
    Case("add_number", lambda x: x + 2.5, lambda x: x + 2.5, ("real",)),
    Case("radd_number", lambda x: 2.5 + x, lambda x: 2.5 + x, ("real",)),
    Case("rsub_number", lambda x: 2.5 - x, lambda x: 2.5 - x, ("real",)),
    Case("rmul_int", lambda x: 3 * x, lambda x: 3 * x, ("real",)),
    Case("rdiv_number", lambda x: 2.5 / x, lambda x: 2.5 / x, ("positive",)),
    Case("maximum_number", lambda x: ag.maximum(x, 0.12), lambda x: np.maximum(x, 0.12), ("offgrid",)),
    Case("minimum_number", lambda x: ag.minimum(0.12, x), lambda x: np.minimum(0.12, x), ("offgrid",)),
    Case("where_number", lambda x: ag.where(x > 0.0, x, 0.5), lambda x: np.where(x > 0, x, 0.5),
         ("nonzero",)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", UNARY, ids=lambda c: c.name)
@given(data=st.data())
def test_unary(backend, case, data):
    x = data.draw(array_and_shape(case.domains[0]), label="x")
    check(backend, case.fn, case.ref, x, name=case.name)


# -- elementwise, two inputs of mutually broadcastable shapes -------------------------------------

BINARY = [
    Case("add", ag.add, np.add, ("real", "real")),
    Case("add_operator", lambda a, b: a + b, np.add, ("real", "real")),
    Case("sub", ag.sub, np.subtract, ("real", "real")),
    Case("sub_operator", lambda a, b: a - b, np.subtract, ("real", "real")),
    Case("mul", ag.mul, np.multiply, ("real", "real")),
    Case("mul_self_operator", lambda a, b: a * b * a, lambda a, b: a * b * a, ("real", "real")),
    Case("div", ag.div, np.divide, ("real", "positive")),
    Case("div_operator", lambda a, b: a / b, np.divide, ("positive", "positive")),
    Case("maximum", ag.maximum, np.maximum, ("grid", "offgrid")),
    Case("minimum", ag.minimum, np.minimum, ("offgrid", "grid")),
    Case("where", lambda a, b: ag.where(a > 0.0, a, b), lambda a, b: np.where(a > 0, a, b),
         ("nonzero", "real")),
    Case("where_cond_from_b", lambda a, b: ag.where(b < 0.0, a * 2.0, b),
         lambda a, b: np.where(b < 0, a * 2, b), ("real", "nonzero")),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", BINARY, ids=lambda c: c.name)
@given(data=st.data())
def test_binary_broadcasting(backend, case, data):
    sa, sb = data.draw(broadcastable_shape_pairs(), label="shapes")
    a = data.draw(arrays(sa, case.domains[0]), label="a")
    b = data.draw(arrays(sb, case.domains[1]), label="b")
    check(backend, case.fn, case.ref, a, b, name=case.name)


# -- reductions over axes (None, int, negative int, tuple), with and without keepdims ---------------

REDUCTIONS = [
    Case("sum", ag.sum, np.sum, ("real",)),
    Case("sum_method", lambda x, axis, keepdims: x.sum(axis, keepdims), np.sum, ("real",)),
    Case("mean", ag.mean, np.mean, ("real",)),
    Case("max", ag.max, np.max, ("grid",)),
    # the textbook formula is a fair reference on [-3, 3]; the extremes are tested further down
    Case("logsumexp", ag.logsumexp,
         lambda h, axis, keepdims: np.log(np.sum(np.exp(h), axis=axis, keepdims=keepdims)), ("real",)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", REDUCTIONS, ids=lambda c: c.name)
@given(data=st.data())
def test_reductions(backend, case, data):
    x = data.draw(array_and_shape(case.domains[0]), label="x")
    ax = data.draw(axes(x.ndim), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    check(backend, lambda t: case.fn(t, ax, keepdims), lambda h: case.ref(h, axis=ax, keepdims=keepdims), x,
          name=f"{case.name}(axis={ax}, keepdims={keepdims})")


SOFTMAXES = [
    Case("softmax", ag.softmax, sp.softmax, ("real",)),
    Case("log_softmax", ag.log_softmax, sp.log_softmax, ("real",)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", SOFTMAXES, ids=lambda c: c.name)
@given(data=st.data())
def test_softmaxes(backend, case, data):
    x = data.draw(array_and_shape(case.domains[0], min_dims=1), label="x")
    ax = data.draw(axis(x.ndim), label="axis")
    check(backend, lambda t: case.fn(t, axis=ax), lambda h: case.ref(h, axis=ax), x,
          name=f"{case.name}(axis={ax})")


def test_softmax_default_axis_is_last():
    x = np.linspace(-1.0, 2.0, 6).reshape(2, 3)
    t = ag.tensor(x, dtype="float64")
    np.testing.assert_allclose(ag.softmax(t).numpy(), sp.softmax(x, axis=-1), rtol=RTOL)
    np.testing.assert_allclose(ag.log_softmax(t).numpy(), sp.log_softmax(x, axis=-1), rtol=RTOL)


# -- matmul: batched, broadcasting batch axes, 1-D operands ----------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_matmul(backend, data):
    sa, sb = data.draw(matmul_shape_pairs(), label="shapes")
    a, b = data.draw(arrays(sa), label="a"), data.draw(arrays(sb), label="b")
    check(backend, ag.matmul, np.matmul, a, b, name=f"matmul{sa}@{sb}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sa, sb", [((3,), (3,)), ((3,), (2, 3, 4)), ((2, 1, 4, 3), (3,)),
                                    ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (4, 2))])
def test_matmul_fixed_shapes_and_operator(backend, sa, sb):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    check(backend, lambda x, y: x @ y, np.matmul, a, b, name=f"matmul{sa}@{sb}")


# -- shape ops -------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_reshape(backend, data):
    x = data.draw(array_and_shape(), label="x")
    target = data.draw(st.sampled_from([tuple(reversed(x.shape)), (-1,), (1,) + x.shape + (1,)]), label="to")
    check(backend, lambda t: ag.reshape(t, target), lambda h: np.reshape(h, target), x, name="reshape")
    check(backend, lambda t: t.reshape(*target), lambda h: np.reshape(h, target), x, name="reshape_method")


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_permute_and_transpose(backend, data):
    x = data.draw(array_and_shape(min_dims=1), label="x")
    perm = data.draw(st.permutations(range(x.ndim)), label="perm")
    perm = tuple(p - x.ndim if data.draw(st.booleans()) else p for p in perm)  # negative axes too
    check(backend, lambda t: ag.permute(t, perm), lambda h: np.transpose(h, perm), x, name="permute")
    check(backend, lambda t: t.permute(*perm), lambda h: np.transpose(h, perm), x, name="permute_method")
    a0, a1 = data.draw(axis(x.ndim), label="axis0"), data.draw(axis(x.ndim), label="axis1")
    check(backend, lambda t: ag.transpose(t, a0, a1), lambda h: np.swapaxes(h, a0, a1), x, name="transpose")
    check(backend, lambda t: t.T, lambda h: h.T, x, name=".T")


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_broadcast_to(backend, data):
    shape, target = data.draw(broadcast_to_pairs(), label="shapes")
    x = data.draw(arrays(shape), label="x")
    check(backend, lambda t: ag.broadcast_to(t, target), lambda h: np.broadcast_to(h, target), x,
          name=f"broadcast_to{shape}->{target}")


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_getitem_basic_indices(backend, data):
    """ints (negative too), slices (negative steps too), None and Ellipsis, as NumPy's basic indexing."""
    x = data.draw(array_and_shape(min_dims=1), label="x")
    key = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True), label="key")
    check(backend, lambda t: t[key], lambda h: h[key], x, name=f"getitem[{key!r}]")
    check(backend, lambda t: ag.getitem(t, key), lambda h: h[key], x, name=f"ag.getitem({key!r})")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", [(1,), (-1,), (slice(None, None, -1),), (slice(None, None, -2), 0),
                                 (None, Ellipsis, 1), (Ellipsis, None, slice(1, None)),
                                 (0, None, slice(None, None, -1), -1), (slice(-2, None), None)],
                         ids=repr)
def test_getitem_fixed_keys(backend, key):
    x = np.random.default_rng(2).standard_normal((3, 4, 2))
    check(backend, lambda t: t[key], lambda h: h[key], x, name=f"getitem[{key!r}]")


def test_getitem_refuses_index_arrays_with_a_pointer_to_take():
    x = ag.tensor(np.arange(4.0), requires_grad=True)
    for key in ([0, 0, 1], np.array([0, 0, 1]), ag.tensor(np.array([0, 1])), True):
        with pytest.raises(TypeError, match="ag.take"):
            x[key]


@st.composite
def _concat_inputs(draw):
    """1 to 3 arrays that agree in every axis but ``axis``, and that axis."""
    base = draw(shapes(min_dims=1))
    ax = draw(axis(len(base)))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shapes_ = [base[:ax % len(base)] + (n,) + base[ax % len(base) + 1:] for n in sizes]
    return [draw(arrays(s)) for s in shapes_], ax


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_concat(backend, data):
    hosts, ax = data.draw(_concat_inputs(), label="inputs")
    check(backend, lambda *ts: ag.concat(ts, axis=ax), lambda *hs: np.concatenate(hs, axis=ax), *hosts,
          name=f"concat(axis={ax})")


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_stack(backend, data):
    shape = data.draw(shapes(), label="shape")
    count = data.draw(st.integers(1, 3), label="count")
    hosts = [data.draw(arrays(shape), label=f"x{i}") for i in range(count)]
    ax = data.draw(axis(len(shape) + 1), label="axis")
    check(backend, lambda *ts: ag.stack(ts, axis=ax), lambda *hs: np.stack(hs, axis=ax), *hosts,
          name=f"stack(axis={ax})")


def _flat_concat(pieces):
    return ag.concat([ag.reshape(p, (-1,)) for p in pieces], axis=0)


def _np_flat_concat(pieces):
    return np.concatenate([np.reshape(p, (-1,)) for p in pieces])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_split_and_chunk(backend, data):
    x = data.draw(array_and_shape(min_dims=1, max_side=4), label="x")
    ax = data.draw(axis(x.ndim), label="axis")
    n = x.shape[ax]
    sizes = data.draw(st.lists(st.integers(0, n), min_size=0, max_size=2), label="cuts")
    cuts = sorted(sizes)
    sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    # pieces of chosen sizes (a zero size gives an empty piece, as np.split does)
    pieces = ag.split(on(backend, x), sections, axis=ax)
    for got, want in zip(pieces, np.split(x, cuts, axis=ax), strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    check(backend, lambda t: _flat_concat(ag.split(t, sections, axis=ax)),
          lambda h: _np_flat_concat(np.split(h, cuts, axis=ax)), x, name=f"split({sections})")
    # equal pieces
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    k = data.draw(st.sampled_from(divisors), label="equal pieces")
    check(backend, lambda t: _flat_concat(ag.split(t, k, axis=ax)),
          lambda h: _np_flat_concat(np.split(h, k, axis=ax)), x, name=f"split({k})")
    # chunk: pieces of ceil(n / chunks), the last may be smaller (as torch.chunk)
    chunks = data.draw(st.integers(1, n + 1), label="chunks")
    size = -(-n // chunks)
    chunk_cuts = list(range(size, n, size))
    got = ag.chunk(on(backend, x), chunks, axis=ax)
    assert [p.shape[ax] for p in got] == [min(size, n - i) for i in range(0, n, size)]
    check(backend, lambda t: _flat_concat(ag.chunk(t, chunks, axis=ax)),
          lambda h: _np_flat_concat(np.split(h, chunk_cuts, axis=ax)), x, name=f"chunk({chunks})")


def test_split_and_chunk_reject_bad_sizes_clearly():
    x = ag.tensor(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="do not add up"):
        ag.split(x, [2, 2])
    with pytest.raises(ValueError, match="must not be negative"):
        ag.split(x, [6, -1])
    with pytest.raises(ValueError, match="equal pieces"):
        ag.split(x, 2)
    with pytest.raises(ValueError, match=">= 1"):
        ag.split(x, 0)
    with pytest.raises(ValueError, match=">= 1"):
        ag.chunk(x, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_take_with_repeated_indices(backend, data):
    x = data.draw(array_and_shape(min_dims=1), label="x")
    ax = data.draw(axis(x.ndim), label="axis")
    idx = data.draw(index_vectors(x.shape[ax]), label="indices")
    idx_t = ag.tensor(idx, backend=backend)
    # repeated indices must add their gradients (a scatter-add), which gradcheck sees element by element
    check(backend, lambda t: ag.take(t, idx_t, axis=ax), lambda h: np.take(h, idx, axis=ax), x,
          name=f"take(axis={ax}, {idx.tolist()})")


@pytest.mark.parametrize("backend", BACKENDS)
def test_take_gradient_counts_repeats(backend):
    x = on(backend, np.arange(4.0))
    ag.take(x, ag.tensor(np.array([2, 0, 2, 2]), backend=backend)).sum().backward()
    np.testing.assert_array_equal(ag.get_backend(backend).to_numpy(x.grad), [1.0, 0.0, 3.0, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_one_hot(backend, data):
    k = data.draw(st.integers(1, 5), label="classes")
    idx = data.draw(hnp.arrays(np.int64, shapes(max_dims=2), elements=st.integers(0, k - 1)), label="idx")
    for dtype in ("float32", "float64"):
        from_tensor = ag.one_hot(ag.tensor(idx, backend=backend), k, dtype=dtype)
        from_host = ag.one_hot(idx.tolist(), k, dtype=dtype, backend=backend)
        for out in (from_tensor, from_host):
            assert out.backend is ag.get_backend(backend) and not out.requires_grad
            assert out.numpy().dtype == np.dtype(dtype)
            np.testing.assert_array_equal(out.numpy(), np.eye(k, dtype=dtype)[idx])


@pytest.mark.parametrize("backend", BACKENDS)
def test_astype_forward_and_gradient_dtype(backend):
    x = on(backend, np.array([[1.0, -2.5], [1e-3, 3.25]]))
    y = ag.astype(x, "float32")
    assert y.numpy().dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), x.numpy().astype(np.float32))
    u = np.array([[0.5, -1.0], [2.0, 4.0]], dtype=np.float32)
    y.backward(u)
    g = ag.get_backend(backend).to_numpy(x.grad)
    assert g.dtype == np.float64  # the gradient is cast back to the input's dtype
    np.testing.assert_array_equal(g, u.astype(np.float64))
    assert x.astype("float32").numpy().dtype == np.float32  # the method form
    # an integer result is discrete: no gradient flows through it
    i = ag.astype(x, "int64")
    assert not i.requires_grad and i.is_leaf
    np.testing.assert_array_equal(i.numpy(), x.numpy().astype(np.int64))


# -- comparisons give boolean tensors and no gradient ----------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_comparisons_give_no_gradient(backend, data):
    sa, sb = data.draw(broadcastable_shape_pairs(), label="shapes")
    a, b = data.draw(arrays(sa, "grid"), label="a"), data.draw(arrays(sb, "grid"), label="b")
    ta, tb = on(backend, a), on(backend, b)
    pairs = [(ta < tb, a < b), (ta <= tb, a <= b), (ta > tb, a > b), (ta >= tb, a >= b),
             (ta == tb, a == b), (ta != tb, a != b), (ta > 0.0, a > 0.0)]
    for got, want in pairs:
        assert not got.requires_grad and got.is_leaf and got._parents == ()
        np.testing.assert_array_equal(got.numpy(), want)
    # a condition built from the inputs carries no gradient: where's gradient is the mask alone
    out = ag.where(ta > tb, ta, tb)
    out.backward(np.ones(out.shape))
    mask = np.broadcast_to(a > b, out.shape).astype(np.float64)
    to_np = ag.get_backend(backend).to_numpy
    np.testing.assert_array_equal(to_np(ta.grad), _sum_to_np(mask, a.shape))
    np.testing.assert_array_equal(to_np(tb.grad), _sum_to_np(1.0 - mask, b.shape))


# -- sum_to: the adjoint of broadcasting, on its own -----------------------------------------------

def _sum_to_np(g: np.ndarray, shape: tuple) -> np.ndarray:
    """NumPy reference: sum over the prepended axes, then over the stretched length-1 axes."""
    lead = g.ndim - len(shape)
    g = np.sum(g, axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return np.sum(g, axis=stretched, keepdims=True).reshape(shape)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_sum_to_matches_numpy_and_is_the_adjoint_of_broadcasting(backend, data):
    shape, target = data.draw(broadcast_to_pairs(), label="shapes")
    g = data.draw(arrays(target), label="g")
    x = data.draw(arrays(shape), label="x")
    b = ag.get_backend(backend)
    reduced = b.to_numpy(ag.sum_to(b.asarray(g), shape))
    assert reduced.shape == shape
    np.testing.assert_allclose(reduced, _sum_to_np(g, shape), rtol=RTOL, atol=1e-13)
    # <broadcast(x), g> == <x, sum_to(g)>: sum_to is the transpose of broadcasting
    np.testing.assert_allclose(np.sum(np.broadcast_to(x, target) * g), np.sum(x * reduced),
                               rtol=1e-12, atol=1e-12)
    # and backward of broadcast_to hands exactly this to the input
    t = on(backend, x)
    ag.broadcast_to(t, target).backward(g)
    np.testing.assert_allclose(b.to_numpy(t.grad), reduced, rtol=RTOL, atol=1e-13)


# -- extreme values: finite and exact to float64 rounding ------------------------------------------

def _grad_of(backend, fn, x):
    t = on(backend, np.asarray(x, dtype=np.float64))
    out = fn(t)
    out.backward(np.ones(out.shape))
    return out.numpy(), ag.get_backend(backend).to_numpy(t.grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_logsumexp_extremes(backend):
    big = 1e4
    x = np.array([[big, big], [-big, -big], [big, -big], [0.0, -big]])
    out, grad = _grad_of(backend, lambda t: ag.logsumexp(t, axis=1), x)
    # the shift by the row maximum makes these exact to rounding: m + log(sum exp(x - m))
    np.testing.assert_array_equal(out, [big + np.log(2.0), -big + np.log(2.0), big, 0.0])
    np.testing.assert_array_equal(grad, [[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_logsumexp_of_all_minus_infinity_rows(backend):
    x = np.array([[-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, -np.inf]])
    out, grad = _grad_of(backend, lambda t: ag.logsumexp(t, axis=-1), x)
    assert out[0] == -np.inf and out[1] == 0.0
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out, grad = _grad_of(backend, lambda t: ag.logsumexp(t, axis=None, keepdims=True), x[:1])
    assert out.shape == (1, 1) and out[0, 0] == -np.inf
    np.testing.assert_array_equal(grad, np.zeros((1, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softplus_extremes(backend):
    x = np.array([1e4, 800.0, 40.0, 0.0, -30.0, -800.0, -1e4])
    out, grad = _grad_of(backend, ag.softplus, x)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    # log(1 + e^x) = x + log1p(e^-x): for x >= 40 the correction is below half an ulp of x
    np.testing.assert_array_equal(out[:3], [1e4, 800.0, 40.0])
    assert out[3] == np.log(2.0)
    # for x << 0 the value is log1p(e^x) (close to e^x); e^-800 and e^-1e4 underflow to 0
    np.testing.assert_allclose(out[4], np.log1p(np.exp(-30.0)), rtol=1e-15)
    np.testing.assert_array_equal(out[5:], [0.0, 0.0])
    np.testing.assert_array_equal(grad[[0, 1, 5, 6]], [1.0, 1.0, 0.0, 0.0])  # sigmoid(x)
    assert grad[3] == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_extremes(backend):
    x = np.array([1e4, 40.0, 0.0, -30.0, -700.0, -1e4])
    out, grad = _grad_of(backend, ag.sigmoid, x)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == 0.5
    # e^x / (1 + e^x) for x << 0: correctly rounded, and e^-1e4 underflows to exactly 0
    np.testing.assert_allclose(out[3], np.exp(-30.0) / (1.0 + np.exp(-30.0)), rtol=1e-15)
    assert out[4] == np.exp(-700.0) and out[5] == 0.0
    np.testing.assert_array_equal(grad[[0, 5]], [0.0, 0.0])
    assert grad[2] == 0.25


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_softmax_and_softmax_extremes(backend):
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    out, grad = _grad_of(backend, lambda t: ag.log_softmax(t, axis=1), x)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(out[0], [0.0, -1e4, -2e4])
    # differences within a row are the differences of the inputs (shift invariance), to rounding
    np.testing.assert_allclose(np.diff(out[1]), [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(out[1], sp.log_softmax(np.array([0.0, 1.0, 2.0])), rtol=1e-12)
    # backward of a row of ones: 1 - 3 softmax(x)
    np.testing.assert_array_equal(grad[0], [-2.0, 1.0, 1.0])
    np.testing.assert_allclose(grad[1], 1.0 - 3.0 * sp.softmax(np.array([0.0, 1.0, 2.0])), rtol=1e-12)
    probs, sgrad = _grad_of(backend, lambda t: ag.softmax(t, axis=1), x)
    np.testing.assert_array_equal(probs[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(probs[1], sp.softmax(np.array([0.0, 1.0, 2.0])), rtol=1e-12)
    assert np.all(np.isfinite(sgrad))


# -- bad arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [lambda t: ag.sum(t, axis=2), lambda t: ag.max(t, axis=-3),
                                lambda t: ag.softmax(t, axis=5), lambda t: ag.mean(t, axis=(0, -2))],
                         ids=["sum", "max", "softmax", "mean_duplicate"])
def test_axis_out_of_range_or_repeated_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="axis"):
        fn(ag.tensor(np.zeros((2, 3))))


def test_pow_refuses_a_tensor_exponent():
    x = ag.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="exp"):
        x ** x


def test_every_primitive_is_tested():
    """Every public function of ops.py appears in this file (a new primitive needs a row here), and so
    do the shape helpers built from them (functional.py) and one_hot (tensor.py); make_node is plumbing."""
    primitives = {n for n, f in vars(ops).items() if inspect.isfunction(f) and not n.startswith("_")
                  and f.__module__ == ops.__name__ and n != "make_node"}
    primitives |= {"stack", "split", "chunk", "minimum", "one_hot"}
    source = inspect.getsource(inspect.getmodule(test_every_primitive_is_tested))
    missing = sorted(n for n in primitives if f"ag.{n}(" not in source and f"ag.{n}," not in source)
    assert not missing, f"primitives without a test in test_ops.py: {missing}"
    assert len(primitives) >= 38
