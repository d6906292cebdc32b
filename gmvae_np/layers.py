"""Neural-network layers on autograd_lite: Linear, Conv2d, ConvTranspose2d, BatchNorm, activations.

Every layer is a :class:`~gmvae_np.module.Module` (module.py: how parameters, buffers and submodules
are found, saved and moved). Initialisation follows the original Torch7 code (``nn.Linear``,
``nn.SpatialConvolution``, ``nn.SpatialFullConvolution``): every weight and bias is drawn uniformly
from ``[-1/sqrt(fan_in), +1/sqrt(fan_in))`` with the generator passed as ``generator=`` (by default
``ag.default_generator(backend)``), so the same seeded generator gives the same model.

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

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite.backend import Backend, get_backend

from .module import Module, Parameter

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "Tanh",
           "Sigmoid", "Identity", "Flatten", "Reshape", "Sequential", "ModuleList"]


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


def _uniform_parameter(backend: Backend, shape: tuple, fan_in: int, dtype: str, generator) -> Tensor:
    """Torch7's default initialisation: uniform on [-1/sqrt(fan_in), +1/sqrt(fan_in)), drawn from
    ``generator`` (None: the backend's default generator)."""
    rng = ag.default_generator(backend) if generator is None else generator
    if rng.backend is not backend:
        raise ValueError(f"the generator draws on backend '{rng.backend.name}' but the layer is built on "
                         f"'{backend.name}'; make the generator with ag.Generator('{backend.name}', seed)")
    bound = 1.0 / math.sqrt(fan_in)
    return Parameter(rng.uniform(shape, low=-bound, high=bound, dtype=dtype), backend=backend)


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
                 dtype="float32", generator=None):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, "
                             f"out_features={out_features}")
        fan_in = self.in_features
        self.weight = _uniform_parameter(b, (self.in_features, self.out_features), fan_in, dtype, generator)
        self.bias = _uniform_parameter(b, (self.out_features,), fan_in, dtype, generator) if bias else None

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
                 bias: bool = True, *, backend="numpy", dtype="float32", generator=None):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _int_at_least("Conv2d", "stride", stride, 1)
        self.padding = _int_at_least("Conv2d", "padding", padding, 0)
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.weight = _uniform_parameter(b, shape, fan_in, dtype, generator)
        self.bias = _uniform_parameter(b, (self.out_channels,), fan_in, dtype, generator) if bias else None

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
                 output_padding=0, bias: bool = True, *, backend="numpy", dtype="float32", generator=None):
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
        shape = (self.in_channels, self.out_channels, kh, kw)
        self.weight = _uniform_parameter(b, shape, fan_in, dtype, generator)
        self.bias = _uniform_parameter(b, (self.out_channels,), fan_in, dtype, generator) if bias else None

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
            out, mean, var = ag.batch_norm(x, self.weight, self.bias, axes, self.eps)
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

class FourierFeatures(Module):
    """y -> [y, sin(y B), cos(y B)]: the input beside n_frequencies random sinusoids of it (in_features + 2 n out).

    B (in_features, n_frequencies) is drawn once from N(0, scale^2) and kept as a buffer, not trained
    (Rahimi and Recht, 2007; Tancik et al., 2020). A network of a few ReLU layers reading 2 or 3 coordinates
    learns smooth functions of them first and sharp ones very slowly: two interleaved stripes of the plane
    take it thousands of steps to tell apart. Read through sinusoids of wavelengths around 2 pi / scale,
    the same boundary is nearly linear and is learnt in a few hundred. For low-dimensional rows only: the
    GMVAE's encoder puts it first when the config asks (GMVAEConfig.fourier_features).
    """

    def __init__(self, in_features: int, n_frequencies: int, scale: float = 1.0, *, backend="numpy",
                 dtype="float32", generator=None):
        super().__init__()
        b = get_backend(backend)
        self._backend = b
        for name, value in (("in_features", in_features), ("n_frequencies", n_frequencies)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FourierFeatures {name} must be an int >= 1, got {value!r}")
        self.in_features, self.n_frequencies = in_features, n_frequencies
        if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"FourierFeatures scale must be a positive number, got {scale!r}")
        self.scale = float(scale)
        rng = ag.default_generator(b) if generator is None else generator
        self.register_buffer("frequencies", rng.normal((self.in_features, self.n_frequencies), dtype=dtype)
                             * self.scale)

    def forward(self, x: Tensor) -> Tensor:
        _check_features(f"FourierFeatures({self.extra_repr()})", x, -1, self.in_features, "input features")
        angles = x @ ag.tensor(self.frequencies, backend=self._backend)
        return ag.concat([x, ag.sin(angles), ag.cos(angles)], axis=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_frequencies={self.n_frequencies}, scale={self.scale}"


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
