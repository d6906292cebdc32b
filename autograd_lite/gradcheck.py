"""Gradient checking: compare backward() with float64 central differences.

For a function ``f`` of tensors, pick a random output weighting ``u`` and look at the scalar
``L(x) = <u, f(x)>``. Backward with ``gradient=u`` gives the vector-Jacobian products ``g_i = J_i^T u``.
Then

* along a random direction ``v`` (one per input): ``(L(x + eps v) - L(x - eps v)) / 2 eps`` must equal
  ``sum_i <g_i, v_i>`` (the ``<u, J v>`` check: one test covers every entry of the Jacobian at once);
* for small inputs, every element separately: ``(L(x + eps e_k) - L(x - eps e_k)) / 2 eps == g[k]``.

Central differences are accurate to O(eps^2) but lose digits to rounding, so the inputs must be float64;
float32 inputs are refused. A failure is reported once, after every comparison, with the largest error,
where it was, the ops in the graph, the shapes, eps and the tolerances.
"""
from __future__ import annotations

import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """backward() disagrees with finite differences."""


class GradcheckReport:
    """What was compared: the largest absolute and relative errors and how many comparisons."""

    def __init__(self, name):
        self.name = name
        self.max_abs_error = 0.0
        self.max_rel_error = 0.0
        self.comparisons = 0

    def add(self, analytic: float, numeric: float) -> None:
        err = abs(analytic - numeric)
        scale = max(abs(analytic), abs(numeric))
        self.max_abs_error = max(self.max_abs_error, err)
        if scale > 0:
            self.max_rel_error = max(self.max_rel_error, err / scale)
        self.comparisons += 1

    def __repr__(self) -> str:
        return (f"GradcheckReport({self.name!r}, comparisons={self.comparisons}, "
                f"max_abs_error={self.max_abs_error:.3g}, max_rel_error={self.max_rel_error:.3g})")


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5,
              elementwise_max: int = 64, seed: int = 0, name: str | None = None) -> GradcheckReport:
    """Check ``fn``'s backward against central differences; raise :class:`GradcheckError` if they differ.

    ``inputs`` are float64 tensors; those with ``requires_grad=True`` are checked. ``fn`` must be
    deterministic (inject any noise as an input or a closure constant). Inputs with at most
    ``elementwise_max`` elements are also checked element by element. Returns a report.
    """
    name = name or getattr(fn, "__name__", "fn")
    if not inputs or not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError(f"gradcheck({name}): inputs must be Tensors")
    backend = inputs[0].backend
    xp = backend.xp
    for i, t in enumerate(inputs):
        if t.requires_grad and t.dtype != xp.float64:
            raise TypeError(f"gradcheck({name}): input {i} is {t.dtype}; central differences need float64 "
                            f"inputs (make them with dtype='float64')")
    checked = [i for i, t in enumerate(inputs) if t.requires_grad]
    if not checked:
        raise ValueError(f"gradcheck({name}): no input has requires_grad=True")

    rng = np.random.default_rng(seed)
    shapes = [t.shape for t in inputs]
    report = GradcheckReport(name)

    # analytic: one backward pass with a random output weighting u
    leaves = [Tensor(t.data, backend, requires_grad=t.requires_grad) for t in inputs]
    out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck({name}): fn must return a Tensor, got {type(out).__name__}")
    ops = _op_names(out)  # read before backward() frees the graph
    u_host = rng.standard_normal(out.shape)
    u = backend.asarray(u_host, dtype="float64")
    out.backward(u)
    grads = {i: (backend.to_numpy(leaves[i].grad) if leaves[i].grad is not None else np.zeros(shapes[i]))
             for i in checked}
    for i in checked:
        if grads[i].shape != shapes[i]:
            raise GradcheckError(f"gradcheck({name}): gradient of input {i} has shape {grads[i].shape}, "
                                 f"the input has {shapes[i]}")

    def L(perturb: dict) -> float:
        with no_grad():
            args = [Tensor(t.data + perturb[i], backend) if i in perturb else Tensor(t.data, backend)
                    for i, t in enumerate(inputs)]
            o = fn(*args)
        return float(np.sum(backend.to_numpy(o.data) * u_host))

    failures = []  # (error, where, analytic, numeric) of every comparison outside the tolerance
    wrong_inputs = set()  # inputs with an element whose gradient is off

    def compare(what, analytic, numeric, input_index=None):
        report.add(analytic, numeric)
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            failures.append((abs(analytic - numeric), what, analytic, numeric))
            if input_index is not None:
                wrong_inputs.add(input_index)

    # 1. one random direction through all inputs at once: <u, J v> against <J^T u, v>
    vs = {i: rng.standard_normal(shapes[i]) for i in checked}
    dev = {i: backend.asarray(eps * vs[i], dtype="float64") for i in checked}
    numeric = (L(dev) - L({i: -d for i, d in dev.items()})) / (2 * eps)
    analytic = float(sum(np.sum(grads[i] * vs[i]) for i in checked))
    compare("along a random direction", analytic, numeric)

    # 2. every element of small inputs
    for i in checked:
        size = int(np.prod(shapes[i]))
        if size > elementwise_max:
            continue
        for k in range(size):
            e = np.zeros(size)
            e[k] = eps
            d = backend.asarray(e.reshape(shapes[i]), dtype="float64")
            numeric = (L({i: d}) - L({i: -d})) / (2 * eps)
            idx = np.unravel_index(k, shapes[i])
            compare(f"at input {i}, element {tuple(int(j) for j in idx)}", float(grads[i][idx]), numeric, i)

    if failures:
        err, what, analytic, numeric = max(failures, key=lambda f: f[0])
        inputs_note = f"; wrong elements in input(s) {sorted(wrong_inputs)}" if wrong_inputs else ""
        raise GradcheckError(
            f"gradcheck({name}) failed in {len(failures)} of {report.comparisons} comparisons; the largest "
            f"error is {err:.3g} {what}: backward gives {analytic:.10g}, central differences "
            f"{numeric:.10g}{inputs_note}; ops {', '.join(ops) or '(none)'}; input shapes {shapes}, "
            f"output shape {out.shape}; eps={eps}, atol={atol}, rtol={rtol}")
    return report


def _op_names(out: Tensor) -> list:
    """The names of the ops recorded in the graph behind ``out``, each once, outputs first."""
    names, seen, stack = [], set(), [out]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node._op is not None and node._op not in names:
            names.append(node._op)
        stack.extend(p for p in node._parents if isinstance(p, Tensor))
    return names
