"""The user's own data: one sample per row, from a .npy, .npz or .csv file (`load_matrix`)."""
from __future__ import annotations

import csv
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .dataset import DataError, Dataset, scaling, zscore

__all__ = ["load_matrix"]


def _parse_csv(path: Path, what: str):
    """Read a numeric CSV (comma-separated) into (cells as strings, header or None)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{what}: {path} is not a readable CSV text file ({e}); save it as UTF-8 "
                        f"comma-separated numbers") from None
    if not rows:
        raise DataError(f"{what}: {path} is empty; it needs one row per sample")
    header = None

    def numeric(c):
        try:
            float(c)
            return True
        except ValueError:
            return False

    if not all(numeric(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(header) if header is not None else (len(rows[0]) if rows else 0)
    for i, r in enumerate(rows):
        if len(r) != width:
            line = i + 1 + (header is not None)
            raise DataError(f"{what}: {path} line {line} has {len(r)} values but the first row has {width}; "
                            f"every row needs the same number of columns")
    return rows, header, width


def _csv_numbers(rows, cols, path, what, header_rows: int) -> np.ndarray:
    out = np.empty((len(rows), len(cols)), dtype=np.float64)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            try:
                out[i, j] = float(r[c])
            except ValueError:
                raise DataError(f"{what}: {path} line {i + 1 + header_rows}, column {c + 1}: {r[c]!r} is not "
                                f"a number; the CSV must be numeric apart from a header row") from None
    return out


def _encode_labels(values, what: str) -> tuple[np.ndarray, list]:
    """Re-encode arbitrary label values (numbers or strings) as 0..C-1 in sorted order."""
    values = np.asarray(values)
    if values.dtype.kind in "US":
        try:
            values = values.astype(np.float64)
        except ValueError:
            pass
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise DataError(f"{what}: labels contain NaN or infinite values; every sample needs a label")
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        odd = values[values != np.round(values)][0]
        raise DataError(f"{what}: the labels hold values that are not whole numbers (e.g. {odd:g}), so they are "
                        f"not classes; give a column or file of class numbers or names")
    uniq, codes = np.unique(values, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), [u.item() if hasattr(u, "item") else u for u in uniq]


def _load_array(path: Path, what: str, keys=("x", "X", "data"), label_keys=("y", "Y", "labels")):
    """x (and labels when an .npz holds them) from a .npy or .npz file; corrupt files -> DataError."""
    obj = _load_npy(path, what)
    if isinstance(obj, np.ndarray):
        return obj, None
    labels = None
    try:
        with obj as z:
            found = list(z.files)
            xk = next((k for k in keys if k in found), None)
            if xk is None:
                raise DataError(f"{what}: {path} has no array named {', '.join(keys)} "
                                f"(found: {', '.join(found) or 'none'}); save the matrix as x")
            x = z[xk]
            yk = next((k for k in label_keys if k in found), None)
            if yk is not None:
                labels = z[yk]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{what}: {path} is not a readable .npz file ({_why(e)}); "
                        f"save it again with numpy.savez") from None
    return x, labels


def _why(e: Exception) -> str:
    """Why NumPy could not read a file, in the user's terms (an object array is refused, never unpickled)."""
    if "allow_pickle" in str(e):
        return "it holds arrays of Python objects, which are never unpickled"
    return f"{type(e).__name__}: {e}"


NUMPY_MAGIC = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")   # a .npy header; a zip archive (.npz), empty or not


