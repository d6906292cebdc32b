"""Best of N: train several initialisations briefly, keep one by a criterion that reads no labels, train it on.

A GMVAE's clustering depends on its initialisation: on MNIST some seeds find the ten digits and others
merge two digits and split a third, and the choice is made in the first epochs (docs/studies.md,
"Choosing among restarts without labels"). :func:`best_of_n` is the one implementation of restarts: the
command line's ``--restarts N`` and the estimator's ``n_init`` both call it. It owns

* the seeds: restart i (1-based) of a run seeded s trains with ``restart_seed(s, i) = s + 1000 (i - 1)``,
  so restart 1 is the run ``--restarts 1`` would train, and the restarts of seed 1 never meet those of
  seed 2 in a series;
* screening then training on: each restart trains ``restart_epochs`` epochs, one is chosen, and only
  that one trains on to ``epochs`` (a continuation: the same run as one trained to ``epochs`` at once);
* the label-free criterion ``select_by`` (CRITERIA), read from each restart's last screening record;
* parallelism: the restarts are screened through gmvae_np.parallel.run_tasks (``n_jobs``, or a joblib
  context such as Dask's).

Each preset's ``restart_epochs`` is long enough for the criterion to read more than noise (the spiral's
100 epochs: docs/studies.md, "With restarts"; MNIST's 5).

The criteria (CRITERIA), each read from the last screening epoch's record (lower wins):

    train_elbo      the mean negative ELBO of that training epoch
    train_entropy   the mean entropy of p(z|x,w) over that training epoch, the consistency violation
                    (the mixture's own assignments of the training points are confident)
    eval_elbo       the negative ELBO on the held-out split (the estimator's: there it is its training X)
    eval_entropy    the mean entropy of p(z|x,w) on the held-out split

With a run directory RUN_DIR (gmvae_np.rundir keeps its files):

    RUN_DIR/restart<i>/   an ordinary run directory per restart
    RUN_DIR/restarts.json the settings, each screened restart's criterion values and the choice

Every step is resumable: a restart with a checkpoint continues where it stopped, a finished screening
is not repeated, and the chosen run continues with the trainer's own exact resume. RUN_DIR is locked
for the whole run, and each restart's folder by its own trainer, so a second writer is refused. Without
a run directory (the estimator), the restarts are screened in memory and the kept Trainer comes back
from its worker to train on.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from .parallel import Interrupted, run_tasks
from .presets import Settings, SettingsError
from .rundir import RunDir, RunDirError
from .train import Trainer, TrainingInterrupted

__all__ = ["CRITERIA", "SEED_STRIDE", "restart_seed", "best_of_n", "train_with_restarts", "criterion_values",
           "BestOfN"]

CRITERIA = {
    "train_elbo": lambda record: record.get("train", {}).get("neg_elbo"),
    "train_entropy": lambda record: record.get("train", {}).get("consistency_violation"),
    "eval_elbo": lambda record: record.get("eval", {}).get("neg_elbo"),
    "eval_entropy": lambda record: record.get("eval", {}).get("consistency_violation"),
}
SEED_STRIDE = 1000


def restart_seed(seed: int, i: int) -> int:
    """The seed of restart i (1-based) of a run seeded ``seed``: restart 1 keeps the run's own seed."""
    return seed + SEED_STRIDE * (i - 1)


def criterion_values(record: dict) -> dict:
    """Every criterion of CRITERIA read from one epoch's record (None where the record lacks it)."""
    return {name: read(record) for name, read in CRITERIA.items()}


@dataclass
class BestOfN:
    """What :func:`best_of_n` returns: the kept run's last record, its index (1-based) and seed, every
    restart's seed and criterion values at the end of its screening, and (in memory) the kept Trainer."""

    record: dict
    chosen: int
    seeds: list
    screened: dict
    trainer: Trainer | None = None

    @property
    def seed(self) -> int:
        return self.seeds[self.chosen - 1]


def _screen(settings: Settings, run_dir, trainer_kwargs: dict, line: str | None = None):
    """One restart's screening (a task: it may run in a worker). With a run directory: its criterion values,
    None when a stop was asked for before it began; in memory: (criterion values, the Trainer)."""
    from .parallel import stop_requested

    if stop_requested():
        return None
    if line is not None:
        print(line, file=trainer_kwargs.get("out"), flush=True)
    if run_dir is None:
        trainer = Trainer(settings, None, **trainer_kwargs)
        return criterion_values(trainer.run()), trainer
    resume = RunDir(run_dir).last.is_file()
    return criterion_values(Trainer(settings, run_dir, resume=resume, **trainer_kwargs).run())


