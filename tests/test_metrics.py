"""Tests for gmvae_np.metrics: hand-worked cases, invariances, and cross-checks against scikit-learn.

NMI and ARI are scikit-learn's; the report's values are checked against hand-worked ones here.
"""
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sklearn.metrics as skm

from gmvae_np.metrics import (cluster_usage, clustering_report, contingency, hungarian_accuracy,
                              paper_accuracy, purity)

# A small case worked by hand:
#   labels = 0 0 0 1 1 1
#   pred   = 0 0 1 1 1 1
# contingency (rows clusters 0,1; columns classes 0,1):
#   [[2, 0],
#    [1, 3]]
LABELS = np.array([0, 0, 0, 1, 1, 1])
PRED = np.array([0, 0, 1, 1, 1, 1])


def report_of(pred, labels) -> dict:
    """clustering_report of hard clusters (one-hot probabilities)."""
    pred = np.asarray(pred)
    return clustering_report(np.eye(int(pred.max()) + 1)[pred], labels)


def test_contingency_hand_case():
    np.testing.assert_array_equal(contingency(PRED, LABELS), [[2, 0], [1, 3]])


def test_contingency_uses_only_occurring_values():
    # clusters 3 and 7 occur (rows in sorted order), classes -1 and 5 occur
    np.testing.assert_array_equal(contingency([7, 3, 3], [5, -1, 5]), [[1, 1], [0, 1]])


def test_hungarian_and_purity_hand_case():
    # matching 0->0 and 1->1 keeps 2 + 3 = 5 of 6 samples
    assert hungarian_accuracy(PRED, LABELS) == pytest.approx(5 / 6)
    # purity: row maxima 2 and 3 -> 5/6
    assert purity(PRED, LABELS) == pytest.approx(5 / 6)


def test_ari_hand_case():
    # s = C(2,2) + C(1,2) + C(3,2) = 1 + 0 + 3 = 4     (pairs together in both)
    # a = C(2,2) + C(4,2) = 1 + 6 = 7                  (cluster sizes 2, 4)
    # b = C(3,2) + C(3,2) = 3 + 3 = 6                  (class sizes 3, 3)
    # expected = a b / C(6,2) = 42 / 15 = 2.8; max = (a + b)/2 = 6.5
    # ARI = (4 - 2.8) / (6.5 - 2.8) = 1.2 / 3.7 = 12/37
    assert report_of(PRED, LABELS)["ari"] == pytest.approx(12 / 37, abs=1e-15)


def test_nmi_hand_case():
    # p(k,c) on the non-zero cells: 2/6, 1/6, 3/6; p(k) = 2/6, 4/6; p(c) = 1/2, 1/2
    # I = 1/3 log((1/3)/(1/3 * 1/2)) + 1/6 log((1/6)/(2/3 * 1/2)) + 1/2 log((1/2)/(2/3 * 1/2))
    #   = 1/3 log 2 - 1/6 log 2 + 1/2 log 3/2 = 1/6 log 2 + 1/2 log 3/2
    # H(pred) = log 3 - 2/3 log 2, H(labels) = log 2
    mi = math.log(2) / 6 + 0.5 * math.log(1.5)
    h_pred = math.log(3) - 2 / 3 * math.log(2)
    h_lab = math.log(2)
    assert report_of(PRED, LABELS)["nmi"] == pytest.approx(mi / ((h_pred + h_lab) / 2), abs=1e-14)


# Paper accuracy worked by hand: the most confident sample of a cluster decides its label.
#   sample  proba(k=0) proba(k=1)  label  argmax cluster
#     0       0.95       0.05        0        0
#     1       0.60       0.40        1        0
#     2       0.70       0.30        1        0
#     3       0.20       0.80        1        1
#     4       0.10       0.90        0        1
# cluster 0: most confident sample 0 (0.95), label 0; cluster 1: sample 4 (0.90), label 0.
# every sample is predicted 0 -> correct: samples 0 and 4 -> 2/5.
# Hungarian on pred = 0 0 0 1 1: table [[1, 2], [1, 1]]; best matching 0->1, 1->0 = 2 + 1 = 3/5.
PROBA_P = np.array([[0.95, 0.05], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9]])
LABELS_P = np.array([0, 1, 1, 1, 0])


def test_paper_accuracy_hand_case():
    assert paper_accuracy(PROBA_P, LABELS_P) == pytest.approx(2 / 5)
    pred = PROBA_P.argmax(axis=1)
    assert hungarian_accuracy(pred, LABELS_P) == pytest.approx(3 / 5)
    assert purity(pred, LABELS_P) == pytest.approx(3 / 5)


