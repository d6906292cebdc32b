"""Module, the base class of every layer and model, and Parameter.

A :class:`Module` is a plain Python object whose attributes hold its pieces. Nothing is registered by
hand: an attribute that is

* a :class:`Module` is a submodule,
* a leaf Tensor with ``requires_grad=True`` (make one with :func:`Parameter`) is a parameter,
* a list or tuple of those (or a ``ModuleList``) contributes each item, named ``attr.i``.

Non-trainable state that must still be saved and moved between devices (BatchNorm's running statistics)
is a *buffer*: a raw backend array declared once with :meth:`Module.register_buffer`.

Parameters are found in the order the attributes were first set (depth first), so
``model.parameters()`` is the same list every time and dotted names such as ``"body.0.weight"`` are stable
keys for checkpoints. The layers themselves are in layers.py.
"""
from __future__ import annotations

import math

import numpy as np

import autograd_lite as ag
from autograd_lite import Tensor
from autograd_lite.backend import Backend, BackendError, backend_of_array, dtype_name, get_backend

__all__ = ["Module", "Parameter"]


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


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` and define ``forward``.

    ``module(x)`` calls ``module.forward(x)``. Submodules, parameters and buffers are found from the
    attributes (see module.py's docstring), so a subclass needs no registration calls except
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
            value = target.asarray(host, dtype=dtype_name(current.dtype))
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
