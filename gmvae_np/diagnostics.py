"""How the clusters form, or collapse: four summaries of one batch, logged every epoch.

The faithful MNIST settings put the data into a few of the K clusters in the first epoch and never
recover (docs/studies.md, "What fails, and why"). These numbers show that mechanism as it
happens; the trainer averages them over each epoch's steps and over the evaluation set and writes them
to metrics.jsonl beside the ELBO terms:

    max_q           mean_b max_k p_k: how sharp the assignments are (1/K uniform ... 1 one-hot)
    batch_entropy   H(p_bar), p_bar = mean_b p: how evenly the batch as a whole uses the clusters
                    (log K when evenly, 0 when all points go to one cluster)
    kl_gap          mean_b [ max_k KL_k - min_k KL_k ], KL_k = E_q(w|y) KL(q(x|y) || p(x|w, z=k)):
                    what a point saves by moving from its worst to its best component. Against the
                    z prior, which costs at most log K, a gap of tens of nats leaves no choice but the
                    nearest component
    counts          (K,) how many points take each cluster as their most probable one; the number of
                    non-zero counts over an epoch is the clusters in use

p_k is the distribution the conditional prior weights the components with: q(z|y) (variant cv) or
p(z|x, w) averaged over the M samples (variant mi). Nothing here is differentiated: the inputs are
detached, and each value stays on the device until the trainer reads it.
"""
from __future__ import annotations

import autograd_lite as ag
from autograd_lite import functional as F

__all__ = ["batch_diagnostics", "DIAGNOSTICS"]

DIAGNOSTICS = ("max_q", "batch_entropy", "kl_gap")


def _mean_over_samples_log(log_p):
    """log of the Monte Carlo average of p over a leading sample axis: (M, B, K) -> (B, K)."""
    return F.log_mean_exp(log_p, axis=0) if log_p.ndim == 3 else log_p


def batch_diagnostics(log_cluster_probs, kl_k) -> dict:
    """{"max_q", "batch_entropy", "kl_gap": scalar Tensors; "counts": (K,) Tensor} for one batch.

    log_cluster_probs: (B, K) or (M, B, K) log-probabilities; kl_k: (M, B, K) from elbo.component_kl.
    """
    with ag.no_grad():
        log_p = _mean_over_samples_log(log_cluster_probs.detach())            # (B, K)
        B, K = log_p.shape
        log_p_bar = F.log_mean_exp(log_p, axis=0)                              # (K,)
        kl = ag.mean(kl_k.detach(), axis=0)                                    # (B, K)
        gap = ag.max(kl, axis=-1) + ag.max(-kl, axis=-1)                       # max_k - min_k
        xp = log_p.backend.xp
        best = ag.Tensor(xp.argmax(log_p.data, axis=-1), log_p.backend)
        return {
            "max_q": ag.mean(ag.exp(ag.max(log_p, axis=-1))),
            "batch_entropy": F.entropy(log_p_bar),
            "kl_gap": ag.mean(gap),
            "counts": ag.sum(ag.one_hot(best, K, dtype="float64", backend=log_p.backend), axis=0),
        }

