"""Tests for autograd_lite.conv: conv2d and conv_transpose2d against loops, finite differences and each other.

* values: against direct loop implementations written here from the definitions (a window sliding over
  the zero-padded image; a transposed convolution as every input pixel stamping the kernel into the
  output), on random sizes (hypothesis) and on named cases: non-divisible sizes, rectangular kernels,
  padding wider than the kernel, and the geometries of the MNIST network;
* shapes: PyTorch's size formulas and the examples of its documentation;
* gradients: float64 central differences (gradcheck) w.r.t. input, weight and bias;
* the adjoint relations the module is built on: <conv2d(x, W), y> == <x, conv_transpose2d(y, W)>, the
  input gradient of one op is the other op, and the index of the zero-dilated, padded transposed
  geometry matches an explicit dilate-and-pad;
* one-line ValueErrors for wrong ranks, channel mismatches, kernels larger than the padded input and
  other bad arguments.
Every test runs on numpy and on array-api-strict (cupy where a GPU is present).
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite.conv import _device_index, conv2d, conv_transpose2d, patch_index

from strategies import BACKENDS  # numpy, strict, and cupy (marked gpu; skipped without a GPU)


def t(a, backend, grad=False):
    return ag.tensor(np.asarray(a), requires_grad=grad, backend=backend)


# -- the definitions, as loops ---------------------------------------------------------------------

def loop_conv2d(x, w, b, stride, padding):
    """out[n, f, i, j] = b[f] + sum_{c, a, e} w[f, c, a, e] * xpad[n, c, i*stride + a, j*stride + e]."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xpad = np.zeros((n, c, h + 2 * padding, wd + 2 * padding))
    xpad[:, :, padding:padding + h, padding:padding + wd] = x
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for e in range(kw):
                    out[:, :, i, j] += xpad[:, :, i * stride + a, j * stride + e] @ w[:, :, a, e].T
    return out if b is None else out + b[None, :, None, None]


def loop_conv_transpose2d(x, w, b, stride, padding, output_padding):
    """Every input pixel (i, j) adds x[n, :, i, j] @ w[:, :, a, e] at output (i*stride - padding + a, ...)."""
    n, _, h, wd = x.shape
    _, f, kh, kw = w.shape
    oh = (h - 1) * stride - 2 * padding + kh + output_padding
    ow = (wd - 1) * stride - 2 * padding + kw + output_padding
    big = np.zeros((n, f, (h - 1) * stride + kh + output_padding, (wd - 1) * stride + kw + output_padding))
    for i in range(h):
        for j in range(wd):
            for a in range(kh):
                for e in range(kw):
                    big[:, :, i * stride + a, j * stride + e] += x[:, :, i, j] @ w[:, :, a, e]
    out = big[:, :, padding:padding + oh, padding:padding + ow]
    return out if b is None else out + b[None, :, None, None]


# -- random geometries -----------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    """A conv2d geometry (input and weight shapes, stride, padding) whose kernel fits the padded input."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 7))
    w = draw(st.integers(max(1, kw - 2 * padding), 7))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(x=(n, c, h, w), w=(f, c, kh, kw), stride=stride, padding=padding, bias=draw(st.booleans()))


