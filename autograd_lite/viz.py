"""Draw the graph a computation recorded, with every node's gradient: micrograd's ``draw_dot``, in matplotlib.

    >>> import autograd_lite as ag
    >>> a = ag.tensor(2.0, requires_grad=True, dtype="float64")
    >>> b = ag.tensor(3.0, requires_grad=True, dtype="float64")
    >>> L = ag.log(a * b + a)
    >>> fig = ag.draw_graph(L, names={"a": a, "b": b, "L": L})     # before L.backward(): see below
    >>> fig.savefig("graph.png")                                    # doctest: +SKIP

Each node is a box: its name (if given), the op that made it (``leaf`` for an input), its shape, its value
when it has at most four elements, and ``grad``, dL/d(node), for every node. Arrows go from inputs to the
results computed from them, so data flows left to right and gradients right to left.

``backward()`` frees the graph as it goes (as PyTorch does), and keeps gradients only on leaves. So
draw the graph *before* calling ``backward()``: :func:`node_gradients` runs the same reverse walk as
``Tensor.backward`` (topological order, ``sum_to`` for broadcasting, fan-out gradients added up) but
keeps the gradient of every node and leaves the graph and every ``.grad`` untouched. Only matplotlib is
needed, no system package such as graphviz.
"""
from __future__ import annotations

import math

import numpy as np

from .tensor import Tensor, _topological_order, sum_to

__all__ = ["trace_graph", "node_gradients", "draw_graph"]


def trace_graph(root: Tensor) -> tuple:
    """The recorded graph under ``root``: (nodes, edges).

    nodes: every Tensor reached through the recorded parents, outputs first (the order ``backward``
    visits them in), including inputs that do not require a gradient; edges: (input, result) pairs.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"trace_graph needs a Tensor, got {type(root).__name__}")
    if root._op is not None and root._backward_fn is None:
        raise RuntimeError("this graph was freed by backward(); build the computation again and draw it "
                           "before calling backward()")
    nodes, edges, seen = [], [], set()
    for node in _topological_order(root) if root.requires_grad else [root]:
        if id(node) not in seen:
            seen.add(id(node))
            nodes.append(node)
        for parent in node._parents:
            if isinstance(parent, Tensor):
                edges.append((parent, node))
                if id(parent) not in seen:   # a constant input: it needs no gradient, but it is drawn
                    seen.add(id(parent))
                    nodes.append(parent)
    return nodes, edges


def node_gradients(root: Tensor, gradient=None) -> dict:
    """d(root)/d(node) for every node of the graph that needs a gradient: {id(node): array}.

    The walk of ``Tensor.backward`` without its two economies: nothing is freed and nothing is popped,
    so the graph can still be drawn and backpropagated afterwards. ``gradient`` seeds the walk as in
    ``backward`` (needed when ``root`` has more than one element).
    """
    if not root.requires_grad:
        return {}
    trace_graph(root)   # refuses a freed graph
    xp = root.backend.xp
    if gradient is None:
        if math.prod(root.shape) != 1:
            raise RuntimeError(f"node_gradients without a gradient needs a one-element tensor; this one has "
                               f"shape {root.shape}")
        seed = xp.ones_like(root.data)
    else:
        seed = gradient.data if isinstance(gradient, Tensor) else root.backend.asarray(gradient)
    grads = {id(root): seed}
    for node in _topological_order(root):     # every node after all the nodes computed from it
        g = grads.get(id(node))
        if g is None or node._op is None:
            continue
        for parent, pg in zip(node._parents, node._backward_fn(g)):
            if pg is None or not isinstance(parent, Tensor) or not parent.requires_grad:
                continue
            pg = sum_to(pg, parent.shape)
            grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg
    return grads


def _fmt(array) -> str:
    a = np.asarray(array, dtype=float)
    if a.size == 1:
        return f"{a.item():.4g}"
    if a.size <= 4:
        return "[" + " ".join(f"{v:.2g}" for v in a.ravel()) + "]"
    return f"|.|={np.linalg.norm(a):.3g}"


def draw_graph(root: Tensor, names: dict | None = None, gradients: bool = True, gradient=None, ax=None):
    """Draw the graph under ``root`` with matplotlib and return the Figure.

    names: optional {"label": tensor} to name some nodes (inputs, the loss); gradients: label every node
    that needs one with dL/d(node), computed by :func:`node_gradients` (``gradient`` seeds it for a
    non-scalar root); ax: a matplotlib Axes to draw into (a new figure otherwise). Call it before
    ``root.backward()``, which frees the graph.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    nodes, edges = trace_graph(root)
    label_of = {id(t): name for name, t in (names or {}).items()}
    grads = node_gradients(root, gradient) if gradients else {}

    # columns: the length of the longest path from the node to the root; the root is rightmost
    depth = {id(root): 0}
    for node in nodes:                         # outputs first, so a result's depth is known before its inputs'
        for parent in node._parents:
            if isinstance(parent, Tensor):
                depth[id(parent)] = max(depth.get(id(parent), 0), depth[id(node)] + 1)
    n_cols = max(depth.values()) + 1
    columns: dict = {}
    for node in nodes:
        columns.setdefault(depth[id(node)], []).append(node)
    n_rows = max(len(c) for c in columns.values())

    if ax is None:
        fig, ax = plt.subplots(figsize=(2.6 * n_cols + 0.6, 1.5 * n_rows + 0.6))
    else:
        fig = ax.figure
    pos = {}
    for d, column in columns.items():
        for i, node in enumerate(column):
            pos[id(node)] = (n_cols - 1 - d, (len(column) - 1) / 2 - i)

    box_w, box_h = 0.8, 0.66
    for parent, child in edges:
        (x0, y0), (x1, y1) = pos[id(parent)], pos[id(child)]
        bend = 0.0 if x1 - x0 < 1.5 else (0.55 if y0 >= y1 else -0.55)   # arc over the boxes it skips
        ax.annotate("", xy=(x1 - box_w / 2, y1), xytext=(x0 + box_w / 2, y0),
                    arrowprops=dict(arrowstyle="-|>", color="0.35", lw=1.0, shrinkA=0, shrinkB=0,
                                    connectionstyle=f"arc3,rad={-bend}"))
    for node in nodes:
        x, y = pos[id(node)]
        lines = []
        if id(node) in label_of:
            lines.append(label_of[id(node)])
        lines.append(node._op or ("leaf" if node.requires_grad else "constant"))
        lines.append(f"shape {node.shape}" if node.shape else "shape ()")
        if math.prod(node.shape) <= 4:
            lines.append(f"data {_fmt(node.numpy())}")
        if id(node) in grads:
            lines.append(f"grad {_fmt(node.backend.to_numpy(grads[id(node)]))}")
        colour = "#dbe9f6" if node._op is None and node.requires_grad else (
            "#eeeeee" if not node.requires_grad else "#fde9c8")
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02,rounding_size=0.06", fc=colour, ec="0.3", lw=1.0))
        ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=7.5, family="monospace")
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-(n_rows - 1) / 2 - 0.6, (n_rows - 1) / 2 + 0.6)
    ax.set_aspect("auto")
    ax.axis("off")
    return fig
