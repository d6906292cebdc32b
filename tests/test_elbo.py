"""Tests for gmvae_np.elbo: each ELBO term against an independent SciPy computation, and its gradients.

The KL terms are compared with numerical integration (scipy.integrate.quad) or a Monte Carlo estimate
from scipy.stats; p(z|x,w) with a direct Bayes-rule computation from scipy.stats densities; every term
is gradchecked in float64 on every backend.
"""
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

import autograd_lite as ag
from gmvae_np import elbo

from strategies import BACKENDS  # numpy, strict, and cupy (marked gpu; skipped without a GPU)

M, B, K, DX, DW, D = 2, 3, 4, 2, 3, 5


def t(a, backend, grad=False):
    return ag.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad, dtype="float64", backend=backend)


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def _setup(rng):
    """Random but fixed values for every quantity the terms take."""
    return dict(
        y_binary=(rng.uniform(size=(B, D)) < 0.5).astype(np.float64),
        y_real=rng.normal(size=(B, D)),
        logits=rng.normal(size=(M, B, D)),
        y_mean=rng.normal(size=(M, B, D)), y_logvar=rng.normal(scale=0.5, size=(M, B, D)),
        x_mean=rng.normal(size=(B, DX)), x_logvar=rng.normal(scale=0.5, size=(B, DX)),
        w_mean=rng.normal(size=(B, DW)), w_logvar=rng.normal(scale=0.5, size=(B, DW)),
        x=rng.normal(size=(M, B, DX)),
        prior_mean=rng.normal(size=(M, B, K, DX)), prior_logvar=rng.normal(scale=0.5, size=(M, B, K, DX)),
        qz_logits=rng.normal(size=(B, K)),
    )


def _kl_1d(mq, sq, mp, sp):
    q, p = stats.norm(mq, sq), stats.norm(mp, sp)
    value, _ = integrate.quad(lambda u: q.pdf(u) * (q.logpdf(u) - p.logpdf(u)), mq - 12 * sq, mq + 12 * sq,
                              limit=200)
    return value


