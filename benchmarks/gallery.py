"""The clustering gallery: GMVAEClustering beside KMeans and GaussianMixture, on data nobody here made.

    python benchmarks/gallery.py                  the figure and the table: docs/figures/gallery.png and
                                                  the table in docs/gallery.md, rewritten in place
    python benchmarks/gallery.py --figure         only the figure
    python benchmarks/gallery.py --table          only the table (printed, and written into the page)
    python benchmarks/gallery.py --quick          a smoke run (fewer points, seeds and epochs); writes
                                                  nothing unless --out/--page say where

The figure follows scikit-learn's "comparing different clustering algorithms on toy datasets": its toy
sets (noisy circles, moons, blobs of varied variances, anisotropic blobs, no structure; 500 points, the
same generators and seeds) plus the spiral of this project and its more curled 2 rad form, one row each,
and the four methods as columns (SpectralClustering on a 10-nearest-neighbour graph, the method a user
would try next), each panel with its adjusted Rand index against the generating classes and its fit time.
The table uses scikit-learn's bundled real data sets (iris, wine, breast cancer, digits): NMI, ARI and
accuracy (the best one-to-one matching of clusters to classes), mean ± standard deviation over seeds
0 to 4, and the mean fit time. n_clusters is the number of true classes everywhere.

Every method sees z-scored columns: KMeans, GaussianMixture and SpectralClustering through StandardScaler, GMVAEClustering
through its own standardize=True. KMeans and GaussianMixture run with scikit-learn's defaults (SpectralClustering with
affinity="nearest_neighbors", n_neighbors=10 and assign_labels="cluster_qr"),
GMVAEClustering with its own defaults: only n_clusters and random_state are given. The fit times are
CPU seconds of ``fit`` on one BLAS thread (time.process_time in the process that fits): unlike wall-clock
time they do not grow when other programs share the cores. ``--jobs N`` fits N models at a time, in worker
processes (gmvae_np.parallel, through joblib); the numbers do not depend on N.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads: the fit times are for one BLAS thread

import numpy as np  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.cluster import KMeans, SpectralClustering  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
try:
    from gmvae_np import GMVAEClustering
except ImportError:  # a checkout that was not installed
    sys.path.insert(0, str(ROOT))
    from gmvae_np import GMVAEClustering
from gmvae_np.data import make_spiral  # noqa: E402
from gmvae_np.metrics import hungarian_accuracy  # noqa: E402

FIGURE = ROOT / "docs" / "figures" / "gallery.png"
PAGE = ROOT / "docs" / "gallery.md"
BEGIN, END = "<!-- gallery table: begin -->", "<!-- gallery table: end -->"
GRAPH = "GMVAEClustering, no graph"
GRAPH_PARAMS = dict(n_neighbors=0, balance=0.0, init="random", standardize=True, fourier_features=0)
"""The estimator without what its defaults add for data it was not tuned for (the neighbour graph, the
start from its partition, the balance floor, Fourier features, the scale that keeps a shape): its former
defaults, beside the GMVAEClustering column's current ones (docs/gallery.md, "The benchmark suite")."""
METHODS = ("KMeans", "GaussianMixture", "SpectralClustering", "GMVAEClustering", GRAPH)
REAL = {"iris": datasets.load_iris, "wine": datasets.load_wine,
        "breast cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}


def toy_sets(n_samples: int = 500) -> dict:
    """name -> (X, y, n_clusters): scikit-learn's toy sets (its gallery's generators and seeds), and the spiral."""
    seed = 30
    circles = datasets.make_circles(n_samples=n_samples, factor=0.5, noise=0.05, random_state=seed)
    moons = datasets.make_moons(n_samples=n_samples, noise=0.05, random_state=seed)
    X, y = datasets.make_blobs(n_samples=n_samples, random_state=170)
    aniso = (X @ np.array([[0.6, -0.6], [-0.4, 0.8]]), y)
    varied = datasets.make_blobs(n_samples=n_samples, cluster_std=[1.0, 2.5, 0.5], random_state=170)
    no_structure = (np.random.RandomState(seed).rand(n_samples, 2), None)
    spiral = make_spiral(n_per_arm=n_samples // 5, seed=0)
    curled = make_spiral(n_per_arm=n_samples // 5, curl=2.0, seed=0)
    return {"noisy circles": (*circles, 2), "noisy moons": (*moons, 2), "varied variances": (*varied, 3),
            "anisotropic": (*aniso, 3), "no structure": (*no_structure, 3),
            "spiral (5 arms)": (spiral.x_train, spiral.y_train, 5),
            "spiral, 2 rad": (curled.x_train, curled.y_train, 5)}


def make_method(name: str, k: int, seed: int, gmvae_params: dict):
    if name == "KMeans":
        return KMeans(n_clusters=k, random_state=seed)
    if name == "GaussianMixture":
        return GaussianMixture(n_components=k, random_state=seed)
    if name == "SpectralClustering":   # the method a user would try next: a 10-nearest-neighbour graph
        return SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=10,
                                  assign_labels="cluster_qr", random_state=seed)
    extra = GRAPH_PARAMS if name == GRAPH else {}
    return GMVAEClustering(n_clusters=k, random_state=seed, **gmvae_params, **extra)


def fit_labels(name: str, X: np.ndarray, k: int, seed: int, gmvae_params: dict) -> tuple:
    """(cluster of each row, CPU seconds of fit) for one method; every method sees z-scored columns."""
    model = make_method(name, k, seed, gmvae_params)
    data = X if name.startswith("GMVAEClustering") else StandardScaler().fit_transform(X)
    start = time.process_time()
    model.fit(data)
    seconds = time.process_time() - start
    labels = model.predict(data) if hasattr(model, "predict") else model.labels_   # spectral: no predict
    return np.asarray(labels), seconds


def fit_all(tasks: list, jobs: int) -> list:
    """fit_labels for every (name, X, k, seed, gmvae_params) task, ``jobs`` at a time, in task order."""
    if jobs == 1:
        return [fit_labels(*t) for t in tasks]
    from gmvae_np.parallel import run_tasks

    return run_tasks(fit_labels, tasks, jobs)


# -- the figure -------------------------------------------------------------------------------------------
def draw_figure(path: Path, n_samples: int, gmvae_params: dict, jobs: int = 1) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sets = toy_sets(n_samples)
    colours = np.array(["#377eb8", "#ff7f00", "#4daf4a", "#f781bf", "#a65628", "#984ea3", "#999999",
                        "#e41a1c", "#dede00"])
    fig = Figure(figsize=(1.9 * len(METHODS), 2.3 * len(sets)), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(sets), len(METHODS), squeeze=False)
    tasks = [(method, X, k, 0, gmvae_params) for X, _, k in sets.values() for method in METHODS]
    results = iter(fit_all(tasks, jobs))
    for row, (set_name, (X, y, k)) in enumerate(sets.items()):
        Xs = StandardScaler().fit_transform(X)
        for col, method in enumerate(METHODS):
            labels, seconds = next(results)
            ax = axes[row, col]
            ax.scatter(Xs[:, 0], Xs[:, 1], s=4, c=colours[labels % len(colours)], linewidths=0)
            score = "" if y is None else f"ARI {adjusted_rand_score(y, labels):.2f}   "
            ax.text(0.99, 0.01, f"{score}{seconds:.2f} s", transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(method, fontsize=9)
            if col == 0:
                ax.set_ylabel(set_name, fontsize=10)
            print(f"figure: {set_name:18s} {method:16s} {score}{seconds:.2f} s", flush=True)
    fig.tight_layout()
    _save_png(fig, path)


def _save_png(fig, path: Path, max_bytes: int = 300_000) -> None:
    """A palette PNG (a third of the bytes of an RGB one), refused when over the docs' size limit."""
    import io

    from PIL import Image

    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    if buffer.tell() > max_bytes:
        raise SystemExit(f"error: {path.name} would be {buffer.tell():,} bytes, over {max_bytes:,}; draw it smaller")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    print(f"figure written to {path} ({buffer.tell():,} bytes)", flush=True)


# -- the table ---------------------------------------------------------------------------------------------
def measure(seeds: list, gmvae_params: dict, names=None, jobs: int = 1) -> list:
    """One row per (data set, method): the mean and standard deviation of each score, and the mean fit time."""
    rows = []
    data = {name: REAL[name](return_X_y=True) for name in names or REAL}
    tasks = [(method, X, len(np.unique(y)), seed, gmvae_params)
             for X, y in data.values() for method in METHODS for seed in seeds]
    results = iter(fit_all(tasks, jobs))
    for set_name, (X, y) in data.items():
        k = len(np.unique(y))
        for method in METHODS:
            scores = []
            for seed in seeds:
                labels, seconds = next(results)
                scores.append((normalized_mutual_info_score(y, labels), adjusted_rand_score(y, labels),
                               hungarian_accuracy(labels, y), seconds))
            s = np.array(scores)
            row = {"data": f"{set_name} ({X.shape[0]} x {X.shape[1]}, {k} classes)", "method": method,
                   "mean": s.mean(axis=0), "std": s.std(axis=0, ddof=1) if len(seeds) > 1 else 0 * s[0]}
            rows.append(row)
            print(f"table: {row['data']:38s} {method:16s} NMI {row['mean'][0]:.3f}  ARI {row['mean'][1]:.3f}  "
                  f"acc {row['mean'][2]:.3f}  {row['mean'][3]:.2f} s", flush=True)
    return rows


def format_table(rows: list, seeds: list) -> str:
    lines = ["| data | method | NMI | ARI | accuracy | fit time (CPU s) |", "|---|---|---|---|---|---|"]
    best = {}
    for r in rows:   # the best mean of each score on each data set is in bold
        for i in range(3):
            best[(r["data"], i)] = max(best.get((r["data"], i), -np.inf), round(r["mean"][i], 3))
    for r in rows:
        cells = []
        for i in range(3):
            text = f"{r['mean'][i]:.3f} ± {r['std'][i]:.3f}" if len(seeds) > 1 else f"{r['mean'][i]:.3f}"
            cells.append(f"**{text}**" if round(r["mean"][i], 3) == best[(r["data"], i)] else text)
        lines.append(f"| {r['data']} | {r['method']} | {' | '.join(cells)} | {r['mean'][3]:.2f} |")
    if len(seeds) == 1:
        return "\n".join(lines) + f"\n\nSeed {seeds[0]} only (`--seeds 1`); the default, `--seeds 5`, gives the mean ± " \
                                  f"standard deviation over seeds 0 to 4."
    return "\n".join(lines) + f"\n\nMean ± standard deviation over seeds {seeds[0]} to {seeds[-1]}."


def write_table(page: Path, table: str) -> None:
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {page} has no {BEGIN} ... {END} block to write the table into")
    page.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text), encoding="utf-8")
    print(f"table written to {page}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figure", action="store_true", help="draw only the figure")
    p.add_argument("--table", action="store_true", help="measure only the table")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per table cell (default 5)")
    p.add_argument("--jobs", type=int, default=1, help="fit this many models at a time, in worker processes")
    p.add_argument("--sets", help=f"the real data sets of the table, comma-separated (default: all of "
                                  f"{', '.join(REAL)})")
    p.add_argument("--quick", action="store_true", help="a smoke run: 100 points, 2 seeds, 3 epochs, iris "
                                                        "and wine; writes only where --out/--page say")
    p.add_argument("--out", type=Path, help=f"where the figure goes (default {FIGURE.relative_to(ROOT)})")
    p.add_argument("--page", type=Path, help=f"the page whose table block is rewritten (default "
                                             f"{PAGE.relative_to(ROOT)})")
    args = p.parse_args(argv)
    both = not (args.figure or args.table)
    gmvae_params = dict(epochs=3) if args.quick else {}
    seeds = list(range(2 if args.quick else args.seeds))
    out = args.out or (None if args.quick else FIGURE)
    page = args.page or (None if args.quick else PAGE)
    if args.figure or both:
        if out is not None:
            draw_figure(out, 100 if args.quick else 500, gmvae_params, args.jobs)
    if args.table or both:
        names = args.sets.split(",") if args.sets else (["iris", "wine"] if args.quick else list(REAL))
        unknown = [n for n in names if n not in REAL]
        if unknown:
            p.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(REAL)}")
        rows = measure(seeds, gmvae_params, names, args.jobs)
        table = format_table(rows, seeds)
        print(table)
        if page is not None:
            write_table(page, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
