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
                         tables); ``--resume RUN_DIR`` continues such a series where it stopped; at
                         most 100,000 seeds
    --jobs N             train the seeds of a series in N worker processes at once, one BLAS thread each
                         (gmvae_np.series, gmvae_np.parallel); the table is the same whatever N, since the
                         runs are gathered in seed order and each computes as it would alone on one
                         thread. With --restarts and no --seeds: screen N restarts at once
    --dask ADDRESS       the same on a Dask cluster (tcp://HOST:8786); the run directory must be on a
                         path every worker sees (docs/experiments.md, "Scaling out")
    --threads N          N threads for one training in this process: the BLAS library's (threadpoolctl)
                         and the engine's own (autograd_lite.threads: Adam's update and other work BLAS
                         does not spread); the engine's threads never change a result
    -gpu N, --gpu        the original code's habit: -gpu 1 (or --gpu) means --backend cupy, -gpu 0 numpy

The variants read different weights (gmvae_np.elbo.objective): cv reads --alpha and --eta, mi reads
--lam. Giving a weight the chosen variant does not read is refused rather than silently ignored.

Exit codes: 0 done; 2 a user error (bad option or value, missing data, unusable run directory, corrupt
checkpoint, unavailable backend) or a fault of the environment (a run directory in use by another process,
a write that failed: no space left, permission lost; gmvae_np.rundir), printed as one line ``error: ...``
without a traceback; 1 training stopped because a loss term became NaN or infinite; 130 / 143 stopped by
SIGINT (Ctrl-C) / SIGTERM at any phase (during training after saving a checkpoint; outside it at once),
with a line saying how to resume. The command installs the one handler of both signals for its whole
length (gmvae_np.stops), and checks every option before it reads data, builds a graph or reaches a Dask
scheduler. Genuine bugs still raise with a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
from pathlib import Path

import autograd_lite as ag
from autograd_lite.backend import BackendError

from . import stops
from .checkpoint import CheckpointError
from .data import DataError
from .elbo import VARIANT_WEIGHTS
from .parallel import ClusterError, cluster
from .presets import EXPERIMENTS, READ_WHEN, Settings, SettingsError, custom_changes, flag, preset
from .rundir import RunDir
from .series import format_table, resume_hint, resumed, run_series, stored_settings, summarize, train_one
from .train import RunDirError, TrainingDiverged, TrainingInterrupted

__all__ = ["main", "run", "build_parser", "parse_seeds", "summarize", "format_table", "check_variant_flags",
           "check_given_flags", "check_address"]

SPIRAL_ONLY = ("n_per_arm", "curl")
MAX_SEEDS = 100_000   # the seeds of one series; a longer list would fill the memory before the first run
CUSTOM_ONLY = ("data", "labels", "standardize")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``error: ...`` and exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


# The project's error types that mean 'the user asked for something that cannot be done'.
USER_ERRORS = (SettingsError, DataError, BackendError, RunDirError, CheckpointError, ClusterError)


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
                                                          "thread each; with --restarts alone, screen N "
                                                          "restarts at once")
    run.add_argument("--threads", type=int, metavar="N", help="train with N threads: the BLAS library's (matrix "
                                                             "products) and the engine's own (Adam, ...); "
                                                             "default: BLAS as the environment sets it, the "
                                                             "engine on one")
    run.add_argument("--dask", metavar="ADDRESS", help="train the seeds of a series (or screen the restarts) "
                                                       "on the Dask cluster whose scheduler is at ADDRESS, "
                                                       "e.g. tcp://HOST:8786; RUN_DIR must be on a path "
                                                       "every worker sees (docs/experiments.md)")
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
    """'1-10' -> [1..10], '1,4,7' -> [1, 4, 7], '3' -> [3]; duplicates removed, order kept; at most
    MAX_SEEDS of them (counted before a range is spelled out)."""
    ranges = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
            else:
                lo = hi = int(part)
            ranges.append((lo, hi))
    except ValueError:
        raise SettingsError(f"--seeds {text!r} is not a list of seeds; write e.g. 1-10 or 1,4,7") from None
    if any(lo < 0 for lo, _ in ranges):
        raise SettingsError(f"--seeds {text!r} holds a negative seed; seeds are whole numbers >= 0")
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise SettingsError(f"--seeds {text!r} asks for {count:,} runs; a series holds at most {MAX_SEEDS:,} "
                            f"seeds: split it into several series")
    return list(dict.fromkeys(seed for lo, hi in ranges for seed in range(lo, hi + 1)))


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


