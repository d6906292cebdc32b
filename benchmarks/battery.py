"""GMVAEClustering on Gagolewski's clustering benchmark suite, beside the field's baselines, in one run.

    python benchmarks/battery.py --root ../shared/battery              every set of at most 5,000 points
    python benchmarks/battery.py --root DIR --sets wut/z3,graves/ring  some sets
    python benchmarks/battery.py --root DIR --set balance=10           the estimator with other settings
    python benchmarks/battery.py --root DIR --jobs 2 --json out.json   two fits at a time; every score kept
    python benchmarks/battery.py --root DIR --figure docs/figures/battery.png --page docs/gallery.md
    python benchmarks/battery.py --sizes 1000,5000,20000               what a default fit costs as n grows

The suite (M. Gagolewski, "A framework for benchmarking clustering algorithms", SoftwareX 20:101270, 2022;
github.com/gagolews/clustering-data-v1) holds batteries of labelled sets: ``ROOT/<battery>/<set>.data.gz``
(one point a row) beside ``<set>.labels0.gz`` (the reference clusters 1..K, 0 for a noise point). Every
method is given the true K, and scored on the non-noise points by the normalised clustering accuracy
(gmvae_np.metrics.normalized_clustering_accuracy): 0 is chance, 1 is perfect.

The methods: GMVAEClustering with its defaults (and the ``--set NAME=VALUE`` settings given) on the data as
given, and the baselines KMeans (n_init 10), GaussianMixture (n_init 3), Ward, SpectralClustering (a 10-NN
graph, cluster_qr) and Genie (genieclust, its defaults; left out with a note when genieclust is not
installed: ``pip install genieclust``). Each baseline is fitted on the raw and on the z-scored data and keeps
the better score of the two, as the suite's own comparisons do; the GMVAE gets no such second chance.

It prints one row per set (each method's NCA, the baselines' mean, and the GMVAE's fit time in CPU seconds
on one BLAS thread), then each method's median and mean, and writes everything to ``--json``. ``--figure``
draws one panel per hard set, coloured by the GMVAE's clusters; ``--page`` rewrites the table between the
markers of a Markdown page. A root that holds no set, or a set without its labels, is one line and exit 2.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before NumPy loads: the fit times are for one BLAS thread

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
try:
    import gmvae_np  # noqa: F401
except ImportError:  # a checkout that was not installed
    sys.path.insert(0, str(ROOT))
from gmvae_np.metrics import normalized_clustering_accuracy  # noqa: E402

GMVAE = "GMVAEClustering"
BASELINES = ("KMeans", "GaussianMixture", "Ward", "SpectralClustering", "Genie")
HARD = ("wut/z3", "wut/circles", "wut/windows", "wut/mk1", "graves/ring", "graves/ring_noisy", "graves/line",
        "wut/smile", "wut/stripes", "wut/mk2", "graves/zigzag", "wut/trapped_lovers")
"""The sets the figure draws: those the estimator's earlier defaults or graph option failed on."""
BEGIN, END = "<!-- battery table: begin -->", "<!-- battery table: end -->"


class BatteryError(ValueError):
    """A root or a set that cannot be read: one line, what is wrong and what to do."""