# -- values against SciPy --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_reconstruction_bernoulli_is_minus_mean_log_pmf(backend, rng):
    v = _setup(rng)
    got = elbo.reconstruction(t(v["y_binary"], backend), {"logits": t(v["logits"], backend)}, "bernoulli")
    log_p = stats.bernoulli.logpmf(v["y_binary"][None], special.expit(v["logits"])).sum(-1)  # (M, B)
    np.testing.assert_allclose(got.numpy(), -log_p.mean(0), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reconstruction_gaussian_is_minus_mean_log_pdf(backend, rng):
    v = _setup(rng)
    decoded = {"mean": t(v["y_mean"], backend), "logvar": t(v["y_logvar"], backend)}
    got = elbo.reconstruction(t(v["y_real"], backend), decoded, "gaussian")
    log_p = stats.norm.logpdf(v["y_real"][None], v["y_mean"], np.exp(0.5 * v["y_logvar"])).sum(-1)
    np.testing.assert_allclose(got.numpy(), -log_p.mean(0), rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conditional_prior_matches_numerical_integration(backend, rng):
    v = _setup(rng)
    p = special.softmax(v["qz_logits"], -1)
    kl_k = elbo.component_kl(t(v["x_mean"], backend), t(v["x_logvar"], backend),
                             t(v["prior_mean"], backend), t(v["prior_logvar"], backend))
    got = elbo.conditional_prior(t(p, backend), kl_k).numpy()
    sq, sp = np.exp(0.5 * v["x_logvar"]), np.exp(0.5 * v["prior_logvar"])
    want = np.zeros(B)
    for b in range(B):
        for m in range(M):
            for k in range(K):
                kl = sum(_kl_1d(v["x_mean"][b, d], sq[b, d], v["prior_mean"][m, b, k, d], sp[m, b, k, d])
                         for d in range(DX))
                want[b] += p[b, k] * kl / M
    np.testing.assert_allclose(got, want, rtol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conditional_prior_with_per_sample_weights(backend, rng):
    """mi weights clusters per sample, (M, B, K): each sample's KLs take that sample's weights."""
    v = _setup(rng)
    p = special.softmax(rng.normal(size=(M, B, K)), -1)
    args = [t(v[k], backend) for k in ("x_mean", "x_logvar", "prior_mean", "prior_logvar")]
    got = elbo.conditional_prior(t(p, backend), elbo.component_kl(*args)).numpy()
    want = np.zeros(B)
    for m in range(M):  # one sample at a time, with M = 1 shapes
        one = [t(v["x_mean"], backend), t(v["x_logvar"], backend),
               t(v["prior_mean"][m:m + 1], backend), t(v["prior_logvar"][m:m + 1], backend)]
        want += elbo.conditional_prior(t(p[m], backend), elbo.component_kl(*one)).numpy() / M
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_w_prior_matches_monte_carlo(backend, rng):
    v = _setup(rng)
    got = elbo.w_prior(t(v["w_mean"], backend), t(v["w_logvar"], backend)).numpy()
    sd = np.exp(0.5 * v["w_logvar"])
    n = 200_000
    draws = v["w_mean"][None] + sd[None] * rng.standard_normal((n, B, DW))
    log_ratio = (stats.norm.logpdf(draws, v["w_mean"], sd) - stats.norm.logpdf(draws)).sum(-1)  # (n, B)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(n)
    assert np.all(np.abs(got - mc) < 5 * se + 1e-9), (got, mc, se)


@pytest.mark.parametrize("backend", BACKENDS)
def test_z_prior_is_kl_to_uniform(backend, rng):
    v = _setup(rng)
    log_q = ag.log_softmax(t(v["qz_logits"], backend), axis=-1)
    q = special.softmax(v["qz_logits"], -1)
    np.testing.assert_allclose(elbo.z_prior(log_q).numpy(), stats.entropy(q, np.full(K, 1 / K), axis=-1),
                               rtol=1e-10)
    # with a sample axis, averaged over it
    logits = rng.normal(size=(M, B, K))
    want = stats.entropy(special.softmax(logits, -1), np.full(K, 1 / K), axis=-1).mean(0)
    got = elbo.z_prior(ag.log_softmax(t(logits, backend), axis=-1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)


def _bayes_rule(x, prior_mean, prior_logvar):
    """p(z=k|x,w) = pi_k N(x|mu_k, S_k) / sum_j pi_j N(x|mu_j, S_j) from SciPy densities, pi uniform."""
    lead = x.shape[:-1]
    out = np.zeros(lead + (K,))
    for idx in np.ndindex(*lead):
        lik = np.array([stats.multivariate_normal(prior_mean[idx][k], np.diag(np.exp(prior_logvar[idx][k])))
                        .pdf(x[idx]) for k in range(K)])
        out[idx] = (lik / K) / np.sum(lik / K)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_z_posterior_is_bayes_rule(backend, rng):
    v = _setup(rng)
    got = elbo.z_posterior(t(v["x"], backend), t(v["prior_mean"], backend), t(v["prior_logvar"], backend))
    assert got.shape == (M, B, K)
    np.testing.assert_allclose(np.exp(got.numpy()), _bayes_rule(v["x"], v["prior_mean"], v["prior_logvar"]),
                               rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_z_posterior_far_from_every_component_is_finite_in_float32(backend):
    """Log-likelihoods of -1e5 would underflow exp() in a direct Bayes rule; log_softmax keeps them."""
    x = ag.tensor(np.full((1, 2), 300.0, np.float32), backend=backend)
    mean = ag.tensor(np.array([[[0.0, 0.0], [1.0, 1.0]]], np.float32), backend=backend)
    logvar = ag.tensor(np.full((1, 2, 2), -2.0, np.float32), backend=backend)
    p = np.exp(elbo.z_posterior(x, mean, logvar).numpy())
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[0.0, 1.0]], atol=1e-6)  # the nearer component takes it all


@pytest.mark.parametrize("backend", BACKENDS)
def test_consistency_violation_is_entropy_of_bayes_posterior(backend, rng):
    v = _setup(rng)
    log_p = elbo.z_posterior(t(v["x"], backend), t(v["prior_mean"], backend), t(v["prior_logvar"], backend))
    got = elbo.consistency_violation(log_p).numpy()
    want = stats.entropy(_bayes_rule(v["x"], v["prior_mean"], v["prior_logvar"]), axis=-1).mean(0)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # H = log K - KL(p || uniform)
    np.testing.assert_allclose(got, math.log(K) - elbo.z_prior(log_p).numpy(), rtol=1e-10)


# -- combining the terms ---------------------------------------------------------------------------

def _grad(x):
    return x.backend.to_numpy(x.grad)


def _terms(backend, rng):
    return {name: t(rng.uniform(0.1, 2.0, size=B), backend, grad=True) for name in elbo.TERMS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_objective_cv_weights_the_terms(backend, rng):
    terms = _terms(backend, rng)
    h = {k: v.numpy() for k, v in terms.items()}
    got = elbo.objective(terms, "cv", alpha=0.4, eta=2.0, lam=5.0).item()   # lam is not used by cv
    want = np.mean(h["reconstruction"] + h["conditional_prior"] + h["w_prior"] + 2.0 * h["z_prior"]
                   + 0.4 * h["consistency_violation"])
    assert got == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(elbo.negative_elbo(terms).numpy(),
                               h["reconstruction"] + h["conditional_prior"] + h["w_prior"] + h["z_prior"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_objective_mi_holds_the_z_prior_at_lambda(backend, rng):
    terms = _terms(backend, rng)
    h = {k: v.numpy() for k, v in terms.items()}
    rest = np.mean(h["reconstruction"] + h["conditional_prior"] + h["w_prior"])
    kl = h["z_prior"].mean()
    # above the threshold the KL is minimised as is; below it, lam replaces it and its gradient vanishes
    above = elbo.objective(terms, "mi", alpha=9.0, eta=9.0, lam=kl / 2)
    assert above.item() == pytest.approx(rest + kl, rel=1e-12)
    above.backward()
    np.testing.assert_allclose(_grad(terms["z_prior"]), np.full(B, 1.0 / B))
    terms = _terms(backend, np.random.default_rng(99))
    below = elbo.objective(terms, "mi", lam=kl + 1.0)
    assert below.item() == pytest.approx(rest + kl + 1.0, rel=1e-12)
    below.backward()
    np.testing.assert_allclose(_grad(terms["z_prior"]), np.zeros(B))
    np.testing.assert_allclose(_grad(terms["reconstruction"]), np.full(B, 1.0 / B))


@pytest.mark.parametrize("variant", elbo.VARIANTS)
def test_variant_weights_name_what_the_objective_reads(variant, rng):
    """VARIANT_WEIGHTS (which the command line uses to refuse a weight that would be ignored) is the
    truth: changing a listed weight changes the objective, changing any other leaves it as it was."""
    terms = _terms("numpy", rng)
    kl = float(terms["z_prior"].numpy().mean())
    base = dict(alpha=0.4, eta=2.0, lam=kl + 1.0, balance=3.0,      # lam above the KL, where mi reads it
                invariance=1.0 if variant == "cv" else 0.0, neighbour_weight=2.0 if variant == "cv" else 0.0,
                neighbour_code_weight=0.5 if variant == "cv" else 0.0)
    logits = [ag.log_softmax(t(rng.normal(size=(B, K)), "numpy"), axis=-1) for _ in range(3)]
    extra = dict(batch_kl=elbo.batch_balance(logits[0]), moved_agreement=elbo.assignment_agreement(*logits[:2]),
                 neighbour_agreement=elbo.assignment_agreement(logits[0], logits[2]),
                 neighbour_codes=ag.tensor(np.float64(1.7)))
    value = elbo.objective(terms, variant, **base, **extra).item()
    weights = sorted({k for names in elbo.VARIANT_WEIGHTS.values() for k in names})
    assert weights == ["alpha", "balance", "eta", "invariance", "lam", "neighbour_code_weight", "neighbour_weight"]
    for name in weights:
        if name in ("invariance", "neighbour_weight", "neighbour_code_weight") and variant == "mi":   # refused, not ignored: no q(z|y)
            with pytest.raises(ValueError, match=f"{name} > 0 needs the cv variant"):
                elbo.objective(terms, variant, **{**base, name: 0.5}, **extra)
            continue
        changed = elbo.objective(terms, variant, **{**base, name: base[name] + 0.5}, **extra).item()
        assert (changed != value) == (name in elbo.VARIANT_WEIGHTS[variant]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_balance_is_the_kl_of_the_batch_mean_from_uniform(backend, rng):
    """KL(p_bar || U) with p_bar the mean over the batch (and the samples, for (M, B, K) input)."""
    for shape in ((B, K), (M, B, K)):
        logits = rng.normal(scale=3.0, size=shape)
        p_bar = special.softmax(logits, -1).reshape(-1, K).mean(0)
        want = float(np.sum(p_bar * np.log(p_bar * K)))
        got = elbo.batch_balance(ag.log_softmax(t(logits, backend), axis=-1)).item()
        assert got == pytest.approx(want, rel=1e-10)


def test_batch_balance_tells_collapse_from_balance_where_the_z_prior_cannot(rng):
    """One-hot points cost the z prior log K each, balanced or not; the balance term is 0 for a batch
    that uses every cluster equally and log K for a batch that uses one."""
    big = 40.0
    balanced = np.full((K, K), -big) + 2 * big * np.eye(K)        # point i sure of cluster i
    collapsed = np.full((K, K), -big)
    collapsed[:, 0] = big                                          # every point sure of cluster 0
    z = {n: elbo.z_prior(ag.log_softmax(t(a, "numpy"), axis=-1)).numpy() for n, a in
         (("balanced", balanced), ("collapsed", collapsed))}
    np.testing.assert_allclose(z["balanced"], z["collapsed"], rtol=1e-12)
    np.testing.assert_allclose(z["balanced"], math.log(K), rtol=1e-12)
    bal = {n: elbo.batch_balance(ag.log_softmax(t(a, "numpy"), axis=-1)).item() for n, a in
           (("balanced", balanced), ("collapsed", collapsed))}
    assert bal["balanced"] == pytest.approx(0.0, abs=1e-12)
    assert bal["collapsed"] == pytest.approx(math.log(K), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_floor_is_the_hinge_on_each_clusters_batch_share(backend, rng):
    """sum_k max(0, log(f/K) - log p_bar_k), p_bar over the batch (and the samples), against NumPy."""
    for shape in ((B, K), (M, B, K)):
        for f in (0.3, 0.9, 1.0):
            logits = rng.normal(scale=3.0, size=shape)
            p_bar = special.softmax(logits, -1).reshape(-1, K).mean(0)
            want = float(np.sum(np.maximum(0.0, np.log(f / K) - np.log(p_bar))))
            got = elbo.batch_floor(ag.log_softmax(t(logits, backend), axis=-1), f).item()
            assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_batch_floor_leaves_unequal_clusters_alone_and_refuses_an_empty_one():
    """The floor is 0 for a batch whose clusters hold 1/2, 1/4 and 1/4 (the KL balance term is not), and
    grows as a cluster's share falls towards 0: it keeps clusters in use without asking for equal sizes."""
    big = 40.0
    def batch(counts):                       # one-hot points: counts[k] of them sure of cluster k
        rows = [np.where(np.arange(3) == k, big, -big) for k, c in enumerate(counts) for _ in range(c)]
        return ag.log_softmax(t(np.array(rows), "numpy"), axis=-1)
    unequal = batch([4, 2, 2])
    assert elbo.batch_floor(unequal, 0.3).item() == pytest.approx(0.0, abs=1e-12)
    assert elbo.batch_balance(unequal).item() > 0.05
    nearly_empty = [elbo.batch_floor(batch([60, 39, n]), 0.3).item() for n in (1, 0)]
    assert nearly_empty[0] == pytest.approx(math.log(0.1) - math.log(1 / 100), rel=1e-9)
    assert nearly_empty[1] > 30.0            # an empty cluster: the log of a vanishing share


def test_objective_adds_the_weighted_balance_term(rng):
    terms = _terms("numpy", rng)
    batch_kl = elbo.batch_balance(ag.log_softmax(t(rng.normal(size=(B, K)), "numpy"), axis=-1))
    for variant in elbo.VARIANTS:
        plain = elbo.objective(terms, variant, lam=0.1).item()
        got = elbo.objective(terms, variant, lam=0.1, balance=2.5, batch_kl=batch_kl).item()
        assert got == pytest.approx(plain + 2.5 * batch_kl.item(), rel=1e-12)
    with pytest.raises(ValueError, match="balance > 0 needs batch_kl"):
        elbo.objective(terms, "cv", balance=1.0)


def test_bad_variant_and_likelihood_are_refused(rng):
    terms = _terms("numpy", rng)
    with pytest.raises(ValueError, match="variant must be one of"):
        elbo.objective(terms, "vc")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        elbo.reconstruction(terms["w_prior"], {}, "poisson")


# -- gradients -------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_terms(backend, rng):
    v = _setup(rng)
    g = {k: t(a, backend, grad=True) for k, a in v.items()}
    y = t(v["y_binary"], backend)
    checks = {
        "reconstruction_bernoulli": (lambda lo: elbo.reconstruction(y, {"logits": lo}, "bernoulli"),
                                     [g["logits"]]),
        "reconstruction_gaussian": (lambda yr, mu, lv: elbo.reconstruction(yr, {"mean": mu, "logvar": lv},
                                                                           "gaussian"),
                                    [g["y_real"], g["y_mean"], g["y_logvar"]]),
        "conditional_prior": (lambda lq, *a: elbo.conditional_prior(ag.softmax(lq, axis=-1),
                                                                    elbo.component_kl(*a)),
                              [g["qz_logits"], g["x_mean"], g["x_logvar"], g["prior_mean"], g["prior_logvar"]]),
        "w_prior": (elbo.w_prior, [g["w_mean"], g["w_logvar"]]),
        "z_prior": (lambda lq: elbo.z_prior(ag.log_softmax(lq, axis=-1)), [g["qz_logits"]]),
        "z_posterior": (elbo.z_posterior, [g["x"], g["prior_mean"], g["prior_logvar"]]),
        "batch_balance": (lambda lq: elbo.batch_balance(ag.log_softmax(lq, axis=-1)), [g["qz_logits"]]),
        "batch_balance_samples": (lambda lq: elbo.batch_balance(ag.log_softmax(lq, axis=-1)),
                                  [t(rng.normal(size=(M, B, K)), backend, grad=True)]),
        # a floor of 0.9 / K with logits of scale 1: some clusters below it, some above (the hinge's both sides)
        "batch_floor": (lambda lq: elbo.batch_floor(ag.log_softmax(lq, axis=-1), 0.9), [g["qz_logits"]]),
        "consistency_violation": (lambda *a: elbo.consistency_violation(elbo.z_posterior(*a)),
                                  [g["x"], g["prior_mean"], g["prior_logvar"]]),
    }
    for name, (fn, inputs) in checks.items():
        report = ag.gradcheck(fn, *inputs, name=name)
        assert report.max_rel_error < 1e-5, report


# -- the exact mi term -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_prior_is_log_q_minus_log_mixture_density(backend, rng):
    v = _setup(rng)
    got = elbo.mixture_prior(*(t(v[k], backend) for k in ("x", "x_mean", "x_logvar", "prior_mean",
                                                            "prior_logvar"))).numpy()
    expected = np.zeros(B)
    for b in range(B):
        for m in range(M):
            x = v["x"][m, b]
            log_q = stats.multivariate_normal(v["x_mean"][b], np.diag(np.exp(v["x_logvar"][b]))).logpdf(x)
            mixture = np.mean([stats.multivariate_normal(v["prior_mean"][m, b, k],
                                                         np.diag(np.exp(v["prior_logvar"][m, b, k]))).pdf(x)
                               for k in range(K)])
            expected[b] += (log_q - np.log(mixture)) / M
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_closed_form_minus_exact_is_the_weighted_centred_log_density(rng):
    """Per sample, the paper's conditional_prior + z_prior minus mixture_prior is
    sum_k p(z=k|x,w) (KL_k - log q(x|y) + log N_k(x)), whose expectation over q(x|y) is
    sum_k Cov(p(z=k|x,w), log N_k(x)) >= 0 (docs/gmvae.md, section 3): an identity, checked exactly."""
    v = _setup(rng)
    x, xm, xl, pm, pl = (t(v[k], "numpy") for k in ("x", "x_mean", "x_logvar", "prior_mean", "prior_logvar"))
    log_p = elbo.z_posterior(x, pm, pl)
    closed = elbo.conditional_prior(ag.exp(log_p), elbo.component_kl(xm, xl, pm, pl)) + elbo.z_prior(log_p)
    exact = elbo.mixture_prior(x, xm, xl, pm, pl)
    mq, vq = v["x_mean"][None, :, None, :], np.exp(v["x_logvar"])[None, :, None, :]
    mp, vp = v["prior_mean"], np.exp(v["prior_logvar"])
    kl = (0.5 * (np.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1.0)).sum(-1)                # (M, B, K)
    x_k = v["x"][:, :, None, :]
    log_n = stats.norm(pm.numpy(), np.exp(pl.numpy() / 2)).logpdf(x_k).sum(-1)              # (M, B, K)
    log_q = stats.norm(v["x_mean"], np.exp(v["x_logvar"] / 2)).logpdf(v["x"]).sum(-1)[..., None]
    gap = (np.exp(log_p.numpy()) * (kl - log_q + log_n)).sum(-1).mean(0)
    np.testing.assert_allclose((closed - exact).numpy(), gap, rtol=1e-6, atol=1e-9)


def _importance_sampled_nll(model, y, noise):
    """-log (1/S) sum_s p(y, x_s, w_s) / q(x_s, w_s | y), z summed out: the importance-weighted bound
    with S = noise's leading axis samples, which tends to -log p(y) from above as S grows."""
    c = model.config
    S, B = noise["x"].shape[:2]
    with ag.no_grad():
        y = model._as_input(y)
        q = model._encode(y)
        x = ag.functional.gaussian_sample(q["x_mean"], q["x_logvar"], ag.tensor(noise["x"], dtype="float64"))
        w = ag.functional.gaussian_sample(q["w_mean"], q["w_logvar"], ag.tensor(noise["w"], dtype="float64"))
        pm, pl = model._prior(ag.reshape(w, (S * B, c.Dw)))
        pm, pl = ag.reshape(pm, (S, B, c.K, c.Dx)), ag.reshape(pl, (S, B, c.K, c.Dx))
        dec = model._decode(ag.reshape(x, (S * B, c.Dx)))
        log_lik = ag.functional.gaussian_log_prob(y, ag.reshape(dec["mean"], (S, B, -1)),
                                                  ag.reshape(dec["logvar"], (S, B, -1)))
        log_n = ag.functional.gaussian_log_prob(ag.reshape(x, (S, B, 1, c.Dx)), pm, pl)
        zero = w * 0.0
        log_weight = (log_lik + ag.logsumexp(log_n, axis=-1) - math.log(c.K)
                      + ag.functional.gaussian_log_prob(w, zero, zero)
                      - ag.functional.gaussian_log_prob(x, q["x_mean"], q["x_logvar"])
                      - ag.functional.gaussian_log_prob(w, q["w_mean"], q["w_logvar"]))
        return -ag.functional.log_mean_exp(log_weight, axis=0).numpy()


@pytest.mark.parametrize("variant", ["mi", "cv"])
def test_exact_mi_bound_lies_between_the_closed_form_and_minus_log_p(variant):
    """closed-form -ELBO >= marginal_negative_elbo >= importance-sampled -log p(y), point by point, on a
    small float64 model whose components are spread apart so that p(z|x,w) varies over q(x|y)."""
    from gmvae_np import GMVAE, GMVAEConfig

    S, n = 5000, 4
    config = GMVAEConfig(input_shape=(2,), likelihood="gaussian", K=3, Dx=2, Dw=2, hidden=8, variant=variant,
                         mc=S, dtype="float64")
    model = GMVAE(config, seed=0)
    model.eval()
    model.prior_mean.bias.data[...] = np.array([-2.0, 0.0, 2.0, 0.0, 0.0, 2.0])
    y = np.random.default_rng(1).normal(size=(n, 2))
    rng = np.random.default_rng(2)
    noise = {"x": rng.standard_normal((S, n, 2)), "w": rng.standard_normal((S, n, 2))}
    closed = model.loss(y, noise=noise).neg_elbo.numpy()
    exact = model.marginal_negative_elbo(y, noise=noise).numpy()
    rng = np.random.default_rng(3)
    nll = _importance_sampled_nll(model, y, {"x": rng.standard_normal((S, n, 2)),
                                             "w": rng.standard_normal((S, n, 2))})
    print(variant, "closed form", closed, "exact", exact, "-log p(y)", nll)
    # the gaps are tenths of a nat to nats here; the Monte Carlo error of each number is below 0.05
    assert np.all(closed > exact + 0.1), (closed, exact)
    assert np.all(exact > nll + 0.1), (exact, nll)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_mixture_prior(backend, rng):
    """mixture_prior is only reported, not trained on, but it is differentiable like every term: gradcheck
    passes with its own tolerances (some entries of this gradient are ~1e-5, so the check is absolute)."""
    v = _setup(rng)
    inputs = [t(v[k], backend, grad=True) for k in ("x", "x_mean", "x_logvar", "prior_mean", "prior_logvar")]
    report = ag.gradcheck(elbo.mixture_prior, *inputs, name="mixture_prior")
    assert report.max_abs_error < 1e-8, report
