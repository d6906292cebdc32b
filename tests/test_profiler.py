"""Tests of autograd_lite.profile: every op of a step is charged, forward and backward, and the charges
add up to the sections that hold them; one profiler at a time; nothing is told once the block ends."""
import doctest
import sys
import time

import numpy as np
import pytest

import autograd_lite as ag


def _step(x, w):
    h = ag.relu(x @ w)
    return (h * h).sum()


def test_the_module_example_runs():
    result = doctest.testmod(sys.modules["autograd_lite.profiler"])
    assert result.attempted >= 4 and result.failed == 0


def test_each_op_is_charged_once_per_call_and_the_parts_add_up_to_the_sections():
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.normal(size=(64, 32)).astype(np.float32))
    w = ag.tensor(rng.normal(size=(32, 16)).astype(np.float32), requires_grad=True)
    with ag.profile() as prof:
        for _ in range(3):
            with prof.section("forward"):
                loss = _step(x, w)
            with prof.section("backward"):
                loss.backward()
    assert {op: prof.calls["forward", op] for op in prof.forward} == {"matmul": 3, "relu": 3, "mul": 3, "sum": 3}
    assert {op: prof.calls["backward", op] for op in prof.backward} == {"matmul": 3, "relu": 3, "mul": 3, "sum": 3}
    rows = prof.rows()
    for section in ("forward", "backward"):
        parts = sum(r["seconds"] for r in rows if r["phase"] == section)    # its ops and its rest
        assert parts == pytest.approx(prof.sections[section], rel=1e-9, abs=1e-12)
        assert all(r["seconds"] >= 0 for r in rows)
    table = prof.table(steps=3)
    assert table.splitlines()[0].split()[:3] == ["phase", "op", "ms/step"] and "matmul" in table


def test_a_slow_op_is_charged_to_that_op():
    x = ag.tensor(np.ones((4, 4), np.float32), requires_grad=True)
    calls = []

    def slow_sync():
        calls.append(1)

    with ag.profile(sync=slow_sync) as prof:
        with prof.section("forward"):
            y = x * 2.0
            time.sleep(0.05)            # Python between ops: charged to the op that ends it
            z = ag.exp(y)
    assert prof.forward["exp"] >= 0.05 > prof.forward["mul"]
    assert calls                        # the sync ran at the marks


def test_one_profiler_at_a_time_and_none_after_the_block():
    from autograd_lite.tensor import _swap_profiler

    with ag.profile():
        with pytest.raises(RuntimeError, match="another profile"):
            with ag.profile():
                pass
    assert _swap_profiler(None) is None
    with ag.profile() as prof:
        pass
    ag.exp(ag.tensor([1.0], requires_grad=True))
    assert not prof.forward and not prof.sections


def test_an_inner_section_is_not_charged_to_the_next_op_of_the_outer_one():
    x = ag.tensor(np.ones(3, np.float32), requires_grad=True)
    with ag.profile() as prof:
        with prof.section("step"):
            y = x * 2.0
            with prof.section("pause"):
                time.sleep(0.05)
            ag.exp(y)
    assert prof.sections["pause"] >= 0.05 > prof.forward["exp"]
