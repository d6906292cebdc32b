"""The batches of one epoch, the one loop that training (gmvae_np.train) and pretraining (gmvae_np.pretrain)
step through.

An epoch walks a permutation of the training rows in slices of ``batch_size``; the last partial slice is
DROPPED, so every step sees exactly ``batch_size`` rows. Each slice is gathered on the device from rows
that were copied there once.
"""
from __future__ import annotations

import autograd_lite as ag

__all__ = ["epoch_batches", "steps_per_epoch"]


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Full batches in one pass over ``n_rows`` rows (the last partial batch is dropped)."""
    return int(n_rows) // int(batch_size)


def epoch_batches(x, perm, batch_size: int, backend, start: int = 0):
    """Yield ``(i, idx, y)`` for the steps i = start, start + 1, ... of an epoch: ``idx`` the rows
    ``perm[i B:(i + 1) B]``, ``y`` those rows of ``x`` (a backend array) as a Tensor on the device."""
    xp = backend.xp
    for i in range(start, steps_per_epoch(perm.shape[0], batch_size)):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        yield i, idx, ag.tensor(xp.take(x, idx, axis=0), backend=backend)
