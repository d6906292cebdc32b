"""Where one GMVAE training step spends its time, op by op, at one or more thread counts.

    python benchmarks/profile_step.py                              # every architecture, 1 and 2 threads
    python benchmarks/profile_step.py --arch mnist --threads 1,2,4 --steps 20

For each architecture of the step benchmark (bench_step.py: the same model, sizes, batch and float32)
and each thread count, a worker subprocess warms up, then runs ``--steps`` training steps under
``autograd_lite.profile``: every primitive is charged its forward time and its backward time, and the
optimizer's step, ``zero_grad`` and what lies between the ops are their own rows (the module docstring
of autograd_lite/profiler.py says how). The thread count is given to BLAS (``OMP_NUM_THREADS`` and the
like) and to the engine (``autograd_lite.set_threads``), as the step benchmark and a training's
``--threads`` do.

It prints, per architecture, one row per (phase, op): milliseconds per step at each thread count, the
share of the step at the first count, and the speed-up from the first count to the last. An op whose
speed-up stays near 1 does its work on one core whatever the thread count: that is what is left to
spread. ``--json`` keeps the raw rows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_step import ARCHS, _sizes, _thread_counts, build_ours, run_worker  # noqa: E402  (the benchmark's own rows)


def worker(name: str, batch: int, warmup: int, steps: int, K: int, threads: int) -> dict:
    """Profile ``steps`` training steps of architecture ``name`` on NumPy in this process."""
    import autograd_lite as ag

    ag.set_threads(threads)
    model, opt, y = build_ours(name, "numpy", batch, K)
    for _ in range(warmup):
        opt.zero_grad()
        model.loss(y).objective.backward()
        opt.step()
    with ag.profile() as prof:
        for _ in range(steps):
            with prof.section("zero_grad"):
                opt.zero_grad()
            with prof.section("forward"):
                loss = model.loss(y).objective
            with prof.section("backward"):
                loss.backward()
            with prof.section("adam"):
                opt.step()
    return {"rows": prof.rows(), "sections": dict(prof.sections), "steps": steps}


def _run(args, name: str, threads: int) -> dict | None:
    K, batch = _sizes(args, name)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--batch", str(batch), "--K", str(K),
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--threads", str(threads)]
    return run_worker(cmd, threads, f"{name} at {threads} thread(s)")


def table(name: str, by_threads: dict, top: int) -> str:
    """The rows of one architecture, longest first at the first thread count."""
    counts = list(by_threads)
    per_step = {}
    for t, res in by_threads.items():
        for r in res["rows"]:
            per_step.setdefault((r["phase"], r["op"]), {})[t] = 1e3 * r["seconds"] / res["steps"]
    first, last = counts[0], counts[-1]
    total = {t: 1e3 * sum(res["sections"].values()) / res["steps"] for t, res in by_threads.items()}
    keys = sorted(per_step, key=lambda k: -per_step[k].get(first, 0.0))
    head = f"{'phase':10s} {'op':20s}" + "".join(f" {f'{t} thr ms':>9s}" for t in counts)
    head += f" {'share':>6s}" + (f" {'speed-up':>9s}" if len(counts) > 1 else "")
    lines = [f"{name}: milliseconds per step, by op", head]

    def line(label_phase, label_op, values):
        text = f"{label_phase:10s} {label_op:20s}" + "".join(f" {values.get(t, 0.0):9.2f}" for t in counts)
        text += f" {100 * values.get(first, 0.0) / total[first]:5.1f}%"
        if len(counts) > 1 and values.get(last):
            text += f" {values.get(first, 0.0) / values[last]:8.2f}x"
        return text

    for phase, op in keys[:top]:
        lines.append(line(phase, op, per_step[phase, op]))
    if len(keys) > top:
        rest = {t: sum(per_step[k].get(t, 0.0) for k in keys[top:]) for t in counts}
        lines.append(line("", f"({len(keys) - top} more ops)", rest))
    lines.append(line("step", "(whole)", total))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default=",".join(ARCHS),
                   help=f"comma-separated, from {', '.join(ARCHS)} (default: all)")
    p.add_argument("--threads", type=_thread_counts, default=[1, 2],
                   help="thread counts, comma-separated (default: 1,2)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: each architecture's own)")
    p.add_argument("--K", type=int, default=None, help="mixture components (default: each architecture's own)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="profiled steps per worker (default: %(default)s)")
    p.add_argument("--top", type=int, default=20, help="rows shown per architecture (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the raw rows as JSON")
    p.add_argument("--worker", metavar="ARCH", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.warmup, args.steps, args.K, args.threads[0])))
        return 0

    names = [a.strip() for a in args.arch.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARCHS]
    if unknown or not names:
        what = f"unknown architecture(s) {', '.join(unknown)}" if unknown else "no architecture given"
        p.error(f"{what}; choose from {', '.join(ARCHS)}")
    counts = args.threads
    results = {}
    for name in names:
        by_threads = {}
        for t in counts:
            res = _run(args, name, t)
            if res is not None:
                by_threads[t] = res
        if by_threads:
            results[name] = by_threads
            print(table(name, by_threads, args.top))
            print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: {str(t): r for t, r in v.items()} for name, v in results.items()}, f, indent=1)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
