"""Tests for gmvae_np.model: configuration checks, gradients of the full objective, backends, training.

The central test gradchecks the whole training objective, model.loss(y, noise=fixed).objective, in
float64 with respect to every parameter tensor of the model (and the input), for each variant (cv, mi) and
architecture (FC Bernoulli, FC Gaussian, conv Bernoulli), with M = 1 and M = 3 Monte Carlo samples. Run
``pytest tests/test_model.py -s -k gradcheck`` to print each case's max_rel_error.
"""
import json
import math

import numpy as np
import pytest

import autograd_lite as ag
from autograd_lite import functional as F
from gmvae_np import elbo
from gmvae_np.model import GMVAE, LOGVAR_LIMIT, GMVAEConfig
from gmvae_np.optim import Adam

from strategies import BACKENDS, OTHER_THAN_NUMPY  # numpy, strict, and cupy (marked gpu; skipped without a GPU)

TINY = dict(K=3, Dx=2, Dw=2, hidden=3)


def tiny_config(**overrides):
    settings = dict(input_shape=(4,), dtype="float64", **TINY)
    settings.update(overrides)
    return GMVAEConfig(**settings)


def _data(config, B, seed=0):
    rng = np.random.default_rng(seed)
    shape = (B,) + config.input_shape
    if config.likelihood == "bernoulli":
        return rng.uniform(0.05, 0.95, size=shape)
    return rng.normal(size=shape)


def _noise(config, B, seed=1):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((config.mc, B, config.Dx)),
            "w": rng.standard_normal((config.mc, B, config.Dw))}


# -- configuration ---------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (dict(arch="mlp"), "arch must be one of 'fc', 'conv'"),
    (dict(likelihood="poisson"), "likelihood must be one of 'bernoulli', 'gaussian'"),
    (dict(variant="both"), "variant must be one of 'cv', 'mi'"),
    (dict(dtype="float16"), "dtype must be one of 'float32', 'float64'"),
    (dict(K=1), "K must be an int >= 2"),
    (dict(K=2.5), "K must be an int >= 2"),
    (dict(Dx=0), "Dx must be a positive int"),
    (dict(Dw=-3), "Dw must be a positive int"),
    (dict(hidden=True), "hidden must be a positive int"),
    (dict(mc=0), "mc must be a positive int"),
    (dict(alpha=-1.0), "alpha must be a finite number >= 0"),
    (dict(eta=float("nan")), "eta must be a finite number >= 0"),
    (dict(lam="0.5"), "lam must be a finite number >= 0"),
    (dict(input_shape=()), "input_shape must be a non-empty tuple of positive ints"),
    (dict(input_shape=(28, 0)), "input_shape must be a non-empty tuple of positive ints"),
    (dict(arch="conv", input_shape=(784,)), "arch='conv' needs input_shape \\(1, 28, 28\\)"),
])
def test_config_refuses_bad_settings_naming_the_field(overrides, message):
    settings = dict(input_shape=(4,))
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        GMVAEConfig(**settings)


def test_config_round_trips_through_json():
    c = GMVAEConfig(input_shape=(1, 28, 28), arch="conv", K=14, variant="mi", lam=0.5, mc=2, alpha=0.4)
    back = GMVAEConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c and back.input_shape == (1, 28, 28) and isinstance(back.alpha, float)


def test_config_from_dict_refuses_unknown_settings():
    with pytest.raises(ValueError, match="unknown setting\\(s\\) Kx"):
        GMVAEConfig.from_dict({"input_shape": [4], "Kx": 3})


def test_model_accepts_a_config_dict_and_refuses_other_things():
    m = GMVAE(tiny_config().to_dict())
    assert m.config == tiny_config()
    with pytest.raises(TypeError, match="needs a GMVAEConfig"):
        GMVAE("fc")


# -- architecture ------------------------------------------------------------------------------------

