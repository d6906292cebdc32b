"""Tests for two parts of the MNIST recipe's toolbox: annealing (gmvae_np.schedule, the ``kl`` weight of
elbo.objective) and the start from a Gaussian mixture on pretrained codes (gmvae_np.pretrain).

Each is checked for its formula, its gradient against float64 central differences, and its contract
inside training: settings refused in one line, an annealed or pretrained run resumed from any point
ends bit-identical to an uninterrupted one, and a run without either computes exactly what it did
before they existed.
"""
import json
import math
import signal

import numpy as np
import pytest
from blas import one_blas_thread

import autograd_lite as ag
from gmvae_np import elbo, stops
from gmvae_np.model import GMVAE
from gmvae_np.presets import SettingsError
from gmvae_np.pretrain import (autoencoder_loss, autoencoder_parameters, codes, fit_code_mixture,
                               init_prior_from_mixture, pretrain_autoencoder)
from gmvae_np.schedule import annealed_weights, linear
from gmvae_np.train import TrainingInterrupted
from test_model import _data, _noise, gradcheck_objective, tiny_config
from test_train import assert_same_state, final_state, quiet, tiny


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with one_blas_thread():
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- the schedule ------------------------------------------------------------------------------------------

def test_linear_schedule_moves_from_start_to_end_then_stays():
    assert linear(0.2, 1.0, 0, 10) == pytest.approx(0.2)
    assert linear(0.2, 1.0, 5, 10) == pytest.approx(0.6)
    assert linear(5.0, 1.0, 5, 10) == pytest.approx(3.0)           # annealing down works alike
    assert linear(0.2, 1.0, 10, 10) == 1.0
    assert linear(0.2, 1.0, 99, 10) == 1.0
    assert linear(0.2, 1.0, 0, 0) == 1.0                           # no annealing: the end value from the start


def test_annealed_weights_follow_the_settings():
    assert annealed_weights(tiny(), 0, 12) is None                 # no annealing: the model's own weights
    s = tiny(anneal_epochs=2, kl_start=0.0)
    assert annealed_weights(s, 0, 12) == {"kl": 0.0}
    assert annealed_weights(s, 12, 12) == {"kl": pytest.approx(0.5)}
    assert annealed_weights(s, 24, 12) == {"kl": 1.0}
    s = tiny(anneal_epochs=1, eta_start=3.0, eta=1.0)
    assert annealed_weights(s, 6, 12) == {"kl": 1.0, "eta": pytest.approx(2.0)}


@pytest.mark.parametrize("changes, message", [
    (dict(kl_start=0.1), "--kl-start sets where an annealed weight starts: give the annealing's length too"),
    (dict(eta_start=3.0), "--eta-start sets where an annealed weight starts"),
    (dict(anneal_epochs=2, eta_start=3.0, variant="mi"), "--eta-start anneals the cv variant's z-prior weight"),
    (dict(anneal_epochs=2, kl_start=-0.5), "--kl-start must be a number >= 0"),
    (dict(anneal_epochs=2, eta_start=float("nan")), "--eta-start must be a number >= 0"),
    (dict(anneal_epochs=-1), "--anneal-epochs must be a whole number >= 0"),
    (dict(pretrain_epochs=1.5), "--pretrain-epochs must be a whole number >= 0"),
])
def test_bad_annealing_and_pretraining_settings_are_refused(changes, message):
    with pytest.raises(SettingsError, match=message):
        tiny(**changes)


# -- the kl weight in the objective ----------------------------------------------------------------------

def _terms(rng, B=5):
    return {name: ag.tensor(rng.uniform(0.1, 3.0, size=B), requires_grad=True) for name in elbo.TERMS}


def test_kl_weight_scales_the_three_kl_terms_of_either_variant(rng):
    terms = _terms(rng)
    h = {k: v.numpy() for k, v in terms.items()}
    got = elbo.objective(terms, "cv", alpha=0.4, eta=2.0, kl=0.3).item()
    want = np.mean(h["reconstruction"] + 0.3 * (h["conditional_prior"] + h["w_prior"] + 2.0 * h["z_prior"])
                   + 0.4 * h["consistency_violation"])
    assert got == pytest.approx(want, rel=1e-12)
    lam = h["z_prior"].mean() / 2                       # below the KL, so mi minimises the KL itself
    got = elbo.objective(terms, "mi", lam=lam, kl=0.3).item()
    want = (np.mean(h["reconstruction"] + 0.3 * (h["conditional_prior"] + h["w_prior"]))
            + 0.3 * h["z_prior"].mean())
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("variant", elbo.VARIANTS)
def test_kl_weight_one_is_the_objective_as_it_was_to_the_last_bit(variant, rng):
    """The same floats in the same order: a run without annealing trains exactly as before it existed."""
    terms = _terms(rng)
    t = terms
    if variant == "cv":
        before = ag.mean(t["reconstruction"] + t["conditional_prior"] + t["w_prior"] + 2.0 * t["z_prior"]
                         + 0.4 * t["consistency_violation"])
    else:
        z = ag.mean(t["z_prior"])
        before = ag.mean(t["reconstruction"] + t["conditional_prior"] + t["w_prior"]) + ag.where(z > 0.1, z, 0.1)
    assert elbo.objective(terms, variant, alpha=0.4, eta=2.0, lam=0.1, kl=1.0).item() == before.item()


