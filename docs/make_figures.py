"""Regenerate every figure of the docs (docs/figures/*.png) and print the tables of docs/results.md and docs/studies.md.

The figures are drawn from run directories alone (config.json, metrics.jsonl, snapshot.npz; see
gmvae_np/rundir.py and gmvae_np/plots/), so they can be redrawn at any time without training again:

    python docs/make_figures.py                 draw every figure whose runs exist, list the missing runs
    python docs/make_figures.py --tables        also print the Markdown tables of docs/results.md and docs/studies.md
    python docs/make_figures.py --commands      print the commands that train every expected run

The runs it expects live under --runs (default runs/docs); RUNS below lists each one with the command
that makes it. A figure whose runs are missing is skipped with the command to run, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
try:
    from gmvae_np import plots
except ImportError:  # a checkout that was not installed
    sys.path.insert(0, str(ROOT))
    from gmvae_np import plots
from gmvae_np.metrics import purity
from gmvae_np.restarts import CRITERIA, criterion_values


def _load_sibling(name: str):
    """A module of docs/ by its path (this script also runs loaded by path, without docs/ on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


neighbour_study = _load_sibling("neighbour_study")

_ABLATION = "--eval-every 25 --log-every 0 --no-plots"   # otherwise the spiral preset, the original code's

# run name -> (command that trains it into RUNS_DIR/<name>, caption of its panel)
CV_ABLATION = {
    "abl-eta1-alpha0": ("./run.sh spiral --eta 1 --alpha 0 " + _ABLATION, "η=1, α=0"),
    "abl-eta0-alpha0": ("./run.sh spiral --eta 0 --alpha 0 " + _ABLATION, "η=0, α=0"),
    "abl-eta0-alpha1": ("./run.sh spiral --eta 0 --alpha 1 " + _ABLATION, "η=0, α=1"),
    "abl-eta1-alpha2": ("./run.sh spiral --eta 1 --alpha 2 " + _ABLATION, "η=1, α=2 (the preset)"),
}
MI_ABLATION = {
    f"mi-lam{lam}": (f"./run.sh spiral --variant mi --lam {lam} " + _ABLATION, f"mi, λ={lam}")
    for lam in ("0", "0.5", "1", "2")
}
MNIST = {   # the rows of the paper's Table 1, one seed each, some shortened (docs/results.md)
    "mnist_fc-K10-M1": ("./run.sh mnist-fc --K 10 --log-every 0 --no-plots", "K=10, M=1"),
    "mnist_fc-K10-M10": ("./run.sh mnist-fc --K 10 --mc 10 --epochs 1 --no-plots", "K=10, M=10"),
    "mnist_fc-K16-M1": ("./run.sh mnist-fc --K 16 --epochs 80 --log-every 0 --no-plots", "K=16, M=1"),
    "mnist_fc-K16-M10": ("./run.sh mnist-fc --K 16 --mc 10 --epochs 1 --no-plots", "K=16, M=10"),
}
FAITHFUL = {   # the faithful preset on more seeds, for the comparison with the recipe (seed 1: mnist_fc-K10-M1)
    "mnist_fc-K10-seeds2-3": ("./run.sh mnist-fc --K 10 --seeds 2-3 --jobs 2 --log-every 0 --no-plots",
                              "faithful mnist_fc, K=10"),
}
FAITHFUL_SEED1 = "mnist_fc-K10-M1"
DIAGNOSIS = {   # what stops the collapse: the balance term or the recipe's other settings? (seed 1, K = 10)
    "diag-faithful": ("./run.sh mnist-fc --K 10 --epochs 3 --no-plots", "faithful mnist_fc"),
    "diag-faithful-balance": ("./run.sh mnist-fc --K 10 --epochs 3 --balance 10 --no-plots",
                              "faithful + balance 10"),
    "diag-faithful-small-latents": ("./run.sh mnist-fc --K 10 --epochs 3 --Dx 20 --Dw 10 --no-plots",
                                    "faithful, Dx 20, Dw 10"),
    "diag-faithful-big-steps": ("./run.sh mnist-fc --K 10 --epochs 3 --batch-size 200 --lr 1e-3 --no-plots",
                                "faithful, batch 200, lr 1e-3"),
    "diag-recipe-nobalance": ("./run.sh mnist-recipe --restarts 1 --balance 0 --epochs 5", "recipe, balance 0"),
    "diag-recipe": ("./run.sh mnist-recipe --restarts 1 --epochs 5", "recipe (balance 10)"),
}
DIAGNOSIS_EPOCHS = 5
RECIPE = {   # series of seeds with restarts (docs/studies.md; summarised in docs/results.md, section 5)
    "mnist_recipe-K10": ("./run.sh mnist-recipe --K 10 --seeds 1-5 --select-by train_elbo",
                         "recipe, K=10, kept by train_elbo"),
    "mnist_recipe-K16": ("./run.sh mnist-recipe --K 16 --seeds 1-5 --select-by train_elbo",
                         "recipe, K=16, kept by train_elbo"),
    "mnist_recipe-K10-entropy": ("./run.sh mnist-recipe --K 10 --seeds 1-5", "recipe, K=10 (the preset)"),
}
RECIPE.update({
    "mnist_recipe-K16-entropy": ("./run.sh mnist-recipe --K 16 --seeds 1-5", "recipe, K=16 (the preset)"),
    "mnist_recipe-K10-seeds6-10": ("./run.sh mnist-recipe --K 10 --seeds 6-10",
                                   "recipe, K=10 (the preset), fresh seeds"),
    "mnist_recipe-K16-seeds6-10": ("./run.sh mnist-recipe --K 16 --seeds 6-10",
                                   "recipe, K=16 (the preset), fresh seeds"),
})
DIGIT_SERIES = ("mnist_recipe-K10-entropy", "mnist_recipe-K10-seeds6-10", "mnist_recipe-K16-entropy")
# the -entropy series share the screening of the first two; the fresh seeds have their own
SELECTION_SERIES = ("mnist_recipe-K10", "mnist_recipe-K16", "mnist_recipe-K10-seeds6-10",
                    "mnist_recipe-K16-seeds6-10")
PRESET_SERIES = "mnist_recipe-K10-entropy"                      # ./run.sh mnist-recipe as it stands
SCREEN_EPOCHS = 5
SCREEN_ARMS = {   # one-change screens of the recipe: 5 epochs, no restarts (docs/studies.md; summarised in docs/results.md, section 5)
    "recipe": ("", "the recipe", {10: (1, 2, 3, 4), 16: (1, 2)}),
    "bal0": ("--balance 0", "no balance term", {10: (1, 2, 3, 4), 16: (1, 2)}),
    "bal1": ("--balance 1", "balance weight 1", {16: (1, 2)}),
    "klwarm3": ("--anneal-epochs 3 --kl-start 0", "KL warm-up from 0 over 3 epochs", {10: (1, 2, 3, 4), 16: (1, 2)}),
    "eta5": ("--anneal-epochs 3 --eta-start 5", "eta annealed from 5 to 1 over 3 epochs", {10: (1, 2)}),
    "pretrain2": ("--pretrain-epochs 2", "start from a mixture on codes pretrained 2 epochs",
                  {10: (1, 2, 3, 4), 16: (1, 2)}),
    "agree1": ("--invariance 1", "invariance to moves of up to 2 pixels, weight 1", {16: (1, 2)}),
    "agree5": ("--invariance 5", "invariance to moves of up to 2 pixels, weight 5", {16: (1, 2)}),
}
SHIFT_ARMS = ("recipe", "agree1", "agree5")     # K = 16 screens whose clusters are moved (shift_screen_table)
LONG = {   # the invariance term against the recipe from the same start, trained as long as the recipe
    f"long-K16-{arm}-s{seed}": (f"./run.sh mnist-recipe --K 16 --restarts 1 --epochs 30 --seed {seed}{flags}",
                                f"K=16, {caption}, trained on")
    for arm, flags, caption in (("recipe", "", "the recipe"), ("agree5", " --invariance 5", "invariance weight 5"))
    for seed in (1, 2)
}
SCREENS = {
    f"screen-K{K}-{arm}-s{seed}": (" ".join(f"./run.sh mnist-recipe --K {K} --restarts 1 --epochs {SCREEN_EPOCHS} "
                                            f"--seed {seed} {flags}".split()), f"K={K}, {caption}")
    for arm, (flags, caption, seeds) in SCREEN_ARMS.items() for K, ks in seeds.items() for seed in ks
}
SPIRAL_RESTARTS = {   # the spiral preset with restarts, seeds 1-10 (docs/studies.md, "With restarts")
    "spiral-restarts": ("./run.sh spiral --seeds 1-10 --restarts 3 --restart-epochs 100 --select-by train_elbo "
                        "--log-every 0 --no-plots", "spiral (1 rad), 3 restarts kept by train_elbo"),
    "spiral-restarts-entropy": ("./run.sh spiral --seeds 1-10 --restarts 3 --restart-epochs 100 --select-by "
                                "train_entropy --log-every 0 --no-plots", "spiral (1 rad), 3 restarts kept by train_entropy"),
    "spiral2-restarts": ("./run.sh spiral --seeds 1-10 --restarts 3 --restart-epochs 100 --select-by train_elbo "
                         "--curl 2 --log-every 0 --no-plots", "spiral (2 rad), 3 restarts kept by train_elbo"),
}
SPIRAL_SELECTION = ("spiral-restarts", "spiral2-restarts")     # the -entropy series shares their screening
RUNS = {"spiral": ("./run.sh spiral --seed 1 --log-every 0 --no-plots", "the spiral preset"),
        **CV_ABLATION, **MI_ABLATION, **MNIST, **FAITHFUL, **DIAGNOSIS, **RECIPE, **SCREENS, **LONG,
        **SPIRAL_RESTARTS, **neighbour_study.NEIGHBOUR_SERIES, **neighbour_study.WITHOUT,
        **neighbour_study.SPIRAL}

MAX_BYTES = 300_000


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------
def save_png(fig: Figure, path: Path, palette: bool = True) -> Path:
    """Write a figure as a PNG, with a 256-colour palette for charts (a third of the bytes)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    if palette:
        image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    if buffer.tell() > MAX_BYTES:
        raise SystemExit(f"error: {path.name} would be {buffer.tell():,} bytes, over the docs' limit of "
                         f"{MAX_BYTES:,}; draw it smaller")
    path.write_bytes(buffer.getvalue())
    return path


# --------------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------------
def final_eval(run: plots.Run) -> dict:
    """The last evaluated epoch's metrics, with the epoch added."""
    for record in reversed(run.metrics):
        if "eval" in record:
            return {"epoch": record["epoch"], **record["eval"]}
    return {}


def wall_seconds(run_dir: Path) -> tuple[float | None, list]:
    """Total seconds since the run started, and the per-epoch records of timing.jsonl."""
    path = run_dir / "timing.jsonl"
    if not path.is_file():
        return None, []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return (rows[-1]["seconds"] if rows else None), rows


def existing(runs_dir: Path, names) -> tuple[dict, list]:
    """The runs of ``names`` that exist and have a snapshot, and the names that do not."""
    found, missing = {}, []
    for name in names:
        try:
            run = plots.read_run(runs_dir / name)
        except plots.RunDirError:
            run = None
        if run is None or run.snapshot is None:
            missing.append(name)
        else:
            found[name] = run
    return found, missing


def first_epochs(run: plots.Run, n: int) -> plots.Run:
    """The run with only its first n epochs' records (to compare runs of different lengths)."""
    return dataclasses.replace(run, metrics=[r for r in run.metrics if r["epoch"] <= n])


# --------------------------------------------------------------------------------------------------
# Series of seeds with restarts (gmvae_np.restarts): RUN/seed<k>/restart<i>
# --------------------------------------------------------------------------------------------------
def read_series(root: Path) -> list[dict] | None:
    """Per finished seed of a series with restarts: its restarts' criteria, their accuracy when the
    choice was made, the chosen run's last evaluation and the wall time of the protocol (every restart's
    screening epochs, and the chosen one's training to the end).
    None when the series does not exist; seeds still training are left out."""
    try:
        seeds = json.loads((root / "seeds.json").read_text())["seeds"]
    except (OSError, ValueError, KeyError):
        return None
    rows = []
    for seed in seeds:
        try:
            state = json.loads((root / f"seed{seed}" / "restarts.json").read_text())
        except (OSError, ValueError):
            continue
        chosen, screen = state.get("chosen"), state["settings"]["restart_epochs"]
        restarts, seconds = {}, 0.0
        for i in state["screened"]:
            run_dir = root / f"seed{seed}" / f"restart{i}"
            metrics = plots.read_metrics(run_dir / "metrics.jsonl")
            at_choice = next(r for r in metrics if r["epoch"] == screen)
            restarts[int(i)] = {**criterion_values(at_choice), "acc_at_choice": at_choice["eval"].get("acc_paper"),
                                "purity_at_choice": at_choice["eval"].get("purity"),
                                "final": final_eval(plots.Run(path=run_dir, config={}, metrics=metrics))}
            total, timing = wall_seconds(run_dir)
            screened = [t["seconds"] for t in timing if t["epoch"] == screen]
            seconds += (total or 0.0) if int(i) == chosen else (screened[0] if screened else 0.0)
        final = restarts.get(chosen, {}).get("final", {})
        if chosen is None or final.get("epoch") != state["settings"]["epochs"]:
            continue
        rows.append({"seed": seed, "chosen": chosen, "final": final, "restarts": restarts, "seconds": seconds,
                     "select_by": state["settings"]["select_by"]})
    return rows


def read_all_series(runs_dir: Path, names, missing: list) -> dict:
    """{name: read_series rows} for the series of ``names`` with a finished seed; the others go to missing."""
    found = {}
    for name in names:
        rows = read_series(runs_dir / name)
        if rows:
            found[name] = rows
        else:
            missing.append(name)
    return found


def _mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2f}"


