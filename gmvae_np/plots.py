"""Figures of a training run, drawn from its run directory alone.

Training writes three files into its run directory; this module reads them and nothing else, so the
figures can be redrawn while a run is still going, from another process or another machine:

    config.json     the experiment name and its settings (K, Dx, Dw, input_shape, ...)
    metrics.jsonl   one JSON object per epoch: training ELBO terms and evaluation metrics
    snapshot.npz    arrays saved at the latest evaluation: data, cluster probabilities, latent means,
                    reconstructions, the prior at w = 0 and per-cluster samples

`draw_run(run_dir)` writes every figure that applies into ``run_dir/figures/``:

    learning_curves.png   objective, negative ELBO and each ELBO term per epoch; clustering metrics
    diagnostics.png       how the clusters form: clusters in use, max q, batch entropy, KL gap per epoch
    latent.png            (2-D data) data, latent x means with each component's 2-sigma ellipse, w means
    recon.png             (2-D data) data and reconstructions, data and per-cluster samples
                          (images)  originals above their reconstructions
    samples.png           (images)  one row of samples per cluster
    clusters.png          (other vectors) cluster usage and a 2-D PCA of the data

Figures are drawn with Matplotlib's object-oriented API on the Agg canvas (no window, no pyplot state)
and each is written atomically: drawn to a temporary file in the same folder, then renamed over the
old one, so a reader never sees half a PNG.

Everything here runs on the host with NumPy: the arrays were copied off the device when the snapshot
was saved, and plotting is not part of a training step.
"""
from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator
from PIL import Image          # Matplotlib's own dependency; used to store charts with a palette

from .atomic import write_atomic

__all__ = ["RunDirError", "Run", "read_run", "read_metrics", "read_snapshot", "cluster_colors",
           "data_kind", "draw_run", "draw_learning_curves", "draw_latent", "draw_recon_2d",
           "draw_image_samples", "draw_image_recon", "draw_clusters", "draw_diagnostics"]

DPI = 100
MAX_SCATTER = 6000          # points drawn per scatter panel; larger snapshots are thinned evenly
ELLIPSE_NSTD = 2.0          # the original plot_latent.py drew 2-sigma ellipses
GRID_VALUES = 200_000       # pixel values (H x W x C summed over images) per image grid: keeps a PNG of
                            # noisy colour images under ~250 KB
TERM_KEYS = ("reconstruction", "conditional_prior", "w_prior", "z_prior", "consistency_violation")
CLUSTER_METRICS = ("acc_paper", "acc_hungarian", "nmi")


class RunDirError(ValueError):
    """The folder is not a run directory, or one of its files cannot be read."""


# --------------------------------------------------------------------------------------------------
# Reading the run directory
# --------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a run directory holds: its config, its metric records (one per epoch) and its snapshot."""

    path: pathlib.Path
    config: dict
    metrics: list = field(default_factory=list)
    snapshot: dict | None = None

    @property
    def settings(self) -> dict:
        settings = self.config.get("settings")
        return settings if isinstance(settings, dict) else {}

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment") or self.path.name)


def read_metrics(path) -> list[dict]:
    """Parse metrics.jsonl into a list of per-epoch records, sorted by epoch.

    Lines that do not parse are skipped: the last one may be half written while training runs, and a
    run that crashed and resumed may have left one behind. When an epoch appears twice (a run resumed
    from an earlier checkpoint) the later line wins.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    by_epoch: dict = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), (int, float)):
                continue
            by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def read_snapshot(path) -> dict | None:
    """Load snapshot.npz into a dict of NumPy arrays (None when there is no snapshot yet).

    ``y`` and ``proba`` are required; the other arrays are optional and the panels that need a missing
    one are left out. Shapes are checked against each other so a bad file gives one clear error.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            snap = {key: np.asarray(npz[key]) for key in npz.files}
    except Exception as exc:  # a zip, pickle or format error: say which file and what to do
        raise RunDirError(f"{path} cannot be read ({type(exc).__name__}: {exc}); "
                          "rerun the evaluation to rewrite it") from None
    for key in ("y", "proba"):
        if key not in snap:
            raise RunDirError(f"{path} has no '{key}' array; it holds {sorted(snap)}")
    n = snap["y"].shape[0] if snap["y"].ndim else 0
    if n == 0:
        raise RunDirError(f"{path}: 'y' has no rows (shape {snap['y'].shape}); the snapshot needs at least "
                          "one evaluation example")
    proba = snap["proba"]
    if proba.ndim != 2 or proba.shape[0] != n or proba.shape[1] < 1:
        raise RunDirError(f"{path}: 'proba' has shape {proba.shape}, expected (n, K) with n = {n} "
                          "rows like 'y'")
    k = proba.shape[1]
    for key in ("labels", "x_mean", "w_mean", "recon"):
        if key in snap and (snap[key].ndim == 0 or snap[key].shape[0] != n):
            raise RunDirError(f"{path}: '{key}' has shape {snap[key].shape} but 'y' has {n} rows")
    if "recon" in snap and snap["recon"].size != snap["y"].size:
        raise RunDirError(f"{path}: 'recon' has shape {snap['recon'].shape}, expected the shape of "
                          f"'y' {snap['y'].shape}")
    for key in ("prior_mean", "prior_logvar", "samples"):
        if key in snap and (snap[key].ndim < 2 or snap[key].shape[0] != k):
            raise RunDirError(f"{path}: '{key}' has shape {snap[key].shape}, expected K = {k} "
                              "rows like 'proba' has columns")
    if "prior_mean" in snap and "prior_logvar" in snap \
            and snap["prior_mean"].shape != snap["prior_logvar"].shape:
        raise RunDirError(f"{path}: 'prior_mean' {snap['prior_mean'].shape} and 'prior_logvar' "
                          f"{snap['prior_logvar'].shape} differ in shape")
    return snap


