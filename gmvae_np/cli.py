"""The command line of the experiments: ``./run.sh spiral --epochs 50`` or ``python experiments/spiral.py``.

Every experiment script is two lines, ``from gmvae_np.cli import main; main("spiral")``. ``main`` builds
an argparse parser from the experiment's preset (gmvae_np.presets): every setting is an option whose
default is the preset's value, so ``--help`` lists them all. Beyond the settings:

    --out RUN_DIR        where the run is written (default runs/<experiment>-<variant>-seed<seed>);
                         a folder that already holds a checkpoint is refused (use --resume or a new --out)
    --resume RUN_DIR     continue an interrupted run from RUN_DIR/checkpoints/last.npz with the run's
                         own settings; only --epochs, --backend, --data-dir, --log-every, --eval-every,
                         --plot-every and --no-plots may change
    --seeds 1-10         one run per seed into RUN_DIR/seed<k>, then RUN_DIR/summary.json and a table of
                         the mean, standard deviation and best of every final metric (as the paper's
                         tables); ``--resume RUN_DIR`` continues such a series where it stopped
    --jobs N             train the seeds of a series in N worker processes at once, one BLAS thread each
                         (gmvae_np.parallel); the table is the same whatever N, since the runs are
                         gathered in seed order and each computes as it would alone on one thread
    -gpu N, --gpu        the original code's habit: -gpu 1 (or --gpu) means --backend cupy, -gpu 0 numpy

The variants read different weights (gmvae_np.elbo.objective): cv reads --alpha and --eta, mi reads
--lam. Giving a weight the chosen variant does not read is refused rather than silently ignored.

Exit codes: 0 done; 2 a user error (bad option or value, missing data, unusable run directory, corrupt
checkpoint, unavailable backend) or a fault of the environment (a run directory in use by another process,
a write that failed: no space left, permission lost; gmvae_np.rundir), printed as one line ``error: ...``
without a traceback; 1 training stopped because a loss term became NaN or infinite; 130 / 143 stopped by
SIGINT (Ctrl-C) / SIGTERM after saving a checkpoint, with a line saying how to resume. Genuine bugs
still raise with a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from autograd_lite.backend import BackendError

from .checkpoint import CheckpointError
from .data import DataError
from .elbo import VARIANT_WEIGHTS
from .presets import EXPERIMENTS, Settings, SettingsError, flag, preset
from .restarts import train_with_restarts
from .rundir import RunDir
from .train import RunDirError, Trainer, TrainingDiverged, TrainingInterrupted, read_settings

__all__ = ["main", "run", "build_parser", "parse_seeds", "summarize", "check_variant_flags"]

RESUME_MAY_CHANGE = ("epochs", "backend", "data_dir", "log_every", "eval_every", "plot_every", "plots")
SPIRAL_ONLY = ("n_per_arm", "curl")
CUSTOM_ONLY = ("data", "labels", "standardize")
HIGHER_IS_BETTER = ("acc_paper", "acc_hungarian", "nmi", "ari", "purity", "clusters_used", "classes_owned")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``error: ...`` and exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


# The project's error types that mean 'the user asked for something that cannot be done'.
USER_ERRORS = (SettingsError, DataError, BackendError, RunDirError, CheckpointError)


def build_parser(experiment: str) -> argparse.ArgumentParser:
    """The parser of one experiment; setting options default to argparse.SUPPRESS (absent unless given)."""
    defaults = preset(experiment)  # unvalidated for custom, whose data is only given on the command line
    p = _Parser(prog=f"./run.sh {experiment.replace('_', '-')}", allow_abbrev=False,
                description=f"Train a GMVAE on the {defaults.dataset} data set (experiment '{experiment}'). "
                            f"Defaults reproduce the original code's settings (see gmvae_np/presets.py).",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="exit codes: 0 done, 1 stopped on a non-finite loss, 2 user error, "
                       "130/143 interrupted (resume with --resume RUN_DIR)")
    run = p.add_argument_group("run")
    run.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<experiment>-<variant>-"
                                                      "seed<seed>, or ...-seeds<list> with --seeds)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run (or series of seeds) in RUN_DIR")
    run.add_argument("--seeds", metavar="LIST", help="train once per seed, e.g. 1-10 or 1,4,7, into "
                                                     "RUN_DIR/seed<k>, then write RUN_DIR/summary.json")
    run.add_argument("--jobs", type=int, metavar="N", help="with --seeds (or --resume of a series): train N "
                                                          "seeds at once in worker processes, one BLAS "
                                                          "thread each")
    run.add_argument("--gpu", "-gpu", dest="gpu", type=int, nargs="?", const=1, default=argparse.SUPPRESS,
                     metavar="N", help="the original's flag: -gpu 1 or --gpu means --backend cupy, "
                                       "-gpu 0 means --backend numpy")
    groups = {}
    for f in dataclasses.fields(Settings):
        if f.metadata.get("cli") is False:
            continue
        if f.name in SPIRAL_ONLY and experiment != "spiral":
            continue
        if f.name in CUSTOM_ONLY and experiment != "custom":
            continue
        if f.name == "dataset":
            continue  # the experiment fixes its data set
        group_name = "data" if f.name in ("data_dir",) + CUSTOM_ONLY + SPIRAL_ONLY else "settings"
        group = groups.get(group_name) or groups.setdefault(group_name, p.add_argument_group(group_name))
        default = getattr(defaults, f.name)
        help_text = f.metadata["help"].replace("%", "%%")
        if f.type == "bool" and default:
            group.add_argument(flag(f.name).replace("--", "--no-", 1), dest=f.name, action="store_false",
                               default=argparse.SUPPRESS, help=f.metadata["off"].replace("%", "%%"))
            continue
        if f.type == "bool":
            group.add_argument(flag(f.name), dest=f.name, action="store_true", default=argparse.SUPPRESS,
                               help=f.metadata["on"].replace("%", "%%"))
            continue
        kind = {"int": int, "float": float}.get(f.type.split(" | ")[0], str)  # annotations are strings here
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, type=kind,
                      help=f"{help_text} (default: {default})")
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument(flag(f.name), **kwargs)
    return p


def parse_seeds(text: str) -> list[int]:
    """'1-10' -> [1..10], '1,4,7' -> [1, 4, 7], '3' -> [3]; duplicates removed, order kept."""
    seeds = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise SettingsError(f"--seeds {text!r} is not a list of seeds; write e.g. 1-10 or 1,4,7") from None
    if any(s < 0 for s in seeds):
        raise SettingsError(f"--seeds {text!r} holds a negative seed; seeds are whole numbers >= 0")
    return list(dict.fromkeys(seeds))


def _given(args) -> dict:
    """The settings given on the command line (options left at their defaults are absent)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    given = {k: v for k, v in vars(args).items() if k in names}
    gpu = getattr(args, "gpu", None)
    if gpu is not None:
        if "backend" in given and given["backend"] != ("cupy" if gpu else "numpy"):
            raise SettingsError(f"-gpu {gpu} and --backend {given['backend']} disagree; give only one of them")
        given["backend"] = "cupy" if gpu else "numpy"
    return given