def recipe_table(series: dict, captions: dict) -> str:
    """One row per seed of each series (the chosen restart's last epoch), then mean ± std and best."""
    lines = ["| run | seed | restart kept | epochs | acc. (paper's criterion) | Hungarian acc. | NMI | ARI | "
             "clusters used | wall time (all restarts) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rows in series.items():
        for r in rows:
            ev = r["final"]
            lines.append(f"| {captions[name]} | {r['seed']} | {r['chosen']} | {ev['epoch']} | "
                         f"{100 * ev['acc_paper']:.2f} | {100 * ev['acc_hungarian']:.2f} | {ev['nmi']:.3f} | "
                         f"{ev['ari']:.3f} | {ev['clusters_used']} | {r['seconds'] / 60:.0f} min |")
        if len(rows) > 1:
            col = {k: [r["final"][k] for r in rows] for k in ("acc_paper", "acc_hungarian", "nmi", "ari",
                                                              "clusters_used")}
            lines.append(f"| **{captions[name]}: mean ± std over {len(rows)} seeds** | | | | "
                         f"**{_mean_std(100 * np.asarray(col['acc_paper']))}** | "
                         f"{_mean_std(100 * np.asarray(col['acc_hungarian']))} | {_mean_std(col['nmi'])} | "
                         f"{_mean_std(col['ari'])} | {_mean_std(col['clusters_used'])} | "
                         f"{_mean_std([r['seconds'] / 60 for r in rows])} min |")
            lines.append(f"| {captions[name]}: best | | | | {100 * max(col['acc_paper']):.2f} | "
                         f"{100 * max(col['acc_hungarian']):.2f} | {max(col['nmi']):.3f} | {max(col['ari']):.3f} | | |")
    return "\n".join(lines)


def selection_table(series: dict, captions: dict) -> str:
    """How each label-free criterion ranks the restarts of every seed, against their accuracy then: the
    restart each criterion would keep, and the best and mean accuracy among the restarts."""
    lines = ["| run | seed | restarts: acc. at the choice (paper's criterion) | "
             + " | ".join(f"kept by {c}" for c in CRITERIA) + " | best restart |",
             "|---|---|---|" + "---|" * len(CRITERIA) + "---|"]
    hits = {c: [] for c in CRITERIA}
    for name, rows in series.items():
        for r in rows:
            acc = {i: v["acc_at_choice"] for i, v in r["restarts"].items()}
            best = max(acc, key=acc.get)
            kept = {c: min(r["restarts"], key=lambda i: r["restarts"][i][c]) for c in CRITERIA}
            for c in CRITERIA:
                hits[c].append(acc[kept[c]] - np.mean(list(acc.values())))
            lines.append(f"| {captions[name]} | {r['seed']} | "
                         + ", ".join(f"{100 * acc[i]:.1f}" for i in sorted(acc)) + " | "
                         + " | ".join(f"{kept[c]} ({100 * acc[kept[c]]:.1f})" for c in CRITERIA)
                         + f" | {best} ({100 * acc[best]:.1f}) |")
    lines.append("| **kept minus the mean of the restarts, averaged** | | | "
                 + " | ".join(f"{100 * np.mean(h):+.1f} points" if h else "" for h in hits.values()) + " | |")
    return "\n".join(lines)


def kept_dir(runs_dir: Path, name: str, row: dict) -> Path:
    """The run directory of the restart a seed of series ``name`` kept (a read_series row)."""
    return runs_dir / name / f"seed{row['seed']}" / f"restart{row['chosen']}"


def digit_errors(proba: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Where a clustering's errors fall: each cluster is labelled with the majority class of its members;
    returns, per class c, the share of class c's points in clusters labelled otherwise (NaN for a class
    with no points), and the number of clusters labelled c (0 for a class that owns no cluster)."""
    pred = np.asarray(proba).argmax(axis=1)
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.zeros((np.asarray(proba).shape[1], n_classes), dtype=np.int64)
    np.add.at(counts, (pred, labels), 1)
    used = counts.sum(axis=1) > 0
    owner = np.where(used, counts.argmax(axis=1), -1)
    right = np.array([counts[owner == c, c].sum() for c in range(n_classes)])
    per_class = np.bincount(labels, minlength=n_classes)
    errors = np.where(per_class > 0, 1.0 - right / np.maximum(per_class, 1), np.nan)   # NaN: class absent
    return errors, np.bincount(owner[used], minlength=n_classes)


def digit_errors_table(runs_dir: Path, series: dict, captions: dict) -> str | None:
    """Per series of DIGIT_SERIES: each digit's error rate (mean over seeds) and the mean number of
    clusters labelled with it, from the snapshot.npz of every seed's kept restart (the first images of the
    test set). None when none of the series exists."""
    lines = ["| run | seeds | " + " | ".join(f"{d}" for d in range(10)) + " |", "|---|---|" + "---|" * 10]
    for name in DIGIT_SERIES:
        errors, clusters = [], []
        for r in series.get(name, []):
            snap = plots.read_snapshot(kept_dir(runs_dir, name, r) / "snapshot.npz")
            if snap is None or "labels" not in snap:
                continue
            e, c = digit_errors(snap["proba"], snap["labels"])
            errors.append(e)
            clusters.append(c)
        if errors:
            n = len(snap["labels"])
            e, c = np.mean(errors, axis=0), np.mean(clusters, axis=0)
            lines.append(f"| {captions[name]} ({n} test images) | {len(errors)} | "
                         + " | ".join(f"{100 * e[d]:.0f} % ({c[d]:.1f})" for d in range(10)) + " |")
    return "\n".join(lines) if len(lines) > 2 else None


def code_probes(x_mean: np.ndarray, proba: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """What the model's codes (the means of q(x|y)) hold about the digits, with labels used only here, to
    diagnose: the model's own clustering and k-means with as many clusters on the same codes, each scored
    by majority labels; the 5-fold cross-validated accuracy of a linear classifier on the codes (all
    classes, and 4 against 9)."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    def probe(rows) -> float:     # NaN where a class has too few images for two folds
        counts = np.bincount(labels[rows])
        present = counts[counts > 0]
        folds = min(5, int(present.min())) if present.size >= 2 else 0
        if folds < 2:
            return math.nan
        classifier = LogisticRegression(max_iter=2000)
        return float(cross_val_score(classifier, x_mean[rows], labels[rows], cv=folds).mean())

    labels = np.asarray(labels, dtype=np.int64)
    kmeans = KMeans(min(proba.shape[1], len(labels)), n_init=10, random_state=seed).fit_predict(x_mean)
    return {"model": purity(np.asarray(proba).argmax(axis=1), labels), "kmeans": purity(kmeans, labels),
            "probe": probe(np.ones(len(labels), dtype=bool)), "probe_4_9": probe((labels == 4) | (labels == 9))}


