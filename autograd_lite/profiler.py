"""Where a training step spends its time, op by op: ``profile()``.

    >>> import autograd_lite as ag
    >>> x = ag.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> with ag.profile() as prof:
    ...     with prof.section("forward"):
    ...         loss = ag.relu(x @ x).sum()
    ...     with prof.section("backward"):
    ...         loss.backward()
    >>> sorted(prof.forward)          # seconds per op, forward
    ['matmul', 'relu', 'sum']
    >>> sorted(prof.backward)         # seconds per op, backward
    ['matmul', 'relu', 'sum']

How the time is attributed, without touching any op:

* **Forward.** Every primitive ends by making its result Tensor (``ops.make_node``), and the Tensor tells
  the active profiler its op's name (``tensor._swap_profiler`` installs the profiler). The time since the
  previous tensor was made is charged to this op: its own array work, and the Python between the two ops
  that led to it. A section's first op is timed from the section's start.
* **Backward.** ``Tensor.backward`` tells the profiler when it calls a node's ``backward_fn`` and when
  that node's gradients have been added to its parents': the op's vector-Jacobian products, broadcasting
  undone, fan-out sums.
* **Sections** (``prof.section(name)``) time whole blocks: the forward pass, the backward pass, the
  optimizer's step. What a section holds beyond its ops (creating leaf tensors, storing leaf gradients,
  the Python after the last op) is its ``rest``.

On a GPU, work is queued, not done, when the call returns: pass ``sync=backend.synchronize`` and the
profiler waits for the device at every mark (slower, but each op is charged its own kernels).
The bookkeeping costs about a microsecond per op; the step being measured is a thousand times longer.
``benchmarks/profile_step.py`` runs it on the GMVAE's training step at several thread counts.
"""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict

from .tensor import _swap_profiler

__all__ = ["Profile", "profile"]


class Profile:
    """Seconds and calls per op (forward and backward) and per section, summed over everything profiled."""

    def __init__(self, sync=None):
        self.forward: dict = defaultdict(float)    # op -> seconds, forward
        self.backward: dict = defaultdict(float)   # op -> seconds, backward
        self.calls: dict = defaultdict(int)        # (phase, op) -> calls
        self.sections: dict = defaultdict(float)   # section -> seconds, whole blocks
        self.inside: dict = defaultdict(float)     # section -> seconds charged to ops inside it
        self._sync = sync if sync is not None else (lambda: None)
        self._mark = None                          # when the last forward op ended (None: outside sections)
        self._section = None
        self._started = 0.0

    def _now(self) -> float:
        self._sync()
        return time.perf_counter()

    # -- told by the engine ------------------------------------------------------------------------
    def made(self, op) -> None:
        """A tensor was just made (by op ``op``; None for a leaf)."""
        if self._mark is None:
            return
        now = self._now()
        if op is not None:
            self.forward[op] += now - self._mark
            self.calls["forward", op] += 1
            self.inside[self._section] += now - self._mark
        self._mark = now

    def start_backward(self) -> None:
        self._started = self._now()

    def end_backward(self, op: str) -> None:
        spent = self._now() - self._started
        self.backward[op] += spent
        self.calls["backward", op] += 1
        self.inside[self._section] += spent

    # -- used by the caller ------------------------------------------------------------------------
    @contextlib.contextmanager
    def section(self, name: str):
        """Time the block as ``name``; the ops inside are charged as above."""
        outer_section, outer_mark = self._section, self._mark
        self._section = name
        self._mark = start = self._now()
        try:
            yield self
        finally:
            end = self._now()
            self.sections[name] += end - start
            # an enclosing section's next op is timed from here, not charged this block
            self._section, self._mark = outer_section, (None if outer_mark is None else end)

    def rows(self) -> list[dict]:
        """One dict per (phase, op) and one ``rest`` per section: phase, op, seconds, calls."""
        out = [{"phase": "forward", "op": op, "seconds": s, "calls": self.calls["forward", op]}
               for op, s in self.forward.items()]
        out += [{"phase": "backward", "op": op, "seconds": s, "calls": self.calls["backward", op]}
                for op, s in self.backward.items()]
        for name, total in self.sections.items():
            out.append({"phase": name, "op": "(rest)" if name in self.inside else "(all)",
                        "seconds": total - self.inside.get(name, 0.0), "calls": 0})
        return out

    def table(self, steps: int = 1) -> str:
        """The rows as text, longest first, in milliseconds per step."""
        rows = sorted(self.rows(), key=lambda r: -r["seconds"])
        total = sum(self.sections.values()) or sum(r["seconds"] for r in rows) or 1.0
        lines = [f"{'phase':10s} {'op':20s} {'ms/step':>9s} {'share':>6s} {'calls/step':>10s}"]
        for r in rows:
            lines.append(f"{r['phase']:10s} {r['op']:20s} {1e3 * r['seconds'] / steps:9.2f} "
                         f"{100 * r['seconds'] / total:5.1f}% {r['calls'] / steps:10.1f}")
        return "\n".join(lines)


@contextlib.contextmanager
def profile(sync=None):
    """Profile the ops run inside the block (one profiler at a time); yields the :class:`Profile`."""
    prof = Profile(sync)
    previous = _swap_profiler(prof)
    if previous is not None:
        _swap_profiler(previous)
        raise RuntimeError("profile(): another profile() block is already active; profile one thing at a time")
    try:
        yield prof
    finally:
        _swap_profiler(None)
