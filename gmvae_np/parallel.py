"""Independent trainings in parallel, through joblib: the seeds of a series, restarts, an estimator's n_init.

    from gmvae_np.parallel import run_tasks
    results = run_tasks(train_one, [(settings, 1), (settings, 2)], n_jobs=2)

``run_tasks(fn, args_list, n_jobs)`` calls ``fn(*args)`` for every ``args`` in ``args_list`` through
``joblib.Parallel`` and returns the results in the order of ``args_list``, whatever order they finish in,
so whatever consumes them (a summary table, the choice of the best restart) does not depend on the number
of workers. ``fn`` must be a module-level function, and its arguments and result picklable.

Where the tasks run is joblib's choice: ``n_jobs`` loky worker processes on this machine by default, or
whatever backend the caller set with ``joblib.parallel_config`` -- ``backend="dask"`` sends them to a
Dask cluster (docs/experiments.md, "Scaling out"). Inside :func:`cluster` (the command line's ``--dask``)
they go to the cluster as Dask futures, so that a task lost with its workers ends the call
(:class:`WorkerLost`) instead of leaving it waiting. Ctrl-C on this machine does not reach a cluster's
workers: the seeds they train finish their run. ``n_jobs=None`` follows that context (one, in this
process, when there is none), as scikit-learn's estimators do.

In every worker, a task computes with one BLAS thread (threadpoolctl): the workers share the cores, and a
matrix product rounds the same way in every worker whatever the machine, so a result does not depend on
which worker computed it.

An exception raised by a task is raised again here, for the first failing task in the order of
``args_list``, once every task has ended: one task's failure never stops the others half-way.

Signals (gmvae_np.stops owns the handler). A terminal's Ctrl-C reaches this process and every local
worker. In a worker, the handler defers every signal for the worker's life: a task that trains (a
Trainer with ``handle_signals``) saves a checkpoint and stops; between tasks the signal is recorded, and
a task that starts after it sees :func:`stop_requested` and returns at once. This process defers
SIGINT and SIGTERM while the tasks run (SIGTERM, which reaches it alone, is passed on to its worker
processes), waits for every task to return, and raises :class:`Interrupted`, which carries their results
and the signal. A second Ctrl-C raises :class:`~gmvae_np.stops.StopNow` at once. On a Dask cluster this
process does not wait: the signal, which does not reach the cluster's workers, raises :class:`Interrupted`
at once with the results of the tasks that had finished; when the client closes, the tasks not begun are
cancelled and those under way train on to their end.
"""
from __future__ import annotations

import contextlib
import os
import uuid

from . import stops

__all__ = ["run_tasks", "resolve_jobs", "stop_requested", "Interrupted", "WorkerLost", "ClusterError", "cluster",
           "blas_threads"]

_call = None          # in a worker: the id of the run_tasks call whose task it ran last
_client = None        # in this process, inside cluster(): the Dask client the tasks go to


class Interrupted(KeyboardInterrupt):
    """A signal stopped :func:`run_tasks`; ``results`` holds each task's result (None if it raised or had
    not finished), ``signum`` the signal; ``on_cluster``: the tasks ran on a Dask cluster, whose workers the
    signal did not reach (those under way train on to their end; those not begun are cancelled)."""

    def __init__(self, results: list, signum: int, on_cluster: bool = False):
        super().__init__("interrupted")
        self.results, self.signum, self.on_cluster = results, signum, on_cluster


class WorkerLost(RuntimeError):
    """A task's worker died more often than the cluster retries a task (Dask's KilledWorker)."""


class ClusterError(ValueError):
    """A Dask cluster that cannot be used: distributed not installed, or no scheduler at the address."""


@contextlib.contextmanager
def cluster(address: str):
    """Inside the block, run_tasks sends its tasks to the Dask scheduler at ``address`` (tcp://HOST:8786):
    as the client's futures (joblib's Dask backend never reports a task whose workers all died), and to
    joblib's Dask backend for code that calls joblib itself."""
    try:
        import joblib
        from distributed import Client
    except ImportError:
        raise ClusterError("--dask needs Dask's distributed package: pip install 'gmvae-np[dask]'") from None
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"cannot reach a Dask scheduler at {address} ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}); start one with `dask scheduler` and "
                           f"give its address, e.g. --dask tcp://HOST:8786") from None
    global _client
    _client = client
    try:
        with joblib.parallel_config(backend="dask"):
            yield client
    finally:
        _client = None
        client.close()