def test_fc_architecture_follows_the_original():
    c = GMVAEConfig(input_shape=(784,), K=14, Dx=200, Dw=150, hidden=1000, variant="cv")
    shapes = {name: p.shape for name, p in GMVAE(c).named_parameters()}
    assert shapes["encoder.1.weight"] == (784, 1000) and shapes["encoder.4.weight"] == (1000, 1000)
    assert shapes["x_mean.weight"] == shapes["x_logvar.weight"] == (1000, 200)
    assert shapes["w_mean.weight"] == shapes["w_logvar.weight"] == (1000, 150)
    assert shapes["z_logits.weight"] == (1000, 14)
    assert shapes["prior_body.0.weight"] == (150, 1000)
    assert shapes["prior_mean.weight"] == shapes["prior_logvar.weight"] == (1000, 14 * 200)
    assert shapes["decoder.0.weight"] == (200, 1000) and shapes["decoder.4.weight"] == (1000, 784)
    # mi has no q(z|y) head; a Gaussian decoder outputs a mean and a log-variance per value
    mi = GMVAE(GMVAEConfig(input_shape=(10,), variant="mi", likelihood="gaussian", hidden=8, Dx=2, Dw=2))
    names = dict(mi.named_parameters())
    assert "z_logits.weight" not in names and names["decoder.4.weight"].shape == (8, 20)


def test_parameters_are_seeded_and_of_the_config_dtype():
    a, b = GMVAE(tiny_config(), seed=3), GMVAE(tiny_config(), seed=3)
    c = GMVAE(tiny_config(), seed=4)
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert p.dtype == ag.get_backend("numpy").xp.float64
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert any(not np.array_equal(p.numpy(), r.numpy()) for p, r in zip(a.parameters(), c.parameters()))


# -- the full objective, gradchecked -----------------------------------------------------------------

def _parameter_slots(model):
    """(owning module, attribute) of each parameter, so a test can substitute the tensors it checks."""
    modules = dict(model.named_modules())
    slots = []
    for name, _ in model.named_parameters():
        prefix, _, attr = name.rpartition(".")
        slots.append((modules[prefix], attr))
    return slots


def gradcheck_objective(model, y, noise, *, then: str | None, weights: dict | None = None) -> dict:
    """Gradcheck model.loss(y, noise, weights).objective w.r.t. every parameter tensor and y (raises on failure).

    First one check along a random direction through all tensors at once (its relative error is the
    headline number); then, if asked, either every element of every tensor (then="elementwise", for tiny
    models) or one random-direction check per tensor (then="per_tensor"), so a wrong gradient in a small
    tensor cannot hide behind the large ones. For those the absolute error is
    reported: some gradients are exactly zero (a bias just before BatchNorm is cancelled by the batch
    mean), where a relative error only measures rounding noise.

    Directional checks use directions of unit norm per tensor: gradcheck steps each element by eps times
    a standard normal, so each tensor enters as scale * t' with scale = 1/sqrt(size). Without that a
    step across a 20,000-element conv weight moves pre-activations by ~1e-4 and crosses ReLU kinks,
    where central differences are wrong, not the gradient (see the retry in ``check``).
    """
    slots = _parameter_slots(model)
    originals = [getattr(m, a) for m, a in slots]
    b = model.backend
    tensors = [ag.tensor(y, dtype="float64", backend=b)] + [ag.tensor(p.data, backend=b) for p in originals]

    def check(which, unit_norm: bool, **kw):
        scales = [1.0 / math.sqrt(math.prod(t.shape)) if unit_norm else 1.0 for t in tensors]

        def objective(y, *params):
            for (module, attr), p, s in zip(slots, params, scales[1:]):
                setattr(module, attr, p * s if s != 1.0 else p)
            return model.loss(y * scales[0] if scales[0] != 1.0 else y, noise=noise, weights=weights).objective

        inputs = [ag.tensor(t.data / s, requires_grad=(i in which), backend=b)
                  for i, (t, s) in enumerate(zip(tensors, scales))]
        try:
            return ag.gradcheck(objective, *inputs, atol=1e-6, rtol=1e-6, **kw)
        except ag.GradcheckError:
            if not unit_norm:
                raise
            # A ReLU network is piecewise smooth: the step may still cross a kink, where the central
            # difference (not the gradient) is wrong. A wrong gradient fails along every direction, a kink
            # only along an unlucky one: two fresh directions must both pass.
            seed = kw.pop("seed", 0)
            reports = [ag.gradcheck(objective, *inputs, atol=1e-6, rtol=1e-6, seed=seed + 1000 * k, **kw)
                       for k in (1, 2)]
            return max(reports, key=lambda r: r.max_abs_error)

    everything = set(range(len(tensors)))
    try:
        joint = check(everything, True, elementwise_max=0)
        reports = []
        if then == "per_tensor":
            reports = [check({i}, True, elementwise_max=0, seed=i + 1) for i in everything]
        elif then == "elementwise":
            reports = [check(everything, False, elementwise_max=max(math.prod(t.shape) for t in tensors))]
    finally:
        for (module, attr), p in zip(slots, originals):
            setattr(module, attr, p)
    return {"joint_rel_error": joint.max_rel_error,
            "max_abs_error": max(r.max_abs_error for r in reports + [joint]),
            "comparisons": joint.comparisons + sum(r.comparisons for r in reports)}


