"""The Tensor and its backward pass: graph invariants that every model built on the engine relies on.

Fan-out and diamonds accumulate, a 10,000-op chain needs no recursion, backward leaves inputs and data
untouched, gradients have their inputs' shapes and never share memory, only leaves keep ``.grad``,
a freed graph cannot be walked twice, ``no_grad`` records nothing, and the creation functions pick
the documented dtypes and backends. Mixing backends is an error that says what to do.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import autograd_lite as ag
from strategies import BACKENDS, on


def host(array, backend):
    """A NumPy copy of a backend array (to_numpy may return a view on the numpy backend)."""
    return np.array(ag.get_backend(backend).to_numpy(array), copy=True)


# -- shapes of graphs ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_fan_out_accumulates(backend):
    x = on(backend, np.array([-1.5, 0.5, 2.0]))
    y = x * x + x  # x is used three times
    y.backward(np.ones(3))
    np.testing.assert_allclose(host(x.grad, backend), 2 * np.array([-1.5, 0.5, 2.0]) + 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_diamond_graph(backend):
    #      x
    #    /   \
    #  a=2x  b=x^2       f = a * b = 2 x^3, df/dx = 6 x^2
    #    \   /
    #     a*b
    xv = np.array([0.5, -2.0, 3.0])
    x = on(backend, xv)
    a, b = x * 2.0, x * x
    (a * b).sum().backward()
    np.testing.assert_allclose(host(x.grad, backend), 6 * xv ** 2, rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_deep_chain_needs_no_recursion(backend):
    x = on(backend, np.array([1.0, 2.0]))
    y = x
    n = 10_000
    for _ in range(n):
        y = y * 1.0001
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive sort would need n frames
    try:
        y.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(host(x.grad, backend), np.full(2, 1.0001 ** n), rtol=1e-10)


# -- what backward leaves alone ------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_not_mutated_by_forward_or_backward(backend):
    av = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    bv = np.array([1.0, 2.0, 3.0])
    a, b = on(backend, av), on(backend, bv)
    seed = np.ones((2,))
    out = ag.logsumexp(ag.relu(a) * b + a[:, ::-1] - ag.concat([b[None], a[:1]], axis=0), axis=1)
    np.testing.assert_array_equal(a.numpy(), av)
    np.testing.assert_array_equal(b.numpy(), bv)
    out.backward(seed)
    np.testing.assert_array_equal(a.numpy(), av)
    np.testing.assert_array_equal(b.numpy(), bv)
    np.testing.assert_array_equal(seed, np.ones((2,)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_shapes_equal_input_shapes(backend):
    shapes = [(), (1,), (3,), (2, 1), (1, 3), (2, 3), (4, 1, 3)]
    leaves = [on(backend, np.full(s, 0.5)) for s in shapes]
    total = leaves[0]
    for leaf in leaves[1:]:
        total = total + leaf  # broadcasting up to (4, 2, 3)
    (total * total).sum().backward()
    for leaf, s in zip(leaves, shapes):
        assert tuple(leaf.grad.shape) == s


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_do_not_alias_each_other_or_the_data(backend):
    b = ag.get_backend(backend)
    x, w = on(backend, np.zeros(3)), on(backend, np.zeros(3))
    s = on(backend, np.array(1.0))
    (x + w + s).backward(np.ones(3))  # add hands one array to both parents; s's is a reduction
    before_w, before_s = host(w.grad, backend), host(s.grad, backend)
    x.grad[...] = 7.0  # an optimizer may update a gradient in place
    s.grad[...] = 7.0
    np.testing.assert_array_equal(host(w.grad, backend), before_w)
    np.testing.assert_array_equal(before_s, 3.0)
    # a leaf that is its own output: the gradient is a copy, not the caller's seed
    seed = b.asarray(np.ones(3))
    w2 = on(backend, np.zeros(3))
    w2.backward(seed)
    w2.grad[...] = 5.0
    np.testing.assert_array_equal(b.to_numpy(seed), np.ones(3))
    np.testing.assert_array_equal(w2.numpy(), np.zeros(3))
    # a reduction's gradient is a broadcast view in NumPy: the leaf must still own a writable array
    v = on(backend, np.arange(3.0))
    v.sum().backward()
    v.grad[...] = 2.0
    np.testing.assert_array_equal(host(v.grad, backend), np.full(3, 2.0))
    np.testing.assert_array_equal(v.numpy(), np.arange(3.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_gradients_reach_leaves_uncopied_others_are_copied(backend):
    """A node made with fresh_grads=True hands its new arrays to a leaf as they are; others, a copy."""
    from autograd_lite.ops import make_node
    x, w = on(backend, np.ones((1, 1, 3, 3))), on(backend, np.ones((1, 1, 2, 2)))
    fresh_nodes = {"matmul": x[0, 0] @ x[0, 0], "mul": x * x, "div": x / (x + 1.0),
                   "conv2d": ag.conv2d(x, w), "conv_transpose2d": ag.conv_transpose2d(x, w),
                   "batch_norm": ag.batch_norm(x, None, None, (0, 2, 3), 1e-5)[0]}
    assert all(node._op == op and node._fresh_grads for op, node in fresh_nodes.items())
    assert not (x + x)._fresh_grads and not x.reshape(9)._fresh_grads
    made = []

    def backward(g):
        made.append(g * 2.0)
        return (made[-1],)

    for fresh in (True, False):
        x = on(backend, np.array([1.0, -2.0]))
        make_node(x.data * 2.0, (x,), backward, "double", fresh_grads=fresh).backward(np.ones(2))
        np.testing.assert_array_equal(host(x.grad, backend), [2.0, 2.0])
        x.grad[...] = 5.0  # the very array the backward made, or a copy of it
        assert np.all(host(made[-1], backend) == 5.0) == fresh


@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_gradients_are_never_shared_between_leaves(backend):
    """matmul, mul and div promise fresh gradients: with leaves used twice, each leaf still owns its own."""
    rng = np.random.default_rng(0)
    x, w = on(backend, rng.standard_normal((2, 3))), on(backend, rng.standard_normal((3, 2)))
    a, c = on(backend, rng.standard_normal(2) + 3.0), on(backend, rng.standard_normal(2) + 3.0)
    y = (x @ w + x @ w) * (a * a) + a / c + c * c  # w twice in matmuls, a twice in one mul
    y.backward(np.ones((2, 2)))
    leaves = [x, w, a, c]
    before = [host(t.grad, backend) for t in leaves]
    data = [host(t.data, backend) for t in leaves]
    for i, t in enumerate(leaves):
        t.grad[...] = 100.0 + i  # writing one gradient changes no other gradient and no data
    for i, t in enumerate(leaves):
        np.testing.assert_array_equal(host(t.grad, backend), np.full(before[i].shape, 100.0 + i))
        np.testing.assert_array_equal(host(t.data, backend), data[i])
    xv, wv, av, cv = data
    # and the values are right: d/dw of sum((2 x w) * a^2) = 2 x^T a^2 (a broadcast over columns)
    np.testing.assert_allclose(before[1], 2.0 * xv.T @ np.ones((2, 2)) * av[None, :] ** 2)
    np.testing.assert_allclose(before[3], -2.0 * av / cv ** 2 + 2.0 * 2.0 * cv, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_leaves_keep_grad(backend):
    x = on(backend, np.array([1.0, 2.0]))
    h = x * 3.0
    y = ag.tanh(h).sum()
    y.backward()
    assert x.grad is not None
    assert h.grad is None and y.grad is None
    assert not h.is_leaf and x.is_leaf


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_accumulates_across_two_backward_calls(backend):
    x = on(backend, np.array([1.0, -2.0]))
    (x * x).sum().backward()
    (x * 3.0).sum().backward()  # a fresh graph
    np.testing.assert_allclose(host(x.grad, backend), 2 * np.array([1.0, -2.0]) + 3.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_twice_on_the_same_graph_is_a_clear_error(backend):
    x = on(backend, np.array([1.0, 2.0]))
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()
    # the same through a shared intermediate: h's graph was freed by the first backward()
    h = x * 2.0
    (h * 1.0).sum().backward()
    with pytest.raises(RuntimeError, match="already freed"):
        (h * 3.0).sum().backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_grad_records_nothing(backend):
    x = on(backend, np.array([1.0, 2.0]))
    with ag.no_grad():
        assert not ag.is_grad_enabled()
        y = ag.exp(x) * x + 1.0
    assert ag.is_grad_enabled()
    assert not y.requires_grad and y._parents == () and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    # no_grad restores the previous state even when the block raises
    with pytest.raises(ZeroDivisionError):
        with ag.no_grad():
            1 / 0
    assert ag.is_grad_enabled()


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_without_gradient_needs_one_element(backend):
    x = on(backend, np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"one-element tensor.*shape \(2,\)"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="does not match"):
        (x * 2.0).backward(np.ones(3))
    z = (x * 2.0).sum(keepdims=True)  # shape (1,): a one-element tensor is fine
    z.backward()
    np.testing.assert_array_equal(host(x.grad, backend), [2.0, 2.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_detach_cuts_the_graph(backend):
    x = on(backend, np.array([1.0, 2.0]))
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    (x * d).sum().backward()  # d is a constant here
    np.testing.assert_array_equal(host(x.grad, backend), [2.0, 4.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_and_item(backend):
    v = np.array([[1.5, -2.0]])
    t = on(backend, v, requires_grad=False)
    got = t.numpy()
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, v)
    assert t.sum().item() == -0.5 and isinstance(t.sum().item(), float)
    with pytest.raises(ValueError, match="one-element"):
        t.item()


def test_to_moves_between_numpy_and_strict():
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    n = ag.tensor(v, requires_grad=True)
    s = n.to("strict")
    assert s.backend.name == "strict" and s.requires_grad and s.is_leaf
    assert s.data.device == ag.get_backend("strict").device
    np.testing.assert_array_equal(s.numpy(), v)
    back = s.to("numpy")
    assert back.backend.name == "numpy" and back.dtype == np.float64
    np.testing.assert_array_equal(back.numpy(), v)
    assert n.to("numpy") is n


def test_combining_two_backends_is_a_clear_error():
    n = ag.tensor([1.0, 2.0])
    s = n.to("strict")
    for combine in (lambda: n + s, lambda: s * n, lambda: ag.concat([n, s]), lambda: ag.maximum(n, s),
                    lambda: n < s, lambda: s + np.ones(2)):
        with pytest.raises(ag.BackendMismatchError, match=r"backend '(numpy|strict)'.*\.to\("):
            combine()


# -- creation --------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_creation_dtypes_and_backends(backend):
    b = ag.get_backend(backend)
    assert ag.tensor(1.5, backend=backend).dtype == b.dtype("float32")  # Python floats -> float32
    assert ag.tensor([1.0, 2.0], backend=backend).dtype == b.dtype("float32")
    assert ag.tensor([1, 2], backend=backend).dtype == b.dtype("int64")
    assert ag.tensor(np.zeros(2), backend=backend).dtype == b.dtype("float64")  # NumPy keeps its dtype
    assert ag.tensor(np.zeros(2, np.float32), backend=backend).dtype == b.dtype("float32")
    assert ag.tensor([1.0], dtype="float64", backend=backend).dtype == b.dtype("float64")
    for make in (ag.zeros, ag.ones, ag.randn):
        t = make(2, 3, backend=backend)
        assert t.shape == (2, 3) and t.dtype == b.dtype("float32") and t.backend is b
        assert make((2, 3), dtype="float64", backend=backend).dtype == b.dtype("float64")
        assert make(4, backend=backend, requires_grad=True).requires_grad
    np.testing.assert_array_equal(ag.zeros(2, backend=backend).numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(ag.ones(2, backend=backend).numpy(), [1.0, 1.0])
    # a backend array stays on its backend and keeps its dtype
    raw = b.asarray(np.arange(3.0))
    t = ag.tensor(raw)
    assert t.backend is b and t.dtype == b.dtype("float64")


def test_creation_defaults_to_numpy_and_refuses_integer_grads():
    assert ag.tensor([1.0]).backend is ag.get_backend("numpy")
    assert ag.zeros(1).backend is ag.get_backend("numpy")
    with pytest.raises(TypeError, match="floating-point"):
        ag.tensor([1, 2], requires_grad=True)


def test_randn_follows_the_backend_seed():
    b = ag.get_backend("numpy")
    state = ag.default_generator(b).get_state()
    try:
        ag.default_generator(b).seed(3)
        first = ag.randn(4).numpy()
        ag.default_generator(b).seed(3)
        np.testing.assert_array_equal(ag.randn(4).numpy(), first)
    finally:
        ag.default_generator(b).set_state(state)
