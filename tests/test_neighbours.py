"""Tests of the neighbour graph (gmvae_np.neighbours) and the neighbour term in the objective and in training.

Checked: the graph against a full sort of float64 distances, on every backend the tests have, including
its edge cases (k = n - 1, duplicate rows, a number of rows the groups do not divide); mutual neighbours
against their definition; PCA against the rows themselves; the deskew against its definition (a
slanted stroke comes out upright and centred, SciPy's affine resampling agrees inside the frame); the stored graph read back, shared by
restarts and refused when it belongs to other rows; the drawn neighbours; the term's value and the
whole objective's gradient against float64 central differences; settings refused in one line; and a run
with the term resumed from any point ending bit-identical to an uninterrupted one.
"""
import io
import json

import numpy as np
import pytest
from blas import one_blas_thread
from hypothesis import given, settings
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite.backend import get_backend
from gmvae_np import elbo
from gmvae_np.data import Dataset
from gmvae_np.model import GMVAE, GMVAEConfig
from gmvae_np.neighbours import (GraphError, NeighbourGraph, build_graph, contrast, deskew, embed, exact_knn,
                                 fingerprint, graph_for, graph_key, graph_key_of, mutual_graph, sample_neighbours)
from gmvae_np.presets import SettingsError, preset
from gmvae_np.rundir import RunDir
from test_model import TINY, _noise, gradcheck_objective
from test_recipe_parts import assert_resumes_bit_identically
from test_train import quiet


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with one_blas_thread():
        yield


def _by_sorting(z, k):
    """The reference: every distance in float64, each row sorted (by distance, then row number)."""
    z = np.asarray(z, dtype=np.float64)
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    n = len(z)
    order = np.lexsort((np.broadcast_to(np.arange(n), d.shape), d), axis=1)
    return order[:, :k]


# -- the graph ------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 90), dim=st.integers(1, 6), data=st.data())
def test_exact_knn_is_a_full_sort_of_the_distances(n, dim, data):
    k = data.draw(st.integers(1, n - 1))
    seed = data.draw(st.integers(0, 2 ** 16))
    z = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    block = data.draw(st.sampled_from([4, 64, 1 << 20]))   # one row per block up to all rows in one
    got = exact_knn(z, k, block_bytes=block * 4)
    np.testing.assert_array_equal(got, _by_sorting(z, k))


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_exact_knn_on_each_backend_with_groups_that_do_not_divide_the_rows(backend):
    z = np.random.default_rng(3).normal(size=(1003, 5)).astype(np.float32)   # 1003 = 64 * 15 + 43
    b = get_backend(backend)
    got = exact_knn(b.asarray(z), 7, backend=b, block_bytes=1 << 16)
    np.testing.assert_array_equal(got, _by_sorting(z, 7))


