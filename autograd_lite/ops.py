"""The primitives: each op's forward and its backward (vector-Jacobian product), side by side.

Read this file like a table. Every primitive

* computes its result with the array namespace ``xp`` of its inputs' backend (array API functions only),
* returns ``make_node(result, parents, backward, name)``, where ``backward(g)`` maps the gradient ``g``
  of the result to one gradient per parent (``None`` where a parent needs none).

Gradients may come back in the *broadcast* shape: the engine reduces them to each parent's shape with
``sum_to`` (tensor.py), so no op handles broadcasting itself. Operands that are Python numbers stay
Python numbers (constants never enter the graph).
"""
from __future__ import annotations

import builtins
import numbers

from .backend import BackendError, backend_of_array
from .tensor import Tensor, _mismatch, is_grad_enabled, tensor as _as_tensor

# -- plumbing --------------------------------------------------------------------------------------

def make_node(data, parents: tuple, backward, op: str, fresh_grads: bool = False) -> Tensor:
    """Wrap a primitive's result; record the graph edge only if some parent needs a gradient.

    ``fresh_grads=True`` promises that ``backward`` returns new arrays, a different one per parent, that
    nothing else holds (products do): ``Tensor.backward`` then hands them to leaves without a copy.
    """
    b = next(p.backend for p in parents if isinstance(p, Tensor))
    if is_grad_enabled() and builtins.any(isinstance(p, Tensor) and p.requires_grad for p in parents):
        return Tensor(data, b, True, parents, backward, op, fresh_grads)
    return Tensor(data, b)


def _need(t) -> bool:
    return isinstance(t, Tensor) and t.requires_grad


def _d(t):
    """The raw array (or Python number) behind an operand."""
    return t.data if isinstance(t, Tensor) else t


def _operands(a, b):
    """Check and coerce a binary op's operands: tensors of one backend, or Python numbers."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.backend is not b.backend:
            raise _mismatch(a.backend, b.backend)
        return a, b
    if isinstance(a, Tensor):
        return a, _coerce(b, a)
    if isinstance(b, Tensor):
        return _coerce(a, b), b
    raise TypeError("at least one operand must be a Tensor")


def _coerce(x, like: Tensor):
    if isinstance(x, bool) or not isinstance(x, numbers.Number):
        if isinstance(x, Tensor):
            return x
        if isinstance(x, (list, tuple)):  # plain Python data, like a number: goes to like's backend
            return _as_tensor(x, dtype=like.dtype, backend=like.backend)
        try:
            home = backend_of_array(x)  # a NumPy, CuPy or strict array stays where it lives
        except BackendError:
            raise TypeError(f"cannot combine a Tensor with a {type(x).__name__}") from None
        if home is not like.backend:
            raise _mismatch(like.backend, home)
        return _as_tensor(x, dtype=like.dtype, backend=home)
    return float(x) if not isinstance(x, int) else x


def _axes(axis, ndim: int) -> tuple:
    """Normalise ``axis`` (None, int or tuple; negatives allowed) to a sorted tuple."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions; "
                             f"use an axis in [{-ndim}, {ndim - 1}]")
    axes = tuple(sorted(a % ndim for a in axis))
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis {tuple(axis)} names the same dimension twice")
    return axes


def _expand_reduced(g, shape, axes, keepdims, xp):
    """Give a reduced gradient back its reduced axes (length 1) so it broadcasts against the input."""
    if not keepdims:
        g = xp.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))
    return g


# -- arithmetic ------------------------------------------------------------------------------------

def add(a, b) -> Tensor:
    a, b = _operands(a, b)
    return make_node(_d(a) + _d(b), (a, b), lambda g: (g, g), "add")


def sub(a, b) -> Tensor:
    a, b = _operands(a, b)
    return make_node(_d(a) - _d(b), (a, b), lambda g: (g, -g), "sub")


