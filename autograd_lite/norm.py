"""Batch normalisation as one primitive: ``batch_norm`` and ``batch_norm_normalize`` with their backward.

Built from primitives, x_hat = (x - mean) / sqrt(var + eps) would record half a dozen full-size
temporaries; written as one node with its own backward it needs none of them, and runs faster.
``gmvae_np.layers.BatchNorm`` (the Module, with running statistics) calls :func:`batch_norm` in
training mode.
"""
from __future__ import annotations

import math

from .ops import make_node
from .tensor import Tensor

__all__ = ["batch_norm", "batch_norm_normalize"]


def batch_norm_normalize(x: Tensor, axes: tuple, eps: float):
    """x_hat = (x - mean) / sqrt(var + eps) over ``axes``, as one primitive; returns (x_hat, mean, var).

    ``mean`` and the biased ``var`` are raw arrays (keepdims) for the running statistics. Fusing the
    normalisation into one node saves the graph half a dozen full-size temporaries (forward plus backward
    run faster than the same formula built from primitives). Its backward: with
    r = 1/sqrt(var + eps), n the number of values averaged and g the incoming gradient,

        dL/dx = r * (g - mean(g) - x_hat * mean(g * x_hat))      (means over ``axes``)

    because x_hat depends on x directly (r), through the mean (-r/n for every entry) and through the
    variance (-x_hat * r * x_hat_j / n). The tests check it against central differences in float64.
    This is :func:`batch_norm` without the scale and shift.
    """
    return batch_norm(x, None, None, axes, eps)


def batch_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, axes: tuple, eps: float):
    """weight * x_hat + bias (per channel) with x_hat as in :func:`batch_norm_normalize`, as one primitive.

    Returns (out, mean, var); ``weight`` and ``bias`` are (C,) tensors or None (no scale / no shift), C
    being the size of the axes not in ``axes``. With the scale and shift inside, the backward reuses the
    two sums it needs anyway: sum(g) is the bias gradient, sum(g * x_hat) the weight gradient, and

        dL/dx = r * weight * (g - sum(g)/n - x_hat * sum(g * x_hat)/n)

    (the formula above with g replaced by weight * g).

    Speed: the array is viewed as rows of channels, (n, C), which for a convolution's channels-last
    output is free. The per-channel sums over the n rows are then matrix products with a row of ones:
    BLAS reads the rows at memory speed, while NumPy's axis-0 sum over rows of a few channels runs one
    short loop per row, many times slower.
    """
    xp, be = x.backend.xp, x.backend
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    order = tuple(axes) + kept                        # reduced axes first, channels last
    moved = tuple(x.shape[i] for i in order)
    n = math.prod(x.shape[i] for i in axes)
    c = math.prod(x.shape[i] for i in kept)
    stat_shape = tuple(1 if i in axes else x.shape[i] for i in range(x.ndim))
    inverse = tuple(sorted(range(x.ndim), key=order.__getitem__))

    def rows(a):                                      # (..x.shape..) -> (n, C)
        return xp.reshape(xp.permute_dims(a, order), (n, c))

    def unrows(a2):                                   # (n, C) -> x.shape (a view)
        return xp.permute_dims(xp.reshape(a2, moved), inverse)

    x2 = rows(x.data)
    ones = xp.ones((1, n), dtype=x2.dtype, device=be.device)
    mean = xp.matmul(ones, x2) / float(n)                                                   # (1, C)
    centred = x2 - mean
    var = xp.matmul(ones, centred * centred) / float(n)
    inv_std = 1.0 / xp.sqrt(var + eps)
    x_hat = centred                                   # centred is ours: normalise it in place
    x_hat *= inv_std
    w = None if weight is None else xp.reshape(weight.data, (1, c))
    out2 = x_hat if w is None else x_hat * w
    if bias is not None:
        out2 = out2 + xp.reshape(bias.data, (1, c))

    def backward(g):
        g2 = rows(g)
        g_sum = xp.matmul(ones, g2)                                                         # (1, C)
        gx_sum = xp.matmul(ones, g2 * x_hat)
        scale = inv_std if w is None else inv_std * w                                     # r * weight
        gx = g2 * scale
        gx -= x_hat * (scale * gx_sum / float(n))
        gx -= scale * g_sum / float(n)
        gw = None if weight is None else xp.reshape(gx_sum, (c,))
        gb = None if bias is None else xp.reshape(g_sum, (c,))
        return unrows(gx), gw, gb

    # the backward returns new arrays, one per input: fresh_grads
    out = make_node(unrows(out2), (x, weight, bias), backward, "batch_norm", fresh_grads=True)
    return out, xp.reshape(mean, stat_shape), xp.reshape(var, stat_shape)
