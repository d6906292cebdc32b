"""Convolutions from one patch gather: ``conv2d`` and ``conv_transpose2d`` with their backward.

Both take PyTorch's layouts: images are (N, C, H, W); ``conv2d``'s weight is (F, C, KH, KW),
``conv_transpose2d``'s weight is (C_in, C_out, KH, KW).

im2col by gather
----------------
A convolution slides a KH x KW window over the (zero-padded) image. Copy the pixels every window sees
into one row per window ("im2col"), and the whole convolution is a single matrix product::

    out[window, f] = sum over (k, c) of  cols[window, (k, c)] * W[f, (k, c)]      i.e.  out = cols @ W^T

The copy is a gather. For each kernel offset k and each window o, ``patch_index`` says which pixel of
the flattened image the window reads; windows that hang over the border read padding, which we send to
one extra zero appended after the last pixel (index H*W). No pad function (the array API has none),
no loops over the image, no scatter: one ``xp.take`` with a precomputed integer index.

A 3 x 3 image, 2 x 2 kernel, stride 1, no padding (2 x 2 windows)::

    image    flat, then the zero slot       patch_index      window:  o=0  o=1  o=2  o=3
    a b c    a b c d e f g h i  0              kernel offset k=0:   0    1    3    4    ->  a b d e
    d e f    0 1 2 3 4 5 6 7 8  9                            k=1:   1    2    4    5    ->  b c e f
    g h i                                                    k=2:   3    4    6    7    ->  d e g h
                                                             k=3:   4    5    7    8    ->  e f h i

    cols (one row per window):  o=0: a b d e    o=1: b c e f    o=2: d e g h    o=3: e f h i

With padding 1 there are 4 x 4 windows and every read outside the image gets index 9, the zero.
The index depends only on sizes, so it is built once per geometry (``functools.lru_cache``, on the host)
and moved to each backend's device once (a second cache).

The adjoints
------------
A convolution is linear in its input, ``y = A x``, so its input gradient is ``A^T g``: the transposed
convolution. Reading the matrix product backwards::

    conv2d:              x --im2col--> cols --(@ W^T)--> y          (gather, then matmul)
    its input gradient:  x <--col2im-- cols <--(@ W)---- g          (matmul, then gather-and-sum)

``col2im`` sends every entry of cols back to the pixel it was read from, adding where windows
overlap. Done literally, it would first build ``g @ W``, with one row of KH*KW*C numbers per window:
36 times the size of the image for a 6 x 6 kernel, written to memory only to be read back and summed.
So we go one kernel offset k = (a, e) at a time. The columns of W that belong to offset k give
``g @ W_k``, one value per window and channel; window (i, j) read pixel (i*stride + a, j*stride + e)
at that offset, so the whole block lands on the image shifted by (a, e) and subsampled by the stride,
which is one slice::

    image[:, a : a + stride*(OH-1) + 1 : stride,  e : e + stride*(OW-1) + 1 : stride, :]  +=  g @ W_k

KH*KW small matmuls and slice-adds into a zero image padded by ``padding`` (cropped at the end): the
image stays in the cache and the big matrix is never formed, which takes a third of the time of
building it and gathering it back, for the 6 x 6 kernels of the MNIST network. Read as a whole, this
is the textbook statement "a transposed convolution is every input pixel stamping the kernel into the
output", with the pixels of one kernel offset stamped together.

So the six products of the two operators are::

    conv2d forward            y  = im2col(x) @ W^T
    conv2d, d/dx              gx = col2im(g @ W)                  (= conv_transpose2d of g)
    conv2d, d/dW              gW = g^T @ im2col(x)                (cols kept from the forward)
    conv_transpose2d forward  y  = col2im(x @ W)
    conv_transpose2d, d/dx    gx = im2col(g) @ W^T                (= conv2d of g)
    conv_transpose2d, d/dW    gW = x^T @ im2col(g)

(W here is the kernel as a matrix, one row per output channel of the conv2d: (F, KH*KW*C).)

When (H + 2*padding - K) is not a multiple of the stride, the last rows and columns of the image are
read by no window; col2im leaves them zero, which is the "extra bottom/right padding" (PyTorch's
``output_padding``) that the transposed convolution needs to come back to the full size.

``patch_index`` also takes a ``dilation`` (zeros inserted between pixels). With it, the index of the
transposed geometry (the window grid dilated by the stride, padded by K-1-padding, flipped kernel)
describes the other textbook statement, "a transposed convolution is the convolution of the
zero-dilated, padded input with the flipped kernel"; the tests check it against an explicit
dilate-and-pad.

Layout
------
Inside, images are kept channels-last: one row of C channel values per pixel, (N*H*W, C). A gather
along the rows then copies C neighbouring numbers per index instead of one, ``cols`` is one contiguous
(N*OH*OW, KH*KW*C) matrix, and every product above is a single 2-D matmul. Results return to
(N, C, H, W) as a permuted view (no copy), which the next convolution permutes back for free (the
elementwise layers between, BatchNorm and ReLU, keep the layout). The cached index covers the whole
batch, so its size grows with N (a few MB for the MNIST network at batch 50); so does ``cols``, so
evaluate very large batches in chunks.
"""
from __future__ import annotations

