"""2-D data: latent.png and recon.png (after the original plot_latent.py and plot_recon.py)."""
from __future__ import annotations

import pathlib

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from .common import (DPI, Run, _apply_limits, _cluster_legend, _eval_record, _headline, _limits,
                    _points_by_cluster, _save, _scatter_by_cluster)


ELLIPSE_NSTD = 2.0          # the original plot_latent.py drew 2-sigma ellipses


def _plane_view(a: np.ndarray, name: str):
    """The first two columns of a latent (n, D) array and a panel note when D != 2."""
    d = a.shape[1]
    if d >= 2:
        return a[:, :2], (f"dims 0–1 of {name}={d}" if d > 2 else "")
    return np.concatenate([a, np.zeros_like(a)], axis=1), f"{name}=1, drawn on a line"


def draw_latent(run: Run, path) -> pathlib.Path | None:
    """Data by predicted cluster; latent x means with the prior's 2-sigma ellipses at w = 0; w means."""
    snap = run.snapshot
    if snap is None:
        return None
    y, pred, k, colors, counts, keep = _points_by_cluster(snap)
    thinned = f"  ({len(keep):,} of {len(y):,} points)" if len(keep) < len(y) else ""

    panels = [("data y by predicted cluster", y[:, :2], None)]
    if "x_mean" in snap:
        xm, note = _plane_view(snap["x_mean"].reshape(len(y), -1), "Dx")
        prior = "\nstars: prior means at w = 0" if "prior_mean" in snap else ""
        panels.append(("latent x means" + (f", {note}, no ellipses" if note else
                                           f" and prior {ELLIPSE_NSTD:g}σ ellipses" if prior else "")
                       + prior, xm, "x"))
    if "w_mean" in snap:
        wm, note = _plane_view(snap["w_mean"].reshape(len(y), -1), "Dw")
        panels.append(("latent w means" + (f"\n{note}" if note else ""), wm, None))

    fig = Figure(figsize=(5.0 * len(panels) + 0.5, 6.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, pts, which) in zip(axes, panels):
        _scatter_by_cluster(ax, pts[keep], pred[keep], colors)
        lim = _limits(pts[keep])
        if which == "x" and "prior_mean" in snap:
            mean = snap["prior_mean"].reshape(k, -1)
            dx = mean.shape[1]
            mean2 = mean[:, :2] if dx >= 2 else np.concatenate([mean, np.zeros_like(mean)], axis=1)
            lim = _limits(pts[keep], mean2)     # the view the original drew: points and means
            if dx == 2 and "prior_logvar" in snap and lim is not None:
                # An ellipse far larger than the view is invisible but slow to rasterise, so each
                # half-axis is capped at 100 view widths (the visible arc moves by < 0.01 %).
                cap = 100.0 * max(lim[1] - lim[0], lim[3] - lim[2])
                logvar = np.clip(snap["prior_logvar"].reshape(k, -1), -60.0, 60.0)
                half_axes = np.minimum(ELLIPSE_NSTD * np.exp(0.5 * logvar), cap)
                for i in range(k):
                    if np.all(np.isfinite(mean2[i])) and np.all(np.isfinite(half_axes[i])):
                        ax.add_patch(Ellipse(xy=mean2[i], width=2 * half_axes[i, 0],
                                             height=2 * half_axes[i, 1], fill=False, lw=1.8,
                                             edgecolor=colors[i], zorder=3))
            ax.scatter(mean2[:, 0], mean2[:, 1], marker="*", s=160, c=colors, edgecolors="black",
                       linewidths=0.8, zorder=4)
            if k <= 20:
                for i in np.flatnonzero(np.all(np.isfinite(mean2), axis=1)):
                    ax.annotate(str(i), mean2[i], xytext=(5, 5), textcoords="offset points",
                                fontsize=9, weight="bold", zorder=5,
                                path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
        _apply_limits(ax, lim)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    _cluster_legend(fig, axes, colors, counts)
    epoch = int(snap["epoch"]) if "epoch" in snap else None
    fig.suptitle(_headline(run, epoch, _eval_record(run, epoch)) + thinned, fontsize=11)
    return _save(fig, pathlib.Path(path))


def draw_recon_2d(run: Run, path) -> pathlib.Path | None:
    """Data (grey) with reconstructions coloured by cluster; data with the per-cluster samples."""
    snap = run.snapshot
    if snap is None or ("recon" not in snap and "samples" not in snap):
        return None
    y, pred, k, colors, _, keep = _points_by_cluster(snap)
    y = y[:, :2]

    panels = []
    if "recon" in snap:
        panels.append("recon")
    if "samples" in snap:
        panels.append("samples")
    recon = snap["recon"].reshape(len(y), -1)[:, :2] if "recon" in snap else None
    samples = snap["samples"].reshape(k, -1, 2) if "samples" in snap else None
    lim = _limits(y, recon, samples)

    fig = Figure(figsize=(5.2 * len(panels) + 0.5, 6.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, what in zip(axes, panels):
        ax.scatter(y[keep, 0], y[keep, 1], s=5, lw=0, color="0.75", label="data", zorder=1)
        if what == "recon":
            _scatter_by_cluster(ax, recon[keep], pred[keep], colors, s=6)
            ax.set_title("data (grey) and reconstructions, by predicted cluster", fontsize=10)
        else:
            per = samples.shape[1]
            for i in range(k):
                ax.scatter(samples[i, :, 0], samples[i, :, 1], s=14, lw=0, color=colors[i], zorder=2)
            ax.set_title(f"data (grey) and {per} generated samples per cluster", fontsize=10)
        _apply_limits(ax, lim)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    _cluster_legend(fig, axes, colors, np.bincount(pred, minlength=k))
    epoch = int(snap["epoch"]) if "epoch" in snap else None
    fig.suptitle(_headline(run, epoch, _eval_record(run, epoch)), fontsize=11)
    return _save(fig, pathlib.Path(path))
