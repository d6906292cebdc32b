"""Neural-network layers on autograd_lite: Module, Linear, Conv2d, ConvTranspose2d, BatchNorm, activations.

A :class:`Module` is a plain Python object whose attributes hold its pieces. Nothing is registered by
hand: an attribute that is

* a :class:`Module` is a submodule,
* a leaf Tensor with ``requires_grad=True`` (make one with :func:`Parameter`) is a parameter,
* a list or tuple of those (or a :class:`ModuleList`) contributes each item, named ``attr.i``.

Non-trainable state that must still be saved and moved between devices (BatchNorm's running statistics)
is a *buffer*: a raw backend array declared once with :meth:`Module.register_buffer`.

Parameters are found in the order the attributes were first set (depth first), so
``model.parameters()`` is the same list every time and dotted names such as ``"body.0.weight"`` are stable
keys for checkpoints.

Initialisation follows the original Torch7 code (``nn.Linear``, ``nn.SpatialConvolution``,
``nn.SpatialFullConvolution``): every weight and bias is drawn uniformly from
``[-1/sqrt(fan_in), +1/sqrt(fan_in))`` with the backend's seeded generator, so
``ag.get_backend("numpy").seed(0)`` before building a model makes it reproducible.

    >>> import autograd_lite as ag
    >>> from gmvae_np.layers import Sequential, Linear, BatchNorm, ReLU
    >>> net = Sequential(Linear(4, 8), BatchNorm(8), ReLU(), Linear(8, 2))
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '1.weight', '1.bias', '3.weight', '3.bias']
    >>> net(ag.randn(5, 4)).shape
    (5, 2)

Every layer is written against the Python array API (``x.backend.xp``), so the same code runs on NumPy,
CuPy and array-api-strict.
"""
from __future__ import annotations

import math

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite.backend import Backend, BackendError, backend_of_array, get_backend
from autograd_lite.tensor import FRESH_GRADIENT_OPS

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "Tanh",
           "Sigmoid", "Identity", "Flatten", "Reshape", "Sequential", "ModuleList", "batch_norm",
           "batch_norm_normalize"]


def Parameter(data, *, backend=None, dtype=None) -> Tensor:
    """A trainable parameter: a plain leaf ``ag.Tensor`` with ``requires_grad=True``.

    ``data`` is anything :func:`ag.tensor` accepts (a backend array, a NumPy array, nested lists).
    """
    return ag.tensor(data, requires_grad=True, dtype=dtype, backend=backend)


def _is_parameter(value) -> bool:
    return isinstance(value, Tensor) and value.requires_grad and value.is_leaf


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _host_copy(value, key: str) -> np.ndarray:
    """A NumPy copy of a state value (NumPy array, backend array, Tensor, list or number)."""
    if isinstance(value, Tensor):
        return np.array(value.numpy(), copy=True)
    if isinstance(value, (np.ndarray, np.generic, list, tuple, int, float)):
        return np.array(value, copy=True)
    try:
        return np.array(backend_of_array(value).to_numpy(value), copy=True)
    except BackendError:
        raise TypeError(f"load_state_dict: value for key {key!r} is a {type(value).__name__}; "
                        f"expected a NumPy array, a backend array or a Tensor") from None


