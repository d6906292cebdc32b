"""Small Debian packages made in the tests, shaped like dataset-fashion-mnist, for the fetch without network.

A .deb is an ar archive of three members: debian-binary ("2.0\\n"), control.tar.* and data.tar.*, the
last holding the installed files under ./usr/... . ``deb_bytes`` writes that layout in Python (so no
dpkg is needed to make one); ``fashion_files`` gives four tiny IDX files under the release's names, and
``content_sums`` the SHA-256 of their gunzipped bytes, which a test declares the known ones.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import time

import numpy as np

IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DEB_NAME = "dataset-fashion-mnist_9.9-1_all.deb"   # the name apt-get download gives a fetched .deb
PREFIX = "./usr/share/datasets/fashion-mnist/"


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of an unsigned-byte array: magic 0x0000 08 <ndim>, big-endian sizes, values."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def fashion_files(n_train: int = 8, n_test: int = 4, seed: int = 0) -> dict:
    """{name: gzipped IDX bytes} of a tiny Fashion-MNIST-like set (labels 0..9 in turn)."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10,
              rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10)
    return {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in zip(IDX_NAMES, arrays)}


def content_sums(files: dict) -> dict:
    """{name: SHA-256 of the gunzipped bytes}: what the loader checks a fetched file against."""
    return {name: hashlib.sha256(gzip.decompress(data)).hexdigest() for name, data in files.items()}


def tar_bytes(files: dict, compression: str = "xz") -> bytes:
    """A tar archive ("xz", "gz", "bz2" or "" for none) of {path: bytes}, with the folders above each file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tar:
        folders = sorted({path.rsplit("/", k)[0] for path in files for k in range(1, path.count("/"))})
        for folder in folders:
            info = tarfile.TarInfo(folder + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ar_bytes(members: list) -> bytes:
    """An ar archive of [(name, bytes), ...] in the common (System V / GNU) format dpkg writes."""
    out = [b"!<arch>\n"]
    for name, data in members:
        head = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode("ascii") + b"`\n"
        out += [head, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def deb_bytes(files: dict, compression: str = "xz", data_member: str | None = None,
              data: bytes | None = None) -> bytes:
    """A .deb holding {name: bytes} under the package's folder; data_member/data override the data.tar."""
    control = tar_bytes({"./control": b"Package: dataset-fashion-mnist\nVersion: 9.9-1\n"}, "xz")
    if data is None:
        data = tar_bytes({PREFIX + name: blob for name, blob in files.items()}, compression)
    name = data_member or ("data.tar." + compression if compression else "data.tar")
    return ar_bytes([("debian-binary", b"2.0\n"), ("control.tar.xz", control), (name, data)])
