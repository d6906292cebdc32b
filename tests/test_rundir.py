"""Tests for gmvae_np.rundir: one writer per run directory, and I/O faults that end in one line.

The lock: a second process resuming (or starting) a run that another process still trains into is
refused with one line naming the holder's pid, and metrics.jsonl keeps every epoch once and in order; a
lock left by a process killed with SIGKILL does not block the run's --resume; the seeds of a parallel
series and the root of a run with restarts are locked too. The writers in those tests are real
processes, held at a known step by a gate file, so nothing depends on timing.

I/O faults are real: the disk really fills (a small tmpfs the test mounts, so it needs root; skipped
with the reason otherwise) and write permission is really lost (a read-only bind mount as root, where
chmod denies nothing; chmod otherwise). Each fault test ends by checking the one line, that the last
checkpoint loads, and that the run resumes to the same metrics.jsonl as a run that was never stopped.
"""
import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from blas import one_blas_thread

from gmvae_np import model as model_module
from gmvae_np.checkpoint import CheckpointError, load_checkpoint
from gmvae_np.cli import run
from gmvae_np.rundir import RunDir, RunDirError
from gmvae_np.train import blas_threads

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--n-per-arm", "40", "--batch-size", "16", "--lr", "3e-3", "--no-plots", "--log-every", "5",
        "--seed", "3"]                       # 12 steps of 16 per epoch


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Module scope, so module fixtures run under it too (see tests/blas.py)."""
    with one_blas_thread():
        yield


def code_of(argv):
    try:
        return run("spiral", argv)
    except SystemExit as e:
        return e.code


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def epochs_in(run_dir) -> list:
    return [json.loads(line)["epoch"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run, evaluated at the end only, for byte comparisons."""
    d = tmp_path_factory.mktemp("reference") / "run"
    assert run("spiral", ARGS + ["--epochs", "3", "--eval-every", "10", "--out", str(d)]) == 0
    return d


# -- one writer ---------------------------------------------------------------------------------------

def gated_writer(run_dir: Path, gate_dir: Path, epochs: int, gate_step: int = 18) -> subprocess.Popen:
    """A training process that stops at ``gate_step`` (epoch 2: after the first checkpoint) until the
    file gate_dir/release exists; it creates gate_dir/reached when it gets there."""
    argv = ARGS + ["--epochs", str(epochs), "--eval-every", "10", "--out", str(run_dir)]
    code = ("import os, time, gmvae_np.model as m\nf = m.GMVAE.loss; n = [0]\n"
            "def gated(self, y, *a, **k):\n"
            "    if self.training:\n"
            "        n[0] += 1\n"
            f"        if n[0] == {gate_step}:\n"
            f"            open({str(gate_dir / 'reached')!r}, 'w').close()\n"
            f"            while not os.path.exists({str(gate_dir / 'release')!r}):\n"
            "                time.sleep(0.01)\n"
            "    return f(self, y, *a, **k)\n"
            "m.GMVAE.loss = gated\nfrom gmvae_np.cli import main; main('spiral', " + repr(argv) + ")")
    threads = blas_threads()   # the child computes as this process does (see test_train's signal test)
    pinned = {} if threads is None else {k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                    "MKL_NUM_THREADS")}
    env = dict(os.environ, PYTHONUNBUFFERED="1", **pinned)
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the writer ended (code {proc.returncode}) before its gate: {err}")
        assert time.monotonic() < deadline, "the writer never reached its gate"
        time.sleep(0.02)


def test_a_second_process_is_refused_while_the_first_trains(tmp_path, capsys):
    """The issue's fault: a resume of a run still training was accepted and metrics.jsonl got epochs twice."""
    d, gate = tmp_path / "run", tmp_path
    proc = gated_writer(d, gate, epochs=4)
    try:
        wait_for(gate / "reached", proc)
        assert (d / "checkpoints" / "last.npz").is_file()          # resumable, were it not in use
        for argv in (["--resume", str(d)], ARGS + ["--epochs", "4", "--out", str(d)]):
            assert code_of(argv) == 2
            one_error_line(capsys, f"{d} is in use", f"(pid {proc.pid})", f"--resume {d}")
        (gate / "release").touch()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert epochs_in(d) == [1, 2, 3, 4]                           # every epoch once, in order
    assert load_checkpoint(d / "checkpoints" / "last.npz").extra["position"]["epoch"] == 5
    assert code_of(["--resume", str(d), "--epochs", "5"]) == 0    # the lock went with its holder
    assert epochs_in(d) == [1, 2, 3, 4, 5]