def check_variant_flags(variant: str, given: dict) -> None:
    """Refuse a weight given on the command line that the chosen variant's objective does not read.

    Left silent, ``--variant mi --eta 3`` would train exactly as ``--variant mi`` while the user believes
    the z prior was weighted.
    """
    weights = [k for names in VARIANT_WEIGHTS.values() for k in names]
    unused = [k for k in weights if k in given and k not in VARIANT_WEIGHTS[variant]]
    if unused:
        other = "mi" if variant == "cv" else "cv"
        raise SettingsError(f"{', '.join(map(flag, unused))} {'plays' if len(unused) == 1 else 'play'} no part in "
                            f"the {variant} variant's objective (it reads "
                            f"{', '.join(flag(k) for k in VARIANT_WEIGHTS[variant])}); leave "
                            f"{'it' if len(unused) == 1 else 'them'} out or add --variant {other}")


def _say(msg: str, stream=None) -> None:
    print(msg, file=stream or sys.stdout, flush=True)


def _resume_hint(experiment: str, run_dir) -> str:
    return f"resume with: ./run.sh {experiment.replace('_', '-')} --resume {run_dir}"


# ------------------------------------------------------------------------------------------------------
# One run, and a series of seeds
# ------------------------------------------------------------------------------------------------------
def _train_one(settings: Settings, run_dir: Path, resume: bool, graph_dir=None) -> dict:
    """One run (with restarts when asked); ``graph_dir``: where a neighbour graph is kept (a series' root)."""
    kw = {} if graph_dir is None else {"graph_dir": graph_dir}
    if settings.restarts > 1:
        return train_with_restarts(settings, run_dir, resume=resume, handle_signals=True, **kw)
    return Trainer(settings, run_dir, resume=resume, handle_signals=True, **kw).run()