@pytest.mark.parametrize("variant, mc", [("cv", 1), ("mi", 3)])
def test_gradcheck_annealed_objective(variant, mc):
    """The objective with annealed weights (kl < 1, and eta for cv), element by element in float64."""
    config = tiny_config(variant=variant, mc=mc, alpha=0.7, lam=0.01, balance=2.0)
    model = GMVAE(config, seed=4)
    weights = {"kl": 0.3, "eta": 2.5} if variant == "cv" else {"kl": 0.3}
    r = gradcheck_objective(model, _data(config, 4), _noise(config, 4), then="elementwise", weights=weights)
    assert r["comparisons"] > len(model.parameters())
    assert r["joint_rel_error"] < 1e-6


def test_loss_weights_change_the_objective_not_the_elbo():
    config = tiny_config(alpha=0.7)
    y, noise = _data(config, 6), _noise(config, 6)
    plain = GMVAE(config, seed=2).loss(y, noise=noise)
    warm = GMVAE(config, seed=2).loss(y, noise=noise, weights={"kl": 0.0})
    np.testing.assert_array_equal(plain.neg_elbo.numpy(), warm.neg_elbo.numpy())
    t = {k: v.numpy() for k, v in plain.terms.items()}
    assert warm.objective.item() == pytest.approx(np.mean(t["reconstruction"] + 0.7 * t["consistency_violation"]),
                                                  rel=1e-12)
    with pytest.raises(ValueError, match="unknown weight"):
        GMVAE(config, seed=2).loss(y, noise=noise, weights={"beta": 1.0})


# -- the start from pretrained codes --------------------------------------------------------------------

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gradcheck_autoencoder_loss(likelihood):
    """The pretraining loss against central differences, every element of every parameter it reaches."""
    config = tiny_config(likelihood=likelihood)
    model = GMVAE(config, seed=6)
    modules, reached = dict(model.named_modules()), {id(p) for p in autoencoder_parameters(model)}
    slots = [(modules[name.rpartition(".")[0]], name.rpartition(".")[2])
             for name, p in model.named_parameters() if id(p) in reached]
    originals = [getattr(m, a) for m, a in slots]
    y = ag.tensor(_data(config, 4))

    def loss(*params):
        for (module, attr), p in zip(slots, params):
            setattr(module, attr, p)
        return autoencoder_loss(model, y)

    inputs = [ag.tensor(p.data, requires_grad=True) for p in originals]
    try:
        report = ag.gradcheck(loss, *inputs, atol=1e-6, rtol=1e-6, elementwise_max=1_000)
    finally:
        for (module, attr), p in zip(slots, originals):
            setattr(module, attr, p)
    assert len(slots) == len(reached) > 6
    assert report.comparisons > len(slots)       # gradcheck raised if any comparison failed
    assert report.max_abs_error < 1e-6


def test_autoencoder_loss_is_the_reconstruction_at_the_mean_code():
    config = tiny_config(likelihood="gaussian")
    model = GMVAE(config, seed=1)
    y = _data(config, 5)
    x_mean = model.encode(y)["x_mean"]
    with ag.no_grad():
        decoded = {k: ag.reshape(v, (1, 5, 4)) for k, v in model._decode(x_mean).items()}
        want = np.mean(elbo.reconstruction(ag.tensor(y), decoded, "gaussian").numpy())
    assert autoencoder_loss(model, y).item() == pytest.approx(want, rel=1e-12)


