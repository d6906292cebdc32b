"""The tables and figures of the neighbour-graph study (docs/results.md, section 8): from run directories, and
the graph's candidate spaces of a data set, measured on its training images before any training.

    python docs/make_figures.py --runs RUNS --tables     prints them with the rest (make_figures calls this)
    python docs/neighbour_study.py --spaces fashion-mnist   the graph's candidate spaces of a data set, measured
                                                            before any training (space_study)
    python docs/neighbour_study.py --spaces fashion-mnist --clusters RUN_DIR   the classes in each of a run's
                                                            clusters, on the test images (cluster_contents)

Two kinds of run are read under RUNS:

    neighbour-screens/<name>/  one short run each, any settings: the table lists, per run, the settings that
                               differ from the mnist_recipe preset, and the accuracy after each screening length
    <series>/                  a series of seeds (``--seeds``) of NEIGHBOUR_SERIES, without restarts: one row
                               per seed and the mean

Nothing here trains; the commands that train each run are in NEIGHBOUR_SERIES and in the screens'
own config.json (every setting is there).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gmvae_np import plots
from gmvae_np.presets import preset
from gmvae_np.rundir import RunDir, RunDirError, read_timing

_GRAPH = "--restarts 1 --epochs 20 --neighbours 10 --neighbour-weight 50 --balance 100 --no-plots"
_SPACES = {   # series name prefix -> (the graph's space flags, its caption)
    "neighbours": ("", "recipe + neighbour graph"),
    "deskew": (" --neighbour-space deskew", "recipe + deskewed neighbour graph"),
}
NEIGHBOUR_SERIES = {   # name -> (command, caption): the confirmation over seeds (docs/results.md, section 8)
    f"{prefix}-K{K}-seeds{seeds}": (f"./run.sh mnist-recipe --K {K} --seeds {seeds} {_GRAPH}{flags}",
                                    f"{caption}, K={K}" + (", fresh seeds" if seeds == "6-10" else ""))
    for prefix, (flags, caption) in _SPACES.items() for K in (10, 16) for seeds in ("1-5", "6-10")
}
NEIGHBOUR_SERIES.update({   # K = 16 with a lighter balance term (screened on seeds 1 and 2)
    f"deskew-b20-K16-seeds{seeds}": (
        f"./run.sh mnist-recipe --K 16 --seeds {seeds} --jobs 2 {_GRAPH.replace('--balance 100', '--balance 20')}"
        f"{_SPACES['deskew'][0]}",
        "recipe + deskewed neighbour graph, balance 20, K=16" + (", fresh seeds" if seeds == "6-10" else ""))
    for seeds in ("1-5", "6-10")
})
WITHOUT = {   # the recipe without the term, from the seeds' own starts, as long (the curves' other halves)
    f"recipe-K{K}-s1-e20": (f"./run.sh mnist-recipe --K {K} --seed 1 --restarts 1 --epochs 20 --no-plots",
                            f"the recipe, K={K}, seed 1, no graph")
    for K in (10, 16)
}
SPIRAL = {   # the 2 rad spiral with the graph over ten seeds (the preset's settings otherwise)
    "spiral2rad-graph-seeds1-10": ("./run.sh spiral --curl 2 --seeds 1-10 --neighbours 10 --neighbour-weight 20 "
                                   "--balance 10 --log-every 0 --eval-every 50 --no-plots",
                                   "the 2 rad spiral + neighbour graph"),
}
CURVES = {   # name -> ({caption: run directory under RUNS}, file name): accuracy by epoch with and without the term
    "curves": ({f"K={K}, {what}": path for K in (10, 16)
                for what, path in (("the recipe", f"recipe-K{K}-s1-e20"),
                                   ("with the neighbour graph", f"neighbours-K{K}-seeds1-5/seed1"),
                                   ("with the deskewed graph", f"deskew-K{K}-seeds1-5/seed1"))},
               "mnist_neighbours_curves.png"),
}
SAMPLES = "deskew-K10-seeds1-5"
"""The series whose first seed's K = 10 model draws mnist_neighbours_samples.png."""


def _read(run_dir: Path):
    try:
        config = json.loads((run_dir / "config.json").read_text())
        metrics = plots.read_metrics(run_dir / "metrics.jsonl")
    except (OSError, ValueError, plots.RunDirError):
        return None
    return config, metrics


