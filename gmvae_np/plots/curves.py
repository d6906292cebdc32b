"""learning_curves.png and diagnostics.png: what metrics.jsonl says, epoch by epoch."""
from __future__ import annotations

import math
import pathlib

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..elbo import TERMS
from .common import DPI, Run, _eval_record, _headline, _save

CLUSTER_METRICS = ("acc_paper", "acc_hungarian", "nmi")


def _series(metrics: list, part: str, key: str):
    xs, ys = [], []
    for r in metrics:
        block = r.get(part)
        if isinstance(block, dict) and isinstance(block.get(key), (int, float)) \
                and not isinstance(block.get(key), bool):
            xs.append(r["epoch"])
            ys.append(float(block[key]))
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _plot_series(ax, x, y, **kw) -> None:
    if len(x) <= 40:
        kw.setdefault("marker", "o")
        kw.setdefault("ms", 3)
    ax.plot(x, y, **kw)


def _maybe_log(ax, *ys) -> bool:
    """Log y-scale when every value is positive and they span more than two decades; say if so."""
    vals = [y[np.isfinite(y)] for y in ys if len(y)]
    vals = np.concatenate(vals) if vals else np.array([])
    if vals.size and vals.min() > 0 and vals.max() / vals.min() > 100:
        ax.set_yscale("log")
        return True
    return False


def draw_learning_curves(run: Run, path) -> pathlib.Path | None:
    """Objective and negative ELBO (train and eval), each ELBO term, and the clustering metrics."""
    metrics = run.metrics
    if not metrics:
        return None
    train_keys = []
    for r in metrics:
        for k, v in (r.get("train") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in train_keys:
                train_keys.append(k)
    terms = [k for k in TERMS if k in train_keys] + \
            sorted(k for k in train_keys if k not in TERMS + ("objective", "neg_elbo"))
    cluster = [k for k in CLUSTER_METRICS if len(_series(metrics, "eval", k)[0])]

    fig = Figure(figsize=(12.5, 7.8 if terms else 4.6), dpi=DPI, layout="constrained")
    if terms:
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.45, 1], hspace=0.04)
    else:
        top, bottom = fig, None
    top_axes = top.subplots(1, 2 if cluster else 1, squeeze=False)[0]
    ax_loss = top_axes[0]
    shown = []
    for part, key, label, style in (("train", "objective", "train objective", dict(color="C0", lw=2)),
                                    ("train", "neg_elbo", "train −ELBO", dict(color="C1", ls="--")),
                                    ("eval", "neg_elbo", "eval −ELBO", dict(color="C3", marker="s",
                                                                             ms=4))):
        x, y = _series(metrics, part, key)
        if len(x):
            _plot_series(ax_loss, x, y, label=label, **style)
            shown.append(y)
    log = _maybe_log(ax_loss, *shown)
    ax_loss.set_title("objective and negative ELBO" + (" (log scale)" if log else ""), fontsize=10)
    if shown:
        ax_loss.legend(fontsize=9)

    if cluster:
        ax_c = top_axes[1]
        names = {"acc_paper": "accuracy (paper: most confident sample)",
                 "acc_hungarian": "accuracy (Hungarian matching)", "nmi": "NMI"}
        for i, key in enumerate(cluster):
            x, y = _series(metrics, "eval", key)
            _plot_series(ax_c, x, y, label=names[key], color=f"C{i + 4}")
        ax_c.set_ylim(-0.02, 1.02)
        ax_c.set_title("clustering metrics on the evaluation set", fontsize=10)
        ax_c.legend(fontsize=9, loc="lower right")

    term_axes = bottom.subplots(1, len(terms), squeeze=False)[0] if terms else []
    any_eval_term = False
    for ax, key in zip(term_axes, terms):
        x, y = _series(metrics, "train", key)
        _plot_series(ax, x, y, color="C2")
        xe, ye = _series(metrics, "eval", key)
        if len(xe):
            any_eval_term = True
            ax.plot(xe, ye, ls="", marker="s", ms=3, color="C3")
        log = _maybe_log(ax, y, ye)
        ax.set_title(key.replace("_", " ") + ("\n(log scale)" if log else ""), fontsize=10)
        ax.tick_params(labelsize=8)
    if terms:
        bottom.suptitle("ELBO terms per epoch" + (" (green line: train, red squares: eval)"
                                                  if any_eval_term else ", training set"),
                        fontsize=10, color="0.25")
    for ax, narrow in [(ax, False) for ax in top_axes] + [(ax, True) for ax in term_axes]:
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True) if narrow else MaxNLocator(integer=True))
        ax.grid(alpha=0.3)

    last = metrics[-1]["epoch"]
    fig.suptitle(_headline(run, last, _eval_record(run)), fontsize=11)
    return _save(fig, pathlib.Path(path))


DIAGNOSTIC_PANELS = (   # key, title, whether log K is drawn as a reference line (gmvae_np.diagnostics)
    ("clusters_used", "clusters in use", False),
    ("max_q", "mean max_k p_k (sharpness)", False),
    ("batch_entropy", "entropy of the batch-mean p (log K: even use)", True),
    ("kl_gap", "best-to-worst component KL gap (nats)", True),
)


def draw_diagnostics(runs, path, title: str | None = None) -> pathlib.Path | None:
    """The diagnostics of gmvae_np.diagnostics per epoch, for one run or several ({label: Run}) overlaid.

    Lines are the training epochs' averages ("diagnostics" in metrics.jsonl), squares the evaluation
    split's. The dashed line is log K: the largest batch entropy, and the most the z prior can cost a
    point, against which a KL gap of tens of nats leaves each point no choice but its nearest component.
    """
    runs = runs if isinstance(runs, dict) else {"": runs}
    if not any(_series(r.metrics, "diagnostics", "max_q")[0].size for r in runs.values()):
        return None
    fig = Figure(figsize=(13, 3.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(DIAGNOSTIC_PANELS))
    for i, (label, run) in enumerate(runs.items()):
        color = f"C{i}"
        for ax, (key, _, _) in zip(axes, DIAGNOSTIC_PANELS):
            x, y = _series(run.metrics, "diagnostics", key)
            _plot_series(ax, x, y, color=color, label=label or "train")
            xe, ye = _series(run.metrics, "eval", key)
            ax.plot(xe, ye, ls="", marker="s", ms=3, color=color if label else "C3",
                    label=None if label else "eval")
    for ax, (key, name, log_k) in zip(axes, DIAGNOSTIC_PANELS):
        if log_k:
            for i, run in enumerate(runs.values()):
                K = run.settings.get("K")
                if K:
                    ax.axhline(math.log(K), ls="--", lw=1, color=f"C{i}" if len(runs) > 1 else "0.4")
        if key == "kl_gap" and _maybe_log(ax, *(_series(r.metrics, "diagnostics", key)[1] for r in runs.values())):
            name += "\n(log scale)"
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    k_max = max(int(r.settings.get("K") or 1) for r in runs.values())
    axes[0].set_ylim(0, k_max + 0.5)
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_ylim(0, 1.05 * math.log(max(k_max, 2)))
    axes[0].legend(fontsize=8, loc="lower right")
    if title is None:
        (only,) = runs.values() if len(runs) == 1 else (None,)
        title = _headline(only, only.metrics[-1]["epoch"], _eval_record(only)) if only else "diagnostics"
    fig.suptitle(title, fontsize=11)
    return _save(fig, pathlib.Path(path))
