"""The bad-input battery: every way a user can ask for something impossible, and the one line they get.

One table, ``CASES``, lists them. Each case says how to provoke the fault (files written under the test's
own tmp_path, then the command-line arguments), what must come back (exit code 2 and a fragment of the
one-line message) and, where the library has the same door, which exception the library raises with the
same fragment. Every case is run through the real command line in-process (``gmvae_np.cli.main``) with
stderr captured, and must print exactly one line starting ``error:`` (as the launcher's
own errors), no traceback, and nothing on stdout. Add a row when the code learns a new refusal.

Beside the table: checkpoints are written with ordinary file permissions, and the only pickle the
package can ever load is the known MNIST file, after its checksum matched (see also
tests/test_data.py::test_mnist_pickle_with_wrong_checksum_is_not_loaded).
"""
from __future__ import annotations

import ast
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

import autograd_lite as ag
import debs
from autograd_lite.backend import BackendError
from gmvae_np.data import mnist as data_module
from gmvae_np.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gmvae_np.cli import main
from gmvae_np.data import DataError, Dataset, load_dataset, load_matrix
from gmvae_np.presets import SettingsError, preset
from gmvae_np.train import RunDirError, Trainer

REPO = Path(__file__).resolve().parents[1]
# a spiral of 100 points, one epoch of 4 steps: the runs the checkpoint cases damage take well under a second
TINY = ["--n-per-arm", "20", "--epochs", "1", "--batch-size", "25", "--no-plots", "--lr", "3e-3"]
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# -- small file makers (everything is written under the case's own folder) ---------------------------

def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of an unsigned-byte array: magic 0x0000 08 <ndim>, big-endian sizes, values."""
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def idx_set(folder: Path, n: int = 6, damage: Callable[[bytes], bytes] | None = None,
            only: tuple = IDX_NAMES, gz: bool = True) -> Path:
    """An MNIST-like set of four IDX files in ``folder``; ``damage`` rewrites the training images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)] * 2
    for name, a in zip(IDX_NAMES, arrays):
        if name not in only:
            continue
        raw = idx_bytes(a)
        if damage is not None and name == IDX_NAMES[0]:
            raw = damage(raw)
            if not gz:
                (folder / name[:-3]).write_bytes(raw)
                continue
        (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
    return folder


def npy(path: Path, a) -> Path:
    np.save(path, np.asarray(a))
    return path


def matrix(rows: int = 30, cols: int = 3) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(rows, cols))


def rewrite_meta(path: Path, change: Callable[[dict], None]) -> None:
    """Rewrite a checkpoint's JSON metadata (e.g. its format_version), keeping every array."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    change(meta)
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def copy_run(runs: dict, name: str, tmp: Path) -> Path:
    """A private copy of one of the module's finished tiny runs."""
    target = tmp / f"run-{name}"
    shutil.copytree(runs[name], target)
    return target


def swap_checkpoint(tmp: Path, runs: dict) -> Path:
    """A run whose last.npz was written by a run with other settings (K=5 instead of 8)."""
    run = copy_run(runs, "K8", tmp)
    shutil.copyfile(runs["K5"] / "checkpoints" / "last.npz", run / "checkpoints" / "last.npz")
    return run


def damaged_run(tmp: Path, runs: dict, damage: Callable[[Path], None]) -> Path:
    run = copy_run(runs, "K8", tmp)
    damage(run / "checkpoints" / "last.npz")
    return run


def halve(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def cut_gzip(tmp: Path) -> Path:
    """Fashion-MNIST files whose training-image .gz stops half way (an interrupted download)."""
    folder = idx_set(tmp / "f")
    halve(folder / IDX_NAMES[0])
    return folder


def foreign_pickle(tmp: Path) -> Path:
    """A folder holding an mnist.pkl.gz that is not the known file."""
    folder = tmp / "pk"
    folder.mkdir()
    (folder / "mnist.pkl.gz").write_bytes(gzip.compress(b"not the MNIST pickle"))
    return folder


def without_checkpoint(tmp: Path, runs: dict) -> Path:
    run = copy_run(runs, "K8", tmp)
    (run / "checkpoints" / "last.npz").unlink()
    return run


def with_broken_config(tmp: Path, runs: dict) -> Path:
    run = copy_run(runs, "K8", tmp)
    (run / "config.json").write_text("{not json")
    return run


def object_array(tmp: Path) -> Path:
    np.save(tmp / "obj.npy", np.array([{"a": 1}, None], dtype=object))   # needs pickle to read back
    return tmp / "obj.npy"


def a_file_as_parent(tmp: Path) -> Path:
    (tmp / "plain-file").write_text("a file, not a folder")
    return tmp / "plain-file" / "run"


# -- faking CuPy, so the GPU refusals are tested on every machine -----------------------------------

def no_cupy(monkeypatch) -> None:
    """CuPy cannot be imported (as on a machine without it)."""
    monkeypatch.delitem(ag.backend._BACKENDS, "cupy", raising=False)
    monkeypatch.setitem(sys.modules, "cupy", None)


def cupy_without_gpu(monkeypatch) -> None:
    """CuPy imports, but the CUDA runtime reports no device (as on a machine without a GPU)."""
    monkeypatch.delitem(ag.backend._BACKENDS, "cupy", raising=False)
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 0)
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=runtime)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", types.ModuleType("array_api_compat.cupy"))