def _changes(settings: dict) -> str:
    """The settings of a run that differ from the mnist_recipe preset (K and seed are columns of their own)."""
    base = preset("mnist_recipe").to_dict()
    skip = {"K", "seed", "epochs", "plots", "log_every", "eval_every", "plot_every", "data_dir", "backend",
            "likelihood"}   # the likelihood is stored resolved (bernoulli for MNIST), as the preset's auto means
    out = [f"{k.replace('_', '-')} {v}" for k, v in settings.items()
           if k in base and k not in skip and v != base[k]]
    return ", ".join(out) or "the recipe"


def screen_table(root: Path, at=(5, 10)) -> str | None:
    """One row per screen in root/neighbour-screens: its changes from the recipe, K, seed, the accuracy (paper's
    criterion) at the epochs ``at`` and at its last epoch, the clusters in use and the seconds per epoch."""
    folder = root / "neighbour-screens"
    if not folder.is_dir():
        return None
    rows = []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        read = _read(run_dir)
        if read is None or not read[1]:
            continue
        config, metrics = read
        s = config["settings"]
        acc = {r["epoch"]: 100 * r["eval"]["acc_paper"] for r in metrics if "eval" in r}
        last = metrics[-1]
        timing = read_timing(run_dir)
        per_epoch = np.median([t["epoch_seconds"] for t in timing]) if timing else float("nan")
        rows.append((s["K"], _changes(s), s["seed"], run_dir.name,
                     " | ".join(f"{acc[e]:.1f}" if e in acc else "" for e in at),
                     f"{acc.get(last['epoch'], float('nan')):.1f} (epoch {last['epoch']})",
                     last.get("eval", {}).get("clusters_used", ""), f"{per_epoch:.0f} s"))
    if not rows:
        return None
    lines = ["| K | settings (changes from the recipe) | seed | run | " + " | ".join(f"acc. after {e}" for e in at)
             + " | acc. at the end | clusters used | seconds per epoch (a shared 2-core machine) |", "|---|---|---|---|" + "---|" * len(at)
             + "---|---|---|"]
    for r in sorted(rows):
        lines.append("| " + " | ".join(str(v) for v in r) + " |")
    return "\n".join(lines)


def read_plain_series(root: Path) -> list[dict] | None:
    """Per finished seed of a series without restarts: the last evaluation, the wall time (training,
    evaluation and the graph when this seed built it) and the epochs. None when there is no series."""
    try:
        series = RunDir(root).read_series()     # seeds.json, through its one reader
    except RunDirError:
        return None
    if series is None:
        return None
    rows = []
    for seed in series["seeds"]:
        read = _read(root / f"seed{seed}")
        if read is None:
            continue
        config, metrics = read
        if not metrics or metrics[-1]["epoch"] != config["settings"]["epochs"] or "eval" not in metrics[-1]:
            continue
        timing = read_timing(root / f"seed{seed}")
        graph = config.get("neighbour_graph") or {}
        rows.append({"seed": seed, "final": {"epoch": metrics[-1]["epoch"], **metrics[-1]["eval"]},
                     "seconds": timing[-1]["seconds"] if timing else float("nan"),
                     "graph_agreement": graph.get("label_agreement")})
    return rows


def series_table(root: Path, names: dict) -> str | None:
    """One row per seed of each series in ``names`` (name -> caption), then mean ± std and best."""
    lines = ["| run | seed | epochs | acc. (paper's criterion) | Hungarian acc. | NMI | ARI | clusters used | "
             "wall time |", "|---|---|---|---|---|---|---|---|---|"]
    found = False
    for name, caption in names.items():
        rows = read_plain_series(root / name)
        if not rows:
            continue
        found = True
        for r in rows:
            ev = r["final"]
            lines.append(f"| {caption} | {r['seed']} | {ev['epoch']} | {100 * ev['acc_paper']:.2f} | "
                         f"{100 * ev['acc_hungarian']:.2f} | {ev['nmi']:.3f} | {ev['ari']:.3f} | "
                         f"{ev['clusters_used']} | {r['seconds'] / 60:.1f} min |")
        if len(rows) > 1:
            col = {k: np.asarray([r["final"][k] for r in rows], dtype=float)
                   for k in ("acc_paper", "acc_hungarian", "nmi", "ari", "clusters_used")}
            minutes = np.asarray([r["seconds"] / 60 for r in rows])
            lines.append(f"| **{caption}: mean ± std over {len(rows)} seeds** | | | **{_ms(100 * col['acc_paper'])}** | "
                         f"{_ms(100 * col['acc_hungarian'])} | {_ms(col['nmi'], 3)} | {_ms(col['ari'], 3)} | "
                         f"{_ms(col['clusters_used'], 1)} | {_ms(minutes, 1)} min |")
    return "\n".join(lines) if found else None


