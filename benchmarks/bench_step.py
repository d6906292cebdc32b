"""Time one GMVAE training step (forward, backward, Adam) for ours and for a PyTorch peer, in one run.

    python benchmarks/bench_step.py                      # both architectures, every available backend
    python benchmarks/bench_step.py --arch mnist_fc --repeats 30 --threads 2

For each architecture (mnist_fc: fully connected, H=1000; mnist: convolutional, 28x28) and each
implementation available here (gmvae_np on numpy / cupy; PyTorch on cpu / cuda when torch is
installed) it runs a worker subprocess that builds the model with the same sizes, dtype (float32) and
batch, warms up, and times its share of ``repeats`` steps (synchronising the GPU). The implementations
take turns (``--rounds``), so a burst of load from another process falls on all of them. Then it prints
one table, with the machine's load average before and after:

* step time (median, and the 10th-90th percentile spread),
* peak memory of the steps above the model and data (host peak RSS for CPU rows, device allocator
  peak for GPU rows),
* achieved FLOP/s of the step's matrix products, and that as a fraction of a large float32 matmul on the
  same device (how close to the machine's limit the step runs),
* ratios: ours / PyTorch on the same device, and cupy / numpy.

Every worker gets the same thread count (``--threads``, default: all cores). PyTorch is optional and only
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ARCHS = {
    # name: (arch, Dx, Dw, hidden) — the sizes of the original's mnist_fc and mnist presets;
    # the number of components K is --K (16 by default, as the paper's largest MNIST row)
    "mnist_fc": ("fc", 200, 150, 1000),
    "mnist": ("conv", 200, 150, 500),
}


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


def worker_ours(name: str, backend_name: str, batch: int, warmup: int, repeats: int, K: int) -> dict:
    import autograd_lite as ag
    from gmvae_np.model import GMVAE, GMVAEConfig
    from gmvae_np.optim import Adam

    arch, Dx, Dw, hidden = ARCHS[name]
    b = ag.get_backend(backend_name)
    shape = (784,) if arch == "fc" else (1, 28, 28)
    cfg = GMVAEConfig(input_shape=shape, arch=arch, likelihood="bernoulli", K=K, Dx=Dx, Dw=Dw,
                      hidden=hidden, variant="cv", alpha=0.4, eta=1.0, mc=1, dtype="float32")
    model = GMVAE(cfg, backend=backend_name, seed=0)
    opt = Adam(model.parameters(), lr=1e-4)
    y = ag.tensor(model.rng.uniform((batch,) + shape, dtype="float32"), backend=b)

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

    arch, Dx, Dw, hidden = ARCHS[name]
    torch.manual_seed(0)
    model = TorchGMVAE(arch, 784, K, Dx, Dw, hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    shape = (batch, 784) if arch == "fc" else (batch, 1, 28, 28)
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


def _run_worker(args, name, kind, device):
    env = dict(os.environ)
    n = str(args.threads)
    env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
    per_round = max(1, -(-args.repeats // args.rounds))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, device, name,
           "--batch", str(args.batch), "--K", str(args.K), "--warmup", str(args.warmup), "--repeats", str(per_round),
           "--threads", n]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {name} {kind}/{device}: failed: {tail}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    p.add_argument("--arch", choices=["mnist_fc", "mnist", "both"], default="both")
    p.add_argument("--impls", default="numpy,cupy,torch",
                   help="comma-separated: numpy, cupy, torch (= torch-cpu and torch-cuda) (default: %(default)s)")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--K", type=int, default=16, help="mixture components (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=2,
                   help="implementations take turns this many times, each timing repeats/rounds steps "
                        "(default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--worker", nargs=3, metavar=("KIND", "DEVICE", "ARCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        kind, device, name = args.worker
        if kind == "torch":
            import torch
            torch.set_num_threads(args.threads)
            res = worker_torch(name, device, args.batch, args.warmup, args.repeats, args.K)
        else:
            res = worker_ours(name, device, args.batch, args.warmup, args.repeats, args.K)
        print(json.dumps(res))
        return 0

    names = ["mnist_fc", "mnist"] if args.arch == "both" else [args.arch]
    impls = _available_impls([s.strip() for s in args.impls.split(",") if s.strip()])
    print(f"machine: {_machine()}; threads per worker: {args.threads}; batch {args.batch}, float32; "
          f"median of {args.rounds * max(1, -(-args.repeats // args.rounds))} steps in {args.rounds} turns, "
          f"each after {args.warmup} warm-up steps")
    print(f"load average before: {_load()} (other processes compete for the cores: compare rows of one run)")
    # The implementations take turns, ``--rounds`` times, each timing its share of the steps, so a
    # burst of load from another process falls on all of them rather than on one row.
    results = {}
    for name in names:
        for _ in range(args.rounds):
            for kind, device in impls:
                res = _run_worker(args, name, kind, device)
                if res is None:
                    continue
                key = (name, kind, device)
                if key not in results:
                    results[key] = res
                else:
                    r = results[key]
                    r["times"] += res["times"]
                    r["peak_mb"] = max(r["peak_mb"], res["peak_mb"])
                    r["matmul_peak"] = max(r["matmul_peak"], res["matmul_peak"])
    rows = []
    header = ("arch", "impl", "device", "step ms", "p10-p90 ms", "peak MB", "GFLOP/s", "of matmul",
              "vs torch", "cupy/numpy")
    for (name, kind, device), r in results.items():
        t = sorted(r["times"])
        med = statistics.median(t)
        p10, p90 = t[int(0.1 * (len(t) - 1))], t[int(0.9 * (len(t) - 1))]
        gflops = r["flops"] / med / 1e9
        frac = r["flops"] / med / r["matmul_peak"]
        vs_torch = speedup = ""
        if kind == "ours":
            peer = results.get((name, "torch", "cpu" if device == "numpy" else "cuda"))
            if peer:
                vs_torch = f"{med / statistics.median(peer['times']):.2f}x"
            if device == "cupy" and (name, "ours", "numpy") in results:
                speedup = f"{statistics.median(results[(name, 'ours', 'numpy')]['times']) / med:.1f}x faster"
        rows.append((name, "gmvae_np" if kind == "ours" else "pytorch", device, f"{med * 1e3:.1f}",
                     f"{p10 * 1e3:.1f}-{p90 * 1e3:.1f}", f"{r['peak_mb']:.0f}", f"{gflops:.1f}",
                     f"{100 * frac:.0f}%", vs_torch, speedup))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    print(fmt.format(*header))
    for row in rows:
        print(fmt.format(*row))
    print("vs torch: our step time / PyTorch's on the same device (lower is better); "
          "of matmul: achieved FLOP/s / a 2048x2048 float32 matmul's")
    print(f"load average after: {_load()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]}|{k[1]}|{k[2]}": v for k, v in results.items()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
