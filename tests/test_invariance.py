"""Tests of the invariance term: moved copies of images (gmvae_np.augment), the term
elbo.assignment_agreement, and their place in the objective and in training.

Checked: the moves against a plain loop, on every backend the tests have; the term's formula and its
gradient, and the whole objective's, against float64 central differences; a model without the term
computing exactly what it did before it existed; settings refused in one line; and a run with the term
resumed from any point ending bit-identical to an uninterrupted one.
"""
import numpy as np
import pytest
from blas import one_blas_thread

import autograd_lite as ag
from autograd_lite.backend import get_backend
from gmvae_np import elbo
from gmvae_np.augment import draw_shifts, shift_images
from gmvae_np.data import Dataset
from gmvae_np.model import GMVAE, GMVAEConfig
from gmvae_np.presets import SettingsError, preset
from test_model import TINY, _noise, gradcheck_objective
from test_recipe_parts import assert_resumes_bit_identically
from test_train import quiet


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with one_blas_thread():
        yield


def _moved_by_loop(images, shifts):
    """The reference: every output pixel read one at a time."""
    B, C, H, W = images.shape
    out = np.zeros_like(images)
    for b in range(B):
        dy, dx = shifts[b]
        for h in range(H):
            for w in range(W):
                if 0 <= h - dy < H and 0 <= w - dx < W:
                    out[b, :, h, w] = images[b, :, h - dy, w - dx]
    return out


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_shift_images_moves_each_image_by_its_own_shift(backend):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(6, 2, 5, 7)).astype(np.float32)
    shifts = rng.integers(-3, 4, size=(6, 2))
    shifts[0] = 0                                          # no move: the image itself
    b = get_backend(backend)
    flat = ag.tensor(images.reshape(6, -1), backend=b)
    moved = shift_images(flat, b.asarray(shifts, dtype="int64"), (2, 5, 7)).numpy()
    assert moved.shape == (6, 70)
    np.testing.assert_array_equal(moved.reshape(images.shape), _moved_by_loop(images, shifts))
    np.testing.assert_array_equal(moved[0], images[0].ravel())


def test_draw_shifts_are_whole_numbers_spread_evenly_within_the_bound():
    d = get_backend("numpy").to_numpy(draw_shifts(ag.Generator("numpy", 5), 50_000, 2))
    assert d.shape == (50_000, 2) and d.min() == -2 and d.max() == 2
    counts = np.bincount(d.ravel() + 2) / d.size
    np.testing.assert_allclose(counts, 0.2, atol=0.01)


def test_assignment_agreement_is_minus_the_log_chance_of_one_cluster_for_both():
    rng = np.random.default_rng(1)
    a, b = (ag.log_softmax(ag.tensor(rng.normal(size=(5, 4))), axis=-1) for _ in range(2))
    p, q = np.exp(a.numpy()), np.exp(b.numpy())
    assert elbo.assignment_agreement(a, b).item() == pytest.approx(-np.mean(np.log(np.sum(p * q, axis=1))),
                                                                    rel=1e-12)
    uniform = ag.tensor(np.full((3, 4), -np.log(4.0)))
    assert elbo.assignment_agreement(uniform, uniform).item() == pytest.approx(np.log(4.0))   # no free lunch
    sure = ag.log_softmax(ag.tensor(np.array([[30.0, 0, 0, 0], [0, 0, 30.0, 0]])), axis=-1)
    assert elbo.assignment_agreement(sure, sure).item() == pytest.approx(0.0, abs=1e-10)
    other = ag.log_softmax(ag.tensor(np.array([[0, 30.0, 0, 0], [0, 0, 0, 30.0]])), axis=-1)
    assert elbo.assignment_agreement(sure, other).item() > 25.0


def test_gradcheck_assignment_agreement():
    rng = np.random.default_rng(2)
    logits = [ag.tensor(rng.normal(size=(6, 4)), dtype="float64", requires_grad=True) for _ in range(2)]
    report = ag.gradcheck(lambda x, y: elbo.assignment_agreement(ag.log_softmax(x, axis=-1),
                                                                    ag.log_softmax(y, axis=-1)), *logits)
    assert report.comparisons >= 2 * 24 and report.max_abs_error < 1e-8    # raises itself on a mismatch