def codes_table(runs_dir: Path, series: dict, captions: dict) -> str | None:
    """Per series of DIGIT_SERIES, means over seeds of :func:`code_probes` on the kept restarts' snapshots."""
    lines = ["| run | seeds | model's clusters (majority labels) | k-means on its codes, same K | "
             "linear classifier on its codes | 4 against 9 |", "|---|---|---|---|---|---|"]
    for name in DIGIT_SERIES:
        found = []
        for r in series.get(name, []):
            snap = plots.read_snapshot(kept_dir(runs_dir, name, r) / "snapshot.npz")
            if snap is not None and "labels" in snap and "x_mean" in snap:
                found.append(code_probes(snap["x_mean"], snap["proba"], snap["labels"]))
        if found:
            mean = {key: 100 * np.mean([f[key] for f in found]) for key in found[0]}
            lines.append(f"| {captions[name]} | {len(found)} | {mean['model']:.1f} | {mean['kmeans']:.1f} | "
                         f"{mean['probe']:.1f} | {mean['probe_4_9']:.1f} |")
    return "\n".join(lines) if len(lines) > 2 else None


def moved_by_shifts(model, images: np.ndarray, steps=(1, 2)) -> list[float]:
    """For each step s, the share of images whose predicted cluster changes when the image moves s pixels
    left, right, up or down (mean over the four directions). ``images`` (n, H, W) or (n, C, H, W)."""
    from autograd_lite import tensor
    from gmvae_np.augment import shift_images

    def predict(batch):
        return np.asarray(model.predict(batch.reshape((len(batch),) + model.config.input_shape)).data)

    def moved(dy, dx):
        return shift_images(tensor(images), np.full((len(images), 2), (dy, dx)), image_shape).numpy()

    image_shape = images.shape[1:] if images.ndim == 4 else (1,) + images.shape[1:]
    base = predict(images)
    return [float(np.mean([np.mean(predict(moved(dy, dx)) != base)
                           for dy, dx in ((0, s), (0, -s), (s, 0), (-s, 0))])) for s in steps]