@st.composite
def conv_transpose_cases(draw):
    """A conv_transpose2d geometry with a positive output size."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    output_padding = draw(st.integers(0, stride - 1))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    assume((h - 1) * stride - 2 * padding + kh + output_padding >= 1)
    assume((w - 1) * stride - 2 * padding + kw + output_padding >= 1)
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(x=(n, c_in, h, w), w=(c_in, c_out, kh, kw), stride=stride, padding=padding,
                output_padding=output_padding, bias=draw(st.booleans()))


def _draw_arrays(case, seed, bias_size):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    b = rng.standard_normal(bias_size) if case["bias"] else None
    return x, w, b


def _run_conv2d(case, backend, seed=0):
    x, w, b = _draw_arrays(case, seed, case["w"][0])
    out = conv2d(t(x, backend), t(w, backend), None if b is None else t(b, backend),
                 stride=case["stride"], padding=case["padding"])
    return out, loop_conv2d(x, w, b, case["stride"], case["padding"])


def _run_conv_transpose2d(case, backend, seed=0):
    x, w, b = _draw_arrays(case, seed, case["w"][1])
    out = conv_transpose2d(t(x, backend), t(w, backend), None if b is None else t(b, backend),
                           stride=case["stride"], padding=case["padding"],
                           output_padding=case["output_padding"])
    return out, loop_conv_transpose2d(x, w, b, case["stride"], case["padding"], case["output_padding"])


# -- forward values --------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@given(case=conv_cases())
def test_conv2d_matches_loops(backend, case):
    out, expected = _run_conv2d(case, backend)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=conv_transpose_cases())
def test_conv_transpose2d_matches_loops(backend, case):
    out, expected = _run_conv_transpose2d(case, backend)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


# named cases: (input shape, weight shape, stride, padding, output_padding), for both ops
NAMED = {
    "divisible": ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, 1),
    "non-divisible": ((2, 2, 8, 7), (3, 2, 3, 3), 2, 0, 1),   # (8 - 3) % 2 == 1, (7 - 3) % 2 == 0
    "stride 3, rows left over": ((1, 2, 9, 10), (2, 2, 2, 4), 3, 1, 2),
    "rectangular kernel": ((2, 2, 6, 5), (3, 2, 1, 4), 1, 0, 0),
    "padding wider than kernel": ((2, 1, 4, 4), (2, 1, 2, 2), 1, 3, 0),
    "1x1 kernel": ((3, 4, 3, 5), (2, 4, 1, 1), 2, 0, 1),
    "kernel covers the image": ((2, 3, 4, 4), (5, 3, 4, 4), 1, 0, 0),
    # the MNIST network's geometries, with fewer channels
    "mnist 28 -> 23 (6x6)": ((2, 1, 28, 28), (3, 1, 6, 6), 1, 0, 0),
    "mnist 18 -> 9 (4x4 s2 p1)": ((2, 3, 18, 18), (4, 3, 4, 4), 2, 1, 0),
    "mnist 9 -> 1 (9x9)": ((2, 4, 9, 9), (5, 4, 9, 9), 1, 0, 0),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(NAMED))
def test_named_cases_match_loops(backend, name):
    xs, ws, stride, padding, output_padding = NAMED[name]
    for bias in (True, False):
        out, expected = _run_conv2d(dict(x=xs, w=ws, stride=stride, padding=padding, bias=bias), backend)
        assert out.shape == expected.shape
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
        # the transposed op reads the windows side: input (N, F, OH, OW), weight (F, C, KH, KW)
        case = dict(x=out.shape, w=ws, stride=stride, padding=padding,
                    output_padding=output_padding, bias=bias)
        out_t, expected_t = _run_conv_transpose2d(case, backend, seed=1)
        assert out_t.shape == expected_t.shape
        np.testing.assert_allclose(out_t.numpy(), expected_t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_stays_float32_on_the_device(backend):
    b = ag.get_backend(backend)
    x = ag.randn(2, 3, 9, 9, backend=backend, requires_grad=True)
    w = ag.randn(4, 3, 4, 4, backend=backend, requires_grad=True)
    bias = ag.zeros(4, backend=backend, requires_grad=True)
    y = conv2d(x, w, bias, stride=2, padding=1)
    z = conv_transpose2d(y, w, bias[:3], stride=2, padding=1, output_padding=1)
    assert y.dtype == b.xp.float32 and z.dtype == b.xp.float32 and z.shape == x.shape
    (z * z).sum().backward()
    for leaf in (x, w, bias):
        assert leaf.grad.dtype == b.xp.float32 and tuple(leaf.grad.shape) == leaf.shape
        if backend != "numpy":
            assert leaf.grad.device == b.device
    expected = loop_conv2d(x.numpy().astype(np.float64), w.numpy().astype(np.float64),
                           bias.numpy().astype(np.float64), 2, 1)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)


# -- shapes ----------------------------------------------------------------------------------------

# (op, input shape, weight shape, stride, padding, output_padding, output shape); the first four
# are the examples in PyTorch's Conv2d / ConvTranspose2d documentation (with batch 1 for 20; the
# fourth asks PyTorch for output_size=(12, 12), which it turns into output_padding=1); then the MNIST
# network at batch 2.
SHAPES = [
    ("conv2d", (1, 16, 50, 100), (33, 16, 3, 3), 2, 0, None, (1, 33, 24, 49)),
    ("conv_transpose2d", (1, 16, 50, 100), (16, 33, 3, 3), 2, 0, 0, (1, 33, 101, 201)),
    ("conv2d", (1, 16, 12, 12), (16, 16, 3, 3), 2, 1, None, (1, 16, 6, 6)),
    ("conv_transpose2d", (1, 16, 6, 6), (16, 16, 3, 3), 2, 1, 1, (1, 16, 12, 12)),
    ("conv2d", (2, 1, 28, 28), (16, 1, 6, 6), 1, 0, None, (2, 16, 23, 23)),
    ("conv2d", (2, 16, 23, 23), (32, 16, 6, 6), 1, 0, None, (2, 32, 18, 18)),
    ("conv2d", (2, 32, 18, 18), (64, 32, 4, 4), 2, 1, None, (2, 64, 9, 9)),
    ("conv2d", (2, 64, 9, 9), (500, 64, 9, 9), 1, 0, None, (2, 500, 1, 1)),
    ("conv_transpose2d", (2, 500, 1, 1), (500, 64, 9, 9), 1, 0, 0, (2, 64, 9, 9)),
    ("conv_transpose2d", (2, 64, 9, 9), (64, 32, 4, 4), 2, 1, 0, (2, 32, 18, 18)),
    ("conv_transpose2d", (2, 32, 18, 18), (32, 16, 6, 6), 1, 0, 0, (2, 16, 23, 23)),
    ("conv_transpose2d", (2, 16, 23, 23), (16, 1, 6, 6), 1, 0, 0, (2, 1, 28, 28)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op, xs, ws, stride, padding, output_padding, expected", SHAPES)
def test_output_shapes_follow_pytorch(backend, op, xs, ws, stride, padding, output_padding, expected):
    x, w = ag.zeros(*xs, backend=backend), ag.zeros(*ws, backend=backend)
    h, wd = xs[2:]
    if op == "conv2d":
        out = conv2d(x, w, stride=stride, padding=padding)
        formula = ((h + 2 * padding - ws[2]) // stride + 1, (wd + 2 * padding - ws[3]) // stride + 1)
    else:
        out = conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding)
        formula = ((h - 1) * stride - 2 * padding + ws[2] + output_padding,
                   (wd - 1) * stride - 2 * padding + ws[3] + output_padding)
    assert out.shape == expected
    assert out.shape[2:] == formula


# -- gradients -------------------------------------------------------------------------------------

GRAD_CASES = [  # (input shape, weight shape, stride, padding, output_padding)
    ((1, 2, 4, 3), (3, 2, 2, 2), 1, 1, 0),     # small enough for every input element
    ((2, 2, 5, 4), (3, 2, 3, 2), 2, 1, 1),     # non-divisible: (5 + 2 - 3) % 2 == 0, (4 + 2 - 2) % 2 == 0
    ((2, 3, 6, 5), (2, 3, 3, 3), 2, 0, 1),     # (6 - 3) % 2 == 1: a row no window reads
    ((2, 2, 3, 3), (2, 2, 3, 3), 1, 0, 0),     # 1 x 1 output
]


def _gradcheck(fn, *arrays, backend):
    tensors = [t(a, backend, grad=True) for a in arrays]
    report = ag.gradcheck(fn, *tensors, atol=1e-7, rtol=1e-6)
    # one random-direction comparison plus one per element of every input small enough
    assert report.comparisons >= 1 + sum(a.size for a in arrays if a.size <= 64)
    return report


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xs, ws, stride, padding, output_padding", GRAD_CASES)
def test_conv2d_gradcheck(backend, xs, ws, stride, padding, output_padding):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    _gradcheck(lambda x, w, b: conv2d(x, w, b, stride=stride, padding=padding), x, w, b, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xs, ws, stride, padding, output_padding", GRAD_CASES)
def test_conv_transpose2d_gradcheck(backend, xs, ws, stride, padding, output_padding):
    rng = np.random.default_rng(4)
    n, c, h, wd = xs
    y_shape = (n, ws[0], (h + 2 * padding - ws[2]) // stride + 1, (wd + 2 * padding - ws[3]) // stride + 1)
    y, w, b = rng.standard_normal(y_shape), rng.standard_normal(ws), rng.standard_normal(ws[1])
    _gradcheck(lambda y, w, b: conv_transpose2d(y, w, b, stride=stride, padding=padding,
                                                output_padding=output_padding), y, w, b, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_through_an_encoder_decoder_pair(backend):
    """conv2d -> tanh -> conv_transpose2d with shared and separate weights, the way the model uses them."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 6))
    w1, b1 = rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    w2 = rng.standard_normal((3, 2, 3, 2))

    def autoencoder(x, w1, b1, w2):
        h = ag.tanh(conv2d(x, w1, b1, stride=2, padding=1))
        return conv_transpose2d(h, w2, stride=2, padding=1, output_padding=0) * conv_transpose2d(
            h, w1, stride=2, padding=1)

    _gradcheck(autoencoder, x, w1, b1, w2, backend=backend)