# -- the data ---------------------------------------------------------------------------------------------
def find_sets(root: Path, max_n: int = 5000, only=None) -> list:
    """[(name "battery/set", data path, labels path)] under root, sorted; sets over max_n points are left out."""
    root = Path(root)
    if not root.is_dir():
        raise BatteryError(f"--root {root}: no such folder; give a folder in the suite's layout "
                           f"(<battery>/<set>.data.gz beside <set>.labels0.gz)")
    found = []
    for data in sorted(root.glob("*/*.data.gz")):
        name = f"{data.parent.name}/{data.name[:-len('.data.gz')]}"
        labels = data.with_name(data.name[:-len(".data.gz")] + ".labels0.gz")
        if not labels.is_file():
            raise BatteryError(f"{data} has no labels file {labels.name} beside it; the suite keeps each set's "
                               f"reference partition in <set>.labels0.gz")
        found.append((name, data, labels))
    if not found:
        raise BatteryError(f"--root {root} holds no set (<battery>/<set>.data.gz); point it at the suite's "
                           f"folder, e.g. ../shared/battery")
    if only:
        known = {name for name, _, _ in found}
        missing = [s for s in only if s not in known]
        if missing:
            raise BatteryError(f"--sets: {', '.join(missing)} not under {root}; the sets there are "
                               f"{', '.join(sorted(known))}")
        found = [f for f in found if f[0] in only]
    return [f for f in found if max_n <= 0 or _rows(f[1]) <= max_n]


def _rows(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        return sum(1 for line in f if line.strip())


def load_set(data: Path, labels: Path) -> tuple:
    """(X float64 (n, d), labels int64 (n,)) of one set; a malformed file is a BatteryError."""
    try:
        X = np.loadtxt(data, ndmin=2, dtype=np.float64)
        y = np.loadtxt(labels, dtype=np.int64).reshape(-1)
    except (OSError, ValueError, EOFError) as e:
        raise BatteryError(f"cannot read {data.name} / {labels.name}: {e}") from None
    if X.shape[0] != y.shape[0]:
        raise BatteryError(f"{data} has {X.shape[0]} rows but {labels.name} {y.shape[0]} labels")
    return X, y


# -- the methods ------------------------------------------------------------------------------------------
def _baseline(name: str, k: int, seed: int):
    from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
    from sklearn.mixture import GaussianMixture

    if name == "KMeans":
        return KMeans(n_clusters=k, n_init=10, random_state=seed)
    if name == "GaussianMixture":
        return GaussianMixture(n_components=k, n_init=3, random_state=seed)
    if name == "Ward":
        return AgglomerativeClustering(n_clusters=k, linkage="ward")
    if name == "SpectralClustering":
        return SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=10,
                                  assign_labels="cluster_qr", random_state=seed)
    if name == "Genie":
        import genieclust

        return genieclust.Genie(n_clusters=k)
    raise ValueError(name)


def _labels_of(model, X: np.ndarray) -> np.ndarray:
    model.fit(X)
    return np.asarray(model.labels_ if hasattr(model, "labels_") else model.predict(X))


def fit_one(method: str, X: np.ndarray, y: np.ndarray, seed: int, params: dict) -> dict:
    """One method on one set: {"nca", "seconds", "labels"}; a baseline keeps its better of raw and z-scored X."""
    keep = y > 0
    k = int(np.unique(y[keep]).size)
    start = time.process_time()
    if method == GMVAE:
        from gmvae_np import GMVAEClustering

        labels = _labels_of(GMVAEClustering(n_clusters=k, random_state=seed, **params), X)
        best = {"nca": normalized_clustering_accuracy(labels[keep], y[keep]), "labels": labels, "space": "raw"}
    else:
        from sklearn.preprocessing import StandardScaler

        best = None
        for space, data in (("raw", X), ("z-scored", StandardScaler().fit_transform(X))):
            labels = _labels_of(_baseline(method, k, seed), data)
            score = normalized_clustering_accuracy(labels[keep], y[keep])
            if best is None or score > best["nca"]:
                best = {"nca": score, "labels": labels, "space": space}
    best["seconds"] = time.process_time() - start
    best["labels"] = [int(v) for v in best["labels"]]
    return best


def run(sets: list, methods: list, seed: int, params: dict, jobs: int = 1) -> dict:
    """{set: {method: fit_one's result}} for every set and method, ``jobs`` fits at a time."""
    tasks, keys = [], []
    for name, data, labels in sets:
        X, y = load_set(data, labels)
        for m in methods:
            tasks.append((m, X, y, seed, params))
            keys.append((name, m))
    if jobs == 1:
        results = [fit_one(*t) for t in tasks]
    else:
        from gmvae_np.parallel import run_tasks

        results = run_tasks(fit_one, tasks, jobs)
    out: dict = {}
    for (name, m), r in zip(keys, results):
        out.setdefault(name, {})[m] = r
    return out