def moved_in_run(run_dir: Path, steps=(1, 2)) -> tuple[list[float], int] | None:
    """:func:`moved_by_shifts` for a run's last checkpoint on its snapshot's images, and how many images
    those are; None when the run has no image snapshot or no checkpoint."""
    from gmvae_np import load_checkpoint, restore
    from gmvae_np.model import GMVAE, GMVAEConfig

    snap = plots.read_snapshot(run_dir / "snapshot.npz")
    if snap is None or snap["y"].ndim < 3 or not (run_dir / "checkpoints" / "last.npz").is_file():
        return None
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.npz")
    model = GMVAE(GMVAEConfig.from_dict(checkpoint.config["model"]))
    restore(checkpoint, model)
    model.eval()
    return moved_by_shifts(model, snap["y"], steps), len(snap["y"])


def _moved_header(steps) -> str:
    return " | ".join(f"moved {s} pixel{'s' * (s > 1)}: cluster changes" for s in steps)


def shift_table(runs_dir: Path, series: dict, captions: dict, steps=(1, 2)) -> str | None:
    """Per series of DIGIT_SERIES: how many of the snapshot's test images change cluster when moved by
    1 or 2 pixels, mean over the seeds' kept restarts (their checkpoints/last.npz)."""
    lines = ["| run | seeds | " + _moved_header(steps) + " |", "|---|---|" + "---|" * len(steps)]
    for name in DIGIT_SERIES:
        found = []
        for r in series.get(name, []):
            moved = moved_in_run(kept_dir(runs_dir, name, r), steps)
            if moved is not None:
                found.append(moved[0])
                n = moved[1]
        if found:
            lines.append(f"| {captions[name]} ({n} test images) | {len(found)} | "
                         + " | ".join(f"{100 * v:.0f} %" for v in np.mean(found, axis=0)) + " |")
    return "\n".join(lines) if len(lines) > 2 else None


