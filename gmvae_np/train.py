"""Training a GMVAE: one step (:func:`train_step`), an evaluation (:func:`evaluate`), and the loop around them.

    from gmvae_np.presets import preset
    from gmvae_np.train import train
    record = train(preset("spiral", epochs=50), "runs/spiral-try")   # the last epoch's metrics

One run, step by step (:class:`Trainer`):

1. The data set is loaded on the host (gmvae_np.data), flattened for fully connected models, and copied
   to the device ONCE: every later batch is a gather on the device.
2. Each epoch draws a permutation of the training rows on the device (``Trainer.rng.permutation``) and
   walks it in slices of ``batch_size``. The last partial batch is DROPPED: every step sees exactly
   ``batch_size`` rows, so the loss scale and the BatchNorm statistics are alike at every step (a new
   permutation each epoch leaves no row out for long). A batch larger than the data is an error.
3. A step is :func:`train_step`: ``model.loss(y)`` -> ``objective.backward()`` -> ``Adam.step()``, with
   the objective's weights of that step when they are annealed (gmvae_np.schedule).
   Nothing crosses to the host inside a step: the loss terms go into running sums ON THE DEVICE
   (gmvae_np.progress), read every ``log_every`` steps and at the end of the epoch. A non-finite value
   stops training with one line naming the epoch, the step and the term (:class:`TrainingDiverged`).
4. After every ``eval_every`` epochs (and after the last) :func:`evaluate` scores the model in eval mode,
   in batches, on the held-out split (``Dataset.x_eval``: the test split, or the training rows when there
   is none): the negative ELBO and its terms and, when labels are known, the clustering scores of
   gmvae_np.metrics. Its noise comes from a saved-and-restored random state (:func:`evaluation`), so how
   often one evaluates never changes the trained parameters.

What a run writes, the lock that keeps a second process out, and what an I/O fault does: gmvae_np.rundir.

Interruption and resume: with ``handle_signals``, SIGINT (Ctrl-C) and SIGTERM are recorded for the whole
run (gmvae_np.stops owns the handler); the current step finishes -- or, when the signal came during an
epoch's last step, its evaluation, its checkpoint or its figures, the epoch does -- then
checkpoints/last.npz is written atomically with the model, Adam's state, the random state, the position
(epoch, step within the epoch, and the random state from which the epoch's permutation was drawn) and
the epoch's running sums, and :class:`TrainingInterrupted` is raised (the command line exits with 130 or
143). ``Trainer(..., resume=True)`` restores all of it, so on NumPy, with the same number of BLAS threads
(:func:`blas_threads`, recorded in each checkpoint), the resumed run ends with exactly the parameters and
metrics.jsonl of a run that was never interrupted. A second Ctrl-C stops at once.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np

import autograd_lite as ag

from .batches import epoch_batches, steps_per_epoch
from .data import Dataset
from .elbo import TERMS
from .experiment import load_data, model_config, shape_for
from .metrics import assignment_summary, classes_owned, clustering_report
from .neighbours import graph_key_of, sample_neighbours
from .parallel import blas_threads
from .presets import Settings, SettingsError
from .pretrain import pretrain_and_initialise, report_line
from .progress import TRAIN_KEYS, RunningSums, first_nonfinite, per_sample_terms, progress_line, summary_line
from .rundir import METRICS, TIMING, RunDir, RunDirError, read_metrics, read_settings
from .schedule import annealed_weights
from .snapshot import snapshot_arrays
from . import stops
from .trainstate import SavedState, TrainingDiverged, TrainingInterrupted

__all__ = ["train_step", "evaluation", "evaluate", "train", "Trainer", "TrainingInterrupted",
           "TrainingDiverged", "RunDirError", "load_data", "model_config", "read_settings", "blas_threads",
           "TRAIN_KEYS"]


def train_step(model, optimizer, batch, weights=None, neighbours=None):
    """One training step on one batch (and, with the neighbour term, one neighbour of each of its rows);
    returns the LossResult (its terms feed the running sums)."""
    result = model.loss(batch, weights=weights, neighbours=neighbours)   # forward: networks, terms, objective
    optimizer.zero_grad()              # forget the previous step's gradients
    result.objective.backward()        # backward: d objective / d parameter, into every .grad
    optimizer.step()                   # Adam moves each parameter against its gradient
    return result


@contextlib.contextmanager
def evaluation(model, rng):
    """Eval mode and no graph inside; train mode and ``rng``'s state put back after, so that evaluating
    (however often) never moves the training stream."""
    state = rng.get_state()
    model.eval()
    try:
        with ag.no_grad():
            yield
    finally:
        model.train()
        rng.set_state(state)


def evaluate(model, batches) -> tuple[dict, np.ndarray]:
    """Per-sample means of neg_elbo, the ELBO terms and kl_gap over ``batches``, with max_q and
    batch_entropy, and the cluster probabilities (n, K) on the host. Call it inside ``evaluation(model, rng)``."""
    if model.training:
        raise ValueError("evaluate(model, batches) needs eval mode: call it inside `with evaluation(model, rng):`")
    b = model.backend
    xp = b.xp
    names = ("neg_elbo", *TERMS, "kl_gap")
    sums, probas, n = None, [], 0
    for y in batches:
        result = model.loss(y)
        terms = per_sample_terms(result)
        v = xp.stack([xp.sum(xp.astype(terms[name].data, xp.float64)) for name in names[:-1]]
                     + [xp.astype(result.diagnostics["kl_gap"].data, xp.float64) * float(y.shape[0])])
        sums = v if sums is None else sums + v
        probas.append(model.predict_proba(y).data)
        n += int(y.shape[0])
    proba = b.to_numpy(xp.concat(probas, axis=0))
    host = b.to_numpy(sums)
    ev = {name: float(host[i]) / n for i, name in enumerate(names)}
    ev.update(assignment_summary(proba))
    return ev, proba


# ------------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------------
class Trainer(SavedState):
    """One training run of a GMVAE (see the module docstring for what it does; gmvae_np.rundir for what it writes).

    settings        a validated :class:`~gmvae_np.presets.Settings`
    run_dir         the run directory, or None to keep everything in memory (no files, no figures)
    resume          continue the run in ``run_dir`` from checkpoints/last.npz
    dataset         a Dataset to use instead of loading the one the settings name
    out, err        streams for the per-epoch summary lines and the live progress line / warnings
    handle_signals  turn SIGINT/SIGTERM into a checkpoint and a clean stop (the command line sets it;
                    gmvae_np.stops owns the handler)
    verbose         print the per-epoch summary lines
    graph_dir       where the neighbour graph (--neighbours) is looked up and kept: by default the run
                    directory; a run with restarts, or a series, gives its root so that all share one
    seeded_eval     draw each evaluation's noise from a generator seeded with the run's seed, not from the
                    training stream (the estimator's, so that its criterion is the ELBO its ``score`` computes)
    threads_note    on resume, say so when the BLAS thread count differs from the checkpoint's (False: a
                    restart screened in a worker on one thread and trained on here, in the same command)

    A Trainer without a run directory pickles (its streams are left behind): a restart screened in a worker
    process comes back whole, and :meth:`train_on` trains it on.

    The run directory's lock is taken here and released when :meth:`run` returns or raises.
    """

    def __init__(self, settings: Settings, run_dir=None, *, resume: bool = False, dataset: Dataset | None = None,
                 out=None, err=None, handle_signals: bool = False, verbose: bool = True, graph_dir=None,
                 seeded_eval: bool = False, threads_note: bool = True):
        self.settings = settings.validate()
        self.seeded_eval = seeded_eval
        self.threads_note = threads_note
        self.graph_dir = Path(graph_dir) if graph_dir is not None else None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = bool(resume)
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.handle_signals = handle_signals
        self.verbose = verbose
        self.history: list[dict] = []
        if self.resume and self.run_dir is None:
            raise RunDirError("resume needs a run directory")
        self.rundir = RunDir(self.run_dir) if self.run_dir is not None else None
        if self.rundir is not None:
            self.rundir.open_for_resume() if self.resume else self.rundir.create()
        try:
            self._setup(dataset)
        except BaseException:
            if self.rundir is not None:
                self.rundir.abandon()   # the lock, and the folders create() made, while still empty
            raise

    def _setup(self, dataset) -> None:
        s = self.settings
        self.backend = ag.get_backend(s.backend)
        data = shape_for(s, dataset) if dataset is not None else load_data(s)
        self.data = data
        self.n_train = int(data.x_train.shape[0])
        if s.batch_size > self.n_train:
            raise SettingsError(f"--batch-size {s.batch_size} is larger than the {self.n_train} training rows "
                                f"of {data.name}; use --batch-size {self.n_train} or less")
        self.steps_per_epoch = steps_per_epoch(self.n_train, s.batch_size)
        self.config = model_config(s, data)
        self.likelihood = self.config.likelihood

        from .model import GMVAE
        from .optim import Adam

        b = self.backend
        self.rng = ag.Generator(b, s.seed)  # initial weights, then the training stream
        self.model = GMVAE(self.config, backend=b, generator=self.rng)
        self.optimizer = Adam(self.model.parameters(), lr=s.lr)
        # the data crosses to the device once; batches are gathers on the device
        self.x_train = b.asarray(data.x_train, dtype=s.dtype)
        self.x_eval = b.asarray(data.x_eval, dtype=s.dtype)
        self.y_eval = data.y_eval
        self.sums = RunningSums(b)

        # position: the epoch being trained (1-based), steps done in it, steps done in all
        self.epoch, self.step_in_epoch, self.step = 1, 0, 0
        self.epoch_rng_state = None  # the random state the current epoch's permutation was drawn from
        self.perm = None
        self.seconds = 0.0  # training time so far, across resumes
        self.best = None  # {"key", "value", "epoch"}
        self.pretrained = None  # the start from pretrained codes (gmvae_np.pretrain), reported by _run
        self.graph = None   # the neighbour graph's summary (its arrays go to the device in _setup_graph)
        self.neighbour_graph = None   # the graph itself, on the host (gmvae_np.neighbours.NeighbourGraph)
        if s.neighbours:
            self._setup_graph(data)
        if self.resume:
            self._restore()
        elif s.pretrain_epochs:
            try:
                self.pretrained = pretrain_and_initialise(self.model, self.x_train, s, self.rng, x_eval=self.x_eval,
                                                          y_eval=self.y_eval, graph=self.neighbour_graph,
                                                          image_shape=data.image_shape)
            except FloatingPointError as e:
                advice = ("lower --lr and start a new run" if self.rundir is not None
                          else "lower the learning rate (lr) and train again")   # the estimator, the library
                raise TrainingDiverged(f"training stopped: {e}; {advice}") from None
            self.seconds += self.pretrained["seconds"]

    def _setup_graph(self, data) -> None:
        """The neighbour graph of the training rows: read from graph_dir (or the run directory) when it is
        there, else built and kept there (gmvae_np.neighbours); its arrays go to the device once."""
        from .neighbours import GraphError, graph_for

        s, b = self.settings, self.backend
        if s.neighbours >= self.n_train:
            raise SettingsError(f"--neighbours {s.neighbours} must be fewer than the {self.n_train} training rows "
                                f"of {data.name}; use --neighbours {min(10, self.n_train - 1)}")
        home = self.graph_dir if self.graph_dir is not None else self.run_dir
        store = RunDir(home) if home is not None else None
        try:
            graph, built = graph_for(data.x_train, s.neighbours, s.neighbour_space, s.neighbour_dims,
                                     s.mutual_neighbours, store=store, backend=b, labels=data.y_train,
                                     err=self.err, image_shape=data.image_shape)
        except GraphError as e:
            raise SettingsError(str(e)) from None
        if built:
            self.seconds += graph.seconds
        self.graph = {**graph.settings(), "edges": graph.edges, "seconds": graph.seconds, "built": built,
                      "file": str(store.neighbours_path(graph_key_of(graph))) if store is not None else None,
                      "label_agreement": None if data.y_train is None else graph.agreement(data.y_train),
                      "line": graph.describe(data.y_train)}
        self.neighbour_graph = graph
        self.graph_indices = b.asarray(graph.indices, dtype="int64")
        self.graph_counts = b.asarray(graph.counts, dtype="int64")

    @staticmethod
    def blas_threads() -> int | None:
        """The host BLAS's thread count now (gmvae_np.parallel.blas_threads), which checkpoints record."""
        return blas_threads()

    def __getstate__(self) -> dict:
        if self.rundir is not None:
            raise TypeError("a Trainer with a run directory does not pickle; its run continues with resume=True")
        return {**self.__dict__, "out": None, "err": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, out=sys.stdout, err=sys.stderr)

    # -- training ------------------------------------------------------------------------------------
    def train_on(self, epochs: int) -> dict:
        """Go on training this (in-memory) run to ``epochs`` in all; the last epoch's record."""
        self.settings = self.settings.replace(epochs=epochs)
        return self.run()

    def run(self) -> dict:
        """Train until ``settings.epochs``; return the last epoch's record (as in metrics.jsonl).

        With ``handle_signals``, SIGINT and SIGTERM are deferred for the whole run (gmvae_np.stops): one
        received at any moment -- a step, an evaluation, a checkpoint, the figures -- stops the run at the
        next safe point, after a checkpoint, with :class:`TrainingInterrupted`."""
        with stops.deferred() if self.handle_signals else contextlib.nullcontext():
            try:
                if self.rundir is not None:
                    self.rundir.lock()   # held since __init__; taken again by a second run()
                return self._run()
            finally:
                if self.rundir is not None:
                    self.rundir.unlock()

    def _run(self) -> dict:
        s = self.settings
        if self.rundir is not None:
            self.rundir.write_config(self.settings, self.data, self.backend, self.config, self.steps_per_epoch,
                                     graph=self.graph)
            self.rundir.start_logs(self.epoch if self.resume else None)
        if self.verbose and not self.resume:
            about = self.data.summary()   # starts with the data set's name; add the experiment's if other
            about = about if about.startswith(f"{s.experiment}:") else f"{s.experiment}: {about}"
            print(f"{about}; {self.model.num_parameters():,} parameters; "
                  f"backend {self.backend.name} ({self.backend.device}); "
                  f"{self.steps_per_epoch} steps of {s.batch_size} per epoch", file=self.out, flush=True)
        elif self.verbose and self.epoch > s.epochs:
            print(f"{self.run_dir} is complete ({s.epochs} epochs); nothing to do (give a larger --epochs to "
                  f"train on)", file=self.out, flush=True)
        elif self.verbose:
            print(f"resuming {self.run_dir} at epoch {self.epoch}, step {self.step_in_epoch} of "
                  f"{self.steps_per_epoch}", file=self.out, flush=True)
        if self.graph is not None and self.verbose and not (self.resume and self.epoch > s.epochs):
            print(self.graph["line"] + ("" if self.graph["built"] else f" (read from {self.graph['file']})"),
                  file=self.out, flush=True)
        if self.pretrained is not None and self.rundir is not None:
            self.rundir.write_json("pretrain.json", self.pretrained)
        if self.pretrained is not None and self.verbose:
            print(report_line(self.pretrained), file=self.out, flush=True)
        done = self.history or (read_metrics(self.run_dir / METRICS) if self.run_dir else [])
        record = done[-1] if done else {}
        while self.epoch <= s.epochs:
            record = self._train_epoch()
            self._stop_after_epoch()
        self._stop_after_epoch()   # a run that was complete already: a signal during its start
        return record

    def _train_epoch(self) -> dict:
        s, b = self.settings, self.backend
        xp = b.xp
        B = s.batch_size
        if self.perm is None:
            self.epoch_rng_state = self.rng.get_state()
            self.perm = self.rng.permutation(self.n_train)
            self.step_in_epoch = 0
            self.sums.reset()
        self.model.train()
        started = time.perf_counter()
        first_step = self.step_in_epoch
        tty = self.verbose and hasattr(self.err, "isatty") and self.err.isatty()
        for i, idx, y in epoch_batches(self.x_train, self.perm, B, b, start=first_step):
            if self._stop_requested():
                self._interrupt(started)
            neighbours = None
            if self.graph is not None:   # one neighbour of each row, drawn after the batch's rows
                near = sample_neighbours(self.graph_indices, self.graph_counts, idx, self.rng)
                neighbours = ag.tensor(xp.take(self.x_train, near, axis=0), backend=b)
            result = train_step(self.model, self.optimizer, y, annealed_weights(s, self.step, self.steps_per_epoch),
                                neighbours=neighbours)
            self.sums.add(result, B)
            self.step_in_epoch, self.step = i + 1, self.step + 1
            if s.log_every and (i + 1) % s.log_every == 0 and i + 1 < self.steps_per_epoch:
                values = self._read_sums()
                if tty:
                    self.err.write("\r\033[K" + progress_line(
                        values, self.epoch, s.epochs, i + 1, self.steps_per_epoch, i + 1 - first_step,
                        time.perf_counter() - started))
                    self.err.flush()
        train = self._read_sums()
        diagnostics = self.sums.read_diagnostics()
        if tty:
            self.err.write("\r\033[K")
            self.err.flush()
        train_seconds = time.perf_counter() - started

        epoch = self.epoch
        record = {"epoch": epoch, "step": self.step, "train": train, "diagnostics": diagnostics}
        eval_started = time.perf_counter()
        if epoch % s.eval_every == 0 or epoch == s.epochs:
            record["eval"] = self._evaluate()
        eval_seconds = time.perf_counter() - eval_started
        self.seconds += train_seconds + eval_seconds
        self.history.append(record)

        # the epoch is complete: the position moves to the start of the next one
        self.epoch, self.step_in_epoch, self.perm, self.epoch_rng_state = epoch + 1, 0, None, None
        self.sums.reset()
        if self.rundir is not None:
            self.rundir.append(METRICS, record)
            steps = self.steps_per_epoch - first_step
            self.rundir.append(TIMING, {
                "epoch": epoch, "step": self.step, "seconds": round(self.seconds, 3),
                "epoch_seconds": round(train_seconds + eval_seconds, 3), "eval_seconds": round(eval_seconds, 3),
                "steps_per_second": round(steps / train_seconds, 2) if train_seconds > 0 else None})
            if "eval" in record:
                self._update_best(record["eval"], epoch)
            self._save(self.rundir.last)
        if self.verbose:
            print(summary_line(record, s.epochs, train_seconds + eval_seconds), file=self.out, flush=True)
        if self.rundir is not None and s.plots and (
                (s.plot_every and epoch % s.plot_every == 0) or epoch == s.epochs):
            self.draw()
        return record

    def _read_sums(self) -> dict:
        """Cross the running sums to the host; stop on a non-finite value."""
        values = self.sums.read()
        bad = first_nonfinite(values)
        if bad is not None:
            others = [n for n in TRAIN_KEYS if n != bad and not math.isfinite(values[n])]
            also = f" (also {', '.join(others)})" if others else ""
            every = f"read every {self.settings.log_every} steps" if self.settings.log_every else "read per epoch"
            raise TrainingDiverged(
                f"training stopped: the ELBO term {bad!r} became {values[bad]} at epoch {self.epoch}, step "
                f"{self.step_in_epoch} of {self.steps_per_epoch} ({every}){also}; {self._kept()}")
        return values

    def _stop_requested(self) -> bool:
        return self.handle_signals and stops.requested() is not None

    def _stop_after_epoch(self) -> None:
        """A signal that came during an epoch's last step, evaluation, checkpoint or figures: the epoch's
        checkpoint is written (a run with a directory saves at the end of every epoch), so stop here."""
        if not self._stop_requested():
            return
        done = self.epoch - 1
        where = f"; checkpoint saved to {self.rundir.last}" if self.rundir is not None else ""
        raise TrainingInterrupted(stops.requested(), self.run_dir, self.epoch, 0,
                                  message=f"stopped after epoch {done}{where}")

    def _interrupt(self, started: float) -> None:
        signum = stops.requested()
        self._read_sums()  # never checkpoint a diverged state
        self.seconds += time.perf_counter() - started
        if self.rundir is not None:
            self._save(self.rundir.last)
        raise TrainingInterrupted(signum, self.run_dir, self.epoch, self.step_in_epoch)

    def _update_best(self, ev: dict, epoch: int) -> None:
        """best.npz: the lowest held-out negative ELBO so far. It reads no label, so it is a choice the
        user of unlabelled data can make too (an epoch picked by test accuracy would not be)."""
        key = "neg_elbo"
        value = ev[key]
        stale = self.best is not None and self.best.get("key") != key   # a run begun when best read labels
        if self.best is None or stale or value < self.best["value"]:
            self.best = {"key": key, "value": value, "epoch": epoch}
            self._save(self.rundir.best)

    # -- evaluation ----------------------------------------------------------------------------------
    def _batches(self, x, n=None):
        eb = self.settings.eval_batch
        n = int(x.shape[0]) if n is None else n
        for lo in range(0, n, eb):
            yield ag.tensor(x[lo:min(lo + eb, n), ...], backend=self.backend)

    def _evaluate(self) -> dict:
        """Eval-mode ELBO terms and clustering scores on the held-out split; the snapshot for the figures."""
        with evaluation(self.model, self.rng):
            if self.seeded_eval:
                self.rng.set_state(ag.Generator(self.backend, self.settings.seed).get_state())
            ev, proba = evaluate(self.model, self._batches(self.x_eval))
            bad = [k for k, v in ev.items() if not math.isfinite(v)]
            if bad or not np.all(np.isfinite(proba)):
                what = f"the ELBO term {bad[0]!r}" if bad else "the cluster probabilities"
                raise TrainingDiverged(f"training stopped: {what} became non-finite in the evaluation after "
                                       f"epoch {self.epoch}; {self._kept()}")
            if self.y_eval is not None:
                ev.update(clustering_report(proba, self.y_eval))
                ev["classes_owned"] = classes_owned(np.argmax(proba, axis=1), self.y_eval)
                ev["n_classes"] = int(np.unique(self.y_eval).size)
            if self.rundir is not None:
                self.rundir.write_snapshot(snapshot_arrays(self.model, self.data, lambda n: self._batches(
                    self.x_eval, n), proba, self.epoch, self.y_eval, self.rng))
        return ev

    # -- figures -------------------------------------------------------------------------------------
    def draw(self) -> list:
        """Draw the run's figures (gmvae_np.plots); a failure prints one warning and training goes on."""
        try:
            from .plots import draw_run
            return draw_run(self.run_dir)
        except Exception as e:  # figures are a convenience: never let them stop a run
            first = str(e).splitlines()[0] if str(e) else ""
            print(f"warning: figures not drawn ({type(e).__name__}: {first}); training goes on",
                  file=self.err, flush=True)
            return []


def train(settings: Settings, run_dir=None, resume: bool = False, **kwargs) -> dict:
    """Run training (see :class:`Trainer` for the keyword arguments); return the last epoch's record."""
    return Trainer(settings, run_dir, resume=resume, **kwargs).run()
