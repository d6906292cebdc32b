"""The engine's own threads: the work BLAS does not spread, cut into blocks of rows and run side by side.

A training step's matrix products run on as many cores as the BLAS library is given. Everything else
runs on one core unless we spread it: the convolutions' patch gathers and their slice-adds, batch
normalisation's passes, Adam's dozen passes over every parameter. NumPy releases the interpreter lock
inside each of these calls, so plain Python threads, each handed its own rows, run them on several cores
at once. Adam's update is the user so far (gmvae_np/optim.py): its blocks are independent, and large
enough that a thread's share outweighs handing it over. docs/results.md, section 7, measures it, and
why OpenBLAS's idle threads can keep the second core from it.

    import autograd_lite as ag
    ag.set_threads(2)                       # or: with ag.threads(2): ...
    ag.run_blocks(lambda lo, hi: out[lo:hi].__iadd__(x[lo:hi]), len(out), backend)

``run_blocks(work, n, backend)`` cuts ``range(n)`` into one contiguous block per thread (never smaller
than ``min_rows``) and calls ``work(lo, hi)`` for each, the first block in the calling thread and the
others in a small pool, and returns once all are done (re-raising the first error). Each block writes
only its own rows, so the result is the same bit for bit whatever the number of threads: the threads
change who computes a row, never how.

One thread is the default, and then ``work(0, n)`` is called directly: the plain path. So are GPU
backends (one kernel launch already uses the whole device) and calls made from inside a block (no
nesting). The number is set by the caller: the command line's ``--threads`` sets it together with the
BLAS threads, as does the step benchmark.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["set_threads", "get_threads", "threads", "run_blocks", "blocks"]

_count = 1
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()
_inside = threading.local()     # .active: this thread is running a block now


def set_threads(n: int) -> int:
    """Use ``n`` threads (n >= 1) for the engine's own work from now on; returns the previous number."""
    global _count
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a whole number >= 1; got {n!r}")
    previous, _count = _count, n
    return previous


def get_threads() -> int:
    """The number of threads the engine's own work uses now (1 unless :func:`set_threads` said more)."""
    return _count


@contextlib.contextmanager
def threads(n: int):
    """``set_threads(n)`` for the block, then the previous number again."""
    previous = set_threads(n)
    try:
        yield
    finally:
        set_threads(previous)


def blocks(n: int, parts: int, min_rows: int = 1) -> list[tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` contiguous (lo, hi) blocks of nearly equal size, none
    smaller than ``min_rows`` (one block when n < 2 * min_rows)."""
    parts = max(1, min(parts, n // max(min_rows, 1)))
    edges = [n * i // parts for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i + 1] > edges[i]] or [(0, n)]


def _get_pool(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=size, thread_name_prefix="autograd_lite"), size
        return _pool


def _run_one(work, lo: int, hi: int):
    _inside.active = True
    try:
        return work(lo, hi)
    finally:
        _inside.active = False


def run_blocks(work, n: int, backend=None, min_rows: int = 1) -> None:
    """Call ``work(lo, hi)`` on blocks covering ``range(n)``, one per thread (see the module docstring).

    ``backend``: the arrays' Backend; on a GPU backend the blocks are not split. ``work`` must touch only
    its own rows of whatever it writes.
    """
    parts = _count
    if parts == 1 or n < 2 * min_rows or getattr(_inside, "active", False) or (
            backend is not None and backend.name == "cupy"):
        work(0, n)
        return
    spans = blocks(n, parts, min_rows)
    if len(spans) == 1:
        work(0, n)
        return
    pool = _get_pool(len(spans) - 1)
    futures = [pool.submit(_run_one, work, lo, hi) for lo, hi in spans[1:]]
    error = None
    try:
        _run_one(work, *spans[0])
    except BaseException as e:          # wait for the others before raising: they write into shared arrays
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error