def invariance_table(runs_dir: Path, steps=(1, 2)) -> str | None:
    """The K = 16 screens of SHIFT_ARMS after SCREEN_EPOCHS epochs, and the LONG runs after their last:
    per run, the paper's accuracy, clusters used, and how many of the snapshot's test images change
    cluster when moved (:func:`moved_in_run`). None when none of them exists."""
    names = {f"screen-K16-{arm}-s{seed}": f"K=16, {SCREEN_ARMS[arm][1]}"
             for arm in SHIFT_ARMS for seed in SCREEN_ARMS[arm][2][16]}
    names.update({name: caption for name, (_, caption) in LONG.items()})
    lines = ["| run | seed | epochs | acc. (paper's criterion) | clusters used | " + _moved_header(steps) + " |",
             "|---|---|---|---|---|" + "---|" * len(steps)]
    for name, caption in names.items():
        try:
            metrics = plots.read_metrics(runs_dir / name / "metrics.jsonl")
        except (OSError, ValueError, plots.RunDirError):
            continue
        moved = moved_in_run(runs_dir / name, steps)
        last = next((r for r in reversed(metrics) if "eval" in r), None)
        if last is None or moved is None:
            continue
        epoch, last = last["epoch"], last["eval"]
        lines.append(f"| {caption} | {name.rsplit('-s', 1)[1]} | {epoch} | {100 * last['acc_paper']:.1f} | "
                     f"{last['clusters_used']} | " + " | ".join(f"{100 * v:.0f} %" for v in moved[0]) + " |")
    return "\n".join(lines) if len(lines) > 2 else None