def test_paper_accuracy_allows_clusters_to_share_a_label():
    # 3 clusters, 2 classes: clusters 0 and 1 both hold class 0, cluster 2 holds class 1.
    labels = np.array([0, 0, 0, 0, 1, 1])
    proba = np.array([[.8, .1, .1], [.7, .2, .1], [.1, .8, .1], [.2, .7, .1], [.1, .1, .8], [.1, .2, .7]])
    assert paper_accuracy(proba, labels) == 1.0
    # one-to-one matching must leave one of the class-0 clusters unmatched: 2 + 2 = 4 of 6
    assert hungarian_accuracy(proba.argmax(1), labels) == pytest.approx(4 / 6)
    assert purity(proba.argmax(1), labels) == 1.0


def test_hungarian_rectangular_both_ways():
    # more clusters than classes: table [[1, 0], [1, 0], [0, 2]] -> best 1 + 2 = 3 of 4
    assert hungarian_accuracy([0, 1, 2, 2], [0, 0, 1, 1]) == pytest.approx(3 / 4)
    # fewer clusters than classes: table [[2, 1, 0], [0, 0, 1]] -> best 2 + 1 = 3 of 4
    assert hungarian_accuracy([0, 0, 0, 1], [0, 0, 1, 2]) == pytest.approx(3 / 4)


def test_cluster_usage():
    counts, used = cluster_usage([0, 2, 2, 5], K=6)
    np.testing.assert_array_equal(counts, [1, 0, 2, 0, 0, 1])
    assert used == 3
    with pytest.raises(ValueError, match="0..5"):
        cluster_usage([0, 6], K=6)


