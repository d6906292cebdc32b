"""The k-nearest-neighbour graph of the training rows, for the neighbour term (docs/gmvae.md, section 11).

Images whose pixels are close are, far more often than not, the same digit: in a 50-dimensional PCA space
of MNIST's training images, about 96 % of each image's 10 nearest neighbours share its label. The
neighbour term (gmvae_np.elbo.assignment_agreement, weighted by ``--neighbour-weight``) asks a row and one
of its neighbours for one cluster. This module builds the graph once, before training:

    space     "pca" (default): the training rows, centred, projected on their ``dims`` leading principal
              axes. "deskew" (single-channel images only): each image first straightened (:func:`deskew`:
              its slant sheared away and its centre of mass moved to the middle), then the same PCA; on
              MNIST the edges within one digit rise from 95.7 to 97.4 %, and the share of the edges
              among 4s and 9s that join a 4 to a 9 falls from 3.1 to 1.7 % (docs/results.md, section 8).
              "contrast" (non-negative rows, such as pixels in [0, 1]): each row's values square-rooted,
              then the row standardised over its own values (its brightness and contrast taken out), then
              the same PCA; on Fashion-MNIST, where deskew lowers the edges within one class from 81.3 to
              80.8 %, it raises them to 83.6 % (docs/results.md, section 8).
              "raw": the rows as they are. The rows are those the model trains on, so a table the
              estimator z-scores is z-scored here too; MNIST's pixels are not: z-scoring them would weigh
              the rarely inked border pixels like the centre's, and on the 60,000 training images 93.0 %
              of 10-NN edges then join one digit, against 95.7 % without (docs/results.md, section 8).
    graph     for every row i, its k nearest other rows by Euclidean distance in that space, nearest
              first: exact, not approximate. ``mutual`` keeps j in row i only when i is in row j too
              (a row with no mutual neighbour keeps its nearest one), which drops a share of the edges
              that cross between two dense groups (on MNIST's PCA-50 graph, the edges within one digit
              rise from 95.7 to 96.1 %, with 5.3 neighbours a row left of 10).

How it is computed: the squared distances |a|^2 + |b|^2 - 2 a.b of a block of rows to all rows are one
matrix product on the backend (NumPy or CuPy), the k smallest of each row are selected, then sorted;
memory is bounded by ``block_bytes`` for the block's distance matrix, whatever the number of rows.

Where it is kept: the trainer stores it as ``neighbours-<key>.npz`` in the run directory (or in the root
of a run with restarts, or of a series of seeds), named by a key made from the training rows' SHA-256
and the graph's settings, so a resume, every restart and every seed of a series read the same file and
never build it again (gmvae_np.rundir owns the path; :func:`graph_for` looks it up).

The graph never reads labels. When the data has them, :meth:`NeighbourGraph.agreement` reports the share
of edges that join two rows of one class, a diagnostic of the space (written beside the graph and
printed), not an input to training.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

import autograd_lite as ag

__all__ = ["SPACES", "NeighbourGraph", "GraphError", "deskew", "contrast", "embed", "exact_knn", "mutual_graph",
           "build_graph", "fingerprint", "graph_key", "graph_key_of", "graph_for", "sample_neighbours", "adjacency",
           "connect", "spectral_partition"]

SPACES = ("pca", "deskew", "contrast", "raw")
PCA_SPACES = ("pca", "deskew", "contrast")   # the spaces that end in a PCA of --neighbour-dims axes
BLOCK_BYTES = 16 << 20
"""The largest distance block (block rows x all rows) kept at once: 16 MiB (a block that stays in cache
between its passes is faster than a larger one)."""


class GraphError(ValueError):
    """A neighbour graph that cannot be built or used (bad k, a graph of other data)."""


@dataclass
class NeighbourGraph:
    """Neighbours of each of n rows: ``indices`` (n, k) int64, nearest first, and ``counts`` (n,), how many
    of the k columns of each row are neighbours (k, or fewer for a mutual graph, whose rows are padded
    with their first neighbour). ``fingerprint`` is the SHA-256 of the rows it was built on."""

    indices: np.ndarray
    counts: np.ndarray
    k: int
    space: str
    dims: int
    mutual: bool
    fingerprint: str
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    @property
    def edges(self) -> int:
        return int(np.sum(self.counts))

    def settings(self) -> dict:
        return {"k": self.k, "space": self.space, "dims": self.dims, "mutual": self.mutual}

    def agreement(self, labels) -> float:
        """The share of edges (i, j) whose rows carry one label: a diagnostic, never used in training."""
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != self.n:
            raise GraphError(f"agreement: {labels.shape[0]} labels for a graph of {self.n} rows")
        valid = np.arange(self.indices.shape[1])[None, :] < self.counts[:, None]
        same = labels[self.indices] == labels[:, None]
        return float(np.sum(same & valid) / np.sum(valid))

    def describe(self, labels=None) -> str:
        """One line: what the graph is, how long it took, and its label agreement when labels are given."""
        space = {"pca": f"PCA-{self.dims}", "deskew": f"PCA-{self.dims} of the deskewed images",
                 "contrast": f"PCA-{self.dims} of the contrast-normalised rows"}.get(self.space, "the raw rows")
        kind = "mutual " if self.mutual else ""
        line = (f"neighbour graph: {self.k} {kind}nearest neighbours of {self.n:,} rows in {space} "
                f"({self.edges / self.n:.1f} per row)")
        if self.seconds:
            line += f", built in {self.seconds:.1f} s"
        if labels is not None:
            line += f"; {100 * self.agreement(labels):.1f} % of edges join rows of one class (labels not used)"
        return line

    # -- storage: the arrays and a JSON header in one .npz -------------------------------------------------
    def arrays(self) -> dict:
        header = {**self.settings(), "fingerprint": self.fingerprint, "seconds": self.seconds}
        return {"indices": self.indices, "counts": self.counts,
                "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}

    @classmethod
    def from_arrays(cls, arrays, where: str = "the graph") -> "NeighbourGraph":
        try:
            header = json.loads(bytes(np.asarray(arrays["header"], dtype=np.uint8)).decode())
            indices = np.asarray(arrays["indices"], dtype=np.int64)
            counts = np.asarray(arrays["counts"], dtype=np.int64)
            graph = cls(indices=indices, counts=counts, k=int(header["k"]), space=str(header["space"]),
                        dims=int(header["dims"]), mutual=bool(header["mutual"]),
                        fingerprint=str(header["fingerprint"]), seconds=float(header.get("seconds", 0.0)))
        except (KeyError, ValueError, TypeError) as e:
            raise GraphError(f"{where} is not a neighbour graph ({type(e).__name__}: {e}); delete it and "
                             f"train again to rebuild it") from None
        n, k = graph.indices.shape if graph.indices.ndim == 2 else (0, 0)
        if (graph.indices.ndim != 2 or k != graph.k or graph.counts.shape != (n,)
                or np.any(graph.counts < 1) or np.any(graph.counts > k)
                or np.any(graph.indices < 0) or np.any(graph.indices >= n)):
            raise GraphError(f"{where} is damaged (its indices or counts are out of range); delete it and "
                             f"train again to rebuild it")
        return graph

    def check_rows(self, x, data_print: str | None = None) -> None:
        """Refuse a graph built on other rows than ``x`` (one line: what differs, what to do);
        ``data_print``: x's fingerprint when the caller has it already."""
        data_print = fingerprint(x) if data_print is None else data_print
        if self.n != x.shape[0] or self.fingerprint != data_print:
            raise GraphError(f"the neighbour graph was built on other data ({self.n:,} rows, SHA-256 "
                             f"{self.fingerprint[:12]}) than the {x.shape[0]:,} training rows given (SHA-256 "
                             f"{data_print[:12]}); build it from these rows (delete the graph file)")


