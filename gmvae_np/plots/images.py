"""Images: samples.png (a row of samples per cluster) and recon.png (originals above their reconstructions)."""
from __future__ import annotations

import pathlib

import numpy as np
from matplotlib.figure import Figure

from .common import (DPI, GRID_VALUES, Run, RunDirError, _eval_record, _headline, _input_shape, _predicted,
                    _save)


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
