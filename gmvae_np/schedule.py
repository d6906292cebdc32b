"""Annealing: objective weights that move from a start value to their final value during training.

Two weights can be annealed, both over the first ``--anneal-epochs`` epochs and both linearly in the
step count t (``steps_per_epoch`` steps per epoch, T = anneal_epochs * steps_per_epoch):

    linear(start, end, t, T) = end + (start - end) * max(0, 1 - t / T)

    kl     the weight of the three KL terms of the objective (elbo.objective's ``kl``): a KL warm-up
           (Bowman et al., 2016; Sonderby et al., 2016) starts it at ``--kl-start`` < 1, so that the
           networks first learn to reconstruct and the prior is enforced gradually; 1 from step T on.
    eta    the weight of the z prior (cv variant): from ``--eta-start`` to ``--eta``.

Step t is the number of optimiser steps taken before the current one, which the checkpoint stores, so a
resumed run anneals exactly as an uninterrupted one. docs/gmvae.md (section 10) gives the formulas and
docs/studies.md ("The other parts, screened") what annealing did on MNIST.
"""
from __future__ import annotations

__all__ = ["linear", "annealed_weights"]


def linear(start: float, end: float, t: int, T: int) -> float:
    """The weight at step t of a linear schedule from ``start`` (t = 0) to ``end`` (t >= T)."""
    if T <= 0 or t >= T:
        return float(end)
    return float(end) + (float(start) - float(end)) * (1.0 - t / T)


def annealed_weights(settings, step: int, steps_per_epoch: int) -> dict | None:
    """The weights that override the model's own at optimiser step ``step`` (0-based), or None.

    None when ``settings.anneal_epochs`` is 0, so a run without annealing computes its objective exactly
    as before. Otherwise a dict for ``GMVAE.loss(weights=...)``: {"kl": ...} and, where --eta-start is
    given (cv variant), {"eta": ...}.
    """
    if not settings.anneal_epochs:
        return None
    T = settings.anneal_epochs * steps_per_epoch
    weights = {"kl": linear(settings.kl_start, 1.0, step, T)}
    if settings.eta_start is not None:
        weights["eta"] = linear(settings.eta_start, settings.eta, step, T)
    return weights
