"""SIGINT and SIGTERM at every phase of a command: a series of seeds (one after the other and with --jobs)
and a run with restarts stop with 130 / 143, and --resume ends them with the metrics of a run never stopped.

Each case runs the command line in a child process whose `sitecustomize` (written by the test, on
PYTHONPATH) wraps one function of the package so that the child sends the signal at exactly that phase:
during a training step, the final evaluation, the final checkpoint or the figures of seed 1, between two
seeds, or while seed 2 loads its data. No timing is involved. Worker processes of --jobs import the same
`sitecustomize`, so a worker can send SIGTERM to its parent alone, as a scheduler or `timeout` would.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from blas import one_blas_thread

from gmvae_np import stops
from gmvae_np.checkpoint import load_checkpoint
from gmvae_np.cli import run

REPO = Path(__file__).resolve().parent.parent
TINY = ["--n-per-arm", "20", "--epochs", "2", "--batch-size", "25", "--lr", "3e-3"]
SEEDS = ["--seeds", "1-3"]

HOOK = textwrap.dedent('''
    import os, signal, sys, time

    phase = os.environ.get("SIGNAL_TEST_PHASE")


    def _first(name):
        """True in the first process to ask (a file created exclusively)."""
        import tempfile
        try:
            os.close(os.open(os.path.join(tempfile.gettempdir(), name), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    if phase:
        os.environ.setdefault("SIGNAL_TEST_TOP", str(os.getpid()))   # the command; its workers inherit it
        top, sig, fired = int(os.environ["SIGNAL_TEST_TOP"]), int(os.environ["SIGNAL_TEST_SIG"]), []
        import gmvae_np.series as series
        import gmvae_np.train as t

        def fire(pid=None):
            if not fired:
                fired.append(1)
                os.kill(pid or os.getpid(), sig)

        def wrap(owner, name, before=None, after=None):
            f = getattr(owner, name)

            def wrapped(*a, **k):
                if before is not None and before(*a, **k):
                    fire()
                result = f(*a, **k)
                if after is not None and after(*a, **k):
                    fire()
                return result
            setattr(owner, name, wrapped)

        steps = []
        if phase == "step":            # seed 1's third step
            wrap(t, "train_step", before=lambda *a, **k: steps.append(1) or len(steps) == 3)
        elif phase == "evaluation":    # seed 1's final evaluation
            wrap(t.Trainer, "_evaluate", before=lambda self: self.settings.seed == 1
                 and self.epoch == self.settings.epochs)
        elif phase == "checkpoint":    # seed 1's final checkpoint
            wrap(t.Trainer, "_save", before=lambda self, path: self.settings.seed == 1
                 and self.epoch == self.settings.epochs + 1 and path == self.rundir.last)
        elif phase == "figures":       # seed 1's figures, drawn after its final checkpoint
            wrap(t.Trainer, "draw", before=lambda self: self.settings.seed == 1)
        elif phase == "between":       # seed 1 is finished, seed 2 not begun
            wrap(series, "train_one", after=lambda settings, *a, **k: settings.seed == 1)
        elif phase == "setup":         # seed 2 loads its data
            wrap(t.Trainer, "_setup", before=lambda self, dataset: self.settings.seed == 2)
        elif phase == "graph":         # the neighbour graph is being built
            import gmvae_np.neighbours as neighbours
            wrap(neighbours, "build_graph", before=lambda *a, **k: True)
        elif phase == "worker-start" and "--process-name" in sys.argv and _first(f"signal-test-{top}"):
            # a Ctrl-C that reaches the command, then a worker while it starts, before any handler of ours
            os.kill(top, signal.SIGINT)
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        elif phase == "worker-step" and os.getpid() != top:
            # a worker, at seed 1's third step, sends SIGTERM to the command alone; it waits for the
            # command to pass the signal on to it, then goes on and stops at the next step
            from gmvae_np import stops
            f = t.train_step

            def train_step(*a, **k):
                steps.append(1)
                if len(steps) == 3 and not fired and seed_of_this[0] == 1:
                    fire(top)
                    deadline = time.monotonic() + 60
                    while stops.requested() is None and time.monotonic() < deadline:
                        time.sleep(0.01)
                return f(*a, **k)
            t.train_step = train_step
            seed_of_this = [None]
            g = t.Trainer.__init__

            def __init__(self, settings, *a, **k):
                seed_of_this[0] = settings.seed
                steps.clear()
                g(self, settings, *a, **k)
            t.Trainer.__init__ = __init__
''')


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with one_blas_thread():
        yield


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hook")
    (d / "sitecustomize.py").write_text(HOOK)
    return d


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The series never stopped (and a run with restarts never stopped), trained in this process."""
    d = tmp_path_factory.mktemp("whole")
    assert run("spiral", TINY + SEEDS + ["--no-plots", "--out", str(d / "series")]) == 0
    assert run("spiral", TINY + ["--restarts", "2", "--restart-epochs", "1", "--no-plots",
                                 "--out", str(d / "restarts")]) == 0
    return d