GRADCHECK_CASES = [
    (variant, arch, likelihood, mc)
    for variant in ("cv", "mi")
    for arch, likelihood in (("fc", "bernoulli"), ("fc", "gaussian"), ("conv", "bernoulli"))
    for mc in (1, 3)
]


def _gradcheck_case(variant, arch, likelihood, mc, then):
    if arch == "conv":
        # conv widths are fixed by the architecture (16, 32, 64 channels); keep the batch and latents tiny
        config = GMVAEConfig(input_shape=(1, 28, 28), arch="conv", likelihood=likelihood, variant=variant,
                             mc=mc, K=2, Dx=2, Dw=2, hidden=4, dtype="float64", alpha=0.7, eta=1.3)
        B = 2
    else:
        config = tiny_config(likelihood=likelihood, variant=variant, mc=mc, alpha=0.7, eta=1.3)
        B = 4
    model = GMVAE(config, seed=11)
    n_params = len(model.parameters())
    r = gradcheck_objective(model, _data(config, B), _noise(config, B), then=then)
    how = "joint" + (f" + {then}" if then else "")
    print(f"\ngradcheck objective {variant}/{arch}-{likelihood}/M={mc} ({how}): {n_params} parameter tensors + y, "
          f"{r['comparisons']} comparisons, joint max_rel_error={r['joint_rel_error']:.2e}, "
          f"max_abs_error={r['max_abs_error']:.2e}")
    assert r["comparisons"] > (n_params if then else 0)
    assert r["joint_rel_error"] < 1e-6


@pytest.mark.parametrize("variant, arch, likelihood, mc", GRADCHECK_CASES,
                         ids=[f"{v}-{a}-{lk}-M{m}" for v, a, lk, m in GRADCHECK_CASES])
def test_gradcheck_full_objective(variant, arch, likelihood, mc):
    """Every parameter tensor and y along one joint direction, then the tiny FC models element by element
    and the conv models (whose widths are fixed) tensor by tensor."""
    _gradcheck_case(variant, arch, likelihood, mc, then="elementwise" if arch == "fc" else "per_tensor")


def test_gradcheck_mi_below_the_information_threshold():
    """With lam above the cluster KL the z prior is held at lam: the rest of the objective still checks."""
    config = tiny_config(variant="mi", lam=50.0)
    model = GMVAE(config, seed=5)
    out = model.loss(_data(config, 4), noise=_noise(config, 4))
    assert float(out.terms["z_prior"].numpy().mean()) < 50.0
    r = gradcheck_objective(model, _data(config, 4), _noise(config, 4), then="elementwise")
    assert r["joint_rel_error"] < 1e-6


@pytest.mark.parametrize("variant, mc", [("cv", 1), ("mi", 3)])
def test_gradcheck_with_the_balance_term(variant, mc):
    """The batch balance term couples the points of a batch: the objective still checks element by element."""
    config = tiny_config(variant=variant, mc=mc, balance=4.0, alpha=0.7, lam=0.01)
    model = GMVAE(config, seed=3)
    r = gradcheck_objective(model, _data(config, 4), _noise(config, 4), then="elementwise")
    assert r["comparisons"] > len(model.parameters())
    assert r["joint_rel_error"] < 1e-6


