"""Figures of a training run, drawn from its run directory alone.

Training writes three files into its run directory; the figures read them (through gmvae_np.runread's
readers, which take no lock) and nothing else, so they can be redrawn while a run is still going, from
another process or another machine:

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
was saved, and plotting is not part of a training step. The figures live in one module per kind of
data: curves.py (every run), plane.py (2-D data), images.py, vectors.py (other feature vectors), with
what they share in common.py.
"""
from __future__ import annotations

import pathlib

from ..runread import Run, RunDirError, read_metrics, read_run, read_snapshot
from .common import cluster_colors, data_kind
from .curves import draw_diagnostics, draw_learning_curves
from .images import draw_image_recon, draw_image_samples
from .plane import draw_latent, draw_recon_2d
from .vectors import draw_clusters

# the readers are gmvae_np.runread's; they stay importable from here, as before
__all__ = ["RunDirError", "Run", "read_run", "read_metrics", "read_snapshot", "cluster_colors",
           "data_kind", "draw_run", "draw_learning_curves", "draw_latent", "draw_recon_2d",
           "draw_image_samples", "draw_image_recon", "draw_clusters", "draw_diagnostics"]


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