def read_run(run_dir) -> Run:
    """Read config.json, metrics.jsonl and snapshot.npz of ``run_dir``.

    Raises RunDirError when the folder does not exist or holds no config.json (it is not a run
    directory), or when a file is unreadable.
    """
    path = pathlib.Path(run_dir)
    if not path.exists():
        raise RunDirError(f"run directory {path} does not exist; pass the --out folder of a training run")
    if not path.is_dir():
        raise RunDirError(f"{path} is a file, not a run directory; pass the --out folder of a training run")
    config_path = path / "config.json"
    if not config_path.is_file():
        inner = sorted(p.name for p in path.iterdir() if (p / "config.json").is_file())
        if inner:   # a series of seeds: RUN_DIR/seed1, RUN_DIR/seed2, ...
            shown = ", ".join(inner[:3]) + (", ..." if len(inner) > 3 else "")
            raise RunDirError(f"{path} holds {len(inner)} run directories ({shown}) but is not one "
                              f"itself; pass one of them, e.g. {path / inner[0]}")
        raise RunDirError(f"{path} has no config.json, so it is not a run directory; pass the --out "
                          "folder of a training run")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{config_path} is not valid JSON ({exc}); it is written when training starts, "
                          "so restart the run or restore the file") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{config_path} holds a {type(config).__name__}, expected a JSON object")
    return Run(path=path, config=config, metrics=read_metrics(path / "metrics.jsonl"),
               snapshot=read_snapshot(path / "snapshot.npz"))


# --------------------------------------------------------------------------------------------------
# Small helpers: colours, numbers, atomic saving
# --------------------------------------------------------------------------------------------------
def cluster_colors(k: int) -> np.ndarray:
    """K distinguishable RGBA colours: tab10 up to 10, tab20 up to 20, then evenly spaced turbo.

    For 11 to 20 the dark tab20 shades come first and the light ones after, so cluster k and k + 1
    never get two shades of one hue.
    """
    if k <= 10:
        base = np.asarray(colormaps["tab10"].colors)[:k]
    elif k <= 20:
        tab20 = np.asarray(colormaps["tab20"].colors)
        base = np.concatenate([tab20[0::2], tab20[1::2]])[:k]
    else:
        return colormaps["turbo"](np.linspace(0.05, 0.95, k))
    return np.concatenate([base, np.ones((len(base), 1))], axis=1)


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 1000 or (v != 0 and abs(v) < 10 ** -digits):
        return f"{v:.4g}"
    return f"{v:.{digits}f}"