def _killed_worker(e: Exception) -> bool:
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:
        return False
    return isinstance(e, KilledWorker)


def blas_threads() -> int | None:
    """The number of threads the host BLAS (OpenBLAS, MKL, ...) uses now; None when it cannot be told.

    Read through threadpoolctl. Recorded in each checkpoint, because a matrix product split over another
    number of threads may round differently: resume is bit-identical only when this number is the same
    as when the run was interrupted.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def resolve_jobs(n_jobs, n_tasks: int) -> int:
    """The number of local workers for ``n_jobs`` (scikit-learn's convention) and ``n_tasks`` tasks.

    None or 1 means one; a positive n means n; -1 means one per CPU core, -2 all but one, and so on.
    Never more than the number of tasks, never fewer than one.
    """
    if n_jobs is None:
        n = 1
    elif isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive whole number or a negative one (-1 = all cores); "
                         f"got {n_jobs!r}")
    elif n_jobs < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    else:
        n = n_jobs
    return max(1, min(n, n_tasks))


def _sequential(n_jobs) -> bool:
    """Whether joblib would run the tasks here, one after the other: one job, and no backend but the default."""
    from joblib.parallel import get_active_backend

    backend, context_jobs = get_active_backend()   # the innermost joblib.parallel_config, or the defaults
    jobs = n_jobs if n_jobs is not None else context_jobs
    name = type(backend).__name__
    return name == "SequentialBackend" or (name == "LokyBackend" and jobs in (None, 1))


def stop_requested() -> bool:
    """In a worker: True once a Ctrl-C (or SIGTERM) reached it during the current call's tasks."""
    return stops.requested() is not None


def _task(fn, args: tuple, call: str, parent: int):
    """Runs in the worker: one BLAS thread, signals recorded between tasks; the task's exception returned."""
    global _call
    remote = os.getpid() != parent   # False for joblib's threads and sequential backends
    if remote:
        if _call != call:
            _call = call
            stops.clear()    # a stop belongs to the call whose tasks it stopped
        stops.in_worker()
    try:
        with _one_blas_thread() if remote else contextlib.nullcontext():
            return "ok", fn(*args)
    except Exception as e:
        return "error", e


@contextlib.contextmanager
def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_tasks(fn, args_list, n_jobs=None) -> list:
    """``[fn(*args) for args in args_list]`` computed through joblib, in that order (module docstring).

    With one job and no joblib context the tasks run here, one after the other, as a plain loop would:
    an exception (or a Ctrl-C) stops the loop at once.
    """
    import joblib
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    args_list = [tuple(a) for a in args_list]
    if n_jobs is not None:
        resolve_jobs(n_jobs, 1)   # refuses 0, True, 1.5
    if _sequential(n_jobs):
        return [fn(*args) for args in args_list]
    jobs = n_jobs if n_jobs is None or n_jobs < 0 else resolve_jobs(n_jobs, len(args_list))
    call = uuid.uuid4().hex
    try:
        if _client is not None:   # --dask: the client's own futures, which report a lost worker
            futures = [_client.submit(_task, fn, args, call, os.getpid(), pure=False) for args in args_list]
            try:
                outcomes = _client.gather(futures)
            except stops.StopNow as e:   # the workers never see the signal: keep what has finished
                raise Interrupted([f.result()[1] if f.status == "finished" and f.result()[0] == "ok" else None
                                   for f in futures], e.signum, on_cluster=True) from None
        else:
            with stops.deferred():   # wait for the workers, which save and stop; then raise Interrupted
                try:
                    outcomes = joblib.Parallel(n_jobs=jobs)(joblib.delayed(_task)(fn, args, call, os.getpid())
                                                            for args in args_list)
                except TerminatedWorkerError:
                    if stops.requested() is None:
                        raise
                    # a Ctrl-C reached a worker as it started, before its handler: it died, and joblib
                    # ended the others (each run keeps its last checkpoint, written atomically)
                    raise Interrupted([None] * len(args_list), stops.requested()) from None
                if stops.requested() is not None:
                    raise Interrupted([value if kind == "ok" else None for kind, value in outcomes],
                                      stops.requested())
    except Exception as e:
        if _killed_worker(e):
            raise WorkerLost(f"a worker died while running a task, as many times as the cluster retries one "
                             f"({type(e).__name__})") from None
        raise
    results = [value if kind == "ok" else None for kind, value in outcomes]
    for kind, value in outcomes:
        if kind == "error":
            raise value
    return results
