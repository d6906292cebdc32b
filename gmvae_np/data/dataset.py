"""The Dataset record every loader returns, its checks, and the file helpers the loaders share.

A Dataset holds float32 inputs, int64 labels, the likelihood the decoder should use (one of
gmvae_np.elbo.LIKELIHOODS: "bernoulli" for images in [0, 1], "gaussian" for real features) and, for
images, their (C, H, W) shape. Every problem with a user's data raises `DataError`, one line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..elbo import LIKELIHOODS

__all__ = ["DataError", "Dataset", "zscore", "scaling", "SHARED_SCALE"]


class DataError(ValueError):
    """A problem with the user's data: missing, corrupt or malformed files, or invalid arrays.

    The message is one line: what (file or data set), what is wrong, what to do. Line breaks in folded-in
    messages (from pip or a parser) are collapsed to spaces.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------------------------------
# The Dataset record
# --------------------------------------------------------------------------------------------------

def _as_inputs(a, what: str) -> np.ndarray:
    """Check an input array (2-D vectors or 4-D images, real, finite) and return it as float32."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what}: dtype {a.dtype} is not a real number type; convert the data to floats")
    if a.ndim not in (2, 4):
        raise DataError(f"{what}: has shape {a.shape}; expected 2-D (samples, features) "
                        f"or 4-D (samples, channels, height, width)")
    a = np.asarray(a, dtype=np.float32)
    bad = a.size - int(np.count_nonzero(np.isfinite(a)))
    if bad:
        raise DataError(f"{what}: {bad} value(s) are NaN or infinite; remove or impute them first")
    return a


def _as_labels(y, n: int, what: str) -> np.ndarray | None:
    """Check labels (one integer per row) and return them as int64."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(f"{what}: labels have shape {y.shape}; expected one label per row")
    if y.size != n:
        raise DataError(f"{what}: {y.size} labels for {n} rows; the counts must match")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError(f"{what}: labels are not all whole numbers; use integer class labels")
    elif y.dtype.kind not in "biu":
        raise DataError(f"{what}: labels have dtype {y.dtype}; use integer class labels")
    return y.astype(np.int64)


@dataclass
class Dataset:
    """One data set: training inputs and labels, an optional test split, and how to model it.

    x_train     float32, (N, D) for vectors or (N, C, H, W) for images
    y_train     int64 (N,) true classes, used only for evaluation (None when unknown)
    x_test      like x_train, or None when the set has no test split
    y_test      int64 labels of x_test, or None
    likelihood  "bernoulli" (inputs in [0, 1]) or "gaussian" (real-valued inputs)
    image_shape (C, H, W) when the rows are images (kept by flat(), so figures can redraw them)
    extra       free-form notes, e.g. the source file

    Evaluation uses x_eval / y_eval: the test split when there is one, else the training data
    (the unsupervised setting of the spiral and STL-10 experiments).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    likelihood: str = "gaussian"
    image_shape: tuple | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.name
        if self.likelihood not in LIKELIHOODS:
            raise DataError(f"{n}: likelihood {self.likelihood!r} is not one of {', '.join(LIKELIHOODS)}")
        self.x_train = _as_inputs(self.x_train, f"{n} (training inputs)")
        if self.x_train.shape[0] < 2:
            raise DataError(f"{n}: has {self.x_train.shape[0]} training row(s); at least 2 are needed")
        self.y_train = _as_labels(self.y_train, self.x_train.shape[0], f"{n} (training labels)")
        if self.x_test is None:
            if self.y_test is not None:
                raise DataError(f"{n}: test labels were given without test inputs")
        else:
            self.x_test = _as_inputs(self.x_test, f"{n} (test inputs)")
            if self.x_test.shape[1:] != self.x_train.shape[1:]:
                raise DataError(f"{n}: test rows have shape {self.x_test.shape[1:]} but training rows "
                                f"have {self.x_train.shape[1:]}; both splits need the same features")
            if self.x_test.shape[0] < 1:
                raise DataError(f"{n}: the test split is empty")
            self.y_test = _as_labels(self.y_test, self.x_test.shape[0], f"{n} (test labels)")
        if self.x_train.ndim == 4:
            shape = tuple(int(s) for s in self.x_train.shape[1:])
            if self.image_shape is not None and tuple(self.image_shape) != shape:
                raise DataError(f"{n}: image_shape {tuple(self.image_shape)} does not match the "
                                f"images' shape {shape}")
            self.image_shape = shape
        elif self.image_shape is not None:
            self.image_shape = tuple(int(s) for s in self.image_shape)
            if int(np.prod(self.image_shape)) != self.x_train.shape[1]:
                raise DataError(f"{n}: image_shape {self.image_shape} holds {int(np.prod(self.image_shape))} "
                                f"values but rows have {self.x_train.shape[1]}")

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    @property
    def x_eval(self) -> np.ndarray:
        """Inputs to evaluate clustering on: the test split if there is one, else the training data."""
        return self.x_test if self.x_test is not None else self.x_train

    @property
    def y_eval(self) -> np.ndarray | None:
        """Labels matching x_eval."""
        return self.y_test if self.x_test is not None else self.y_train

    @property
    def n_features(self) -> int:
        """Values per sample (D, or C*H*W for images)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_classes(self) -> int | None:
        """Number of distinct true classes over both splits (None without labels)."""
        ys = [y for y in (self.y_train, self.y_test) if y is not None]
        return int(np.unique(np.concatenate(ys)).size) if ys else None

    def flat(self) -> "Dataset":
        """A copy with images flattened to (N, C*H*W) rows, for fully connected models.

        image_shape is kept so that reconstructions can still be drawn as images.
        """
        def f(a):
            return None if a is None else a.reshape(a.shape[0], -1).copy()
        return dataclasses.replace(
            self, x_train=f(self.x_train), x_test=f(self.x_test),
            y_train=None if self.y_train is None else self.y_train.copy(),
            y_test=None if self.y_test is None else self.y_test.copy(), extra=dict(self.extra))

    def summary(self) -> str:
        """One line describing the set, for logs."""
        test = f", test {self.x_test.shape}" if self.x_test is not None else ", no test split"
        k = self.n_classes
        return (f"{self.name}: train {self.x_train.shape}{test}, {self.likelihood} likelihood"
                + (f", {k} classes" if k is not None else ""))