def _thin(n: int, limit: int = MAX_SCATTER) -> np.ndarray:
    """Indices of at most ``limit`` points spread evenly over ``n`` (all of them when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _save(fig: Figure, path: pathlib.Path, palette: bool = True) -> pathlib.Path:
    """Write ``fig`` to ``path`` atomically (atomic.write_atomic), so a reader never sees half a PNG.

    Charts are stored with a 256-colour palette (no dithering): they hold a few dozen colours and
    their anti-aliased edges, so it looks the same and takes a third of the bytes of full RGBA.
    Image grids keep full colour (``palette=False``).
    """
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    if palette:
        rgb = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return write_atomic(path, lambda f: rgb.save(f, format="png"))


def data_kind(run: Run) -> str:
    """'plane' for 2-D vectors, 'image' for (C, H, W) inputs, 'vector' for other feature vectors."""
    shape = _input_shape(run)
    if len(shape) == 3:
        return "image"
    if int(np.prod(shape)) == 2:
        return "plane"
    return "vector"


def _input_shape(run: Run) -> tuple:
    shape = run.settings.get("input_shape")
    if shape:
        if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
            raise RunDirError(f"{run.path / 'config.json'}: settings.input_shape is {shape!r}, expected "
                              "a list of positive sizes such as [2] or [1, 28, 28]")
        return tuple(shape)
    if run.snapshot is not None:
        return tuple(run.snapshot["y"].shape[1:])
    return ()


def _eval_record(run: Run, epoch=None) -> dict:
    """The eval metrics of ``epoch`` if logged, otherwise of the latest epoch that has any."""
    records = [r for r in run.metrics if isinstance(r.get("eval"), dict) and r["eval"]]
    if epoch is not None:
        for r in records:
            if r["epoch"] == epoch:
                return r["eval"]
    return records[-1]["eval"] if records else {}


def _headline(run: Run, epoch, ev: dict) -> str:
    """Figure title: experiment, variant and K, epoch, and the key clustering metrics."""
    s = run.settings
    tags = ", ".join(f"{k}={s[k]}" if k != "variant" else str(s[k])
                     for k in ("variant", "K") if s.get(k) is not None)
    parts = [run.experiment + (f" ({tags})" if tags else "")]
    if epoch is not None:
        parts.append(f"epoch {epoch}")
    if "acc_paper" in ev:
        parts.append(f"acc {_fmt(ev['acc_paper'])}")
    if "acc_hungarian" in ev:
        parts.append(f"Hungarian acc {_fmt(ev['acc_hungarian'])}")
    if "nmi" in ev:
        parts.append(f"NMI {_fmt(ev['nmi'])}")
    if "neg_elbo" in ev:
        parts.append(f"eval −ELBO {_fmt(ev['neg_elbo'])}")
    return "  ·  ".join(parts)


def _cluster_legend(fig: Figure, axes, colors: np.ndarray, counts: np.ndarray) -> None:
    """The cluster key, under the panels: a marker and point count per cluster for K <= 20, and a
    colour strip numbered 0 .. K-1 beyond that."""
    k = len(colors)
    if k > 20:
        strip = ScalarMappable(norm=BoundaryNorm(np.arange(k + 1) - 0.5, k), cmap=ListedColormap(colors))
        bar = fig.colorbar(strip, ax=list(axes), location="bottom", shrink=0.5, aspect=40, pad=0.02)
        bar.set_ticks(np.arange(0, k, math.ceil(k / 20)))
        bar.minorticks_off()
        bar.set_label(f"predicted cluster ({int(np.sum(counts > 0))} of {k} used)", fontsize=9)
        bar.ax.tick_params(labelsize=8)
        return
    handles = [Line2D([], [], ls="", marker="o", ms=7, color=colors[i], label=f"{i}: {counts[i]:,}")
               for i in range(k)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(k, 10), frameon=False,
               title="predicted cluster: points", fontsize=9, title_fontsize=9, handletextpad=0.2,
               columnspacing=1.2)


def _limits(*point_sets, margin: float = 0.06):
    """Axis limits (x0, x1, y0, y1) covering the finite points of every set, with a margin."""
    pts = np.concatenate([p.reshape(-1, 2) for p in point_sets if p is not None and p.size])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) == 0:
        return None
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - margin * span, hi + margin * span
    return lo[0], hi[0], lo[1], hi[1]


def _apply_limits(ax, lim) -> None:
    """Square limits around ``lim`` and equal aspect, so every plane panel is the same square."""
    if lim is not None:
        cx, cy = (lim[0] + lim[1]) / 2, (lim[2] + lim[3]) / 2
        half = max(lim[1] - lim[0], lim[3] - lim[2]) / 2
        ax.set_xlim(cx - half, cx + half)
        ax.set_ylim(cy - half, cy + half)
    ax.set_aspect("equal", adjustable="box")


# --------------------------------------------------------------------------------------------------
# learning_curves.png
# --------------------------------------------------------------------------------------------------
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
    terms = [k for k in TERM_KEYS if k in train_keys] + \
            sorted(k for k in train_keys if k not in TERM_KEYS + ("objective", "neg_elbo"))
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


# --------------------------------------------------------------------------------------------------
# 2-D data: latent.png and recon.png (after the original plot_latent.py and plot_recon.py)
# --------------------------------------------------------------------------------------------------
def _predicted(snap: dict) -> np.ndarray:
    return np.argmax(snap["proba"], axis=1)


def _points_by_cluster(snap: dict):
    """What every per-point figure starts from: the data as rows, each row's predicted cluster, K,
    one colour per cluster, the number of rows per cluster, and the rows to draw (a subsample)."""
    y = snap["y"].reshape(len(snap["y"]), -1)
    pred = _predicted(snap)
    k = snap["proba"].shape[1]
    return y, pred, k, cluster_colors(k), np.bincount(pred, minlength=k), _thin(len(y))


def _scatter_by_cluster(ax, points, pred, colors, s=6) -> None:
    ax.scatter(points[:, 0], points[:, 1], c=colors[pred], s=s, lw=0, rasterized=False)


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


# --------------------------------------------------------------------------------------------------
# Images: samples.png and recon.png
# --------------------------------------------------------------------------------------------------
def _as_images(a: np.ndarray, shape: tuple, name: str) -> np.ndarray:
    """Reshape (..., C*H*W) or (..., C, H, W) to (..., C, H, W)."""
    lead = a.shape[:-3] if a.shape[-3:] == tuple(shape) else a.shape[:-1]
    if int(np.prod(a.shape[len(lead):])) != int(np.prod(shape)):
        raise RunDirError(f"snapshot '{name}' has shape {a.shape}, which does not hold images of the "
                          f"input_shape {list(shape)} in config.json")
    return a.reshape(*lead, *shape)


def _display(images: np.ndarray):
    """(..., C, H, W) -> (..., H, W) grey or (..., H, W, 3) colour in [0, 1], and a note if rescaled.

    Bernoulli outputs and image data already lie in [0, 1] and are shown as they are; anything else
    (Gaussian outputs, z-scored pixels) is min-max scaled per image, and the figure says so.
    """
    c = images.shape[-3]
    note = ""
    if c == 3:
        imgs = np.moveaxis(images, -3, -1)
    else:
        imgs = images[..., 0, :, :]
        if c != 1:
            note = f"channel 0 of {c}"
    imgs = imgs.astype(np.float64)
    finite = imgs[np.isfinite(imgs)]
    if finite.size and (finite.min() < -1e-3 or finite.max() > 1.0 + 1e-3):
        axes = tuple(range(imgs.ndim - (3 if c == 3 else 2), imgs.ndim))
        lo = np.nanmin(np.where(np.isfinite(imgs), imgs, np.inf), axis=axes, keepdims=True)
        hi = np.nanmax(np.where(np.isfinite(imgs), imgs, -np.inf), axis=axes, keepdims=True)
        imgs = (imgs - lo) / np.maximum(hi - lo, 1e-12)
        note = ", ".join(n for n in (note, "each image min-max scaled") if n)
    imgs = np.clip(np.nan_to_num(imgs, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return imgs, note


def _mosaic(grid: np.ndarray, pad: int = 2, group: int = 1, group_pad: int = 2):
    """Tile (rows, cols, H, W[, 3]) images into one white-gapped array; return it and each row's centre.

    Rows come in groups of ``group`` (2 for data/reconstruction pairs) with ``group_pad`` pixels between
    groups and ``pad`` pixels between everything else.
    """
    rows, cols, h, w = grid.shape[:4]
    tops, y = [], 0
    for r in range(rows):
        if r:
            y += group_pad if r % group == 0 else pad
        tops.append(y)
        y += h
    out = np.ones((y, cols * (w + pad) - pad, *grid.shape[4:]))
    for r, top in enumerate(tops):
        for c in range(cols):
            out[top: top + h, c * (w + pad): c * (w + pad) + w] = grid[r, c]
    return out, [top + (h - 1) / 2 for top in tops]


def _image_figure(mosaic: np.ndarray, row_labels, row_centres, title: str, max_width_px: int = 1100,
                  max_height_px: int = 1200):
    """A figure showing ``mosaic`` at a whole number of screen pixels per image pixel, with row labels.

    The axes are placed by hand, in pixels, so the image is never resampled to an odd size: every image
    pixel becomes an exact ``scale`` x ``scale`` block. That keeps the grid crisp, and PNG compresses
    the repeated pixels almost for free.
    """
    h, w = mosaic.shape[:2]
    scale = max(1, min(4, max_width_px // w, max_height_px // h))
    title_lines = title.count("\n") + 1
    left = 150 if row_labels else 10
    top, bottom, right = 14 + 17 * title_lines, 8, 12
    width_px, height_px = left + w * scale + right, top + h * scale + bottom
    title_px = 7 * max(len(line) for line in title.split("\n")) + 20   # about 7 px a character
    if width_px < title_px:            # widen so the title fits; keep the grid centred
        extra = title_px - width_px
        left, width_px = left + extra // 2, title_px
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    ax = fig.add_axes((left / width_px, bottom / height_px, w * scale / width_px, h * scale / height_px))
    if mosaic.ndim == 2:
        ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    else:
        ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks(row_centres, labels=row_labels, fontsize=9)
    else:
        ax.set_yticks([])
    ax.tick_params(left=False, pad=4)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.text(0.5, 1.0 - 6 / height_px, title, ha="center", va="top", fontsize=10)
    return fig


def draw_image_samples(run: Run, path, max_per_row: int = 12) -> pathlib.Path | None:
    """A K-row grid: row k holds samples of cluster k, labelled with its share of the data."""
    snap = run.snapshot
    if snap is None or "samples" not in snap:
        return None
    shape = _input_shape(run)
    k = snap["proba"].shape[1]
    per_row = max(4, min(max_per_row, GRID_VALUES // (k * int(np.prod(shape)))))
    samples = _as_images(snap["samples"], shape, "samples")[:, :per_row]
    imgs, note = _display(samples)
    pred = _predicted(snap)
    share = np.bincount(pred, minlength=k) / max(len(pred), 1)
    labels = []
    for i in range(k):
        text = f"z={i}  {100 * share[i]:.1f}%"
        if "labels" in snap and np.any(pred == i):
            values, counts = np.unique(snap["labels"][pred == i], return_counts=True)
            text += f"  →{values[np.argmax(counts)]}"
        labels.append(text)
    mosaic, centres = _mosaic(imgs)
    epoch = int(snap["epoch"]) if "epoch" in snap else None
    title = _headline(run, epoch, _eval_record(run, epoch)) + \
        "\nsamples per cluster (row label: share of data" + \
        (", majority true label" if "labels" in snap else "") + ")" + (f"; {note}" if note else "")
    fig = _image_figure(mosaic, labels, centres, title)
    return _save(fig, pathlib.Path(path), palette=False)


def draw_image_recon(run: Run, path, cols: int = 12, pairs: int = 4) -> pathlib.Path | None:
    """Pairs of rows: originals spread evenly through the snapshot, and their reconstructions below."""
    snap = run.snapshot
    if snap is None or "recon" not in snap:
        return None
    shape = _input_shape(run)
    y = _as_images(snap["y"], shape, "y")
    recon = _as_images(snap["recon"], shape, "recon")
    n = len(y)
    cols = min(cols, n)
    pairs = max(1, min(pairs, n // cols, GRID_VALUES // (2 * cols * int(np.prod(shape)))))
    idx = np.linspace(0, n - 1, cols * pairs).round().astype(np.int64)
    both, note = _display(np.stack([y[idx], recon[idx]]))        # scaled together: one note
    orig, rec = both[0].reshape(pairs, cols, *both.shape[2:]), both[1].reshape(pairs, cols, *both.shape[2:])
    grid = np.stack([orig, rec], axis=1).reshape(2 * pairs, cols, *both.shape[2:])
    mosaic, centres = _mosaic(grid, group=2, group_pad=8)
    labels = ["data", "reconstruction"] * pairs
    epoch = int(snap["epoch"]) if "epoch" in snap else None
    title = _headline(run, epoch, _eval_record(run, epoch)) + \
        f"\n{cols * pairs} examples above their reconstructions" + (f"; {note}" if note else "")
    fig = _image_figure(mosaic, labels, centres, title)
    return _save(fig, pathlib.Path(path), palette=False)


# --------------------------------------------------------------------------------------------------
# Feature vectors: clusters.png
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------
def draw_run(run_dir) -> list[pathlib.Path]:
    """Draw every figure that applies to ``run_dir`` into ``run_dir/figures/``; return their paths.

    Before the first epoch is logged there is nothing to draw and the list is empty; before the first
    snapshot only the learning curves are drawn. Raises RunDirError for a folder that is not a run
    directory or holds an unreadable file.
    """
    run = read_run(run_dir)
    out = run.path / "figures"
    out.mkdir(exist_ok=True)
    written = [draw_learning_curves(run, out / "learning_curves.png"), draw_diagnostics(run, out / "diagnostics.png")]
    if run.snapshot is not None:
        kind = data_kind(run)
        if kind == "plane":
            written += [draw_latent(run, out / "latent.png"), draw_recon_2d(run, out / "recon.png")]
        elif kind == "image":
            written += [draw_image_samples(run, out / "samples.png"),
                        draw_image_recon(run, out / "recon.png")]
        else:
            written.append(draw_clusters(run, out / "clusters.png"))
    return [p for p in written if p is not None]
