"""Tests for gmvae_np.restarts: screening several initialisations, choosing one without labels, resuming.

Runs the command line in-process on a tiny spiral (a fraction of a second per run), as tests/test_cli.py.
"""
import json
import shutil

import pytest
from blas import one_blas_thread

from gmvae_np.cli import run
from gmvae_np.presets import Settings
from gmvae_np.restarts import CRITERIA, criterion_values, restart_seed

TINY = ["--n-per-arm", "20", "--epochs", "2", "--batch-size", "25", "--no-plots", "--lr", "3e-3"]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with one_blas_thread():
        yield


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_restarts_screen_choose_without_labels_and_train_the_choice_on(tmp_path, capsys):
    d = tmp_path / "r"
    assert run("spiral", TINY + ["--restarts", "3", "--restart-epochs", "1", "--seed", "4", "--out", str(d)]) == 0
    state = json.loads((d / "restarts.json").read_text())
    assert sorted(state["screened"]) == ["1", "2", "3"] and state["settings"]["restarts"] == 3
    for i in (1, 2, 3):
        config = json.loads((d / f"restart{i}" / "config.json").read_text())
        assert config["seed"] == restart_seed(4, i) == 4 + 1000 * (i - 1)
        first = records(d / f"restart{i}")[0]
        assert state["screened"][str(i)] == criterion_values(first)      # read at the last screening epoch
    default = Settings().select_by                                         # the criterion when none is given
    assert state["settings"]["select_by"] == default == "train_entropy"
    scores = {int(i): v[default] for i, v in state["screened"].items()}
    assert len(set(scores.values())) == 3                                  # three different initialisations
    chosen = state["chosen"]
    assert chosen == min(scores, key=scores.get)
    assert [len(records(d / f"restart{i}")) for i in (1, 2, 3)] == [2 if i == chosen else 1 for i in (1, 2, 3)]
    out = capsys.readouterr().out
    assert f"keeping restart {chosen}" in out


def test_restart_one_is_the_plain_run(tmp_path):
    assert run("spiral", TINY + ["--epochs", "1", "--out", str(tmp_path / "plain")]) == 0
    assert run("spiral", TINY + ["--restarts", "2", "--restart-epochs", "1", "--epochs", "1",
                                 "--out", str(tmp_path / "r")]) == 0
    assert records(tmp_path / "plain") == records(tmp_path / "r" / "restart1")


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_chooses_its_minimum(tmp_path, criterion):
    d = tmp_path / criterion
    assert run("spiral", TINY + ["--restarts", "2", "--restart-epochs", "1", "--select-by", criterion,
                                 "--out", str(d)]) == 0
    state = json.loads((d / "restarts.json").read_text())
    scores = {int(i): v[criterion] for i, v in state["screened"].items()}
    assert state["chosen"] == min(scores, key=scores.get)


def test_an_unfinished_screening_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    argv = TINY + ["--restarts", "3", "--restart-epochs", "1"]
    assert run("spiral", argv + ["--out", str(whole)]) == 0
    assert run("spiral", argv + ["--out", str(cut)]) == 0
    # as if stopped after screening restart 2: restart 3 never ran and nothing was chosen
    state = json.loads((cut / "restarts.json").read_text())
    chosen = state["chosen"]
    shutil.rmtree(cut / "restart3")
    del state["screened"]["3"]
    state["chosen"] = None
    (cut / "restarts.json").write_text(json.dumps(state))
    assert run("spiral", ["--resume", str(cut)]) == 0
    assert json.loads((cut / "restarts.json").read_text()) == json.loads((whole / "restarts.json").read_text())
    assert records(cut / f"restart{chosen}") == records(whole / f"restart{chosen}")


def test_resume_extends_the_chosen_run(tmp_path):
    d = tmp_path / "r"
    assert run("spiral", TINY + ["--restarts", "2", "--restart-epochs", "1", "--out", str(d)]) == 0
    chosen = json.loads((d / "restarts.json").read_text())["chosen"]
    assert run("spiral", ["--resume", str(d), "--epochs", "3"]) == 0
    assert [r["epoch"] for r in records(d / f"restart{chosen}")] == [1, 2, 3]
    assert json.loads((d / "restarts.json").read_text())["settings"]["epochs"] == 3


def test_a_run_with_restarts_is_not_overwritten(tmp_path, capsys):
    d = tmp_path / "r"
    argv = TINY + ["--restarts", "2", "--restart-epochs", "1", "--out", str(d)]
    assert run("spiral", argv) == 0
    capsys.readouterr()
    assert run("spiral", argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"--resume {d}" in err[0]


def test_a_series_of_seeds_with_restarts(tmp_path, capsys):
    root = tmp_path / "s"
    assert run("spiral", TINY + ["--seeds", "1,2", "--restarts", "2", "--restart-epochs", "1",
                                 "--out", str(root)]) == 0
    summary = json.loads((root / "summary.json").read_text())
    assert sorted(summary["runs"]) == ["1", "2"]
    for seed in (1, 2):
        state = json.loads((root / f"seed{seed}" / "restarts.json").read_text())
        chosen = records(root / f"seed{seed}" / f"restart{state['chosen']}")
        assert summary["runs"][str(seed)]["purity"] == chosen[-1]["eval"]["purity"]
    assert run("spiral", ["--resume", str(root)]) == 0      # a finished series resumes to the same table
    assert json.loads((root / "summary.json").read_text()) == summary


def test_a_parallel_series_with_restarts_gives_the_same_table(tmp_path):
    """--jobs 2 trains the seeds of a series with restarts in worker processes: the same choices and the
    same summary as one process."""
    argv = TINY + ["--seeds", "1,2", "--restarts", "2", "--restart-epochs", "1"]
    assert run("spiral", argv + ["--out", str(tmp_path / "one")]) == 0
    assert run("spiral", argv + ["--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    for seed in (1, 2):
        a, b = (json.loads((tmp_path / d / f"seed{seed}" / "restarts.json").read_text()) for d in ("one", "two"))
        assert a["chosen"] == b["chosen"] and a["screened"] == b["screened"]
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two")]
    assert summaries[0]["metrics"] == summaries[1]["metrics"]


def test_restarts_screened_in_workers_then_trained_on_here_are_not_called_a_resume(tmp_path, capsys, monkeypatch):
    """--restarts N --jobs N screens in workers on one BLAS thread each; the chosen restart then trains on
    in this process, on its own thread count. That is one run of this command: no note about resuming
    with another thread count. A real --resume with another count still says so."""
    from gmvae_np import train as train_module

    monkeypatch.setattr(train_module, "blas_threads", lambda: 2)   # this process; the workers keep 1
    d = tmp_path / "run"
    assert run("spiral", TINY + ["--restarts", "2", "--restart-epochs", "1", "--jobs", "2", "--out", str(d)]) == 0
    err = capsys.readouterr().err
    assert "BLAS thread" not in err and "bit-identical" not in err, err
    chosen = json.loads((d / "restarts.json").read_text())["chosen"]
    # the chosen run's checkpoint was last written here, with two threads: a resume with three is a change
    monkeypatch.setattr(train_module, "blas_threads", lambda: 3)
    assert run("spiral", ["--resume", str(d), "--epochs", "3"]) == 0
    assert "trained with 2 BLAS thread(s) and resumes with 3" in capsys.readouterr().err
    assert len(records(d / f"restart{chosen}")) == 3
