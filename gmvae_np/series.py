"""A series of seeds: one run per seed into ROOT/seed<k>, then ROOT/summary.json and the table of the paper.

    ./run.sh spiral --seeds 1-10 [--jobs N | --dask tcp://HOST:8786] [--out ROOT]

:func:`run_series` trains the seeds one after the other, or through gmvae_np.parallel.run_tasks with
``jobs`` (local worker processes, one BLAS thread each) or inside a Dask context (``--dask``). The table
is the same whatever the choice: the runs are gathered in seed order, and each computes as it would alone
on one thread. The root's files (seeds.json, summary.json) and each seed's folder are gmvae_np.rundir's.

In parallel, each seed is a task that decides for itself whether to start or to resume: a seed whose
folder already holds a run continues it. So when a Dask worker dies, the scheduler gives the seed to
another worker, which resumes from the seed's last checkpoint (the dead worker's lock died with it);
when the scheduler's retries run out, the series ends with one line and ``--resume ROOT`` finishes it.
"""
from __future__ import annotations

import math
import signal
import sys
from pathlib import Path

from .parallel import Interrupted, WorkerLost, run_tasks
from .presets import Settings, SettingsError, flag
from .restarts import best_of_n
from .rundir import RunDir, read_settings
from .train import Trainer, TrainingInterrupted

__all__ = ["run_series", "train_one", "stored_settings", "resumed", "summarize", "format_table", "final",
           "RESUME_MAY_CHANGE", "HIGHER_IS_BETTER"]

RESUME_MAY_CHANGE = ("epochs", "backend", "data_dir", "log_every", "eval_every", "plot_every", "plots")
HIGHER_IS_BETTER = ("acc_paper", "acc_hungarian", "nmi", "ari", "purity", "clusters_used", "classes_owned")


def _say(msg: str, stream=None) -> None:
    print(msg, file=stream or sys.stdout, flush=True)


def resume_hint(experiment: str, run_dir) -> str:
    return f"resume with: ./run.sh {experiment.replace('_', '-')} --resume {run_dir}"


def train_one(settings: Settings, run_dir: Path, resume: bool, graph_dir=None, jobs=None, **kwargs) -> dict:
    """One run (the best of ``settings.restarts`` when more than one, screened in ``jobs`` workers);
    ``graph_dir``: where a neighbour graph is kept (a series' root)."""
    if graph_dir is not None:
        kwargs["graph_dir"] = graph_dir
    if settings.restarts > 1:
        return best_of_n(settings, Path(run_dir), resume=resume, n_jobs=jobs, handle_signals=True, **kwargs).record
    return Trainer(settings, run_dir, resume=resume, handle_signals=True, **kwargs).run()


def stored_settings(run_dir: Path) -> Settings:
    """The settings a run directory was started with (restarts.json for a run with restarts)."""
    state = RunDir(run_dir).read_restarts()
    if state is None:
        return read_settings(run_dir)
    try:
        return Settings.from_dict(state["settings"])
    except (ValueError, KeyError, TypeError) as e:
        raise SettingsError(f"{run_dir}/restarts.json holds settings that cannot be used ({e}); start the run "
                            f"again with --out") from None


def resumed(stored: Settings, given: dict, root: Path, experiment: str, kind: str = "run") -> Settings:
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


def _seed_settings(experiment: str, base: Settings, seed: int, root: Path, given: dict, resume: bool):
    """(settings, whether the seed continues a run) of one seed of the series."""
    d = RunDir(root).seed(seed)
    if resume and d.has_run():
        return resumed(stored_settings(d.path), given, d.path, experiment), True
    return base.replace(seed=seed), False