# -- the space ------------------------------------------------------------------------------------------

def deskew(images, backend="numpy", block_rows: int = 4096):
    """Straighten single-channel images (n, H, W): the classic deskew of handwriting, no labels involved.

    Each image's ink is weighed as a mass: its centre (r0, c0), the variance of its rows v_r and the
    covariance of rows and columns v_rc. A slanted stroke has v_rc != 0; the horizontal shear
    c -> c + a (r - r_mid) with a = v_rc / v_r removes it, and a shift moves the centre of mass to the
    middle of the frame (r_mid, c_mid). The output pixel (r, c) reads the input, bilinearly, at

        row  r + (r0 - r_mid),    column  c + a (r - r_mid) + (c0 - c_mid)

    with zeros outside the frame. A blank image is returned as it is. Float32 (n, H, W) on ``backend``,
    computed ``block_rows`` images at a time.
    """
    b = ag.get_backend(backend)
    xp = b.xp
    images = b.asarray(images, dtype="float32")
    n, h, w = images.shape
    r = xp.reshape(xp.arange(h, dtype=xp.float32, device=b.device), (1, h, 1))
    c = xp.reshape(xp.arange(w, dtype=xp.float32, device=b.device), (1, 1, w))
    r_mid, c_mid = (h - 1) / 2, (w - 1) / 2
    out = []
    for lo in range(0, n, block_rows):
        img = images[lo:min(lo + block_rows, n), ...]
        m = img.shape[0]
        mass = xp.sum(img, axis=(1, 2), keepdims=True)
        safe = xp.where(mass > 0, mass, xp.ones_like(mass))       # a blank image stays blank whatever it reads
        r0 = xp.sum(img * r, axis=(1, 2), keepdims=True) / safe
        c0 = xp.sum(img * c, axis=(1, 2), keepdims=True) / safe
        v_r = xp.sum(img * (r - r0) ** 2, axis=(1, 2), keepdims=True) / safe
        v_rc = xp.sum(img * (r - r0) * (c - c0), axis=(1, 2), keepdims=True) / safe
        slope = v_rc / xp.where(v_r > 0, v_r, xp.ones_like(v_r))  # v_r = 0 forces v_rc = 0: no shear
        rows = r + (r0 - r_mid)                                    # where each output pixel reads: (m, h, 1)
        cols = c + slope * (r - r_mid) + (c0 - c_mid)              # and (m, h, w)
        top, left = xp.floor(rows), xp.floor(cols)
        flat = xp.reshape(img, (m * h * w,))
        base = xp.reshape(xp.arange(m, dtype=xp.int64, device=b.device) * (h * w), (m, 1, 1))
        value = xp.zeros((m, h, w), dtype=xp.float32, device=b.device)
        for dr in (0, 1):
            for dc in (0, 1):
                rr, cc = top + dr, left + dc
                inside = (rr >= 0) & (rr <= h - 1) & (cc >= 0) & (cc <= w - 1)
                # bilinear weights (1 - distance, per axis), zero for a pixel outside the frame
                weight = (1 - xp.abs(rows - rr)) * (1 - xp.abs(cols - cc)) * xp.astype(inside, xp.float32)
                index = base + xp.astype(xp.where(inside, rr * w + cc, xp.zeros_like(rr)), xp.int64)
                value = value + weight * xp.reshape(xp.take(flat, xp.reshape(index, (-1,))), (m, h, w))
        out.append(value)
    return xp.concat(out, axis=0)