@pytest.mark.parametrize("variant", ["cv", "mi"])
def test_the_balance_term_adds_its_weighted_batch_kl(variant):
    plain, weighted = (tiny_config(variant=variant, lam=0.01, balance=b) for b in (0.0, 2.5))
    y, noise = _data(plain, 6), _noise(plain, 6)
    a, b = GMVAE(plain, seed=2).loss(y, noise=noise), GMVAE(weighted, seed=2).loss(y, noise=noise)
    model = GMVAE(plain, seed=2)
    q = model._encode(model._as_input(y))
    if variant == "cv":
        log_p = ag.log_softmax(q["z_logits"], axis=-1)
    else:   # p(z|x,w) at the injected noise, as the loss computes it
        x = F.gaussian_sample(q["x_mean"], q["x_logvar"], ag.tensor(noise["x"], dtype="float64"))
        w = F.gaussian_sample(q["w_mean"], q["w_logvar"], ag.tensor(noise["w"], dtype="float64"))
        mean, logvar = model._prior(ag.reshape(w, (6, plain.Dw)))
        log_p = elbo.z_posterior(x, ag.reshape(mean, (1, 6, plain.K, plain.Dx)),
                                 ag.reshape(logvar, (1, 6, plain.K, plain.Dx)))
    p_bar = np.exp(log_p.numpy()).reshape(-1, plain.K).mean(0)
    kl = float(np.sum(p_bar * np.log(p_bar * plain.K)))
    assert kl > 0
    assert b.objective.item() == pytest.approx(a.objective.item() + 2.5 * kl, rel=1e-10)
    for name in elbo.TERMS:      # the ELBO terms themselves do not change
        np.testing.assert_array_equal(a.terms[name].numpy(), b.terms[name].numpy())


def test_diagnostics_summarise_the_batch_assignments():
    config = tiny_config(variant="cv", K=3)
    model = GMVAE(config, seed=4)
    y = _data(config, 7)
    d = model.loss(y, noise=_noise(config, 7)).diagnostics
    p = model.predict_proba(y).numpy()
    assert d["max_q"].item() == pytest.approx(p.max(1).mean(), rel=1e-10)
    p_bar = p.mean(0)
    assert d["batch_entropy"].item() == pytest.approx(-np.sum(p_bar * np.log(p_bar)), rel=1e-10)
    np.testing.assert_array_equal(d["counts"].numpy(), np.bincount(p.argmax(1), minlength=3))
    q = model.encode(y)
    x_mean, x_var = q["x_mean"].numpy(), np.exp(q["x_logvar"].numpy())
    mean, logvar = (a.numpy() for a in model.prior(q["w_mean"].numpy() + np.exp(0.5 * q["w_logvar"].numpy())
                                                   * _noise(config, 7)["w"][0]))
    var = np.exp(logvar)
    kl = 0.5 * np.sum(logvar - np.log(x_var)[:, None] + (x_var[:, None] + (x_mean[:, None] - mean) ** 2) / var - 1,
                      axis=-1)                                                   # (B, K)
    assert d["kl_gap"].item() == pytest.approx(np.mean(kl.max(1) - kl.min(1)), rel=1e-8)
    assert not any(v.requires_grad for v in d.values())