def stopped_child(hook_dir, phase, sig, argv):
    env = dict(os.environ, SIGNAL_TEST_PHASE=phase, SIGNAL_TEST_SIG=str(int(sig)), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(hook_dir), str(REPO), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = f"from gmvae_np.cli import main; main('spiral', {argv!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def assert_stopped(proc, sig, root):
    assert proc.returncode == 128 + int(sig), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"{sig.name} received" in last and f"--resume {root}" in last, last


@pytest.mark.parametrize("phase, sig", [
    ("step", signal.SIGINT), ("step", signal.SIGTERM),
    ("evaluation", signal.SIGINT), ("evaluation", signal.SIGTERM),
    ("checkpoint", signal.SIGTERM), ("figures", signal.SIGINT),
    ("between", signal.SIGTERM), ("setup", signal.SIGINT)])
def test_a_signal_at_any_phase_of_a_series_stops_it_and_resume_finishes_it_exactly(
        tmp_path, hook_dir, whole, phase, sig):
    root = tmp_path / "series"
    plots = [] if phase == "figures" else ["--no-plots"]
    proc = stopped_child(hook_dir, phase, sig, TINY + SEEDS + plots + ["--out", str(root)])
    assert_stopped(proc, sig, root)
    # seed 1's last checkpoint is whole; seed 2 never trained; no summary
    position = load_checkpoint(root / "seed1" / "checkpoints" / "last.npz").extra["position"]
    finished = phase not in ("step",)
    assert (position["epoch"], position["step_in_epoch"]) == ((3, 0) if finished else (1, 3))
    assert not (root / "seed2" / "checkpoints" / "last.npz").exists()
    assert not (root / "summary.json").exists()
    if phase == "figures":
        assert "figures not drawn" not in proc.stderr and (root / "seed1" / "figures").is_dir()

    assert run("spiral", ["--resume", str(root)]) == 0
    for seed in (1, 2, 3):
        name = f"seed{seed}/metrics.jsonl"
        assert (root / name).read_bytes() == (whole / "series" / name).read_bytes(), name
    summary = json.loads((root / "summary.json").read_text())
    assert summary == json.loads((whole / "series" / "summary.json").read_text())


def test_sigterm_to_a_parallel_series_alone_exits_143_and_resume_finishes_it(tmp_path, hook_dir, whole):
    """SIGTERM reaches the command only (a scheduler, `timeout`): it passes it on to its workers, each
    saves and stops, and the command exits 143, not 130."""
    root = tmp_path / "series"
    proc = stopped_child(hook_dir, "worker-step", signal.SIGTERM,
                         TINY + SEEDS + ["--no-plots", "--jobs", "2", "--out", str(root)])
    assert proc.returncode == 143, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "SIGTERM received" in last and "seeds finished" in last and f"--resume {root}" in last, last
    # seed 1's worker waited for the signal passed on to it and stopped after its third step
    position = load_checkpoint(root / "seed1" / "checkpoints" / "last.npz").extra["position"]
    assert (position["epoch"], position["step_in_epoch"]) == (1, 3)
    assert not (root / "summary.json").exists()

    assert run("spiral", ["--resume", str(root), "--jobs", "2"]) == 0
    summary = json.loads((root / "summary.json").read_text())
    assert summary == json.loads((whole / "series" / "summary.json").read_text())


def test_a_ctrl_c_that_kills_a_starting_worker_still_ends_in_130_and_resume_finishes(tmp_path, hook_dir, whole):
    """A worker that gets Ctrl-C while it starts dies of it (its interpreter has no handler of ours yet), and
    joblib ends the pool (or starts another worker): the command still exits 130 with its one line, and
    --resume finishes the series."""
    root = tmp_path / "series"
    proc = stopped_child(hook_dir, "worker-start", signal.SIGINT,
                         TINY + SEEDS + ["--no-plots", "--jobs", "2", "--out", str(root)])
    assert proc.returncode == 130, proc.stderr
    # the command's own line (the workers joblib ended may print their stacks around it)
    mine = [line for line in proc.stderr.splitlines() if line.startswith("SIGINT received")]
    assert len(mine) == 1, proc.stderr
    # whether joblib ends the pool or starts a new worker in its place is its choice
    assert re.match(r"SIGINT received: \d of 3 seeds finished", mine[0]) and f"--resume {root}" in mine[0], mine[0]
    assert run("spiral", ["--resume", str(root), "--jobs", "2"]) == 0
    summary = json.loads((root / "summary.json").read_text())
    assert summary == json.loads((whole / "series" / "summary.json").read_text())


@pytest.mark.parametrize("phase, sig", [("evaluation", signal.SIGTERM), ("checkpoint", signal.SIGINT)])
def test_a_signal_at_the_end_of_a_restart_stops_the_run_and_resume_finishes_it(tmp_path, hook_dir, whole,
                                                                                phase, sig):
    """Restart 1's screening ends with the signal: the run stops there instead of screening restart 2."""
    root = tmp_path / "restarts"
    proc = stopped_child(hook_dir, phase, sig, TINY + ["--restarts", "2", "--restart-epochs", "1", "--no-plots",
                                                       "--out", str(root)])
    assert_stopped(proc, sig, root)
    assert not (root / "restart2").exists()
    assert run("spiral", ["--resume", str(root)]) == 0
    chosen = json.loads((root / "restarts.json").read_text())["chosen"]
    assert chosen == json.loads((whole / "restarts" / "restarts.json").read_text())["chosen"]
    name = f"restart{chosen}/metrics.jsonl"
    assert (root / name).read_bytes() == (whole / "restarts" / name).read_bytes()


def test_a_first_ctrl_c_while_the_graph_is_built_stops_at_once_and_says_so(tmp_path, hook_dir):
    """Nothing is trained yet: the first Ctrl-C stops at once (no 'second Ctrl-C' words), the run directory
    made for the run is removed again, and the same command then starts it afresh."""
    out = tmp_path / "run"
    argv = TINY + ["--no-plots", "--neighbours", "3", "--neighbour-weight", "1", "--out", str(out)]
    proc = stopped_child(hook_dir, "graph", signal.SIGINT, argv)
    assert proc.returncode == 130, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("SIGINT received: stopped at once") and "second" not in lines[0], lines[0]
    assert "run the command again" in lines[0] and not out.exists()
    assert run("spiral", argv) == 0


def test_sigterm_to_a_run_screening_restarts_in_workers_exits_143_and_resume_finishes_it(tmp_path, hook_dir, whole):
    """--restarts 2 --jobs 2: SIGTERM to the command alone reaches the workers; the stopped restarts come
    back to the command (their exception pickles) and the run exits 143, not with a traceback."""
    root = tmp_path / "restarts"
    proc = stopped_child(hook_dir, "worker-step", signal.SIGTERM,
                         TINY + ["--restarts", "2", "--restart-epochs", "1", "--jobs", "2", "--no-plots",
                                 "--out", str(root)])
    assert_stopped(proc, signal.SIGTERM, root)
    position = load_checkpoint(root / "restart1" / "checkpoints" / "last.npz").extra["position"]
    assert (position["epoch"], position["step_in_epoch"]) == (1, 3)
    assert run("spiral", ["--resume", str(root)]) == 0
    chosen = json.loads((root / "restarts.json").read_text())["chosen"]
    assert chosen == json.loads((whole / "restarts" / "restarts.json").read_text())["chosen"]
    name = f"restart{chosen}/metrics.jsonl"
    assert (root / name).read_bytes() == (whole / "restarts" / name).read_bytes()


def test_outside_a_training_a_signal_stops_at_once_and_inside_it_waits_for_the_safe_point():
    """gmvae_np.stops alone: immediate outside deferred(), recorded inside it, raised as the block ends
    when nobody acted on it, and a second Ctrl-C inside raises at once."""
    before = signal.getsignal(signal.SIGINT)   # Python's own, or SIG_IGN in a shell's background job
    with stops.handled():
        with pytest.raises(stops.StopNow) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):   # the handler runs between bytecodes
                pass
        assert info.value.exit_code == 143 and not info.value.second
    assert stops.requested() is None          # forgotten when the outermost block ends
    with pytest.raises(stops.StopNow) as info:
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            assert stops.requested() == signal.SIGINT   # recorded, not raised
    assert info.value.exit_code == 130 and not info.value.second
    with pytest.raises(stops.StopNow) as info:
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    assert info.value.second
    assert signal.getsignal(signal.SIGINT) is before   # put back


def test_sigterm_is_passed_on_only_while_a_parent_waits_and_the_passing_on_ends_with_it():
    """Outside deferred() no worker runs a task: nothing is passed on. Inside, a thread passes it on to the
    workers ready for it until the block ends, and then stops."""
    import threading

    def passing_on():
        return [t for t in threading.enumerate() if t.name == "pass-on-signal" and t.is_alive()]

    with stops.handled():
        with pytest.raises(stops.StopNow):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        assert not passing_on()
    with pytest.raises(stops.StopNow):
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
            assert passing_on()
    for thread in passing_on():
        thread.join(timeout=5)
    assert not passing_on()
