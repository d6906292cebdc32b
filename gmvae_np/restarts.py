"""Restarts: train several initialisations briefly, keep one by a criterion that reads no labels.

A GMVAE's clustering depends on its initialisation: on MNIST some seeds find the ten digits and others
merge two digits and split a third, and the choice is made in the first epochs (docs/results.md,
"Choosing among restarts without labels"). ``--restarts N`` therefore trains N initialisations for
``--restart-epochs`` epochs each, scores each one by a label-free criterion, and trains only the
chosen one on to ``--epochs``. Nothing in the choice reads a label, so it is a choice a user with
unlabelled data can make too.

    RUN_DIR/restart<i>/   an ordinary run directory per restart, seeded seed + 1000 (i - 1): restart 1
                          is the run ``--restarts 1`` would train
    RUN_DIR/restarts.json the settings, each restart's criterion values and the choice

The criteria (CRITERIA), each read from the last screening epoch's record:

    train_elbo      the mean negative ELBO of that training epoch (lower wins)
    train_entropy   the mean entropy of p(z|x,w) over that training epoch, the consistency violation
                    (lower wins: the mixture's own assignments of the training points are confident)
    eval_elbo       the negative ELBO on the held-out split (lower wins)
    eval_entropy    the mean entropy of p(z|x,w) on the held-out split (lower wins)

The train_ criteria read the training data only; the eval_ ones read the held-out split's inputs (the
test images for MNIST), never its labels.

Every step is resumable: a restart with a checkpoint continues where it stopped, a finished screening
is not repeated, and the chosen run continues with the trainer's own exact resume. RUN_DIR is locked
for the whole run, and each restart's folder by its own trainer (gmvae_np.rundir), so a second process
that would write into either is refused.
"""
from __future__ import annotations

import json
from pathlib import Path

from .presets import Settings, SettingsError
from .rundir import RunDir, RunDirError
from .train import Trainer

__all__ = ["CRITERIA", "restart_seed", "train_with_restarts", "criterion_values"]

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


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "last.npz").is_file()


def train_with_restarts(settings: Settings, run_dir, *, resume: bool = False, **trainer_kwargs) -> dict:
    """Screen ``settings.restarts`` initialisations, keep the best by ``settings.select_by``, train it on.

    Returns the chosen run's last record, with "restart" (its index) and "restart_seed" added.
    ``trainer_kwargs`` go to every :class:`~gmvae_np.train.Trainer` (out, err, handle_signals, ...); a
    neighbour graph is kept in RUN_DIR for all the restarts, unless ``graph_dir`` names another place.
    """
    s = settings.validate()
    root = Path(run_dir)
    if trainer_kwargs.get("graph_dir") is None:
        trainer_kwargs["graph_dir"] = root
    state_path = root / "restarts.json"
    if resume and not state_path.is_file():
        raise RunDirError(f"cannot resume: {root} has no restarts.json; start a new run with --out")
    with RunDir(root).held() as holder:
        if state_path.is_file() and not resume:
            raise RunDirError(f"{root} already holds a run with restarts (restarts.json); continue it with "
                              f"--resume {root} or choose a new --out")
        return _screen_and_train(s, root, holder, resume, trainer_kwargs)


def _screen_and_train(s: Settings, root: Path, holder: RunDir, resume: bool, trainer_kwargs: dict) -> dict:
    state_path = root / "restarts.json"
    state = _read_state(state_path) if resume else {"screened": {}, "chosen": None}
    state["settings"] = s.to_dict()
    screen = min(s.restart_epochs, s.epochs)
    out = trainer_kwargs.get("out")

    def run(i: int, epochs: int) -> dict:
        d = root / f"restart{i}"
        trainer = Trainer(s.replace(seed=restart_seed(s.seed, i), epochs=epochs, restarts=1), d,
                          resume=_has_checkpoint(d), **trainer_kwargs)
        return trainer.run()

    _write_state(holder, state)
    if state["chosen"] is None:
        for i in range(1, s.restarts + 1):
            if str(i) in state["screened"]:
                continue
            print(f"-- restart {i} of {s.restarts} (seed {restart_seed(s.seed, i)}): {screen} epochs",
                  file=out, flush=True)
            record = run(i, screen)
            state["screened"][str(i)] = criterion_values(record)
            _write_state(holder, state)
        scores = {int(i): v.get(s.select_by) for i, v in state["screened"].items()}
        missing = [i for i, v in scores.items() if v is None]
        if missing:
            raise SettingsError(f"--select-by {s.select_by} needs a value the runs did not record "
                                f"(restart {missing[0]}); use --select-by train_elbo")
        state["chosen"] = min(scores, key=scores.get)
        _write_state(holder, state)
        print(f"-- restarts by {s.select_by}: " + ", ".join(f"{i}: {v:.3f}" for i, v in sorted(scores.items()))
              + f"; keeping restart {state['chosen']}", file=out, flush=True)
    chosen = int(state["chosen"])
    record = run(chosen, s.epochs)
    return {**record, "restart": chosen, "restart_seed": restart_seed(s.seed, chosen)}


def _read_state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state.get("screened"), dict):
            raise ValueError("no 'screened' table")
        return state
    except (OSError, ValueError, AttributeError) as e:
        raise RunDirError(f"{path} cannot be read ({e}); start the run again with a new --out") from None


def _write_state(holder: RunDir, state: dict) -> None:
    holder.write_json("restarts.json", state)
