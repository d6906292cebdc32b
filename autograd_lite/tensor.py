"""The Tensor: an array, the graph edge that made it, and reverse-mode backward.

Every operation on tensors returns a new Tensor that remembers its parents and a small function,
``backward_fn``, mapping the gradient of the output to the gradients of the parents (vector-Jacobian
products). ``loss.backward()`` then

1. sorts the graph topologically (iteratively: a 10,000-op chain needs no deep recursion),
2. walks it from the loss towards the leaves, calling each node's ``backward_fn`` once,
3. reduces every gradient to its parent's shape with :func:`sum_to` (broadcasting is undone here, in
   one place, so no op has to think about it),
4. accumulates where a tensor was used more than once (fan-out), popping each node's gradient from a
   dictionary as soon as it has been consumed, so intermediate gradients are freed as it goes,
5. stores ``.grad`` on leaves only (tensors created with ``requires_grad=True``), each an array the
   leaf owns (never shared with another leaf or the caller), and frees the graph.

About step 5: a gradient may be an array someone else still holds (``add`` hands the same ``g`` to both
parents; ``reshape`` returns a view of it; the seed is the caller's), so a leaf normally gets a copy.
A node whose backward always returns new arrays, one per parent (made by ``matmul``, ``mul``, the
convolutions), is made with ``fresh_grads=True`` (``ops.make_node``); its gradients reach a leaf as
they are. That spares copying the weight gradients, the bulk of a network's gradient memory.

Gradients (``.grad``) are plain arrays of the tensor's backend, like the data.
"""
from __future__ import annotations

import contextlib
import numbers

import numpy as np
from array_api_compat import array_namespace

from .backend import Backend, BackendError, BackendMismatchError, backend_of_array, get_backend
from .random import default_generator

_grad_enabled = True
_profiler = None   # set by profiler.profile(): told of every new tensor and every backward call


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Inside this block, operations record no graph (as ``torch.no_grad``)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def _swap_profiler(profiler):
    """Install ``profiler`` (or None) as the one told of every tensor and backward call; returns the
    previous one (profiler.profile uses this)."""
    global _profiler
    previous, _profiler = _profiler, profiler
    return previous


def sum_to(g, shape):
    """Reduce a broadcast gradient ``g`` back to ``shape`` (the adjoint of broadcasting).

    Broadcasting prepends axes and stretches axes of length 1; their adjoint sums over exactly those.
    """
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    xp = array_namespace(g)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, shape)


