"""Tests of autograd_lite.viz: node_gradients agrees with backward, leaves the graph intact, and
draw_graph draws one box per node of the recorded graph, with matplotlib only."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import autograd_lite as ag  # noqa: E402


def _small_network(rng):
    W = ag.tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype="float64")
    b = ag.tensor(rng.standard_normal(4), requires_grad=True, dtype="float64")
    x = ag.tensor(rng.standard_normal((5, 3)), dtype="float64")            # a constant input
    h = ag.tanh(x @ W + b)
    loss = ag.mean(ag.log_softmax(h * h + h, axis=-1))                    # h fans out three times
    return loss, (W, b, x, h)


def test_node_gradients_agree_with_backward_and_leave_the_graph_intact():
    rng = np.random.default_rng(0)
    loss, (W, b, x, h) = _small_network(rng)
    grads = ag.node_gradients(loss)
    assert W.grad is None and b.grad is None          # nothing stored on the tensors
    assert id(x) not in grads                          # a constant needs no gradient
    assert grads[id(h)].shape == h.shape and grads[id(b)].shape == b.shape
    again = ag.node_gradients(loss)                    # the graph is still there
    np.testing.assert_array_equal(again[id(W)], grads[id(W)])
    loss.backward()
    np.testing.assert_allclose(grads[id(W)], W.grad, rtol=1e-12)
    np.testing.assert_allclose(grads[id(b)], b.grad, rtol=1e-12)


def test_trace_graph_finds_every_node_and_edge():
    a = ag.tensor(2.0, requires_grad=True, dtype="float64")
    b = ag.tensor(3.0, requires_grad=True, dtype="float64")
    c = a * b
    d = c + a
    L = ag.log(d)
    nodes, edges = ag.trace_graph(L)
    assert [id(n) for n in nodes][0] == id(L) and {id(n) for n in nodes} == {id(t) for t in (a, b, c, d, L)}
    assert {(id(p), id(r)) for p, r in edges} == {(id(a), id(c)), (id(b), id(c)), (id(c), id(d)), (id(a), id(d)),
                                                 (id(d), id(L))}


def test_draw_graph_draws_one_box_per_node_with_its_gradient():
    rng = np.random.default_rng(1)
    loss, (W, b, x, h) = _small_network(rng)
    fig = ag.draw_graph(loss, names={"W": W, "loss": loss})
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_text()]   # arrows are empty annotations
    nodes, _ = ag.trace_graph(loss)
    assert len(texts) == len(nodes)
    assert any(t.startswith("W\nleaf\nshape (3, 4)") and "grad |.|=" in t for t in texts)
    assert any(t.startswith("loss\nmean\nshape ()") and "grad 1" in t for t in texts)
    assert any(t.startswith("constant\nshape (5, 3)") for t in texts)
    plt.close(fig)


def test_a_freed_graph_is_refused_with_a_reason():
    a = ag.tensor([1.0, 2.0], requires_grad=True)
    L = ag.sum(ag.exp(a))
    L.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        ag.draw_graph(L)