# -- the loss's meaning --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["cv", "mi"])
def test_loss_terms_combine_as_documented(variant):
    config = tiny_config(variant=variant, alpha=0.4, eta=2.0, lam=0.01)
    model = GMVAE(config)
    out = model.loss(_data(config, 5), noise=_noise(config, 5))
    t = {k: v.numpy() for k, v in out.terms.items()}
    assert set(t) == set(elbo.TERMS) and all(v.shape == (5,) for v in t.values())
    assert not any(v.requires_grad for v in out.terms.values()) and not out.neg_elbo.requires_grad
    np.testing.assert_allclose(out.neg_elbo.numpy(), t["reconstruction"] + t["conditional_prior"]
                               + t["w_prior"] + t["z_prior"], rtol=1e-12)
    if variant == "cv":
        want = np.mean(t["reconstruction"] + t["conditional_prior"] + t["w_prior"] + 2.0 * t["z_prior"]
                       + 0.4 * t["consistency_violation"])
    else:
        want = np.mean(t["reconstruction"] + t["conditional_prior"] + t["w_prior"]) + max(0.01, t["z_prior"].mean())
    assert out.objective.item() == pytest.approx(want, rel=1e-12)
    assert np.all(t["w_prior"] >= 0) and np.all(t["z_prior"] >= -1e-12) and np.all(t["conditional_prior"] >= 0)
    assert np.all(t["consistency_violation"] <= math.log(config.K) + 1e-12)


@pytest.mark.parametrize("variant", ["cv", "mi"])
def test_monte_carlo_samples_are_averaged(variant):
    """With M = 3 each term is the mean of the three M = 1 terms for the same noise (the original's M > 1
    crashed; its fixed version weighted the samples with the wrong rows)."""
    config3 = tiny_config(variant=variant, mc=3, likelihood="gaussian")
    config1 = tiny_config(variant=variant, mc=1, likelihood="gaussian")
    m3, m1 = GMVAE(config3, seed=2), GMVAE(config1, seed=2)
    y, noise = _data(config3, 4), _noise(config3, 4)
    out3 = m3.loss(y, noise=noise)
    singles = [m1.loss(y, noise={k: v[i:i + 1] for k, v in noise.items()}) for i in range(3)]
    for name in elbo.TERMS:
        want = np.mean([s.terms[name].numpy() for s in singles], axis=0)
        np.testing.assert_allclose(out3.terms[name].numpy(), want, rtol=1e-12, err_msg=name)


def test_injected_noise_makes_the_loss_deterministic_and_default_noise_uses_the_rng():
    config = tiny_config()
    model = GMVAE(config)
    y, noise = _data(config, 3), _noise(config, 3)
    a, b = model.loss(y, noise=noise).objective.item(), model.loss(y, noise=noise).objective.item()
    assert a == b
    model.rng.seed(5)
    c = model.loss(y).objective.item()
    model.rng.seed(5)
    d = model.loss(y).objective.item()
    e = model.loss(y).objective.item()
    assert c == d and c != e


def test_loss_refuses_bad_inputs_clearly():
    config = tiny_config()
    model = GMVAE(config)
    with pytest.raises(ValueError, match=r"y has shape \(3, 5\); this model expects \(batch, \*\(4,\)\)"):
        model.loss(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"noise\['w'\] has shape \(1, 3, 5\); expected"):
        model.loss(np.zeros((3, 4)), noise={"x": np.zeros((1, 3, 2)), "w": np.zeros((1, 3, 5))})
    with pytest.raises(ValueError, match="noise must be a dict with keys 'x' and 'w'"):
        model.loss(np.zeros((3, 4)), noise={"x": np.zeros((1, 3, 2))})
    with pytest.raises(ValueError, match="y is on backend 'strict' but the model is on 'numpy'"):
        model.loss(ag.tensor(np.zeros((3, 4)), backend="strict"))


def test_log_variances_stay_in_range_and_the_loss_stays_finite_in_float32():
    config = tiny_config(dtype="float32", likelihood="gaussian")
    model = GMVAE(config)
    for head in (model.x_logvar, model.w_logvar, model.prior_logvar, model.decoder[4]):
        head.bias.data = head.bias.data + 1e4          # raw log-variances far beyond float32's exp range
    out = model.loss(_data(config, 4).astype(np.float32))
    assert np.isfinite(out.objective.item()) and np.all(np.isfinite(out.neg_elbo.numpy()))
    q = model.encode(_data(config, 4))
    assert np.all(np.abs(q["x_logvar"].numpy()) <= LOGVAR_LIMIT)
    for head in (model.x_logvar, model.w_logvar, model.prior_logvar, model.decoder[4]):
        head.bias.data = head.bias.data - 2e4
    out = model.loss(_data(config, 4).astype(np.float32))
    assert np.isfinite(out.objective.item())
    out.objective.backward()
    assert all(np.all(np.isfinite(p.numpy())) for p in model.parameters())


