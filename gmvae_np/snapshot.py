"""snapshot.npz: the arrays the figures are drawn from, made from the model at an evaluation and read back.

The layout (written into the run directory by gmvae_np.rundir at every evaluation):

    y               up to 5,000 eval rows (or 1,000 images) in their display shape
    labels          their true labels, when the data has labels
    proba           (n, K) cluster probabilities
    x_mean, w_mean  (n, Dx) and (n, Dw) latent means
    recon           the decoder's mean for each row, shaped like y
    prior_mean, prior_logvar   (K, Dx): the prior's components at w = 0
    samples         (K, 10, *shape): decoder means of draws from each component at w = 0
    epoch           the epoch evaluated

:func:`snapshot_arrays` makes them from the model; gmvae_np.rundir writes them, and reads them back
(``read_snapshot``, which checks their shapes against each other with :func:`snapshot_problem`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["display_shape", "snapshot_arrays", "snapshot_problem"]

SNAPSHOT_ROWS_VECTORS = 5000
SNAPSHOT_ROWS_IMAGES = 1000
SAMPLES_PER_CLUSTER = 10


def display_shape(data) -> tuple:
    """The shape one sample is drawn in: its image shape when it has one, else (features,)."""
    return tuple(data.image_shape) if data.image_shape else tuple(int(s) for s in data.x_train.shape[1:])


def snapshot_arrays(model, data, batches, proba: np.ndarray, epoch: int, y_eval, rng) -> dict:
    """snapshot.npz's arrays for the model as it is now; ``batches(n)`` yields the first n eval rows as
    device tensors. Call it in eval mode: it draws the per-cluster samples from ``rng``."""
    import autograd_lite as ag

    b, cfg = model.backend, model.config
    xp = b.xp
    shape = display_shape(data)
    n = min(int(data.x_eval.shape[0]), SNAPSHOT_ROWS_IMAGES if data.image_shape else SNAPSHOT_ROWS_VECTORS)
    x_means, w_means, recons = [], [], []
    for y in batches(n):
        enc = model.encode(y)
        x_means.append(enc["x_mean"].data)
        w_means.append(enc["w_mean"].data)
        recons.append(model.reconstruct(y).data)
    w0 = ag.zeros(1, cfg.Dw, dtype=cfg.dtype, backend=b)
    prior_mean, prior_logvar = model.prior(w0)
    mean, logvar = prior_mean.data[0, ...], prior_logvar.data[0, ...]  # (K, Dx)
    eps = rng.normal((cfg.K, SAMPLES_PER_CLUSTER, cfg.Dx), dtype=cfg.dtype)
    x = mean[:, None, :] + xp.exp(0.5 * logvar)[:, None, :] * eps
    x = ag.tensor(xp.reshape(x, (cfg.K * SAMPLES_PER_CLUSTER, cfg.Dx)), backend=b)
    samples = model.decode_mean(x).data
    arrays = {
        "y": np.asarray(data.x_eval[:n]).reshape((n,) + shape),
        "proba": proba[:n].astype(np.float32),
        "x_mean": b.to_numpy(xp.concat(x_means, axis=0)),
        "w_mean": b.to_numpy(xp.concat(w_means, axis=0)),
        "recon": b.to_numpy(xp.concat(recons, axis=0)).reshape((n,) + shape),
        "prior_mean": b.to_numpy(mean),
        "prior_logvar": b.to_numpy(logvar),
        "samples": b.to_numpy(samples).reshape((cfg.K, SAMPLES_PER_CLUSTER) + shape),
        "epoch": np.asarray(epoch, dtype=np.int64),
    }
    if y_eval is not None:
        arrays["labels"] = np.asarray(y_eval[:n], dtype=np.int64)
    return arrays


def snapshot_problem(snap: dict) -> str | None:
    """What is wrong with the arrays of a snapshot read back (``y`` and ``proba`` required, the others'
    shapes checked against them), as the end of a sentence that starts with the file's name; None when
    nothing is."""
    for key in ("y", "proba"):
        if key not in snap:
            return f" has no '{key}' array; it holds {sorted(snap)}"
    n = snap["y"].shape[0] if snap["y"].ndim else 0
    if n == 0:
        return f": 'y' has no rows (shape {snap['y'].shape}); the snapshot needs at least one evaluation example"
    proba = snap["proba"]
    if proba.ndim != 2 or proba.shape[0] != n or proba.shape[1] < 1:
        return f": 'proba' has shape {proba.shape}, expected (n, K) with n = {n} rows like 'y'"
    k = proba.shape[1]
    for key in ("labels", "x_mean", "w_mean", "recon"):
        if key in snap and (snap[key].ndim == 0 or snap[key].shape[0] != n):
            return f": '{key}' has shape {snap[key].shape} but 'y' has {n} rows"
    if "recon" in snap and snap["recon"].size != snap["y"].size:
        return f": 'recon' has shape {snap['recon'].shape}, expected the shape of 'y' {snap['y'].shape}"
    for key in ("prior_mean", "prior_logvar", "samples"):
        if key in snap and (snap[key].ndim < 2 or snap[key].shape[0] != k):
            return f": '{key}' has shape {snap[key].shape}, expected K = {k} rows like 'proba' has columns"
    if "prior_mean" in snap and "prior_logvar" in snap \
            and snap["prior_mean"].shape != snap["prior_logvar"].shape:
        return (f": 'prior_mean' {snap['prior_mean'].shape} and 'prior_logvar' {snap['prior_logvar'].shape} "
                f"differ in shape")
    return None