def purity_table(root: Path, caption: str) -> str | None:
    """The spiral's scores: purity, Hungarian accuracy, NMI and clusters used per finished seed, then mean
    ± std (purity is the spiral's bar: docs/results.md, section 3)."""
    rows = read_plain_series(root)
    if not rows:
        return None
    lines = ["| run | seed | purity | Hungarian acc. | NMI | clusters used |", "|---|---|---|---|---|---|"]
    for r in rows:
        ev = r["final"]
        lines.append(f"| {caption} | {r['seed']} | {ev['purity']:.3f} | {ev['acc_hungarian']:.3f} | {ev['nmi']:.3f} | "
                     f"{ev['clusters_used']} |")
    col = {k: np.asarray([r["final"][k] for r in rows], dtype=float)
           for k in ("purity", "acc_hungarian", "nmi", "clusters_used")}
    lines.append(f"| **{caption}: mean ± std over {len(rows)} seeds** | | **{_ms(col['purity'], 3)}** | "
                 f"{_ms(col['acc_hungarian'], 3)} | {_ms(col['nmi'], 3)} | {_ms(col['clusters_used'], 1)} |")
    return "\n".join(lines)


def _ms(v, digits: int = 2) -> str:
    v = np.asarray(v, dtype=float)
    return f"{v.mean():.{digits}f} ± {(v.std(ddof=1) if v.size > 1 else 0.0):.{digits}f}"