import builtins
import functools
import numbers
from typing import NamedTuple

import numpy as np

from .backend import dtype_name
from .ops import _need, make_node
from .tensor import Tensor, _mismatch

__all__ = ["conv2d", "conv_transpose2d", "patch_index"]


# -- the index: which pixel does each window read at each kernel offset -----------------------------

@functools.lru_cache(maxsize=256)
def patch_index(in_h: int, in_w: int, kh: int, kw: int, stride: int, pad_h: int, pad_w: int,
                dilation: int, out_h: int, out_w: int) -> np.ndarray:
    """Host int64 array (kh*kw, out_h*out_w): the flat pixel window o reads at kernel offset k.

    The image (in_h x in_w) is first dilated (``dilation - 1`` zeros inserted between neighbouring
    pixels) and padded by ``pad_h`` rows on top and ``pad_w`` columns on the left; windows start every
    ``stride`` positions. Whatever a window reads outside the real pixels (padding, inserted zeros,
    anything past the bottom/right edge) gets index ``in_h * in_w``: the zero slot appended after the
    last pixel. Kernel offsets k = a*kw + b and windows o = i*out_w + j are in row-major order.
    """
    def one_axis(n_in, k, n_out, pad):
        # position on the dilated, padded axis that window i reads at offset a; real pixel v // dilation
        v = np.arange(k)[:, None] + stride * np.arange(n_out)[None, :] - pad        # (k, n_out)
        src = v // dilation
        real = (v >= 0) & (v % dilation == 0) & (src < n_in)
        return src, real

    rows, real_r = one_axis(in_h, kh, out_h, pad_h)
    cols, real_c = one_axis(in_w, kw, out_w, pad_w)
    flat = rows[:, None, :, None] * in_w + cols[None, :, None, :]                     # (kh, kw, oh, ow)
    real = real_r[:, None, :, None] & real_c[None, :, None, :]
    return _frozen(np.where(real, flat, in_h * in_w).reshape(kh * kw, out_h * out_w))


def _frozen(index: np.ndarray) -> np.ndarray:
    """An int64, read-only copy: cached indices are shared by every caller."""
    index = index.astype(np.int64)
    index.flags.writeable = False
    return index


class _Windows(NamedTuple):
    """The sizes of one convolution: the image side and the window side.

    For ``conv2d`` the image is the input and the windows are the output; for ``conv_transpose2d`` it
    is the other way round (its output is the image that the matching ``conv2d`` would read).
    """
    n: int        # batch
    h: int        # image height and width
    w: int
    kh: int       # kernel height and width
    kw: int
    stride: int
    padding: int
    oh: int       # window grid height and width
    ow: int