def check_given_flags(settings: Settings, given: dict) -> None:
    """Refuse a setting given on the command line that these settings do not read (presets.READ_WHEN):
    ``--mutual-neighbours`` without a graph, ``--select-by`` without restarts, ``--neighbour-dims`` in the
    raw space. A flag set to its off value (``--neighbours 0``) asks for nothing and passes."""
    off = {f.name: f.default for f in dataclasses.fields(Settings)}
    for name, value in given.items():
        if name in READ_WHEN and value != off[name] and not READ_WHEN[name][0](settings):
            shown = flag(name) if isinstance(value, bool) else f"{flag(name)} {value}"
            raise SettingsError(f"{shown} is read only with {READ_WHEN[name][1]}, which this run does not have; "
                                f"leave it out or add what it needs")


DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


def check_address(address: str) -> str:
    """A Dask scheduler address (tcp://HOST:PORT, or HOST:PORT) that can be tried: checked before the
    connection, which takes up to 20 s to fail."""
    text = str(address).strip()
    example = "e.g. --dask tcp://HOST:8786"
    if not text:
        raise SettingsError(f"--dask needs the address of a Dask scheduler, {example}")
    from urllib.parse import urlsplit

    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    if parts.scheme not in DASK_SCHEMES:
        raise SettingsError(f"--dask {address!r}: {parts.scheme}:// is not a Dask protocol (one of "
                            f"{', '.join(DASK_SCHEMES)}); {example}")
    if parts.scheme == "inproc":
        return text
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port is not None and not 1 <= port <= 65535:
        raise SettingsError(f"--dask {address!r} is not HOST:PORT with a port from 1 to 65535; {example}")
    return text


def _check_options(args, given: dict) -> None:
    """The options that are not settings, each alone and against each other: before anything is read,
    connected to or built."""
    for option, value in (("--out", args.out), ("--resume", args.resume)):
        if value is not None and not value.strip():
            raise SettingsError(f"{option} needs the path of a run directory, e.g. {option} runs/try")
    if args.seeds is not None and not args.seeds.strip():
        raise SettingsError("--seeds needs a list of seeds, e.g. --seeds 1-10 or --seeds 1,4,7")
    if args.seeds is not None and "seed" in given:
        raise SettingsError(f"--seed {given['seed']} and --seeds {args.seeds} both choose the seed: give --seeds for "
                            f"a series, --seed for one run")
    if args.dask is not None:
        check_address(args.dask)
    if args.jobs is not None and args.dask is not None:
        raise SettingsError("--jobs sets the local worker processes, --dask sends the work to a cluster; give "
                            "one of them")
    if args.jobs is not None and args.jobs < 1:
        raise SettingsError(f"--jobs must be a whole number >= 1 (worker processes); got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise SettingsError(f"--threads must be a whole number >= 1; got {args.threads}")
    if args.threads is not None and (args.jobs is not None or args.dask is not None):
        raise SettingsError("--threads sets the threads of a training in this process; with --jobs or --dask each "
                            "worker trains with one thread: leave out --threads")


# ------------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------------
def run(experiment: str, argv=None) -> int:
    """Parse ``argv`` for ``experiment``, train, and return the exit code (see the module docstring)."""
    experiment = experiment.replace("-", "_")
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; one of {', '.join(EXPERIMENTS)}")
    args = build_parser(experiment).parse_args(argv)
    with stops.handled():   # the one handler of SIGINT and SIGTERM for the whole command (gmvae_np.stops)
        try:
            return _run(experiment, args)
        except USER_ERRORS as e:
            print(f"error: {_one_line(e)}", file=sys.stderr, flush=True)
            return 2
        except TrainingDiverged as e:
            print(_one_line(e), file=sys.stderr, flush=True)
            return 1
        except stops.StopNow as e:
            print(f"{signal.Signals(e.signum).name} received: stopped before anything was written",
                  file=sys.stderr, flush=True)
            return e.exit_code


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_jobs(args, series: bool, restarts: int = 1):
    """--jobs N or --dask (checked alone by _check_options), for a series of seeds or the restarts of a
    run. Returns the jobs to give run_tasks (-1 on a cluster: as many as it takes), or None."""
    if args.jobs is None and args.dask is None:
        return None
    if not series and restarts < 2:
        option = "--jobs" if args.jobs is not None else "--dask"
        raise SettingsError(f"{option} trains the seeds of a series in parallel; give --seeds too (or --resume a "
                            f"series of seeds, or --restarts N to screen N restarts at once)")
    return args.jobs if args.jobs is not None else -1


def _run(experiment: str, args) -> int:
    """Every option checked, then (only then) the threads set, the cluster reached and the work done."""
    given = _given(args)
    _check_options(args, given)
    root, work = _plan(experiment, args, given)
    try:
        with _threads(args), cluster(args.dask) if args.dask is not None else contextlib.nullcontext():
            return work()
    except stops.StopNow as e:
        print(_stopped_line(e, experiment, root), file=sys.stderr, flush=True)
        return e.exit_code


def _stopped_line(e: stops.StopNow, experiment: str, root: Path) -> str:
    """What a signal that stopped the command at once (gmvae_np.stops) left, and how to go on."""
    home = RunDir(root)
    try:
        resumable = home.has_run() or home.read_series() is not None
    except RunDirError:
        resumable = False
    then = (resume_hint(experiment, root) if resumable else
            f"nothing of {root} was kept: run the command again to start it")
    if e.second:
        return (f"interrupted at once (second Ctrl-C): the step under way was not saved; the last checkpoint is "
                f"the one before it; {then}")
    return (f"{signal.Signals(e.signum).name} received: stopped at once, outside training (nothing was being "
            f"trained, so nothing needed saving); {then}")


@contextlib.contextmanager
def _threads(args):
    """--threads N: N BLAS threads (threadpoolctl) and N engine threads (autograd_lite.threads) while the
    training runs in this process. Results do not depend on the engine's threads; the BLAS count is
    recorded in each checkpoint (resume is bit-identical with the same count)."""
    if args.threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads, user_api="blas"), ag.threads(args.threads):
        yield