def test_input_validation():
    with pytest.raises(ValueError, match="3 entries but labels has 2"):
        purity([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        paper_accuracy(np.array([[np.nan, 1.0], [0.5, 0.5]]), [0, 1])
    with pytest.raises(ValueError, match=r"shape \(n, K\)"):
        paper_accuracy(np.ones((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="whole numbers"):
        purity([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        hungarian_accuracy([], [])


def test_clustering_report_is_json_ready():
    rep = clustering_report(PROBA_P, LABELS_P)
    assert set(rep) == {"acc_paper", "acc_hungarian", "nmi", "ari", "purity", "clusters_used"}
    assert all(type(v) is float for k, v in rep.items() if k != "clusters_used")
    assert type(rep["clusters_used"]) is int and rep["clusters_used"] == 2
    assert rep["acc_paper"] == pytest.approx(0.4)
    assert json.loads(json.dumps(rep)) == rep


@st.composite
def partitions(draw, min_size=1, max_size=40):
    n = draw(st.integers(min_size, max_size))
    k = draw(st.integers(1, 6))
    c = draw(st.integers(1, 5))
    pred = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.array(pred), np.array(labels), np.random.default_rng(seed)


HARD = [hungarian_accuracy, purity]


@given(partitions())
def test_invariant_to_renaming_clusters_and_reordering_samples(case):
    pred, labels, rng = case
    rename = rng.permutation(10) + 3  # a one-to-one renaming of cluster ids (not starting at 0)
    order = rng.permutation(pred.size)
    for f in HARD:
        base = f(pred, labels)
        assert f(rename[pred], labels) == pytest.approx(base, abs=1e-12)
        assert f(pred[order], labels[order]) == pytest.approx(base, abs=1e-12)
        assert -1.0 <= base <= 1.0 + 1e-12
    assert hungarian_accuracy(pred, labels) <= purity(pred, labels) + 1e-12


@given(partitions())
def test_paper_accuracy_invariant_to_cluster_and_sample_order(case):
    _, labels, rng = case
    k = int(rng.integers(1, 6))
    # continuous for k >= 2 (ties have probability zero); k = 1 ties every sample at 1.0
    proba = rng.dirichlet(np.ones(k), size=labels.size)
    base = paper_accuracy(proba, labels)
    cols = rng.permutation(k)
    rows = rng.permutation(labels.size)
    assert paper_accuracy(proba[:, cols], labels) == base
    assert paper_accuracy(proba[rows], labels[rows]) == base
    assert 0.0 <= base <= 1.0


@given(partitions(min_size=2))
def test_perfect_clustering_scores_one(case):
    _, labels, rng = case
    rename = rng.permutation(10)
    pred = rename[labels]
    for f in HARD:
        assert f(pred, labels) == pytest.approx(1.0, abs=1e-12)
    # proba that puts most mass on the right cluster, with per-sample confidence varying
    k = int(labels.max()) + 1
    proba = rng.uniform(0.0, 0.1, size=(labels.size, k))
    proba[np.arange(labels.size), labels] += rng.uniform(0.5, 1.0, size=labels.size)
    assert paper_accuracy(proba, labels) == 1.0
    assert clustering_report(proba, labels)["acc_hungarian"] == 1.0


def _brute_force_matching(pred, labels):
    """Best one-to-one matching by trying every assignment (small sizes only)."""
    ks, cs = np.unique(pred), np.unique(labels)
    best = 0
    if len(ks) <= len(cs):
        for perm in itertools.permutations(cs, len(ks)):
            best = max(best, sum(np.sum((pred == k) & (labels == c)) for k, c in zip(ks, perm)))
    else:
        for perm in itertools.permutations(ks, len(cs)):
            best = max(best, sum(np.sum((pred == k) & (labels == c)) for k, c in zip(perm, cs)))
    return best / pred.size


@given(partitions())
def test_hungarian_matches_brute_force(case):
    pred, labels, _ = case
    assert hungarian_accuracy(pred, labels) == pytest.approx(_brute_force_matching(pred, labels), abs=1e-12)


def test_against_sklearn_on_random_inputs():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(1, 300))
        pred = rng.integers(0, int(rng.integers(1, 15)), size=n)
        # labels correlated with pred half the time, independent otherwise
        labels = (pred + rng.integers(0, 2, size=n)) % 7 if trial % 2 else rng.integers(0, 10, size=n)
        report = report_of(pred, labels)
        assert report["nmi"] == skm.normalized_mutual_info_score(labels, pred)
        assert report["ari"] == skm.adjusted_rand_score(labels, pred)
        table = skm.cluster.contingency_matrix(labels, pred)
        from scipy.optimize import linear_sum_assignment
        r, c = linear_sum_assignment(-table)
        assert hungarian_accuracy(pred, labels) == pytest.approx(table[r, c].sum() / n, abs=1e-12)
        np.testing.assert_array_equal(contingency(pred, labels), table.T)


def test_paper_accuracy_settles_ties_by_the_tied_samples_majority():
    # One-hot probabilities: all three samples of cluster 0 tie at 1.0, with labels 1, 0, 0. The majority
    # of the tied samples is 0, so the cluster is labelled 0 and 2 of 3 are right, whichever comes first.
    proba = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    for labels in ([1, 0, 0, 2], [0, 1, 0, 2], [0, 0, 1, 2]):
        assert paper_accuracy(proba, np.array(labels)) == 3 / 4
    # the case hypothesis found: one cluster, fourteen tied samples, one of them labelled 1
    labels = np.array([1] + [0] * 13)
    assert paper_accuracy(np.ones((14, 1)), labels) == 13 / 14
    assert paper_accuracy(np.ones((14, 1)), labels[::-1]) == 13 / 14


# -- the benchmark suite's score ----------------------------------------------------------------------------

def test_normalized_clustering_accuracy_by_hand():
    """labels 0 0 0 1 1 1 against pred 0 0 1 1 1 1: rows normalised [[2/3, 1/3], [0, 1]], the matching
    0->0, 1->1 gives A = (2/3 + 1) / 2 = 5/6, and NCA = (5/6 - 1/2) / (1/2) = 2/3."""
    from gmvae_np.metrics import normalized_clustering_accuracy as nca

    assert nca(PRED, LABELS) == pytest.approx(2 / 3, rel=1e-12)
    assert nca(LABELS, LABELS) == 1.0 and nca(1 - LABELS, LABELS) == 1.0       # any naming of the clusters
    assert nca(np.zeros(6, dtype=int), LABELS) == pytest.approx(0.0, abs=1e-12)   # one cluster: chance
    # a small class counts as much as a large one: 90 + 10 rows, the 10 all wrong
    labels = np.repeat([0, 1], [90, 10])
    assert nca(np.zeros(100, dtype=int), labels) == pytest.approx(0.0, abs=1e-12)
    assert hungarian_accuracy(np.zeros(100, dtype=int), labels) == 0.9
    with pytest.raises(ValueError, match="at least 2 classes"):
        nca(PRED, np.zeros(6, dtype=int))


@given(st.integers(2, 6), st.integers(0, 10_000))
def test_normalized_clustering_accuracy_is_genieclusts(K, seed):
    """The suite's own implementation (genieclust.compare_partitions) agrees wherever it is defined (as
    many clusters as classes, every cluster used)."""
    genieclust = pytest.importorskip("genieclust")
    from gmvae_np.metrics import normalized_clustering_accuracy as nca

    rng = np.random.default_rng(seed)
    n = int(rng.integers(3 * K, 60))
    labels, pred = rng.integers(0, K, n), rng.integers(0, K, n)
    labels[:K], pred[-K:] = np.arange(K), np.arange(K)
    want = genieclust.compare_partitions.normalized_clustering_accuracy(labels + 1, pred + 1)
    assert nca(pred, labels) == pytest.approx(want, abs=1e-12)
