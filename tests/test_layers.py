"""Tests for gmvae_np.layers: Module discovery, checkpoints, devices, and every layer against NumPy.

Every differentiable layer is gradchecked in float64; BatchNorm is compared with a NumPy reference
written here (train-mode statistics, running-stat updates, eval output); the conv layers are compared
with direct loop implementations of the convolution sums.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import autograd_lite as ag
from gmvae_np.layers import (BatchNorm, Conv2d, ConvTranspose2d, Flatten, FourierFeatures, Identity, Linear,
                             Module, ModuleList, Parameter, ReLU, Reshape, Sequential, Sigmoid, Tanh)

from strategies import BACKENDS  # numpy, strict, and cupy (marked gpu; skipped without a GPU)


def host(a):
    """NumPy copy of a Tensor or a backend array."""
    if isinstance(a, ag.Tensor):
        return a.numpy()
    from autograd_lite.backend import backend_of_array
    return backend_of_array(a).to_numpy(a)


def as_tensor(array, backend, requires_grad=False):
    return ag.tensor(np.asarray(array), requires_grad=requires_grad, backend=backend)


# -- gradcheck of a module's parameters ---------------------------------------------------------------

def _owner(module, dotted):
    """The object holding the last part of a dotted parameter name, and that part."""
    *path, last = dotted.split(".")
    obj = module
    for part in path:
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj, last


def _swap(module, name, tensor):
    obj, last = _owner(module, name)
    if last.isdigit():
        old = obj[int(last)]
        obj[int(last)] = tensor
    else:
        old = getattr(obj, last)
        setattr(obj, last, tensor)
    return old


def gradcheck_module(module, x, **kwargs):
    """Gradcheck module(x) with respect to x and every parameter (all float64)."""
    names = [n for n, _ in module.named_parameters()]
    params = [p for _, p in module.named_parameters()]

    def fn(x, *ps):
        olds = [_swap(module, n, p) for n, p in zip(names, ps)]
        try:
            return module(x)
        finally:
            for n, old in zip(names, olds):
                _swap(module, n, old)

    return ag.gradcheck(fn, x, *params, **kwargs)


# -- NumPy references ---------------------------------------------------------------------------------

def conv2d_ref(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp_[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("ncab,ocab->no", patch, w)
    return out + (0.0 if b is None else b[None, :, None, None])


def conv_transpose2d_ref(x, w, b, stride, padding, output_padding):
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    hf, wf = (h - 1) * stride + kh + output_padding, (wd - 1) * stride + kw + output_padding
    full = np.zeros((n, o, hf, wf))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum(
                "nc,coab->noab", x[:, :, i, j], w)
    ho = (h - 1) * stride - 2 * padding + kh + output_padding
    wo = (wd - 1) * stride - 2 * padding + kw + output_padding
    out = full[:, :, padding:padding + ho, padding:padding + wo]
    return out + (0.0 if b is None else b[None, :, None, None])


class BatchNormRef:
    """Batch normalisation written out in NumPy (float64), as the Torch7/PyTorch documentation states it."""

    def __init__(self, c, eps, momentum, weight, bias):
        self.eps, self.momentum, self.weight, self.bias = eps, momentum, weight, bias
        self.running_mean, self.running_var = np.zeros(c), np.ones(c)

    def __call__(self, x, training):
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if training:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            n = x.size // x.shape[1]
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * n / (n - 1)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + self.eps)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


# -- Linear ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_matches_numpy(backend, bias):
    ag.default_generator(backend).seed(1)
    layer = Linear(5, 3, bias=bias, backend=backend, dtype="float64")
    assert layer.weight.shape == (5, 3) and (layer.bias is None) == (not bias)
    x = np.random.default_rng(0).standard_normal((2, 4, 5))  # leading axes broadcast
    y = layer(as_tensor(x, backend))
    expected = x @ host(layer.weight) + (host(layer.bias) if bias else 0.0)
    assert y.shape == (2, 4, 3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_init_is_torch7_uniform_and_seeded(backend):
    b = ag.get_backend(backend)
    ag.default_generator(b).seed(7)
    a = Linear(50, 40, backend=backend)
    ag.default_generator(b).seed(7)
    same = Linear(50, 40, backend=backend)
    different = Linear(50, 40, backend=backend)  # the stream has moved on
    bound = 1.0 / math.sqrt(50)
    for p in (host(a.weight), host(a.bias)):
        assert p.dtype == np.float32
        assert np.all(p >= -bound) and np.all(p < bound)
    w = host(a.weight)
    # 2,000 uniform draws fill the interval: the extremes come close to the bounds, the mean is near 0
    assert w.max() > 0.95 * bound and w.min() < -0.95 * bound and abs(w.mean()) < 0.05 * bound
    np.testing.assert_array_equal(host(a.weight), host(same.weight))
    np.testing.assert_array_equal(host(a.bias), host(same.bias))
    assert not np.array_equal(host(a.weight), host(different.weight))


def test_linear_rejects_wrong_input():
    layer = Linear(4, 2)
    with pytest.raises(ValueError, match=r"expects 4 input features.*\(3, 5\)"):
        layer(ag.zeros(3, 5))
    with pytest.raises(TypeError, match="Tensor input"):
        layer(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="positive sizes"):
        Linear(0, 2)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(backend, bias):
    ag.default_generator(backend).seed(2)
    layer = Linear(4, 3, bias=bias, backend=backend, dtype="float64")
    x = ag.randn(5, 4, dtype="float64", backend=backend, requires_grad=True)
    report = gradcheck_module(layer, x)
    # one random direction, then every element of x (20), W (12) and b (3)
    assert report.comparisons == 1 + 20 + 12 + (3 if bias else 0)
    assert report.max_rel_error < 1e-6


# -- BatchNorm ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "strict"])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck(backend, shape, affine, training):
    b = ag.get_backend(backend)
    ag.default_generator(b).seed(3)
    bn = BatchNorm(shape[1], affine=affine, backend=backend, dtype="float64")
    if affine:  # move away from the ones/zeros start so the weight's gradient path is exercised
        bn.weight.data = ag.default_generator(b).uniform((shape[1],), 0.5, 1.5, dtype="float64")
        bn.bias.data = ag.default_generator(b).normal((shape[1],), dtype="float64")
    bn.running_mean = ag.default_generator(b).normal((shape[1],), dtype="float64")
    bn.running_var = ag.default_generator(b).uniform((shape[1],), 0.5, 2.0, dtype="float64")
    bn.train(training)
    x = ag.tensor(ag.default_generator(b).normal(shape, dtype="float64") * 2.0 + 1.0, requires_grad=True)
    report = gradcheck_module(bn, x)
    assert report.max_rel_error < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
def test_batchnorm_train_then_eval_matches_numpy_reference(backend, shape):
    b = ag.get_backend(backend)
    rng = np.random.default_rng(5)
    c = shape[1]
    bn = BatchNorm(c, eps=1e-3, momentum=0.3, backend=backend, dtype="float64")
    weight, bias = rng.uniform(0.5, 2.0, c), rng.standard_normal(c)
    bn.weight.data, bn.bias.data = b.asarray(weight, "float64"), b.asarray(bias, "float64")
    ref = BatchNormRef(c, 1e-3, 0.3, weight, bias)
    for step in range(4):  # a few batches of shifted, scaled data: running stats move each time
        x = rng.standard_normal(shape) * (1.0 + step) + 2.0 * step
        y = bn(as_tensor(x, backend))
        np.testing.assert_allclose(y.numpy(), ref(x, training=True), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(host(bn.running_mean), ref.running_mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(host(bn.running_var), ref.running_var, rtol=1e-12, atol=1e-14)
    assert not np.allclose(ref.running_mean, 0.0) and not np.allclose(ref.running_var, 1.0)
    bn.eval()
    x = rng.standard_normal(shape) * 3.0 + 4.0
    before = host(bn.running_mean).copy()
    np.testing.assert_allclose(bn(as_tensor(x, backend)).numpy(), ref(x, training=False), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_array_equal(host(bn.running_mean), before)  # eval leaves the statistics alone


@given(n=st.integers(2, 9), c=st.integers(1, 4), scale=st.floats(1e-2, 1e3), shift=st.floats(-1e3, 1e3))
def test_batchnorm_train_output_is_standardised(n, c, scale, shift):
    """Whatever the batch's scale and offset, train-mode output has per-channel mean 0 and variance
    var / (var + eps): 1 unless a column's own variance is near eps."""
    x = np.random.default_rng(n * 10 + c).standard_normal((n, c)) * scale + shift
    x[0] += 1.0  # a constant column only by coincidence (the shift can cancel a small spread)
    eps = 1e-12
    y = BatchNorm(c, eps=eps, dtype="float64")(ag.tensor(x)).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-9)
    var = x.var(axis=0)
    np.testing.assert_allclose(y.var(axis=0), var / (var + eps), rtol=1e-6)


