"""autograd_lite.norm: batch normalisation as one primitive, against the same formula built from
primitives (values, batch statistics, and the gradients of x, weight and bias)."""
import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite.norm import batch_norm, batch_norm_normalize

from strategies import BACKENDS  # numpy, strict, and cupy (marked gpu; skipped without a GPU)
from test_layers import as_tensor, host


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_fused_normalisation_equals_composite_of_primitives(backend):
    """The fused primitive gives the same values and gradients as the formula built from ag primitives."""
    rng = ag.Generator(backend, 4)
    data = rng.normal((4, 3, 2, 2), dtype="float64") * 3.0 - 1.0
    u = rng.normal((4, 3, 2, 2), dtype="float64")
    axes, eps = (0, 2, 3), 1e-5

    x1 = ag.tensor(data, requires_grad=True)
    fused, mean, var = batch_norm_normalize(x1, axes, eps)
    (fused * ag.tensor(u)).sum().backward()

    x2 = ag.tensor(data, requires_grad=True)
    centred = x2 - x2.mean(axes, keepdims=True)
    composite = centred * ((centred * centred).mean(axes, keepdims=True) + eps) ** -0.5
    (composite * ag.tensor(u)).sum().backward()

    np.testing.assert_allclose(fused.numpy(), composite.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(x1.grad), host(x2.grad), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(host(mean).ravel(), host(data).mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(host(var).ravel(), host(data).var(axis=axes), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_affine_batch_norm_equals_composite_of_primitives(backend, shape, channels_last):
    """batch_norm (scale and shift inside, sums as matmuls) against the formula built from primitives:
    values, batch statistics and the gradients of x, weight and bias; on C-ordered input and on the
    channels-last memory a convolution produces (a permuted view)."""
    rng = np.random.default_rng(8)
    c, axes, eps = shape[1], (0,) if len(shape) == 2 else (0, 2, 3), 1e-5
    data = rng.standard_normal(shape) * 3.0 - 1.0
    if channels_last and len(shape) == 4:
        data = np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    u = rng.standard_normal(shape)
    wv, bv = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    stat = (1, c) + (1,) * (len(shape) - 2)

    x1, w1, b1 = (as_tensor(a, backend, requires_grad=True) for a in (data, wv, bv))
    fused, mean, var = batch_norm(x1, w1, b1, axes, eps)
    (fused * as_tensor(u, backend)).sum().backward()

    x2, w2, b2 = (as_tensor(a, backend, requires_grad=True) for a in (data, wv, bv))
    centred = x2 - x2.mean(axes, keepdims=True)
    x_hat = centred * ((centred * centred).mean(axes, keepdims=True) + eps) ** -0.5
    composite = x_hat * w2.reshape(stat) + b2.reshape(stat)
    (composite * as_tensor(u, backend)).sum().backward()

    np.testing.assert_allclose(host(fused), host(composite), rtol=1e-12, atol=1e-12)
    for got, want in ((x1, x2), (w1, w2), (b1, b2)):
        np.testing.assert_allclose(host(got.grad), host(want.grad), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(host(mean), data.mean(axis=axes, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(host(var), data.var(axis=axes, keepdims=True), rtol=1e-12)
