"""What stops a run, and what a run saves to continue: the exceptions, and the training position in a checkpoint.

:class:`SavedState` is the part of gmvae_np.train.Trainer that writes checkpoints/last.npz (the model,
Adam's state, the random state, the position: epoch, step within the epoch, the random state the epoch's
permutation was drawn from, the epoch's running sums) and restores all of it for an exact resume.
"""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np

from .presets import SettingsError
from .rundir import RunDir, RunDirError

__all__ = ["TrainingDiverged", "TrainingInterrupted", "SavedState"]


class TrainingDiverged(RuntimeError):
    """A loss term (or a parameter) became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training after a step; the state was saved to checkpoints/last.npz."""

    def __init__(self, signum: int, run_dir, epoch: int, step: int, message: str | None = None):
        self.signum, self.run_dir, self.epoch, self.step, self.message = signum, run_dir, epoch, step, message
        name = signal.Signals(signum).name
        where = f"; checkpoint saved to {RunDir(run_dir).last}" if run_dir else ""
        super().__init__(f"{name} received: " + (message or f"stopped at epoch {epoch}, step {step}{where}"))

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)

    def __reduce__(self):
        """Rebuilt from its fields: a restart stopped in a worker process comes back to the parent whole."""
        return type(self), (self.signum, self.run_dir, self.epoch, self.step, self.message)


class SavedState:
    """The checkpoint methods of :class:`~gmvae_np.train.Trainer` (it holds every attribute they read, and
    ``blas_threads()``, the host BLAS's thread count now, recorded in each checkpoint)."""

    def _save(self, path: Path) -> None:
        self._check_parameters()
        position = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
                    "epoch_rng_state": self.epoch_rng_state, "sums": self.sums.state(),
                    "seconds": self.seconds, "best": self.best, "blas_threads": self.blas_threads()}
        self.rundir.save_checkpoint(path, model=self.model, optimizer=self.optimizer,
                                    rng_state=self.rng.get_state(),
                                    config={"settings": self.settings.to_dict(), "model": self.config.to_dict()},
                                    extra={"position": position})

    def _check_parameters(self) -> None:
        """Refuse to save non-finite parameters (one host crossing for all of them)."""
        xp = self.backend.xp
        finite = xp.stack([xp.all(xp.isfinite(p.data)) for p in self.model.parameters()])
        ok = self.backend.to_numpy(finite)
        if not bool(np.all(ok)):
            names = [n for (n, _), good in zip(self.model.named_parameters(), ok) if not good]
            # the last step taken: the end of the previous epoch when the position is at an epoch's start
            epoch, step = ((self.epoch - 1, self.steps_per_epoch) if self.step_in_epoch == 0
                           else (self.epoch, self.step_in_epoch))
            raise TrainingDiverged(
                f"training stopped: parameter(s) {', '.join(names[:3])} became non-finite by epoch {epoch}, "
                f"step {step}; {self._kept()}")

    def _kept(self) -> str:
        if self.rundir is not None and self.rundir.last.is_file():
            return f"the last good checkpoint is kept in {self.rundir.last}; lower --lr and start a new run"
        return "lower the learning rate (lr) and train again"   # in memory: the estimator, the library

    def _restore(self) -> None:
        from .checkpoint import load_checkpoint, restore

        last = self.rundir.last
        ckpt = load_checkpoint(last)
        restore(ckpt, self.model, self.optimizer)  # refuses a checkpoint of another model
        pos = ckpt.extra.get("position") if isinstance(ckpt.extra, dict) else None
        if not isinstance(pos, dict) or ckpt.rng_state is None:
            raise RunDirError(f"cannot resume: {last} is a model checkpoint without a training position "
                              f"(not written by the trainer); start a new run with --out")
        self.epoch, self.step_in_epoch, self.step = int(pos["epoch"]), int(pos["step_in_epoch"]), int(pos["step"])
        self.seconds, self.best = float(pos["seconds"]), pos["best"]
        self.sums.load(pos["sums"], self.config.K)
        self.epoch_rng_state = pos["epoch_rng_state"]
        rng = self.rng
        if self.epoch_rng_state is not None:  # mid-epoch: draw the epoch's permutation again
            rng.set_state(self.epoch_rng_state)
            self.perm = rng.permutation(self.n_train)
        rng.set_state(ckpt.rng_state)
        then, now = pos.get("blas_threads"), self.blas_threads()
        if self.threads_note and then is not None and now is not None and then != now and self.backend.name != "cupy":
            print(f"note: {self.run_dir} was trained with {then} BLAS thread(s) and resumes with {now}; the "
                  f"result will not be bit-identical to an uninterrupted run (OPENBLAS_NUM_THREADS={then} "
                  f"restores that)", file=self.err, flush=True)
        done = self.epoch - 1
        if self.settings.epochs < done:
            raise SettingsError(f"--epochs {self.settings.epochs} is fewer than the {done} epochs already trained in "
                                f"{self.run_dir}; give --epochs {done} or more")