def mul(a, b) -> Tensor:
    a, b = _operands(a, b)
    ad, bd = _d(a), _d(b)
    return make_node(ad * bd, (a, b),
                     lambda g: (g * bd if _need(a) else None, g * ad if _need(b) else None), "mul",
                     fresh_grads=True)


def div(a, b) -> Tensor:
    a, b = _operands(a, b)
    ad, bd = _d(a), _d(b)
    out = ad / bd
    return make_node(out, (a, b),
                     lambda g: (g / bd if _need(a) else None, -g * out / bd if _need(b) else None),
                     "div", fresh_grads=True)


def neg(x: Tensor) -> Tensor:
    return make_node(-x.data, (x,), lambda g: (-g,), "neg")


def pow(x: Tensor, p) -> Tensor:
    """x ** p for a Python-number exponent p."""
    if isinstance(p, Tensor):
        raise TypeError("pow takes a Python-number exponent; for a tensor exponent use exp(p * log(x))")
    p = float(p)
    if p == 2.0:
        return square(x)
    xd = x.data
    return make_node(xd ** p, (x,), lambda g: (g * p * xd ** (p - 1.0),), "pow")


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with batch broadcasting, (..., n, k) @ (..., k, m); 1-D operands as in NumPy."""
    a, b = _operands(a, b)
    if a.ndim == 1 and b.ndim == 1:
        return reshape(matmul(reshape(a, (1, a.shape[0])), reshape(b, (b.shape[0], 1))), ())
    if a.ndim == 1:
        return reshape(matmul(reshape(a, (1, a.shape[0])), b), b.shape[:-2] + (b.shape[-1],))
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, (b.shape[0], 1))), a.shape[:-1])
    xp = a.backend.xp
    ad, bd = a.data, b.data

    def backward(g):
        ga = xp.matmul(g, xp.matrix_transpose(bd)) if _need(a) else None
        gb = xp.matmul(xp.matrix_transpose(ad), g) if _need(b) else None
        return ga, gb

    return make_node(xp.matmul(ad, bd), (a, b), backward, "matmul", fresh_grads=True)


# -- elementwise functions -------------------------------------------------------------------------

def exp(x: Tensor) -> Tensor:
    out = x.backend.xp.exp(x.data)
    return make_node(out, (x,), lambda g: (g * out,), "exp")


def log(x: Tensor) -> Tensor:
    xd = x.data
    return make_node(x.backend.xp.log(xd), (x,), lambda g: (g / xd,), "log")


def log1p(x: Tensor) -> Tensor:
    xd = x.data
    return make_node(x.backend.xp.log1p(xd), (x,), lambda g: (g / (1.0 + xd),), "log1p")


def sqrt(x: Tensor) -> Tensor:
    out = x.backend.xp.sqrt(x.data)
    return make_node(out, (x,), lambda g: (g * 0.5 / out,), "sqrt")


def square(x: Tensor) -> Tensor:
    xd = x.data
    return make_node(xd * xd, (x,), lambda g: (g * 2.0 * xd,), "square")


def tanh(x: Tensor) -> Tensor:
    out = x.backend.xp.tanh(x.data)
    return make_node(out, (x,), lambda g: (g * (1.0 - out * out),), "tanh")


def sin(x: Tensor) -> Tensor:
    xd = x.data
    return make_node(x.backend.xp.sin(xd), (x,), lambda g: (g * x.backend.xp.cos(xd),), "sin")


def cos(x: Tensor) -> Tensor:
    xd = x.data
    return make_node(x.backend.xp.cos(xd), (x,), lambda g: (-g * x.backend.xp.sin(xd),), "cos")


def _sigmoid_array(xd, xp):
    # exp of minus |x| never overflows; the two branches agree mathematically
    e = xp.exp(-xp.abs(xd))
    return xp.where(xd >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for any x."""
    out = _sigmoid_array(x.data, x.backend.xp)
    return make_node(out, (x,), lambda g: (g * out * (1.0 - out),), "sigmoid")


