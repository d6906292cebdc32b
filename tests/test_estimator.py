"""Tests for gmvae_np.estimator.GMVAEClustering: scikit-learn conventions, clustering quality, persistence.

The data are three well-separated Gaussian blobs in five dimensions: a GMVAE that cannot put them into
three clusters is broken, so the quality assertion is strict (adjusted Rand index >= 0.9).
scikit-learn's own conformance suite (check_estimator) runs on a tiny estimator in float64: in float32 a
latent mean may change in its 7th digit when the rows come in another order (the matrix products add in
another order), which the suite's order-invariance checks (rtol 1e-7) would count as a difference.
"""
import io
import json
import os
import pickle
import re
import subprocess
import sys

import joblib

import numpy as np
import pytest
from blas import one_blas_thread
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from gmvae_np import GMVAE, GMVAEClustering, GMVAEConfig
from gmvae_np.estimator import NotFittedError
from gmvae_np.restarts import restart_seed
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



FAST = dict(epochs=15, batch_size=30, hidden=64, Dx=4, Dw=2, lr=3e-3, random_state=0)


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
    # standardize="auto": the blobs' columns share a scale (their ranges within a factor of 4), so one scale
    np.testing.assert_allclose(model.scale_, np.full(5, np.sqrt(np.mean(X.std(axis=0) ** 2))))


def test_standardize_auto_z_scores_columns_of_different_units_only():
    from gmvae_np.data import SHARED_SCALE, scaling

    rng = np.random.default_rng(0)
    same = rng.normal(size=(200, 6)) * np.array([1.0, 2.0, 1.5, 3.0, 1.0, 2.5])    # ranges within a factor 4
    mean, scale = scaling(same, "auto")
    np.testing.assert_allclose(mean, same.mean(axis=0))
    np.testing.assert_allclose(scale, np.sqrt(np.mean(same.std(axis=0) ** 2)))
    units = same * np.array([1.0, 1.0, 1.0, 1000.0, 1000.0, 1000.0])              # half the columns in other units
    mean, scale = scaling(units, "auto")
    np.testing.assert_allclose(scale, units.std(axis=0))                             # each column z-scored
    ranges = np.ptp(units, axis=0)
    assert np.percentile(ranges, 90) > SHARED_SCALE * np.percentile(ranges, 10)
    constant = np.column_stack([same, np.full(200, 7.0)])
    np.testing.assert_allclose(scaling(constant, True)[1][-1], 1.0)                 # a constant column stays 0
    np.testing.assert_allclose(scaling(same, True)[1], same.std(axis=0))
    assert np.all(scaling(same, False)[1] == 1.0) and np.all(scaling(same, False)[0] == 0.0)


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
    copy = clone(model)
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
    (np.zeros((4, 0)), r"0 feature\(s\) \(shape=\(4, 0\)\)"),
])
def test_bad_X_is_refused_clearly(X, fragment):
    with pytest.raises(ValueError, match=fragment):
        GMVAEClustering(epochs=1).fit(X)