def embed(x, space: str = "pca", dims: int = 50, backend="numpy", image_shape=None):
    """The rows of ``x`` (n, D) in the graph's space, as a float32 array (n, d) on ``backend``.

    "pca": the rows centred, then projected on the ``dims`` leading eigenvectors of their covariance (all
    D when dims >= D). "deskew": the rows as images of ``image_shape`` ((H, W) or (1, H, W)), each
    straightened by :func:`deskew`, then the same PCA. "contrast": the rows (no value below 0) square-rooted
    and each standardised over its own values (:func:`contrast`), then the same PCA. "raw": x itself.
    """
    if space not in SPACES:
        raise GraphError(f"the neighbour space must be one of {', '.join(SPACES)}; got {space!r}")
    b = ag.get_backend(backend)
    xp = b.xp
    n = x.shape[0]
    rows = b.asarray(np.asarray(x, dtype=np.float32).reshape(n, -1), dtype="float32")
    if space == "raw":
        return rows
    if space == "deskew":
        hw = _single_channel(image_shape, rows.shape[1])
        rows = xp.reshape(deskew(xp.reshape(rows, (n,) + hw), b), (n, -1))
    if space == "contrast":
        rows = contrast(rows, b)
    centred = rows - xp.mean(rows, axis=0)
    # the covariance in float64: its small eigenvalues decide nothing here, but its large ones must be right
    c64 = xp.astype(centred, xp.float64)
    cov = (xp.matrix_transpose(c64) @ c64) / max(n - 1, 1)
    _, vectors = xp.linalg.eigh(cov)                          # ascending eigenvalues
    d = min(int(dims), cov.shape[0])
    top = xp.astype(xp.flip(vectors, axis=1)[:, :d], xp.float32)   # the widest axis first
    return centred @ top