# -- inference ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["cv", "mi"])
def test_inference_methods(backend, variant):
    config = tiny_config(variant=variant)
    model = GMVAE(config, backend=backend)
    model.eval()
    y = _data(config, 6)
    p = model.predict_proba(y)
    assert p.shape == (6, 3) and not p.requires_grad
    np.testing.assert_allclose(p.numpy().sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(y).numpy(), p.numpy().argmax(1))
    q = model.encode(y)
    assert sorted(q) == ["w_logvar", "w_mean", "x_logvar", "x_mean"] and q["x_mean"].shape == (6, 2)
    if variant == "mi":  # p(z | x = E[x], w = E[w]) by Bayes' rule
        mean, logvar = model.prior(q["w_mean"])
        want = np.exp(elbo.z_posterior(q["x_mean"], mean, logvar).numpy())
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-12)
    rec = model.reconstruct(y)
    assert rec.shape == (6, 4) and np.all((rec.numpy() > 0) & (rec.numpy() < 1))
    np.testing.assert_allclose(rec.numpy(), model.decode_mean(q["x_mean"]).numpy(), rtol=1e-12)
    assert model.sample(5).shape == (5, 4) and model.sample(2, k=2).shape == (2, 4)
    assert model.training is False  # inference left the mode alone
    model.train()
    model.predict_proba(y)
    assert model.training is True


def test_inference_refuses_wrong_shapes_clearly():
    model = GMVAE(tiny_config())
    with pytest.raises(ValueError, match=r"w has shape \(3, 5\); expected \(batch, Dw\) = \(batch, 2\)"):
        model.prior(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"x has shape \(2,\); expected \(batch, Dx\) = \(batch, 2\)"):
        model.decode_mean(np.zeros(2))
    with pytest.raises(ValueError, match=r"y has shape \(4,\); this model expects"):
        model.predict_proba(np.zeros(4))


def test_sample_from_one_cluster_uses_w_zero():
    config = tiny_config(likelihood="gaussian")
    model = GMVAE(config)
    model.eval()
    model.rng.seed(9)
    got = model.sample(4, k=1).numpy()
    eps = ag.Generator("numpy", 9).normal((4, config.Dx), dtype="float64")
    mean, logvar = model.prior(np.zeros((4, config.Dw)))
    x = mean.numpy()[:, 1] + np.exp(0.5 * logvar.numpy()[:, 1]) * eps
    np.testing.assert_allclose(got, model.decode_mean(x).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="k must be a cluster index in 0..2"):
        model.sample(2, k=3)
    with pytest.raises(ValueError, match="n must be a positive int"):
        model.sample(0)


def test_sample_draws_every_cluster():
    config = tiny_config(K=3, likelihood="gaussian")
    model = GMVAE(config)
    model.eval()
    # sample() picks z uniformly; with the prior means pulled far apart, each draw reveals its cluster
    model.prior_mean.bias.data = np.repeat(np.array([-100.0, 0.0, 100.0]), config.Dx)
    model.prior_mean.weight.data = np.zeros_like(model.prior_mean.weight.data)
    model.rng.seed(0)
    counts = np.zeros(3)
    w = np.zeros((1, config.Dw))
    centres = [model.decode_mean(model.prior(w)[0].numpy()[:, k]).numpy()[0] for k in range(3)]
    for s in model.sample(300).numpy():
        counts[np.argmin([np.abs(s - c).sum() for c in centres])] += 1
    assert np.all(counts > 60), counts


# -- backends ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", OTHER_THAN_NUMPY)
@pytest.mark.parametrize("arch, likelihood, variant", [("fc", "bernoulli", "cv"), ("fc", "gaussian", "mi"),
                                                       ("conv", "bernoulli", "mi")])