def _host_dtype_name(backend: Backend, array) -> str:
    """'float32', 'float64', 'int64', ... for an array of any backend (the name every namespace knows)."""
    for name in ("float32", "float64", "float16", "int64", "int32", "bool"):
        if hasattr(backend.xp, name) and array.dtype == getattr(backend.xp, name):
            return name
    raise TypeError(f"unsupported array dtype {array.dtype}")


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` and define ``forward``.

    ``module(x)`` calls ``module.forward(x)``. Submodules, parameters and buffers are found from the
    attributes (see the file's docstring), so a subclass needs no registration calls except
    :meth:`register_buffer` for non-trainable state.
    """

    training = True  # class defaults keep a subclass working even if it forgets super().__init__()
    _buffer_names = ()
    _backend = None

    def __init__(self):
        self.training = True

    # -- calling -----------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...) in "
                                  f"the subclass")

    # -- discovery ---------------------------------------------------------------------------------
    def _members(self):
        """(name, value) for the direct submodules and parameters, in attribute order."""
        for name, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module) or _is_parameter(item):
                        yield f"{name}.{i}", item
            elif isinstance(value, Module) or _is_parameter(value):
                yield name, value

    def named_modules(self) -> list:
        """[(dotted_name, module)], this module first (name ``""``), then depth first; each module once."""
        out, seen = [], set()

        def visit(module, prefix):
            seen.add(id(module))
            out.append((prefix, module))
            for name, value in module._members():
                if isinstance(value, Module) and id(value) not in seen:
                    visit(value, _join(prefix, name))

        visit(self, "")
        return out

    def modules(self) -> list:
        return [m for _, m in self.named_modules()]

    def named_parameters(self) -> list:
        """[(dotted_name, Tensor)] in attribute order, depth first; a shared parameter is listed once."""
        out, seen_params, seen_modules = [], set(), set()

        def visit(module, prefix):
            seen_modules.add(id(module))
            for name, value in module._members():
                full = _join(prefix, name)
                if isinstance(value, Module):
                    if id(value) not in seen_modules:
                        visit(value, full)
                elif id(value) not in seen_params:
                    seen_params.add(id(value))
                    out.append((full, value))

        visit(self, "")
        return out

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """The number of trainable scalars."""
        return sum(math.prod(p.shape) for p in self.parameters())

    # -- buffers -----------------------------------------------------------------------------------
    def register_buffer(self, name: str, array) -> None:
        """Declare non-trainable state (a raw backend array) saved in ``state_dict`` and moved by ``to``.

        The buffer is an ordinary attribute afterwards: read it as ``self.name`` and update it by
        assigning a new array to ``self.name``.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"register_buffer: name must be a Python identifier, got {name!r}")
        if isinstance(array, Tensor):
            array = array.data
        try:
            backend_of_array(array)
        except BackendError:
            raise TypeError(f"register_buffer({name!r}): expected an array of a backend (numpy, cupy or "
                            f"strict), got {type(array).__name__}") from None
        if "_buffer_names" not in vars(self):
            self._buffer_names = []
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, array)

    def _buffer_slots(self) -> list:
        """[(dotted_name, owning module, attribute name)] of every buffer."""
        return [(_join(prefix, b), module, b)
                for prefix, module in self.named_modules() for b in module._buffer_names]

    def named_buffers(self) -> list:
        """[(dotted_name, array)] of every buffer, module by module."""
        return [(full, getattr(module, b)) for full, module, b in self._buffer_slots()]

    def buffers(self) -> list:
        return [a for _, a in self.named_buffers()]

    # -- modes and gradients ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (``True``) or evaluation mode (``False``) here and in every submodule."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``) before the next backward pass."""
        for p in self.parameters():
            p.grad = None

    # -- devices -----------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """Where the parameters live: set by the layer constructors and by :meth:`to`; otherwise the first
        parameter's (or buffer's) backend, and ``numpy`` for a module with neither."""
        if self._backend is not None:
            return self._backend
        params = self.parameters()
        if params:
            return params[0].backend
        for _, array in self.named_buffers():
            return backend_of_array(array)
        return get_backend("numpy")

    def to(self, backend) -> "Module":
        """Move every parameter and buffer, in place, to another backend (through the host); returns self.

        The parameter Tensors stay the same objects, so an optimizer built on them keeps working.
        """
        target = get_backend(backend)
        for p in self.parameters():
            if p.backend is not target:
                p.data = _move(p.data, p.backend, target)
                if p.grad is not None:
                    p.grad = _move(p.grad, p.backend, target)
                p.backend = target
        for _, module, name in self._buffer_slots():
            array = getattr(module, name)
            source = backend_of_array(array)
            if source is not target:
                setattr(module, name, _move(array, source, target))
        for module in self.modules():
            module._backend = target
        return self

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{dotted_name: NumPy copy} of every parameter, then every buffer."""
        state = {}
        for name, p in self.named_parameters():
            state[name] = np.array(p.numpy(), copy=True)
        for name, array in self.named_buffers():
            state[name] = np.array(backend_of_array(array).to_numpy(array), copy=True)
        return state

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Copy values from ``state`` (as made by :meth:`state_dict`) into the parameters and buffers.

        Values are moved to the module's backend and converted to each target's dtype. With
        ``strict=True`` missing and unexpected keys are errors; a shape mismatch always is. Nothing is
        changed unless every check passes. Parameters keep their Tensor objects (optimizers stay valid).
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict expects a dict of name -> array, got {type(state).__name__}")
        params = dict(self.named_parameters())
        slots = {full: (module, b) for full, module, b in self._buffer_slots()}
        expected = list(params) + [k for k in slots if k not in params]
        if strict:
            missing = [k for k in expected if k not in state]
            if missing:
                raise ValueError(f"load_state_dict: missing key(s) {', '.join(map(repr, missing))} in the "
                                 f"state; pass strict=False to load a partial state")
            unexpected = [k for k in state if k not in params and k not in slots]
            if unexpected:
                raise ValueError(f"load_state_dict: unexpected key(s) {', '.join(map(repr, unexpected))} "
                                 f"in the state (the module has no such parameter or buffer); pass "
                                 f"strict=False to ignore them")
        updates = []
        for key in expected:
            if key not in state:
                continue
            host = _host_copy(state[key], key)
            if key in params:
                p = params[key]
                current, target = p.data, p.backend
            else:
                module, b = slots[key]
                current = getattr(module, b)
                target = backend_of_array(current)
            if tuple(host.shape) != tuple(current.shape):
                raise ValueError(f"load_state_dict: key {key!r} has shape {tuple(host.shape)} in the state "
                                 f"but {tuple(current.shape)} in the module")
            value = target.asarray(host, dtype=_host_dtype_name(target, current))
            updates.append((key, value))
        for key, value in updates:
            if key in params:
                params[key].data = value
            else:
                module, b = slots[key]
                setattr(module, b, value)

    # -- printing ----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = [(name, value) for name, value in self._members() if isinstance(value, Module)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            lines.append("  " + f"({name}): {child!r}".replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


def _move(array, source: Backend, target: Backend):
    host = source.to_numpy(array)
    return target.asarray(np.array(host, copy=True), dtype=str(host.dtype))


def _check_features(layer: str, x: Tensor, axis: int, expected: int, what: str, ndims=None) -> None:
    """One-line errors for the usual mistakes: not a Tensor, wrong rank, wrong feature/channel count."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer} expects a Tensor input, got {type(x).__name__}; wrap it with ag.tensor(...)")
    if x.ndim == 0:
        raise ValueError(f"{layer} expects an input with a feature axis, got a 0-d tensor")
    if ndims is not None and x.ndim not in ndims:
        raise ValueError(f"{layer} expects an input with {' or '.join(map(str, ndims))} dimensions, got "
                         f"shape {x.shape}")
    if x.shape[axis] != expected:
        raise ValueError(f"{layer} expects {expected} {what} (axis {axis}), got input shape {x.shape}")


def _uniform_parameter(backend: Backend, shape: tuple, fan_in: int, dtype: str) -> Tensor:
    """Torch7's default initialisation: uniform on [-1/sqrt(fan_in), +1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return Parameter(backend.rng.uniform(shape, low=-bound, high=bound, dtype=dtype), backend=backend)


def _int_at_least(layer: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{layer}: {name} must be an int >= {low} (the same for height and width), "
                         f"got {value!r}")
    return value


def _pair(value, name: str) -> tuple:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


# -- dense layers ----------------------------------------------------------------------------------

class Linear(Module):
    """y = x @ W + b, for inputs of shape (..., in_features).

    The weight is stored as (in_features, out_features), the transpose of PyTorch's layout, so the forward
    pass is a single ``x @ W`` with no transpose and reads like the maths. Weight and bias start uniform on
    [-1/sqrt(in_features), +1/sqrt(in_features)), as Torch7's ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, backend="numpy",
                 dtype="float32"):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.weight = _uniform_parameter(b, (self.in_features, self.out_features), self.in_features, dtype)
        self.bias = _uniform_parameter(b, (self.out_features,), self.in_features, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        _check_features(f"Linear({self.extra_repr()})", x, -1, self.in_features, "input features")
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution (cross-correlation, as every deep-learning library) of (N, C, H, W) inputs.

    Weight layout (out_channels, in_channels, kH, kW) and bias (out_channels,) as PyTorch; the forward pass
    is ``ag.conv2d``. Initialisation as Torch7's ``nn.SpatialConvolution``: uniform on
    [-1/sqrt(fan_in), +1/sqrt(fan_in)) with fan_in = in_channels * kH * kW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, *, backend="numpy", dtype="float32"):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _int_at_least("Conv2d", "stride", stride, 1)
        self.padding = _int_at_least("Conv2d", "padding", padding, 0)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weight = _uniform_parameter(b, (self.out_channels, self.in_channels, kh, kw), fan_in, dtype)
        self.bias = _uniform_parameter(b, (self.out_channels,), fan_in, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        _check_features(f"Conv2d({self.extra_repr()})", x, 1, self.in_channels, "input channels", (4,))
        return ag.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class ConvTranspose2d(Module):
    """Transposed 2-D convolution (the adjoint of Conv2d; "full convolution" in Torch7) of (N, C, H, W).

    Weight layout (in_channels, out_channels, kH, kW) and bias (out_channels,) as PyTorch; the forward
    pass is ``ag.conv_transpose2d``. The output side is
    (H - 1) * stride - 2 * padding + kH + output_padding. Initialisation as Torch7's
    ``nn.SpatialFullConvolution``, which also takes fan_in = in_channels * kH * kW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, bias: bool = True, *, backend="numpy", dtype="float32"):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _int_at_least("ConvTranspose2d", "stride", stride, 1)
        self.padding = _int_at_least("ConvTranspose2d", "padding", padding, 0)
        self.output_padding = _int_at_least("ConvTranspose2d", "output_padding", output_padding, 0)
        if self.output_padding >= self.stride:
            raise ValueError(f"ConvTranspose2d: output_padding must be smaller than stride ({stride}), "
                             f"got {output_padding}")
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weight = _uniform_parameter(b, (self.in_channels, self.out_channels, kh, kw), fan_in, dtype)
        self.bias = _uniform_parameter(b, (self.out_channels,), fan_in, dtype) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        _check_features(f"ConvTranspose2d({self.extra_repr()})", x, 1, self.in_channels, "input channels",
                        (4,))
        return ag.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                   output_padding=self.output_padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}, "
                f"bias={self.bias is not None}")


# -- batch normalisation ---------------------------------------------------------------------------

def batch_norm_normalize(x: Tensor, axes: tuple, eps: float):
    """x_hat = (x - mean) / sqrt(var + eps) over ``axes``, as one primitive; returns (x_hat, mean, var).

    ``mean`` and the biased ``var`` are raw arrays (keepdims) for the running statistics. Fusing the
    normalisation into one node saves the graph half a dozen full-size temporaries (forward plus backward
    run about three times faster than the same formula built from primitives). Its backward: with
    r = 1/sqrt(var + eps), n the number of values averaged and g the incoming gradient,

        dL/dx = r * (g - mean(g) - x_hat * mean(g * x_hat))      (means over ``axes``)

    because x_hat depends on x directly (r), through the mean (-r/n for every entry) and through the
    variance (-x_hat * r * x_hat_j / n). The tests check it against central differences in float64.
    This is :func:`batch_norm` without the scale and shift.
    """
    return batch_norm(x, None, None, axes, eps)


# batch_norm's backward returns new arrays, one per input: leaves may keep them uncopied (tensor.py)
FRESH_GRADIENT_OPS.add("batch_norm")


def batch_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, axes: tuple, eps: float):
    """weight * x_hat + bias (per channel) with x_hat as in :func:`batch_norm_normalize`, as one primitive.

    Returns (out, mean, var); ``weight`` and ``bias`` are (C,) tensors or None (no scale / no shift), C
    being the size of the axes not in ``axes``. With the scale and shift inside, the backward reuses the
    two sums it needs anyway: sum(g) is the bias gradient, sum(g * x_hat) the weight gradient, and

        dL/dx = r * weight * (g - sum(g)/n - x_hat * sum(g * x_hat)/n)

    (the formula above with g replaced by weight * g).

    Speed: the array is viewed as rows of channels, (n, C), which for a convolution's channels-last
    output is free. The per-channel sums over the n rows are then matrix products with a row of ones:
    BLAS reads the rows at memory speed, while an axis-0 sum over rows of a few channels runs some
    fifteen times slower in NumPy (one short loop per row).
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

    parents = (x, weight, bias)
    data = unrows(out2)
    if ag.is_grad_enabled() and any(isinstance(p, Tensor) and p.requires_grad for p in parents):
        out = Tensor(data, be, True, parents, backward, "batch_norm")
    else:
        out = Tensor(data, be)
    return out, xp.reshape(mean, stat_shape), xp.reshape(var, stat_shape)


class BatchNorm(Module):
    """Batch normalisation of (N, C) or (N, C, H, W) inputs, per channel C over N (and H, W).

    Training mode normalises with the batch mean and the biased batch variance, then updates the running
    statistics (unbiased variance; ``running = (1 - momentum) * running + momentum * batch``, as Torch7 and
    PyTorch). Evaluation mode (``.eval()``) normalises with the running statistics instead. With
    ``affine=True`` the result is scaled by ``weight`` and shifted by ``bias``, which start at ones and
    zeros (PyTorch's choice; Torch7 drew the weight uniformly on [0, 1)).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, *,
                 backend="numpy", dtype="float32"):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        self.num_features = int(num_features)
        if self.num_features < 1:
            raise ValueError(f"BatchNorm needs num_features >= 1, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if not eps > 0.0:
            raise ValueError(f"BatchNorm eps must be positive, got {eps}")
        self.eps, self.momentum, self.affine = float(eps), float(momentum), bool(affine)
        xp, dt = b.xp, b.dtype(dtype)
        if self.affine:
            self.weight = Parameter(xp.ones((self.num_features,), dtype=dt, device=b.device), backend=b)
            self.bias = Parameter(xp.zeros((self.num_features,), dtype=dt, device=b.device), backend=b)
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", xp.zeros((self.num_features,), dtype=dt, device=b.device))
        self.register_buffer("running_var", xp.ones((self.num_features,), dtype=dt, device=b.device))

    def forward(self, x: Tensor) -> Tensor:
        _check_features(f"BatchNorm({self.num_features})", x, 1, self.num_features, "channels", (2, 4))
        xp = x.backend.xp
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        if self.training:
            n = math.prod(x.shape[a] for a in axes)
            if n < 2:
                raise ValueError(f"BatchNorm in training mode needs more than one value per channel, got "
                                 f"input shape {x.shape}; use a larger batch or call .eval()")
            out, mean, var = batch_norm(x, self.weight, self.bias, axes, self.eps)
            # running statistics: raw arrays, no graph; cast so a float64 batch keeps float32 buffers float32
            m, dt = self.momentum, self.running_mean.dtype
            batch_mean = xp.astype(xp.reshape(mean, (self.num_features,)), dt)
            batch_var = xp.astype(xp.reshape(var, (self.num_features,)) * (n / (n - 1.0)), dt)  # unbiased
            self.running_mean = (1.0 - m) * self.running_mean + m * batch_mean
            self.running_var = (1.0 - m) * self.running_var + m * batch_var
            return out
        mean = Tensor(xp.reshape(self.running_mean, shape), x.backend)
        inv_std = Tensor(xp.reshape(1.0 / xp.sqrt(self.running_var + self.eps), shape), x.backend)
        x_hat = (x - mean) * inv_std
        if not self.affine:
            return x_hat
        return x_hat * self.weight.reshape(shape) + self.bias.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


# -- activations and shape layers ------------------------------------------------------------------

class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return ag.relu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return ag.tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)), overflow-free."""

    def forward(self, x: Tensor) -> Tensor:
        return ag.sigmoid(x)


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 1:
            raise ValueError("Flatten needs an input with a batch axis, got a 0-d tensor")
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))


class Reshape(Module):
    """(N, ...) -> (N, *shape): reshape every sample, e.g. ``Reshape(500, 1, 1)`` before a transposed conv."""

    def __init__(self, *shape):
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"Reshape needs positive integer sizes, got {shape!r}")
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        if math.prod(x.shape[1:]) != math.prod(self.shape):
            raise ValueError(f"Reshape{self.shape} cannot hold samples of shape {x.shape[1:]} "
                             f"({math.prod(x.shape[1:])} values per sample, need {math.prod(self.shape)})")
        return x.reshape((x.shape[0],) + self.shape)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))


# -- containers ------------------------------------------------------------------------------------

class ModuleList(Module):
    """A list of modules whose parameters are named ``"0.weight"``, ``"1.bias"``, ...; indexable, iterable."""

    def __init__(self, modules=()):
        super().__init__()
        self._items = []
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__} holds Modules; item {len(self._items)} is a "
                            f"{type(module).__name__}")
        self._items.append(module)
        return self

    def _members(self):
        for i, m in enumerate(self._items):
            yield str(i), m

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items)


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))(x)``."""

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        super().__init__(modules)

    def forward(self, x):
        for module in self._items:
            x = module(x)
        return x