def curves(root: Path, pairs: dict, path: Path) -> Path | None:
    """Accuracy (paper's criterion) by epoch of run pairs with and without the term: pairs maps a caption
    to a run directory under root; None when none of them exists."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    for caption, rel in pairs.items():
        read = _read(root / rel)
        if read is None:
            continue
        metrics = read[1]
        epochs = [r["epoch"] for r in metrics if "eval" in r]
        ax.plot(epochs, [100 * r["eval"]["acc_paper"] for r in metrics if "eval" in r], marker="o", ms=3,
                label=caption)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy, paper's criterion (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def report(runs: Path, out: Path, captions: dict, tables: bool, wrote) -> list:
    """What make_figures does for this study: the figures whose runs exist (``wrote(path)`` for each), the
    tables when ``tables``; returns the names of NEIGHBOUR_SERIES that are missing."""
    missing = [name for name in {**NEIGHBOUR_SERIES, **SPIRAL} if not read_plain_series(runs / name)]
    missing += [name for name in WITHOUT if not (runs / name / "metrics.jsonl").is_file()]
    for name, (pair, path) in CURVES.items():
        drawn = curves(runs, pair, out / path)
        if drawn is not None:
            wrote(drawn)
    if SAMPLES not in missing:
        seed = read_plain_series(runs / SAMPLES)[0]["seed"]
        wrote(plots.draw_image_samples(plots.read_run(runs / SAMPLES / f"seed{seed}"),
                                       out / "mnist_neighbours_samples.png"))
    if tables:
        screens = screen_table(runs)
        if screens:
            print(f"\nscreens of the neighbour term:\n{screens}\n")
        series = series_table(runs, {n: captions[n] for n in NEIGHBOUR_SERIES})
        if series:
            print(f"\nthe neighbour term over seeds:\n{series}\n")
        for name, (_, caption) in SPIRAL.items():
            table = purity_table(runs / name, caption)
            if table:
                print(f"\n{caption} over seeds:\n{table}\n")
        for name in STRUCTURE_SERIES:
            structure = graph_structure(runs / name)
            if structure:
                print(f"\nwhat the graph of {name} says, and what the clusters cut:\n{structure}\n")
    return missing


STRUCTURE_SERIES = ("neighbours-K10-seeds1-5", "deskew-K10-seeds1-5")
"""The series whose graph and seeds ``graph_structure`` reads (K = 10, MNIST): PCA-50 of the pixels, and of
the deskewed images."""


def graph_structure(root: Path) -> str | None:
    """Spectral clustering of the series' graph alone (K = 10 and 16), and, per finished seed, the share of
    the 4/9 edges its clusters cut against the share the labels cut. None when the series is missing."""
    rows = read_plain_series(root)
    graphs = sorted(root.glob("neighbours-*.npz"))
    if not rows or not graphs:
        return None
    from gmvae_np.data import load_dataset

    data = load_dataset("mnist").flat()
    lines = []
    for K in (10, 16):
        acc, parts = graph_partition(graphs[0], data.y_train, K)
        mixed = "; ".join(", ".join(f"{d}: {n:,}" for d, n in p.items()) for p in parts if len(p) > 1) or "none"
        lines.append(f"- the graph alone, K = {K}: Hungarian accuracy {100 * acc:.1f} %; mixed clusters: {mixed}")
    for r in rows:
        model, labels = cut_shares(root / f"seed{r['seed']}", graphs[0], data.x_train, data.y_train)
        lines.append(f"- seed {r['seed']}: its clusters cut {100 * model:.1f} % of the edges among 4s and 9s, "
                     f"the labels {100 * labels:.1f} %")
    return "\n".join(lines)


def graph_partition(graph_file: Path, labels: np.ndarray, K: int, seed: int = 0) -> tuple[float, list]:
    """Spectral clustering of a stored neighbour graph alone (no network): the K leading eigenvectors of the
    symmetrised graph's normalised adjacency D^-1/2 A D^-1/2, rows normalised, then k-means (K restarts
    of scikit-learn's KMeans). Returns the Hungarian accuracy against ``labels`` and, per cluster, its
    classes holding more than a tenth of it: what the graph itself says the clusters are."""
    from gmvae_np.neighbours import NeighbourGraph

    with np.load(graph_file) as f:
        graph = NeighbourGraph.from_arrays({k: f[k] for k in f.files}, where=str(graph_file))
    return spectral_partition(graph.indices, graph.counts, labels, K, seed)


def spectral_partition(indices: np.ndarray, counts: np.ndarray, labels: np.ndarray, K: int,
                       seed: int = 0) -> tuple[float, list]:
    """``graph_partition`` of a graph given by its arrays: ``indices`` (n, k), the first ``counts[i]`` of
    row i its neighbours."""
    from scipy import sparse
    from scipy.sparse.linalg import eigsh
    from sklearn.cluster import KMeans

    from gmvae_np.metrics import hungarian_accuracy

    n, k = indices.shape
    valid = (np.arange(k)[None, :] < counts[:, None]).ravel()
    rows, cols = np.repeat(np.arange(n), k)[valid], indices.ravel()[valid]
    A = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    A = ((A + A.T) > 0).astype(np.float64)
    scale = sparse.diags(1.0 / np.sqrt(np.asarray(A.sum(axis=1)).ravel()))
    _, vectors = eigsh(scale @ A @ scale, k=K, which="LA", v0=np.random.default_rng(seed).normal(size=n))
    embedding = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = KMeans(K, n_init=10, random_state=seed).fit_predict(embedding)
    parts = []
    for c in range(K):
        held = np.bincount(labels[found == c], minlength=int(labels.max()) + 1)
        parts.append({int(d): int(held[d]) for d in np.argsort(held)[::-1] if held[d] > 0.1 * held.sum()})
    return hungarian_accuracy(found, labels), parts


def run_clusters(run_dir: Path, x: np.ndarray) -> np.ndarray:
    """The cluster (argmax of q(z|y)) of each row of x under a run's last checkpoint."""
    import autograd_lite as ag
    from gmvae_np.checkpoint import load_checkpoint, restore
    from gmvae_np.model import GMVAE, GMVAEConfig

    ckpt = load_checkpoint(Path(run_dir) / "checkpoints" / "last.npz")
    model = GMVAE(GMVAEConfig.from_dict(ckpt.config["model"]))
    restore(ckpt, model)
    model.eval()
    with ag.no_grad():
        return np.concatenate([np.argmax(model.predict_proba(x[lo:lo + 2000]).numpy(), axis=1)
                               for lo in range(0, x.shape[0], 2000)])