def contrast(rows, backend="numpy"):
    """The rows (n, D), none below 0, square-rooted, then each z-scored over its own D values: two images
    that differ by a factor of brightness land on one point, and the square root weighs faint pixels more
    against bright ones. A constant row becomes zeros. Float32 on ``backend``; a negative value ->
    GraphError."""
    b = ag.get_backend(backend)
    xp = b.xp
    rows = b.asarray(rows, dtype="float32")
    _non_negative(float(b.to_numpy(xp.min(rows))) if rows.shape[0] else 0.0)
    root = xp.sqrt(rows)
    centred = root - xp.mean(root, axis=1, keepdims=True)
    scale = xp.sqrt(xp.mean(centred * centred, axis=1, keepdims=True))
    # constant: decided by max == min, as gmvae_np.data.zscore does, not by a rounded mean's residue
    varies = xp.max(root, axis=1, keepdims=True) > xp.min(root, axis=1, keepdims=True)
    return xp.where(varies, centred / xp.where(varies, scale, xp.ones_like(scale)), xp.zeros_like(centred))


def _non_negative(least: float) -> None:
    if least < 0:
        raise GraphError(f"the contrast neighbour space takes square roots, but these rows hold values down to "
                         f"{least:.3g}: use --neighbour-space pca")


def _single_channel(image_shape, features: int) -> tuple:
    """(H, W) of single-channel images of ``features`` pixels, or a GraphError saying why not."""
    shape = tuple(image_shape) if image_shape is not None else ()
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2 or shape[0] * shape[1] != features:
        raise GraphError(f"the deskew neighbour space needs single-channel images; these rows "
                         f"({features} features, image shape {image_shape}) are not: use "
                         f"--neighbour-space pca")
    return shape


# -- the graph ------------------------------------------------------------------------------------------

def _smallest(xp, d, k: int):
    """Column indices of the k smallest values of each row of d, in no particular order."""
    argpartition = getattr(xp, "argpartition", None)
    if argpartition is not None:
        return argpartition(d, k - 1, axis=1)[:, :k]
    return xp.argsort(d, axis=1, stable=True)[:, :k]     # namespaces without argpartition (array-api-strict)