def _image_config(**overrides):
    settings = dict(input_shape=(16,), image_shape=(1, 4, 4), dtype="float64", invariance=3.0, shift=1,
                    alpha=0.7, balance=2.0, **TINY)
    settings.update(overrides)
    return GMVAEConfig(**settings)


def _images(B, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, 16))


def _shifts(B, seed=3):
    return np.random.default_rng(seed).integers(-1, 2, size=(B, 2))


def test_gradcheck_objective_with_the_invariance_term():
    config = _image_config()
    model = GMVAE(config, seed=4)
    noise = {**_noise(config, 5), "shift": _shifts(5)}
    r = gradcheck_objective(model, _images(5), noise, then="elementwise")
    assert r["comparisons"] > len(model.parameters())
    assert r["joint_rel_error"] < 1e-6


def test_the_term_adds_its_weight_times_the_kl_and_nothing_else():
    config, y = _image_config(), _images(6)
    noise, shifts = _noise(_image_config(), 6), _shifts(6)
    off = GMVAE(_image_config(invariance=0.0), seed=2).loss(y, noise=noise)
    model = GMVAE(config, seed=2)
    on = model.loss(y, noise={**noise, "shift": shifts})
    np.testing.assert_array_equal(on.neg_elbo.numpy(), off.neg_elbo.numpy())
    moved = _moved_by_loop(y.reshape(6, 1, 4, 4), shifts).reshape(6, 16)
    log_q = ag.log_softmax(model._encode(ag.tensor(y))["z_logits"], axis=-1)
    log_moved = ag.log_softmax(model._encode(ag.tensor(moved))["z_logits"], axis=-1)
    agreement = elbo.assignment_agreement(log_q, log_moved).item()
    assert agreement > 0
    assert on.objective.item() == pytest.approx(off.objective.item() + 3.0 * agreement, rel=1e-12)


def test_a_model_without_the_term_draws_no_moves():
    """invariance = 0 computes and draws exactly what the model did before the term existed."""
    config = _image_config(invariance=0.0)
    model = GMVAE(config, seed=2)
    state = model.rng.get_state()
    model.loss(_images(4), noise=_noise(config, 4))
    assert model.rng.get_state() == state


@pytest.mark.parametrize("overrides, message", [
    (dict(variant="mi"), "invariance needs the cv variant"),
    (dict(image_shape=None), "invariance moves images"),
    (dict(image_shape=(1, 4, 5)), "invariance moves images"),
    (dict(shift=4), "shift must be a whole number of pixels from 1 to 3"),
    (dict(shift=0), "shift must be a whole number of pixels from 1 to 3"),
])
def test_bad_invariance_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _image_config(**overrides)


def test_bad_invariance_settings_are_one_line_errors(tmp_path):
    with pytest.raises(SettingsError, match="the mi variant has no q"):
        preset("mnist_recipe", invariance=1.0, variant="mi")
    with pytest.raises(SettingsError, match="--shift must be a positive whole number"):
        preset("mnist_recipe", invariance=1.0, shift=0)
    with pytest.raises(SettingsError, match="spiral has rows of 2 features, not images"):
        quiet(preset("spiral", invariance=1.0, plots=False), tmp_path / "run")


def _tiny_digits() -> Dataset:
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(120, 1, 6, 6)) > 0.6).astype(np.float32)
    return Dataset(name="tiny-digits", x_train=x[:100], y_train=np.arange(100) % 4, x_test=x[100:],
                   y_test=np.arange(20) % 4, likelihood="bernoulli").flat()


@pytest.mark.parametrize("stop_after", [0, 9])
def test_a_run_with_the_term_resumes_bit_identically(tmp_path, stop_after):
    s = preset("mnist_recipe", K=3, Dx=2, Dw=2, hidden=6, batch_size=20, epochs=3, restarts=1, invariance=2.0,
               shift=1, plots=False, log_every=0, seed=3)
    assert_resumes_bit_identically(s, tmp_path, stop_after, dataset=_tiny_digits())
    whole = tmp_path / "whole"
    plain = tmp_path / "plain"
    quiet(s.replace(invariance=0.0), plain, dataset=_tiny_digits()).run()
    assert (plain / "metrics.jsonl").read_bytes() != (whole / "metrics.jsonl").read_bytes()
