"""Scaling out on Dask: a series of seeds and an estimator's restarts on a distributed.LocalCluster.

The cluster runs on the loopback with worker processes, as a cluster of machines would (each worker its own
interpreter; the run directories on a path they all see). A series sent there with ``--dask ADDRESS``
writes the table of the sequential run; the estimator's restarts under ``joblib.parallel_config(
backend="dask")`` keep the model ``n_jobs=1`` keeps; and a worker killed while it trains a seed loses
nothing: the scheduler gives the seed to another worker, which resumes from the seed's checkpoint. When
the scheduler may not retry, the series ends in one line and ``--resume`` finishes it.
"""
import json
import os
import signal
import threading
import time

import distributed  # the dask extra, part of the test extras: these tests run, never skip
import joblib
import numpy as np
import pytest
from blas import one_blas_thread

from gmvae_np import GMVAEClustering
from gmvae_np.cli import run

TINY = ["--n-per-arm", "20", "--epochs", "2", "--batch-size", "25", "--no-plots", "--lr", "3e-3"]
LONGER = ["--n-per-arm", "40", "--epochs", "60", "--batch-size", "20", "--no-plots", "--lr", "3e-3",
          "--log-every", "0"]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with one_blas_thread():
        yield


def _cluster(**config):
    import dask

    with dask.config.set(config):
        return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=":0")


@pytest.fixture(scope="module")
def cluster():
    with _cluster() as c:
        yield c


def summary(root):
    return json.loads((root / "summary.json").read_text())


def test_a_series_on_the_cluster_writes_the_sequential_table(tmp_path, cluster):
    argv = TINY + ["--seeds", "1,2"]
    assert run("spiral", argv + ["--out", str(tmp_path / "here")]) == 0
    assert run("spiral", argv + ["--dask", cluster.scheduler_address, "--out", str(tmp_path / "dask")]) == 0
    assert summary(tmp_path / "dask")["runs"] == summary(tmp_path / "here")["runs"]
    assert summary(tmp_path / "dask")["metrics"] == summary(tmp_path / "here")["metrics"]


def test_the_estimators_restarts_under_the_dask_backend_keep_what_one_job_keeps(cluster):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(20, 4)) + 5 * k for k in range(3)])
    params = dict(n_clusters=3, n_init=3, epochs=4, batch_size=20, hidden=16, Dx=3, Dw=2, lr=3e-3, random_state=0)
    one = GMVAEClustering(n_jobs=1, **params).fit(X)
    with distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        spread = GMVAEClustering(**params).fit(X)
    np.testing.assert_array_equal(spread.n_init_scores_, one.n_init_scores_)
    assert spread.best_init_ == one.best_init_
    np.testing.assert_array_equal(spread.predict_proba(X), one.predict_proba(X))


def _kill_a_worker_training(address: str, root, seed: int) -> None:
    """Wait until ``seed`` has trained a few epochs, then SIGKILL the worker process that trains it."""
    metrics = root / f"seed{seed}" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline, "the seed never started"
        time.sleep(0.05)
    with distributed.Client(address) as client:
        busy = [w for w, keys in client.processing().items() if keys]
        pids = client.run(os.getpid, workers=busy)
    os.kill(pids[busy[0]], signal.SIGKILL)   # a task's worker dies; which seed it held does not matter


def _series_with_a_killed_worker(address, root, argv):
    codes = []
    thread = threading.Thread(target=lambda: codes.append(run("spiral", argv + ["--dask", address,
                                                                                 "--out", str(root)])))
    thread.start()
    _kill_a_worker_training(address, root, 1)
    thread.join(timeout=600)
    assert not thread.is_alive()
    return codes[0]


def test_a_killed_worker_loses_nothing(tmp_path):
    argv = LONGER + ["--seeds", "1,2"]
    assert run("spiral", argv + ["--out", str(tmp_path / "here")]) == 0
    with _cluster() as cluster:
        assert _series_with_a_killed_worker(cluster.scheduler_address, tmp_path / "dask", argv) == 0
    assert summary(tmp_path / "dask")["metrics"] == summary(tmp_path / "here")["metrics"]
    for seed in (1, 2):   # every epoch once, each as the uninterrupted run wrote it
        a, b = ((tmp_path / d / f"seed{seed}" / "metrics.jsonl").read_text() for d in ("here", "dask"))
        assert a == b


def test_when_the_retries_run_out_the_series_ends_in_one_line_and_resume_finishes_it(tmp_path, capfd):
    argv = LONGER + ["--seeds", "1,2"]
    assert run("spiral", argv + ["--out", str(tmp_path / "here")]) == 0
    capfd.readouterr()
    with _cluster(**{"distributed.scheduler.allowed-failures": 0}) as cluster:
        assert _series_with_a_killed_worker(cluster.scheduler_address, tmp_path / "dask", argv) == 2
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and f"--resume {tmp_path / 'dask'}" in err[0], err
    assert not (tmp_path / "dask" / "summary.json").exists()
    assert run("spiral", ["--resume", str(tmp_path / "dask")]) == 0
    assert summary(tmp_path / "dask")["metrics"] == summary(tmp_path / "here")["metrics"]


def test_sigterm_to_a_series_on_the_cluster_stops_the_command_and_resume_finishes_it(tmp_path, cluster):
    """The signal reaches the command, not the cluster's workers: the command stops at once with 143 and
    says so; the seeds under way train on to their end; --resume then finishes the series, to the table
    of a series never stopped."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    root = tmp_path / "dask"
    argv = TINY + ["--seeds", "1,2", "--dask", cluster.scheduler_address, "--out", str(root)]
    # the command sends itself SIGTERM as it starts to wait for the cluster's results
    code = ("import os, signal, distributed\n"
            "gather = distributed.Client.gather\n"
            "def first_signalled(self, *a, **k):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return gather(self, *a, **k)\n"
            "distributed.Client.gather = first_signalled\n"
            f"from gmvae_np.cli import main; main('spiral', {argv!r})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1"))
    assert proc.returncode == 143, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "SIGTERM received" in last and "cluster's workers" in last and f"--resume {root}" in last, last
    assert "Traceback" not in proc.stderr and not (root / "summary.json").exists()

    assert run("spiral", TINY + ["--seeds", "1,2", "--out", str(tmp_path / "here")]) == 0
    deadline = time.monotonic() + 300   # a seed still training on a worker holds its lock until it ends
    while run("spiral", ["--resume", str(root), "--dask", cluster.scheduler_address]) != 0:
        assert time.monotonic() < deadline, "the resumed series never finished"
        time.sleep(0.5)
    assert summary(root)["metrics"] == summary(tmp_path / "here")["metrics"]