def tripwire_pickle(monkeypatch) -> None:
    """Make any unpickling inside gmvae_np.data fail the test loudly (it is not a user error)."""
    def refuse(*a, **k):
        raise AssertionError("a pickle was loaded before its checksum was checked")

    monkeypatch.setattr(data_module.pickle, "load", refuse)
    monkeypatch.setattr(data_module.pickle, "loads", refuse)


# -- Fashion-MNIST without files: the fetch's refusals, with apt-get faked ----------------------------

REAL_APT_DOWNLOAD = data_module._apt_download


@pytest.fixture(autouse=True)
def _no_fashion_anywhere(tmp_path, monkeypatch):
    """Every case sees an empty cache under tmp_path and no installed Fashion-MNIST package, and runs no
    apt-get unless its fault supplies one."""
    monkeypatch.setenv("GMVAE_NP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data_module, "FASHION_DEB_DIR", tmp_path / "no-installed-package")

    def refuse(package, dest):
        raise AssertionError(f"a test ran apt-get download {package}")

    monkeypatch.setattr(data_module, "_apt_download", refuse)


def no_apt_get(monkeypatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(data_module.shutil, "which", lambda name: None if name == "apt-get" else real_which(name))


def apt_get_fails(monkeypatch) -> None:
    """apt-get is there, and answers as it does on a system whose package lists lack the package."""
    monkeypatch.setattr(data_module, "_apt_download", REAL_APT_DOWNLOAD)   # it runs subprocess.run, faked here
    monkeypatch.setattr(data_module.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(data_module.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 100, stdout="", stderr="E: Unable to locate package dataset-fashion-mnist\n"))


def apt_gets(deb: bytes, known_files: dict | None = None) -> Callable[[object], None]:
    """apt-get download leaves ``deb``; known_files' contents are declared Zalando's (default: the real sums)."""
    def fault(monkeypatch) -> None:
        monkeypatch.setattr(data_module.shutil, "which", lambda name: "/usr/bin/" + name)
        monkeypatch.setattr(data_module, "_apt_download",
                            lambda package, dest: (Path(dest) / debs.DEB_NAME).write_bytes(deb))
        if known_files is not None:
            monkeypatch.setattr(data_module, "FASHION_IDX_SHA256", debs.content_sums(known_files))
    return fault


def cache_under_proc(monkeypatch) -> None:
    apt_gets(debs.deb_bytes(debs.fashion_files()), debs.fashion_files())(monkeypatch)
    monkeypatch.setenv("GMVAE_NP_CACHE", "/proc/gmvae-np-cache")


def fashion_fetch(tmp: Path, runs: dict) -> list:
    """The Fashion-MNIST experiment with no --data-dir: the loader looks for the files itself."""
    return ["--epochs", "1", "--no-plots", "--out", str(tmp / "out")]


# -- the table ---------------------------------------------------------------------------------------

class Case(NamedTuple):
    """One bad input: provoke(tmp, runs) writes what it needs and returns the command-line arguments
    (None: the case exists only in the library); library(tmp, runs) makes the same request through the
    library (None: only the command line has this door); ``fault`` optionally patches the environment
    (monkeypatch) first. The library's message holds ``message`` too, unless ``library_message`` says
    otherwise (argparse words its own refusals)."""

    id: str
    experiment: str
    provoke: Callable[[Path, dict], list] | None
    message: str
    library: Callable[[Path, dict], object] | None = None
    error: type | None = None
    fault: Callable[[object], None] | None = None
    code: int = 2
    library_message: str | None = None  # when the library words it differently from argparse

    @property
    def expected_from_library(self) -> str:
        return self.library_message or self.message


def spiral(*args) -> Callable[[Path, dict], list]:
    return lambda tmp, runs: TINY + list(args) + ["--out", str(tmp / "out")]


def custom(make: Callable[[Path], Path], *args) -> Callable[[Path, dict], list]:
    return lambda tmp, runs: ["--data", str(make(tmp)), *args, "--epochs", "1", "--no-plots",
                              "--out", str(tmp / "out")]


def data_dir(make: Callable[[Path], Path]) -> Callable[[Path, dict], list]:
    return lambda tmp, runs: ["--data-dir", str(make(tmp)), "--epochs", "1", "--no-plots",
                              "--out", str(tmp / "out")]


def resume(make: Callable[[Path, dict], Path], *args) -> Callable[[Path, dict], list]:
    return lambda tmp, runs: ["--resume", str(make(tmp, runs)), *args]


def lib_settings(**kw) -> Callable[[Path, dict], object]:
    return lambda tmp, runs: preset("spiral", **kw)


def empty_dir(tmp: Path) -> Path:
    (tmp / "empty").mkdir(exist_ok=True)
    return tmp / "empty"


def text_file(name: str, text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_text(text)
        return tmp / name
    return make


def bytes_file(name: str, raw: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(raw)
        return tmp / name
    return make


def mat_dir(files: dict) -> Callable[[Path], Path]:
    """A data folder holding the given {name: bytes or {'x': ..., 'y': ...}} .mat files."""
    def make(tmp: Path) -> Path:
        import scipy.io
        d = tmp / "mats"
        d.mkdir(exist_ok=True)
        for name, content in files.items():
            if isinstance(content, bytes):
                (d / name).write_bytes(content)
            else:
                scipy.io.savemat(d / name, content)
        return d
    return make


GOOD_FEATURES = {"x": np.random.default_rng(2).normal(size=(12, 5)), "y": np.arange(12) % 3}
NAN_FEATURES = {"x": np.where(np.eye(12, 5) > 0, np.nan, 1.0), "y": np.arange(12) % 3}
SHORT_LABELS = {"x": np.ones((12, 5)), "y": np.arange(11) % 3}
CONV_SMALL_IMAGES = Dataset(name="small-images", x_train=np.zeros((8, 1, 20, 20)), likelihood="bernoulli")


CASES = [
    # -- options and settings --------------------------------------------------------------------
    Case("unknown-option", "spiral", spiral("--bogus"), "unrecognized arguments: --bogus"),
    Case("option-of-another-experiment", "spiral", spiral("--data", "x.csv"), "unrecognized arguments: --data"),
    Case("unknown-backend", "spiral", spiral("--backend", "tpu"), "invalid choice: 'tpu'"),
    Case("unknown-backend-library", "spiral", None, "unknown backend 'tpu'",
         lambda tmp, runs: ag.get_backend("tpu"), BackendError),
    Case("unknown-backend-in-settings", "spiral", None, "--backend must be one of",
         lib_settings(backend="tpu"), SettingsError),
    Case("cupy-missing", "spiral", spiral("--backend", "cupy"), "needs CuPy, which could not be imported",
         lambda tmp, runs: ag.get_backend("cupy"), BackendError, no_cupy),
    Case("cupy-missing-gpu-flag", "spiral", spiral("-gpu", "1"), "needs CuPy", fault=no_cupy),
    Case("no-gpu", "spiral", spiral("--gpu"), "found no CUDA device",
         lambda tmp, runs: ag.get_backend("cupy"), BackendError, cupy_without_gpu),
    Case("gpu-flag-and-backend-disagree", "spiral", spiral("-gpu", "1", "--backend", "numpy"), "disagree"),
    Case("K-below-2", "spiral", spiral("--K", "1"), "--K must be at least 2",
         lib_settings(K=1), SettingsError),
    Case("K-not-integer", "spiral", spiral("--K", "2.5"), "argument --K: invalid int value: '2.5'",
         lib_settings(K=2.5), SettingsError, library_message="--K must be a positive whole number; got 2.5"),
    Case("K-zero", "spiral", spiral("--K", "0"), "--K must be a positive whole number"),
    Case("Dx-zero", "spiral", spiral("--Dx", "0"), "--Dx must be a positive whole number",
         lib_settings(Dx=0), SettingsError),
    Case("Dw-negative", "spiral", spiral("--Dw", "-1"), "--Dw must be a positive whole number",
         lib_settings(Dw=-1), SettingsError),
    Case("hidden-zero", "spiral", spiral("--hidden", "0"), "--hidden must be a positive whole number",
         lib_settings(hidden=0), SettingsError),
    Case("hidden-not-integer", "spiral", spiral("--hidden", "1e3"), "invalid int value: '1e3'",
         lib_settings(hidden=1000.0), SettingsError, library_message="--hidden must be a positive whole number; "
                                                                    "got 1000.0"),
    Case("batch-zero", "spiral", spiral("--batch-size", "0"), "--batch-size must be a positive whole number",
         lib_settings(batch_size=0), SettingsError),
    Case("epochs-negative", "spiral", spiral("--epochs", "-3"), "--epochs must be a positive whole number",
         lib_settings(epochs=-3), SettingsError),
    Case("mc-zero", "spiral", spiral("--mc", "0"), "--mc must be a positive whole number",
         lib_settings(mc=0), SettingsError),
    Case("lr-zero", "spiral", spiral("--lr", "0"), "--lr must be a positive number", lib_settings(lr=0.0),
         SettingsError),
    Case("lr-nan", "spiral", spiral("--lr", "nan"), "--lr must be a positive number",
         lib_settings(lr=float("nan")), SettingsError),
    Case("alpha-infinite", "spiral", spiral("--alpha", "inf"), "--alpha must be a number >= 0",
         lib_settings(alpha=float("inf")), SettingsError),
    Case("seed-negative", "spiral", spiral("--seed", "-1"), "--seed must be a whole number >= 0"),
    Case("seeds-list-backwards", "spiral", spiral("--seeds", "3-1"), "--seeds '3-1' is not a list of seeds"),
    Case("batch-larger-than-data", "spiral", spiral("--batch-size", "101"),
         "--batch-size 101 is larger than the 100 training rows",
         lambda tmp, runs: Trainer(preset("spiral", n_per_arm=20, batch_size=101), None), SettingsError),
    Case("custom-without-data", "custom", lambda tmp, runs: ["--out", str(tmp / "out")],
         "needs its data: pass --data PATH", lambda tmp, runs: preset("custom", K=3), SettingsError),

    # -- data folders without the expected files ---------------------------------------------------
    Case("data-dir-missing", "svhn", lambda tmp, runs: ["--data-dir", str(tmp / "nowhere"), "--out",
                                                        str(tmp / "out")],
         "does not exist", lambda tmp, runs: load_dataset("svhn", tmp / "nowhere"), DataError),
    Case("fashion-some-idx-files", "fashion_mnist",
         data_dir(lambda tmp: idx_set(tmp / "fashion", only=IDX_NAMES[:2])),
         "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz not found",
         lambda tmp, runs: load_dataset("fashion-mnist", tmp / "fashion"), DataError),
    Case("svhn-empty-dir", "svhn", data_dir(empty_dir), "train_gist.mat, test_gist.mat not found",
         lambda tmp, runs: load_dataset("svhn", tmp / "empty"), DataError),
    Case("cifar10-test-file-missing", "cifar10", data_dir(mat_dir({"cifar10_train_feature.mat": GOOD_FEATURES})),
         "cifar10_test_feature.mat not found", lambda tmp, runs: load_dataset("cifar-10", tmp / "mats"),
         DataError),
    Case("stl10-empty-dir", "stl10", data_dir(empty_dir), "stl10_feature.mat not found",
         lambda tmp, runs: load_dataset("stl-10", tmp / "empty"), DataError),
    Case("mnist-some-idx-files", "mnist_fc", data_dir(lambda tmp: idx_set(tmp / "mn", only=IDX_NAMES[1:])),
         "train-images-idx3-ubyte.gz missing", lambda tmp, runs: load_dataset("mnist", tmp / "mn"), DataError),

    Case("fashion-nowhere-without-apt-get", "fashion_mnist_fc", fashion_fetch,
         "and no apt-get to fetch them; run `git clone --depth 1 https://github.com/zalandoresearch/fashion-mnist`",
         lambda tmp, runs: load_dataset("fashion-mnist"), DataError, no_apt_get),
    Case("fashion-apt-get-download-fails", "fashion_mnist_fc", fashion_fetch,
         "`apt-get download dataset-fashion-mnist` failed (E: Unable to locate package dataset-fashion-mnist); "
         "install the package (sudo apt-get install dataset-fashion-mnist)",
         lambda tmp, runs: load_dataset("fashion-mnist"), DataError, apt_get_fails),
    Case("fashion-deb-other-images", "fashion_mnist_fc", fashion_fetch,
         "train-images-idx3-ubyte.gz in dataset-fashion-mnist_9.9-1_all.deb holds data with SHA-256",
         lambda tmp, runs: load_dataset("fashion-mnist"), DataError,
         apt_gets(debs.deb_bytes(debs.fashion_files()))),
    Case("fashion-deb-not-a-package", "fashion_mnist", fashion_fetch,
         "is not a Debian package (ar archive): it does not start with !<arch>",
         lambda tmp, runs: load_dataset("fashion-mnist"), DataError, apt_gets(b"<html>404</html>")),
    Case("fashion-cache-not-writable", "fashion_mnist_fc", fashion_fetch,
         "cannot write the cache folder /proc/gmvae-np-cache/fashion-mnist",
         lambda tmp, runs: load_dataset("fashion-mnist"), DataError, cache_under_proc),

    # -- truncated or corrupt data files ----------------------------------------------------------
    Case("idx-gzip-truncated", "fashion_mnist_fc", data_dir(cut_gzip), "is truncated or corrupt (gzip",
         lambda tmp, runs: load_dataset("fashion-mnist", tmp / "f"), DataError),
    Case("idx-bad-magic", "fashion_mnist_fc",
         data_dir(lambda tmp: idx_set(tmp / "f", damage=lambda raw: b"\x50\x4b\x03\x04" + raw[4:])),
         "has magic number 0x504b0304", lambda tmp, runs: load_dataset("fashion-mnist", tmp / "f"), DataError),
    Case("idx-body-truncated", "fashion_mnist_fc",
         data_dir(lambda tmp: idx_set(tmp / "f", damage=lambda raw: raw[:-100], gz=False)),
         "data bytes but its header (6, 28, 28) needs 4704",
         lambda tmp, runs: load_dataset("fashion-mnist", tmp / "f"), DataError),
    Case("mnist-pickle-wrong-checksum", "mnist_fc", data_dir(foreign_pickle),
         "refusing to unpickle it (pickle can run code)",
         lambda tmp, runs: load_dataset("mnist", tmp / "pk"), DataError, tripwire_pickle),
    Case("mat-corrupt", "svhn", data_dir(mat_dir({"train_gist.mat": b"MATLAB 5.0 MAT-file" + bytes(300),
                                                  "test_gist.mat": b"garbage"})),
         "is not a readable .mat file", lambda tmp, runs: load_dataset("svhn", tmp / "mats"), DataError),
    Case("mat-nan-features", "stl10", data_dir(mat_dir({"stl10_feature.mat": NAN_FEATURES})),
         "NaN or infinite feature value(s)", lambda tmp, runs: load_dataset("stl-10", tmp / "mats"), DataError),
    Case("mat-label-count", "stl10", data_dir(mat_dir({"stl10_feature.mat": SHORT_LABELS})),
         "has 12 feature rows but 11 labels", lambda tmp, runs: load_dataset("stl-10", tmp / "mats"),
         DataError),
    Case("npy-corrupt", "custom", custom(bytes_file("bad.npy", b"\x93NUMPY garbage")), "is not a readable .npy file",
         lambda tmp, runs: load_matrix(tmp / "bad.npy"), DataError),
    Case("npy-pickled-objects", "custom", custom(object_array),
         "it holds arrays of Python objects, which are never unpickled",
         lambda tmp, runs: load_matrix(tmp / "obj.npy"), DataError),
    Case("csv-not-numeric", "custom", custom(text_file("bad.csv", "1,2\n3,oops\n")), "'oops' is not a number",
         lambda tmp, runs: load_matrix(tmp / "bad.csv"), DataError),
    Case("csv-ragged", "custom", custom(text_file("ragged.csv", "1,2,3\n4,5\n6,7,8\n")),
         "line 2 has 2 values but the first row has 3", lambda tmp, runs: load_matrix(tmp / "ragged.csv"),
         DataError),
    Case("csv-binary", "custom", custom(bytes_file("bin.csv", b"\xff\xfe\x00\x81" * 8)),
         "is not a readable CSV text file", lambda tmp, runs: load_matrix(tmp / "bin.csv"), DataError),
    Case("unknown-suffix", "custom", custom(text_file("data.txt", "1 2\n3 4\n")), "use .npy, .npz or .csv",
         lambda tmp, runs: load_matrix(tmp / "data.txt"), DataError),

    # -- data that parses but cannot be trained on -------------------------------------------------
    Case("matrix-with-nan", "custom", custom(lambda tmp: npy(tmp / "nan.npy", np.where(np.eye(30, 3) > 0,
                                                                                      np.nan, 1.0))),
         "has 3 NaN or infinite value(s)", lambda tmp, runs: load_matrix(tmp / "nan.npy"), DataError),
    Case("matrix-with-inf-csv", "custom", custom(text_file("inf.csv", "1,2\n3,inf\n5,6\n")),
         "has 1 NaN or infinite value(s)", lambda tmp, runs: load_matrix(tmp / "inf.csv"), DataError),
    Case("matrix-3d", "custom", custom(lambda tmp: npy(tmp / "cube.npy", np.ones((4, 3, 2)))),
         "holds shape (4, 3, 2); expected a 2-D matrix", lambda tmp, runs: load_matrix(tmp / "cube.npy"),
         DataError),
    Case("matrix-1d", "custom", custom(lambda tmp: npy(tmp / "line.npy", np.ones(7))),
         "holds shape (7,); expected a 2-D matrix", lambda tmp, runs: load_matrix(tmp / "line.npy"), DataError),
    Case("matrix-one-row", "custom", custom(lambda tmp: npy(tmp / "row.npy", np.ones((1, 4)))),
         "has 1 row(s); at least 2 samples are needed", lambda tmp, runs: load_matrix(tmp / "row.npy"),
         DataError),
    Case("matrix-text-values", "custom", custom(lambda tmp: npy(tmp / "words.npy", np.array([["a", "b"]] * 3))),
         "holds <U1 values; the matrix must be numeric", lambda tmp, runs: load_matrix(tmp / "words.npy"),
         DataError),
    Case("label-count-mismatch", "custom",
         lambda tmp, runs: custom(lambda t: npy(t / "x.npy", matrix()), "--labels",
                                  str(npy(tmp / "y.npy", np.arange(29) % 3)))(tmp, runs),
         "29 labels for 30 rows", lambda tmp, runs: load_matrix(tmp / "x.npy", labels=tmp / "y.npy"), DataError),
    Case("label-file-missing", "custom",
         custom(lambda tmp: npy(tmp / "x.npy", matrix()), "--labels", "/nonexistent/labels.npy"),
         "label file /nonexistent/labels.npy does not exist"),
    Case("label-column-outside", "custom", custom(lambda tmp: npy(tmp / "x.npy", matrix()), "--labels", "7"),
         "label column 7 is outside the 3 columns",
         lambda tmp, runs: load_matrix(tmp / "x.npy", labels=7), DataError),
    Case("conv-on-vectors", "custom", custom(lambda tmp: npy(tmp / "x.npy", matrix()), "--arch", "conv"),
         "--arch conv needs image data",
         lambda tmp, runs: Trainer(preset("custom", data=str(npy(tmp / "x.npy", matrix())), arch="conv"),
                                   None), SettingsError),
    Case("conv-wrong-image-size", "mnist", None, "needs input_shape (1, 28, 28)",
         lambda tmp, runs: Trainer(preset("mnist", K=3, Dx=3, Dw=2, hidden=8, batch_size=4),
                                   None, dataset=CONV_SMALL_IMAGES), SettingsError),
    Case("dataset-labels-count", "custom", None, "5 labels for 8 rows",
         lambda tmp, runs: Dataset(name="d", x_train=np.zeros((8, 2)), y_train=np.arange(5)), DataError),
    Case("dataset-nan", "custom", None, "1 value(s) are NaN or infinite",
         lambda tmp, runs: Dataset(name="d", x_train=np.array([[0.0, np.inf], [1.0, 2.0]])), DataError),

    # -- checkpoints and run directories (on --resume) ----------------------------------------------
    Case("resume-nowhere", "spiral", lambda tmp, runs: ["--resume", str(tmp / "nowhere")], "no config.json"),
    Case("resume-without-checkpoint", "spiral", resume(without_checkpoint), "has no checkpoints/last.npz",
         lambda tmp, runs: Trainer(preset("spiral"), tmp / "run-K8", resume=True), RunDirError),
    Case("checkpoint-truncated", "spiral", resume(lambda tmp, runs: damaged_run(tmp, runs, halve)),
         "cannot be read, the file is truncated or corrupt",
         lambda tmp, runs: load_checkpoint(tmp / "run-K8" / "checkpoints" / "last.npz"), CheckpointError),
    Case("checkpoint-garbage", "spiral",
         resume(lambda tmp, runs: damaged_run(tmp, runs, lambda p: p.write_bytes(os.urandom(2000)))),
         "truncated or corrupt"),
    Case("checkpoint-foreign-npz", "spiral",
         resume(lambda tmp, runs: damaged_run(tmp, runs, lambda p: np.savez(p, x=np.ones(3)))),
         "not a gmvae-np checkpoint",
         lambda tmp, runs: load_checkpoint(tmp / "run-K8" / "checkpoints" / "last.npz"), CheckpointError),
    Case("checkpoint-other-configuration", "spiral", resume(swap_checkpoint),
         "was saved from a model with different settings: K (checkpoint 5, model 8)"),
    Case("checkpoint-newer-format", "spiral",
         resume(lambda tmp, runs: damaged_run(tmp, runs, lambda p: rewrite_meta(
             p, lambda m: m.update(format_version=99)))),
         "checkpoint format 99); this version",
         lambda tmp, runs: load_checkpoint(tmp / "run-K8" / "checkpoints" / "last.npz"), CheckpointError),
    Case("config-json-corrupt", "spiral", resume(with_broken_config), "config.json cannot be read"),
    Case("resume-and-out-disagree", "spiral",
         lambda tmp, runs: ["--resume", str(copy_run(runs, "K8", tmp)), "--out", str(tmp / "elsewhere")],
         "give either --resume RUN_DIR"),
    Case("resume-changes-a-fixed-setting", "spiral", resume(lambda tmp, runs: copy_run(runs, "K8", tmp), "--K", "4"),
         "--K cannot change"),
    Case("resume-another-experiment", "custom", resume(lambda tmp, runs: copy_run(runs, "K8", tmp)),
         "is a run of experiment 'spiral'"),
    Case("resume-epochs-zero", "spiral",
         resume(lambda tmp, runs: copy_run(runs, "K8", tmp), "--epochs", "0"), "--epochs must be a positive"),
    Case("out-already-holds-a-run", "spiral", lambda tmp, runs: TINY + ["--out", str(copy_run(runs, "K8", tmp))],
         "already holds a run"),
    Case("out-parent-is-a-file", "spiral", lambda tmp, runs: TINY + ["--out", str(a_file_as_parent(tmp))],
         "cannot write to the run directory",
         lambda tmp, runs: Trainer(preset("spiral", n_per_arm=20), a_file_as_parent(tmp)), RunDirError),
    Case("out-under-proc", "spiral", lambda tmp, runs: TINY + ["--out", "/proc/gmvae-np-run"],
         "cannot write to the run directory /proc/gmvae-np-run"),
    Case("series-out-parent-is-a-file", "spiral",
         lambda tmp, runs: TINY + ["--seeds", "1-2", "--out", str(a_file_as_parent(tmp))],
         "cannot write to the run directory"),
    # -- flags that nothing would read, options checked before anything slow ----------------------
    Case("mutual-neighbours-without-a-graph", "spiral", spiral("--mutual-neighbours"),
         "--mutual-neighbours is read only with a neighbour graph"),
    Case("neighbour-space-without-a-graph", "spiral", spiral("--neighbour-space", "raw"),
         "--neighbour-space raw is read only with a neighbour graph"),
    Case("neighbour-dims-in-the-raw-space", "spiral",
         spiral("--neighbours", "3", "--neighbour-weight", "1", "--neighbour-space", "raw", "--neighbour-dims", "5"),
         "--neighbour-dims 5 is read only with a neighbour graph in the pca or deskew space"),
    Case("select-by-without-restarts", "spiral", spiral("--select-by", "train_elbo"),
         "--select-by train_elbo is read only with restarts"),
    Case("restart-epochs-without-restarts", "spiral", spiral("--restart-epochs", "3"),
         "--restart-epochs 3 is read only with restarts"),
    Case("shift-without-invariance", "spiral", spiral("--shift", "3"), "--shift 3 is read only with the invariance"),
    Case("plot-every-with-no-plots", "spiral", spiral("--plot-every", "5"), "--plot-every 5 is read only with figures"),
    Case("resume-plot-every-with-no-plots", "spiral",
         resume(lambda tmp, runs: copy_run(runs, "K8", tmp), "--no-plots", "--plot-every", "3"),
         "--plot-every 3 is read only with figures"),
    Case("seeds-empty", "spiral", spiral("--seeds", ""), "--seeds needs a list of seeds"),
    Case("seeds-blank", "spiral", spiral("--seeds", "  "), "--seeds needs a list of seeds"),
    Case("seeds-too-many", "spiral", spiral("--seeds", "1-1000000000"),
         "asks for 1,000,000,000 runs; a series holds at most 100,000 seeds"),
    Case("out-empty", "spiral", lambda tmp, runs: TINY + ["--out", ""], "--out needs the path of a run directory"),
    Case("resume-empty", "spiral", lambda tmp, runs: ["--resume", ""], "--resume needs the path of a run directory"),
    Case("seed-and-seeds", "spiral", spiral("--seed", "3", "--seeds", "1-2"), "--seed 3 and --seeds 1-2 both choose"),
    Case("dask-empty", "spiral", spiral("--dask", "", "--seeds", "1-2"), "--dask needs the address"),
    Case("dask-port-out-of-range", "spiral", spiral("--dask", "tcp://127.0.0.1:99999", "--seeds", "1-2"),
         "port from 1 to 65535"),
    Case("dask-port-zero", "spiral", spiral("--dask", "127.0.0.1:0", "--seeds", "1-2"), "port from 1 to 65535"),
    Case("dask-not-a-protocol", "spiral", spiral("--dask", "http://127.0.0.1:8786", "--seeds", "1-2"),
         "http:// is not a Dask protocol"),
    # both refused before a connection is tried (which takes 20 s to fail on a closed port)
    Case("dask-with-jobs", "spiral", spiral("--dask", "tcp://127.0.0.1:1", "--jobs", "2", "--seeds", "1-2"),
         "give one of them"),
    Case("dask-without-seeds-or-restarts", "spiral", spiral("--dask", "tcp://127.0.0.1:1"), "give --seeds too"),
    # -- the user's own matrix, wrongly given --------------------------------------------------------
    Case("data-is-a-folder", "custom", custom(empty_dir), "is a folder; give the path of a .npy, .npz or .csv",
         lambda tmp, runs: load_matrix(tmp / "empty"), DataError),
    Case("npz-of-random-bytes", "custom", custom(bytes_file("noise.npz", np.random.default_rng(3).bytes(300))),
         "is not a NumPy file: it begins with neither",
         lambda tmp, runs: load_matrix(tmp / "noise.npz"), DataError),
    Case("labels-a-continuous-column", "custom", custom(lambda tmp: npy(tmp / "m.npy", matrix()), "--labels", "-1"),
         "not whole numbers", lambda tmp, runs: load_matrix(tmp / "m.npy", labels=-1), DataError),
]



# -- running the table -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two finished tiny spiral runs (K=8 and K=5) that the checkpoint cases copy and damage."""
    root = tmp_path_factory.mktemp("finished-runs")
    made = {}
    for name, k in (("K8", "8"), ("K5", "5")):
        made[name] = root / name
        with pytest.raises(SystemExit) as info:
            main("spiral", TINY + ["--K", k, "--out", str(made[name])])
        assert info.value.code == 0
    return made


def test_case_ids_are_unique_and_every_case_is_checked_somewhere():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    for c in CASES:
        assert c.provoke is not None or c.library is not None, c.id
        assert (c.library is None) == (c.error is None), c.id


@pytest.mark.parametrize("case", [c for c in CASES if c.provoke is not None], ids=lambda c: c.id)
def test_command_line_gives_one_error_line_and_exit_2(case, tmp_path, runs, capsys, monkeypatch):
    if case.fault is not None:
        case.fault(monkeypatch)
    argv = case.provoke(tmp_path, runs)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(case.experiment, argv)
    out, err = capsys.readouterr()
    assert info.value.code == case.code, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and case.message in lines[0], lines[0]
    assert out == ""                      # a refusal trains nothing and announces nothing
    assert not (tmp_path / "out" / "checkpoints" / "last.npz").exists()


@pytest.mark.parametrize("case", [c for c in CASES if c.library is not None], ids=lambda c: c.id)
def test_library_raises_the_same_one_line_error(case, tmp_path, runs, monkeypatch):
    if case.fault is not None:
        case.fault(monkeypatch)
    if case.provoke is not None:
        case.provoke(tmp_path, runs)      # the same files as the command line saw
    with pytest.raises(case.error) as info:
        case.library(tmp_path, runs)
    text = str(info.value)
    assert "\n" not in text and case.expected_from_library in text, text


def test_unknown_experiment_of_the_launcher(tmp_path):
    """./run.sh with a name that is no experiment: one line naming the choices, exit code 2."""
    proc = subprocess.run(["bash", str(REPO / "run.sh"), "nonsense"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown command 'nonsense'"), proc.stderr
    assert "spiral" in lines[0] and "mnist" in lines[0]
    with pytest.raises(ValueError, match="unknown experiment 'nonsense'; one of spiral"):
        main("nonsense", [])              # the scripts' own entry point: a programming error


# -- files the package writes and reads ---------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoints_get_the_permissions_of_any_new_file(tmp_path, umask):
    from gmvae_np.layers import Linear

    layer = Linear(2, 3, backend="numpy")
    previous = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "c.npz", model=layer, config={})
        plain = tmp_path / "plain"
        plain.write_bytes(b"")
    finally:
        os.umask(previous)
    mode = path.stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == plain.stat().st_mode & 0o777
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary file left


def test_the_only_unpickling_is_the_checksummed_mnist_file():
    """Read every module of the package: pickle is loaded in one function only, after the SHA-256 gate,
    and every numpy.load passes allow_pickle=False."""
    package = REPO / "gmvae_np"
    unpickling, np_loads = [], []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                f = call.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                owner = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
                if owner == "pickle" and name in ("load", "loads", "Unpickler"):
                    unpickling.append((path.relative_to(package).as_posix(), fn.name, name))
                if owner == "np" and name == "load":
                    flags = {k.arg: k.value for k in call.keywords}
                    np_loads.append((path.relative_to(package).as_posix(), fn.name,
                                     isinstance(flags.get("allow_pickle"), ast.Constant)
                                     and flags["allow_pickle"].value is False))
    assert unpickling == [("data/mnist.py", "_unpickle_mnist", "load")]
    assert np_loads and all(ok for _, _, ok in np_loads), np_loads
    source = (package / "data" / "mnist.py").read_text(encoding="utf-8")
    body = source[source.index("def _unpickle_mnist"):]
    assert body.index("!= MNIST_PKL_SHA256") < body.index("pickle.load(")    # the gate comes first


def test_a_matching_checksum_is_what_lets_the_mnist_pickle_through(tmp_path, monkeypatch):
    """The gate is the checksum: the same bytes load once their SHA-256 is declared the known one."""
    tripwire_pickle(monkeypatch)
    fake = gzip.compress(b"\x80\x04N.")          # a pickle of None: never reached while the sum differs
    (tmp_path / "mnist.pkl.gz").write_bytes(fake)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_dataset("mnist", tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(data_module, "MNIST_PKL_SHA256", data_module._sha256(fake))
    with pytest.raises(DataError, match="could not be read"):   # unpickled (None), then refused as a format
        load_dataset("mnist", tmp_path)


def test_battery_size():
    """The battery only grows: a guard against rows lost in an edit."""
    assert len(CASES) >= 70


def test_a_resume_with_another_blas_thread_count_says_so(tmp_path, monkeypatch):
    """Exact resume needs the same BLAS thread count: the checkpoint records it, a change is named."""
    import io

    from gmvae_np import train as train_module

    settings = preset("spiral", n_per_arm=20, epochs=1, batch_size=25, plots=False)
    monkeypatch.setattr(train_module, "blas_threads", lambda: 1)
    Trainer(settings, tmp_path, out=io.StringIO()).run()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.npz").extra["position"]["blas_threads"] == 1
    for now, noted in ((1, False), (3, True)):
        monkeypatch.setattr(train_module, "blas_threads", lambda: now)
        err = io.StringIO()
        Trainer(settings.replace(epochs=1 + now), tmp_path, resume=True, out=io.StringIO(), err=err)
        assert ("trained with 1 BLAS thread(s) and resumes with 3" in err.getvalue()) == noted, err.getvalue()
