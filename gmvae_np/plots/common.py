"""What every figure shares: sizes, cluster colours, number formats, titles, the cluster key, axis
limits, and atomic saving of a PNG (gmvae_np.atomic)."""
from __future__ import annotations

import math
import pathlib

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image          # Matplotlib's own dependency; used to store charts with a palette

from ..atomic import write_atomic
from ..runread import Run, RunDirError

DPI = 100
MAX_SCATTER = 6000          # points drawn per scatter panel; larger snapshots are thinned evenly
GRID_VALUES = 200_000       # pixel values (H x W x C summed over images) per image grid: keeps a PNG of
                            # noisy colour images under ~250 KB


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