@functools.lru_cache(maxsize=64)
def _im2col_index(win: _Windows) -> np.ndarray:
    """Flat index into the pixel rows [image 0 | image 1 | ... | image N-1 | zero], ordered (n, window, k).

    Row n*H*W + p is pixel p of image n; row N*H*W is the zero slot.
    """
    idx = patch_index(win.h, win.w, win.kh, win.kw, win.stride, win.padding, win.padding, 1,
                      win.oh, win.ow).T                                                 # (O, K)
    hw = win.h * win.w
    batch = idx[None, :, :] + hw * np.arange(win.n)[:, None, None]                      # (N, O, K)
    return _frozen(np.where(idx[None, :, :] == hw, win.n * hw, batch).reshape(-1))


@functools.lru_cache(maxsize=128)
def _device_index(backend, builder, win: _Windows):
    """The host index of ``builder(win)``, moved to the backend's device once."""
    return backend.asarray(builder(win), dtype="int64")


# -- im2col: one gather with the index above; col2im: one slice-add per kernel offset ---------------

def _pixels(backend, images, zero_slot: bool):
    """(N, C, H, W) -> (N*H*W, C): one row of channels per pixel, optionally with a zero row appended."""
    xp = backend.xp
    n, c, h, w = images.shape
    rows = xp.reshape(xp.permute_dims(images, (0, 2, 3, 1)), (n * h * w, c))
    if zero_slot:
        rows = xp.concat([rows, xp.zeros((1, c), dtype=images.dtype, device=backend.device)], axis=0)
    return rows


def _images(backend, pixels, n: int, h: int, w: int):
    """(N*H*W, C) -> (N, C, H, W), a permuted view of the pixel rows (no copy)."""
    xp = backend.xp
    return xp.permute_dims(xp.reshape(pixels, (n, h, w, pixels.shape[1])), (0, 3, 1, 2))


def _im2col(backend, images, win: _Windows):
    """(N, C, H, W) images -> (N*OH*OW, KH*KW*C) columns: one row per window, holding its pixels."""
    xp = backend.xp
    rows = _pixels(backend, images, zero_slot=True)                                    # (N*H*W + 1, C)
    cols = xp.take(rows, _device_index(backend, _im2col_index, win), axis=0)           # (N*O*K, C)
    return xp.reshape(cols, (win.n * win.oh * win.ow, win.kh * win.kw * rows.shape[1]))


def _col2im_product(backend, left, w2, win: _Windows):
    """col2im(left @ w2), one kernel offset at a time: (N*OH*OW, A) @ (A, KH*KW*C) -> (N, H, W, C).

    ``left`` holds one row per window, ``w2`` is the kernel matrix whose columns match a row of cols.
    For offset k = (a, e), ``left @ W_k`` (the C columns of offset k) is added onto the image shifted by
    (a, e) and subsampled by the stride: one slice per offset (see the module docstring). The result is
    channels-last; the padding is cropped off as a view.
    """
    xp = backend.xp
    n, s, p, oh, ow = win.n, win.stride, win.padding, win.oh, win.ow
    c = w2.shape[1] // (win.kh * win.kw)
    if oh == 1 and ow == 1 and win.h + 2 * p == win.kh and win.w + 2 * p == win.kw:
        # One window covering the whole padded image (the 9 x 9 layers of the MNIST network): each
        # pixel is read at exactly one offset, so col2im is a reshape of a single product (one large
        # matmul instead of KH*KW small ones).
        image = xp.reshape(xp.matmul(left, w2), (n, win.kh, win.kw, c))
        return image[:, p:p + win.h, p:p + win.w, :]
    # the padded image, tall and wide enough for every window (rows no window reads stay zero)
    height = builtins.max(win.h + 2 * p, s * (oh - 1) + win.kh)
    width = builtins.max(win.w + 2 * p, s * (ow - 1) + win.kw)
    image = xp.zeros((n, height, width, c), dtype=left.dtype, device=backend.device)
    for a in range(win.kh):
        for e in range(win.kw):
            k = a * win.kw + e
            block = xp.matmul(left, w2[:, k * c:(k + 1) * c])                              # (N*O, C)
            rows, cols = slice(a, a + s * (oh - 1) + 1, s), slice(e, e + s * (ow - 1) + 1, s)
            image[:, rows, cols, :] += xp.reshape(block, (n, oh, ow, c))
    return image[:, p:p + win.h, p:p + win.w, :]


