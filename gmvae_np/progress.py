"""What training keeps count of between steps, and the lines it prints.

The loss terms of every step are added into running sums ON THE DEVICE (float64, detached) and crossed
to the host once every ``log_every`` steps and at the end of an epoch (:class:`RunningSums`): a step
never waits for the host. :func:`first_nonfinite` says which value, if any, went NaN or infinite, and
:func:`progress_line` / :func:`summary_line` are the live progress line and the per-epoch line.
"""
from __future__ import annotations

import math

import numpy as np

from .diagnostics import DIAGNOSTICS
from .elbo import TERMS

__all__ = ["TRAIN_KEYS", "RunningSums", "per_sample_terms", "first_nonfinite", "progress_line",
           "summary_line"]

TRAIN_KEYS = ("objective", "neg_elbo") + TERMS


class RunningSums:
    """Per-sample sums of the training terms and diagnostics, kept on the device in float64 until read.

    One vector holds them all: the TRAIN_KEYS, then the DIAGNOSTICS (each weighted by its batch's size),
    then the K per-cluster counts. ``add`` is a handful of device operations and no host crossing;
    ``read`` crosses once for all of it.
    """

    def __init__(self, backend):
        self.backend = backend
        self.reset()

    def reset(self) -> None:
        self.sums = None  # a float64 device vector: TRAIN_KEYS, DIAGNOSTICS, counts
        self.count = 0

    def add(self, result, n: int) -> None:
        """Add one step's LossResult (objective: batch mean; terms and neg_elbo: per sample)."""
        xp = self.backend.xp
        f64 = xp.float64
        per_sample = per_sample_terms(result)
        d = result.diagnostics
        values = [xp.astype(result.objective.data, f64) * float(n)]
        values += [xp.sum(xp.astype(per_sample[name].data, f64)) for name in TRAIN_KEYS[1:]]
        values += [xp.astype(d[name].data, f64) * float(n) for name in DIAGNOSTICS]
        v = xp.concat([xp.stack(values), xp.astype(d["counts"].data, f64)])
        self.sums = v if self.sums is None else self.sums + v
        self.count += n

    def _host(self):
        return None if self.sums is None else self.backend.to_numpy(self.sums)

    def read(self) -> dict:
        """{name: per-sample mean} of the TRAIN_KEYS as Python floats (one host crossing)."""
        host = self._host()
        if host is None:
            return {name: 0.0 for name in TRAIN_KEYS}
        return {name: float(host[i]) / self.count for i, name in enumerate(TRAIN_KEYS)}

    def read_diagnostics(self) -> dict:
        """{diagnostic: per-sample mean} and "clusters_used": clusters some point took as most probable."""
        host = self._host()
        if host is None:
            return {}
        first = len(TRAIN_KEYS)
        out = {name: float(host[first + i]) / self.count for i, name in enumerate(DIAGNOSTICS)}
        out["clusters_used"] = int(np.count_nonzero(host[first + len(DIAGNOSTICS):]))
        return out

    def state(self) -> dict:
        """JSON-able exact copy (float64 values round-trip through Python floats exactly)."""
        host = self._host()
        return {"sums": None if host is None else [float(v) for v in host], "count": self.count}

    def load(self, state: dict, K: int) -> None:
        """Restore ``state()``; a checkpoint written before the diagnostics existed resumes with them at 0."""
        self.count = int(state["count"])
        sums = state["sums"]
        if sums is not None:
            sums = np.asarray(sums, dtype=np.float64)
            full = len(TRAIN_KEYS) + len(DIAGNOSTICS) + K
            sums = np.concatenate([sums, np.zeros(full - sums.size)])
        self.sums = None if sums is None else self.backend.asarray(sums, dtype="float64")


def per_sample_terms(result) -> dict:
    """{name: (B,) Tensor} for neg_elbo and the five ELBO terms of a LossResult."""
    terms = dict(result.terms)
    if "neg_elbo" not in terms:
        terms["neg_elbo"] = result.neg_elbo
    return terms


def first_nonfinite(values: dict):
    """The first name (ELBO terms first, then the totals) whose value is not finite, else None."""
    for name in TERMS + ("neg_elbo", "objective"):
        if name in values and not math.isfinite(values[name]):
            return name
    return None


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(v: dict, epoch: int, epochs: int, step: int, steps: int, steps_done: int,
                  elapsed: float) -> str:
    """The live line: position, speed, time left in the epoch and the running means of the terms."""
    rate = steps_done / elapsed if elapsed > 0 else 0.0
    left = (steps - step) / rate if rate > 0 else 0.0
    return (f"epoch {epoch}/{epochs} step {step}/{steps} "
            f"{rate:.1f} step/s ETA {_fmt_duration(left)} | obj {v['objective']:.4g} "
            f"rec {v['reconstruction']:.4g} cond {v['conditional_prior']:.4g} w {v['w_prior']:.4g} "
            f"z {v['z_prior']:.4g} cv {v['consistency_violation']:.4g}")


def summary_line(record: dict, epochs: int, seconds: float) -> str:
    """The line printed after each epoch: training objective and -ELBO, evaluation -ELBO and scores."""
    t, ev = record["train"], record.get("eval", {})
    parts = [f"epoch {record['epoch']:>3}/{epochs}", f"obj {t['objective']:.4f}",
             f"-elbo {t['neg_elbo']:.4f}"]
    if ev:
        parts.append(f"eval -elbo {ev['neg_elbo']:.4f}")
    if "acc_paper" in ev:
        parts.append(f"acc {ev['acc_paper']:.3f}/{ev['acc_hungarian']:.3f} nmi {ev['nmi']:.3f} "
                     f"purity {ev['purity']:.3f} clusters {ev['clusters_used']}")
    parts.append(f"{seconds:.1f}s")
    return "  ".join(parts)