def test_batchnorm_rejects_bad_input():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match=r"expects 3 channels.*\(4, 5\)"):
        bn(ag.zeros(4, 5))
    with pytest.raises(ValueError, match="2 or 4 dimensions"):
        bn(ag.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(ag.zeros(1, 3))
    bn.eval()
    assert bn(ag.zeros(1, 3)).shape == (1, 3)  # eval mode needs no batch statistics


# -- conv layers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_conv_layouts_and_torch7_init(backend):
    b = ag.get_backend(backend)
    ag.default_generator(b).seed(6)
    conv = Conv2d(3, 8, 5, backend=backend)
    deconv = ConvTranspose2d(8, 4, (3, 2), stride=2, padding=1, backend=backend)
    assert conv.weight.shape == (8, 3, 5, 5) and conv.bias.shape == (8,)
    assert deconv.weight.shape == (8, 4, 3, 2) and deconv.bias.shape == (4,)
    for layer, fan_in in ((conv, 3 * 5 * 5), (deconv, 8 * 3 * 2)):
        bound = 1.0 / math.sqrt(fan_in)
        for p in layer.parameters():
            v = host(p)
            assert np.all(np.abs(v) <= bound)
        assert np.abs(host(layer.weight)).max() > 0.8 * bound
    ag.default_generator(b).seed(6)
    np.testing.assert_array_equal(host(Conv2d(3, 8, 5, backend=backend).weight), host(conv.weight))
    assert Conv2d(2, 2, 3, bias=False).bias is None
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(2, 2, (3, 3, 3))
    with pytest.raises(ValueError, match=r"Conv2d: stride must be an int >= 1.*\(2, 2\)"):
        Conv2d(2, 2, 3, stride=(2, 2))
    with pytest.raises(ValueError, match="ConvTranspose2d: padding must be an int >= 0"):
        ConvTranspose2d(2, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, stride, padding", [(3, 1, 0), (4, 2, 1), (2, 3, 2)])
def test_conv2d_forward_matches_numpy(backend, k, stride, padding):
    ag.default_generator(backend).seed(8)
    conv = Conv2d(3, 4, k, stride=stride, padding=padding, backend=backend, dtype="float64")
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6))
    y = conv(as_tensor(x, backend))
    expected = conv2d_ref(x, host(conv.weight), host(conv.bias), stride, padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, stride, padding, output_padding", [(3, 1, 0, 0), (4, 2, 1, 0), (3, 2, 1, 1)])
def test_conv_transpose2d_forward_matches_numpy(backend, k, stride, padding, output_padding):
    ag.default_generator(backend).seed(9)
    deconv = ConvTranspose2d(3, 2, k, stride=stride, padding=padding, output_padding=output_padding,
                             backend=backend, dtype="float64")
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    y = deconv(as_tensor(x, backend))
    expected = conv_transpose2d_ref(x, host(deconv.weight), host(deconv.bias), stride, padding,
                                    output_padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_numpy_references_are_adjoint():
    """<conv(x), y> == <x, conv_transpose(y)> with one kernel: checks the two references against each other."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 4, 4))
    cx = conv2d_ref(x, w, None, 2, 1)
    y = rng.standard_normal(cx.shape)
    ty = conv_transpose2d_ref(y, w, None, 2, 1, 1)  # output_padding restores the 9th row/column
    assert ty.shape == x.shape
    np.testing.assert_allclose(np.sum(cx * y), np.sum(x * ty), rtol=1e-10)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_conv_layers_gradcheck(backend):
    ag.default_generator(backend).seed(10)
    net = Sequential(Conv2d(2, 3, 3, stride=2, padding=1, backend=backend, dtype="float64"), Tanh(),
                     ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, backend=backend,
                                     dtype="float64"))
    x = ag.randn(2, 2, 4, 4, dtype="float64", backend=backend, requires_grad=True)
    assert net(x).shape == (2, 2, 4, 4)
    report = gradcheck_module(net, x, elementwise_max=60)
    assert report.max_rel_error < 1e-5


def test_conv_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expects 3 input channels.*\(2, 4, 5, 5\)"):
        Conv2d(3, 2, 3)(ag.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match="4 dimensions"):
        ConvTranspose2d(3, 2, 3)(ag.zeros(2, 3, 5))


# -- small layers and containers ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_activations_and_shape_layers(backend):
    x = np.linspace(-3.0, 3.0, 24).reshape(2, 3, 4)
    t = as_tensor(x, backend)
    np.testing.assert_allclose(ReLU()(t).numpy(), np.maximum(x, 0.0))
    np.testing.assert_allclose(Tanh()(t).numpy(), np.tanh(x), rtol=1e-12)
    np.testing.assert_allclose(Sigmoid()(t).numpy(), 1.0 / (1.0 + np.exp(-x)), rtol=1e-12)
    assert Identity()(t) is t
    np.testing.assert_array_equal(Flatten()(t).numpy(), x.reshape(2, 12))
    np.testing.assert_array_equal(Reshape(4, 1, 3)(t).numpy(), x.reshape(2, 4, 1, 3))
    np.testing.assert_array_equal(Reshape((12,))(t).numpy(), x.reshape(2, 12))
    with pytest.raises(ValueError, match=r"Reshape\(5, 1\) cannot hold samples of shape \(3, 4\)"):
        Reshape(5, 1)(t)
    with pytest.raises(ValueError, match="positive integer sizes"):
        Reshape(0, 2)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_sequential_gradcheck(backend):
    b = ag.get_backend(backend)
    ag.default_generator(b).seed(11)
    net = Sequential(Linear(3, 4, backend=backend, dtype="float64"),
                     BatchNorm(4, backend=backend, dtype="float64"), Tanh(),
                     Linear(4, 2, backend=backend, dtype="float64"), Sigmoid())
    x = ag.tensor(ag.default_generator(b).normal((5, 3), dtype="float64"), requires_grad=True)
    report = gradcheck_module(net, x)  # raises on any disagreement
    assert report.comparisons == 1 + 15 + (12 + 4) + (4 + 4) + (8 + 2)
    # BatchNorm removes any per-feature constant, so the bias before it gets exactly no gradient
    net(x).sum().backward()
    np.testing.assert_allclose(host(net[0].bias.grad), 0.0, atol=1e-12)
    assert np.abs(host(net[0].weight.grad)).max() > 1e-3


def test_sequential_and_modulelist_containers():
    layers = [Linear(2, 3), ReLU(), Linear(3, 1)]
    net = Sequential(*layers)
    assert len(net) == 3 and list(net) == layers and net[2] is layers[2]
    assert isinstance(net[1:], Sequential) and list(net[1:]) == layers[1:]
    assert Sequential(layers)[0] is layers[0]  # a single list works too
    ml = ModuleList(layers[::2])
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ml.append(Linear(1, 1))
    assert len(ml) == 3 and len(ml.parameters()) == 6
    with pytest.raises(TypeError, match="item 3 is a int"):
        ml.append(3)
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        ml(ag.zeros(1, 2))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in repr(net)


class Tower(Module):
    """A model built the way gmvae_np builds its models: attributes, a list of heads, a raw parameter."""

    def __init__(self, backend="numpy", dtype="float32"):
        super().__init__()
        self.body = Sequential(Linear(3, 4, backend=backend, dtype=dtype),
                               BatchNorm(4, backend=backend, dtype=dtype), ReLU())
        self.heads = [Linear(4, 2, backend=backend, dtype=dtype) for _ in range(2)]
        self.log_scale = Parameter(ag.zeros(2, dtype=dtype, backend=backend).data)
        self.constant = ag.ones(2, dtype=dtype, backend=backend)  # requires_grad=False: not a parameter
        self.alias = self.body[0]  # the same module again: its parameters are listed once

    def forward(self, x):
        h = self.body(x)
        return sum((head(h) for head in self.heads), self.log_scale * 1.0)


def test_parameters_are_named_in_attribute_order_and_deduplicated():
    ag.default_generator("numpy").seed(12)
    model = Tower()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias", "heads.0.weight",
                     "heads.0.bias", "heads.1.weight", "heads.1.bias", "log_scale"]
    assert [n for n, _ in model.named_buffers()] == ["body.1.running_mean", "body.1.running_var"]
    assert [id(p) for p in model.parameters()] == [id(p) for p in Tower.parameters(model)]
    assert model.num_parameters() == (12 + 4) + (4 + 4) + 2 * (8 + 2) + 2
    model.cached = model(ag.randn(5, 3))  # a non-leaf output stored on the model is not a parameter
    assert model.cached.requires_grad and len(model.parameters()) == 9
    # a model that never set a backend reports its parameters' backend
    assert Tower(backend="strict").backend.name == "strict" and Module().backend.name == "numpy"
    # the same construction always gives the same order
    ag.default_generator("numpy").seed(12)
    assert [n for n, _ in Tower().named_parameters()] == names


def test_train_eval_recurse_and_zero_grad():
    model = Tower()
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    assert not model.heads[1].training and not model.body[1].training
    model.train()
    assert all(m.training for m in model.modules())
    model(ag.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


# -- checkpoints and devices ----------------------------------------------------------------------------

def _trained_tower(backend, seed):
    ag.default_generator(backend).seed(seed)
    model = Tower(backend=backend, dtype="float64")
    for _ in range(3):  # move the BatchNorm running statistics away from their start
        model(ag.randn(6, 3, dtype="float64", backend=backend) * 2.0 + 1.0)
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_round_trip_gives_identical_outputs(backend):
    source = _trained_tower(backend, 13)
    state = source.state_dict()
    assert set(state) == {n for n, _ in source.named_parameters()} | {n for n, _ in source.named_buffers()}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert not np.allclose(state["body.1.running_mean"], 0.0)
    target = _trained_tower(backend, 14)
    keep = target.parameters()
    x = ag.randn(4, 3, dtype="float64", backend=backend)
    assert not np.allclose(source.eval()(x).numpy(), target.eval()(x).numpy())
    target.load_state_dict(state)
    assert all(a is b for a, b in zip(keep, target.parameters()))  # same Tensor objects, new data
    np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())
    for (name, a), (_, b) in zip(source.named_buffers(), target.named_buffers()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=name)
    # state_dict hands out copies: changing them changes nothing in the model
    state["log_scale"][:] = 99.0
    state["body.1.running_var"][:] = 99.0
    np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())


def test_load_state_dict_converts_dtype_and_backend():
    state = _trained_tower("numpy", 15).state_dict()
    target = Tower(backend="strict", dtype="float32")
    target.load_state_dict(state)
    w = target.body[0].weight
    assert w.backend.name == "strict" and w.dtype == ag.get_backend("strict").xp.float32
    assert target.body[1].running_var.device == ag.get_backend("strict").device
    np.testing.assert_allclose(w.numpy(), state["body.0.weight"], rtol=1e-6)


def test_load_state_dict_errors_name_the_key():
    model = Tower()
    state = model.state_dict()
    before = {k: v.copy() for k, v in state.items()}

    missing = {k: v for k, v in state.items() if k != "heads.1.bias"}
    with pytest.raises(ValueError, match=r"missing key\(s\) 'heads.1.bias'.*strict=False"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected key\(s\) 'extra.weight'"):
        model.load_state_dict({**state, "extra.weight": np.zeros(3)})
    bad = {**state, "log_scale": np.full(2, 5.0), "body.0.weight": np.zeros((4, 3))}
    with pytest.raises(ValueError, match=r"'body.0.weight' has shape \(4, 3\) in the state but \(3, 4\) in the module"):
        model.load_state_dict(bad)
    # a failed load changes nothing (log_scale came before the bad key)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(TypeError, match="dict of name -> array"):
        model.load_state_dict([1, 2])

    # strict=False: partial states and extra keys are fine, shapes are still checked
    model.load_state_dict({"log_scale": np.array([1.0, 2.0]), "other": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(model.log_scale.numpy(), [1.0, 2.0])
    with pytest.raises(ValueError, match="'log_scale' has shape"):
        model.load_state_dict({"log_scale": np.zeros(3)}, strict=False)


def test_to_strict_gives_identical_outputs_and_moves_everything():
    model = _trained_tower("numpy", 16).eval()
    x = np.random.default_rng(4).standard_normal((4, 3))
    expected = model(ag.tensor(x, dtype="float64")).numpy()
    params = model.parameters()
    strict = ag.get_backend("strict")
    assert model.to("strict") is model
    assert model.backend is strict
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert all(p.backend is strict and p.data.device == strict.device for p in model.parameters())
    assert all(a.device == strict.device for a in model.buffers())
    np.testing.assert_array_equal(model(ag.tensor(x, dtype="float64", backend="strict")).numpy(), expected)
    model.train()
    model(ag.randn(5, 3, dtype="float64", backend="strict")).sum().backward()  # trains there too
    assert model.body[0].weight.grad.device == strict.device
    model.to("numpy")
    assert model.backend.name == "numpy" and model.body[0].weight.grad.shape == (3, 4)


def test_register_buffer_checks_its_arguments():
    m = Module()
    with pytest.raises(ValueError, match="identifier"):
        m.register_buffer("a.b", ag.zeros(2).data)
    with pytest.raises(TypeError, match="array of a backend"):
        m.register_buffer("a", object())
    m.register_buffer("count", ag.zeros(1))
    assert [n for n, _ in m.named_buffers()] == ["count"]
    assert m.state_dict()["count"].shape == (1,)


# -- FourierFeatures ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_fourier_features_are_the_rows_beside_sinusoids_of_a_fixed_projection(backend):
    gen = ag.Generator(backend, 5)
    layer = FourierFeatures(3, 4, scale=2.0, backend=backend, dtype="float64", generator=gen)
    B = host(layer.frequencies)
    assert B.shape == (3, 4) and layer.parameters() == []          # a buffer, never trained
    again = FourierFeatures(3, 4, scale=2.0, backend=backend, dtype="float64", generator=ag.Generator(backend, 5))
    np.testing.assert_array_equal(host(again.frequencies), B)      # the seed decides B
    draws = host(ag.Generator(backend, 5).normal((3, 4), dtype="float64"))
    np.testing.assert_allclose(B, 2.0 * draws, rtol=1e-15)         # N(0, scale^2)
    x = np.random.default_rng(0).normal(size=(6, 3))
    out = host(layer(as_tensor(x, backend)))
    np.testing.assert_allclose(out, np.concatenate([x, np.sin(x @ B), np.cos(x @ B)], axis=1), rtol=1e-12)
    report = gradcheck_module(layer, as_tensor(x, backend, requires_grad=True))
    assert report.comparisons == 1 + 18 and report.max_rel_error < 1e-6    # only x: B has no gradient


def test_fourier_features_refuse_bad_sizes_and_the_conv_architecture():
    from gmvae_np.model import GMVAEConfig

    for kw, message in ((dict(in_features=0, n_frequencies=4), "in_features must be an int >= 1"),
                        (dict(in_features=2, n_frequencies=True), "n_frequencies must be an int >= 1"),
                        (dict(in_features=2, n_frequencies=4, scale=0.0), "scale must be a positive number")):
        with pytest.raises(ValueError, match=message):
            FourierFeatures(**kw)
    with pytest.raises(ValueError, match="fourier_features is for the fully connected encoder"):
        GMVAEConfig(input_shape=(1, 28, 28), arch="conv", fourier_features=8)
    with pytest.raises(ValueError, match="fourier_features must be a whole number >= 0"):
        GMVAEConfig(input_shape=(2,), fourier_features=-1)
