"""Tests of benchmarks/bench_step.py, the training-step benchmark, and of its PyTorch peer.

The rows' sizes (the recipe's from its preset), the per-row batch and K, the thread-count list and the
summary's arithmetic are checked on made-up step times; a smoke run (one tiny row, two thread counts, two
steps) checks that the script measures every count in one run and writes it all to its JSON. Where PyTorch
is installed, the peer is checked to build the same model as ours for every row.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import autograd_lite as ag
from gmvae_np import elbo
from gmvae_np.model import GMVAE, GMVAEConfig
from gmvae_np.presets import PRESETS

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_step")


def test_the_recipe_row_is_the_recipes_model_and_batch(bench):
    recipe, r = bench.ARCHS["recipe"], PRESETS["mnist_recipe"]
    assert (recipe.arch, recipe.Dx, recipe.Dw, recipe.hidden, recipe.K, recipe.batch) == (
        r["arch"], r["Dx"], r["Dw"], r["hidden"], r["K"], r["batch_size"])
    assert (recipe.alpha, recipe.balance) == (r["alpha"], r["balance"]) and recipe.balance > 0
    assert list(bench.ARCHS) == ["mnist_fc", "mnist", "recipe"]
    assert bench.GROUPS == {"all": ("mnist_fc", "mnist", "recipe"), "both": ("mnist_fc", "mnist")}


def test_each_row_has_its_own_batch_and_K_until_given(bench):
    own = argparse.Namespace(K=None, batch=None)
    assert {name: bench._sizes(own, name) for name in bench.ARCHS} == {
        "mnist_fc": (16, 50), "mnist": (16, 50), "recipe": (10, 200)}
    given = argparse.Namespace(K=5, batch=8)
    assert {bench._sizes(given, name) for name in bench.ARCHS} == {(5, 8)}


def test_thread_counts(bench):
    assert bench._thread_counts("2") == [2]
    assert bench._thread_counts("1,2") == [1, 2]
    assert bench._thread_counts("4,1,4") == [4, 1]
    for bad in ("0", "1,x", "1,,2", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            bench._thread_counts(bad)


def test_a_bad_thread_list_is_a_usage_error(bench, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--threads", "1,two"])
    assert exit_.value.code == 2
    assert "comma list" in capsys.readouterr().err


def test_our_worker_gets_the_thread_count_as_engine_threads(bench, monkeypatch, capsys):
    seen = {}

    def worker(name, device, batch, warmup, repeats, K):
        seen.update(threads=ag.get_threads(), name=name, batch=batch, K=K)
        return {"times": [0.0]}

    monkeypatch.setattr(bench, "worker_ours", worker)
    with ag.threads(1):                                            # restored after the worker has set it
        assert bench.main(["--worker", "ours", "numpy", "recipe", "--threads", "3", "--batch", "8", "--K", "4",
                           "--warmup", "0", "--repeats", "1"]) == 0
    assert seen == {"threads": 3, "name": "recipe", "batch": 8, "K": 4}
    assert json.loads(capsys.readouterr().out) == {"times": [0.0]}


def _made_up(ms: dict) -> dict:
    """Worker results whose step times are the given milliseconds."""
    return {key: {"times": [v / 1e3] * 3, "peak_mb": 10.0, "flops": 1e9, "matmul_peak": 1e11}
            for key, v in ms.items()}


def test_rows_and_the_thread_summary(bench):
    results = _made_up({
        ("mnist_fc", "ours", "numpy", 1): 60.0, ("mnist_fc", "torch", "cpu", 1): 80.0,
        ("mnist_fc", "ours", "numpy", 2): 40.0, ("mnist_fc", "torch", "cpu", 2): 50.0,
        ("mnist_fc", "ours", "cupy", 1): 3.0, ("mnist_fc", "ours", "cupy", 2): 3.0,
        ("recipe", "ours", "numpy", 1): 30.0, ("recipe", "ours", "numpy", 2): 20.0})
    rows = bench.table_rows(results, {"mnist_fc": (16, 50), "recipe": (10, 200)})
    by = {(r["arch"], r["device"], r["threads"]): r for r in rows}
    assert by[("mnist_fc", "numpy", 1)]["vs_torch"] == pytest.approx(0.75)
    assert by[("mnist_fc", "numpy", 2)]["vs_torch"] == pytest.approx(0.8)
    assert by[("mnist_fc", "cupy", 2)]["cupy_numpy"] == pytest.approx(40 / 3)
    assert by[("mnist_fc", "cupy", 1)]["vs_torch"] is None              # no PyTorch on cuda here
    assert by[("recipe", "numpy", 1)]["batch"] == 200 and by[("recipe", "numpy", 1)]["vs_torch"] is None
    assert by[("mnist_fc", "cpu", 1)]["impl"] == "pytorch" and by[("mnist_fc", "cpu", 1)]["step_ms"] == 80.0

    summary = bench.thread_summary(rows, [1, 2])
    assert [(s["arch"], s["ours"], s["torch"]) for s in summary] == [
        ("mnist_fc", "numpy", "cpu"), ("mnist_fc", "cupy", "cuda"), ("recipe", "numpy", "cpu")]
    cpu, gpu, recipe = summary
    assert cpu["ours_ms"] == [60.0, 40.0] and cpu["torch_ms"] == [80.0, 50.0]
    assert cpu["ours_torch"] == pytest.approx([0.75, 0.8])
    assert cpu["ours_speedup"] == pytest.approx(1.5) and cpu["torch_speedup"] == pytest.approx(1.6)
    assert gpu["torch_ms"] == [None, None] and gpu["ours_torch"] == [None, None] and gpu["torch_speedup"] is None
    assert gpu["ours_speedup"] == pytest.approx(1.0)
    assert recipe["ours_speedup"] == pytest.approx(1.5)


def test_smoke_run_measures_every_thread_count_in_one_run(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--arch", "recipe", "--impls", "numpy", "--threads", "1,2", "--batch", "8",
                       "--repeats", "2", "--warmup", "0", "--rounds", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "threads per worker: 1\n" in text and "threads per worker: 2\n" in text
    assert "summary over 1, 2 threads per worker" in text
    saved = json.loads(out.read_text())
    assert saved["threads"] == [1, 2] and saved["impls"] == ["ours/numpy"]
    assert saved["archs"]["recipe"]["batch"] == 8 and saved["archs"]["recipe"]["K"] == 10
    rows = saved["rows"]
    assert sorted((r["arch"], r["device"], r["threads"]) for r in rows) == [("recipe", "numpy", 1),
                                                                           ("recipe", "numpy", 2)]
    assert all(len(r["times"]) == 2 and r["step_ms"] > 0 and r["batch"] == 8 for r in rows)
    (summary,) = saved["summary"]
    assert summary["arch"] == "recipe" and summary["torch_ms"] == [None, None]
    assert summary["ours_speedup"] == pytest.approx(summary["ours_ms"][0] / summary["ours_ms"][1])


def test_the_profile_charges_every_op_at_each_thread_count(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))     # profile_step imports bench_step by name, as when run
    try:
        profile = _load("profile_step")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = tmp_path / "profile.json"
    assert profile.main(["--arch", "recipe", "--threads", "1,2", "--batch", "8", "--steps", "2", "--warmup", "0",
                         "--top", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "recipe: milliseconds per step, by op"
    assert "1 thr ms" in lines[1] and "2 thr ms" in lines[1] and "speed-up" in lines[1]
    assert any("(whole)" in line for line in lines) and any("more ops)" in line for line in lines)
    saved = json.loads(out.read_text())["recipe"]
    assert set(saved) == {"1", "2"}
    for res in saved.values():
        assert res["steps"] == 2
        assert set(res["sections"]) == {"zero_grad", "forward", "backward", "adam"}
        ops = {(r["phase"], r["op"]) for r in res["rows"]}
        assert {("forward", "matmul"), ("backward", "matmul"), ("adam", "(all)")} <= ops
        # the ops and the rest of each section add up to the section
        for section, seconds in res["sections"].items():
            parts = sum(r["seconds"] for r in res["rows"] if r["phase"] == section)
            assert parts == pytest.approx(seconds, rel=1e-6)
    with pytest.raises(SystemExit) as e:
        profile.main(["--arch", "lenet"])
    assert e.value.code == 2 and "unknown architecture(s) lenet" in capsys.readouterr().err


# -- the PyTorch peer ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def peer():
    pytest.importorskip("torch")
    return _load("torch_peer")


@pytest.mark.parametrize("name", ["mnist_fc", "mnist", "recipe"])
def test_the_peer_builds_our_model_for_every_row(bench, peer, name):
    row = bench.ARCHS[name]
    shape = (784,) if row.arch == "fc" else (1, 28, 28)
    ours = GMVAE(GMVAEConfig(input_shape=shape, arch=row.arch, likelihood="bernoulli", K=row.K, Dx=row.Dx,
                             Dw=row.Dw, hidden=row.hidden, alpha=row.alpha, balance=row.balance), seed=0)
    theirs = peer.TorchGMVAE(row.arch, 784, row.K, row.Dx, row.Dw, row.hidden, alpha=row.alpha,
                             balance=row.balance)
    assert sorted(p.data.size for p in ours.parameters()) == sorted(p.numel() for p in theirs.parameters())
    assert theirs.balance == row.balance


def test_the_peers_balance_term_is_ours(peer):
    import torch

    logits = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float64) * 2
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = elbo.batch_balance(ag.tensor(log_q)).item()
    assert peer.batch_balance(torch.from_numpy(log_q)).item() == pytest.approx(expected, rel=1e-12)
    uniform = torch.full((4, 5), -np.log(5.0), dtype=torch.float64)
    assert peer.batch_balance(uniform).item() == pytest.approx(0.0, abs=1e-12)


def test_the_peers_loss_adds_the_weighted_balance_term(peer):
    import torch

    model = peer.TorchGMVAE("fc", 12, K=3, Dx=2, Dw=2, hidden=8).double()
    y = torch.rand(6, 12, dtype=torch.float64)

    def loss(balance):
        model.balance = balance
        torch.manual_seed(1)
        return model.loss(y).item()

    log_qz = torch.log_softmax(model.z_logits(model.body(y)), dim=-1)
    assert peer.batch_balance(log_qz).item() > 1e-6          # a term that is there to be missed
    assert loss(10.0) - loss(0.0) == pytest.approx(10.0 * peer.batch_balance(log_qz).item(), rel=1e-9)