def _has_run(run_dir: Path) -> bool:
    """Whether run_dir holds a run to continue: a checkpoint, or the record of a run with restarts."""
    return (run_dir / "checkpoints" / "last.npz").is_file() or (run_dir / "restarts.json").is_file()


def _stored_settings(run_dir: Path) -> Settings:
    """The settings a run directory was started with (restarts.json for a run with restarts)."""
    path = run_dir / "restarts.json"
    if not path.is_file():
        return read_settings(run_dir)
    try:
        return Settings.from_dict(json.loads(path.read_text(encoding="utf-8"))["settings"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{path} cannot be read ({e}); start the run again with --out") from None


def _resumed(stored: Settings, given: dict, root: Path, experiment: str, kind: str = "run") -> Settings:
    """The stored settings of the run (or series) in root with the given ones applied: the one check of
    what --resume may change (RESUME_MAY_CHANGE), and that root belongs to this experiment."""
    if stored.experiment != experiment:
        raise SettingsError(f"{root} is a {kind} of experiment {stored.experiment!r}; resume it with "
                            f"./run.sh {stored.experiment.replace('_', '-')} --resume {root}")
    fixed = sorted(k for k in given if k not in RESUME_MAY_CHANGE and given[k] != getattr(stored, k))
    if fixed:
        raise SettingsError(f"--resume continues {'the series in ' if kind == 'series' else ''}{root} with its own "
                            f"settings, so {', '.join(map(flag, fixed))} cannot change; only "
                            f"{', '.join(flag(k) for k in RESUME_MAY_CHANGE if k != 'plots')} and --no-plots may")
    return stored.replace(**given)


def _series(experiment: str, base: Settings, seeds: list[int], root: Path, given: dict, resume: bool,
            jobs: int | None = None) -> int:
    """Train one run per seed into root/seed<k>; write root/summary.json and print the table.

    With ``jobs`` the seeds train in that many worker processes (:func:`_parallel_series`)."""
    if not resume:
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "seeds.json").write_text(json.dumps(
                {"experiment": experiment, "seeds": seeds, "settings": base.to_dict()}, indent=2) + "\n")
        except OSError as e:
            raise RunDirError(f"cannot write to the run directory {root} ({e.strerror or e}); choose a writable "
                              f"--out") from None
    finals = {}
    if jobs is not None:
        code = _parallel_series(experiment, base, seeds, root, given, resume, jobs, finals)
        if code:
            return code
    for seed in seeds if jobs is None else ():
        run_dir = root / f"seed{seed}"
        has_ckpt = _has_run(run_dir)
        if resume and has_ckpt:
            settings = _resumed(_stored_settings(run_dir), given, run_dir, experiment)
            _say(f"== seed {seed}: resuming {run_dir}")
        else:
            settings = base.replace(seed=seed)
            _say(f"== seed {seed}: {run_dir}")
        try:
            record = _train_one(settings, run_dir, resume and has_ckpt, graph_dir=root)
        except TrainingInterrupted as e:
            print(f"{e}; {_resume_hint(experiment, root)}", file=sys.stderr, flush=True)
            return e.exit_code
        finals[seed] = _final(record)
    summary = summarize(finals)
    summary = {"experiment": experiment, "seeds": seeds, **summary}
    RunDir(root).write_json("summary.json", summary)   # a failed write: one line (gmvae_np.rundir)
    _say(format_table(summary))
    _say(f"summary written to {root / 'summary.json'}")
    return 0


def _final(record: dict) -> dict:
    """What the summary keeps of a run's last record: the final evaluation and training -ELBO."""
    return {**record.get("eval", {}), "train_neg_elbo": record.get("train", {}).get("neg_elbo")}


class _SeedLines:
    """A worker's output stream: whole lines, each prefixed with its seed; live progress lines dropped
    (several workers redrawing one terminal line would garble it)."""

    def __init__(self, seed: int, stream):
        self.prefix, self.stream, self.buffer = f"[seed {seed}] ", stream, ""

    def write(self, text: str) -> int:
        if text.startswith("\r"):
            return len(text)
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.stream.write(self.prefix + line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _series_task(settings: Settings, run_dir: str, resume: bool, graph_dir: str | None = None) -> dict:
    """One seed of a parallel series, in a worker process: {"status": "done", "final": ...}, or
    {"status": "interrupted"} when Ctrl-C (SIGINT, or the parent's SIGTERM) stopped it, with a checkpoint
    saved once training had started."""
    from .parallel import stop_requested

    if stop_requested():
        return {"status": "interrupted"}
    out, err = _SeedLines(settings.seed, sys.stdout), _SeedLines(settings.seed, sys.stderr)
    print(f"{out.prefix}{'resuming ' if resume else ''}{run_dir}", flush=True)
    try:
        if settings.restarts > 1:
            record = train_with_restarts(settings, Path(run_dir), resume=resume, out=out, err=err,
                                         handle_signals=True, graph_dir=graph_dir)
        else:
            trainer = Trainer(settings, run_dir, resume=resume, out=out, err=err, handle_signals=True,
                              graph_dir=graph_dir)
            if stop_requested():
                return {"status": "interrupted"}
            record = trainer.run()
    except TrainingInterrupted:
        return {"status": "interrupted"}
    return {"status": "done", "final": _final(record)}


def _parallel_series(experiment: str, base: Settings, seeds: list[int], root: Path, given: dict, resume: bool,
                     jobs: int, finals: dict) -> int:
    """Train the seeds in ``jobs`` worker processes; fill ``finals`` in seed order. Returns 0 when every
    seed finished, else the exit code of an interruption (the finished seeds are kept for --resume)."""
    from .parallel import Interrupted, run_in_processes

    tasks = []
    for seed in seeds:
        run_dir = root / f"seed{seed}"
        has_ckpt = _has_run(run_dir)
        settings = (_resumed(_stored_settings(run_dir), given, run_dir, experiment) if resume and has_ckpt
                    else base.replace(seed=seed))
        tasks.append((settings, str(run_dir), resume and has_ckpt, str(root)))
    _say(f"== seeds {', '.join(map(str, seeds))}: {jobs} at a time into {root}")
    try:
        results = run_in_processes(_series_task, tasks, jobs, graceful=True)
        interrupted = False
    except Interrupted as e:
        results, interrupted = e.results, True
    done = [seed for seed, r in zip(seeds, results) if r is not None and r["status"] == "done"]
    if interrupted or len(done) < len(seeds):
        print(f"interrupted: {len(done)} of {len(seeds)} seeds finished; the others stopped, those that had "
              f"started training after saving a checkpoint; {_resume_hint(experiment, root)}",
              file=sys.stderr, flush=True)
        return 130
    for seed, r in zip(seeds, results):
        finals[seed] = r["final"]
    return 0


def summarize(finals: dict) -> dict:
    """Mean, standard deviation (n - 1; 0 for one run), best value and best seed of every final metric."""
    names = []
    for record in finals.values():
        names += [k for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and k not in names]
    table = {}
    for name in (n for n in names if n != "n_classes"):  # a property of the data, the same for every seed
        values = {seed: float(r[name]) for seed, r in finals.items()
                  if isinstance(r.get(name), (int, float)) and math.isfinite(float(r[name]))}
        if not values:
            continue
        xs = list(values.values())
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
        pick = max if name in HIGHER_IS_BETTER else min
        best_seed = pick(values, key=values.get)
        table[name] = {"mean": mean, "std": std, "best": values[best_seed], "best_seed": best_seed, "n": len(xs)}
    return {"runs": {str(k): v for k, v in finals.items()}, "metrics": table}


def format_table(summary: dict) -> str:
    """The printed table of a series: one metric per row, mean +- std and the best run."""
    rows = [("metric", "mean", "std", "best", "seed")]
    for name, m in summary["metrics"].items():
        rows.append((name, f"{m['mean']:.4f}", f"{m['std']:.4f}", f"{m['best']:.4f}", str(m["best_seed"])))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{len(summary['seeds'])} seeds of {summary['experiment']}:"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------------
def run(experiment: str, argv=None) -> int:
    """Parse ``argv`` for ``experiment``, train, and return the exit code (see the module docstring)."""
    experiment = experiment.replace("-", "_")
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; one of {', '.join(EXPERIMENTS)}")
    args = build_parser(experiment).parse_args(argv)
    try:
        return _run(experiment, args)
    except USER_ERRORS as e:
        print(f"error: {_one_line(e)}", file=sys.stderr, flush=True)
        return 2
    except TrainingDiverged as e:
        print(_one_line(e), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted at once (second Ctrl-C): this step was not saved; the last checkpoint is the "
              "previous one", file=sys.stderr, flush=True)
        return 130


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_jobs(args, series: bool):
    """--jobs N: a whole number >= 1, and only for a series of seeds."""
    if args.jobs is None:
        return None
    if args.jobs < 1:
        raise SettingsError(f"--jobs must be a whole number >= 1 (worker processes); got {args.jobs}")
    if not series:
        raise SettingsError("--jobs trains the seeds of a series in parallel; give --seeds too (or --resume a "
                            "series of seeds)")
    return args.jobs


def _run(experiment: str, args) -> int:
    given = _given(args)
    if args.resume:
        root = Path(args.resume)
        if args.out and Path(args.out) != root:
            raise SettingsError("give either --resume RUN_DIR (continue a run) or --out RUN_DIR (a new run), "
                                "not both")
        if args.seeds:
            raise SettingsError("--resume continues a series with its own seeds; leave out --seeds")
        if (root / "seeds.json").is_file() and not _has_run(root):
            try:
                series = json.loads((root / "seeds.json").read_text())
                seeds = [int(s) for s in series["seeds"]]
                base = Settings.from_dict(series["settings"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise RunDirError(f"{root / 'seeds.json'} cannot be read ({e}); start the series again with "
                                  f"--out") from None
            return _series(experiment, _resumed(base, given, root, experiment, "series"), seeds, root, given,
                           resume=True, jobs=_check_jobs(args, series=True))
        _check_jobs(args, series=False)
        return _single(experiment, _resumed(_stored_settings(root), given, root, experiment), root, resume=True)

    settings = preset(experiment, **given)
    check_variant_flags(settings.variant, given)
    if args.seeds:
        seeds = parse_seeds(args.seeds)
        root = Path(args.out or f"runs/{experiment}-{settings.variant}-seeds{args.seeds.replace(',', '_')}")
        if (root / "seeds.json").is_file():
            raise RunDirError(f"{root} already holds a series of seeds; continue it with --resume {root} or "
                              f"choose a new --out")
        return _series(experiment, settings, seeds, root, given, resume=False, jobs=_check_jobs(args, True))
    _check_jobs(args, series=False)
    root = Path(args.out or f"runs/{experiment}-{settings.variant}-seed{settings.seed}")
    return _single(experiment, settings, root, resume=False)


def _single(experiment: str, settings: Settings, run_dir: Path, resume: bool) -> int:
    try:
        _train_one(settings, run_dir, resume)
    except TrainingInterrupted as e:
        print(f"{e}; {_resume_hint(experiment, run_dir)}", file=sys.stderr, flush=True)
        return e.exit_code
    _say(f"run written to {run_dir}" + (f" (figures in {run_dir / 'figures'})" if settings.plots else ""))
    return 0


def main(experiment: str, argv=None) -> None:
    """The experiment scripts' entry point: run and exit with its code."""
    sys.exit(run(experiment, argv))
