"""Other feature vectors: clusters.png (cluster usage and a 2-D PCA of the data)."""
from __future__ import annotations

import pathlib

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .common import (DPI, Run, _cluster_legend, _eval_record, _headline, _points_by_cluster, _save,
                    _scatter_by_cluster, cluster_colors)


def _pca2(a: np.ndarray):
    """The first two principal components of the rows of ``a`` (NumPy SVD) and their variance shares."""
    a = a.astype(np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    centred = a - a.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s ** 2
    share = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    comps = centred @ vt[:2].T
    if comps.shape[1] == 1:
        comps = np.concatenate([comps, np.zeros_like(comps)], axis=1)
        share = np.concatenate([share, [0.0]])
    return comps, share[:2]


def draw_clusters(run: Run, path) -> pathlib.Path | None:
    """Cluster usage (with the majority true label per cluster) and a 2-D PCA of the data."""
    snap = run.snapshot
    if snap is None:
        return None
    y, pred, k, colors, counts, keep = _points_by_cluster(snap)
    has_labels = "labels" in snap
    comps, share = _pca2(y[keep])

    ncols = 3 if has_labels else 2
    fig = Figure(figsize=(5.2 * ncols, 5.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, width_ratios=[1.2] + [1] * (ncols - 1))
    ax = axes[0]
    ax.bar(np.arange(k), counts, color=colors, edgecolor="0.3", linewidth=0.4)
    ax.set_xlabel("predicted cluster" + ("  (number on bar: its most common true label)"
                                         if has_labels and k <= 20 else ""), fontsize=9)
    ax.set_ylabel("points", fontsize=9)
    used = int(np.sum(counts > 0))
    ax.set_title(f"cluster usage: {used} of {k} clusters used", fontsize=10)
    if k <= 20:
        ax.set_xticks(np.arange(k))
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    if has_labels and k <= 20:
        for i in range(k):
            if counts[i]:
                values, c = np.unique(snap["labels"][pred == i], return_counts=True)
                ax.annotate(f"{values[np.argmax(c)]}", (i, counts[i]), xytext=(0, 2),
                            textcoords="offset points", ha="center", fontsize=8, color="0.2")
    ax.margins(y=0.1)

    thinned = f"; {len(keep):,} of {len(y):,} points" if len(keep) < len(y) else ""
    pc_labels = (f"PC1 ({100 * share[0]:.0f}% of variance)", f"PC2 ({100 * share[1]:.0f}%)")
    ax = axes[1]
    _scatter_by_cluster(ax, comps, pred[keep], colors, s=5)
    ax.set_title(f"PCA of y by predicted cluster{thinned}", fontsize=10)
    ax.set_xlabel(pc_labels[0], fontsize=9)
    ax.set_ylabel(pc_labels[1], fontsize=9)
    ax.tick_params(labelsize=8)
    if has_labels:
        labels = snap["labels"].reshape(-1)
        classes, code = np.unique(labels, return_inverse=True)
        class_colors = cluster_colors(len(classes))
        ax = axes[2]
        ax.scatter(comps[:, 0], comps[:, 1], c=class_colors[code[keep]], s=5, lw=0)
        ax.set_title("PCA of y by true label", fontsize=10)
        ax.set_xlabel(pc_labels[0], fontsize=9)
        ax.set_ylabel(pc_labels[1], fontsize=9)
        ax.tick_params(labelsize=8)
        if len(classes) <= 20:
            handles = [Line2D([], [], ls="", marker="o", ms=6, color=class_colors[i], label=str(c))
                       for i, c in enumerate(classes)]
            ax.legend(handles=handles, fontsize=8, ncols=2 if len(classes) > 10 else 1,
                      loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="label",
                      title_fontsize=8, handletextpad=0.1)
    if k <= 20:       # beyond 20 the coloured bars are the key
        _cluster_legend(fig, axes, colors, counts)
    epoch = int(snap["epoch"]) if "epoch" in snap else None
    fig.suptitle(_headline(run, epoch, _eval_record(run, epoch)), fontsize=11)
    return _save(fig, pathlib.Path(path))