def exact_knn(z, k: int, backend="numpy", block_bytes: int = BLOCK_BYTES, progress=None):
    """The k nearest other rows of every row of z (n, d) on ``backend``: host int64 (n, k), nearest first
    (equal distances by row number). ``progress(done, n)`` is called after each block of rows.

    A block of rows at a time: its squared distances to every row, |b|^2 - 2 a.b (the row's own |a|^2
    orders nothing within the row), are one matrix product, at most ``block_bytes`` of them. The k
    smallest of each row are then found without a full selection over all n columns:

    1. the n columns are dealt into L groups of g (group c holds the columns c, c + L, c + 2L, ...), and
       each row's minimum within each group is taken (one elementwise minimum of g slices);
    2. the k + 1 groups with the smallest minima hold every one of the row's k + 1 nearest columns: a
       column outside them has at least k + 1 columns, one from each of those groups, no farther than it;
    3. the (k + 1) g columns of those groups are gathered, and the k + 1 nearest of them selected and
       sorted; the row itself (distance -|a|^2, the least unless the row has duplicates) is dropped, or
       the farthest when duplicates crowd it out.
    Up to ties, this is the exact selection: the same neighbours as a sort of the whole row.
    """
    b = ag.get_backend(backend)
    xp = b.xp
    n, dim = int(z.shape[0]), int(z.shape[1])
    if not 1 <= k < n:
        raise GraphError(f"k must be from 1 to {n - 1} (the number of other rows); got {k}")
    kk = k + 1                                               # the row itself is among its nearest
    g = max(1, min(64, n // kk))                             # columns per group; L = ceil(n / g) >= k + 1
    L = -(-n // g)
    pad = L * g - n
    dt = z.dtype
    # the padded columns are infinitely far: zero coordinates and an infinite |b|^2
    zt = xp.concat([xp.matrix_transpose(z) * -2.0, xp.zeros((dim, pad), dtype=dt, device=b.device)], axis=1)
    sq = xp.concat([xp.sum(z * z, axis=1), xp.full((pad,), math.inf, dtype=dt, device=b.device)])
    block = max(1, min(n, block_bytes // (4 * L * g)))
    members = xp.arange(g, device=b.device) * L              # group c's columns: c + members
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        rows = hi - lo
        d = z[lo:hi, :] @ zt                                  # -2 a.b, (rows, L g)
        d += sq[None, :]                                      # |b|^2 - 2 a.b
        group_min = xp.min(xp.reshape(d, (rows, g, L)), axis=1)               # (rows, L)
        groups = _smallest(xp, group_min, kk)                                 # (rows, k + 1)
        cols = xp.reshape(groups[:, :, None] + members[None, None, :], (rows, kk * g))
        near = xp.take_along_axis(cols, _smallest(xp, xp.take_along_axis(d, cols, axis=1), kk), axis=1)
        near_d = xp.take_along_axis(d, near, axis=1)
        by_index = xp.argsort(near, axis=1, stable=True)      # nearest first, equal distances by row number
        near, near_d = xp.take_along_axis(near, by_index, axis=1), xp.take_along_axis(near_d, by_index, axis=1)
        near = xp.take_along_axis(near, xp.argsort(near_d, axis=1, stable=True), axis=1)
        own = near == xp.arange(lo, hi, device=b.device)[:, None]
        drop = xp.where(xp.any(own, axis=1), xp.argmax(xp.astype(own, xp.int32), axis=1), k)   # self, or last
        j = xp.arange(k, device=b.device)[None, :]
        keep = j + xp.astype(j >= drop[:, None], j.dtype)
        out[lo:hi] = b.to_numpy(xp.take_along_axis(near, keep, axis=1))
        if progress is not None:
            progress(hi, n)
    return out


def mutual_graph(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep j among i's neighbours only when i is among j's: (indices, counts), each row's mutual
    neighbours first in their order, padded with the row's first entry. A row with no mutual neighbour
    keeps its nearest neighbour (count 1), so that every row has one."""
    n, k = indices.shape
    rows = np.repeat(np.arange(n), k)
    forward = rows * n + indices.reshape(-1)
    backward = indices.reshape(-1) * n + rows
    keep = np.isin(forward, backward).reshape(n, k)
    counts = keep.sum(axis=1)
    keep[counts == 0, 0] = True                      # the nearest neighbour stands in for none
    counts = keep.sum(axis=1)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept columns first, in distance order
    out = np.take_along_axis(indices, order, axis=1)
    pad = np.arange(k)[None, :] >= counts[:, None]
    out = np.where(pad, out[:, :1], out)
    return out.astype(np.int64), counts.astype(np.int64)


def adjacency(graph: NeighbourGraph):
    """The graph as a symmetric sparse matrix (SciPy CSR, n x n): A = (C + C^T) / 2 with C[i, j] = 1 for every
    edge i -> j and every row i itself (C[i, i] = 1). An edge that both rows hold weighs 1, one held by one
    row only 1/2: the affinity scikit-learn's spectral clustering builds from a nearest-neighbour graph."""
    from scipy import sparse

    n, k = graph.indices.shape
    valid = (np.arange(k)[None, :] < graph.counts[:, None]).ravel()
    rows = np.concatenate([np.repeat(np.arange(n), k)[valid], np.arange(n)])
    cols = np.concatenate([graph.indices.ravel()[valid], np.arange(n)])
    C = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    C.data[:] = 1.0                                   # an edge listed twice (a padded mutual row) counts once
    return ((C + C.T) * 0.5).tocsr()


def connect(A, points: np.ndarray, min_size: int, block_rows: int = 1024):
    """A (symmetric, sparse) with its small pieces joined to the rest: while the graph's smallest connected
    piece has fewer than ``min_size`` rows, it is tied to the rest by one edge of weight 1 between its
    nearest pair of points (Euclidean, in ``points``, the rows of the graph's space). A few outliers far
    from everything form pieces of their own in a k-nearest-neighbour graph; left apart, each is an
    eigenvector of the Laplacian with eigenvalue 0, and the spectral partition spends its K parts on them
    instead of on the clusters. Pieces of ``min_size`` rows or more are left apart: they are clusters."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    A = sparse.lil_matrix(A)
    points = np.asarray(points, dtype=np.float64)
    while True:
        count, piece = connected_components(sparse.csr_matrix(A), directed=False)
        sizes = np.bincount(piece)
        smallest = np.argmin(sizes)
        if count == 1 or sizes[smallest] >= min_size:
            return sparse.csr_matrix(A)
        inside, outside = np.flatnonzero(piece == smallest), np.flatnonzero(piece != smallest)
        best = (math.inf, -1, -1)
        for lo in range(0, inside.size, block_rows):
            rows = inside[lo:lo + block_rows]
            d = ((points[rows, None, :] - points[None, outside, :]) ** 2).sum(axis=-1)
            i, j = np.unravel_index(np.argmin(d), d.shape)
            if d[i, j] < best[0]:
                best = (float(d[i, j]), int(rows[i]), int(outside[j]))
        A[best[1], best[2]] = A[best[2], best[1]] = 1.0


def spectral_partition(graph: NeighbourGraph, K: int, seed: int = 0, points=None) -> np.ndarray:
    """The graph's own K-way partition, without a network: int64 (n,) cluster of each row.

    Spectral clustering (Shi and Malik, 2000; Ng, Jordan and Weiss, 2002) of :func:`adjacency`: the K
    eigenvectors of the normalised Laplacian I - D^-1/2 A D^-1/2 with the smallest eigenvalues, the
    relaxation of the balanced (normalised) cut of the graph into K parts, scaled by D^-1/2
    (scikit-learn's ``spectral_embedding``, seeded); then the rows of that embedding V (n, K) are assigned by
    a pivoted QR of V^T (Damle, Minden and Ying, 2019): the K most independent rows, rotated onto the axes
    by the polar factor of V's K pivot rows, and each row goes to its largest |coordinate|. No labels and no
    further random choice: the partition is a function of the graph and the seed of the eigensolver.
    With ``points`` (the rows in the graph's space), the graph's pieces of fewer than n / (4 K) rows,
    a quarter of an equal share, are first joined to the rest (:func:`connect`).
    """
    from scipy.linalg import qr, svd
    from sklearn.manifold import spectral_embedding

    if not 2 <= K <= graph.n:
        raise GraphError(f"spectral_partition: K must be from 2 to the {graph.n} rows; got {K}")
    if K == graph.n:
        return np.arange(K, dtype=np.int64)      # as many parts as rows: each row its own
    with warnings.catch_warnings():      # a graph in several pieces embeds them on their own axes: wanted here
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", "k >= N", RuntimeWarning)   # a few rows: SciPy's dense eigh instead
        A = adjacency(graph) if points is None else connect(adjacency(graph), points, graph.n // (4 * K))
        V = spectral_embedding(A, n_components=K, drop_first=False, random_state=seed)
    _, _, pivots = qr(V.T, pivoting=True)
    u, _, vt = svd(V[pivots[:K], :].T)
    return np.argmax(np.abs(V @ (u @ vt)), axis=1).astype(np.int64)


def fingerprint(x) -> str:
    """SHA-256 of the rows (their float32 values and shape): what a stored graph was built on."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def graph_key(data_print: str, k: int, space: str, dims: int, mutual: bool) -> str:
    """The name a graph is stored under: the data's fingerprint and the graph's settings, hashed."""
    text = json.dumps({"data": data_print, "k": int(k), "space": space, "dims": int(dims), "mutual": bool(mutual)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _progress_printer(err, what: str):
    started = time.perf_counter()
    tty = hasattr(err, "isatty") and err.isatty()

    def progress(done: int, n: int) -> None:
        if tty:
            err.write(f"\r\033[K{what}: {done:,}/{n:,} rows, {time.perf_counter() - started:.0f} s")
            if done == n:
                err.write("\r\033[K")
            err.flush()
    return progress


def build_graph(x, k: int = 10, space: str = "pca", dims: int = 50, mutual: bool = False, backend="numpy",
                block_bytes: int = BLOCK_BYTES, err=None, data_print: str | None = None,
                image_shape=None) -> NeighbourGraph:
    """The neighbour graph of the rows of x (n, D), as the module docstring describes (``data_print``:
    x's fingerprint when the caller has it already; ``image_shape``: the rows' image shape, which the
    deskew space needs)."""
    x = np.asarray(x)
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise GraphError(f"the number of neighbours must be a whole number from 1 to {n - 1} (the other "
                         f"training rows); got {k!r}")
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or dims < 1:
        raise GraphError(f"the PCA dimension of the neighbour space must be a positive whole number; got {dims!r}")
    started = time.perf_counter()
    z = embed(x, space, dims, backend, image_shape)
    progress = _progress_printer(err if err is not None else sys.stderr, "neighbour graph")
    indices = exact_knn(z, int(k), backend, block_bytes, progress)
    counts = np.full(n, int(k), dtype=np.int64)
    if mutual:
        indices, counts = mutual_graph(indices)
    return NeighbourGraph(indices=indices, counts=counts, k=int(k), space=space, dims=int(z.shape[1]),
                          mutual=bool(mutual),
                          fingerprint=data_print or fingerprint(x), seconds=round(time.perf_counter() - started, 3))


def graph_key_of(graph: NeighbourGraph) -> str:
    """The key a graph is stored under (:func:`graph_key` of its own fingerprint and settings)."""
    return graph_key(graph.fingerprint, graph.k, graph.space, graph.dims, graph.mutual)


def graph_for(x, k: int, space: str, dims: int, mutual: bool, *, store=None, backend="numpy", labels=None,
              err=None, image_shape=None) -> tuple[NeighbourGraph, bool]:
    """The graph of the rows x with these settings: read from ``store`` (a gmvae_np.rundir.RunDir) when it
    holds one, else built and written there. Returns (graph, built)."""
    features = math.prod(np.shape(x)[1:])
    dims = min(int(dims), features) if space in PCA_SPACES else features     # the dimension the space has
    if space == "deskew":
        _single_channel(image_shape, features)       # refused before the rows are hashed or read
    if space == "contrast":
        _non_negative(float(np.min(x)) if np.size(x) else 0.0)   # refused before the rows are hashed
    data_print = fingerprint(x)       # hashing the rows costs a pass over them: once
    key = graph_key(data_print, k, space, dims, mutual)
    if store is not None:
        arrays = store.read_neighbours(key)
        if arrays is not None:
            graph = NeighbourGraph.from_arrays(arrays, where=str(store.neighbours_path(key)))
            graph.check_rows(x, data_print)
            if graph.settings() != {"k": k, "space": space, "dims": dims, "mutual": mutual}:
                raise GraphError(f"{store.neighbours_path(key)} holds a graph of other settings "
                                 f"({graph.settings()}); delete it to rebuild it")
            return graph, False
    graph = build_graph(x, k, space, dims, mutual, backend=backend, err=err, data_print=data_print,
                        image_shape=image_shape)
    if store is not None:
        store.write_neighbours(key, graph.arrays(),
                               None if labels is None else {"agreement": graph.agreement(labels)})
    return graph, True


def sample_neighbours(graph_indices, graph_counts, rows, generator):
    """One neighbour of each of ``rows`` (device int64, (B,)), drawn uniformly among that row's neighbours
    with ``generator`` (an autograd_lite Generator); ``graph_indices`` (n, k) and ``graph_counts`` (n,) on
    the generator's backend. Returns device int64 (B,)."""
    xp = generator.backend.xp
    k = graph_indices.shape[1]
    u = generator.uniform((rows.shape[0],), dtype="float64")
    counts = xp.take(graph_counts, rows, axis=0)
    pos = xp.astype(xp.floor(u * xp.astype(counts, xp.float64)), xp.int64)
    pos = xp.clip(pos, 0, counts - 1)
    flat = xp.reshape(graph_indices, (-1,))
    return xp.take(flat, rows * k + pos, axis=0)