def test_fit_code_mixture_finds_separated_groups():
    rng = np.random.default_rng(0)
    centres = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
    z = np.concatenate([c + rng.normal(scale=[0.5, 1.0], size=(300, 2)) for c in centres])
    gm = fit_code_mixture(z, 3, seed=1)
    order = np.argsort(gm.means_[:, 0] * 10 + gm.means_[:, 1])
    np.testing.assert_allclose(gm.means_[order], centres[np.argsort(centres[:, 0] * 10 + centres[:, 1])], atol=0.15)
    np.testing.assert_allclose(gm.covariances_, np.tile([0.25, 1.0], (3, 1)), rtol=0.25)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_the_prior_starts_as_the_mixture_whatever_w(backend):
    config = tiny_config(K=3, Dx=2)
    model = GMVAE(config, backend=backend, seed=2)
    means = np.array([[1.0, -2.0], [0.5, 0.0], [-3.0, 4.0]])
    variances = np.array([[0.1, 2.0], [1.0, 1.0], [1e-3, 30.0]])
    init_prior_from_mixture(model, means, variances)
    w = np.random.default_rng(3).normal(size=(7, config.Dw))
    mean, logvar = model.prior(w)
    np.testing.assert_allclose(mean.numpy(), np.broadcast_to(means, (7, 3, 2)), rtol=1e-12)
    np.testing.assert_allclose(np.exp(logvar.numpy()), np.broadcast_to(variances, (7, 3, 2)), rtol=1e-9)
    with pytest.raises(ValueError, match="positive variances of shape"):
        init_prior_from_mixture(model, means, -variances)


def test_pretraining_lowers_the_autoencoder_loss():
    config = tiny_config(likelihood="gaussian", hidden=16)
    model = GMVAE(config, seed=0)
    x = ag.tensor(_data(config, 64, seed=5)).data
    before = autoencoder_loss(model, x).item()
    rng = model.rng
    after = pretrain_autoencoder(model, x, epochs=30, batch_size=16, lr=1e-2, rng=rng)
    assert after < before - 1.5                    # nats per point, from 5.7 at the start
    assert codes(model, x).shape == (64, config.Dx)
    assert all(p.grad is None for p in model.parameters())


# -- inside training ------------------------------------------------------------------------------------