# -- the report -------------------------------------------------------------------------------------------
def summary(results: dict, methods: list) -> dict:
    """Each method's median and mean NCA over the sets, the GMVAE's gap to the baselines' mean on each set."""
    out = {}
    for m in methods:
        scores = [results[s][m]["nca"] for s in results]
        out[m] = {"median": statistics.median(scores), "mean": statistics.fmean(scores),
                  "median_seconds": statistics.median(results[s][m]["seconds"] for s in results)}
    base = [m for m in methods if m != GMVAE]
    if GMVAE in methods and base:
        gaps = {s: results[s][GMVAE]["nca"] - statistics.fmean(results[s][m]["nca"] for m in base)
                for s in results}
        worst = min(gaps, key=gaps.get)
        out["gap"] = {"per_set": gaps, "worst_set": worst, "worst": gaps[worst]}
    return out


def format_table(results: dict, methods: list) -> str:
    base = [m for m in methods if m != GMVAE]
    short = {"GMVAEClustering": "GMVAE", "GaussianMixture": "GMM", "SpectralClustering": "Spectral"}
    head = ["set"] + [short.get(m, m) for m in methods] + (["baselines' mean", "GMVAE s"] if GMVAE in methods
                                                            and base else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in results:
        row = [s] + [f"{results[s][m]['nca']:.3f}" for m in methods]
        if GMVAE in methods and base:
            row += [f"{statistics.fmean(results[s][m]['nca'] for m in base):.3f}",
                    f"{results[s][GMVAE]['seconds']:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    sm = summary(results, methods)
    for what in ("median", "mean"):
        row = [f"**{what}**"] + [f"**{sm[m][what]:.3f}**" for m in methods]
        if GMVAE in methods and base:
            row += ["", f"{sm[GMVAE]['median_seconds']:.1f}" if what == "median" else ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def draw_figure(path: Path, sets: list, results: dict) -> None:
    """One panel per hard set (the first two columns), coloured by the GMVAE's clusters, NCA in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chosen = [s for s in sets if s[0] in HARD and s[0] in results and GMVAE in results[s[0]]]
    if not chosen:
        raise BatteryError("--figure: none of the hard sets was run with the GMVAE; run them too "
                           f"({', '.join(HARD)})")
    cols = 4
    rows = -(-len(chosen) // cols)
    fig = Figure(figsize=(3 * cols, 3 * rows))
    FigureCanvasAgg(fig)
    for i, (name, data, labels) in enumerate(chosen):
        X, _ = load_set(data, labels)
        ax = fig.add_subplot(rows, cols, i + 1)
        pred = np.asarray(results[name][GMVAE]["labels"])
        ax.scatter(X[:, 0], X[:, 1], c=pred, s=3, cmap="tab10", vmin=0, vmax=9, linewidths=0)
        ax.set_title(f"{name}  NCA {results[name][GMVAE]['nca']:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60)


def write_page(page: Path, table: str) -> None:
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise BatteryError(f"--page {page}: no '{BEGIN}' ... '{END}' markers to write the table between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{BEGIN}\n{table}\n\n{END}{tail}")   # a blank line ends the table


def fit_seconds(sizes, seed: int = 0) -> list:
    """[(n, CPU seconds of GMVAEClustering().fit, epochs)] on n rows of four 2-D Gaussian blobs, for each n."""
    from sklearn.datasets import make_blobs

    from gmvae_np import GMVAEClustering

    out = []
    for n in sizes:
        X, _ = make_blobs(n_samples=n, centers=4, random_state=seed)
        start = time.process_time()
        model = GMVAEClustering(n_clusters=4, random_state=seed).fit(X)
        out.append((n, time.process_time() - start, model.n_iter_))
    return out


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, help="a folder in the suite's layout (needed but with --sizes)")
    p.add_argument("--sets", default="", help="comma-separated battery/set names (default: all)")
    p.add_argument("--max-n", type=int, default=5000, help="leave out sets with more points (0: keep all)")
    p.add_argument("--methods", default=",".join((GMVAE,) + BASELINES),
                   help=f"comma-separated, of {GMVAE}, {', '.join(BASELINES)}")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a GMVAEClustering setting (repeatable), e.g. --set balance=10")
    p.add_argument("--seed", type=int, default=0, help="random_state of every method")
    p.add_argument("--jobs", type=int, default=1, help="fits at a time, in worker processes")
    p.add_argument("--json", type=Path, help="write every score, time and label here")
    p.add_argument("--figure", type=Path, help="draw the hard sets coloured by the GMVAE's clusters")
    p.add_argument("--page", type=Path, help="rewrite the table between the battery markers of this page")
    p.add_argument("--sizes", default="", help="instead of the suite: CPU seconds of a default fit on N rows "
                                               "of 2-D blobs for each N of a comma-separated list")
    a = p.parse_args(argv)
    params = {}
    for item in a.set:
        if "=" not in item:
            p.error(f"--set {item!r}: write NAME=VALUE, e.g. --set balance=10")
        k, v = item.split("=", 1)
        params[k.strip()] = _value(v.strip())
    if a.root is None and not a.sizes:
        p.error("--root is needed: a folder in the suite's layout, e.g. --root ../shared/battery")
    a.params = params
    a.methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in a.methods if m not in (GMVAE,) + BASELINES]
    if unknown or not a.methods:
        p.error(f"--methods: {', '.join(unknown) or 'none given'}; choose among {GMVAE}, {', '.join(BASELINES)}")
    if a.jobs < 1:
        p.error(f"--jobs must be at least 1; got {a.jobs}")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.sizes:
        try:
            sizes = [int(v) for v in a.sizes.split(",")]
        except ValueError:
            print(f"battery: --sizes {a.sizes!r}: give whole numbers of rows, e.g. --sizes 1000,5000", file=sys.stderr)
            return 2
        print("| rows | fit (CPU s) | epochs |\n|---|---|---|")
        for n, seconds, epochs in fit_seconds(sizes, a.seed):
            print(f"| {n:,} | {seconds:.1f} | {epochs} |", flush=True)
        return 0
    try:
        if "Genie" in a.methods:
            try:
                import genieclust  # noqa: F401
            except ImportError:
                print("battery: genieclust is not installed (pip install genieclust); Genie left out",
                      file=sys.stderr)
                a.methods = [m for m in a.methods if m != "Genie"]
        if a.params:
            from gmvae_np import GMVAEClustering

            GMVAEClustering(**a.params)       # an unknown setting is refused here, before any fit
        sets = find_sets(a.root, a.max_n, [s.strip() for s in a.sets.split(",") if s.strip()])
        if not sets:
            raise BatteryError(f"no set under {a.root} has at most {a.max_n} points; raise --max-n")
        results = run(sets, a.methods, a.seed, a.params, a.jobs)
    except (BatteryError, TypeError) as e:
        print(f"battery: {e}", file=sys.stderr)
        return 2
    table = format_table(results, a.methods)
    print(table)
    sm = summary(results, a.methods)
    if "gap" in sm:
        print(f"worst set against the baselines' mean: {sm['gap']['worst_set']} ({sm['gap']['worst']:+.3f})")
    if a.json:
        a.json.write_text(json.dumps({"settings": a.params, "seed": a.seed, "methods": a.methods,
                                      "results": results, "summary": sm}))
    if a.figure:
        draw_figure(a.figure, sets, results)
    if a.page:
        write_page(a.page, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