def test_duplicate_rows_are_each_others_nearest_and_never_their_own():
    z = np.repeat(np.arange(6, dtype=np.float32)[:, None] * 10, 4, axis=0)   # 6 points, each 4 times
    got = exact_knn(z, 3)
    for i, row in enumerate(got):
        assert i not in row
        assert set(row) == set(range(4 * (i // 4), 4 * (i // 4) + 4)) - {i}   # its three copies


def test_bad_k_is_refused():
    z = np.zeros((5, 2), dtype=np.float32)
    for k in (0, 5, -1):
        with pytest.raises(GraphError, match="from 1 to 4"):
            build_graph(z, k)


def test_mutual_graph_keeps_exactly_the_edges_seen_from_both_ends():
    z = np.random.default_rng(4).normal(size=(200, 3)).astype(np.float32)
    plain = exact_knn(z, 5)
    indices, counts = mutual_graph(plain)
    sets = [set(r) for r in plain]
    for i in range(200):
        mutual = [j for j in plain[i] if i in sets[j]]       # in distance order
        expected = mutual if mutual else [plain[i, 0]]       # none: the nearest stands in
        assert counts[i] == len(expected)
        assert list(indices[i, :counts[i]]) == expected
        assert set(indices[i, counts[i]:]) <= {indices[i, 0]}
    assert 1 <= counts.min() and counts.max() <= 5 and counts.mean() < 5


def test_pca_with_every_axis_keeps_the_distances_and_the_neighbours():
    x = np.random.default_rng(5).normal(size=(150, 6)) * np.array([5, 3, 2, 1, 0.5, 0.1])
    full = embed(x, "pca", dims=6)
    np.testing.assert_array_equal(exact_knn(full, 4), _by_sorting(x.astype(np.float32), 4))
    few = embed(x, "pca", dims=2)
    assert few.shape == (150, 2)
    np.testing.assert_allclose(np.var(few, axis=0), np.var(x, axis=0)[:2], rtol=0.2)   # the two widest axes


def _moments(images):
    """Centre of mass (r0, c0) and the row-column covariance of each image's ink (float64)."""
    images = np.asarray(images, dtype=np.float64)
    r = np.arange(images.shape[1])[None, :, None]
    c = np.arange(images.shape[2])[None, None, :]
    mass = images.sum(axis=(1, 2))
    r0 = (images * r).sum(axis=(1, 2)) / mass
    c0 = (images * c).sum(axis=(1, 2)) / mass
    cov = (images * (r - r0[:, None, None]) * (c - c0[:, None, None])).sum(axis=(1, 2)) / mass
    return r0, c0, cov


def _slanted_strokes(n=6, size=28, seed=0):
    """Thick strokes at random slants and places, drawn anti-aliased, well inside the frame."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    out = []
    for _ in range(n):
        slope, r0, c0 = rng.uniform(-0.5, 0.5), rng.uniform(11, 16), rng.uniform(10, 17)
        # distance of each pixel from the line c = c0 + slope (r - r0), for rows within 7 of r0
        d = np.abs(cols - c0 - slope * (rows - r0)) / np.sqrt(1 + slope ** 2)
        out.append(np.clip(2.0 - d, 0, 1) * (np.abs(rows - r0) <= 7))
    return np.array(out, dtype=np.float32)


def test_deskew_makes_a_slanted_stroke_upright_and_centred():
    strokes = _slanted_strokes()
    before = _moments(strokes)
    assert np.min(np.abs(before[2])) > 0.5                      # every stroke starts slanted
    r0, c0, cov = _moments(deskew(strokes))
    np.testing.assert_allclose(r0, 13.5, atol=0.05)             # the centre of mass moved to the middle
    np.testing.assert_allclose(c0, 13.5, atol=0.05)
    assert np.max(np.abs(cov)) < 0.05 * np.min(np.abs(before[2]))   # and no slant is left
    # mass is kept (the strokes stay inside the frame)
    np.testing.assert_allclose(np.asarray(deskew(strokes)).sum(axis=(1, 2)), strokes.sum(axis=(1, 2)), rtol=1e-4)


def test_deskew_is_scipys_affine_resampling_of_its_definition():
    from scipy import ndimage

    strokes = _slanted_strokes(seed=1)
    got = np.asarray(deskew(strokes, block_rows=4))             # blocks that do not divide the images
    for image, mine in zip(strokes, got):
        r0, c0, cov = (float(v[0]) for v in _moments(image[None]))
        rows = np.arange(28)[:, None]
        v_r = float((image * (rows - r0) ** 2).sum() / image.sum())
        shear = np.array([[1.0, 0.0], [cov / v_r, 1.0]])        # input = shear @ output + offset
        offset = np.array([r0, c0]) - shear @ np.array([13.5, 13.5])
        want = ndimage.affine_transform(image.astype(np.float64), shear, offset=offset, order=1)
        np.testing.assert_allclose(mine, want, atol=1e-4)


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_deskew_keeps_blank_and_flat_images_and_runs_on_each_backend(backend):
    b = get_backend(backend)
    images = np.zeros((3, 8, 8), dtype=np.float32)
    images[1, 3, 2:6] = 1.0                     # one row of ink: no slant to remove (v_r = 0), only a shift
    images[2] = images[1].T                     # one column of ink: upright already, only a shift
    got = np.asarray(b.to_numpy(deskew(b.asarray(images), backend=b)))
    np.testing.assert_array_equal(got[0], 0.0)
    assert np.all(np.isfinite(got))
    r0, c0, cov = _moments(got[1:])
    np.testing.assert_allclose(r0, 3.5, atol=1e-5)
    np.testing.assert_allclose(c0, 3.5, atol=1e-5)
    np.testing.assert_allclose(cov, 0.0, atol=1e-5)


def test_the_deskew_space_needs_single_channel_images():
    x = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    z = embed(x, "deskew", 5, image_shape=(1, 4, 4))
    assert z.shape == (30, 5)
    for shape in (None, (3, 4, 4), (4, 5)):
        with pytest.raises(GraphError, match="the deskew neighbour space needs single-channel images"):
            embed(x, "deskew", 5, image_shape=shape)
    with pytest.raises(GraphError, match="single-channel images"):
        graph_for(x, 3, "deskew", 5, False)            # refused before anything is built
    pca, straight = (graph_for(x, 3, space, 5, False, image_shape=(4, 4))[0] for space in ("pca", "deskew"))
    assert graph_key_of(pca) != graph_key_of(straight)            # two graphs, kept under two names


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_contrast_takes_brightness_out_and_square_roots_the_pixels(backend):
    """contrast(rows) = (sqrt(rows) - their mean) / their standard deviation, row by row: an image and a
    dimmer copy of it land on one point, a constant row on zeros."""
    b = get_backend(backend)
    rng = np.random.default_rng(3)
    image = rng.uniform(size=784).astype(np.float32)
    rows = np.stack([image, 0.25 * image, np.full(784, 0.3, np.float32), rng.uniform(size=784).astype(np.float32)])
    got = np.asarray(b.to_numpy(contrast(b.asarray(rows), backend=b)))
    root = np.sqrt(rows[3].astype(np.float64))
    np.testing.assert_allclose(got[3], (root - root.mean()) / root.std(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], got[0], atol=1e-5)
    np.testing.assert_array_equal(got[2], 0.0)
    np.testing.assert_allclose(got[[0, 1, 3]].mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(got[[0, 1, 3]].std(axis=1), 1.0, rtol=1e-5)


def test_the_contrast_space_makes_a_dimmer_copy_the_nearest_neighbour():
    """Ten images and their copies at 30 % brightness: in the pixels' PCA a dim copy sits among the other dim
    copies, in the contrast space beside its own image; negative rows are refused before anything is built."""
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(10, 36)).astype(np.float32)
    x = np.concatenate([images, 0.3 * images])
    own = np.concatenate([np.arange(10, 20), np.arange(10)])
    pca = build_graph(x, 1, "pca", 8, err=io.StringIO())
    straight = build_graph(x, 1, "contrast", 8, err=io.StringIO())
    assert np.mean(pca.indices[:, 0] == own) < 0.5
    np.testing.assert_array_equal(straight.indices[:, 0], own)
    assert straight.space == "contrast" and "contrast-normalised" in straight.describe()
    with pytest.raises(GraphError, match=r"the contrast neighbour space takes square roots, but these rows hold "
                                         r"values down to -1.*use --neighbour-space pca"):
        graph_for(x - 1.5, 1, "contrast", 8, False)


def test_agreement_counts_the_edges_within_a_class():
    g = NeighbourGraph(indices=np.array([[1, 2], [0, 0], [3, 1], [2, 2]]), counts=np.array([2, 1, 2, 1]), k=2,
                       space="raw", dims=1, mutual=True, fingerprint="")
    labels = np.array([0, 0, 1, 1])
    # edges: 0-1 same, 0-2 no, 1-0 same, 2-3 same, 2-1 no, 3-2 same -> 4 of 6
    assert g.agreement(labels) == pytest.approx(4 / 6)


def test_a_stored_graph_is_read_back_and_refused_for_other_rows(tmp_path):
    x = np.random.default_rng(6).normal(size=(80, 4)).astype(np.float32)
    store = RunDir(tmp_path)
    first, built = graph_for(x, 5, "pca", 3, False, store=store, labels=np.arange(80) % 2, err=io.StringIO())
    assert built and len(list(tmp_path.glob("neighbours-*.npz"))) == 1
    info = json.loads(next(tmp_path.glob("neighbours-*.json")).read_text())
    assert info["agreement"] == pytest.approx(first.agreement(np.arange(80) % 2))
    again, built = graph_for(x, 5, "pca", 3, False, store=store)
    assert not built
    np.testing.assert_array_equal(again.indices, first.indices)
    other, built = graph_for(x, 6, "pca", 3, False, store=store)           # other settings: another file
    assert built and len(list(tmp_path.glob("neighbours-*.npz"))) == 2
    with pytest.raises(GraphError, match="built on other data"):
        first.check_rows(x[::-1])
    # a graph file copied over the one of other rows is refused, not used
    y = x + 1
    graph_for(y, 5, "pca", 3, False, store=store)
    key_x, key_y = (graph_key(fingerprint(a), 5, "pca", 3, False) for a in (x, y))
    store.neighbours_path(key_y).write_bytes(store.neighbours_path(key_x).read_bytes())
    with pytest.raises(GraphError, match="built on other data"):
        graph_for(y, 5, "pca", 3, False, store=store)


def test_a_damaged_graph_file_is_one_error(tmp_path):
    x = np.random.default_rng(7).normal(size=(40, 3)).astype(np.float32)
    store = RunDir(tmp_path)
    graph, _ = graph_for(x, 3, "raw", 50, False, store=store)
    path = next(tmp_path.glob("neighbours-*.npz"))
    arrays = graph.arrays()
    arrays["indices"] = arrays["indices"] + 100                    # out of range
    np.savez(path, **arrays)
    with pytest.raises(GraphError, match="damaged"):
        graph_for(x, 3, "raw", 50, False, store=store)


def test_drawn_neighbours_come_from_each_rows_own_list_evenly():
    indices = np.array([[1, 2, 3], [0, 0, 0], [3, 1, 3]])
    counts = np.array([3, 1, 2])
    b = get_backend("numpy")
    gen = ag.Generator(b, 0)
    rows = np.repeat(np.arange(3), 20_000)
    drawn = sample_neighbours(indices, counts, rows, gen)
    for i in range(3):
        got = np.bincount(drawn[rows == i], minlength=4) / 20_000
        expected = np.bincount(indices[i, :counts[i]], minlength=4) / counts[i]
        np.testing.assert_allclose(got, expected, atol=0.015)
    again = sample_neighbours(indices, counts, rows, ag.Generator(b, 0))
    np.testing.assert_array_equal(again, drawn)


# -- the term --------------------------------------------------------------------------------------------

def _config(**overrides):
    settings = dict(input_shape=(5,), dtype="float64", neighbour_weight=4.0, alpha=0.7, balance=2.0,
                    likelihood="gaussian", **TINY)
    settings.update(overrides)
    return GMVAEConfig(**settings)


def _rows(B, seed=0):
    return np.random.default_rng(seed).normal(size=(B, 5))


def test_code_agreement_is_the_symmetric_kl_of_the_two_codes():
    rng = np.random.default_rng(8)
    m1, v1, m2, v2 = (rng.normal(size=(4, 3)) for _ in range(4))

    def kl(ma, va, mb, vb):   # the textbook formula, in variances
        sa, sb = np.exp(va), np.exp(vb)
        return 0.5 * np.sum(np.log(sb / sa) + (sa + (ma - mb) ** 2) / sb - 1, axis=-1)

    expected = np.mean(0.5 * (kl(m1, v1, m2, v2) + kl(m2, v2, m1, v1)))
    got = elbo.code_agreement(*(ag.tensor(a) for a in (m1, v1, m2, v2))).item()
    assert got == pytest.approx(expected, rel=1e-12)
    assert elbo.code_agreement(*(ag.tensor(a) for a in (m1, v1, m1, v1))).item() == pytest.approx(0.0, abs=1e-12)
    tensors = [ag.tensor(a, dtype="float64", requires_grad=True) for a in (m1, v1, m2, v2)]
    report = ag.gradcheck(elbo.code_agreement, *tensors)
    assert report.comparisons >= 48 and report.max_abs_error < 1e-8


@pytest.mark.parametrize("weights", [dict(neighbour_weight=4.0), dict(neighbour_weight=4.0, neighbour_code_weight=0.3),
                                     dict(neighbour_weight=0.0, neighbour_code_weight=0.3)])
def test_gradcheck_objective_with_the_neighbour_terms(weights):
    config = _config(**weights)
    model = GMVAE(config, seed=4)
    neighbours = ag.tensor(_rows(5, seed=9), dtype="float64")
    original = model.loss
    model.loss = lambda y, noise=None, weights=None: original(y, noise=noise, weights=weights, neighbours=neighbours)
    r = gradcheck_objective(model, _rows(5), _noise(config, 5), then="elementwise")
    assert r["comparisons"] > len(model.parameters())
    assert r["joint_rel_error"] < 1e-6


def test_the_terms_add_their_weights_times_the_agreements_and_nothing_else():
    y, near = _rows(6), _rows(6, seed=3)
    noise = _noise(_config(), 6)
    off = GMVAE(_config(neighbour_weight=0.0), seed=2).loss(y, noise=noise)
    model = GMVAE(_config(neighbour_code_weight=0.3), seed=2)
    on = model.loss(y, noise=noise, neighbours=near)
    np.testing.assert_array_equal(on.neg_elbo.numpy(), off.neg_elbo.numpy())
    q, q_near = model._encode(ag.tensor(y)), model._encode(ag.tensor(near))
    agreement = elbo.assignment_agreement(ag.log_softmax(q["z_logits"], axis=-1),
                                          ag.log_softmax(q_near["z_logits"], axis=-1)).item()
    codes = elbo.code_agreement(q["x_mean"], q["x_logvar"], q_near["x_mean"], q_near["x_logvar"]).item()
    assert agreement > 0 and codes > 0
    assert on.objective.item() == pytest.approx(off.objective.item() + 4.0 * agreement + 0.3 * codes, rel=1e-12)


def test_training_needs_the_neighbours_and_evaluation_leaves_the_term_out():
    model = GMVAE(_config(), seed=2)
    with pytest.raises(ValueError, match="needs neighbours"):
        model.loss(_rows(4), noise=_noise(_config(), 4))
    with pytest.raises(ValueError, match="3 neighbours for a batch of 4"):
        model.loss(_rows(4), noise=_noise(_config(), 4), neighbours=_rows(3))
    model = GMVAE(_config(), seed=2).eval()          # fresh: the calls above moved its BatchNorm statistics
    plain = GMVAE(_config(neighbour_weight=0.0), seed=2).eval()
    a = model.loss(_rows(4), noise=_noise(_config(), 4)).objective.item()
    assert a == plain.loss(_rows(4), noise=_noise(_config(), 4)).objective.item()


@pytest.mark.parametrize("changes, message", [
    (dict(neighbours=10), "only the neighbour terms read: give a weight"),
    (dict(neighbour_code_weight=1.0), "--neighbour-code-weight 1.0 needs a neighbour graph"),
    (dict(neighbour_weight=5.0), "needs a neighbour graph: give its k"),
    (dict(neighbours=10, neighbour_weight=-1.0), "--neighbour-weight must be a number >= 0"),
    (dict(neighbours=-2, neighbour_weight=1.0), "--neighbours must be a whole number >= 0"),
    (dict(neighbours=10, neighbour_weight=1.0, variant="mi"), "the mi variant has no q"),
    (dict(neighbours=10, neighbour_weight=1.0, neighbour_dims=0), "--neighbour-dims must be a positive"),
])
def test_bad_neighbour_settings_are_one_line_errors(changes, message):
    with pytest.raises(SettingsError, match=message):
        preset("mnist_recipe", **changes)


def test_more_neighbours_than_rows_is_one_line_error(tmp_path):
    s = preset("spiral", n_per_arm=4, batch_size=10, neighbours=20, neighbour_weight=1.0, plots=False)
    with pytest.raises(SettingsError, match="--neighbours 20 must be fewer than the 20 training rows"):
        quiet(s, tmp_path / "run")


def test_the_command_line_refuses_bad_neighbour_flags_in_one_line(tmp_path, capsys):
    from gmvae_np.cli import run

    assert run("spiral", ["--neighbours", "0", "--neighbour-weight", "3", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a neighbour graph" in err
    assert run("spiral", ["--neighbours", "5000", "--neighbour-weight", "3", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be fewer than the 5000 training rows" in err
    assert run("spiral", ["--neighbours", "5", "--neighbour-weight", "3", "--neighbour-space", "deskew",
                          "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs single-channel images" in err
    assert run("spiral", ["--neighbours", "5", "--neighbour-weight", "3", "--neighbour-space", "contrast",
                          "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the contrast neighbour space takes square roots" in err


def _tiny_rows() -> Dataset:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 3
    labels = np.arange(120) % 4
    x = (centres[labels] + rng.normal(size=(120, 6))).astype(np.float32)
    return Dataset(name="tiny-rows", x_train=x[:100], y_train=labels[:100], x_test=x[100:], y_test=labels[100:],
                   likelihood="gaussian")


def _tiny_settings(**changes):
    base = dict(K=3, Dx=2, Dw=2, hidden=6, batch_size=20, epochs=3, restarts=1, neighbours=4, neighbour_weight=2.0,
                plots=False, log_every=0, seed=3, balance=0.0, start="mixture", pretrain_epochs=0)   # the term alone
    base.update(changes)
    return preset("custom", data="unused.npy", **base)


@pytest.mark.parametrize("stop_after", [0, 7])
def test_a_run_with_the_term_resumes_bit_identically(tmp_path, stop_after):
    s = _tiny_settings()
    assert_resumes_bit_identically(s, tmp_path, stop_after, dataset=_tiny_rows())
    whole = tmp_path / "whole"
    config = json.loads((whole / "config.json").read_text())
    assert config["neighbour_graph"]["k"] == 4 and config["neighbour_graph"]["label_agreement"] > 0.9
    plain = tmp_path / "plain"
    quiet(s.replace(neighbours=0, neighbour_weight=0.0), plain, dataset=_tiny_rows()).run()
    assert (plain / "metrics.jsonl").read_bytes() != (whole / "metrics.jsonl").read_bytes()


def test_restarts_share_one_graph_in_their_root(tmp_path):
    from gmvae_np.restarts import train_with_restarts

    s = _tiny_settings(restarts=2, restart_epochs=1, epochs=2)
    train_with_restarts(s, tmp_path / "run", dataset=_tiny_rows(), out=io.StringIO(), err=io.StringIO())
    assert len(list((tmp_path / "run").glob("neighbours-*.npz"))) == 1
    assert not list((tmp_path / "run").glob("restart*/neighbours-*"))
    for i in (1, 2):
        graph = json.loads((tmp_path / "run" / f"restart{i}" / "config.json").read_text())["neighbour_graph"]
        assert graph["file"] == str(next((tmp_path / "run").glob("neighbours-*.npz")))


def test_the_benchmark_runs_and_both_find_the_same_neighbours(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_neighbours.py"
    spec = importlib.util.spec_from_file_location("bench_neighbours", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "ratio ours / scikit-learn" in out
    assert "rows with the same neighbour set        100.000 %" in out


# -- the graph's own partition (the graph start) ----------------------------------------------------------

def _blobs(sizes, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = [(-6.0 + 6.0 * i, 3.0 * (i % 2)) for i in range(len(sizes))]
    x = np.concatenate([rng.normal(c, spread, size=(n, 2)) for c, n in zip(centres, sizes)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def test_adjacency_is_the_symmetrised_graph_with_each_row_itself():
    from gmvae_np.neighbours import adjacency

    indices = np.array([[1, 2], [0, 2], [1, 0], [2, 1]])
    graph = NeighbourGraph(indices=indices, counts=np.array([2, 2, 2, 1]), k=2, space="raw", dims=0,
                           mutual=False, fingerprint="")
    A = adjacency(graph).toarray()
    C = np.eye(4)
    for i, (row, count) in enumerate(zip(indices, graph.counts)):
        C[i, row[:count]] = 1.0                  # row 3 holds only its first entry
    np.testing.assert_array_equal(A, (C + C.T) / 2)
    assert A[3, 1] == 0.0 and A[2, 3] == 0.5 and A[0, 1] == 1.0


def test_the_spectral_partition_finds_separated_groups_of_unequal_size():
    from gmvae_np.metrics import normalized_clustering_accuracy
    from gmvae_np.neighbours import spectral_partition

    x, labels = _blobs([150, 60, 30])
    parts = spectral_partition(build_graph(x, 8), 3, seed=0)
    assert parts.dtype == np.int64 and parts.shape == (240,)
    assert normalized_clustering_accuracy(parts, labels) == 1.0
    with pytest.raises(GraphError, match="K must be from 2 to the 240 rows"):
        spectral_partition(build_graph(x, 8), 1)


def test_small_pieces_of_the_graph_are_joined_and_clusters_left_apart():
    """Two groups of 200 and two far-off pieces of 12 (each its own component of a 10-NN graph): without
    points, the 2-way partition spends its parts on the four components' degenerate eigenvectors and
    misses the groups; with the pieces joined to their nearest group, the two groups come out whole."""
    from scipy.sparse.csgraph import connected_components

    from gmvae_np.metrics import normalized_clustering_accuracy
    from gmvae_np.neighbours import adjacency, connect, spectral_partition

    x, labels = _blobs([200, 200])
    rng = np.random.default_rng(1)
    far = np.concatenate([rng.normal((40.0, 40.0), 0.3, size=(12, 2)), rng.normal((-40.0, 40.0), 0.3, size=(12, 2))])
    x = np.concatenate([x, far.astype(np.float32)])
    graph = build_graph(x, 10)
    assert connected_components(adjacency(graph))[0] == 4
    joined = connect(adjacency(graph), x, min_size=50)
    assert connected_components(joined)[0] == 2              # the pieces of 12 joined; the groups of 200 not
    added = (joined - adjacency(graph)).tocoo()
    assert added.nnz == 4 and all((r >= 400) != (c >= 400) for r, c in zip(added.row, added.col))
    apart = spectral_partition(graph, 2, seed=0)
    assert normalized_clustering_accuracy(apart[:400], labels) < 0.5
    parts = spectral_partition(graph, 2, seed=0, points=x)
    assert normalized_clustering_accuracy(parts[:400], labels) == 1.0


@pytest.mark.parametrize("damage", ["truncated", "empty", "random bytes"])
def test_a_damaged_graph_file_at_resume_is_one_error_line(tmp_path, capsys, damage):
    """A run with a graph, its graph file damaged, then --resume: one line naming the file and what to
    do, exit 2; deleting the file, as the line says, rebuilds it and the run goes on."""
    from gmvae_np.cli import run

    out = tmp_path / "run"
    argv = ["--n-per-arm", "20", "--batch-size", "25", "--no-plots", "--neighbours", "5", "--neighbour-weight", "5"]
    assert run("spiral", argv + ["--epochs", "1", "--out", str(out)]) == 0
    path = next(out.glob("neighbours-*.npz"))
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:100], "empty": b"",
                      "random bytes": np.random.default_rng(0).bytes(len(data))}[damage])
    capsys.readouterr()
    assert run("spiral", ["--resume", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: cannot read the neighbour graph {path}") and "delete it" in err, err
    path.unlink()
    assert run("spiral", ["--resume", str(out), "--epochs", "2"]) == 0
    assert path.is_file() and len((out / "metrics.jsonl").read_text().splitlines()) == 2