def cluster_contents(run_dir: Path, x: np.ndarray, labels: np.ndarray, names=None) -> str:
    """One line per cluster of a run's last checkpoint on the rows x: its size and the classes holding more
    than a tenth of it, largest first (``names``: a class's name by its label)."""
    clusters = run_clusters(run_dir, x)
    lines = []
    for c in range(int(clusters.max()) + 1):
        held = np.bincount(labels[clusters == c], minlength=int(labels.max()) + 1)
        if not held.sum():
            continue
        parts = [f"{names[d] if names else d}: {held[d]:,}" for d in np.argsort(held, kind="stable")[::-1]
                 if held[d] > 0.1 * held.sum()]
        lines.append(f"- cluster {c}, {held.sum():,} rows: " + ", ".join(parts))
    return "\n".join(lines)


def cut_shares(run_dir: Path, graph_file: Path, x: np.ndarray, labels: np.ndarray, among=(4, 9)) -> tuple:
    """Among the graph's edges whose two ends both carry a label in ``among``: the share whose ends the
    run's clusters (its last checkpoint, on the rows x) put apart, and the share whose labels differ."""
    clusters = run_clusters(run_dir, x)
    with np.load(graph_file) as f:
        indices = f["indices"]
    inside = np.isin(labels, among)
    pairs = inside[:, None] & inside[indices]
    model_cut = (clusters[indices] != clusters[:, None]) & pairs
    label_cut = (labels[indices] != labels[:, None]) & pairs
    return float(model_cut.sum() / pairs.sum()), float(label_cut.sum() / pairs.sum())


# -- the graph's space, measured before any training -------------------------------------------------------

SPACES_COMMAND = "OMP_NUM_THREADS=1 python docs/neighbour_study.py --spaces fashion-mnist"
"""The command that prints the table of the graph's candidate spaces (docs/results.md, section 8)."""
FASHION_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
"""Fashion-MNIST's class names by label (Zalando's order)."""


def standardised_images(x: np.ndarray) -> np.ndarray:
    """Each row (image) z-scored over its own pixels: its brightness and contrast taken out."""
    from gmvae_np.data import zscore

    return zscore(x, axis=1)


def autoencoder_codes(x: np.ndarray, epochs: int = 5, Dx: int = 20, hidden: int = 500, seed: int = 0) -> np.ndarray:
    """The mean codes E_q[x|y] of a short autoencoder trained with the project's engine: the recipe's fc
    networks (``hidden`` wide, codes of ``Dx``), ``epochs`` epochs of gmvae_np.pretrain's loss, batches of
    200 (all the rows when fewer), Adam at 1e-3; no label is read."""
    from gmvae_np import GMVAE, GMVAEConfig
    from gmvae_np.pretrain import codes, pretrain_autoencoder

    model = GMVAE(GMVAEConfig(input_shape=(x.shape[1],), likelihood="bernoulli", K=10, Dx=Dx, Dw=10,
                              hidden=hidden), backend="numpy", seed=seed)
    rows = model.backend.asarray(x, dtype="float32")
    pretrain_autoencoder(model, rows, epochs=epochs, batch_size=min(200, len(x)), lr=1e-3,
                         rng=np.random.default_rng(seed))
    return codes(model, rows)


def candidate_spaces(image_shape) -> dict:
    """caption -> (the flags that give the graph this space, or "" where the project has none, and a function
    of the training rows x (n, D) returning them in the space). The rows are the pixels in [0, 1]."""
    from gmvae_np.data import zscore
    from gmvae_np.neighbours import embed

    spaces = {f"pixels, PCA-{d}": (f"--neighbour-space pca --neighbour-dims {d}",
                                   lambda x, d=d: embed(x, "pca", d)) for d in (10, 30, 50, 100)}
    spaces["deskewed images, PCA-50"] = ("--neighbour-space deskew",
                                         lambda x: embed(x, "deskew", 50, image_shape=image_shape))
    spaces["pixels z-scored (each pixel over the images), PCA-50"] = ("", lambda x: embed(zscore(x, axis=0), "pca", 50))
    spaces["each image standardised (over its pixels), PCA-50"] = ("", lambda x: embed(standardised_images(x), "pca", 50))
    spaces["square root of the pixels, each image standardised, PCA-50"] = (
        "--neighbour-space contrast", lambda x: embed(x, "contrast", 50))
    spaces["autoencoder codes (Dx 20, 5 epochs, the project's engine)"] = ("", autoencoder_codes)
    spaces["pixels as they are (784 dimensions)"] = ("--neighbour-space raw", lambda x: x)
    return spaces


