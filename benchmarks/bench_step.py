"""Time one GMVAE training step (forward, backward, Adam) for ours and for a PyTorch peer, in one run.

    python benchmarks/bench_step.py                      # all three architectures, every available backend
    python benchmarks/bench_step.py --arch mnist_fc --repeats 30 --threads 2
    python benchmarks/bench_step.py --threads 1,2        # every worker at one and at two threads, one run

For each architecture (``mnist_fc``: fully connected, H=1000; ``mnist``: convolutional, 28x28; ``recipe``:
the MNIST recipe's fully connected model and batch of 200) and each implementation available here
(gmvae_np on numpy / cupy; PyTorch on cpu / cuda when torch is installed) it runs a worker subprocess that
builds the model with the same sizes, dtype (float32) and batch, warms up, and times its share of
``repeats`` steps (synchronising the GPU). The implementations, and the thread counts of ``--threads``,
take turns (``--rounds``), so a burst of load from another process falls on all of them. Then it prints
one table per thread count, with the machine's load average before and after:

* step time (median, and the 10th-90th percentile spread),
* peak memory of the steps above the model and data (host peak RSS for CPU rows, device allocator
  peak for GPU rows),
* achieved FLOP/s of the step's matrix products, and that as a fraction of a large float32 matmul on the
  same device (how close to the machine's limit the step runs),
* ratios: ours / PyTorch on the same device, and cupy / numpy.

With several thread counts a summary follows: per architecture, ours and PyTorch's step times at each
count, their ratio at each, and each one's speed-up from the first count to the last.

Every worker gets the same thread count (``--threads``, default: all cores): its BLAS threads, and
PyTorch's threads or our engine's own (autograd_lite.set_threads). PyTorch is optional and only
ever used here (``pip install torch``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Row(NamedTuple):
    """One architecture of the benchmark: the model's sizes and objective weights, and its own K and batch
    (which ``--K`` and ``--batch`` replace for every row when given)."""

    arch: str
    Dx: int
    Dw: int
    hidden: int
    K: int
    batch: int
    alpha: float = 0.4
    balance: float = 0.0


def _recipe_row() -> Row:
    """The MNIST recipe's model and batch, read from its preset so that the row follows the recipe."""
    from gmvae_np.presets import PRESETS

    r = PRESETS["mnist_recipe"]
    return Row(r["arch"], r["Dx"], r["Dw"], r["hidden"], r["K"], r["batch_size"], r["alpha"], r["balance"])


ARCHS = {
    # the sizes of the original's mnist_fc and mnist presets, with K = 16 (the paper's largest MNIST row)
    # and the original's batch of 50
    "mnist_fc": Row("fc", 200, 150, 1000, K=16, batch=50),
    "mnist": Row("conv", 200, 150, 500, K=16, batch=50),
    # the recipe's step: Dx 20, Dw 10, H 500, K 10, batch 200 and its batch balance term (weight 10)
    "recipe": _recipe_row(),
}
GROUPS = {"all": tuple(ARCHS), "both": ("mnist_fc", "mnist")}
"""--arch names of several rows: ``both`` is the two rows the benchmark had before the recipe's."""


# -- worker side ---------------------------------------------------------------------------------------

def _rss_mb() -> float:
    """Resident set size now (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux


class _CountingNamespace:
    """Wraps an array namespace and adds up the floating-point work of its matrix products."""

    def __init__(self, xp):
        self._xp, self.flops = xp, 0

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def matmul(self, a, b):
        out = self._xp.matmul(a, b)
        k = a.shape[-1]
        n_out = 1
        for s in out.shape:
            n_out *= s
        self.flops += 2 * n_out * k
        return out

    def tensordot(self, a, b, axes=2):
        out = self._xp.tensordot(a, b, axes=axes)
        n_out = 1
        for s in out.shape:
            n_out *= s
        contracted = 1
        if isinstance(axes, int):
            for s in a.shape[a.ndim - axes:]:
                contracted *= s
        else:
            for ax in axes[0]:
                contracted *= a.shape[ax]
        self.flops += 2 * n_out * contracted
        return out


def _matmul_peak(run, sync, n=2048, repeats=5) -> float:
    """FLOP/s of a large float32 matmul on the device, the yardstick for the model's FLOP/s."""
    for _ in range(2):
        run()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(times)