def climb_table(runs_dir: Path, series: dict, captions: dict, every: int = 5) -> str | None:
    """Per series of DIGIT_SERIES: the kept restarts' accuracy (paper's criterion), mean over seeds, at
    every ``every``-th epoch; and each seed's gain over the second half of its training."""
    rows = {}
    for name in DIGIT_SERIES:
        curves = []
        for r in series.get(name, []):
            metrics = plots.read_metrics(kept_dir(runs_dir, name, r) / "metrics.jsonl")
            curves.append({m["epoch"]: 100 * m["eval"]["acc_paper"] for m in metrics if "eval" in m})
        if curves:
            rows[name] = curves
    if not rows:
        return None
    last = min(max(c) for curves in rows.values() for c in curves)
    every = max(1, min(every, last // 2))
    epochs = list(range(every, last + 1, every))
    half = epochs[(len(epochs) - 1) // 2]
    lines = ["| run | seeds | " + " | ".join(f"epoch {e}" for e in epochs)
             + f" | gain from epoch {half} to {last}, per seed |",
             "|---|---|" + "---|" * (len(epochs) + 1)]
    for name, curves in rows.items():
        lines.append(f"| {captions[name]} | {len(curves)} | "
                     + " | ".join(f"{np.mean([c[e] for c in curves]):.1f}" for e in epochs) + " | "
                     + ", ".join(f"{c[last] - c[half]:+.1f}" for c in curves) + " |")
    return "\n".join(lines)


def faithful_table(runs_dir: Path, captions: dict) -> str | None:
    """The faithful preset's seeds: seed 1 (FAITHFUL_SEED1), then each seed of the FAITHFUL series, at the
    epoch they have reached; mean ± std over the seeds that ran every epoch. None when no seed exists."""
    runs = []
    found, _ = existing(runs_dir, [FAITHFUL_SEED1])
    if found:
        runs.append((1, found[FAITHFUL_SEED1]))
    for name in FAITHFUL:
        try:
            seeds = json.loads((runs_dir / name / "seeds.json").read_text())["seeds"]
        except (OSError, ValueError, KeyError):
            continue
        for seed in seeds:
            more, _ = existing(runs_dir / name, [f"seed{seed}"])
            runs += [(seed, run) for run in more.values()]
    if not runs:
        return None
    caption = captions[next(iter(FAITHFUL))]
    lines = ["| run | seed | epochs | acc. (paper's criterion) | Hungarian acc. | NMI | ARI | clusters used | "
             "test -ELBO | wall time |", "|---|---|---|---|---|---|---|---|---|---|"]
    done = []
    for seed, run in runs:
        ev = final_eval(run)
        total, _ = wall_seconds(run.path)
        lines.append(f"| {caption} | {seed} | {ev['epoch']} | {100 * ev['acc_paper']:.2f} | "
                     f"{100 * ev['acc_hungarian']:.2f} | {ev['nmi']:.3f} | {ev.get('ari', math.nan):.3f} | "
                     f"{ev['clusters_used']} | {ev['neg_elbo']:.1f} | {(total or 0.0) / 60:.0f} min |")
        if ev["epoch"] == run.config.get("settings", {}).get("epochs"):
            done.append(ev)
    if done:
        col = {k: [ev.get(k, math.nan) for ev in done] for k in ("acc_paper", "acc_hungarian", "nmi", "ari",
                                                                  "clusters_used")}   # runs before ARI: NaN
        lines.append(f"| **{caption}: mean ± std over the {len(done)} seeds that ran every epoch** | | | "
                     f"**{_mean_std(100 * np.asarray(col['acc_paper']))}** | "
                     f"{_mean_std(100 * np.asarray(col['acc_hungarian']))} | {_mean_std(col['nmi'])} | "
                     f"{_mean_std(col['ari'])} | {_mean_std(col['clusters_used'])} | | |")
    return "\n".join(lines)


def screen_table(runs_dir: Path) -> str | None:
    """One row per screened arm and K: the paper's accuracy after SCREEN_EPOCHS epochs on each seed, their
    mean, the fewest clusters in use and the mean training -ELBO. None when no screen has finished."""
    lines = ["| arm | seeds | acc. per seed after 5 epochs (paper's criterion) | mean | fewest clusters used | "
             "train -ELBO |", "|---|---|---|---|---|---|"]
    for arm, (_, caption, seeds) in SCREEN_ARMS.items():
        for K, ks in seeds.items():
            done = {}
            for seed in ks:
                try:
                    metrics = plots.read_metrics(runs_dir / f"screen-K{K}-{arm}-s{seed}" / "metrics.jsonl")
                except (OSError, ValueError, plots.RunDirError):
                    continue
                last = next((r for r in metrics if r["epoch"] == SCREEN_EPOCHS and "eval" in r), None)
                if last is not None:
                    done[seed] = last
            if not done:
                continue
            acc = [100 * r["eval"]["acc_paper"] for r in done.values()]
            lines.append(f"| K={K}, {caption} | {', '.join(map(str, done))} | "
                         f"{', '.join(f'{a:.1f}' for a in acc)} | {np.mean(acc):.1f} | "
                         f"{min(r['eval']['clusters_used'] for r in done.values())} | "
                         f"{np.mean([r['train']['neg_elbo'] for r in done.values()]):.2f} |")
    return "\n".join(lines) if len(lines) > 2 else None


def spiral_restarts_table(series: dict, captions: dict) -> str:
    """Per seed of each spiral series with restarts: the restart kept, its purity and how many of the
    five arms own a cluster (are the majority of one), and the purity of every restart at the choice."""
    lines = ["| run | seed | restart kept | purity | arms owning a cluster | clusters used | "
             "restarts: purity at the choice |", "|---|---|---|---|---|---|---|"]
    for name, rows in series.items():
        for r in rows:
            ev = r["final"]
            at_choice = ", ".join(f"{v['purity_at_choice']:.3f}" for _, v in sorted(r["restarts"].items()))
            lines.append(f"| {captions[name]} | {r['seed']} | {r['chosen']} | {ev['purity']:.3f} | "
                         f"{ev['classes_owned']} of 5 | {ev['clusters_used']} | {at_choice} |")
        if rows:
            purity = [r["final"]["purity"] for r in rows]
            lines.append(f"| **{captions[name]}: mean ± std over {len(rows)} seeds** | | | "
                         f"**{_mean_std(purity)}** (min {min(purity):.3f}) | "
                         f"{sum(r['final']['classes_owned'] == 5 for r in rows)} of {len(rows)} seeds all five | | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The side-by-side ablation figure
# --------------------------------------------------------------------------------------------------
def _ellipses(ax, mean: np.ndarray, logvar: np.ndarray, colors, nstd: float = 2.0) -> None:
    for i in range(len(mean)):
        half = nstd * np.exp(0.5 * np.clip(logvar[i], -30.0, 30.0))
        ax.add_patch(Ellipse(xy=mean[i], width=2 * half[0], height=2 * half[1], fill=False, lw=1.4,
                             edgecolor=colors[i], zorder=3))
    ax.scatter(mean[:, 0], mean[:, 1], marker="*", s=90, c=colors, edgecolors="black", linewidths=0.6,
               zorder=4)


def _view(points: np.ndarray, margin: float = 0.08):
    lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def _draw_run(top, bottom, run: plots.Run, caption: str) -> None:
    """Top axes: the data coloured by predicted cluster; bottom axes: the latent x means with the prior
    components at w = 0 as 2-sigma ellipses. The top axes are titled with the run's scores."""
    snap, ev = run.snapshot, final_eval(run)
    pred = np.argmax(snap["proba"], axis=1)
    k = snap["proba"].shape[1]
    colors = plots.cluster_colors(k)
    y, xm = snap["y"].reshape(len(pred), -1), snap["x_mean"].reshape(len(pred), -1)
    used = int(np.count_nonzero(np.bincount(pred, minlength=k)))
    top.scatter(y[:, 0], y[:, 1], c=colors[pred], s=2, lw=0)
    top.set_title(f"{caption}\npurity {ev.get('purity', math.nan):.2f}  "
                  f"NMI {ev.get('nmi', math.nan):.2f}  clusters {used}", fontsize=9)
    top.set_aspect("equal", adjustable="datalim")   # the spiral keeps its shape; the latent view is fitted
    bottom.scatter(xm[:, 0], xm[:, 1], c=colors[pred], s=2, lw=0)
    xlim, ylim = _view(xm)
    if "prior_mean" in snap and "prior_logvar" in snap:
        _ellipses(bottom, snap["prior_mean"].reshape(k, -1), snap["prior_logvar"].reshape(k, -1), colors)
    bottom.set_xlim(*xlim)
    bottom.set_ylim(*ylim)
    for ax in (top, bottom):
        ax.set_xticks([])
        ax.set_yticks([])


def draw_side_by_side(runs: dict, captions: dict, title: str, path: Path) -> Path:
    """One column per run: the data by predicted cluster above, its latent space below."""
    n = len(runs)
    fig = Figure(figsize=(3.1 * n, 6.4), dpi=80, layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for col, (name, run) in enumerate(runs.items()):
        _draw_run(axes[0, col], axes[1, col], run, captions[name])
    axes[0, 0].set_ylabel("data y, by cluster", fontsize=9)
    axes[1, 0].set_ylabel("latent x means, prior at w = 0", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def sparse_evaluations(run: plots.Run, every: int = 25) -> plots.Run:
    """The run with its evaluation records kept every `every` epochs and at the last: the spiral is
    evaluated after each of its 500 epochs, and 500 markers would hide the training curves under them."""
    last = max((m["epoch"] for m in run.metrics), default=0)
    metrics = [m if m["epoch"] % every == 0 or m["epoch"] == last else {k: v for k, v in m.items() if k != "eval"}
               for m in run.metrics]
    return dataclasses.replace(run, metrics=metrics)


def draw_spiral_small(run: plots.Run, path: Path) -> Path:
    """The README's figure: the spiral coloured by cluster beside its latent space."""
    fig = Figure(figsize=(6.4, 3.3), dpi=80, layout="constrained")
    left, right = fig.subplots(1, 2)
    _draw_run(left, right, run, f"./run.sh spiral, epoch {final_eval(run).get('epoch')}")
    left.set_xlabel("data y, by cluster", fontsize=9)
    right.set_xlabel("latent x means; prior components at w = 0", fontsize=9)
    return save_png(fig, path)


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
def ablation_table(runs: dict, captions: dict) -> str:
    lines = ["| setting | epochs | purity | NMI | Hungarian acc. | clusters used | arms owning a cluster | -ELBO |",
             "|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        ev = final_eval(run)
        lines.append(f"| {captions[name]} | {ev['epoch']} | {ev['purity']:.3f} | {ev['nmi']:.3f} | "
                     f"{ev['acc_hungarian']:.3f} | {ev['clusters_used']} | {ev['classes_owned']} of 5 | "
                     f"{ev['neg_elbo']:.3f} |")
    return "\n".join(lines)


def mnist_table(runs: dict, captions: dict) -> str:
    lines = ["| run | epochs | acc. (paper's criterion) | Hungarian acc. | NMI | clusters used | "
             "test -ELBO | wall time |", "|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        ev = final_eval(run)
        total, _ = wall_seconds(run.path)
        lines.append(f"| {captions[name]} | {ev['epoch']} | {100 * ev['acc_paper']:.2f} | "
                     f"{100 * ev['acc_hungarian']:.2f} | {ev['nmi']:.3f} | {ev['clusters_used']} | "
                     f"{ev['neg_elbo']:.1f} | {total / 60:.0f} min |")
    return "\n".join(lines)


def diagnosis_table(runs: dict, captions: dict) -> str:
    """Each diagnosis run after its first and its last epoch: the diagnostics and the clustering."""
    lines = ["| run | epoch | clusters in use | max q | batch entropy | KL gap (nats) | acc. (paper's criterion) | "
             "NMI |", "|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        shown = [r for r in run.metrics if r["epoch"] <= DIAGNOSIS_EPOCHS and "eval" in r]
        for r in (shown[0], shown[-1]):
            ev = r["eval"]
            lines.append(f"| {captions[name]} | {r['epoch']} | {ev['clusters_used']} | {ev['max_q']:.3f} | "
                         f"{ev['batch_entropy']:.3f} | {ev['kl_gap']:.1f} | {100 * ev['acc_paper']:.2f} | "
                         f"{ev['nmi']:.3f} |")
    return "\n".join(lines)


def epoch_table(run: plots.Run, first: int = 10, every: int = 10) -> str:
    """One row per evaluated epoch: all of the first ``first``, then every ``every``-th, and the last."""
    _, timing = wall_seconds(run.path)
    seconds = {t["epoch"]: t for t in timing}
    lines = ["| epoch | epoch time (s) | eval time (s) | acc. (paper) | Hungarian acc. | NMI | clusters used | "
             "test -ELBO |", "|---|---|---|---|---|---|---|---|"]
    evaluated = [record for record in run.metrics if record.get("eval")]
    last = evaluated[-1]["epoch"] if evaluated else None
    for record in evaluated:
        ev, t, epoch = record["eval"], seconds.get(record["epoch"], {}), record["epoch"]
        if not (epoch <= first or epoch % every == 0 or epoch == last):
            continue
        lines.append(f"| {epoch} | {t.get('epoch_seconds', math.nan):.0f} | "
                     f"{t.get('eval_seconds', math.nan):.1f} | {100 * ev['acc_paper']:.2f} | "
                     f"{100 * ev['acc_hungarian']:.2f} | {ev['nmi']:.3f} | {ev['clusters_used']} | "
                     f"{ev['neg_elbo']:.1f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    expected = "\n".join(f"  {name:<18s} {cmd} --out RUNS/{name}" for name, (cmd, _) in RUNS.items())
    p = argparse.ArgumentParser(
        description="Regenerate docs/figures/*.png from run directories (and print results tables).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="expected runs under --runs (RUNS), and the commands that make them:\n" + expected)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "docs", metavar="RUNS",
                   help="folder holding the run directories (default: runs/docs)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "figures", metavar="DIR",
                   help="where the figures go (default: docs/figures)")
    p.add_argument("--tables", action="store_true", help="print the Markdown tables of docs/results.md")
    p.add_argument("--commands", action="store_true", help="print the training commands and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.commands:
        for name, (cmd, _) in RUNS.items():
            print(f"{cmd} --out {args.runs / name}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    captions = {name: caption for name, (_, caption) in RUNS.items()}
    missing_all = []

    def report(path: Path) -> None:
        print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")

    found, missing = existing(args.runs, ["spiral"])
    missing_all += missing
    if found:
        run = found["spiral"]
        report(draw_spiral_small(run, args.out / "spiral_small.png"))
        for draw, name in ((plots.draw_latent, "spiral_latent.png"), (plots.draw_recon_2d, "spiral_recon.png")):
            report(draw(run, args.out / name))
        report(plots.draw_learning_curves(sparse_evaluations(run), args.out / "spiral_curves.png"))

    for table, title, png in ((CV_ABLATION, "cv variant, K = 8: the paper's Figure 2 settings",
                               "ablation_cv.png"),
                              (MI_ABLATION, "mi variant, K = 8: the minimum-information threshold λ",
                               "ablation_mi.png")):
        found, missing = existing(args.runs, table)
        missing_all += missing
        if not missing:
            report(draw_side_by_side(found, captions, f"spiral, {title}", args.out / png))
            if args.tables:
                print(f"\n{png}:\n{ablation_table(found, captions)}\n")

    found, missing = existing(args.runs, MNIST)
    missing_all += missing
    if "mnist_fc-K16-M1" in found:
        report(plots.draw_image_samples(found["mnist_fc-K16-M1"], args.out / "mnist_fc_samples.png"))
    if "mnist_fc-K10-M1" in found:
        report(plots.draw_learning_curves(found["mnist_fc-K10-M1"], args.out / "mnist_fc_curves.png"))
    if found and args.tables:
        print(f"\nMNIST:\n{mnist_table(found, captions)}\n")
        for name, run in found.items():
            print(f"\n{name} per epoch:\n{epoch_table(run)}\n")

    found, missing = existing(args.runs, DIAGNOSIS)
    missing_all += missing
    if not missing:
        shown = {captions[n]: first_epochs(run, DIAGNOSIS_EPOCHS) for n, run in found.items()}
        report(plots.draw_diagnostics(shown, args.out / "mnist_diagnosis.png",
                                      title="MNIST fc, K = 10, seed 1: what stops the collapse"))
        if args.tables:
            print(f"\nmnist_diagnosis.png:\n{diagnosis_table(found, captions)}\n")

    series = read_all_series(args.runs, RECIPE, missing_all)
    if PRESET_SERIES in series:     # the figures show the preset's first seed, the restart it kept
        first = series[PRESET_SERIES][0]
        chosen = plots.read_run(kept_dir(args.runs, PRESET_SERIES, first))
        report(plots.draw_learning_curves(chosen, args.out / "mnist_recipe_curves.png"))
        report(plots.draw_image_samples(chosen, args.out / "mnist_recipe_samples.png"))
    if series and args.tables:
        print(f"\nMNIST recipe:\n{recipe_table(series, captions)}\n")
        screened = {name: rows for name, rows in series.items() if name in SELECTION_SERIES}
        print(f"\nchoosing among restarts:\n{selection_table(screened, captions)}\n")

    if series and args.tables:
        digits = digit_errors_table(args.runs, series, captions)
        if digits:
            print(f"\nerrors by digit (share of each digit's images in clusters labelled otherwise, and "
                  f"clusters labelled with it):\n{digits}\n")
        climb = climb_table(args.runs, series, captions)
        if climb:
            print(f"\nthe kept restarts' accuracy as they train:\n{climb}\n")
        shifts = shift_table(args.runs, series, captions)
        if shifts:
            print(f"\nclusters under small shifts of the image:\n{shifts}\n")
        codes = codes_table(args.runs, series, captions)
        if codes:
            print(f"\nwhat the codes hold (accuracy, %, on the snapshot's test images):\n{codes}\n")
    faithful = faithful_table(args.runs, captions)
    if faithful and args.tables:
        print(f"\nthe faithful preset over seeds:\n{faithful}\n")
    missing_all += [name for name in FAITHFUL if not (args.runs / name / "seeds.json").is_file()]

    screens = screen_table(args.runs)
    if screens and args.tables:
        print(f"\nscreens of the recipe's parts:\n{screens}\n")
    missing_all += [name for name in SCREENS if not (args.runs / name / "metrics.jsonl").is_file()]
    invariance = invariance_table(args.runs)
    if invariance and args.tables:
        print(f"\nthe invariance term, and the clusters under small moves of the image:\n{invariance}\n")
    missing_all += [name for name in LONG if not (args.runs / name / "metrics.jsonl").is_file()]

    spirals = read_all_series(args.runs, SPIRAL_RESTARTS, missing_all)
    if spirals and args.tables:
        print(f"\nthe spiral with restarts:\n{spiral_restarts_table(spirals, captions)}\n")
        for name in SPIRAL_SELECTION:     # each data set apart: the criteria need not rank alike on both
            if name in spirals:
                print(f"\nchoosing among the restarts, {captions[name]}:\n"
                      f"{selection_table({name: spirals[name]}, captions)}\n")

    missing_all += neighbour_study.report(args.runs, args.out, captions, args.tables, report)

    if missing_all:
        print("missing runs (figures skipped); train them with:", file=sys.stderr)
        for name in dict.fromkeys(missing_all):     # each once, in order
            print(f"  {RUNS[name][0]} --out {args.runs / name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
