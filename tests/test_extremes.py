"""Numerical safety: the training step stays finite on extreme but legal inputs.

Each case trains a tiny GMVAE for a few dozen Adam steps on NumPy and checks, at EVERY step, that the
objective, each ELBO term, every gradient and every parameter after the update are finite:

    all-zero and all-one images   Bernoulli likelihood, fc and conv: the decoder is pushed towards
                                  probabilities 0 and 1, where a naive log(p) would give -inf; the
                                  loss works on logits (softplus form), so it cannot
    data scaled by 1e3            Gaussian likelihood, fc: squared errors of order 1e6 meet a
                                  log-variance that tanh bounds to (-15, 15) (gmvae_np.model.LOGVAR_LIMIT)
    a learning rate 100x          the spiral preset's lr 1e-3 and the MNIST preset's 1e-4, each x100:
                                  large, erratic updates must still not overflow anything

What happens when something does go non-finite (a stop naming the epoch, the step and the term, with
the last good checkpoint kept) is tested in tests/test_train.py::
test_nan_in_a_term_stops_training_and_keeps_the_last_good_checkpoint.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from blas import one_blas_thread

import autograd_lite as ag
from gmvae_np.data import make_spiral
from gmvae_np.elbo import TERMS
from gmvae_np.model import GMVAE, GMVAEConfig
from gmvae_np.optim import Adam
from gmvae_np.presets import preset


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Module scope, so module fixtures run under it too (see tests/blas.py)."""
    with one_blas_thread():
        yield


def finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a))))


def train_checked(config: GMVAEConfig, x: np.ndarray, lr: float, steps: int, batch: int, seed: int = 0):
    """Run ``steps`` Adam steps on random batches of ``x``; assert everything is finite at each step.

    Returns the objective and the per-sample mean of every term at each step, as Python floats.
    """
    b = ag.get_backend("numpy")
    model = GMVAE(config, backend=b, seed=seed)
    opt = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    for step in range(1, steps + 1):
        y = ag.tensor(x[rng.choice(x.shape[0], batch, replace=False)], dtype=config.dtype)
        result = model.loss(y)
        values = {"objective": float(result.objective.data)}
        values.update({name: float(np.mean(result.terms[name].data)) for name in TERMS})
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        assert not bad, f"step {step}: {bad} non-finite: {values}"
        opt.zero_grad()
        result.objective.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and finite(p.grad), f"step {step}: gradient of {name} is not finite"
        opt.step()
        for name, p in model.named_parameters():
            assert finite(p.data), f"step {step}: parameter {name} is not finite after the update"
        history.append(values)
    return history


def images(value: float, n: int = 16) -> np.ndarray:
    return np.full((n, 1, 28, 28), value, dtype=np.float32)


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["all-zero", "all-one"])
@pytest.mark.parametrize("arch", ["fc", "conv"])
def test_constant_images_keep_the_bernoulli_step_finite(arch, value):
    x = images(value)
    shape = (1, 28, 28) if arch == "conv" else (784,)
    config = GMVAEConfig(input_shape=shape, arch=arch, likelihood="bernoulli", K=3, Dx=4, Dw=3,
                         hidden=16, alpha=0.4)
    # lr 1e-2 (ten times the usual) so that a few dozen steps really drive the decoder into saturation
    history = train_checked(config, x.reshape((x.shape[0],) + shape), lr=1e-2, steps=36 if arch == "fc" else 16,
                            batch=8)
    # a constant image is the easiest thing to reconstruct: the decoder's logits run off towards
    # -inf (zeros) or +inf (ones), and the reconstruction term (784 pixels) falls from about 550 nats to
    # about 1 without any log(0) on the way
    first, last = history[0]["reconstruction"], history[-1]["reconstruction"]
    assert 0.0 <= last < first / 50


def test_data_scaled_by_a_thousand_keeps_the_gaussian_step_finite():
    x = make_spiral(n_per_arm=40, seed=0).x_train * np.float32(1e3)
    config = GMVAEConfig(input_shape=(2,), arch="fc", likelihood="gaussian", K=4, Dx=2, Dw=2, hidden=16,
                         alpha=2.0)
    history = train_checked(config, x, lr=1e-3, steps=36, batch=20)
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]


@pytest.mark.parametrize("experiment", ["spiral", "mnist_fc"])
def test_a_learning_rate_a_hundred_times_the_preset_stays_finite(experiment):
    s = preset(experiment)
    lr = 100 * s.lr
    if experiment == "spiral":
        x = make_spiral(n_per_arm=40, seed=0).x_train
        config = GMVAEConfig(input_shape=(2,), arch="fc", likelihood="gaussian", K=s.K, Dx=s.Dx, Dw=s.Dw,
                             hidden=32, alpha=s.alpha, eta=s.eta, mc=s.mc)
    else:
        rng = np.random.default_rng(0)
        x = (rng.random((64, 784)) > 0.8).astype(np.float32)      # sparse binary "digits"
        config = GMVAEConfig(input_shape=(784,), arch="fc", likelihood="bernoulli", K=s.K, Dx=8, Dw=4,
                             hidden=32, alpha=s.alpha, eta=s.eta)
    history = train_checked(config, x, lr=lr, steps=36, batch=16)
    assert len(history) == 36