def relu(x: Tensor) -> Tensor:
    xp = x.backend.xp
    out = xp.maximum(x.data, 0.0)
    # g where x > 0, else 0, written as g times a 0/1 mask: on NumPy, xp.where branches on every element
    # and runs some 20 times slower on data of random sign, and xp.maximum keeps the input's memory
    # layout (where makes a C-ordered copy), so a channels-last image stays channels-last.
    return make_node(out, (x,), lambda g: (g * xp.astype(out > 0.0, g.dtype),), "relu")


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): exact for large |x|; gradient sigmoid(x)."""
    xp, xd = x.backend.xp, x.data
    out = xp.where(xd > 0, xd, 0.0) + xp.log1p(xp.exp(-xp.abs(xd)))
    return make_node(out, (x,), lambda g: (g * _sigmoid_array(xd, xp),), "softplus")


def abs(x: Tensor) -> Tensor:
    xp, xd = x.backend.xp, x.data
    return make_node(xp.abs(xd), (x,), lambda g: (g * xp.sign(xd),), "abs")


def maximum(a, b) -> Tensor:
    """Elementwise max; at ties the gradient is shared equally."""
    a, b = _operands(a, b)
    ad, bd = _d(a), _d(b)
    xp = (a if isinstance(a, Tensor) else b).backend.xp
    out = xp.where(ad >= bd, ad, bd)
    # a's share of the gradient: 1 where a is larger, 1/2 at ties, 0 where b is larger
    wa = xp.astype(ad > bd, out.dtype) + 0.5 * xp.astype(ad == bd, out.dtype)
    return make_node(out, (a, b), lambda g: (g * wa, g * (1.0 - wa)), "maximum")


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """Clip to [min, max] (Python numbers); the gradient passes only strictly inside."""
    xp, xd = x.backend.xp, x.data
    out, inside = xd, None
    if min is not None:
        out = xp.where(out < min, float(min), out)
        inside = xd > min
    if max is not None:
        out = xp.where(out > max, float(max), out)
        inside = (xd < max) if inside is None else xp.logical_and(inside, xd < max)
    if inside is None:
        return x
    return make_node(out, (x,), lambda g: (xp.where(inside, g, 0.0),), "clamp")


def where(cond, a, b) -> Tensor:
    """Pick from a where cond is true, else from b; cond is a boolean tensor or array (no gradient)."""
    a, b = _operands(a, b)
    t = a if isinstance(a, Tensor) else b
    xp = t.backend.xp
    c = _d(cond)
    out = xp.where(c, _d(a), _d(b))
    return make_node(out, (a, b), lambda g: (xp.where(c, g, 0.0), xp.where(c, 0.0, g)), "where")


def astype(x: Tensor, dtype) -> Tensor:
    """Cast to another dtype; the gradient is cast back. Integer or boolean results carry no gradient."""
    xp = x.backend.xp
    src = x.dtype
    out = xp.astype(x.data, x.backend.dtype(dtype))
    if not xp.isdtype(out.dtype, "real floating"):
        return Tensor(out, x.backend)
    return make_node(out, (x,), lambda g: (xp.astype(g, src),), "astype")


# -- reductions ------------------------------------------------------------------------------------

def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    xp, shape = x.backend.xp, x.shape
    axes = _axes(axis, x.ndim)
    out = xp.sum(x.data, axis=axes, keepdims=keepdims)
    return make_node(out, (x,),
                     lambda g: (xp.broadcast_to(_expand_reduced(g, shape, axes, keepdims, xp), shape),), "sum")


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    xp, shape = x.backend.xp, x.shape
    axes = _axes(axis, x.ndim)
    count = 1
    for a in axes:
        count *= shape[a]
    out = xp.mean(x.data, axis=axes, keepdims=keepdims)
    return make_node(out, (x,), lambda g: (xp.broadcast_to(
        _expand_reduced(g, shape, axes, keepdims, xp) / float(count), shape),), "mean")


def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Maximum over axes; the gradient goes to the maximal entries (shared equally at ties)."""
    xp, xd = x.backend.xp, x.data
    axes = _axes(axis, x.ndim)
    m = xp.max(xd, axis=axes, keepdims=True)

    def backward(g):
        mask = xp.astype(xd == m, xd.dtype)
        mask = mask / xp.sum(mask, axis=axes, keepdims=True)
        return (mask * _expand_reduced(g, x.shape, axes, keepdims, xp),)

    out = m if keepdims else xp.reshape(m, tuple(n for i, n in enumerate(x.shape) if i not in axes))
    return make_node(out, (x,), backward, "max")


