"""Tests for gmvae_np.estimator.GMVAEClustering: scikit-learn conventions, clustering quality, persistence.

The data are three well-separated Gaussian blobs in five dimensions: a GMVAE that cannot put them into
three clusters is broken, so the quality assertion is strict (adjusted Rand index >= 0.9).
"""
import numpy as np
import pytest
from blas import one_blas_thread

from gmvae_np import GMVAEClustering
from gmvae_np.estimator import NotFittedError
from gmvae_np.metrics import ari
from strategies import BACKENDS


def blobs(n_per=60, d=5, k=3, spread=6.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    y = np.repeat(np.arange(k), n_per)
    return centers[y] + rng.normal(size=(k * n_per, d)), y


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Module scope, so module fixtures run under it too (see tests/blas.py)."""
    with one_blas_thread():
        yield



FAST = dict(epochs=15, batch_size=30, hidden=64, Dx=4, Dw=2, lr=3e-3, seed=0)


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    return GMVAEClustering(n_clusters=3, **FAST).fit(X), X, y


def test_fit_clusters_separated_blobs(fitted):
    model, X, y = fitted
    assert ari(model.labels_, y) >= 0.9
    assert model.n_features_in_ == 5 and model.n_iter_ == 15 and len(model.history_) == 15
    assert model.history_[-1]["train"]["neg_elbo"] < model.history_[0]["train"]["neg_elbo"]
    np.testing.assert_allclose(model.mean_, X.mean(axis=0))
    np.testing.assert_allclose(model.scale_, X.std(axis=0))


def test_predict_proba_and_predict_agree(fitted):
    model, X, _ = fitted
    p = model.predict_proba(X)
    assert p.shape == (180, 3) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(model.predict(X), np.argmax(p, axis=1))
    assert np.array_equal(model.labels_, model.predict(X))
    assert model.predict(X[:1]).shape == (1,)          # a single row works


def test_fit_returns_self_and_fit_predict_matches(fitted):
    _, X, _ = fitted
    est = GMVAEClustering(n_clusters=3, **FAST)
    assert est.fit(X) is est
    again = GMVAEClustering(n_clusters=3, **FAST).fit_predict(X)
    assert np.array_equal(again, est.labels_)          # same seed, same clusters


def test_params_protocol_and_sklearn_clone(fitted):
    model, _, _ = fitted
    params = model.get_params()
    assert params["n_clusters"] == 3 and params["epochs"] == 15 and params["backend"] == "numpy"
    est = GMVAEClustering()
    assert est.set_params(n_clusters=7, variant="mi") is est
    assert (est.n_clusters, est.variant) == (7, "mi")
    with pytest.raises(ValueError, match="no parameter 'clusters'"):
        est.set_params(clusters=3)
    base = pytest.importorskip("sklearn.base")
    copy = base.clone(model)
    assert copy.get_params() == params and not hasattr(copy, "model_")
    assert repr(GMVAEClustering(n_clusters=4)) == "GMVAEClustering(n_clusters=4)"


def test_score_is_the_mean_elbo_and_repeatable(fitted):
    model, X, _ = fitted
    s = model.score(X)
    assert np.isfinite(s) and s == model.score(X)
    assert model.score(X + 40.0) < s - 10.0              # far from the training data: a much lower bound


def test_sample_is_in_the_units_of_the_training_data():
    X, _ = blobs()
    X = X * 100.0 + 1000.0
    model = GMVAEClustering(n_clusters=3, **FAST).fit(X)
    draws = model.sample(300)
    assert draws.shape == (300, 5)
    assert np.array_equal(draws, model.sample(300))
    assert np.all(np.abs(draws.mean(axis=0) - X.mean(axis=0)) < 0.5 * X.std(axis=0))


def test_save_and_load_round_trip(fitted, tmp_path):
    model, X, _ = fitted
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = GMVAEClustering.load(path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.score(X) == model.score(X)
    on_strict = GMVAEClustering.load(path, backend="strict")
    assert on_strict.backend == "strict"
    np.testing.assert_allclose(on_strict.predict_proba(X), model.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends(backend):
    X, y = blobs(n_per=20)
    model = GMVAEClustering(n_clusters=3, backend=backend, **dict(FAST, epochs=3)).fit(X)
    p = model.predict_proba(X)
    assert p.shape == (60, 3) and np.all(np.isfinite(p))
    if backend == "strict":   # the same stream and arithmetic as NumPy
        reference = GMVAEClustering(n_clusters=3, **dict(FAST, epochs=3)).fit(X).predict_proba(X)
        np.testing.assert_allclose(p, reference, atol=1e-4)


def test_odd_but_valid_inputs():
    X, _ = blobs(n_per=5)
    model = GMVAEClustering(n_clusters=2, epochs=2, batch_size=1000, hidden=8, Dx=1, Dw=1).fit(X)
    assert model.labels_.shape == (15,)                       # batch_size clipped to the 15 rows
    ones = np.column_stack([X[:, 0], np.ones(15)])            # a constant column is harmless
    assert GMVAEClustering(n_clusters=2, epochs=1, hidden=8).fit(ones).predict(ones).shape == (15,)
    binary = (X > 0).astype(float)
    model = GMVAEClustering(n_clusters=2, epochs=2, hidden=8, likelihood="bernoulli", standardize=False)
    assert model.fit(binary).predict_proba(binary).shape == (15, 2)


@pytest.mark.parametrize("X, fragment", [
    (np.zeros(10), "expected a 2-D array"),
    (np.zeros((1, 3)), "at least 2 are needed"),
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN or infinite"),
    (np.array([["a", "b"], ["c", "d"]]), "must hold numbers"),
    (np.zeros((4, 0)), "no columns"),
])
def test_bad_X_is_refused_clearly(X, fragment):
    with pytest.raises(ValueError, match=fragment):
        GMVAEClustering(epochs=1).fit(X)


@pytest.mark.parametrize("params, fragment", [
    (dict(n_clusters=1), "n_clusters must be at least 2"),
    (dict(epochs=0), "epochs must be a positive whole number"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(variant="em"), "variant must be one of cv, mi"),
    (dict(likelihood="poisson"), "likelihood must be 'gaussian' or 'bernoulli'"),
    (dict(likelihood="bernoulli"), "pass standardize=False"),
    (dict(likelihood="bernoulli", standardize=False), "needs values in \\[0, 1\\]"),
    (dict(backend="tpu"), "backend must be one of"),
])
def test_bad_parameters_are_refused_at_fit(params, fragment):
    X, _ = blobs(n_per=5)
    est = GMVAEClustering(**params)                          # __init__ only stores
    with pytest.raises(ValueError, match=fragment):
        est.fit(X)


def test_use_before_fit_and_shape_mismatch(fitted):
    with pytest.raises(NotFittedError, match="call fit"):
        GMVAEClustering().predict(np.zeros((2, 2)))
    model, _, _ = fitted
    with pytest.raises(ValueError, match="X has 4 features but the model was fitted on 5"):
        model.predict(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="n must be a positive whole number"):
        model.sample(0)