def best_of_n(settings: Settings, run_dir=None, *, resume: bool = False, n_jobs=None, **trainer_kwargs) -> BestOfN:
    """Screen ``settings.restarts`` initialisations for ``settings.restart_epochs`` epochs, keep the one
    ``settings.select_by`` prefers, train it on to ``settings.epochs`` (the module docstring).

    ``run_dir``: keep every restart there (None: in memory, as the estimator does). ``n_jobs``: screen
    that many restarts at once (gmvae_np.parallel). ``trainer_kwargs`` go to every Trainer (dataset, out,
    err, handle_signals, verbose, seeded_eval, ...); a neighbour graph is kept in ``run_dir`` for all the
    restarts, unless ``graph_dir`` names another place.
    """
    s = settings.validate()
    seeds = [restart_seed(s.seed, i) for i in range(1, s.restarts + 1)]
    if run_dir is None:
        return _in_memory(s, seeds, n_jobs, trainer_kwargs)
    root = RunDir(run_dir)
    if trainer_kwargs.get("graph_dir") is None:
        trainer_kwargs["graph_dir"] = root.path
    state = root.read_restarts()
    if resume and state is None:
        raise RunDirError(f"cannot resume: {root.path} has no restarts.json; start a new run with --out")
    with root.held():
        if state is not None and not resume:
            raise RunDirError(f"{root.path} already holds a run with restarts (restarts.json); continue it with "
                              f"--resume {root.path} or choose a new --out")
        return _in_folder(s, seeds, root, state, n_jobs, trainer_kwargs)


def _screening(s: Settings, seeds: list, i: int) -> Settings:
    return s.replace(seed=seeds[i - 1], epochs=min(s.restart_epochs, s.epochs), restarts=1)


def _choose(s: Settings, screened: dict, out) -> int:
    scores = {int(i): v.get(s.select_by) for i, v in screened.items()}
    missing = [i for i, v in scores.items() if v is None]
    if missing:
        raise SettingsError(f"--select-by {s.select_by} needs a value the runs did not record "
                            f"(restart {missing[0]}); use --select-by train_elbo")
    chosen = min(scores, key=scores.get)
    if out is not False:
        print(f"-- restarts by {s.select_by}: " + ", ".join(f"{i}: {v:.3f}" for i, v in sorted(scores.items()))
              + f"; keeping restart {chosen}", file=out, flush=True)
    return chosen


def _in_folder(s: Settings, seeds: list, root: RunDir, state: dict | None, n_jobs, kwargs: dict) -> BestOfN:
    state = {"screened": {}, "chosen": None, **(state or {}), "settings": s.to_dict()}
    out = kwargs.get("out")
    screened_now = state["chosen"] is None
    root.write_restarts(state)
    if state["chosen"] is None:
        todo = [i for i in range(1, s.restarts + 1) if str(i) not in state["screened"]]
        screen = min(s.restart_epochs, s.epochs)
        tasks = [(_screening(s, seeds, i), root.restart(i).path, kwargs,
                  f"-- restart {i} of {s.restarts} (seed {seeds[i - 1]}): {screen} epochs") for i in todo]
        try:
            results, stopped, on_cluster = run_tasks(_screen, tasks, n_jobs), None, False
        except Interrupted as e:
            results, stopped, on_cluster = e.results, e.signum, e.on_cluster
        state["screened"].update({str(i): v for i, v in zip(todo, results) if v is not None})
        root.write_restarts(state)
        if stopped is None and len(state["screened"]) < s.restarts:   # a worker was stopped on its own
            stopped = signal.SIGTERM
        if stopped is not None:
            raise TrainingInterrupted(stopped, None, 0, 0, message=(
                f"the restarts under way in {root.path} on the cluster's workers, which the signal does not reach, "
                f"go on to their end, those not begun were cancelled" if on_cluster else
                f"the restarts in {root.path} stopped, each after saving a checkpoint"))
        state["chosen"] = _choose(s, state["screened"], out)
        root.write_restarts(state)
    chosen = int(state["chosen"])
    d = root.restart(chosen)
    # screened in a worker (one BLAS thread) and trained on here: one run of this command, not a resume
    record = Trainer(s.replace(seed=seeds[chosen - 1], restarts=1), d.path, resume=d.last.is_file(),
                     threads_note=not screened_now, **kwargs).run()
    return BestOfN({**record, "restart": chosen, "restart_seed": seeds[chosen - 1]}, chosen, seeds,
                   {int(i): v for i, v in state["screened"].items()})


def _in_memory(s: Settings, seeds: list, n_jobs, kwargs: dict) -> BestOfN:
    if s.restarts == 1:
        trainer = Trainer(s.replace(restarts=1), None, **kwargs)
        record = trainer.run()
        return BestOfN(record, 1, seeds, {1: criterion_values(record)}, trainer)
    runs = run_tasks(_screen, [(_screening(s, seeds, i), None, kwargs) for i in range(1, s.restarts + 1)], n_jobs)
    screened = {i: values for i, (values, _) in enumerate(runs, start=1)}
    chosen = _choose(s, screened, False)
    trainer = runs[chosen - 1][1]
    record = trainer.train_on(s.epochs)
    return BestOfN(record, chosen, seeds, screened, trainer)


def train_with_restarts(settings: Settings, run_dir, *, resume: bool = False, **trainer_kwargs) -> dict:
    """:func:`best_of_n` into ``run_dir``; the chosen run's last record, with "restart" (its index) and
    "restart_seed" added."""
    return best_of_n(settings, Path(run_dir), resume=resume, **trainer_kwargs).record