def _shifted_exp_sum(xd, axes, xp):
    """The pieces of a stable logsumexp over axes (keepdims): the maximum m (0 where it is not finite)
    and s = sum exp(x - m). Every exp(x - m) <= 1, so nothing overflows, and x - m is exact."""
    m = xp.max(xd, axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return m, xp.sum(xp.exp(xd - m), axis=axes, keepdims=True)


def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log sum exp x over axes, shifted by the maximum so it never overflows.

    Rows that are all -inf give -inf and a zero gradient, without warnings.
    """
    xp, xd = x.backend.xp, x.data
    axes = _axes(axis, x.ndim)
    m, s = _shifted_exp_sum(xd, axes, xp)
    positive = s > 0
    s = xp.where(positive, s, 1.0)  # an all -inf row: exp(x - m) is all 0 there, so any s > 0 works
    lse = xp.where(positive, xp.log(s) + m, -float("inf"))

    def backward(g):  # d lse / dx = softmax(x) = exp(x - m) / s
        return (xp.exp(xd - m) / s * _expand_reduced(g, x.shape, axes, keepdims, xp),)

    out = lse if keepdims else xp.reshape(lse, tuple(n for i, n in enumerate(x.shape) if i not in axes))
    return make_node(out, (x,), backward, "logsumexp")


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    xp, xd = x.backend.xp, x.data
    m, s = _shifted_exp_sum(xd, _axes(axis, x.ndim), xp)
    p = xp.exp(xd - m) / s
    return make_node(p, (x,), lambda g: (p * (g - xp.sum(g * p, axis=axis, keepdims=True)),), "softmax")


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    xp, xd = x.backend.xp, x.data
    m, s = _shifted_exp_sum(xd, _axes(axis, x.ndim), xp)
    out = (xd - m) - xp.log(s)  # not x - logsumexp(x): that rounds at the scale of max |x|
    return make_node(out, (x,),
                     lambda g: (g - xp.exp(out) * xp.sum(g, axis=axis, keepdims=True),), "log_softmax")


# -- shapes ----------------------------------------------------------------------------------------

def reshape(x: Tensor, shape) -> Tensor:
    xp, src = x.backend.xp, x.shape
    shape = tuple(shape)
    return make_node(xp.reshape(x.data, shape), (x,), lambda g: (xp.reshape(g, src),), "reshape")


def permute(x: Tensor, axes) -> Tensor:
    xp = x.backend.xp
    axes = tuple(a % x.ndim for a in axes)
    inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
    return make_node(xp.permute_dims(x.data, axes), (x,), lambda g: (xp.permute_dims(g, inverse),), "permute")


def transpose(x: Tensor, axis0: int | None = None, axis1: int | None = None) -> Tensor:
    """Swap two axes (default: reverse all axes, as ``x.T``)."""
    if axis0 is None and axis1 is None:
        return permute(x, tuple(reversed(range(x.ndim))))
    axes = list(range(x.ndim))
    axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    return permute(x, axes)


def broadcast_to(x: Tensor, shape) -> Tensor:
    # the engine's sum_to reduces the gradient back to x's shape
    return make_node(x.backend.xp.broadcast_to(x.data, tuple(shape)), (x,), lambda g: (g,), "broadcast_to")


def getitem(x: Tensor, key) -> Tensor:
    """Basic indexing and slicing (ints, slices, None, Ellipsis); the gradient is scattered back."""
    xp = x.backend.xp
    key = key if isinstance(key, tuple) else (key,)
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, slice)
                or (isinstance(k, numbers.Integral) and not isinstance(k, bool))):
            raise TypeError(f"tensor indexing takes ints, slices, None and ..., not {type(k).__name__}; "
                            f"gather with an index array through ag.take(x, indices, axis)")
    key = tuple(int(k) if isinstance(k, numbers.Integral) else k for k in key)  # NumPy ints too
    if Ellipsis not in key and builtins.sum(k is not None for k in key) < x.ndim:
        key = key + (Ellipsis,)  # x[0] means x[0, ...]; the standard asks for it to be spelled out
    # assignment takes no new axes (None): write g, with those length-1 axes dropped, through the rest
    plain = tuple(k for k in key if k is not None)

    def backward(g):
        gx = xp.zeros_like(x.data)
        gx[plain] = xp.reshape(g, tuple(gx[plain].shape))
        return (gx,)

    return make_node(x.data[key], (x,), backward, "getitem")


def concat(tensors, axis: int = 0) -> Tensor:
    tensors = list(tensors)
    first = tensors[0]
    for t in tensors[1:]:
        if t.backend is not first.backend:
            raise _mismatch(first.backend, t.backend)
    xp = first.backend.xp
    axis = axis % first.ndim
    bounds, start = [], 0
    for t in tensors:
        bounds.append((start, start + t.shape[axis]))
        start += t.shape[axis]

    def backward(g):
        lead = (slice(None),) * axis
        return tuple(g[lead + (slice(lo, hi), ...)] for lo, hi in bounds)

    return make_node(xp.concat([t.data for t in tensors], axis=axis), tuple(tensors), backward, "concat")


def take(x: Tensor, indices, axis: int = 0) -> Tensor:
    """Gather entries along one axis with an integer index vector.

    The adjoint of a gather is a scatter-add, which the array API does not have; it equals a matmul
    with the one-hot matrix of the indices, which it does.
    """
    xp = x.backend.xp
    idx = _d(indices)
    axis = axis % x.ndim
    n = x.shape[axis]

    def backward(g):
        onehot = xp.astype(idx[:, None] == xp.arange(n, device=x.backend.device)[None, :], g.dtype)
        moved = xp.moveaxis(g, axis, -1)  # (..., m)
        return (xp.moveaxis(xp.matmul(moved, onehot), -1, axis),)

    return make_node(xp.take(x.data, idx, axis=axis), (x,), backward, "take")


# -- the operator table: Tensor's operators and methods are the primitives above ----------------------

def _shape_args(args) -> tuple:
    """``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` alike (PyTorch habits)."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


_TENSOR_METHODS = {
    "__add__": add, "__radd__": lambda x, other: add(other, x),
    "__sub__": sub, "__rsub__": lambda x, other: sub(other, x),
    "__mul__": mul, "__rmul__": lambda x, other: mul(other, x),
    "__truediv__": div, "__rtruediv__": lambda x, other: div(other, x),
    "__matmul__": matmul, "__rmatmul__": lambda x, other: matmul(other, x),
    "__pow__": pow, "__neg__": neg, "__abs__": abs, "__getitem__": getitem,
    "T": property(transpose), "astype": astype,
    "sum": sum, "mean": mean, "max": max, "exp": exp, "log": log,
    "reshape": lambda x, *shape: reshape(x, _shape_args(shape)),
    "permute": lambda x, *axes: permute(x, _shape_args(axes)),
}
for _name, _method in _TENSOR_METHODS.items():
    setattr(Tensor, _name, _method)