def build_ours(name: str, backend_name: str, batch: int, K: int) -> tuple:
    """(model, Adam, a batch of inputs) for row ``name``: what one of our training steps works on
    (profile_step.py profiles the same)."""
    import autograd_lite as ag
    from gmvae_np.model import GMVAE, GMVAEConfig
    from gmvae_np.optim import Adam

    row = ARCHS[name]
    b = ag.get_backend(backend_name)
    shape = (784,) if row.arch == "fc" else (1, 28, 28)
    cfg = GMVAEConfig(input_shape=shape, arch=row.arch, likelihood="bernoulli", K=K, Dx=row.Dx, Dw=row.Dw,
                      hidden=row.hidden, variant="cv", alpha=row.alpha, eta=1.0, balance=row.balance, mc=1,
                      dtype="float32")
    model = GMVAE(cfg, backend=backend_name, seed=0)
    opt = Adam(model.parameters(), lr=1e-4)
    y = ag.tensor(model.rng.uniform((batch,) + shape, dtype="float32"), backend=b)
    return model, opt, y


def worker_ours(name: str, backend_name: str, batch: int, warmup: int, repeats: int, K: int) -> dict:
    import autograd_lite as ag

    b = ag.get_backend(backend_name)
    model, opt, y = build_ours(name, backend_name, batch, K)

    def step():
        opt.zero_grad()
        model.loss(y).objective.backward()
        opt.step()

    rss_before = _rss_mb()
    # count the matmul work of one step (untimed), then time
    real_xp, counter = b.xp, _CountingNamespace(b.xp)
    b.xp = counter
    try:
        step()
    finally:
        b.xp = real_xp
    flops = counter.flops
    for _ in range(warmup):
        step()
    b.synchronize()
    memory_before = _device_mem(b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        b.synchronize()
        times.append(time.perf_counter() - t0)
    if b.name == "cupy":
        peak_mb = (_device_mem(b, peak=True) - memory_before) / 1e6
    else:
        peak_mb = max(_peak_rss_mb() - rss_before, 0.0)
    xp = b.xp
    a = xp.ones((2048, 2048), dtype=xp.float32, device=b.device)
    peak = _matmul_peak(lambda: xp.matmul(a, a), b.synchronize)
    return {"times": times, "peak_mb": peak_mb, "flops": flops, "matmul_peak": peak}


def _device_mem(b, peak=False) -> float:
    if b.name != "cupy":
        return 0.0
    import cupy
    pool = cupy.get_default_memory_pool()
    return float(pool.total_bytes() if peak else pool.used_bytes())


def worker_torch(name: str, device: str, batch: int, warmup: int, repeats: int, K: int) -> dict:
    import torch
    sys.path.insert(0, HERE)
    from torch_peer import TorchGMVAE

    row = ARCHS[name]
    torch.manual_seed(0)
    model = TorchGMVAE(row.arch, 784, K, row.Dx, row.Dw, row.hidden, alpha=row.alpha,
                       balance=row.balance).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    shape = (batch, 784) if row.arch == "fc" else (batch, 1, 28, 28)
    y = torch.rand(shape, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        opt.zero_grad(set_to_none=True)
        model.loss(y).backward()
        opt.step()

    rss_before = _rss_mb()
    flops = _torch_flops(model, step)
    for _ in range(warmup):
        step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 1e6
    else:
        peak_mb = max(_peak_rss_mb() - rss_before, 0.0)
    a = torch.ones(2048, 2048, device=device)
    peak = _matmul_peak(lambda: a @ a, sync)
    return {"times": times, "peak_mb": peak_mb, "flops": flops, "matmul_peak": peak}


def _torch_flops(model, step) -> float:
    """Matmul/conv FLOPs of one step (forward and backward), from PyTorch's own counter."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


# -- driver side ---------------------------------------------------------------------------------------

def _available_impls(wanted):
    impls = []
    for impl in wanted:
        if impl == "numpy":
            impls.append(("ours", "numpy"))
        elif impl == "cupy":
            import autograd_lite as ag
            if ag.gpu_available():
                impls.append(("ours", "cupy"))
        elif impl in ("torch", "torch-cpu", "torch-cuda"):
            try:
                import torch
            except ImportError:
                continue
            if impl in ("torch", "torch-cpu"):
                impls.append(("torch", "cpu"))
            if impl in ("torch", "torch-cuda") and torch.cuda.is_available():
                impls.append(("torch", "cuda"))
    return impls


def _thread_counts(text: str) -> list[int]:
    """--threads: '2' -> [2], '1,2' -> [1, 2]; each a whole number >= 1, duplicates dropped, order kept."""
    try:
        counts = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a thread count or a comma list of them, e.g. 1,2; "
                                         f"got {text!r}") from None
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"thread counts are whole numbers >= 1; got {text!r}")
    return list(dict.fromkeys(counts))


def _sizes(args, name: str) -> tuple[int, int]:
    """The K and batch of a row: its own, or --K / --batch when given (they apply to every row)."""
    row = ARCHS[name]
    return (row.K if args.K is None else args.K), (row.batch if args.batch is None else args.batch)


def run_worker(cmd: list, threads: int, label: str) -> dict | None:
    """Run a worker subprocess with ``threads`` BLAS threads and return the JSON of its last output line;
    None when it failed (its last error line is printed, labelled). profile_step.py runs its workers so too."""
    env = dict(os.environ)
    n = str(threads)
    env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {label}: failed: {tail}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_worker(args, name, kind, device, threads: int):
    per_round = max(1, -(-args.repeats // args.rounds))
    K, batch = _sizes(args, name)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, device, name,
           "--batch", str(batch), "--K", str(K), "--warmup", str(args.warmup), "--repeats", str(per_round),
           "--threads", str(threads)]
    return run_worker(cmd, threads, f"{name} {kind}/{device} at {threads} threads")


def measure(args, names, impls, counts) -> dict:
    """Every worker's step times: {(arch, kind, device, threads): {times, peak_mb, flops, matmul_peak}}.

    The implementations and the thread counts take turns, ``--rounds`` times, each turn timing its share
    of the steps, so a burst of load from another process falls on all of them rather than on one row."""
    results = {}
    for name in names:
        for _ in range(args.rounds):
            for threads in counts:
                for kind, device in impls:
                    res = _run_worker(args, name, kind, device, threads)
                    if res is None:
                        continue
                    key = (name, kind, device, threads)
                    if key not in results:
                        results[key] = res
                    else:
                        r = results[key]
                        r["times"] += res["times"]
                        r["peak_mb"] = max(r["peak_mb"], res["peak_mb"])
                        r["matmul_peak"] = max(r["matmul_peak"], res["matmul_peak"])
    return results


def _peer(kind: str, device: str) -> tuple[str, str] | None:
    """The PyTorch row that one of our rows is compared with: numpy with cpu, cupy with cuda."""
    return ("torch", "cpu" if device == "numpy" else "cuda") if kind == "ours" else None


def table_rows(results: dict, sizes: dict) -> list[dict]:
    """One record per measured row: its step-time statistics and ratios, and the raw times.

    ``vs_torch`` is our median step time over PyTorch's on the same device and thread count, ``cupy_numpy``
    (cupy rows) our numpy median over our cupy median: how many times faster the GPU runs the step.
    ``sizes`` maps each architecture to its (K, batch)."""
    medians = {key: statistics.median(r["times"]) for key, r in results.items()}
    rows = []
    for (name, kind, device, threads), r in results.items():
        t = sorted(r["times"])
        med = medians[(name, kind, device, threads)]
        peer = _peer(kind, device)
        torch_med = medians.get((name, *peer, threads)) if peer else None
        numpy_med = medians.get((name, "ours", "numpy", threads)) if (kind, device) == ("ours", "cupy") else None
        K, batch = sizes[name]
        rows.append({
            "arch": name, "impl": "gmvae_np" if kind == "ours" else "pytorch", "kind": kind, "device": device,
            "threads": threads, "K": K, "batch": batch, "step_ms": med * 1e3,
            "p10_ms": t[int(0.1 * (len(t) - 1))] * 1e3, "p90_ms": t[int(0.9 * (len(t) - 1))] * 1e3,
            "peak_mb": r["peak_mb"], "gflops": r["flops"] / med / 1e9, "of_matmul": r["flops"] / med / r["matmul_peak"],
            "vs_torch": med / torch_med if torch_med else None,
            "cupy_numpy": numpy_med / med if numpy_med else None,
            "times": r["times"], "flops": r["flops"], "matmul_peak": r["matmul_peak"]})
    return rows


def thread_summary(rows: list[dict], counts: list[int]) -> list[dict]:
    """Per architecture and device (ours on numpy against PyTorch on cpu, cupy against cuda): the step
    times at each thread count, ours / PyTorch at each, and each one's speed-up from the first count to
    the last (its step time at the first over its step time at the last; above 1: the threads help).
    A missing measurement is None, and so is every number made from it."""
    ms = {(r["arch"], r["kind"], r["device"], r["threads"]): r["step_ms"] for r in rows}
    out = []
    for name in dict.fromkeys(r["arch"] for r in rows):
        for device in ("numpy", "cupy"):
            peer = _peer("ours", device)
            ours = [ms.get((name, "ours", device, n)) for n in counts]
            torch = [ms.get((name, *peer, n)) for n in counts]
            if not any(v is not None for v in ours + torch):
                continue
            out.append({
                "arch": name, "ours": device, "torch": peer[1], "threads": list(counts),
                "ours_ms": ours, "torch_ms": torch,
                "ours_torch": [a / b if a is not None and b is not None else None for a, b in zip(ours, torch)],
                "ours_speedup": _speedup(ours), "torch_speedup": _speedup(torch)})
    return out


def _speedup(times: list) -> float | None:
    first, last = times[0], times[-1]
    return first / last if first is not None and last is not None else None


def _print_table(rows: list[dict]) -> None:
    header = ("arch", "impl", "device", "step ms", "p10-p90 ms", "peak MB", "GFLOP/s", "of matmul",
              "vs torch", "cupy/numpy")
    cells = [(r["arch"], r["impl"], r["device"], f"{r['step_ms']:.1f}", f"{r['p10_ms']:.1f}-{r['p90_ms']:.1f}",
              f"{r['peak_mb']:.0f}", f"{r['gflops']:.1f}", f"{100 * r['of_matmul']:.0f}%",
              f"{r['vs_torch']:.2f}x" if r["vs_torch"] is not None else "",
              f"{r['cupy_numpy']:.1f}x faster" if r["cupy_numpy"] is not None else "") for r in rows]
    _print_columns(header, cells)


def _print_summary(summary: list[dict], counts: list[int]) -> None:
    first, last = counts[0], counts[-1]
    print(f"summary over {', '.join(map(str, counts))} threads per worker: step ms at each count (@n), "
          f"ours / PyTorch at each (below 1: ours is faster), and each one's speed-up from {first} to {last} "
          f"threads (step time at {first} / at {last})")
    header = (("arch", "ours", "torch") + tuple(f"ours@{n}" for n in counts) + tuple(f"torch@{n}" for n in counts)
              + tuple(f"ratio@{n}" for n in counts) + (f"ours {first}->{last}", f"torch {first}->{last}"))

    def number(v, fmt):
        return "-" if v is None else format(v, fmt)

    cells = [(s["arch"], s["ours"], s["torch"]) + tuple(number(v, ".1f") for v in s["ours_ms"])
             + tuple(number(v, ".1f") for v in s["torch_ms"]) + tuple(number(v, ".2f") for v in s["ours_torch"])
             + (number(s["ours_speedup"], ".2f") + "x", number(s["torch_speedup"], ".2f") + "x")
             for s in summary]
    _print_columns(header, cells)


def _print_columns(header: tuple, cells: list) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *cells)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    print(fmt.format(*header).rstrip())
    for row in cells:
        print(fmt.format(*row).rstrip())


def _machine() -> str:
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _load() -> str:
    """The 1-minute load average (Unix), or 'n/a'."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "n/a"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=list(ARCHS) + list(GROUPS), default="all",
                   help="one row, both (mnist_fc and mnist) or all (default: %(default)s)")
    p.add_argument("--impls", default="numpy,cupy,torch",
                   help="comma-separated: numpy, cupy, torch (= torch-cpu and torch-cuda) (default: %(default)s)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of every row (default: each row's own: 50 for mnist_fc and mnist, 200 for recipe)")
    p.add_argument("--K", type=int, default=None,
                   help="mixture components of every row (default: each row's own: 16 for mnist_fc and "
                        "mnist, 10 for recipe)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=_thread_counts, default=[os.cpu_count()],
                   help="threads per worker, or a comma list (e.g. 1,2) to run every worker at each count "
                        "and print a summary (default: all cores)")
    p.add_argument("--rounds", type=int, default=2,
                   help="implementations take turns this many times, each timing repeats/rounds steps "
                        "(default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the settings, every row (its raw step times "
                                                   "too) and the summary as JSON")
    p.add_argument("--worker", nargs=3, metavar=("KIND", "DEVICE", "ARCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        kind, device, name = args.worker
        threads = args.threads[0]
        if kind == "torch":
            import torch
            torch.set_num_threads(threads)
            res = worker_torch(name, device, args.batch, args.warmup, args.repeats, args.K)
        else:
            import autograd_lite as ag
            ag.set_threads(threads)     # the engine's own threads (Adam's blocks), as PyTorch's intra-op threads
            res = worker_ours(name, device, args.batch, args.warmup, args.repeats, args.K)
        print(json.dumps(res))
        return 0

    names = list(GROUPS.get(args.arch, (args.arch,)))
    counts = args.threads
    sizes = {name: _sizes(args, name) for name in names}
    impls = _available_impls([s.strip() for s in args.impls.split(",") if s.strip()])
    steps = args.rounds * max(1, -(-args.repeats // args.rounds))
    rows_said = ", ".join(f"{name} (batch {sizes[name][1]}, K {sizes[name][0]})" for name in names)
    print(f"machine: {_machine()}; threads per worker: {', '.join(map(str, counts))}; {rows_said}; float32; "
          f"median of {steps} steps in {args.rounds} turns, each after {args.warmup} warm-up steps")
    load_before = _load()
    print(f"load average before: {load_before} (other processes compete for the cores: compare rows of one run)")
    rows = table_rows(measure(args, names, impls, counts), sizes)
    for n in counts:
        if len(counts) > 1:
            print(f"\nthreads per worker: {n}")
        _print_table([r for r in rows if r["threads"] == n])
    print("vs torch: our step time / PyTorch's on the same device (lower is better); "
          "of matmul: achieved FLOP/s / a 2048x2048 float32 matmul's")
    summary = thread_summary(rows, counts)
    if len(counts) > 1:
        print()
        _print_summary(summary, counts)
    load_after = _load()
    print(f"load average after: {load_after}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": _machine(), "load_before": load_before, "load_after": load_after,
                       "threads": counts, "impls": [f"{kind}/{device}" for kind, device in impls],
                       "archs": {name: dict(ARCHS[name]._asdict(), K=sizes[name][0], batch=sizes[name][1])
                                 for name in names},
                       "warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds,
                       "rows": rows, "summary": summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
