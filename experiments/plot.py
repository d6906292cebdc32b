"""Redraw a training run's figures from its run directory.

    python experiments/plot.py RUN_DIR                      draw once and exit
    python experiments/plot.py RUN_DIR --follow             redraw whenever metrics.jsonl or
                                                            snapshot.npz changes
    ./run.sh plot RUN_DIR --follow --interval 5             the same through the launcher

Figures go to RUN_DIR/figures/ (see gmvae_np/plots/ for what each one shows). The run directory is
all this script reads, through gmvae_np.runread's readers, which take no lock: it can follow a run that
is training in another process. With --follow it stops on Ctrl-C (exit code 0), or by itself once
every epoch of the run is logged and nothing has changed for --settle seconds. A folder that is not a
run directory, or figures that cannot be written, give one `error: ...` line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

try:
    from gmvae_np import plots, runread
except ImportError:  # running from a checkout that was not installed
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from gmvae_np import plots, runread


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Redraw the figures of a GMVAE run directory "
                                                 "into RUN_DIR/figures/.")
    parser.add_argument("run_dir", metavar="RUN_DIR", type=pathlib.Path,
                        help="the --out folder of a training run (holds config.json)")
    parser.add_argument("--follow", action="store_true",
                        help="keep redrawing whenever metrics.jsonl or snapshot.npz changes")
    parser.add_argument("--interval", type=positive_seconds, default=2.0, metavar="SECONDS",
                        help="with --follow: how often to look for changes (default 2)")
    parser.add_argument("--settle", type=positive_seconds, default=None, metavar="SECONDS",
                        help="with --follow: stop once the run has logged all its epochs and "
                             "nothing changed for this long (default: max(10, 3 x interval))")
    return parser.parse_args(argv)


def draw(run_dir: pathlib.Path) -> None:
    paths = plots.draw_run(run_dir)
    stamp = time.strftime("%H:%M:%S")
    if paths:
        print(f"[{stamp}] wrote {', '.join(p.name for p in paths)} to {paths[0].parent}", flush=True)
    else:
        print(f"[{stamp}] nothing to draw yet: no epoch logged in {run_dir / 'metrics.jsonl'}",
              flush=True)


def follow(run_dir: pathlib.Path, interval: float, settle: float, last: tuple) -> int:
    """Redraw whenever the signature differs from ``last``, the one taken before the latest drawing
    (taken before, so a write that lands while drawing is seen at the next look)."""
    changed_at = time.monotonic()
    while True:
        time.sleep(interval)
        if not (run_dir / "config.json").is_file():
            print(f"error: {run_dir} has no config.json any more; the run directory was removed",
                  file=sys.stderr)
            return 2
        now = runread.signature(run_dir)
        if now != last:
            last, changed_at = now, time.monotonic()
            try:
                draw(run_dir)
            except runread.RunDirError as exc:   # e.g. a file replaced mid-read: try again next time
                print(f"warning: {exc}", file=sys.stderr, flush=True)
        elif time.monotonic() - changed_at >= settle and runread.run_finished(run_dir):
            print(f"run finished and unchanged for {settle:g} s; figures are in "
                  f"{run_dir / 'figures'}", flush=True)
            return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    settle = args.settle if args.settle is not None else max(10.0, 3 * args.interval)
    try:
        before = runread.signature(args.run_dir)
        draw(args.run_dir)
        if args.follow:
            return follow(args.run_dir, args.interval, settle, before)
        return 0
    except runread.RunDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:   # figures/ cannot be written: no space left, no permission
        print(f"error: cannot write the figures of {args.run_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
