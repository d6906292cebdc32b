"""Tests for gmvae_np.cli: options and help, one-line user errors with exit code 2, resume, series of seeds.

The command line runs in-process here (``cli.run`` returns the exit code ``main`` would exit with), on
tiny spiral settings, so each run takes a fraction of a second. Every user error must print exactly one
line ``error: ...`` to stderr and no traceback.
"""
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from blas import one_blas_thread

import autograd_lite as ag
from gmvae_np import model as model_module
from gmvae_np.cli import check_variant_flags, format_table, main, parse_seeds, run, summarize
from gmvae_np.presets import EXPERIMENTS, Settings, SettingsError, preset
from gmvae_np.train import load_data, read_settings

REPO = Path(__file__).resolve().parent.parent
TINY = ["--n-per-arm", "20", "--epochs", "2", "--batch-size", "25", "--no-plots", "--lr", "3e-3"]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Module scope, so module fixtures run under it too (see tests/blas.py)."""
    with one_blas_thread():
        yield



def code_of(experiment, argv):
    """The exit code of the command line (argparse's own errors exit through SystemExit)."""
    try:
        return run(experiment, argv)
    except SystemExit as e:
        return e.code


def one_error_line(capsys, fragment):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert fragment in lines[0], lines[0]
    return lines[0]


# -- parsing --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_help_lists_every_setting_with_its_default(experiment, capsys):
    with pytest.raises(SystemExit) as info:
        run(experiment, ["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(Settings):
        if f.name in ("experiment", "dataset"):
            continue
        if f.name in ("n_per_arm", "curl") and experiment != "spiral":
            assert "--" + f.name.replace("_", "-") not in text
            continue
        if f.name in ("data", "labels", "standardize") and experiment != "custom":
            continue
        on_by_default = f.type == "bool" and getattr(preset(experiment) if experiment != "custom" else Settings(), f.name)
        flag = ("--no-" if on_by_default else "--") + f.name.replace("_", "-")   # a bool: the flag that changes it
        assert flag in text, flag
    for flag in ("--out", "--resume", "--seeds", "-gpu", "--gpu"):
        assert flag in text
    if experiment == "spiral":
        spiral = preset("spiral")
        for value in (spiral.K, spiral.epochs, spiral.batch_size, spiral.alpha):
            assert f"(default: {value})" in text


def test_options_override_the_preset(tmp_path):
    out = tmp_path / "run"
    assert run("spiral", TINY + ["--K", "5", "--Dx", "3", "--variant", "mi", "--seed", "7", "--out", str(out)]) == 0
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["K"], settings["Dx"], settings["variant"], settings["seed"], settings["epochs"]) == \
        (5, 3, "mi", 7, 2)
    assert settings["Dw"] == 2 and settings["hidden"] == 100      # untouched preset values


def test_curl_shapes_the_spiral_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    assert run("spiral", TINY + ["--curl", "2", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["curl"] == 2.0 and "curl=2.0" in config["data"]["source"]
    turned = load_data(preset("spiral", n_per_arm=20, curl=2.0)).x_train
    assert not np.allclose(turned, load_data(preset("spiral", n_per_arm=20)).x_train)
    assert code_of("mnist", ["--curl", "1"]) == 2          # the other data sets have no arms to turn


def test_a_spiral_run_from_before_curl_resumes_on_its_own_data(tmp_path):
    """Runs written before --curl existed were trained on arms turning 2 rad, not today's default."""
    assert preset("spiral").curl != 2.0
    assert run("spiral", TINY + ["--curl", "2", "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    del config["settings"]["curl"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert read_settings(tmp_path).curl == 2.0
    assert run("spiral", ["--resume", str(tmp_path), "--epochs", "3", "--log-every", "0"]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["settings"]["curl"] == 2.0 and "curl=2.0" in config["data"]["source"]
    assert Settings.from_dict({k: v for k, v in preset("mnist").to_dict().items() if k != "curl"}) == \
        preset("mnist")                                  # only spiral runs have arms to turn


def test_default_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("spiral", TINY + ["--variant", "mi", "--seed", "4"]) == 0
    assert (tmp_path / "runs" / "spiral-mi-seed4" / "checkpoints" / "last.npz").is_file()


def test_gpu_zero_means_numpy(tmp_path):
    assert run("spiral", TINY + ["-gpu", "0", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["backend"] == "numpy"


@pytest.mark.skipif(ag.gpu_available(), reason="CuPy runs here, so there is nothing to refuse")
@pytest.mark.parametrize("argv", [["--backend", "cupy"], ["-gpu", "1"], ["--gpu"]])
def test_cupy_missing_is_a_user_error(tmp_path, capsys, argv):
    assert code_of("spiral", TINY + argv + ["--out", str(tmp_path)]) == 2
    one_error_line(capsys, "cupy")


@pytest.mark.parametrize("argv, fragment", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--K", "1"], "--K must be at least 2"),
    (["--K", "abc"], "invalid int value: 'abc'"),
    (["--batch-size", "0"], "--batch-size must be a positive whole number"),
    (["--epochs", "-3"], "--epochs must be a positive whole number"),
    (["--hidden", "0"], "--hidden must be a positive whole number"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--alpha", "-1"], "--alpha must be a number >= 0"),
    (["--curl", "-1"], "--curl must be a number >= 0"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    (["--variant", "xx"], "invalid choice: 'xx'"),
    (["--dtype", "float16"], "invalid choice: 'float16'"),
    (["--batch-size", "500"], "--batch-size 500 is larger than the 100 training rows"),
    (["--seeds", "3-1"], "--seeds '3-1' is not a list of seeds"),
    (["--seeds", "1-2", "--jobs", "0"], "--jobs must be a whole number >= 1"),
    (["--jobs", "2"], "--jobs trains the seeds of a series in parallel; give --seeds too"),
    (["-gpu", "0", "--backend", "strict"], "disagree"),
    (["--data", "x.csv"], "unrecognized arguments: --data x.csv"),   # only custom reads a matrix
    (["--lam", "1"], "--lam plays no part in the cv variant's objective (it reads --alpha, --eta, --balance, --invariance, --neighbour-weight, --neighbour-code-weight)"),
    (["--variant", "mi", "--eta", "3"], "--eta plays no part in the mi variant's objective (it reads --lam, --balance)"),
    (["--variant", "mi", "--alpha", "0", "--eta", "2"], "--alpha, --eta play no part in the mi variant's"),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    assert code_of("spiral", TINY + argv + ["--out", str(tmp_path / "run")]) == 2
    one_error_line(capsys, fragment)


def test_custom_data_errors(tmp_path, capsys):
    assert code_of("custom", ["--out", str(tmp_path / "a")]) == 2
    one_error_line(capsys, "needs its data: pass --data PATH")
    assert code_of("custom", ["--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "b")]) == 2
    one_error_line(capsys, "does not exist")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,oops\n")
    assert code_of("custom", ["--data", str(bad), "--out", str(tmp_path / "c")]) == 2
    one_error_line(capsys, "bad")


def test_run_directory_errors(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert code_of("spiral", TINY + ["--out", str(blocker / "run")]) == 2
    one_error_line(capsys, "cannot write to the run directory")

    assert code_of("spiral", ["--resume", str(tmp_path / "nowhere")]) == 2
    one_error_line(capsys, "no config.json")

    done = tmp_path / "done"
    assert run("spiral", TINY + ["--out", str(done)]) == 0
    capsys.readouterr()
    assert code_of("spiral", TINY + ["--out", str(done)]) == 2
    one_error_line(capsys, f"continue it with --resume {done} or choose a new --out")

    assert code_of("spiral", ["--resume", str(done), "--K", "5"]) == 2
    one_error_line(capsys, "--K cannot change")
    assert code_of("custom", ["--resume", str(done)]) == 2
    one_error_line(capsys, "is a run of experiment 'spiral'")

    (done / "checkpoints" / "last.npz").unlink()
    assert code_of("spiral", ["--resume", str(done)]) == 2
    one_error_line(capsys, "has no checkpoints/last.npz")


def test_corrupt_checkpoint_is_a_user_error(tmp_path, capsys):
    assert run("spiral", TINY + ["--out", str(tmp_path)]) == 0
    last = tmp_path / "checkpoints" / "last.npz"
    last.write_bytes(last.read_bytes()[:1000])
    capsys.readouterr()
    assert code_of("spiral", ["--resume", str(tmp_path), "--epochs", "3"]) == 2
    one_error_line(capsys, "truncated or corrupt")


def test_resume_may_extend_training(tmp_path, capsys):
    assert run("spiral", TINY + ["--out", str(tmp_path)]) == 0
    assert run("spiral", ["--resume", str(tmp_path), "--epochs", "3", "--log-every", "1"]) == 0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert json.loads((tmp_path / "config.json").read_text())["settings"]["epochs"] == 3


def test_non_finite_loss_exits_1_with_one_line(tmp_path, capsys, monkeypatch):
    original = model_module.GMVAE.loss

    def poisoned(self, y, *a, **k):
        out = original(self, y, *a, **k)
        out.terms["z_prior"] = ag.tensor(out.terms["z_prior"].data * float("nan"))
        return out

    monkeypatch.setattr(model_module.GMVAE, "loss", poisoned)
    assert run("spiral", TINY + ["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'z_prior' became nan at epoch 1" in err[0]


def test_main_exits_with_the_code(tmp_path):
    with pytest.raises(SystemExit) as info:
        main("spiral", TINY + ["--K", "1", "--out", str(tmp_path)])
    assert info.value.code == 2


# -- series of seeds ---------------------------------------------------------------------------------

def test_parse_seeds():
    assert parse_seeds("1-4") == [1, 2, 3, 4]
    assert parse_seeds("1,4,7") == [1, 4, 7]
    assert parse_seeds("5") == [5]
    assert parse_seeds("1-3,2,9") == [1, 2, 3, 9]
    for bad in ("", "a", "3-1", "1-", "-2"):
        with pytest.raises(SettingsError):
            parse_seeds(bad)


def test_summarize_mean_std_best():
    finals = {1: {"acc_paper": 0.5, "neg_elbo": 3.0}, 2: {"acc_paper": 0.7, "neg_elbo": 2.0},
              3: {"acc_paper": 0.6, "neg_elbo": 4.0}}
    m = summarize(finals)["metrics"]
    assert m["acc_paper"]["mean"] == pytest.approx(0.6)
    assert m["acc_paper"]["std"] == pytest.approx(0.1)                 # n - 1 in the denominator
    assert (m["acc_paper"]["best"], m["acc_paper"]["best_seed"]) == (0.7, 2)
    assert (m["neg_elbo"]["best"], m["neg_elbo"]["best_seed"]) == (2.0, 2)   # lower is better
    table = format_table({"experiment": "x", "seeds": [1, 2, 3], **summarize(finals)})
    assert "acc_paper" in table and "0.6000" in table and "0.1000" in table


def test_series_of_seeds_and_its_resume(tmp_path, capsys):
    root = tmp_path / "series"
    assert run("spiral", TINY + ["--seeds", "1-2", "--out", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 seeds of spiral" in out and "acc_paper" in out
    summary = json.loads((root / "summary.json").read_text())
    finals = [json.loads((root / f"seed{k}" / "metrics.jsonl").read_text().splitlines()[-1])["eval"]
              for k in (1, 2)]
    accs = [f["acc_paper"] for f in finals]
    assert summary["seeds"] == [1, 2]
    assert summary["metrics"]["acc_paper"]["mean"] == pytest.approx(np.mean(accs))
    assert summary["metrics"]["acc_paper"]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert summary["metrics"]["acc_paper"]["best"] == max(accs)
    assert json.loads((root / "seed2" / "config.json").read_text())["seed"] == 2
    assert math.isfinite(summary["metrics"]["neg_elbo"]["mean"])

    # a series that stopped before its second seed continues where it stopped, to the same numbers
    first = (root / "summary.json").read_text()
    for p in sorted((root / "seed2").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / "seed2").rmdir()
    (root / "summary.json").unlink()
    assert run("spiral", ["--resume", str(root)]) == 0
    assert (root / "summary.json").read_text() == first

    assert code_of("spiral", TINY + ["--seeds", "1-2", "--out", str(root)]) == 2
    one_error_line(capsys, "already holds a series of seeds")
    assert code_of("spiral", ["--resume", str(root), "--K", "3"]) == 2
    one_error_line(capsys, "--K cannot change")
    assert code_of("custom", ["--resume", str(root)]) == 2
    one_error_line(capsys, "is a series of experiment 'spiral'")


def test_parallel_series_prints_the_same_table(tmp_path, capsys):
    """--jobs 2 trains in two worker processes with one BLAS thread each, like this test's process."""
    tables = []
    for name, extra in (("serial", []), ("parallel", ["--jobs", "2"])):
        root = tmp_path / name
        assert run("spiral", TINY + ["--seeds", "1-3", "--out", str(root)] + extra) == 0
        out = capsys.readouterr().out
        tables.append(out[out.index("3 seeds of spiral"):out.index("summary written")])
        tables.append(json.loads((root / "summary.json").read_text())["metrics"])
    assert tables[0] == tables[2] and tables[1] == tables[3]


def test_ctrl_c_stops_a_parallel_series_and_resume_finishes_it(tmp_path):
    """Ctrl-C reaches the whole process group, as from a terminal: every worker saves and stops."""
    root = tmp_path / "series"
    argv = ["--n-per-arm", "40", "--epochs", "500", "--batch-size", "25", "--no-plots", "--lr", "3e-3"]
    cmd = [sys.executable, str(REPO / "experiments" / "spiral.py")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd + argv + ["--seeds", "1-3", "--jobs", "2", "--out", str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600     # generous: a busy machine may take minutes to start Python
        metrics = [root / f"seed{k}" / "metrics.jsonl" for k in (1, 2)]
        while not all(m.is_file() and m.stat().st_size > 0 for m in metrics):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    # usually none has finished; on a busy machine the first seed may end before the second starts
    finished = int(re.search(r"(\d) of 3 seeds finished", err).group(1))
    assert finished < 3 and f"--resume {root}" in err
    assert (root / "seed1" / "checkpoints" / "last.npz").is_file()
    assert (root / "seed2" / "checkpoints" / "last.npz").is_file()
    assert not (root / "summary.json").exists()
    # resume to one epoch past the furthest seed (--epochs may grow, never shrink below what was trained)
    done = max(len(m.read_text().splitlines()) for m in metrics)
    assert run("spiral", ["--resume", str(root), "--epochs", str(done + 1), "--jobs", "2"]) == 0
    assert json.loads((root / "summary.json").read_text())["seeds"] == [1, 2, 3]


@pytest.mark.parametrize("variant, given", [("cv", {"alpha": 2.0, "eta": 3.0}), ("mi", {"lam": 1.0}),
                                            ("cv", {}), ("mi", {"K": 4})])
def test_each_variant_accepts_its_own_weights(variant, given):
    check_variant_flags(variant, given)   # returns quietly; the refusals are in the table above


GRAPH_PRESETS = [name for name in EXPERIMENTS if name != "custom" and preset(name).neighbours]


@pytest.mark.parametrize("experiment", GRAPH_PRESETS)
@pytest.mark.parametrize("switch", [["--variant", "mi"], ["--neighbours", "0"]])
def test_a_preset_with_a_graph_runs_with_the_graph_switched_off(tmp_path, capsys, experiment, switch):
    """The preset's graph settings fall away with the graph: its default --neighbour-weight is never the
    reason --variant mi or --neighbours 0 is refused. A weight the user gives is still refused."""
    from test_data import write_idx_set

    write_idx_set(tmp_path / "data", n_train=60, n_test=20)
    small = ["--data-dir", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "20", "--hidden", "16",
             "--Dx", "4", "--Dw", "2", "--no-plots"]
    out = tmp_path / "run"
    assert run(experiment, small + switch + ["--out", str(out)]) == 0, capsys.readouterr().err
    stored = read_settings(out)
    assert stored.neighbours == 0 and stored.neighbour_weight == 0 and not list(out.glob("neighbours-*"))
    assert stored.variant == ("mi" if "mi" in switch else "cv")
    assert code_of(experiment, small + switch + ["--neighbour-weight", "5", "--out", str(tmp_path / "r2")]) == 2
    one_error_line(capsys, "--neighbour-weight")


def test_a_preset_with_a_graph_still_builds_it_by_default(tmp_path):
    from test_data import write_idx_set

    assert GRAPH_PRESETS, "a preset turns the neighbour graph on"
    write_idx_set(tmp_path / "data", n_train=60, n_test=20)
    out = tmp_path / "run"
    assert run(GRAPH_PRESETS[0], ["--data-dir", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "20",
                                  "--hidden", "16", "--Dx", "4", "--Dw", "2", "--no-plots", "--out", str(out)]) == 0
    assert read_settings(out).neighbours == preset(GRAPH_PRESETS[0]).neighbours and list(out.glob("neighbours-*.npz"))