def test_a_lock_left_by_a_killed_process_does_not_block_resume(tmp_path, reference):
    d, gate = tmp_path / "run", tmp_path
    proc = gated_writer(d, gate, epochs=3)
    try:
        wait_for(gate / "reached", proc)
    finally:
        proc.kill()                                               # SIGKILL: no handler, no cleanup
        proc.communicate(timeout=60)
    assert (d / ".lock").read_text().strip() == str(proc.pid)     # the file stays; the kernel dropped the lock
    assert load_checkpoint(d / "checkpoints" / "last.npz").extra["position"]["epoch"] == 2
    assert run("spiral", ["--resume", str(d)]) == 0
    assert (d / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()


def test_in_one_process_a_second_trainer_is_refused_too(tmp_path):
    import io

    from gmvae_np.presets import preset
    from gmvae_np.train import Trainer

    s = preset("spiral", n_per_arm=20, epochs=1, batch_size=25, plots=False)
    first = Trainer(s, tmp_path, out=io.StringIO())
    with pytest.raises(RunDirError, match=rf"in use: this process \(pid {os.getpid()}\)"):
        Trainer(s, tmp_path, out=io.StringIO())
    first.run()                                                   # the lock ends with the run
    Trainer(s.replace(epochs=2), tmp_path, resume=True, out=io.StringIO()).run()
    assert epochs_in(tmp_path) == [1, 2]


def test_each_seed_of_a_parallel_series_takes_its_lock(tmp_path, capsys):
    root = tmp_path / "series"
    holder = RunDir(root / "seed2")
    with holder.held():                                           # this process writes into seed2
        code = code_of(["--n-per-arm", "20", "--epochs", "1", "--batch-size", "25", "--no-plots",
                        "--seeds", "1-2", "--jobs", "2", "--out", str(root)])
        err = capsys.readouterr().err
    assert code == 2, err
    line = [x for x in err.strip().splitlines() if not x.startswith("[seed")]
    assert len(line) == 1 and line[0].startswith("error: ") and "Traceback" not in err, err
    assert f"{root / 'seed2'} is in use" in line[0] and f"(pid {os.getpid()})" in line[0]
    assert epochs_in(root / "seed1") == [1]                       # the other seed trained


def test_a_run_with_restarts_locks_its_root(tmp_path, capsys):
    root = tmp_path / "restarts"
    with RunDir(root).held():
        assert code_of(["--n-per-arm", "20", "--epochs", "1", "--batch-size", "25", "--no-plots",
                        "--restarts", "2", "--restart-epochs", "1", "--out", str(root)]) == 2
    one_error_line(capsys, f"{root} is in use", f"(pid {os.getpid()})")
    assert not (root / "restart1").exists()


def test_readers_need_no_lock(tmp_path):
    from gmvae_np import plots

    assert run("spiral", ARGS + ["--epochs", "1", "--out", str(tmp_path)]) == 0
    with RunDir(tmp_path).held():                                 # a writer holds it
        assert [r["epoch"] for r in plots.read_run(tmp_path).metrics] == [1]
        assert {p.name for p in plots.draw_run(tmp_path)} >= {"learning_curves.png", "latent.png"}


def test_timing_is_read_one_record_per_epoch(tmp_path):
    from gmvae_np.rundir import read_timing

    assert read_timing(tmp_path) == []                            # no run yet
    assert run("spiral", ARGS + ["--epochs", "2", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "timing.jsonl", "a") as f:
        f.write('{"epoch": 3, "epoch_sec')                        # a line still being written
    records = read_timing(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert all({"seconds", "epoch_seconds", "eval_seconds", "steps_per_second"} <= set(r) for r in records)


# -- I/O faults ---------------------------------------------------------------------------------------

def _sh(*cmd) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise OSError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "8m"):
    """A tmpfs of ``size`` mounted at ``path`` for the block (root only; skipped with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("filling a disk needs a small file system of its own: mounting a tmpfs needs root")
    path.mkdir()
    try:
        _sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs here ({e})".strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write one file until the file system has no space left; return it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 16)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


class WriteAccess:
    """Take away, then give back, write access to a folder: as root (whom chmod does not stop) a read-only
    bind mount of the folder onto itself, made when access is taken (a file already open for writing,
    such as the lock, keeps the mount under it); chmod otherwise."""

    def __init__(self, path: Path):
        self.path, self.as_root, self.mounted = path, os.geteuid() == 0, False
        if self.as_root:
            try:    # can this process mount at all?
                _sh("mount", "--bind", str(path), str(path))
                _sh("umount", str(path))
            except OSError as e:
                pytest.skip(f"as root, write permission can only be taken by a read-only bind mount, and "
                            f"mount failed here ({e})")

    def take(self) -> None:
        if self.as_root:
            _sh("mount", "--bind", str(self.path), str(self.path))
            self.mounted = True
            _sh("mount", "-o", "remount,bind,ro", str(self.path))
        else:
            for d in (self.path, *[p for p in self.path.rglob("*") if p.is_dir()]):
                d.chmod(0o555)

    def give_back(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.mounted = False
        elif not self.as_root:
            for d in (self.path, *[p for p in self.path.rglob("*") if p.is_dir()]):
                d.chmod(0o755)


def at_training_step(monkeypatch, step: int, action) -> None:
    """Call ``action()`` once, when training reaches ``step`` (counted over the whole run)."""
    original, seen = model_module.GMVAE.loss, []

    def loss(self, y, *a, **k):
        if self.training:
            seen.append(1)
            if len(seen) == step:
                action()
        return original(self, y, *a, **k)

    monkeypatch.setattr(model_module.GMVAE, "loss", loss)


def check_fault_then_resume(capsys, monkeypatch, d: Path, reference: Path, fault: str, then_fix) -> None:
    """The run that met the fault exited 2 with one line; the checkpoint loads; fixed, it resumes exactly."""
    line = one_error_line(capsys, fault, f"the last good checkpoint {d / 'checkpoints' / 'last.npz'} is kept",
                          f"--resume {d}")
    named = line.split("cannot write ", 1)[1].split(": ", 1)[0]
    assert Path(named).parent in (d, d / "checkpoints"), line     # the file it could not write
    assert load_checkpoint(d / "checkpoints" / "last.npz").extra["position"]["epoch"] == 2
    then_fix()
    monkeypatch.undo()
    assert run("spiral", ["--resume", str(d)]) == 0
    assert (d / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    assert epochs_in(d) == [1, 2, 3]


def test_a_full_disk_ends_the_run_in_one_line_and_it_resumes(tmp_path, capsys, monkeypatch, reference):
    with small_filesystem(tmp_path / "small") as small:
        d = small / "run"
        filler = []
        at_training_step(monkeypatch, 18, lambda: filler.append(fill(small)))   # in epoch 2
        assert run("spiral", ARGS + ["--epochs", "3", "--eval-every", "10", "--out", str(d)]) == 2
        check_fault_then_resume(capsys, monkeypatch, d, reference, "No space left on device",
                                lambda: filler[0].unlink())


def test_lost_write_permission_ends_the_run_in_one_line_and_it_resumes(tmp_path, capsys, monkeypatch,
                                                                        reference):
    d = tmp_path / "run"
    d.mkdir()
    access = WriteAccess(d)
    try:
        at_training_step(monkeypatch, 18, access.take)
        assert run("spiral", ARGS + ["--epochs", "3", "--eval-every", "10", "--out", str(d)]) == 2
        fault = "Read-only file system" if access.as_root else "Permission denied"
        check_fault_then_resume(capsys, monkeypatch, d, reference, fault, access.give_back)
    finally:
        access.give_back()


def test_the_estimator_save_meets_a_full_disk_and_a_read_only_folder(tmp_path):
    from gmvae_np import GMVAEClustering

    X = np.random.default_rng(0).normal(size=(60, 3))
    model = GMVAEClustering(n_clusters=2, epochs=2, batch_size=30, hidden=16, Dx=2, Dw=2,
                            random_state=0).fit(X)
    with small_filesystem(tmp_path / "small", size="2m") as small:
        path = small / "model.npz"
        model.save(path)
        before = path.read_bytes()
        filler = fill(small)
        with pytest.raises(CheckpointError) as info:
            model.save(path)
        message = str(info.value)
        assert message.splitlines() == [message]
        assert message.startswith(f"cannot write {path}: No space left on device")
        assert path.read_bytes() == before
        filler.unlink()
        np.testing.assert_array_equal(GMVAEClustering.load(path).predict(X), model.predict(X))

    folder = tmp_path / "folder"
    folder.mkdir()
    access = WriteAccess(folder)
    try:
        model.save(folder / "model.npz")
        access.take()
        with pytest.raises(CheckpointError, match="cannot write .*model.npz: (Read-only file system|Permission "
                                                  "denied); a file already there is left as it was$"):
            model.save(folder / "model.npz")
        np.testing.assert_array_equal(GMVAEClustering.load(folder / "model.npz").predict(X), model.predict(X))
    finally:
        access.give_back()
