"""SIGINT and SIGTERM: one handler per process, for the whole command, and what a signal does at each moment.

The command line installs the handler once for the whole command (:func:`handled`); a worker process of
gmvae_np.parallel installs it for the worker's life (:func:`in_worker`). Nothing else in the package
calls ``signal.signal`` for these two signals. What a signal does depends on where the process is:

* inside :func:`deferred` -- a Trainer's run, which has a checkpoint to write, or a parent process
  waiting for its worker processes -- the signal is recorded, and the code asks :func:`requested` at its
  safe points: the Trainer before each step and after each epoch (its evaluation, checkpoint and
  figures), then saves and stops. A second Ctrl-C raises :class:`StopNow` at once, without saving. A
  deferred block that ends normally with a recorded signal nobody acted on raises :class:`StopNow` as it
  closes, so a signal is never dropped.
* anywhere else -- loading the data, building the neighbour graph, pretraining, between the seeds of a
  series, writing its summary -- there is nothing to save: :class:`StopNow` is raised at once, as
  Python's own KeyboardInterrupt would be, and every file already written stays whole (they are all
  written atomically, gmvae_np.atomic).

The first SIGTERM is passed on to this process's worker processes (each as soon as its handler is in
place, :func:`_pass_on`): a scheduler, ``timeout`` or a cluster's pre-emption sends it to the parent
alone, while a terminal's Ctrl-C reaches the whole group.
The exit code of a stop is 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading

__all__ = ["SIGNALS", "StopNow", "handled", "deferred", "in_worker", "requested", "record", "clear"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: list = []      # the signals received in this process since the handler was installed
_depth = 0                # how many handled() blocks are open (a worker's lifelong one included)
_deferring = 0            # how many deferred() blocks are open
_previous: dict = {}      # the handlers before ours, put back when the outermost handled() block ends
_forwarding = threading.Event()   # set: stop passing a signal on to the worker processes
_worker = False           # this process is a worker of gmvae_np.parallel (in_worker)


class StopNow(KeyboardInterrupt):
    """A signal that stops the command at once: outside a training, or a second Ctrl-C inside one."""

    def __init__(self, signum: int, second: bool = False):
        self.signum, self.second = int(signum), second
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def requested() -> int | None:
    """The first signal received (inside the handler's blocks), or None."""
    return _received[0] if _received else None


def record(signum: int) -> None:
    """Record a signal as the handler does, without raising (a task that stopped on its own)."""
    _received.append(int(signum))


def clear() -> None:
    """Forget the signals received (a worker's next call of run_tasks starts afresh)."""
    _received.clear()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _catches(pid: int, signum: int) -> bool | None:
    """Whether process ``pid`` has a handler for ``signum`` (Linux: /proc/PID/status); None if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _pass_on(signum: int) -> None:
    """Pass the signal on to this process's worker processes, each once, as soon as it can take it.

    A worker that is still starting has the default action, which would kill it (and with it the pool):
    it gets the signal once it has installed the handler (:func:`in_worker`, at its first task), which a
    thread watches for until the deferred block ends. Where that cannot be seen (no /proc), at once."""
    _forwarding.clear()

    def forward():
        sent = set()
        while True:
            for child in multiprocessing.active_children():
                ready = _catches(child.pid, signum)
                if child.pid not in sent and ready is not False:
                    with contextlib.suppress(OSError, ValueError):
                        os.kill(child.pid, signum)
                    sent.add(child.pid)
            if _forwarding.wait(0.05):
                return

    threading.Thread(target=forward, name="pass-on-signal", daemon=True).start()


def _on_signal(signum, frame):
    if signum == signal.SIGINT and _deferring and signal.SIGINT in _received:
        raise StopNow(signum, second=True)
    if signum == signal.SIGTERM and signal.SIGTERM not in _received and _deferring and not _worker:
        _pass_on(signum)   # only a parent that waits (deferred) has workers to tell
    _received.append(int(signum))
    if not _deferring:
        raise StopNow(signum)


def _install() -> None:
    global _previous
    _previous = {sig: signal.signal(sig, _on_signal) for sig in SIGNALS}


@contextlib.contextmanager
def handled():
    """The handler installed for the block (once, by the outermost block; nested blocks share it). The
    signals received are forgotten when the outermost block ends. Outside the main thread, nothing."""
    global _depth
    if not _main_thread():
        yield
        return
    if _depth == 0:
        _install()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for sig, handler in _previous.items():
                signal.signal(sig, handler)
            _received.clear()
            _forwarding.set()


@contextlib.contextmanager
def deferred():
    """Inside the block a signal is recorded for the code to act on at its next safe point (module
    docstring); one left unacted on when the block ends normally is raised then, as :class:`StopNow`."""
    global _deferring
    if not _main_thread():
        yield
        return
    with handled():
        _deferring += 1
        try:
            yield
        finally:
            _deferring -= 1
            if not _deferring:
                _forwarding.set()
        if not _deferring and _received:
            raise StopNow(_received[0])


def in_worker() -> None:
    """In a worker process, for its life: the handler installed and every signal deferred, so that
    between tasks a signal is only recorded, and a task that starts after it returns at once."""
    global _depth, _deferring, _worker
    if not _main_thread() or _depth:
        return
    _install()
    _depth, _deferring, _worker = 1, 1, True