class Tensor:
    """An n-dimensional array that can record the operations applied to it."""

    __slots__ = ("data", "backend", "requires_grad", "grad", "_parents", "_backward_fn", "_op",
                 "_fresh_grads", "__weakref__")
    __array_priority__ = 1000  # make NumPy defer to Tensor's reflected operators

    def __init__(self, data, backend: Backend, requires_grad: bool = False,
                 parents: tuple = (), backward_fn=None, op: str | None = None, fresh_grads: bool = False):
        self.data = data
        self.backend = backend
        self.requires_grad = requires_grad
        self.grad = None
        self._parents = parents
        self._backward_fn = backward_fn
        self._op = op
        self._fresh_grads = fresh_grads  # backward_fn returns new arrays, one per parent (see above)
        if _profiler is not None:
            _profiler.made(op)

    # -- basic properties ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return self.backend.device

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op}" if self._op else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, backend={self.backend.name}{grad}{op})"

    # -- conversion ------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (crosses to the host; never used inside a training step)."""
        return self.backend.to_numpy(self.data)

    def item(self) -> float:
        """The value of a one-element tensor as a Python number (a host crossing)."""
        a = self.numpy()
        if a.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return a.reshape(()).item()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data, self.backend)

    def to(self, backend) -> "Tensor":
        """A copy on another backend (through the host); a leaf, keeping ``requires_grad``."""
        target = get_backend(backend)
        if target is self.backend:
            return self
        return Tensor(target.asarray(self.numpy()), target, requires_grad=self.requires_grad)

    # -- backward --------------------------------------------------------------------------------
    def backward(self, gradient=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``: the chain rule, outputs first.

        ``gradient`` seeds the pass; it may be omitted for a one-element tensor (seeded with one).
        """
        grads = {id(self): self._seed(gradient)}   # dL/d(node) of the nodes reached so far
        owned = set()  # ids whose pending gradient is a new array nothing else holds (fresh_grads)
        for node in _topological_order(self):      # every node after all the nodes computed from it
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.is_leaf:
                _store_leaf_grad(node, g, id(node) in owned)
                continue
            if node._backward_fn is None:  # part of a graph an earlier backward() already freed
                raise RuntimeError(f"backward() reached a '{node._op}' node whose graph was already freed by "
                                   f"a previous backward(); recompute the forward pass")
            if _profiler is not None:
                _profiler.start_backward()
            for parent, pg in zip(node._parents, node._backward_fn(g)):   # dL/dparent = dL/dnode J
                if pg is None or not isinstance(parent, Tensor) or not parent.requires_grad:
                    continue
                pg = sum_to(pg, parent.shape)      # undo broadcasting
                key = id(parent)
                if key in grads:                   # fan-out: add (never in place: the array may be shared)
                    grads[key] = grads[key] + pg
                    owned.add(key)
                else:
                    grads[key] = pg
                    if node._fresh_grads:
                        owned.add(key)
            if _profiler is not None:
                _profiler.end_backward(node._op)
            node._backward_fn, node._parents = None, ()   # free the graph as we go (as PyTorch does)

    def _seed(self, gradient):
        """The gradient that starts ``backward``, checked: ones for a one-element tensor, else given."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "computation had requires_grad=True (or it ran under no_grad())")
        if self._op is not None and self._backward_fn is None:
            raise RuntimeError("backward() through a graph that was already freed by a previous "
                               "backward(); recompute the forward pass")
        xp = self.backend.xp
        if gradient is None:
            if int(np.prod(self.shape)) != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor; this one "
                                   f"has shape {self.shape}: pass gradient=ones of that shape")
            return xp.ones_like(self.data)
        seed = gradient.data if isinstance(gradient, Tensor) else self.backend.asarray(gradient)
        if tuple(seed.shape) != self.shape:
            raise ValueError(f"gradient shape {tuple(seed.shape)} does not match tensor shape {self.shape}")
        return xp.astype(seed, self.dtype)

    # The arithmetic operators (+, @, ...) and the method forms (x.sum(), x.T, ...) are the primitives
    # of ops.py, attached to this class by the operator table at the end of that file.

    # comparisons give boolean tensors without gradient
    def __lt__(self, other): return _compare(self, other, "less")
    def __le__(self, other): return _compare(self, other, "less_equal")
    def __gt__(self, other): return _compare(self, other, "greater")
    def __ge__(self, other): return _compare(self, other, "greater_equal")
    def __eq__(self, other): return _compare(self, other, "equal")  # noqa: D105
    def __ne__(self, other): return _compare(self, other, "not_equal")
    __hash__ = object.__hash__


def _compare(a: Tensor, b, name: str) -> Tensor:
    bd = b.data if isinstance(b, Tensor) else b
    if isinstance(b, Tensor) and b.backend is not a.backend:
        raise _mismatch(a.backend, b.backend)
    return Tensor(getattr(a.backend.xp, name)(a.data, bd), a.backend)


def _mismatch(a: Backend, b: Backend) -> BackendMismatchError:
    return BackendMismatchError(
        f"cannot combine a tensor on backend '{a.name}' with one on backend '{b.name}'; "
        f"move one of them with .to('{a.name}')")


def _store_leaf_grad(leaf: Tensor, g, owned: bool) -> None:
    """Add ``g`` to ``leaf.grad``. A first gradient is copied unless ``owned``: otherwise it may be an
    array something else holds (``add`` hands one array to both parents, ``reshape`` a view of it, the
    seed is the caller's), and each leaf's ``.grad`` must be its own."""
    xp = leaf.backend.xp
    if leaf.grad is not None:
        leaf.grad = leaf.grad + g
    else:  # (asarray without a copy still turns a NumPy 0-d result, a scalar, into an array)
        leaf.grad = xp.asarray(g) if owned else xp.asarray(g, copy=True)