def test_pretrained_run_reports_its_start_and_differs_from_a_plain_one(tmp_path):
    pre = quiet(tiny(pretrain_epochs=2), tmp_path / "pre")
    pre.run()
    plain = quiet(tiny(), tmp_path / "plain")
    plain.run()
    # the first lines: the data set, then (pretrained only) the start; a new run never says "resuming"
    said = {name: t.out.getvalue().splitlines() for name, t in (("pre", pre), ("plain", plain))}
    assert said["pre"][1].startswith("pretrained the autoencoder for 2 epoch(s)")
    assert said["plain"][1].startswith("epoch   1/3")
    assert not any("resuming" in line for lines in said.values() for line in lines)
    report = json.loads((tmp_path / "pre" / "pretrain.json").read_text())
    assert report["epochs"] == 2 and report["converged"] is True
    assert set(report["eval"]) >= {"acc_paper", "nmi", "clusters_used"}
    assert math.isfinite(report["reconstruction"]) and report["seconds"] >= 0
    assert not (tmp_path / "plain" / "pretrain.json").exists()
    pre = (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()
    plain = (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()
    assert len(pre) == len(plain) == 3 and pre != plain


@pytest.mark.parametrize("changes", [dict(anneal_epochs=2, kl_start=0.0, eta_start=4.0), dict(pretrain_epochs=1)],
                         ids=["annealed", "pretrained"])
@pytest.mark.parametrize("stop_after", [0, 17])
def test_annealed_and_pretrained_runs_resume_bit_identically(tmp_path, changes, stop_after):
    assert_resumes_bit_identically(tiny(**changes), tmp_path, stop_after)


def assert_resumes_bit_identically(s, tmp_path, stop_after, **trainer_kw):
    """Train ``s`` whole into tmp_path/whole; train it into tmp_path/cut, stopped by a signal before step
    ``stop_after`` + 1 (0: before the first), then resumed; both must end byte-equal."""
    quiet(s, tmp_path / "whole", **trainer_kw).run()
    trainer = quiet(s, tmp_path / "cut", handle_signals=True, **trainer_kw)
    original_loss, seen = trainer.model.loss, []

    def loss(y, *a, **k):
        seen.append(1)
        if len(seen) == stop_after:
            stops.record(signal.SIGTERM)
        return original_loss(y, *a, **k)

    trainer.model.loss = loss
    if stop_after == 0:
        stops.record(signal.SIGINT)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    quiet(s, tmp_path / "cut", resume=True, **trainer_kw).run()
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert (cut / "metrics.jsonl").read_bytes() == (whole / "metrics.jsonl").read_bytes()
    assert_same_state(final_state(cut), final_state(whole))


def test_the_flags_parse_to_numbers_and_bad_values_are_one_line_errors(capsys):
    from gmvae_np.cli import build_parser, run

    args = build_parser("mnist_recipe").parse_args(["--anneal-epochs", "2", "--eta-start", "3", "--kl-start",
                                                    "0.5", "--pretrain-epochs", "1"])
    assert (args.anneal_epochs, args.eta_start, args.kl_start, args.pretrain_epochs) == (2, 3.0, 0.5, 1)
    assert isinstance(args.eta_start, float)
    assert run("spiral", ["--eta-start", "3", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--eta-start sets where an annealed weight starts" in err[0]


# -- the start from the neighbour graph's partition ----------------------------------------------------------

def test_gradcheck_assignment_loss():
    """-mean_b log q(z = t_b | y_b) against central differences, on the body and the q(z|y) head."""
    from gmvae_np.pretrain import assignment_loss

    config = tiny_config(likelihood="gaussian")
    model = GMVAE(config, seed=4)
    y = ag.tensor(_data(config, 5))
    targets = np.eye(config.K)[[0, 1, 2, 0, 1]]
    reached = model.encoder.parameters() + model.z_logits.parameters()
    modules = dict(model.named_modules())
    slots = [(modules[name.rpartition(".")[0]], name.rpartition(".")[2])
             for name, p in model.named_parameters() if any(p is r for r in reached)]
    originals = [getattr(m, a) for m, a in slots]

    def loss(*params):
        for (module, attr), p in zip(slots, params):
            setattr(module, attr, p)
        return assignment_loss(model, y, targets)

    inputs = [ag.tensor(p.data, requires_grad=True) for p in originals]
    try:
        report = ag.gradcheck(loss, *inputs, atol=1e-6, rtol=1e-6, elementwise_max=1_000)
        want = -np.mean(np.log(model.predict_proba(y).numpy())[np.arange(5), [0, 1, 2, 0, 1]])
        assert assignment_loss(model, y, targets).item() == pytest.approx(want, rel=1e-10)
    finally:
        for (module, attr), p in zip(slots, originals):
            setattr(module, attr, p)
    assert report.max_abs_error < 1e-6


def test_partition_moments_are_each_parts_mean_and_variance_with_a_floor():
    from gmvae_np.pretrain import partition_moments

    z = np.array([[0.0, 1.0], [2.0, 1.0], [10.0, -4.0], [5.0, 5.0]])
    means, variances = partition_moments(z, np.array([0, 0, 1, 3]), 4)
    np.testing.assert_allclose(means[0], [1.0, 1.0])
    np.testing.assert_allclose(variances[0], [1.0, 1e-3 * z.var(axis=0)[1]])   # the column with no spread: the floor
    np.testing.assert_allclose(means[2], z.mean(axis=0))                       # an empty part: all the codes
    np.testing.assert_allclose(variances[1], z.var(axis=0))                    # one code has no variance of its own
    np.testing.assert_allclose(variances[2], z.var(axis=0))


def test_a_graph_start_teaches_q_the_graphs_partition(tmp_path):
    """The spiral with the graph start: q(z|y) after pretraining agrees with the graph's own partition on
    most rows (a check that could fail: a random q(z|y) agrees on about 1/K of them), and the prior's
    components start at each part's mean code."""
    from gmvae_np.neighbours import spectral_partition
    from gmvae_np.pretrain import codes

    s = tiny(epochs=1, K=5, neighbours=8, neighbour_weight=5.0, balance=5.0, pretrain_epochs=30, start="graph")
    trainer = quiet(s, tmp_path / "run")
    report = trainer.pretrained
    assert report["start"] == "graph" and sum(report["sizes"]) == trainer.n_train and len(report["sizes"]) == 5
    parts = spectral_partition(trainer.neighbour_graph, 5, s.seed,
                               points=trainer.backend.to_numpy(trainer.x_train))
    assert np.bincount(parts, minlength=5).tolist() == report["sizes"]
    trainer.model.eval()
    q = trainer.model.predict_proba(ag.tensor(trainer.x_train)).numpy()
    assert np.mean(np.argmax(q, axis=1) == parts) > 0.8
    mean_codes = codes(trainer.model, trainer.x_train)
    bias = trainer.model.prior_mean.bias.numpy().reshape(5, -1)
    np.testing.assert_allclose(bias[0], mean_codes[parts == 0].mean(axis=0), rtol=1e-4, atol=1e-4)
    trainer.run()
    assert "the prior starts from the neighbour graph's partition" in trainer.out.getvalue()


@pytest.mark.parametrize("changes, message", [
    (dict(start="graph", pretrain_epochs=2), "--start graph starts from the neighbour graph's partition: give"),
    (dict(start="graph", neighbours=5, neighbour_weight=1.0), "--start graph is where pretraining leaves"),
    (dict(start="graph", neighbours=5, neighbour_weight=1.0, pretrain_epochs=2, variant="mi"),
     "--neighbour-weight needs the cv variant|--start graph teaches q"),
    (dict(start="spectral"), "--start must be one of mixture, graph"),
    (dict(balance_floor=1.5), "--balance-floor must be a number from 0 to 1"),
])
def test_bad_start_settings_are_refused(changes, message):
    with pytest.raises(SettingsError, match=message):
        tiny(**changes)