def _plan(experiment: str, args, given: dict):
    """(the run directory, the work to do): every setting and option checked, nothing read but the run
    directory's records, nothing trained."""
    if args.resume is not None:
        root = RunDir(args.resume)
        if args.out and Path(args.out) != root.path:
            raise SettingsError("give either --resume RUN_DIR (continue a run) or --out RUN_DIR (a new run), "
                                "not both")
        if args.seeds is not None:
            raise SettingsError("--resume continues a series with its own seeds; leave out --seeds")
        series = None if root.has_run() else root.read_series()
        if series is not None:
            base = resumed(series["settings"], given, root.path, experiment, "series")
            check_given_flags(base, given)
            jobs = _check_jobs(args, series=True)
            return root.path, lambda: run_series(experiment, base, series["seeds"], root.path, given, resume=True,
                                                 jobs=jobs, parallel=args.dask is not None)
        settings = resumed(stored_settings(root.path), given, root.path, experiment)
        check_given_flags(settings, given)
        jobs = _check_jobs(args, False, settings.restarts)
        return root.path, lambda: _single(experiment, settings, root.path, True, jobs)

    settings = preset(experiment, **(custom_changes(given) if experiment == "custom" else given))
    check_variant_flags(settings.variant, given)
    check_given_flags(settings, given)
    if args.seeds is not None:
        seeds = parse_seeds(args.seeds)
        root = Path(args.out or f"runs/{experiment}-{settings.variant}-seeds{args.seeds.replace(',', '_')}")
        if RunDir(root).read_series() is not None:
            raise RunDirError(f"{root} already holds a series of seeds; continue it with --resume {root} or "
                              f"choose a new --out")
        jobs = _check_jobs(args, series=True)
        return root, lambda: run_series(experiment, settings, seeds, root, given, resume=False, jobs=jobs,
                                        parallel=args.dask is not None)
    jobs = _check_jobs(args, False, settings.restarts)
    root = Path(args.out or f"runs/{experiment}-{settings.variant}-seed{settings.seed}")
    return root, lambda: _single(experiment, settings, root, False, jobs)


def _single(experiment: str, settings: Settings, run_dir: Path, resume: bool, jobs=None) -> int:
    try:
        train_one(settings, run_dir, resume, jobs=jobs)
    except TrainingInterrupted as e:
        print(f"{e}; {resume_hint(experiment, run_dir)}", file=sys.stderr, flush=True)
        return e.exit_code
    print(f"run written to {run_dir}" + (f" (figures in {run_dir / 'figures'})" if settings.plots else ""),
          flush=True)
    return 0


def main(experiment: str, argv=None) -> None:
    """The experiment scripts' entry point: run and exit with its code."""
    sys.exit(run(experiment, argv))