# -- the adjoint relations -------------------------------------------------------------------------

@st.composite
def adjoint_cases(draw):
    """A conv2d geometry with the output_padding that brings conv_transpose2d back to the input size."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 8))
    output_padding = (h + 2 * padding - kh) % stride
    # one output_padding serves both axes, so the width must leave the same remainder as the height
    w = kw - 2 * padding + output_padding
    while w < 1:
        w += stride
    w += stride * draw(st.integers(0, 2))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(x=(n, c, h, w), w=(f, c, kh, kw), stride=stride, padding=padding,
                output_padding=output_padding)


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=adjoint_cases())
def test_adjoint_identity(backend, case):
    """<conv2d(x, W), y> == <x, conv_transpose2d(y, W)>: the transposed convolution is the adjoint."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    s, p, op = case["stride"], case["padding"], case["output_padding"]
    y_t = conv2d(t(x, backend), t(w, backend), stride=s, padding=p)
    y = rng.standard_normal(y_t.shape)
    xt = conv_transpose2d(t(y, backend), t(w, backend), stride=s, padding=p, output_padding=op)
    assert xt.shape == x.shape
    lhs, rhs = np.sum(y_t.numpy() * y), np.sum(x * xt.numpy())
    assert abs(lhs - rhs) <= 1e-10 * (1.0 + abs(lhs))


