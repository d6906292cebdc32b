"""Clustering scores: how well the GMVAE's clusters match the true classes.

Host-side NumPy; the model's cluster probabilities cross to the host once per evaluation.
Notation: n samples, true class labels[i], hard cluster pred[i] = argmax_k proba[i, k], and the
contingency table N[k, c] = #{i : pred[i] = k and labels[i] = c}.

What is ours:

    paper_accuracy      the criterion used in the paper (from the adversarial autoencoder paper):
                        each cluster takes the label of its most confident sample
    purity              each cluster takes its majority class (many clusters may share a class)
    cluster_usage       how many of the K clusters hold at least one sample

What is borrowed: the normalised mutual information and the adjusted Rand index come from scikit-learn
(sklearn.metrics.normalized_mutual_info_score with its default arithmetic normalisation, and
adjusted_rand_score), the contingency table from sklearn.metrics.cluster.contingency_matrix, and the
best one-to-one matching of ``hungarian_accuracy`` from SciPy (scipy.optimize.linear_sum_assignment).
``clustering_report`` gathers them all.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

__all__ = ["contingency", "paper_accuracy", "hungarian_accuracy", "normalized_clustering_accuracy", "purity",
           "cluster_usage",
           "clustering_report", "classes_owned", "assignment_summary"]


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
    return np.asarray(contingency_matrix(pred, labels), dtype=np.int64)


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


def normalized_clustering_accuracy(pred, labels) -> float:
    """The normalised clustering accuracy (NCA) of Gagolewski's benchmark suite: 0 is chance, 1 is perfect.

    The contingency table's rows are the true classes, each normalised to sum 1 (so a small class counts
    as much as a large one); A is the mean matched share under the best one-to-one matching of classes to
    clusters (Hungarian), and NCA = (A - 1/K) / (1 - 1/K) with K the number of classes. A class matched
    to no cluster (fewer clusters than classes) contributes 0. Labels of 0 are noise points in the suite;
    leave them out before calling (benchmarks/battery.py does).
    """
    pred, labels = _pair(pred, labels)
    classes, label_ids = np.unique(labels, return_inverse=True)
    K = classes.size
    if K < 2:
        raise ValueError("normalized_clustering_accuracy needs at least 2 classes in labels")
    _, pred_ids = np.unique(pred, return_inverse=True)
    table = np.zeros((K, max(K, int(pred_ids.max()) + 1)))
    np.add.at(table, (label_ids, pred_ids), 1.0)
    shares = table / table.sum(axis=1, keepdims=True)
    rows, cols = linear_sum_assignment(shares, maximize=True)
    accuracy = float(shares[rows, cols].sum() / K)
    return (accuracy - 1.0 / K) / (1.0 - 1.0 / K)


def purity(pred, labels) -> float:
    """purity = (1/n) sum_k max_c N[k, c]: each cluster votes its majority class."""
    table = contingency(pred, labels)
    return float(table.max(axis=1).sum() / table.sum())


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
    assignment pred = argmax_k proba[i, k]. nmi and ari are scikit-learn's (see the module docstring).
    """
    labels = _ints(labels, "labels")
    p = _proba(proba, labels.size)
    pred = np.argmax(p, axis=1)
    return {
        "acc_paper": paper_accuracy(p, labels),
        "acc_hungarian": hungarian_accuracy(pred, labels),
        "nmi": float(normalized_mutual_info_score(labels, pred)),
        "ari": float(adjusted_rand_score(labels, pred)),
        "purity": purity(pred, labels),
        "clusters_used": cluster_usage(pred, p.shape[1])[1],
    }


def classes_owned(pred, labels) -> int:
    """How many true classes are the majority class of at least one (non-empty) cluster."""
    table = contingency(pred, labels)
    return int(np.unique(np.argmax(table, axis=1)).size)


def assignment_summary(proba) -> dict:
    """max_q and batch_entropy (gmvae_np.diagnostics) of the cluster probabilities of a whole split."""
    p = np.asarray(proba, dtype=np.float64)
    p_bar = p.mean(axis=0)
    nonzero = p_bar[p_bar > 0]
    return {"max_q": float(p.max(axis=1).mean()), "batch_entropy": float(-np.sum(nonzero * np.log(nonzero)))}
