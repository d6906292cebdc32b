"""Clustering scores: how well the GMVAE's clusters match the true classes.

Host-side NumPy/SciPy; the model's cluster probabilities cross to the host once per evaluation.
Notation: n samples, true class labels[i], hard cluster pred[i] = argmax_k proba[i, k], and the
contingency table N[k, c] = #{i : pred[i] = k and labels[i] = c}.

    paper_accuracy      the criterion used in the paper (from the adversarial autoencoder paper):
                        each cluster takes the label of its most confident sample
    hungarian_accuracy  the best one-to-one matching of clusters to classes
    purity              each cluster takes its majority class (many clusters may share a class)
    nmi, ari            normalised mutual information and adjusted Rand index (label-free)

Entropies use the convention 0 log 0 = 0 by summing over the non-zero cells only: no log(p + eps).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["contingency", "paper_accuracy", "hungarian_accuracy", "purity", "nmi", "ari",
           "cluster_usage", "clustering_report"]


def _ints(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of integers, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} is empty")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{what} must hold whole numbers")
    elif a.dtype.kind not in "biu":
        raise ValueError(f"{what} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _pair(pred, labels):
    pred, labels = _ints(pred, "pred"), _ints(labels, "labels")
    if pred.size != labels.size:
        raise ValueError(f"pred has {pred.size} entries but labels has {labels.size}")
    return pred, labels


def _proba(proba, n: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 1:
        raise ValueError(f"proba must have shape (n, K) with n = {n} labels, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or infinite values")
    return p


def contingency(pred, labels) -> np.ndarray:
    """N[k, c] = number of samples in cluster k with true class c (int64).

    Rows follow np.unique(pred) and columns np.unique(labels): only clusters and classes that occur.
    """
    pred, labels = _pair(pred, labels)
    _, k = np.unique(pred, return_inverse=True)
    _, c = np.unique(labels, return_inverse=True)
    k, c = k.reshape(-1), c.reshape(-1)
    n_k, n_c = int(k.max()) + 1, int(c.max()) + 1
    return np.bincount(k * n_c + c, minlength=n_k * n_c).reshape(n_k, n_c).astype(np.int64)


def paper_accuracy(proba, labels) -> float:
    """Clustering accuracy as in the GMVAE paper (the adversarial autoencoder paper's criterion).

    For each cluster k, its most confident sample is i_k = argmax_i proba[i, k]; the cluster takes that
    sample's label, l_k = labels[i_k]. Each sample i goes to its cluster k_i = argmax_k proba[i, k] and is
    predicted as l_{k_i}:

        acc = (1/n) sum_i [ labels[i] == labels[ argmax_j proba[j, k_i] ] ]

    Unlike the Hungarian accuracy, several clusters may take the same label (K may exceed the number of
    classes, as with K=14 for MNIST's 10 digits), and the label comes from one sample, not a vote.
    When several samples share a cluster's highest probability (one-hot or saturated probabilities),
    the cluster takes the majority label of those tied samples (the smallest label if that is tied too),
    so the result does not depend on the order of the samples. A sample whose row ties between clusters
    goes to the lowest cluster index (np.argmax).
    """
    labels = _ints(labels, "labels")
    p = _proba(proba, labels.size)
    classes, label_ids = np.unique(labels, return_inverse=True)
    most_confident = p == p.max(axis=0, keepdims=True)           # (n, K): the samples i_k of each cluster
    votes = most_confident.T.astype(np.int64) @ np.eye(classes.size, dtype=np.int64)[label_ids]  # (K, C)
    cluster_label = classes[np.argmax(votes, axis=1)]            # l_k for every cluster k, shape (K,)
    predicted = cluster_label[np.argmax(p, axis=1)]              # l_{k_i} for every sample, shape (n,)
    return float(np.mean(predicted == labels))


def hungarian_accuracy(pred, labels) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes.

    Maximises sum_k N[k, m(k)] over injective maps m with the Hungarian algorithm
    (scipy.optimize.linear_sum_assignment) on the contingency table; acc = matched / n. With more clusters
    than classes the table is rectangular and the extra clusters count as wrong.
    """
    table = contingency(pred, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(pred, labels) -> float:
    """purity = (1/n) sum_k max_c N[k, c]: each cluster votes its majority class."""
    table = contingency(pred, labels)
    return float(table.max(axis=1).sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    """H = -sum p log p over the non-zero counts (natural log)."""
    c = counts[counts > 0].astype(np.float64)
    p = c / c.sum()
    return float(-np.sum(p * np.log(p)))


def nmi(pred, labels) -> float:
    """Normalised mutual information, NMI = I(pred; labels) / ((H(pred) + H(labels)) / 2).

    The arithmetic-mean normalisation is scikit-learn's default. I = sum_{k,c} p_kc log(p_kc / (p_k p_c))
    over the non-zero cells. Conventions as scikit-learn: both sides a single cluster -> 1.0; I = 0 -> 0.0.
    """
    table = contingency(pred, labels)
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    n = float(table.sum())
    rows, cols = np.nonzero(table)
    n_kc = table[rows, cols].astype(np.float64)
    n_k = table.sum(axis=1).astype(np.float64)
    n_c = table.sum(axis=0).astype(np.float64)
    # log(p_kc / (p_k p_c)) = log(n_kc n / (n_k n_c)), computed as a difference of logs
    mi = float(np.sum(n_kc / n * (np.log(n_kc) + np.log(n) - np.log(n_k[rows]) - np.log(n_c[cols]))))
    mi = max(mi, 0.0)  # rounding can leave a tiny negative value for independent partitions
    if mi == 0.0:
        return 0.0
    denom = 0.5 * (_entropy(n_k) + _entropy(n_c))
    return float(min(mi / denom, 1.0))


def ari(pred, labels) -> float:
    """Adjusted Rand index: agreement on pairs of samples, corrected for chance (1 = identical, ~0 = random).

    With a = sum_k C(n_k, 2), b = sum_c C(n_c, 2), s = sum_kc C(n_kc, 2), N2 = C(n, 2):
        ARI = (s - a b / N2) / ((a + b) / 2 - a b / N2)
    computed in exact integer arithmetic as 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn))
    from the pair confusion counts, as scikit-learn does. Identical partitions (no disagreeing pairs) -> 1.0.
    """
    table = contingency(pred, labels)
    n = int(table.sum())
    ss = int(np.sum(table * table))
    sk = int(np.sum(table.sum(axis=1) ** 2))
    sc = int(np.sum(table.sum(axis=0) ** 2))
    tp = ss - n  # ordered pairs together in both
    fp = sk - ss  # together in pred only
    fn = sc - ss  # together in labels only
    tn = n * n - tp - fp - fn - n  # apart in both (Python ints: no overflow)
    if fn == 0 and fp == 0:
        return 1.0
    return float(2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def cluster_usage(pred, K: int) -> tuple[np.ndarray, int]:
    """Counts per cluster 0..K-1 (int64, length K) and the number of non-empty clusters."""
    pred = _ints(pred, "pred")
    if K < 1 or pred.min() < 0 or pred.max() >= K:
        raise ValueError(f"cluster indices must lie in 0..{K - 1}, got {pred.min()}..{pred.max()}")
    counts = np.bincount(pred, minlength=K)
    return counts, int(np.count_nonzero(counts))


def clustering_report(proba, labels) -> dict:
    """All scores for cluster probabilities proba (n, K) against true labels (n,), as JSON-ready values.

    Keys: acc_paper, acc_hungarian, nmi, ari, purity (floats) and clusters_used (int), with the hard
    assignment pred = argmax_k proba[i, k].
    """
    labels = _ints(labels, "labels")
    p = _proba(proba, labels.size)
    pred = np.argmax(p, axis=1)
    return {
        "acc_paper": paper_accuracy(p, labels),
        "acc_hungarian": hungarian_accuracy(pred, labels),
        "nmi": nmi(pred, labels),
        "ari": ari(pred, labels),
        "purity": purity(pred, labels),
        "clusters_used": cluster_usage(pred, p.shape[1])[1],
    }