def space_study(x: np.ndarray, labels: np.ndarray, spaces: dict, k: int = 10, K: int = 10,
                partition: bool = True, out=None) -> list[dict]:
    """For each space of ``spaces`` (caption -> (flags, function of x)): the exact k-NN graph of the rows
    there, the share of its edges that join two rows of one label, and (``partition``) the Hungarian
    accuracy of the graph's own spectral partition into K clusters (:func:`spectral_partition`). The
    labels score the graph and decide nothing in it. One row per space, in the order given; ``out``, when
    given, gets each row's line as it is measured."""
    import time

    from gmvae_np.neighbours import exact_knn

    labels = np.asarray(labels)
    rows = []
    for caption, (flags, make) in spaces.items():
        started = time.perf_counter()
        z = np.asarray(make(x), dtype=np.float32)
        indices = np.asarray(exact_knn(z, k))
        seconds = time.perf_counter() - started
        share = float(np.mean(labels[indices] == labels[:, None]))
        row = {"space": caption, "flags": flags, "dims": int(z.shape[1]), "share": share, "seconds": seconds}
        if partition:
            row["partition"], row["parts"] = spectral_partition(indices, np.full(len(z), k), labels, K)
        rows.append(row)
        if out is not None:
            print(space_table([row]).splitlines()[-1], file=out, flush=True)
    return rows


def space_table(rows: list[dict]) -> str:
    """The rows of :func:`space_study` as a Markdown table."""
    lines = ["| space | flags | dimensions | 10-NN edges within one class | the graph's own partition (Hungarian acc.) "
             "| seconds (space and graph, one thread) |", "|---|---|---|---|---|---|"]
    for r in rows:
        part = f"{100 * r['partition']:.1f} %" if "partition" in r else ""
        flags = f"`{r['flags']}`" if r["flags"] else "(none)"
        lines.append(f"| {r['space']} | {flags} | {r['dims']} | {100 * r['share']:.1f} % | {part} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="the neighbour graph's candidate spaces of a data set's training "
                                                 "images: edges within one class, the graph's own partition; or "
                                                 "what the clusters of a run hold")
    parser.add_argument("--spaces", metavar="DATASET", required=True, help="the data set, e.g. fashion-mnist")
    parser.add_argument("--data-dir", default=None, help="where its files are (else the loader's own places)")
    parser.add_argument("--no-partition", action="store_true", help="skip the spectral partitions")
    parser.add_argument("--clusters", metavar="RUN_DIR", default=None,
                        help="instead of the spaces: the classes of the test images in each cluster of this run "
                             "(trained on DATASET) at its last checkpoint")
    args = parser.parse_args(argv)
    from gmvae_np.checkpoint import CheckpointError
    from gmvae_np.data import DataError, load_dataset

    try:
        data = load_dataset(args.spaces, data_dir=args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if data.image_shape is None or data.y_train is None:
        print(f"error: {args.spaces} has no labelled images; the study measures an image set's spaces", file=sys.stderr)
        return 2
    flat = data.flat()
    if args.clusters is not None:
        names = FASHION_CLASSES if data.name == "fashion-mnist" else None
        try:
            print(cluster_contents(Path(args.clusters), flat.x_test, flat.y_test, names))
        except (CheckpointError, OSError, KeyError, ValueError) as e:
            print(f"error: --clusters {args.clusters}: not a finished run of {args.spaces} ({e}); give a run "
                  f"directory with checkpoints/last.npz".replace("\n", " "), file=sys.stderr)
            return 2
        return 0
    spaces = candidate_spaces(data.image_shape)
    print(space_table([]), flush=True)
    space_study(flat.x_train, flat.y_train, spaces, K=int(flat.y_train.max()) + 1,
                partition=not args.no_partition, out=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