@pytest.mark.parametrize("params, fragment", [
    (dict(n_clusters=0), "n_clusters must be a positive whole number"),
    (dict(n_init=0), "n_init must be a positive whole number"),
    (dict(n_jobs=0), "n_jobs must be None, a positive whole number"),
    (dict(random_state=-1), "random_state must be None, a whole number >= 0"),
    (dict(dtype="float16"), "dtype must be one of float32, float64"),
    (dict(epochs=0), "epochs must be a positive whole number"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(variant="em"), "variant must be one of cv, mi"),
    (dict(likelihood="poisson"), "likelihood must be 'gaussian' or 'bernoulli'"),
    (dict(likelihood="bernoulli", standardize=True), "pass standardize=False"),
    (dict(likelihood="bernoulli", standardize=False), "needs values in \\[0, 1\\]"),
    (dict(backend="tpu"), "backend must be one of"),
    (dict(n_neighbors=-1), "n_neighbors must be a whole number >= 0"),
    (dict(n_neighbors=3, neighbor_weight=-1.0), "neighbor_weight must be a number >= 0"),
    (dict(n_neighbors=3, variant="mi"), "the mi variant has no q"),
    (dict(balance=-2.0), "balance must be a number >= 0"),
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
    with pytest.raises(ValueError, match="X has 4 features, but GMVAEClustering is expecting 5 features"):
        model.predict(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="n must be a positive whole number"):
        model.sample(0)


# -- scikit-learn's conformance suite, on a tiny estimator --------------------------------------------
TINY = dict(n_clusters=3, epochs=10, batch_size=10, hidden=16, Dx=2, Dw=2, lr=1e-2, random_state=0,
            dtype="float64")


@parametrize_with_checks([GMVAEClustering(**TINY), GMVAEClustering(**TINY, n_neighbors=5, neighbor_weight=5.0, balance=10.0)])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


def test_the_neighbour_term_is_trained_and_k_is_clipped_to_the_rows():
    X, y = blobs(n_per=20)
    plain = dict(balance=1.0, balance_floor=0.0, init="random", **FAST)      # no start: q(z|y) as initialised
    on = GMVAEClustering(n_clusters=3, n_neighbors=5, neighbor_weight=3.0, **plain).fit(X)
    off = GMVAEClustering(n_clusters=3, n_neighbors=0, **plain).fit(X)
    first_on, first_off = on.history_[0]["train"], off.history_[0]["train"]
    # the term adds 3 * agreement (> 0) to the objective; the ELBO's terms are no part of it
    assert first_on["objective"] - first_on["neg_elbo"] > first_off["objective"] - first_off["neg_elbo"] + 0.5
    small = GMVAEClustering(n_clusters=2, n_neighbors=10, epochs=2, batch_size=4, random_state=0).fit(X[:6])
    assert small.labels_.shape == (6,)                   # 10 neighbours of 6 rows: clipped to the other 5


def test_one_cluster_puts_every_row_in_it():
    X, _ = blobs(n_per=10)
    model = GMVAEClustering(n_clusters=1, **dict(FAST, epochs=2)).fit(X)
    assert np.array_equal(model.labels_, np.zeros(30, dtype=np.int64))
    assert np.array_equal(model.predict_proba(X), np.ones((30, 1)))


# -- random_state, n_init, n_jobs ---------------------------------------------------------------------
def test_random_state_kinds_and_restart_seeds():
    X, _ = blobs(n_per=10)
    small = dict(FAST, epochs=2)
    del small["random_state"]
    est = GMVAEClustering(n_clusters=3, random_state=7, n_init=3, **small).fit(X)
    # an int r: restart i trains with seed r + 1000 (i - 1), as the command line's --restarts (restart_seed)
    assert list(est.n_init_seeds_) == [restart_seed(7, i) for i in (1, 2, 3)] == [7, 1007, 2007]
    one = GMVAEClustering(n_clusters=3, random_state=int(est.n_init_seeds_[est.best_init_]), **small).fit(X)
    np.testing.assert_array_equal(one.predict_proba(X), est.predict_proba(X))   # the winner is that run
    a = GMVAEClustering(n_clusters=3, random_state=np.random.RandomState(3), n_init=2, **small).fit(X)
    b = GMVAEClustering(n_clusters=3, random_state=np.random.RandomState(3), n_init=2, **small).fit(X)
    assert list(a.n_init_seeds_) == list(b.n_init_seeds_)
    g = GMVAEClustering(n_clusters=3, random_state=np.random.default_rng(3), **small).fit(X)
    assert g.n_init_seeds_.shape == (1,) and 0 <= g.n_init_seeds_[0] < 2**31
    assert GMVAEClustering(n_clusters=3, **small).fit(X).n_init_seeds_.shape == (1,)   # None draws one


def test_n_init_keeps_the_restart_with_the_best_elbo_and_n_jobs_gives_the_same():
    X, _ = blobs(n_per=10)
    params = dict(FAST, epochs=3, n_init=3)
    serial = GMVAEClustering(n_clusters=3, **params).fit(X)
    scores = serial.n_init_scores_
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert serial.best_init_ == int(np.argmax(scores))
    assert serial.score(X) == pytest.approx(scores.max(), rel=1e-6)
    parallel = GMVAEClustering(n_clusters=3, n_jobs=2, **params).fit(X)    # two processes, one BLAS thread each
    np.testing.assert_array_equal(parallel.n_init_scores_, scores)
    np.testing.assert_array_equal(parallel.predict_proba(X), serial.predict_proba(X))


def test_n_init_screens_then_trains_the_kept_restart_on():
    """best_of_n, as the command line's --restarts: each restart trains a fifth of the epochs (at least 10),
    the kept one trains on, and training on is the run trained to the end at once."""
    X, _ = blobs(n_per=10)
    small = dict(FAST, epochs=12, init_epochs=5)     # the start's length fixed: "auto" follows the epochs
    del small["random_state"]
    est = GMVAEClustering(n_clusters=3, n_init=2, random_state=3, **small).fit(X)
    assert est.n_iter_ == 12 and [r["epoch"] for r in est.history_] == list(range(1, 13))
    seed = int(est.n_init_seeds_[est.best_init_])
    screened = GMVAEClustering(n_clusters=3, random_state=seed, **dict(small, epochs=10)).fit(X)
    assert est.n_init_scores_[est.best_init_] == screened.n_init_scores_[0]     # the criterion after 10 epochs
    whole = GMVAEClustering(n_clusters=3, random_state=seed, **small).fit(X)
    np.testing.assert_array_equal(whole.predict_proba(X), est.predict_proba(X))


def test_the_command_line_and_the_estimator_call_one_best_of_n(monkeypatch):
    from gmvae_np import estimator, restarts, series

    assert estimator.best_of_n is series.best_of_n is restarts.best_of_n
    calls = []

    def spy(settings, run_dir=None, **kwargs):
        calls.append((settings.restarts, run_dir))
        return restarts.best_of_n(settings, run_dir, **kwargs)

    monkeypatch.setattr(estimator, "best_of_n", spy)
    X, _ = blobs(n_per=10)
    GMVAEClustering(n_clusters=3, n_init=2, **dict(FAST, epochs=2)).fit(X)
    assert calls == [(2, None)]


def test_transform_gives_the_latent_means(fitted):
    model, X, y = fitted
    Z = model.transform(X)
    assert Z.shape == (180, 4) and Z.dtype == np.float64
    means = model.model_.encode(model._scaled(X))["x_mean"].numpy()
    np.testing.assert_allclose(Z, means)
    np.testing.assert_array_equal(model.fit_transform(X), model.transform(X))   # refit, same seed


def test_in_a_pipeline_and_a_grid_search_with_two_jobs(fitted):
    _, X, y = fitted
    pipe = make_pipeline(StandardScaler(), GMVAEClustering(n_clusters=3, standardize=False, **FAST))
    assert ari(pipe.fit_predict(X), y) >= 0.9
    X, y = blobs(n_per=20)
    search = GridSearchCV(GMVAEClustering(**dict(FAST, epochs=3)), {"n_clusters": [2, 3]}, cv=2, n_jobs=2)
    search.fit(X)
    assert search.best_params_["n_clusters"] in (2, 3)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


# -- pickling -------------------------------------------------------------------------------------------
def _round_trips(obj):
    yield pickle.loads(pickle.dumps(obj))
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    yield joblib.load(buffer)


def test_pickle_and_joblib_round_trips(fitted):
    model, X, _ = fitted
    for loaded in _round_trips(model):
        assert loaded.get_params() == model.get_params()
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
        assert loaded.score(X) == model.score(X)
        assert loaded.model_.backend is model.model_.backend    # a backend travels by its name
    for loaded in _round_trips(GMVAEClustering(n_clusters=3, **FAST)):
        np.testing.assert_array_equal(loaded.fit(X).predict(X), model.predict(X))


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_a_bare_model_pickles(backend):
    model = GMVAE(GMVAEConfig(input_shape=(3,), likelihood="gaussian", K=3, Dx=2, Dw=2, hidden=8),
                  backend=backend).eval()
    y = np.random.default_rng(0).normal(size=(6, 3))
    for loaded in _round_trips(model):
        assert loaded.backend is model.backend
        np.testing.assert_array_equal(loaded.predict_proba(y).numpy(), model.predict_proba(y).numpy())


def test_auto_epochs_aim_at_a_number_of_steps():
    from gmvae_np.presets import AUTO_STEPS, auto_epochs as _auto_epochs

    assert _auto_epochs(150, 64) == 1000                       # 2 steps an epoch: capped at 1,000 epochs
    assert _auto_epochs(1797, 64) == -(-AUTO_STEPS // 28)      # digits: 28 steps an epoch
    assert _auto_epochs(100_000, 64) == 10                     # at least 10 passes
    est = GMVAEClustering(n_clusters=2, batch_size=10, hidden=8, Dx=2, Dw=2)
    assert est._settings(20_000, 3, seed=0).epochs == 10 and est.epochs == "auto"


def test_the_array_api_check_too():
    """check_array_api_input is skipped unless SCIPY_ARRAY_API=1 was set before SciPy loaded, so the
    conformance suite above cannot run it; a fresh interpreter with the variable set does."""
    code = ("from sklearn.utils.estimator_checks import check_array_api_input\n"
            "from gmvae_np import GMVAEClustering\n"
            f"check_array_api_input('GMVAEClustering', GMVAEClustering(**{TINY!r}), array_namespace='numpy')\n")
    env = dict(os.environ, SCIPY_ARRAY_API="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# -- parameters and data that used to be accepted as nonsense ---------------------------------------------

def test_more_clusters_than_rows_is_refused():
    X = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.raises(ValueError, match="n_clusters=5 is more than the 3 samples of X"):
        GMVAEClustering(n_clusters=5, epochs=1).fit(X)
    assert GMVAEClustering(n_clusters=3, epochs=1, batch_size=3).fit(X).labels_.shape == (3,)


@pytest.mark.parametrize("name", ["standardize", "mutual_neighbors"])
@pytest.mark.parametrize("value", ["no", "False", 0, None])
def test_a_switch_must_be_true_or_false(name, value):
    X, _ = blobs(n_per=10)
    allowed = "True, False or 'auto'" if name == "standardize" else "True or False"
    with pytest.raises(ValueError, match=f"{name} must be {re.escape(allowed)}; got {re.escape(repr(value))}"):
        GMVAEClustering(n_clusters=3, epochs=1, **{name: value}).fit(X)


@pytest.mark.parametrize("weight", [-5, float("nan"), float("inf"), "5", True])
def test_neighbor_weight_is_checked_even_without_a_graph(weight):
    X, _ = blobs(n_per=10)
    with pytest.raises(ValueError, match="neighbor_weight must be a number >= 0"):
        GMVAEClustering(n_clusters=3, epochs=1, n_neighbors=0, neighbor_weight=weight).fit(X)


def test_values_too_large_for_the_model_are_refused_not_overflowed(recwarn):
    X, _ = blobs(n_per=10)
    with pytest.raises(ValueError, match="too large to standardise"):
        GMVAEClustering(n_clusters=3, epochs=1).fit(X * 1e300)
    with pytest.raises(ValueError, match="beyond what the model's float32 can hold"):
        GMVAEClustering(n_clusters=3, epochs=1, standardize=False).fit(X * 1e300)
    model = GMVAEClustering(n_clusters=3, epochs=1).fit(X)
    with pytest.raises(ValueError, match="after the fitted scaling"):
        model.predict(X * 1e300)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_diverged_fit_names_the_estimators_parameter_not_a_flag():
    X, _ = blobs(n_per=10)
    with np.errstate(all="ignore"), pytest.raises(RuntimeError) as info:   # Adam's steps overflow on purpose
        GMVAEClustering(n_clusters=3, epochs=3, lr=1e5).fit(X)
    text = str(info.value)
    assert "became" in text and "lower the learning rate (lr)" in text and "--lr" not in text, text


def test_complex_values_are_one_line():
    X, _ = blobs(n_per=10)
    with pytest.raises(ValueError) as info:
        GMVAEClustering(n_clusters=3, epochs=1).fit(X.astype(complex))
    assert "\n" not in str(info.value) and "split the real and imaginary parts" in str(info.value), str(info.value)


def test_table_settings_are_the_estimators_and_follow_the_data():
    """presets.table_settings: TABLE under the given values; auto epochs, pretraining and Fourier features
    from the data's size; the graph's defaults fall away without a graph, a given start stays."""
    from gmvae_np.presets import FOURIER_FEATURES, TABLE, auto_epochs, table_settings

    s = table_settings(150, 2)
    assert {k: s[k] for k in TABLE} == TABLE
    assert s["epochs"] == auto_epochs(150, 64) == 1000 and s["pretrain_epochs"] == 500
    assert s["fourier_features"] == FOURIER_FEATURES and table_settings(150, 4)["fourier_features"] == 0
    assert table_settings(5, 30)["batch_size"] == 5 and table_settings(5, 30)["neighbours"] == 4
    assert table_settings(150, 2, epochs=7)["pretrain_epochs"] == 3
    off = table_settings(150, 2, neighbours=0)
    assert off["neighbour_weight"] == 0.0 and off["start"] == "mixture"
    assert table_settings(150, 2, variant="mi")["start"] == "mixture"
    assert table_settings(150, 2, variant="mi", start="graph")["start"] == "graph"   # given: refused later
    est = GMVAEClustering()
    assert (est.n_clusters, est.hidden, est.balance, est.balance_floor, est.n_neighbors, est.neighbor_weight,
            est.init) == (TABLE["K"], TABLE["hidden"], TABLE["balance"], TABLE["balance_floor"],
                          TABLE["neighbours"], TABLE["neighbour_weight"], TABLE["start"])
    settings = GMVAEClustering(n_clusters=3, variant="mi")._settings(150, 2, seed=0)
    assert settings.neighbours == 0 and settings.start == "mixture"      # the defaults fell away
    with pytest.raises(ValueError, match="needs the cv variant"):
        GMVAEClustering(n_clusters=3, variant="mi", n_neighbors=5)._settings(150, 2, seed=0)   # given: refused


def test_the_command_line_custom_experiment_trains_as_the_estimator(tmp_path, capsys):
    """./run.sh custom --data X and GMVAEClustering on the same rows, seed and epochs: the same defaults
    (presets.table_settings), the same scaling, the same start, so the same training to the last bit."""
    from gmvae_np.cli import run

    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal((0.0, 0.0), 0.4, (60, 2)), rng.normal((4.0, 1.0), 0.4, (60, 2))])
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    assert run("custom", ["--data", str(tmp_path / "x.csv"), "--K", "2", "--seed", "5", "--epochs", "6",
                          "--no-plots", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    model = GMVAEClustering(n_clusters=2, random_state=5, epochs=6).fit(X)
    assert model.config_.fourier_features == 32 and model.config_.balance_floor == 0.1    # the table defaults
    assert [r["train"]["objective"] for r in records] == [h["train"]["objective"] for h in model.history_]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    settings = config.get("settings", config)
    assert settings["start"] == "graph" and settings["neighbours"] == 10 and settings["standardize"] == "auto"


def test_custom_scales_its_matrix_as_the_estimator_and_reads_old_runs_settings(tmp_path):
    from gmvae_np.data import load_matrix, scaling
    from gmvae_np.presets import Settings, SettingsError, preset

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * np.array([1.0, 2.0, 3.0])
    np.save(tmp_path / "x.npy", X)
    mean, scale = scaling(X, "auto")
    auto = load_matrix(tmp_path / "x.npy", standardize="auto")
    np.testing.assert_allclose(auto.x_train, ((X - mean) / scale).astype(np.float32))
    assert np.all(scale == scale[0]) and auto.extra["standardized"] == "auto"     # one unit: one scale
    old = dict(preset("custom", data=str(tmp_path / "x.npy")).to_dict(), standardize=True)
    assert Settings.from_dict(old).standardize == "yes"                            # a run stored before "auto"
    with pytest.raises(SettingsError, match="--standardize must be one of auto, yes, no; got 'maybe'"):
        preset("custom", data=str(tmp_path / "x.npy"), standardize="maybe")
