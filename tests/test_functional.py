"""Tests for autograd_lite.functional: values against SciPy, gradients against finite differences.

Every composite is checked twice: its value against an independent SciPy computation (densities from
scipy.stats, KL divergences by numerical integration or scipy.stats.entropy), and its backward against
float64 central differences (gradcheck), on every backend.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special, stats

import autograd_lite as ag
from autograd_lite import functional as F

from strategies import BACKENDS  # numpy, strict, and cupy (marked gpu; skipped without a GPU)


def t(a, backend, grad=False, dtype="float64"):
    return ag.tensor(np.asarray(a, dtype=dtype), requires_grad=grad, dtype=dtype, backend=backend)


def host(x):
    return x.numpy()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- values ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussian_log_prob_matches_scipy(backend, rng):
    x, mean, logvar = rng.normal(size=(3, 4, 5))
    got = host(F.gaussian_log_prob(t(x, backend), t(mean, backend), t(logvar, backend)))
    want = stats.norm.logpdf(x, loc=mean, scale=np.exp(0.5 * logvar)).sum(-1)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _kl_by_quadrature(mq, sq, mp, sp):
    """KL of two 1-D Gaussians by numerical integration of q log(q/p)."""
    q, p = stats.norm(mq, sq), stats.norm(mp, sp)
    f = lambda u: q.pdf(u) * (q.logpdf(u) - p.logpdf(u))  # noqa: E731
    value, _ = integrate.quad(f, mq - 12 * sq, mq + 12 * sq, limit=200)
    return value


@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussian_kl_matches_numerical_integration(backend, rng):
    mq, lq, mp, lp = rng.normal(size=(4, 2, 3))
    got = host(F.gaussian_kl(t(mq, backend), t(lq, backend), t(mp, backend), t(lp, backend)))
    want = np.array([sum(_kl_by_quadrature(mq[b, d], math.exp(lq[b, d] / 2), mp[b, d], math.exp(lp[b, d] / 2))
                         for d in range(3)) for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_standard_gaussian_kl_matches_numerical_integration(backend, rng):
    m, lv = rng.normal(size=(2, 3, 2))
    got = host(F.standard_gaussian_kl(t(m, backend), t(lv, backend)))
    want = np.array([sum(_kl_by_quadrature(m[b, d], math.exp(lv[b, d] / 2), 0.0, 1.0) for d in range(2))
                     for b in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-7)
    # and it is the general KL with the standard normal plugged in
    zero = t(np.zeros_like(m), backend)
    general = host(F.gaussian_kl(t(m, backend), t(lv, backend), zero, zero))
    np.testing.assert_allclose(got, general, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_log_prob_matches_scipy_on_binary_data(backend, rng):
    logits = rng.normal(scale=3.0, size=(4, 6))
    y = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float64)
    got = host(F.bernoulli_log_prob_logits(t(y, backend), t(logits, backend)))
    want = stats.bernoulli.logpmf(y, special.expit(logits)).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_log_prob_is_negative_cross_entropy_on_greyscale(backend, rng):
    logits = rng.normal(scale=3.0, size=(3, 5))
    y = rng.uniform(size=(3, 5))
    got = host(F.bernoulli_log_prob_logits(t(y, backend), t(logits, backend)))
    want = (y * special.log_expit(logits) + (1 - y) * special.log_expit(-logits)).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_log_prob_is_finite_for_huge_logits_in_float32(backend):
    logits = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=np.float32)
    y = np.array([[0.0, 1.0, 0.5, 0.0, 1.0]], dtype=np.float32)
    got = host(F.bernoulli_log_prob_logits(t(y, backend, dtype="float32"), t(logits, backend, dtype="float32")))
    # terms: 0, -100, -log 2, -100, 0
    np.testing.assert_allclose(got, [-200.0 - math.log(2.0)], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_kl_and_entropy_match_scipy(backend, rng):
    lq, lp = rng.normal(scale=2.0, size=(2, 3, 5))
    q, p = special.softmax(lq, -1), special.softmax(lp, -1)
    log_q = ag.log_softmax(t(lq, backend), axis=-1)
    log_p = ag.log_softmax(t(lp, backend), axis=-1)
    np.testing.assert_allclose(host(F.categorical_kl(log_q, log_p)), stats.entropy(q, p, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(host(F.entropy(log_q)), stats.entropy(q, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(host(F.entropy_from_logits(t(lq, backend))), stats.entropy(q, axis=-1),
                               rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_entropy_of_a_nearly_deterministic_categorical_is_finite(backend):
    logits = t([[200.0, -200.0, 0.0]], backend, dtype="float32")
    h = host(F.entropy_from_logits(logits))
    assert np.all(np.isfinite(h)) and abs(float(h[0])) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_mean_exp_matches_scipy_and_does_not_overflow(backend, rng):
    a = rng.normal(size=(4, 3)) * 10 + np.array([0.0, 800.0, -800.0])
    got = host(F.log_mean_exp(t(a, backend), axis=0))
    np.testing.assert_allclose(got, special.logsumexp(a, axis=0) - math.log(4), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gaussian_sample_has_the_right_moments(backend):
    b = ag.get_backend(backend)
    noise = ag.tensor(ag.Generator(b, 7).normal((20000, 2), dtype="float64"), backend=backend)
    s = host(F.gaussian_sample(t([1.0, -2.0], backend), t([math.log(4.0), math.log(0.25)], backend), noise))
    np.testing.assert_allclose(s.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(s.std(0), [2.0, 0.5], rtol=0.03)


@pytest.mark.parametrize("backend", BACKENDS)
def test_soft_clamp_is_bounded_and_near_identity_inside(backend):
    x = t([-1e6, -3.0, -0.01, 0.0, 0.01, 3.0, 1e6], backend)
    y = host(F.soft_clamp(x, 10.0))
    assert np.all(np.abs(y) <= 10.0)
    np.testing.assert_allclose(y[2:5], [-0.01, 0.0, 0.01], atol=1e-8)
    assert y[0] < y[1] < y[2] < y[4] < y[5] < y[6]


@given(st.integers(1, 4), st.integers(1, 5), st.floats(-8.0, 8.0))
def test_gaussian_kl_is_nonnegative_and_zero_at_equality(b, d, shift):
    rng = np.random.default_rng(b * 10 + d)
    m, lv = rng.normal(size=(2, b, d))
    kl_same = host(F.gaussian_kl(t(m, "numpy"), t(lv, "numpy"), t(m, "numpy"), t(lv, "numpy")))
    np.testing.assert_allclose(kl_same, 0.0, atol=1e-12)
    kl = host(F.gaussian_kl(t(m, "numpy"), t(lv, "numpy"), t(m + shift, "numpy"), t(lv + shift / 4, "numpy")))
    assert np.all(kl >= -1e-12)


# -- gradients -------------------------------------------------------------------------------------

def _inputs(backend, rng, *shapes, positive_first=False):
    out = [t(rng.normal(size=s), backend, grad=True) for s in shapes]
    if positive_first:
        out[0] = t(rng.uniform(0.0, 1.0, size=shapes[0]), backend, grad=True)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, fn, shapes", [
    ("gaussian_log_prob", F.gaussian_log_prob, [(3, 4), (3, 4), (3, 4)]),
    ("gaussian_log_prob_broadcast", F.gaussian_log_prob, [(2, 1, 4), (3, 4), (2, 3, 4)]),
    ("gaussian_kl", F.gaussian_kl, [(3, 4), (3, 4), (3, 4), (3, 4)]),
    ("gaussian_kl_broadcast", F.gaussian_kl, [(2, 1, 4), (2, 1, 4), (2, 3, 4), (2, 3, 4)]),
    ("standard_gaussian_kl", F.standard_gaussian_kl, [(3, 4), (3, 4)]),
    ("gaussian_sample", F.gaussian_sample, [(3, 4), (3, 4), (3, 4)]),
    ("bernoulli_log_prob_logits", F.bernoulli_log_prob_logits, [(3, 4), (3, 4)]),
    ("log_mean_exp", F.log_mean_exp, [(4, 3)]),
    ("entropy_from_logits", F.entropy_from_logits, [(3, 5)]),
])
def test_gradcheck(backend, name, fn, shapes, rng):
    inputs = _inputs(backend, rng, *shapes, positive_first=name.startswith("bernoulli"))
    report = ag.gradcheck(fn, *inputs, name=name)
    assert report.comparisons > 1 and report.max_rel_error < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_categorical(backend, rng):
    a, b = _inputs(backend, rng, (3, 5), (3, 5))

    def kl_of_logits(lq, lp):
        return F.categorical_kl(ag.log_softmax(lq, axis=-1), ag.log_softmax(lp, axis=-1))

    def entropy_of_logits(lq):
        return F.entropy(ag.log_softmax(lq, axis=-1))

    assert ag.gradcheck(kl_of_logits, a, b).max_rel_error < 1e-5
    assert ag.gradcheck(entropy_of_logits, a).max_rel_error < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_soft_clamp(backend, rng):
    (x,) = _inputs(backend, rng, (4, 3))
    x = t(host(x) * 8.0, backend, grad=True)
    assert ag.gradcheck(lambda a: F.soft_clamp(a, 5.0), x).max_rel_error < 1e-5