def run_series(experiment: str, base: Settings, seeds: list[int], root: Path, given: dict, resume: bool,
               jobs=None, parallel: bool = False) -> int:
    """Train one run per seed into root/seed<k>; write root/summary.json and print the table. Returns the
    exit code. ``parallel`` (or ``jobs``): the seeds are tasks of gmvae_np.parallel (see the module docstring)."""
    home = RunDir(root)
    if not resume:
        home.write_series(experiment, seeds, base)
    finals = {}
    if parallel or jobs is not None:
        code = _parallel(experiment, base, seeds, root, given, resume, jobs, finals)
        if code:
            return code
    for seed in seeds if not (parallel or jobs is not None) else ():
        settings, again = _seed_settings(experiment, base, seed, root, given, resume)
        run_dir = home.seed(seed).path
        _say(f"== seed {seed}: {'resuming ' if again else ''}{run_dir}")
        try:
            record = train_one(settings, run_dir, again, graph_dir=root)
        except TrainingInterrupted as e:
            print(f"{e}; {resume_hint(experiment, root)}", file=sys.stderr, flush=True)
            return e.exit_code
        finals[seed] = final(record)
    summary = {"experiment": experiment, "seeds": seeds, **summarize(finals)}
    home.write_json("summary.json", summary)   # a failed write: one line (gmvae_np.rundir)
    _say(format_table(summary))
    _say(f"summary written to {root / 'summary.json'}")
    return 0


def final(record: dict) -> dict:
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


def _seed_task(settings: Settings, run_dir: str, graph_dir: str) -> dict:
    """One seed of a parallel series, in a worker: {"status": "done", "final": ...}, or {"status":
    "interrupted", "signum": ...} when a signal stopped it (after a checkpoint, once training had started). It resumes
    when its folder holds a run: a seed begun by a worker that died, or one the series resumes."""
    from . import stops

    if stops.requested() is not None:   # a signal reached this worker before the task began
        return {"status": "interrupted", "signum": stops.requested()}
    resume = RunDir(run_dir).has_run()
    out, err = _SeedLines(settings.seed, sys.stdout), _SeedLines(settings.seed, sys.stderr)
    print(f"{out.prefix}{'resuming ' if resume else ''}{run_dir}", flush=True)
    try:
        record = train_one(settings, Path(run_dir), resume, graph_dir=graph_dir, out=out, err=err)
    except TrainingInterrupted as e:
        return {"status": "interrupted", "signum": e.signum}
    return {"status": "done", "final": final(record)}


def _parallel(experiment: str, base: Settings, seeds: list[int], root: Path, given: dict, resume: bool,
              jobs, finals: dict) -> int:
    """Train the seeds as tasks; fill ``finals`` in seed order. Returns 0 when every seed finished, else the
    exit code of an interruption or of a lost worker (the finished seeds are kept for --resume)."""
    tasks = [(_seed_settings(experiment, base, seed, root, given, resume)[0], str(RunDir(root).seed(seed).path),
              str(root)) for seed in seeds]
    _say(f"== seeds {', '.join(map(str, seeds))}: {jobs or 'as many as the cluster takes'} at a time into {root}")
    try:
        results = run_tasks(_seed_task, tasks, jobs if jobs is not None else -1)
        signum, on_cluster = None, False
    except Interrupted as e:
        results, signum, on_cluster = e.results, e.signum, e.on_cluster
    except WorkerLost as e:
        print(f"error: {e}; the seeds that finished are kept; {resume_hint(experiment, root)}", file=sys.stderr,
              flush=True)
        return 2
    done = [seed for seed, r in zip(seeds, results) if r is not None and r["status"] == "done"]
    if signum is None:   # this process got no signal, but a worker did (sent to it alone)
        signum = next((r["signum"] for r in results if r is not None and r["status"] == "interrupted"), None)
    if signum is not None:
        others = ("the summary was not written; " if len(done) == len(seeds) else
                  "the seeds training on the cluster's workers, which the signal does not reach, go on to their "
                  "end, those not begun were cancelled; once they end, " if on_cluster else
                  "the others stopped, those that had started training after saving a checkpoint; ")
        print(f"{signal.Signals(signum).name} received: {len(done)} of {len(seeds)} seeds finished; {others}"
              f"{resume_hint(experiment, root)}", file=sys.stderr, flush=True)
        return 128 + int(signum)
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