def _channel_sums(backend, rows):
    """(M, C) -> (C,): each column's sum, as a row of ones times the rows.

    The bias gradient. With a few channels per row, NumPy's axis-0 sum runs one short loop per row; the
    matrix product reads the rows at memory speed, many times faster (docs/results.md, section 7).
    """
    xp = backend.xp
    ones = xp.ones((1, rows.shape[0]), dtype=rows.dtype, device=backend.device)
    return xp.reshape(xp.matmul(ones, rows), (rows.shape[1],))


def _flat_kernel(backend, weight):
    """(A, B, KH, KW) -> (A, KH*KW*B): the kernel as a matrix whose columns match a row of cols."""
    xp = backend.xp
    a, b, kh, kw = weight.shape
    return xp.reshape(xp.permute_dims(weight, (0, 2, 3, 1)), (a, kh * kw * b))


def _unflat_kernel(backend, w2, shape):
    """The inverse of ``_flat_kernel``: (A, KH*KW*B) -> (A, B, KH, KW)."""
    xp = backend.xp
    a, b, kh, kw = shape
    return xp.permute_dims(xp.reshape(w2, (a, kh, kw, b)), (0, 3, 1, 2))


# -- the two primitives ------------------------------------------------------------------------------

def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
           padding: int = 0) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``: (N, C, H, W) -> (N, F, OH, OW).

    ``weight`` is (F, C, KH, KW), ``bias`` (F,) or None; OH = (H + 2*padding - KH) // stride + 1.
    """
    win = _check("conv2d", x, weight, bias, stride, padding)
    b, xp = x.backend, x.backend.xp
    w2 = _flat_kernel(b, weight.data)                                                  # (F, K*C)
    cols = _im2col(b, x.data, win)                                                     # (N*O, K*C)
    out = xp.matmul(cols, xp.matrix_transpose(w2))                                     # (N*O, F)
    if bias is not None:
        out = out + bias.data
    kept_cols = cols if _need(weight) else None

    def backward(g):
        g2 = _pixels(b, g, zero_slot=False)                                            # (N*O, F)
        gx = gw = gb = None
        if _need(x):
            gx = xp.permute_dims(_col2im_product(b, g2, w2, win), (0, 3, 1, 2))        # col2im(g @ W)
        if _need(weight):
            gw = _unflat_kernel(b, xp.matmul(xp.matrix_transpose(g2), kept_cols), weight.shape)
        if _need(bias):
            gb = _channel_sums(b, g2)
        return gx, gw, gb

    # the backward returns new arrays (products, sums, views of them), one per input: fresh_grads
    return make_node(_images(b, out, win.n, win.oh, win.ow), (x, weight, bias), backward, "conv2d",
                     fresh_grads=True)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
                     padding: int = 0, output_padding: int = 0) -> Tensor:
    """Transposed convolution, as ``torch.nn.functional.conv_transpose2d``: (N, C_in, H, W) -> (N, C_out, H', W').

    ``weight`` is (C_in, C_out, KH, KW), ``bias`` (C_out,) or None;
    H' = (H - 1)*stride - 2*padding + KH + output_padding, with 0 <= output_padding < stride.
    It is the input gradient of ``conv2d(., weight, stride=stride, padding=padding)`` on an H' x W' image.
    """
    win = _check("conv_transpose2d", x, weight, bias, stride, padding, output_padding)
    b, xp = x.backend, x.backend.xp
    w2 = _flat_kernel(b, weight.data)                                                  # (C_in, K*C_out)
    x2 = _pixels(b, x.data, zero_slot=False)                                           # (N*O, C_in)
    out = _col2im_product(b, x2, w2, win)                                              # (N, H', W', C_out)
    if bias is not None:
        out = out + bias.data

    def backward(g):
        cols = _im2col(b, g, win)                                                      # (N*O, K*C_out)
        gx = gw = gb = None
        if _need(x):
            gx = _images(b, xp.matmul(cols, xp.matrix_transpose(w2)), win.n, win.oh, win.ow)
        if _need(weight):
            gw = _unflat_kernel(b, xp.matmul(xp.matrix_transpose(x2), cols), weight.shape)
        if _need(bias):
            gb = _channel_sums(b, _pixels(b, g, zero_slot=False))
        return gx, gw, gb

    return make_node(xp.permute_dims(out, (0, 3, 1, 2)), (x, weight, bias), backward, "conv_transpose2d",
                     fresh_grads=True)


# -- argument checks: one clear line per mistake -------------------------------------------------------

def _check(op: str, x, weight, bias, stride, padding, output_padding=None) -> _Windows:
    """Validate the arguments of ``op`` and return its window geometry."""
    transposed = output_padding is not None
    w_layout = "(C_in, C_out, KH, KW)" if transposed else "(F, C, KH, KW)"
    for name, t in (("input", x), ("weight", weight), ("bias", bias)):
        if t is None and name == "bias":
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}; wrap it with ag.tensor(...)")
        if t.backend is not x.backend:
            raise _mismatch(x.backend, t.backend)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W); got shape {x.shape} "
                         f"(a single image needs a batch axis: x.reshape(1, C, H, W))")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D {w_layout}; got shape {weight.shape}")
    for name, t in (("input", x), ("weight", weight)):
        if 0 in t.shape:
            raise ValueError(f"{op}: {name} shape {t.shape} has a zero-length axis")
    if not x.backend.xp.isdtype(x.dtype, "real floating"):
        raise ValueError(f"{op}: input dtype {dtype_name(x.dtype)} is not floating-point; cast it with "
                         f".astype('float32')")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        dtypes = f"input {dtype_name(x.dtype)}, weight {dtype_name(weight.dtype)}" + (
            "" if bias is None else f", bias {dtype_name(bias.dtype)}")
        raise ValueError(f"{op}: dtypes differ ({dtypes}); cast them to one with .astype(...)")
    stride = _int_arg(op, "stride", stride, low=1)
    padding = _int_arg(op, "padding", padding, low=0)

    n, c_x, h, w = x.shape
    kh, kw = weight.shape[2:]
    c_in = weight.shape[0] if transposed else weight.shape[1]
    if c_x != c_in:
        raise ValueError(f"{op}: input has {c_x} channels (shape {x.shape}) but weight {w_layout} "
                         f"expects {c_in} (shape {weight.shape})")
    c_out = weight.shape[1] if transposed else weight.shape[0]
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},) to match weight {weight.shape}; "
                         f"got {bias.shape}")

    if not transposed:
        if h + 2 * padding < kh or w + 2 * padding < kw:
            raise ValueError(f"{op}: kernel {kh}x{kw} (weight {weight.shape}) is larger than the padded "
                             f"input {h + 2 * padding}x{w + 2 * padding} (input {x.shape}, padding "
                             f"{padding}); use a smaller kernel or more padding")
        oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
        return _Windows(n, h, w, kh, kw, stride, padding, oh, ow)

    output_padding = _int_arg(op, "output_padding", output_padding, low=0)
    if output_padding >= stride:
        raise ValueError(f"{op}: output_padding must be smaller than stride ({stride}); got "
                         f"{output_padding}")
    out_h = (h - 1) * stride - 2 * padding + kh + output_padding
    out_w = (w - 1) * stride - 2 * padding + kw + output_padding
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{op}: output would be {out_h}x{out_w} for input {x.shape}, weight "
                         f"{weight.shape}, stride {stride}, padding {padding}; reduce the padding")
    return _Windows(n, out_h, out_w, kh, kw, stride, padding, h, w)


def _int_arg(op: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a positive" if low == 1 else "a non-negative"
        raise ValueError(f"{op}: {name} must be {kind} int (the same for height and width); got {value!r}")
    return builtins.int(value)
