"""The neighbour graph's speed against scikit-learn's exact search, in one run on the same rows.

    python benchmarks/bench_neighbours.py                  MNIST's 70,000 images (train and test) in PCA-50
    python benchmarks/bench_neighbours.py --rows 20000     the first 20,000 of them
    python benchmarks/bench_neighbours.py --smoke          2,000 random rows: a quick check that it runs

Both find the exact k nearest other rows of every row of the same float32 matrix, on one thread
(threadpoolctl limits BLAS and OpenMP to one): ours is gmvae_np.neighbours.exact_knn, the peer is
``NearestNeighbors(algorithm="brute").fit(Z).kneighbors(Z)`` with k + 1 neighbours (each row finds
itself first). The script prints each one's seconds (the best of --repeats), their ratio, and how many
rows get the same set of neighbours from both (ties in float32 distances may differ); and the time
of the whole graph for training (PCA included) on the same rows.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
try:
    from gmvae_np.neighbours import build_graph, embed, exact_knn
except ImportError:  # a checkout that was not installed
    sys.path.insert(0, str(ROOT))
    from gmvae_np.neighbours import build_graph, embed, exact_knn


def rows(n: int | None, smoke: bool) -> np.ndarray:
    if smoke:
        return np.random.default_rng(0).normal(size=(2000, 60)).astype(np.float32)
    from gmvae_np.data import load_dataset

    data = load_dataset("mnist").flat()
    x = np.concatenate([data.x_train, data.x_test])
    return x[:n] if n else x


def best_of(repeats: int, fn):
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return min(times), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=None, help="use the first N rows of MNIST (default: all 70,000)")
    p.add_argument("--k", type=int, default=10, help="neighbours per row (default 10)")
    p.add_argument("--repeats", type=int, default=1, help="take the best of N timings (default 1)")
    p.add_argument("--smoke", action="store_true", help="2,000 random rows, one repeat: a quick check")
    args = p.parse_args(argv)
    from sklearn.neighbors import NearestNeighbors

    x = rows(args.rows, args.smoke)
    with threadpool_limits(1):
        z = np.ascontiguousarray(embed(x, "pca", 50))
        ours_s, ours = best_of(args.repeats, lambda: exact_knn(z, args.k))
        peer_s, (_, peer) = best_of(args.repeats, lambda: NearestNeighbors(
            n_neighbors=args.k + 1, algorithm="brute").fit(z).kneighbors(z))
        graph_s, _ = best_of(1, lambda: build_graph(x, args.k, "pca", 50))
    same = np.mean([set(a) == set(b[b != i][:args.k]) for i, (a, b) in enumerate(zip(ours, peer))])
    print(f"{z.shape[0]:,} rows in PCA-{z.shape[1]}, {args.k} nearest neighbours each, one thread")
    print(f"  gmvae_np.neighbours.exact_knn          {ours_s:8.2f} s")
    print(f"  sklearn NearestNeighbors(brute)        {peer_s:8.2f} s")
    print(f"  ratio ours / scikit-learn              {ours_s / peer_s:8.2f}x")
    print(f"  rows with the same neighbour set       {100 * same:8.3f} %")
    print(f"  the whole graph for training (PCA too) {graph_s:8.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
