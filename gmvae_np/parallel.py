"""Independent trainings in parallel processes: the seeds of a series, the restarts of an estimator.

    from gmvae_np.parallel import run_in_processes
    results = run_in_processes(train_one, [(settings, 1), (settings, 2)], n_jobs=2)

``run_in_processes(fn, args_list, n_jobs)`` calls ``fn(*args)`` for every ``args`` in ``args_list`` in up to
``n_jobs`` worker processes and returns the results in the order of ``args_list``, whatever order they
finish in, so whatever consumes them (a summary table, the choice of the best restart) does not depend on
the number of workers. ``fn`` must be a module-level function, and its arguments and result picklable.

Each worker is a fresh interpreter (the ``spawn`` start method: no state copied from the parent, the same
on every platform) that uses one BLAS thread: the workers share the cores, and a matrix product rounds the
same way in every worker whatever the machine, so a result does not depend on which worker computed it.

Ctrl-C. A terminal's Ctrl-C reaches the parent and every worker. Workers ignore SIGINT unless the task has
a handler of its own (a Trainer with ``handle_signals`` has one); the parent, on KeyboardInterrupt, cancels
the tasks not yet started and then either

* ``graceful=True``: sends SIGTERM once to every worker and waits for the running tasks to return (a Trainer
  saves a checkpoint and stops; a task that has not started training yet, or that was already queued to
  a worker, sees :func:`stop_requested` and returns at once), or
* ``graceful=False``: ends the workers at once,

and raises :class:`Interrupted`, a KeyboardInterrupt that carries the results of the tasks that finished
(None for the others). SIGTERM to the parent (``kill PID``) is handled as Ctrl-C while the tasks run, and a
worker whose parent has gone (killed with SIGKILL) ends itself within a second instead of training on. An exception raised by a task is raised again in the parent, for the first failing
task in the order of ``args_list``, after the tasks still running have finished.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["run_in_processes", "resolve_jobs", "stop_requested", "Interrupted", "BLAS_ENV", "blas_threads"]

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""The environment variables that fix a BLAS library's thread count when it loads."""

_stop_event = None       # in a worker: set by the parent when Ctrl-C asks the workers to stop
_stop_signal = None      # in a worker: SIGTERM, once received outside a task's own handler
_blas_limit = None       # in a worker: the threadpoolctl limit, kept alive for the worker's lifetime


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_in_processes`; ``results`` holds each task's result, None if it did not finish."""

    def __init__(self, results: list):
        super().__init__("interrupted")
        self.results = results


def blas_threads() -> int | None:
    """The number of threads the host BLAS (OpenBLAS, MKL, ...) uses now; None when it cannot be told.

    Read through the optional threadpoolctl. Recorded in each checkpoint, because a matrix product split
    over another number of threads may round differently: resume is bit-identical only when this number
    is the same as when the run was interrupted.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def resolve_jobs(n_jobs, n_tasks: int) -> int:
    """The number of worker processes for ``n_jobs`` (scikit-learn's convention) and ``n_tasks`` tasks.

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


def stop_requested() -> bool:
    """In a worker: True once the parent has asked the workers to stop (a task checks it between steps)."""
    return _stop_signal is not None or (_stop_event is not None and _stop_event.is_set())


def _record_stop(signum, frame):
    global _stop_signal
    _stop_signal = signum


def _init_worker(stop_event) -> None:
    """Runs first in every worker: one BLAS thread, SIGINT ignored, SIGTERM recorded."""
    global _blas_limit, _stop_event
    _stop_event = stop_event
    for name in BLAS_ENV:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        _blas_limit = threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # the environment variables above already took effect when NumPy loaded
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _record_stop)
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()


def _end_with_parent(parent: int) -> None:
    """In a worker: exit once the parent is gone (its pid is no longer our parent's)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """In the parent's main thread: SIGTERM stops the workers as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _one_blas_thread_env():
    """Set the BLAS variables while workers start, so NumPy loads in them with one thread."""
    saved = {name: os.environ.get(name) for name in BLAS_ENV}
    os.environ.update({name: "1" for name in BLAS_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _signal_workers(executor, signum) -> None:
    # ProcessPoolExecutor keeps its processes in a private dict; if a future Python renames it, the
    # workers still stop: they get the terminal's Ctrl-C or end with the pool.
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            if process.is_alive():
                os.kill(process.pid, signum)
        except (OSError, ValueError):
            pass


def run_in_processes(fn, args_list, n_jobs=None, *, graceful: bool = False) -> list:
    """``[fn(*args) for args in args_list]`` computed in up to ``n_jobs`` worker processes, in that order.

    See the module docstring for the workers' BLAS threads and for Ctrl-C (``graceful``).
    """
    args_list = [tuple(a) for a in args_list]
    if not args_list:
        return []
    with _sigterm_as_interrupt():
        return _run(fn, args_list, resolve_jobs(n_jobs, len(args_list)), graceful)


def _run(fn, args_list: list, workers: int, graceful: bool) -> list:
    results = [None] * len(args_list)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                   initargs=(stop,))
    futures = []
    try:
        with _one_blas_thread_env():
            futures = [executor.submit(fn, *args) for args in args_list]
        error = None
        for i, future in enumerate(futures):
            try:
                results[i] = future.result()
            except Exception as e:  # the first failure in order; let the running tasks finish
                error = e
                for f in futures[i + 1:]:
                    f.cancel()
                break
        executor.shutdown(wait=True)
        if error is not None:
            raise error
        return results
    except KeyboardInterrupt:
        stop.set()
        for f in futures:
            f.cancel()
        if graceful:
            _signal_workers(executor, signal.SIGTERM)
            for i, f in enumerate(futures):
                if f.cancelled():
                    continue
                try:
                    results[i] = f.result()
                except Exception:  # a worker that could not finish cleanly leaves its result out
                    pass
            executor.shutdown(wait=True, cancel_futures=True)
        else:
            _signal_workers(executor, signal.SIGKILL)
            executor.shutdown(wait=True, cancel_futures=True)
        for i, f in enumerate(futures):
            if results[i] is None and f.done() and not f.cancelled() and f.exception() is None:
                results[i] = f.result()
        raise Interrupted(results) from None