# --------------------------------------------------------------------------------------------------
# Helpers shared by the loaders
# --------------------------------------------------------------------------------------------------

def zscore(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """Standardise along `axis` to zero mean and unit (population) standard deviation, as float32.

    axis=1 standardises each row (each sample), as the original preprocessing of the feature sets;
    axis=0 each column (each feature). A constant row/column has no scale to divide by: it becomes all
    zeros (exactly; decided by max == min, not by a tolerance or an added epsilon).
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=axis, keepdims=True)
    std = centred.std(axis=axis, keepdims=True)
    constant = x.max(axis=axis, keepdims=True) == x.min(axis=axis, keepdims=True)
    scale = np.where(constant, 1.0, std)
    return np.where(constant, 0.0, centred / scale).astype(np.float32)


def _search_dirs(data_dir, subdir: str | None) -> list[Path]:
    d = Path(data_dir).expanduser()
    return [d] + ([d / subdir] if subdir else [])


def _find(data_dir, names, subdir: str | None = None) -> Path | None:
    """The first existing file among `names` in data_dir or data_dir/subdir."""
    for d in _search_dirs(data_dir, subdir):
        for name in names:
            p = d / name
            if p.is_file():
                return p
    return None


def _need_dir(data_dir, what: str, get: str) -> Path:
    if data_dir is None:
        raise DataError(f"{what}: needs a data directory; pass --data-dir DIR with the files ({get})")
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise DataError(f"{what}: data directory {d} does not exist; create it and put the files there ({get})")
    return d


def _missing(what: str, data_dir, names, subdir: str | None, get: str) -> DataError:
    dirs = _search_dirs(data_dir, subdir)
    where = " or ".join(str(d) for d in dirs)
    return DataError(f"{what}: {', '.join(names)} not found in {where}; {get}, and put the files in {dirs[0]}")


def _require(data_dir, names, subdir: str | None, what: str, get: str) -> list[Path]:
    """Paths of all the named files (each in data_dir or data_dir/subdir); any missing -> one DataError."""
    paths = [_find(data_dir, (n,), subdir) for n in names]
    absent = [n for n, p in zip(names, paths) if p is None]
    if absent:
        raise _missing(what, data_dir, absent, subdir, get)
    return paths


SHARED_SCALE = 4.0
"""standardize="auto" keeps the columns' relative scale when the 90th percentile of their ranges is at most
this many times the 10th (pixels, coordinates, measurements in one unit), and z-scores each column otherwise."""


def scaling(X: np.ndarray, standardize) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale), each (n_features,): the model trains on (X - mean) / scale.

    True: each column z-scored (a constant column becomes zeros). False: X as it is. "auto": z-scored when
    the columns' ranges differ widely (their 90th percentile above SHARED_SCALE times their 10th: a table of
    quantities in different units), else centred and divided by one scale for all, the root mean square of
    the column standard deviations, which keeps the data's shape: a 2-D ring stays a ring, an image's
    rarely inked border pixels stay quiet instead of being weighed like its centre.
    """
    constant = X.max(axis=0) == X.min(axis=0)
    if standardize is False:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    mean, std = X.mean(axis=0), X.std(axis=0)
    if standardize == "auto" and not constant.all():
        ranges = np.ptp(X[:, ~constant], axis=0)
        low, high = np.percentile(ranges, [10, 90])
        if high <= SHARED_SCALE * low:
            return mean, np.full(X.shape[1], float(np.sqrt(np.mean(std ** 2))))
    return mean, np.where(constant, 1.0, std)