# (input shape, weight shape, stride, padding, output_padding) where one output_padding fits both axes
ADJOINT_CASES = [
    ((2, 2, 5, 4), (3, 2, 3, 2), 2, 1, 0),
    ((2, 3, 6, 6), (2, 3, 3, 3), 2, 0, 1),     # a row and a column that no window reads
    ((1, 2, 10, 7), (2, 2, 2, 2), 3, 1, 1),
    ((2, 4, 9, 9), (3, 4, 9, 9), 1, 0, 0),     # 1 x 1 output, as the MNIST encoder's last layer
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("xs, ws, stride, padding, output_padding", ADJOINT_CASES)
def test_input_gradient_of_each_op_is_the_other_op(backend, xs, ws, stride, padding, output_padding):
    rng = np.random.default_rng(7)
    to_numpy = ag.get_backend(backend).to_numpy
    x, w = t(rng.standard_normal(xs), backend, grad=True), t(rng.standard_normal(ws), backend)
    y = conv2d(x, w, stride=stride, padding=padding)
    g = t(rng.standard_normal(y.shape), backend)
    y.backward(g)
    expected = conv_transpose2d(g, w, stride=stride, padding=padding, output_padding=output_padding)
    np.testing.assert_allclose(to_numpy(x.grad), expected.numpy(), atol=1e-12)

    g_in = t(g.numpy(), backend, grad=True)
    z = conv_transpose2d(g_in, w, stride=stride, padding=padding, output_padding=output_padding)
    u = t(rng.standard_normal(z.shape), backend)
    z.backward(u)
    expected = conv2d(u, w, stride=stride, padding=padding)
    np.testing.assert_allclose(to_numpy(g_in.grad), expected.numpy(), atol=1e-12)


# -- the index ---------------------------------------------------------------------------------------

def test_patch_index_docstring_example():
    """The 3 x 3 image, 2 x 2 kernel table of the module docstring, then the same with padding 1."""
    expected = [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    np.testing.assert_array_equal(patch_index(3, 3, 2, 2, 1, 0, 0, 1, 2, 2), expected)
    padded = patch_index(3, 3, 2, 2, 1, 1, 1, 1, 4, 4)
    assert padded.shape == (4, 16)
    assert padded[0, 0] == 9 and padded[3, 0] == 0 and padded[0, 15] == 8 and padded[3, 15] == 9
    assert not padded.flags.writeable


@given(h=st.integers(1, 5), w=st.integers(1, 5), kh=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 3), dilation=st.integers(1, 3))
def test_patch_index_is_an_explicit_dilate_pad_and_slide(h, w, kh, kw, stride, pad, dilation):
    """Gathering with the index == inserting zeros, padding and cutting windows out by hand."""
    image = np.arange(1.0, h * w + 1.0).reshape(h, w)               # nonzero, so zeros are visible
    big = np.zeros(((h - 1) * dilation + 1 + 2 * pad, (w - 1) * dilation + 1 + 2 * pad))
    big[pad:pad + (h - 1) * dilation + 1:dilation, pad:pad + (w - 1) * dilation + 1:dilation] = image
    assume(big.shape[0] >= kh and big.shape[1] >= kw)
    oh, ow = (big.shape[0] - kh) // stride + 1, (big.shape[1] - kw) // stride + 1
    windows = np.stack([big[i * stride:i * stride + kh, j * stride:j * stride + kw].reshape(-1)
                        for i in range(oh) for j in range(ow)], axis=1)            # (K, O)
    idx = patch_index(h, w, kh, kw, stride, pad, pad, dilation, oh, ow)
    np.testing.assert_array_equal(np.append(image.reshape(-1), 0.0)[idx], windows)


def test_index_is_built_once_and_kept_on_the_device():
    b = ag.get_backend("strict")
    x, w = ag.randn(2, 3, 10, 10, backend=b), ag.randn(4, 3, 3, 3, backend=b)
    conv2d(x, w, stride=2, padding=1)
    before = _device_index.cache_info()
    conv2d(x, w, stride=2, padding=1)
    after = _device_index.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_untouched_and_no_graph_under_no_grad(backend):
    x = ag.randn(2, 2, 6, 6, dtype="float64", backend=backend, requires_grad=True)
    w = ag.randn(3, 2, 3, 3, dtype="float64", backend=backend, requires_grad=True)
    x0, w0 = x.numpy().copy(), w.numpy().copy()
    with ag.no_grad():
        y = conv2d(x, w, stride=2)
        z = conv_transpose2d(y, w, stride=2, output_padding=1)
    assert not y.requires_grad and not z.requires_grad and z.shape == x.shape
    y = conv2d(x, w, stride=2)
    conv_transpose2d(y, w, stride=2, output_padding=1).sum().backward()
    np.testing.assert_array_equal(x.numpy(), x0)
    np.testing.assert_array_equal(w.numpy(), w0)


# -- errors: one line each, naming what was wrong ------------------------------------------------------

def _z(*shape, backend="numpy", dtype="float32"):
    return ag.zeros(*shape, backend=backend, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call, message", [
    (lambda b: conv2d(_z(3, 28, 28, backend=b), _z(16, 3, 6, 6, backend=b)),
     r"conv2d: input must be 4-D \(N, C, H, W\); got shape \(3, 28, 28\)"),
    (lambda b: conv2d(_z(1, 3, 28, 28, backend=b), _z(16, 3, 6, backend=b)),
     r"conv2d: weight must be 4-D \(F, C, KH, KW\); got shape \(16, 3, 6\)"),
    (lambda b: conv_transpose2d(_z(2, 4, 5, 5, backend=b), _z(4, 3, 2, backend=b)),
     r"conv_transpose2d: weight must be 4-D \(C_in, C_out, KH, KW\); got shape \(4, 3, 2\)"),
    (lambda b: conv2d(_z(2, 3, 8, 8, backend=b), _z(16, 1, 3, 3, backend=b)),
     r"input has 3 channels \(shape \(2, 3, 8, 8\)\) but weight .* expects 1 \(shape \(16, 1, 3, 3\)\)"),
    (lambda b: conv_transpose2d(_z(2, 3, 8, 8, backend=b), _z(4, 3, 3, 3, backend=b)),
     r"conv_transpose2d: input has 3 channels .* expects 4 \(shape \(4, 3, 3, 3\)\)"),
    (lambda b: conv2d(_z(2, 1, 5, 5, backend=b), _z(4, 1, 6, 6, backend=b)),
     r"kernel 6x6 \(weight \(4, 1, 6, 6\)\) is larger than the padded input 5x5 \(input \(2, 1, 5, 5\)"),
    (lambda b: conv2d(_z(2, 1, 4, 9, backend=b), _z(4, 1, 3, 12, backend=b), padding=1),
     r"kernel 3x12 .* larger than the padded input 6x11"),
    (lambda b: conv2d(_z(2, 1, 8, 8, backend=b), _z(4, 1, 3, 3, backend=b), _z(3, backend=b)),
     r"bias must have shape \(4,\) to match weight \(4, 1, 3, 3\); got \(3,\)"),
    (lambda b: conv_transpose2d(_z(2, 4, 3, 3, backend=b), _z(4, 2, 3, 3, backend=b), _z(4, backend=b)),
     r"bias must have shape \(2,\)"),
    (lambda b: conv2d(_z(2, 1, 8, 8, backend=b), _z(4, 1, 3, 3, backend=b), stride=0),
     r"stride must be a positive int .*; got 0"),
    (lambda b: conv2d(_z(2, 1, 8, 8, backend=b), _z(4, 1, 3, 3, backend=b), stride=(1, 2)),
     r"stride must be a positive int .*; got \(1, 2\)"),
    (lambda b: conv2d(_z(2, 1, 8, 8, backend=b), _z(4, 1, 3, 3, backend=b), padding=-1),
     r"padding must be a non-negative int .*; got -1"),
    (lambda b: conv_transpose2d(_z(2, 4, 3, 3, backend=b), _z(4, 2, 3, 3, backend=b), stride=2,
                                output_padding=2),
     r"output_padding must be smaller than stride \(2\); got 2"),
    (lambda b: conv_transpose2d(_z(2, 4, 1, 1, backend=b), _z(4, 2, 1, 1, backend=b), padding=1),
     r"conv_transpose2d: output would be -1x-1 for input \(2, 4, 1, 1\)"),
    (lambda b: conv2d(_z(2, 1, 8, 8, backend=b), _z(4, 1, 3, 3, backend=b, dtype="float64")),
     r"dtypes differ \(input float32, weight float64\)"),
    (lambda b: conv2d(_z(0, 1, 8, 8, backend=b), _z(4, 1, 3, 3, backend=b)),
     r"input shape \(0, 1, 8, 8\) has a zero-length axis"),
])
def test_bad_arguments_raise_one_clear_line(backend, call, message):
    with pytest.raises(ValueError, match=message) as info:
        call(backend)
    assert "\n" not in str(info.value)


def test_wrong_types_and_backends_are_named():
    with pytest.raises(TypeError, match=r"conv2d: input must be a Tensor, got ndarray"):
        conv2d(np.zeros((1, 1, 4, 4)), _z(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"input dtype int64 is not floating-point"):
        conv2d(ag.tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), ag.tensor(np.zeros((1, 1, 2, 2), dtype=np.int64)))
    with pytest.raises(ag.BackendMismatchError, match="backend 'numpy' with one on backend 'strict'"):
        conv2d(_z(1, 1, 4, 4), _z(1, 1, 2, 2, backend="strict"))