def _load_npy(path: Path, what: str):
    """np.load without pickles: an ndarray for .npy, an NpzFile for .npz; unreadable -> DataError."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"{what}: {path} cannot be read ({e}); check its permissions") from None
    if not head.startswith(NUMPY_MAGIC):
        raise DataError(f"{what}: {path} is not a NumPy file: it begins with neither a .npy header nor a zip "
                        f"archive's (.npz); save the matrix with numpy.save or numpy.savez")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{what}: {path} is not a readable {path.suffix or 'NumPy'} file "
                        f"({_why(e)}); save it again with numpy.save or numpy.savez "
                        f"(numeric arrays only)") from None


def _labels_from_file(p: Path, what: str) -> np.ndarray:
    if p.suffix == ".npy":
        y = _load_npy(p, what)
    elif p.suffix in (".csv", ".txt"):
        rows, header, width = _parse_csv(p, what)
        if width != 1:
            raise DataError(f"{what}: label file {p} has {width} columns; it needs one label per line")
        y = np.array([r[0].strip() for r in rows])
    else:
        raise DataError(f"{what}: label file {p} is not .npy, .csv or .txt; save the labels in one of those")
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(f"{what}: label file {p} holds shape {y.shape}; it needs one label per sample")
    return y


def load_matrix(path, labels=None, standardize=True, name: str | None = None) -> Dataset:
    """The user's own data: one sample per row, from a .npy, .npz or .csv file.

    path        .npy  a 2-D array;
                .npz  arrays named x (or X, data) and optionally labels named y (or Y, labels);
                .csv  comma-separated numbers, one sample per line; a first row that is not all
                      numbers is a header (column names) and is skipped.
    labels      optional true classes, for evaluation only:
                - a path to a .npy or .csv/.txt file with one label per sample, or
                - a column of the matrix, by index (int; -1 = last) or, for a CSV with a header, by
                  name; that column is removed from the features (CSV label columns may be text).
                Labels are re-encoded as 0..C-1 in sorted order; extra["label_values"] keeps the originals.
    standardize True: z-score each COLUMN (feature) to zero mean and unit variance (constant columns -> 0);
                False: the columns as they are; "auto": z-scored when their ranges differ by more than
                SHARED_SCALE times, else centred and divided by one scale for all (:func:`scaling`, what
                GMVAEClustering does by default).
                Per column, unlike the per-row scaling of the feature sets: a user's table usually
                mixes features in different units, and it is their scales, not each sample's overall
                level, that would otherwise dominate the Gaussian likelihood.
    Returns a Dataset with no test split and a Gaussian likelihood.
    """
    p = Path(path).expanduser()
    what = name or p.stem
    if p.is_dir():
        raise DataError(f"{what}: {p} is a folder; give the path of a .npy, .npz or .csv file in it")
    if not p.is_file():
        raise DataError(f"{what}: {p} does not exist; check the path")
    y_raw = None
    label_col = None
    if labels is not None and not isinstance(labels, (int, np.integer)):
        lp = Path(str(labels)).expanduser()
        if lp.suffix in (".npy", ".csv", ".txt") and lp.is_file():
            y_raw = _labels_from_file(lp, what)
        elif lp.suffix in (".npy", ".csv", ".txt") and p.suffix != ".csv":
            raise DataError(f"{what}: label file {lp} does not exist; check the path")
        else:
            label_col = str(labels)
    elif labels is not None:
        label_col = int(labels)

    suffix = p.suffix.lower()
    if suffix == ".csv":
        rows, header, width = _parse_csv(p, what)
        col = None
        if label_col is not None:
            if isinstance(label_col, int):
                col = label_col
            elif header is not None and label_col in header:
                col = header.index(label_col)
            elif label_col.lstrip("-").isdigit():
                col = int(label_col)
            else:
                raise DataError(f"{what}: labels {label_col!r} is neither a label file nor a column of {p} "
                                f"(columns: {', '.join(header) if header else 'no header row'})")
            if not -width <= col < width:
                raise DataError(f"{what}: label column {col} is outside the {width} columns of {p}")
            col %= width
            y_raw = np.array([r[col].strip() for r in rows])
        cols = [j for j in range(width) if j != col]
        if not cols:
            raise DataError(f"{what}: {p} has no feature columns besides the labels")
        x = _csv_numbers(rows, cols, p, what, header is not None)
    elif suffix in (".npy", ".npz"):
        x, y_file = _load_array(p, what)
        if y_raw is None and y_file is not None and label_col is None:
            y_raw = y_file
        x = np.asarray(x)
        if label_col is not None:
            if not isinstance(label_col, int) and not str(label_col).lstrip("-").isdigit():
                raise DataError(f"{what}: labels {label_col!r} names a column, but {p.suffix} files have no "
                                f"column names; give a column index or a label file")
            if x.ndim != 2:
                raise DataError(f"{what}: {p} holds shape {x.shape}; expected a 2-D matrix")
            col = int(label_col)
            if not -x.shape[1] <= col < x.shape[1]:
                raise DataError(f"{what}: label column {col} is outside the {x.shape[1]} columns of {p}")
            col %= x.shape[1]
            y_raw = x[:, col]
            x = np.delete(x, col, axis=1)
    else:
        raise DataError(f"{what}: {p} has suffix {p.suffix or '(none)'}; use .npy, .npz or .csv")

    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: {p} holds {x.dtype} values; the matrix must be numeric")
    if x.ndim != 2:
        raise DataError(f"{what}: {p} holds shape {x.shape}; expected a 2-D matrix "
                        f"(one sample per row, one feature per column)")
    if x.shape[0] < 2:
        raise DataError(f"{what}: {p} has {x.shape[0]} row(s); at least 2 samples are needed")
    if x.shape[1] < 1:
        raise DataError(f"{what}: {p} has no feature columns")
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataError(f"{what}: {p} has {bad} NaN or infinite value(s); remove or impute them first")
    extra = {"source": str(p), "standardized": standardize if standardize == "auto" else bool(standardize)}
    y = None
    if y_raw is not None:
        y_raw = np.asarray(y_raw)
        if y_raw.ndim == 2 and 1 in y_raw.shape:
            y_raw = y_raw.reshape(-1)
        if y_raw.ndim != 1 or y_raw.size != x.shape[0]:
            raise DataError(f"{what}: {y_raw.size} labels for {x.shape[0]} rows in {p}; "
                            f"give exactly one label per row")
        y, extra["label_values"] = _encode_labels(y_raw, what)
    if isinstance(standardize, str) and standardize == "auto":
        mean, scale = scaling(x.astype(np.float64), "auto")
        x = ((x - mean) / scale).astype(np.float32)
    else:
        x = zscore(x, axis=0) if standardize else x.astype(np.float32)
    return Dataset(name=what, x_train=x, y_train=y, likelihood="gaussian", extra=extra)