def test_other_backends_match_numpy_in_float64(backend, arch, likelihood, variant):
    if arch == "conv":
        config = GMVAEConfig(input_shape=(1, 28, 28), arch="conv", likelihood=likelihood, variant=variant,
                             mc=2, K=2, Dx=2, Dw=2, hidden=4, dtype="float64")
    else:
        config = tiny_config(likelihood=likelihood, variant=variant, mc=2)
    ref, other = GMVAE(config, backend="numpy", seed=1), GMVAE(config, backend=backend, seed=2)
    other.load_state_dict(ref.state_dict())
    y, noise = _data(config, 3), _noise(config, 3)
    a, b = ref.loss(y, noise=noise), other.loss(y, noise=noise)
    assert b.objective.backend.name == backend
    np.testing.assert_allclose(b.objective.numpy(), a.objective.numpy(), rtol=1e-10)
    for name in elbo.TERMS:
        np.testing.assert_allclose(b.terms[name].numpy(), a.terms[name].numpy(), rtol=1e-10, atol=1e-12)
    a.objective.backward()
    b.objective.backward()
    for (name, p), q in zip(ref.named_parameters(), other.parameters()):
        np.testing.assert_allclose(q.backend.to_numpy(q.grad), p.grad, rtol=1e-8, atol=1e-12, err_msg=name)
    ref.eval()
    other.eval()
    np.testing.assert_allclose(other.predict_proba(y).numpy(), ref.predict_proba(y).numpy(), rtol=1e-10)
    np.testing.assert_allclose(other.reconstruct(y).numpy(), ref.reconstruct(y).numpy(), rtol=1e-10)
    ref.rng.seed(4)
    other.rng.seed(4)
    np.testing.assert_allclose(other.sample(3).numpy(), ref.sample(3).numpy(), rtol=1e-10)


def test_the_model_draws_from_its_generator_and_it_follows_the_model_to_another_backend():
    """The noise comes from the generator the model was given (model.rng), or one passed to loss; after
    .to(), from the same stream on the new device. No process-wide generator is involved."""
    config = tiny_config()
    rng = ag.Generator("numpy", 3)
    model = GMVAE(config, generator=rng)
    assert model.rng is rng and GMVAE(config, seed=3).state_dict().keys() == model.state_dict().keys()
    for (name, p), q in zip(model.named_parameters(), GMVAE(config, seed=3).parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)   # same seed, same weights
    y = _data(config, 4)
    state = rng.get_state()
    a = model.loss(y).objective.item()
    rng.set_state(state)
    assert model.loss(y, rng=ag.Generator("numpy", 0)).objective.item() != a
    model.to("strict")
    assert model.rng.backend.name == "strict"
    model.rng.set_state(state)
    np.testing.assert_allclose(model.loss(y).objective.item(), a, rtol=1e-10)
    with pytest.raises(ValueError, match="rng must be an ag.Generator on the model's backend 'strict'"):
        model.loss(y, rng=ag.Generator("numpy", 0))
    with pytest.raises(ValueError, match="the generator draws on backend 'numpy'"):
        GMVAE(config, backend="strict", generator=ag.Generator("numpy", 0))


# -- training ------------------------------------------------------------------------------------------

def _mixture(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    labels = rng.integers(0, 3, size=n)
    return (centres[labels] + 0.3 * rng.standard_normal((n, 2))).astype(np.float32), labels


@pytest.mark.parametrize("variant", ["cv", "mi"])
def test_training_on_a_small_mixture_lowers_the_loss_without_nan(variant):
    data, _ = _mixture()
    config = GMVAEConfig(input_shape=(2,), likelihood="gaussian", variant=variant, K=3, Dx=2, Dw=2, hidden=16,
                         alpha=1.0, lam=0.1)
    model = GMVAE(config, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    model.rng.seed(0)
    losses = []
    for step in range(300):
        idx = model.rng.permutation(len(data))[:64]
        out = model.loss(data[idx])
        opt.zero_grad()
        out.objective.backward()
        opt.step()
        losses.append(float(out.neg_elbo.numpy().mean()))
    losses = np.array(losses)
    assert np.all(np.isfinite(losses))
    assert all(np.all(np.isfinite(p.numpy())) for p in model.parameters())
    first, last = losses[:30].mean(), losses[-30:].mean()
    assert last < first - 1.0, (first, last)
