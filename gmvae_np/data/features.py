"""SVHN and the pretrained-feature sets (CIFAR-10, CIFAR-100, STL-10), read from MATLAB .mat files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import DataError, Dataset, _need_dir, _require, zscore

__all__ = ["SVHN_URL", "load_svhn", "load_svhn_images", "load_cifar10", "load_cifar100", "load_stl10"]


# --------------------------------------------------------------------------------------------------
# .mat files
# --------------------------------------------------------------------------------------------------

def _load_mat(path: Path, what: str) -> dict:
    """Read a MATLAB .mat file (v4/v5/v7 with SciPy; v7.3 needs the optional h5py)."""
    import scipy.io
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # SciPy's answer to a v7.3 (HDF5) file
        pass
    except Exception as e:  # SciPy's parser raises many types on corrupt input; fold them into one line
        raise DataError(f"{what}: {path} is not a readable .mat file ({type(e).__name__}: {e}); "
                        f"re-create it with scipy.io.savemat or MATLAB's save") from None
    try:
        import h5py
    except ImportError:
        raise DataError(f"{what}: {path} is a MATLAB v7.3 (HDF5) file; re-save it in MATLAB with "
                        f"save(..., '-v7') or install h5py (pip install h5py) to read it") from None
    try:
        with h5py.File(str(path), "r") as f:
            # MATLAB stores arrays column-major: HDF5 sees them transposed.
            return {k: np.array(v).T for k, v in f.items() if isinstance(v, h5py.Dataset)}
    except Exception as e:
        raise DataError(f"{what}: {path} is not a readable v7.3 .mat file ({type(e).__name__}: {e}); "
                        f"re-save it in MATLAB with save(..., '-v7')") from None


def _mat_key(mat: dict, keys, path: Path, what: str) -> np.ndarray:
    for k in keys:
        if k in mat:
            return np.asarray(mat[k])
    found = sorted(k for k in mat if not k.startswith("__"))
    raise DataError(f"{what}: {path} has no variable {' or '.join(repr(k) for k in keys)} "
                    f"(found: {', '.join(found) or 'none'}); save the array under that name")


def _labels_1d(y: np.ndarray, path: Path, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim > 2 or (y.ndim == 2 and 1 not in y.shape):
        raise DataError(f"{what}: labels in {path} have shape {y.shape}; expected a vector")
    y = y.reshape(-1)
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and
                                     (not np.all(np.isfinite(y)) or np.any(y != np.round(y)))):
        raise DataError(f"{what}: labels in {path} are not whole numbers; use integer class labels")
    return y.astype(np.int64)


def _shift_one_based(*ys):
    """Shift labels to start at 0 when the files use MATLAB's 1-based classes (smallest label is 1).

    Judged over all splits together, so a test split that happens to lack class 0 is not shifted alone.
    """
    present = [y for y in ys if y is not None]
    if present and min(int(y.min()) for y in present) == 1:
        return tuple(None if y is None else y - 1 for y in ys)
    return ys


# --------------------------------------------------------------------------------------------------
# SVHN and the pretrained-feature sets
# --------------------------------------------------------------------------------------------------

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"


def _mat_split(path: Path, xkeys, ykeys, what):
    mat = _load_mat(path, what)
    x = _mat_key(mat, xkeys, path, what)
    y = _labels_1d(_mat_key(mat, ykeys, path, what), path, what)
    return path, x, y


def _features(x, y, path, what) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise DataError(f"{what}: features in {path} have shape {x.shape} and dtype {x.dtype}; "
                        f"expected a real (samples x features) matrix")
    if x.shape[0] != y.size:
        raise DataError(f"{what}: {path} has {x.shape[0]} feature rows but {y.size} labels; "
                        f"the counts must match (rows are samples)")
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataError(f"{what}: {path} has {bad} NaN or infinite feature value(s); fix the file")
    return zscore(x, axis=1)


def load_svhn(data_dir) -> Dataset:
    """SVHN as GIST features: train_gist.mat and test_gist.mat in data_dir or data_dir/svhn.

    Each file holds X (N x D features) and Y (N labels, 1..10 where 10 means the digit 0). Rows are
    z-scored; Gaussian likelihood. GIST descriptors are computed from the official SVHN images
    (http://ufldl.stanford.edu/housenumbers/) with a GIST extractor, one row per image.
    """
    get = (f"compute GIST features of the SVHN images ({SVHN_URL}) and save them with "
           f"scipy.io.savemat(path, {{'X': features, 'Y': labels}})")
    d = _need_dir(data_dir, "SVHN", get)
    out, src = [], None
    for path in _require(d, ("train_gist.mat", "test_gist.mat"), "svhn", "SVHN", get):
        src, x, y = _mat_split(path, ("X", "x"), ("Y", "y"), "SVHN")
        y = np.where(y == 10, 0, y)
        out += [_features(x, y, src, "SVHN"), y]
    return Dataset(name="svhn", x_train=out[0], y_train=out[1], x_test=out[2], y_test=out[3],
                   likelihood="gaussian", extra={"source": str(src.parent), "features": "GIST, rows z-scored"})


def load_svhn_images(data_dir) -> Dataset:
    """The official SVHN images: train_32x32.mat and test_32x32.mat in data_dir or data_dir/svhn.

    Each holds X, (32, 32, 3, N) uint8, and y, (N, 1) with 10 meaning the digit 0. Returns images
    (N, 3, 32, 32) in [0, 1] with a Bernoulli likelihood (as for MNIST's intensities).
    """
    get = f"download train_32x32.mat and test_32x32.mat from {SVHN_URL}"
    d = _need_dir(data_dir, "SVHN", get)
    out, src = [], None
    for split, path in zip(("train", "test"),
                           _require(d, ("train_32x32.mat", "test_32x32.mat"), "svhn", "SVHN", get)):
        src, x, y = _mat_split(path, ("X",), ("y", "Y"), "SVHN")
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise DataError(f"SVHN: X in {src} has shape {x.shape}, expected (32, 32, 3, N); "
                            f"use the official {split}_32x32.mat")
        if x.shape[3] != y.size:
            raise DataError(f"SVHN: {src} has {x.shape[3]} images but {y.size} labels; use the official file")
        images = np.transpose(x, (3, 2, 0, 1)).astype(np.float32) / np.float32(255.0)
        out += [images, np.where(y == 10, 0, y)]
    return Dataset(name="svhn-images", x_train=out[0], y_train=out[1], x_test=out[2], y_test=out[3],
                   likelihood="bernoulli", image_shape=(3, 32, 32), extra={"source": str(src.parent)})


_FEATURE_GET = ("extract features of the images with a pretrained network (one row per image) and save "
                "them with scipy.io.savemat(path, {'x': features, 'y': labels})")


def _load_feature_set(data_dir, name: str, subdir: str, files, what: str) -> Dataset:
    d = _need_dir(data_dir, what, _FEATURE_GET)
    splits = [_mat_split(p, ("x", "X"), ("y", "Y"), what)
              for p in _require(d, files, subdir, what, _FEATURE_GET)]
    ys = _shift_one_based(*[y for _, _, y in splits])
    xs = [_features(x, y, path, what) for (path, x, _), y in zip(splits, ys)]
    test = (xs[1], ys[1]) if len(xs) > 1 else (None, None)
    return Dataset(name=name, x_train=xs[0], y_train=ys[0], x_test=test[0], y_test=test[1],
                   likelihood="gaussian",
                   extra={"source": str(splits[0][0].parent), "features": "pretrained-network, rows z-scored"})


def load_cifar10(data_dir) -> Dataset:
    """CIFAR-10 as pretrained-network features: cifar10_train_feature.mat and cifar10_test_feature.mat.

    Looked for in data_dir or data_dir/cifar-10. Each holds x (N x D) and y (N labels, 0..9 or 1..10).
    The features are those of a network pretrained on another task (the original experiments cluster
    such features, not raw pixels); rows are z-scored and modelled with a Gaussian likelihood.
    """
    return _load_feature_set(data_dir, "cifar-10", "cifar-10",
                             ("cifar10_train_feature.mat", "cifar10_test_feature.mat"), "CIFAR-10")


def load_cifar100(data_dir) -> Dataset:
    """CIFAR-100 features: cifar100_train_feature.mat and cifar100_test_feature.mat (keys x, y).

    Looked for in data_dir or data_dir/cifar-100; labels 0..C-1 (or 1..C, shifted). See load_cifar10.
    """
    return _load_feature_set(data_dir, "cifar-100", "cifar-100",
                             ("cifar100_train_feature.mat", "cifar100_test_feature.mat"), "CIFAR-100")


def load_stl10(data_dir) -> Dataset:
    """STL-10 features: stl10_feature.mat (keys x, y) in data_dir or data_dir/stl-10.

    One file, no test split: clustering is evaluated on the same rows (Dataset.x_eval). See load_cifar10.
    """
    return _load_feature_set(data_dir, "stl-10", "stl-10", ("stl10_feature.mat",), "STL-10")

