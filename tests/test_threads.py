"""Tests of the engine's own threads (autograd_lite.threads) and of each place that uses them: every
threaded path gives the same bits as one thread, and the plain formula stays the reference."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autograd_lite as ag
from autograd_lite.threads import blocks, run_blocks


@pytest.fixture
def two_threads():
    with ag.threads(2):
        yield


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 500), parts=st.integers(1, 9), min_rows=st.integers(1, 50))
def test_blocks_cover_the_range_once_in_order(n, parts, min_rows):
    spans = blocks(n, parts, min_rows)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert len(spans) <= parts
    if len(spans) > 1:
        assert min(hi - lo for lo, hi in spans) >= min_rows
        assert max(hi - lo for lo, hi in spans) - min(hi - lo for lo, hi in spans) <= 1


def test_run_blocks_uses_other_threads_and_writes_every_row_once(two_threads):
    seen, out = [], np.zeros(1000)

    def work(lo, hi):
        seen.append((lo, hi, threading.current_thread().name))
        out[lo:hi] += 1

    run_blocks(work, 1000, min_rows=10)
    assert np.all(out == 1)
    assert sorted(s[:2] for s in seen) == [(0, 500), (500, 1000)]
    assert len({s[2] for s in seen}) == 2          # the second block ran in a pool thread


def test_one_thread_small_work_gpu_and_nested_calls_run_inline(two_threads):
    calls = []
    run_blocks(lambda lo, hi: calls.append((lo, hi)), 15, min_rows=10)      # too small to split
    assert calls == [(0, 15)]

    class Gpu:
        name = "cupy"

    calls.clear()
    run_blocks(lambda lo, hi: calls.append((lo, hi)), 100, backend=Gpu())
    assert calls == [(0, 100)]
    inner = []

    def outer(lo, hi):
        run_blocks(lambda a, b: inner.append((lo, a, b)), 100)

    run_blocks(outer, 100)
    assert sorted(inner) == [(0, 0, 100), (50, 0, 100)]      # each block ran its inner call whole
    with ag.threads(1):
        calls.clear()
        run_blocks(lambda lo, hi: calls.append((lo, hi)), 1000)
        assert calls == [(0, 1000)]


def test_an_error_in_any_block_is_raised_after_all_blocks_end(two_threads):
    done = []

    def work(lo, hi):
        if lo > 0:
            raise ValueError("second block failed")
        done.append(lo)

    with pytest.raises(ValueError, match="second block failed"):
        run_blocks(work, 100)
    assert done == [0]


def test_bad_thread_counts_are_refused():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="whole number >= 1"):
            ag.set_threads(bad)
    assert ag.get_threads() == 1
    with ag.threads(3):
        assert ag.get_threads() == 3
    assert ag.get_threads() == 1


def _adam_run(threads, weight_decay=0.0):
    from gmvae_np.optim import Adam

    rng = np.random.default_rng(0)
    params = [ag.tensor(rng.normal(size=shape).astype(np.float32), requires_grad=True)
              for shape in [(300, 700), (1000,), (5, 3), ()]]
    opt = Adam(params, lr=1e-2, weight_decay=weight_decay)
    with ag.threads(threads):
        for _ in range(3):
            for p in params:
                p.grad = rng.normal(size=p.shape).astype(np.float32)
            opt.step()
    return [p.data.copy() for p in params], opt.state_dict()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_on_two_threads_is_bit_identical_to_one(weight_decay):
    one, state_one = _adam_run(1, weight_decay)
    two, state_two = _adam_run(2, weight_decay)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(state_one["state"], state_two["state"]):
        np.testing.assert_array_equal(a["m"], b["m"])
        np.testing.assert_array_equal(a["v"], b["v"])


def test_a_training_is_bit_identical_on_two_engine_threads(tmp_path):
    """The spiral, with Adam's blocks shared by two threads, ends with the same parameters and writes the
    same metrics as on one (one BLAS thread for both: only the engine's threads differ)."""
    from blas import one_blas_thread
    from test_train import final_state, quiet

    from gmvae_np.presets import preset

    # hidden 300: the 300 x 300 weight is 90,000 numbers, more than one Adam block, so two threads share it
    s = preset("spiral", n_per_arm=40, epochs=3, batch_size=25, lr=3e-3, plots=False, hidden=300)
    with one_blas_thread():
        quiet(s, tmp_path / "one").run()
        with ag.threads(2):
            quiet(s, tmp_path / "two").run()
    assert (tmp_path / "one" / "metrics.jsonl").read_bytes() == (tmp_path / "two" / "metrics.jsonl").read_bytes()
    (model_one, opt_one), (model_two, opt_two) = final_state(tmp_path / "one"), final_state(tmp_path / "two")
    for name in model_one:
        np.testing.assert_array_equal(model_one[name], model_two[name])


def test_the_command_line_threads_flag(tmp_path, capsys):
    from blas import one_blas_thread

    from gmvae_np.cli import run

    tiny = ["--n-per-arm", "20", "--epochs", "2", "--batch-size", "25", "--no-plots", "--lr", "3e-3"]
    with one_blas_thread():
        assert run("spiral", tiny + ["--out", str(tmp_path / "plain")]) == 0
        assert run("spiral", tiny + ["--threads", "1", "--out", str(tmp_path / "one")]) == 0
    assert ag.get_threads() == 1                      # set for the run only
    assert (tmp_path / "plain" / "metrics.jsonl").read_bytes() == (tmp_path / "one" / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    for argv, message in [(["--threads", "0"], "--threads must be a whole number >= 1"),
                          (["--threads", "2", "--seeds", "1-2", "--jobs", "2"], "leave out --threads")]:
        assert run("spiral", tiny + argv + ["--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
