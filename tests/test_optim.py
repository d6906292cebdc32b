"""Tests for gmvae_np.optim: Adam against its closed form, bias correction, weight decay, checkpoints, SGD.

The reference updates are written out by hand in NumPy float64 here, straight from Kingma & Ba's
Algorithm 1, so the optimizer is checked against the paper rather than against itself.
"""
import numpy as np
import pytest

import autograd_lite as ag
from gmvae_np.layers import BatchNorm, Linear, Sequential, Tanh
from gmvae_np.optim import SGD, Adam, adam_step

from strategies import BACKENDS  # numpy, strict, and cupy (marked gpu; skipped without a GPU)


def param(values, backend, dtype="float64"):
    return ag.tensor(np.asarray(values, dtype=np.float64), requires_grad=True, dtype=dtype, backend=backend)


def set_grad(p, values):
    p.grad = p.backend.asarray(np.asarray(values, dtype=np.float64), dtype="float64")


def adam_reference(theta, grads, lr, b1, b2, eps, wd=0.0):
    """Kingma & Ba, Algorithm 1 (plus the L2 term wd * theta in the gradient), one step per gradient."""
    theta = np.array(theta, dtype=np.float64)
    m, v, out = np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        g = g + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta.copy())
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_first_three_steps_match_the_closed_form(backend, weight_decay):
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) * s for s in (1.0, 0.01, 5.0)]
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-6
    p = param(theta0, backend)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)
    expected = adam_reference(theta0, grads, lr, b1, b2, eps, weight_decay)
    for t, (g, want) in enumerate(zip(grads, expected), start=1):
        set_grad(p, g)
        opt.step()
        assert opt.state[0]["step"] == t
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
    if weight_decay:  # and the decay really changed the path
        assert not np.allclose(p.numpy(), adam_reference(theta0, grads, lr, b1, b2, eps)[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_bias_correction_makes_the_first_step_exactly_lr(backend):
    """At t = 1, m_hat = g and v_hat = g^2: every coordinate with a gradient moves by lr (up to eps/|g|)."""
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal(8)
    g = np.sign(rng.standard_normal(8)) * np.logspace(-2, 3, 8)  # five orders of magnitude of |g|
    g[2] = 0.0
    p = param(theta0, backend)
    set_grad(p, g)
    Adam([p], lr=0.01, eps=1e-8).step()
    step = p.numpy() - theta0
    moved = g != 0
    # exactly lr * |g| / (|g| + eps), which is lr to within eps / |g| <= 1e-6
    np.testing.assert_allclose(np.abs(step[moved]), 0.01 * np.abs(g[moved]) / (np.abs(g[moved]) + 1e-8),
                               rtol=1e-12)
    np.testing.assert_allclose(np.abs(step[moved]), 0.01, rtol=2e-6)
    np.testing.assert_array_equal(np.sign(step[moved]), -np.sign(g[moved]))
    assert step[2] == 0.0
    # without the corrections the first step would be lr * (1 - b1) / sqrt(1 - b2), about 3.16 lr
    assert np.isclose(0.01 * 0.1 / np.sqrt(0.001), 0.0316, rtol=1e-3)


def test_adam_without_kept_state_is_sign_descent():
    """The original Torch7 code's mistake, reproduced: a fresh Adam (fresh m, v) per step moves lr * sign(g)."""
    rng = np.random.default_rng(2)
    theta = rng.standard_normal(5)
    p = param(theta, "numpy")
    for _ in range(3):
        g = rng.standard_normal(5) * 100.0
        before = p.numpy().copy()
        set_grad(p, g)
        Adam([p], lr=0.1).step()  # state rebuilt every step
        np.testing.assert_allclose(p.numpy() - before, -0.1 * np.sign(g), rtol=1e-8)
    # with the state kept, m averages the gradients: a gradient that flips sign (noise) barely moves
    # the parameter at the second step (m_hat = -0.01 / 0.19), where sign descent would jump by lr again
    p2 = param(theta, "numpy")
    opt = Adam([p2], lr=0.1)
    steps = []
    for sign in (1.0, -1.0):
        before = p2.numpy().copy()
        set_grad(p2, np.full(5, sign))
        opt.step()
        steps.append(np.abs(p2.numpy() - before))
    np.testing.assert_allclose(steps[0], 0.1, rtol=1e-6)
    np.testing.assert_allclose(steps[1], 0.1 * (0.01 / 0.19), rtol=1e-4)  # v_hat = 1 here


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_weight_decay_pulls_towards_zero(backend):
    p = param([2.0, -3.0], backend)
    opt = Adam([p], lr=0.1, weight_decay=1.0)
    path = [p.numpy()]
    for _ in range(5):
        set_grad(p, [0.0, 0.0])  # no loss gradient: only the L2 term acts
        opt.step()
        path.append(p.numpy())
    sizes = np.abs(np.array(path))
    assert np.all(np.diff(sizes, axis=0) < 0)  # both coordinates shrink at every step
    expected = adam_reference([2.0, -3.0], [np.zeros(2)] * 5, 0.1, 0.9, 0.999, 1e-8, wd=1.0)
    np.testing.assert_allclose(path[1:], expected, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_state_is_created_lazily_on_the_parameter_device(backend):
    b = ag.get_backend(backend)
    a, c = param(np.ones((2, 3)), backend, "float32"), param(np.ones(4), backend, "float32")
    opt = Adam([a, c])
    assert opt.state == [None, None]
    a.grad = b.xp.ones_like(a.data)
    opt.step()  # c has no gradient: skipped, no state
    assert opt.state[1] is None and np.array_equal(c.numpy(), np.ones(4))
    s = opt.state[0]
    for name in ("m", "v"):
        assert s[name].device == b.device and s[name].dtype == a.dtype and tuple(s[name].shape) == (2, 3)
    assert a.dtype == b.xp.float32


def test_adam_never_aliases_or_changes_the_gradient():
    p = param([1.0, 2.0], "numpy")
    opt = Adam([p], lr=0.1)
    g = np.array([0.5, -0.5])
    p.grad = g
    opt.step()
    np.testing.assert_array_equal(g, [0.5, -0.5])  # untouched by the in-place updates of m and v
    m, v = opt.state[0]["m"], opt.state[0]["v"]
    assert not np.shares_memory(m, g) and not np.shares_memory(v, g) and not np.shares_memory(p.data, g)
    g[:] = 100.0  # whatever the caller does with the gradient later cannot reach the state
    np.testing.assert_allclose(m, 0.1 * np.array([0.5, -0.5]))


def test_adam_does_not_write_into_caller_arrays():
    theta = np.array([1.0, 2.0])
    p = ag.tensor(theta, requires_grad=True)  # on NumPy this may share theta's memory
    set_grad(p, [1.0, 1.0])
    Adam([p], lr=0.1).step()
    np.testing.assert_array_equal(theta, [1.0, 2.0])
    np.testing.assert_allclose(p.numpy(), [0.9, 1.9], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_minimises_a_quadratic(backend):
    """min_x 0.5 * (x - c)^T A (x - c), badly conditioned: Adam's per-coordinate scaling handles it."""
    c = np.array([1.0, -2.0, 3.0])
    a = np.diag([100.0, 1.0, 0.01])
    x = param(np.zeros(3), backend)
    A, C = ag.tensor(a, backend=backend, dtype="float64"), ag.tensor(c, backend=backend, dtype="float64")
    opt = Adam([x], lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        d = x - C
        (0.5 * (d * (A @ d)).sum()).backward()
        opt.step()
    np.testing.assert_allclose(x.numpy(), c, atol=2e-2)


def _model_and_data(backend="numpy", seed=0):
    ag.default_generator(backend).seed(seed)
    net = Sequential(Linear(3, 5, backend=backend), BatchNorm(5, backend=backend), Tanh(),
                     Linear(5, 1, backend=backend))
    rng = np.random.default_rng(seed)
    batches = [(ag.tensor(rng.standard_normal((8, 3)), dtype="float32", backend=backend),
                ag.tensor(rng.standard_normal((8, 1)), dtype="float32", backend=backend)) for _ in range(10)]
    return net, batches


def _train(net, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        d = net(x) - y
        (d * d).mean().backward()
        opt.step()


def test_adam_checkpoint_resumes_bit_identically():
    net, batches = _model_and_data()
    opt = Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    _train(net, opt, batches[:4])
    model_state, opt_state = net.state_dict(), opt.state_dict()
    _train(net, opt, batches[4:])  # the uninterrupted run
    uninterrupted = net.state_dict()

    fresh, _ = _model_and_data(seed=99)  # different initial weights, overwritten by the checkpoint
    fresh_opt = Adam(fresh.parameters(), lr=0.5)  # and different hyperparameters, restored too
    fresh.load_state_dict(model_state)
    fresh_opt.load_state_dict(opt_state)
    assert fresh_opt.lr == 0.01 and fresh_opt.weight_decay == 1e-3 and fresh_opt.betas == (0.9, 0.999)
    _train(fresh, fresh_opt, batches[4:])
    resumed = fresh.state_dict()
    assert resumed.keys() == uninterrupted.keys()
    for k in uninterrupted:
        np.testing.assert_array_equal(resumed[k], uninterrupted[k], err_msg=k)
    assert not np.array_equal(uninterrupted["0.weight"], model_state["0.weight"])


def test_adam_state_dict_is_plain_data_and_a_copy():
    import json

    p = param([1.0, 2.0], "numpy")
    opt = Adam([p, param([3.0], "numpy")])
    set_grad(p, [1.0, -1.0])
    opt.step()
    sd = opt.state_dict()
    scalars = {k: v for k, v in sd.items() if k != "state"}
    assert json.loads(json.dumps(scalars)) == scalars
    assert sd["state"][1] is None and sd["state"][0]["step"] == 1
    assert isinstance(sd["state"][0]["m"], np.ndarray)
    sd["state"][0]["m"][:] = 123.0
    assert not np.any(opt.state[0]["m"] == 123.0)
    opt.load_state_dict(sd)
    sd["state"][0]["v"][:] = 7.0  # loading copied too
    assert not np.any(opt.state[0]["v"] == 7.0)


def test_adam_load_state_dict_errors():
    p = param(np.zeros((2, 2)), "numpy")
    opt = Adam([p])
    set_grad(p, np.ones((2, 2)))
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match=r"'m' of parameter 0 has shape \(2, 2\) in the state but the parameter has shape \(3,\)"):
        Adam([param(np.zeros(3), "numpy")]).load_state_dict(sd)
    with pytest.raises(ValueError, match="holds 1 parameters but this optimizer has 2"):
        Adam([param([0.0], "numpy"), param([0.0], "numpy")]).load_state_dict(sd)
    with pytest.raises(ValueError, match="saved by 'SGD'"):
        opt.load_state_dict(SGD([p], lr=0.1).state_dict())
    with pytest.raises(TypeError, match="made by Adam.state_dict"):
        opt.load_state_dict({"m": 1})


def test_optimizer_constructor_errors():
    net = Sequential(Linear(2, 2))
    with pytest.raises(TypeError, match="pass model.parameters"):
        Adam(net)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="parameter 1 .* requires_grad=False"):
        Adam([net[0].weight, ag.zeros(2)])
    with pytest.raises(ValueError, match="appears twice"):
        Adam([net[0].weight, net[0].weight])
    with pytest.raises(ValueError, match="betas"):
        Adam(net.parameters(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        SGD(net.parameters(), lr=-1.0)
    p = net[0].weight
    p.grad = np.ones((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(2, 2\) but its gradient has shape \(3, 3\)"):
        Adam(net.parameters()).step()


def test_adam_state_follows_a_module_moved_to_another_backend():
    net, batches = _model_and_data()
    opt = Adam(net.parameters(), lr=0.01)
    _train(net, opt, batches[:2])
    m_before = opt.state_dict()["state"][0]["m"]
    net.to("strict")
    strict = ag.get_backend("strict")
    x = ag.tensor(batches[2][0].numpy(), backend="strict")
    opt.zero_grad()
    net(x).sum().backward()
    opt.step()
    assert opt.state[0]["m"].device == strict.device and opt.state[0]["step"] == 3
    assert not np.array_equal(opt.state_dict()["state"][0]["m"], m_before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_step_and_momentum(backend):
    p = param([1.0, -1.0], backend)
    opt = SGD([p], lr=0.1)
    set_grad(p, [2.0, 4.0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [0.8, -1.4], rtol=1e-12)

    q = param([0.0, 0.0], backend)
    opt = SGD([q], lr=0.1, momentum=0.5)
    for _ in range(3):
        set_grad(q, [1.0, -2.0])
        opt.step()
    # buffers 1, 1.5, 1.75 times g: total 4.25 * lr * g
    np.testing.assert_allclose(q.numpy(), [-0.425, 0.85], rtol=1e-12)
    sd = opt.state_dict()
    assert sd["momentum"] == 0.5 and sd["state"][0]["step"] == 3
    np.testing.assert_allclose(sd["state"][0]["momentum_buffer"], [1.75, -3.5])
    opt.zero_grad()
    assert q.grad is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_blocked_update_matches_the_whole_array_update(backend, weight_decay, monkeypatch):
    """Backend.block_size cuts the in-place update into row blocks; the numbers must not change."""
    rng = np.random.default_rng(3)
    b = ag.get_backend(backend)
    shapes = [(7, 3, 2), (5,), (1, 4), ()]  # uneven last block, 1-D, a single row, 0-d
    theta0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
    results = {}
    for block in (None, 4):  # 4 elements: (7, 3, 2) goes as blocks of one row (6 elements)
        monkeypatch.setattr(b, "block_size", block)
        params = [param(t, backend) for t in theta0]
        opt = Adam(params, lr=0.05, weight_decay=weight_decay)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                set_grad(p, g)
            opt.step()
        results[block] = [p.numpy() for p in params]
    for whole, blocked in zip(results[None], results[4]):
        np.testing.assert_array_equal(blocked, whole)
    for t, got in zip(theta0, results[None]):
        assert not np.array_equal(got, t)  # the parameters did move
    want = adam_reference(theta0[0], [g[0] for g in grads], 0.05, 0.9, 0.999, 1e-8, weight_decay)[-1]
    np.testing.assert_allclose(results[4][0], want, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_and_sgd_update_the_parameter_in_place(backend):
    """The step writes into the parameter's own array (no new array per step), as PyTorch does."""
    for make in (lambda ps: Adam(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.5)):
        p = param(np.ones((3, 2)), backend)
        data = p.data
        opt = make([p])
        for _ in range(2):
            set_grad(p, np.full((3, 2), 0.5))
            opt.step()
        assert p.data is data
        assert np.all(p.numpy() < 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-6)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_fast_update_matches_the_textbook_adam_step(backend, dtype, rtol, weight_decay, monkeypatch):
    """Adam's in-place, blocked update agrees with adam_step, the textbook lines it computes, step by
    step (theta, m and v), and adam_step agrees with Algorithm 1 written out above."""
    b = ag.get_backend(backend)
    monkeypatch.setattr(b, "block_size", 4)  # (7, 3) goes as blocks of one row
    rng = np.random.default_rng(4)
    theta0 = rng.standard_normal((7, 3))
    grads = [rng.standard_normal((7, 3)) for _ in range(4)]
    p = param(theta0, backend, dtype)
    opt = Adam([p], lr=0.05, weight_decay=weight_decay)
    theta, m, v = b.asarray(theta0, dtype), b.asarray(np.zeros((7, 3)), dtype), b.asarray(np.zeros((7, 3)), dtype)
    for t, g in enumerate(grads, start=1):
        p.grad = b.asarray(g, dtype)
        opt.step()
        theta, m, v = adam_step(theta, b.asarray(g, dtype), m, v, t, lr=0.05, weight_decay=weight_decay)
        for fast, plain in ((p.data, theta), (opt.state[0]["m"], m), (opt.state[0]["v"], v)):
            np.testing.assert_allclose(b.to_numpy(fast), b.to_numpy(plain), rtol=rtol, atol=rtol * 1e-2)
    want = adam_reference(theta0, grads, 0.05, 0.9, 0.999, 1e-8, weight_decay)[-1]
    np.testing.assert_allclose(b.to_numpy(theta), want, rtol=1e-12 if dtype == "float64" else 1e-5)