def _topological_order(root: Tensor) -> list:
    """Nodes reachable from ``root`` that need a gradient, ordered outputs-first (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in node._parents:
            if isinstance(p, Tensor) and p.requires_grad and id(p) not in visited:
                stack.append((p, False))
    order.reverse()
    return order


# -- creation ------------------------------------------------------------------------------------
_DEFAULT_FLOAT = "float32"


def _resolve_backend(backend, data=None) -> Backend:
    if backend is not None:
        return get_backend(backend)
    if data is not None and not isinstance(data, (numbers.Number, list, tuple, np.ndarray)):
        try:
            return backend_of_array(data)
        except BackendError:
            pass
    return get_backend("numpy")


def tensor(data, requires_grad: bool = False, dtype=None, backend=None) -> Tensor:
    """Make a leaf tensor from array-like data (lists, NumPy arrays, backend arrays, scalars).

    ``dtype`` defaults to float32 for Python/NumPy floating data (PyTorch's default) and keeps the
    dtype of a backend array; ``backend`` defaults to the data's own backend, else ``"numpy"``.
    Without ``requires_grad`` the tensor may share memory with ``data``; with it, the tensor always
    holds a copy of its own (optimizers update it in place).
    """
    if isinstance(data, Tensor):
        data = data.data
    b = _resolve_backend(backend, data)
    own = not isinstance(data, (numbers.Number, list, tuple, np.ndarray))
    if own and backend_of_array(data) is not b:
        arr = b.asarray(backend_of_array(data).to_numpy(data), dtype=dtype)
    elif own:
        arr = data if dtype is None else b.xp.astype(data, b.dtype(dtype))
    else:
        host = np.asarray(data)
        if dtype is None:
            # NumPy arrays keep their dtype; Python numbers and lists become float32 (or int64)
            if isinstance(data, np.ndarray):
                dtype = str(host.dtype)
            else:
                dtype = _DEFAULT_FLOAT if host.dtype.kind == "f" else "int64" if host.dtype.kind in "iu" else None
        arr = b.asarray(host, dtype=dtype)
    if requires_grad:
        if not _is_floating(b, arr):
            raise TypeError("only floating-point tensors can require gradients")
        # A leaf that requires a gradient is a parameter, and optimizers update parameters in place:
        # it owns its memory (as torch.tensor copies), so a step can never write into the caller's array.
        arr = b.xp.asarray(arr, copy=True, device=b.device)
    return Tensor(arr, b, requires_grad=requires_grad)


def _is_floating(b: Backend, arr) -> bool:
    return b.xp.isdtype(arr.dtype, "real floating")


def zeros(*shape, dtype=_DEFAULT_FLOAT, backend=None, requires_grad=False) -> Tensor:
    b = get_backend(backend or "numpy")
    shape = _shape_arg(shape)
    return Tensor(b.xp.zeros(shape, dtype=b.dtype(dtype), device=b.device), b, requires_grad)


def ones(*shape, dtype=_DEFAULT_FLOAT, backend=None, requires_grad=False) -> Tensor:
    b = get_backend(backend or "numpy")
    shape = _shape_arg(shape)
    return Tensor(b.xp.ones(shape, dtype=b.dtype(dtype), device=b.device), b, requires_grad)


def randn(*shape, dtype=_DEFAULT_FLOAT, backend=None, requires_grad=False, generator=None) -> Tensor:
    """Standard normal draws from ``generator`` (by default, the backend's ``default_generator``)."""
    b = get_backend(backend or "numpy") if generator is None else generator.backend
    rng = default_generator(b) if generator is None else generator
    return Tensor(rng.normal(_shape_arg(shape), dtype=dtype), b, requires_grad)


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def one_hot(indices, num_classes: int, dtype="float32", backend=None) -> Tensor:
    """One-hot rows for integer class indices (no gradient: the input is discrete)."""
    if isinstance(indices, Tensor):
        b, idx = indices.backend, indices.data
    else:
        b = get_backend(backend or "numpy")
        idx = b.asarray(indices)
    xp = b.xp
    classes = xp.arange(num_classes, device=b.device)
    return Tensor(xp.astype(idx[..., None] == classes, b.dtype(dtype)), b)
