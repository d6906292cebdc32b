"""Tests for gmvae_np.checkpoint: exact round trips, moves between backends, and refusing bad files.

A restored model must give identical outputs and identical next Adam steps; a missing, truncated, corrupt,
pickled, newer-format or mismatched checkpoint must be refused with one clear line naming the file.
"""
import json
import os

import numpy as np
import pytest

import autograd_lite as ag
from gmvae_np import Adam, GMVAE, GMVAEConfig
from gmvae_np.checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint, restore,
                                 save_checkpoint)

from strategies import BACKENDS, OTHER_THAN_NUMPY  # numpy, strict, and cupy (marked gpu; skipped without a GPU)


def _config(**overrides):
    settings = dict(input_shape=(5,), likelihood="gaussian", K=3, Dx=2, Dw=2, hidden=6, dtype="float64",
                    mc=2)
    settings.update(overrides)
    return GMVAEConfig(**settings)


def _batch(seed=0, n=8):
    return np.random.default_rng(seed).normal(size=(n, 5))


def _noise(seed=1, n=8):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((2, n, 2)), "w": rng.standard_normal((2, n, 2))}


def _train(model, opt, steps, seed=0):
    for s in range(steps):
        out = model.loss(_batch(seed + s))
        opt.zero_grad()
        out.objective.backward()
        opt.step()


def _trained(backend="numpy", steps=3, **overrides):
    model = GMVAE(_config(**overrides), backend=backend, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    _train(model, opt, steps)
    return model, opt


def _save(path, model, opt=None, **kw):
    return save_checkpoint(path, model=model, optimizer=opt, rng_state=model.rng.get_state(),
                           config={"model": model.config.to_dict()}, extra=kw.pop("extra", {"epoch": 3}), **kw)


def _host(a):
    return ag.tensor(a).backend.to_numpy(a) if not isinstance(a, np.ndarray) else a


# -- round trips -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_gives_identical_outputs_and_identical_next_adam_steps(tmp_path, backend):
    model, opt = _trained(backend)
    path = _save(tmp_path / "ckpt.npz", model, opt, extra={"epoch": 3, "note": "after 3 steps"})
    ckpt = load_checkpoint(path)
    assert ckpt.format_version == FORMAT_VERSION and ckpt.extra == {"epoch": 3, "note": "after 3 steps"}
    assert ckpt.config["model"] == model.config.to_dict()

    fresh = GMVAE(_config(), backend=backend, seed=123)            # different initial weights
    fresh_opt = Adam(fresh.parameters(), lr=1e-2)
    restore(ckpt, fresh, fresh_opt)
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        np.testing.assert_array_equal(q.numpy(), p.numpy(), err_msg=name)
    for (name, a), (_, b) in zip(model.named_buffers(), fresh.named_buffers()):
        np.testing.assert_array_equal(_host(b), _host(a), err_msg=name)
    y, noise = _batch(50), _noise()
    np.testing.assert_array_equal(fresh.loss(y, noise=noise).objective.numpy(),
                                  model.loss(y, noise=noise).objective.numpy())
    model.eval()
    fresh.eval()
    np.testing.assert_array_equal(fresh.predict_proba(y).numpy(), model.predict_proba(y).numpy())
    model.train()
    fresh.train()

    # the next steps, with the random stream restored too, are bit for bit the same
    model.rng.set_state(ckpt.rng_state)
    _train(model, opt, 2, seed=10)
    fresh.rng.set_state(ckpt.rng_state)
    _train(fresh, fresh_opt, 2, seed=10)
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        np.testing.assert_array_equal(q.numpy(), p.numpy(), err_msg=name)


def test_adam_state_is_saved_not_reset(tmp_path):
    """Restoring without the optimizer state would start from zero moments: a different next step."""
    model, opt = _trained(steps=4)
    ckpt = load_checkpoint(_save(tmp_path / "c.npz", model, opt))
    assert all(s["step"] == 4 for s in ckpt.optimizer_state["state"])
    with_state, without = GMVAE(_config(), seed=1), GMVAE(_config(), seed=1)
    opt_with, opt_without = Adam(with_state.parameters(), lr=1e-2), Adam(without.parameters(), lr=1e-2)
    restore(ckpt, with_state, opt_with)
    restore(ckpt, without)
    for m, o in ((with_state, opt_with), (without, opt_without)):
        out = m.loss(_batch(7), noise=_noise())
        o.zero_grad()
        out.objective.backward()
        o.step()
    diff = [np.max(np.abs(p.numpy() - q.numpy())) for p, q in zip(with_state.parameters(), without.parameters())]
    assert max(diff) > 1e-6


@pytest.mark.parametrize("target", OTHER_THAN_NUMPY)
def test_checkpoint_moves_between_backends(tmp_path, target):
    model, opt = _trained("numpy")
    path = _save(tmp_path / "c.npz", model, opt)
    other = GMVAE(_config(), backend=target, seed=5)
    other_opt = Adam(other.parameters(), lr=1e-2)
    restore(load_checkpoint(path), other, other_opt)
    y, noise = _batch(3), _noise()
    np.testing.assert_allclose(other.loss(y, noise=noise).objective.numpy(),
                               model.loss(y, noise=noise).objective.numpy(), rtol=1e-12)
    # and back again, through a checkpoint written on the other backend
    back = GMVAE(_config(), seed=9)
    restore(load_checkpoint(_save(tmp_path / "d.npz", other, other_opt)), back, Adam(back.parameters()))
    for p, q in zip(model.parameters(), back.parameters()):
        np.testing.assert_array_equal(q.numpy(), p.numpy())


def test_load_onto_a_backend_puts_the_model_state_there(tmp_path):
    model, opt = _trained()
    ckpt = load_checkpoint(_save(tmp_path / "c.npz", model, opt), backend="strict")
    strict = ag.get_backend("strict")
    first = next(iter(ckpt.model_state.values()))
    assert type(first).__module__.startswith("array_api_strict") and first.device == strict.device
    target = GMVAE(_config(), backend="strict", seed=3)
    restore(ckpt, target, Adam(target.parameters()))
    np.testing.assert_array_equal(target.parameters()[0].numpy(), model.parameters()[0].numpy())


def test_save_is_atomic_and_fsyncs_before_the_rename(tmp_path, monkeypatch):
    model, opt = _trained()
    path = _save(tmp_path / "c.npz", model, opt)
    before = path.read_bytes()
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])

    def failing_replace(src, dst):
        calls.append("replace")
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", failing_replace)
    _train(model, opt, 1)
    with pytest.raises(OSError, match="disk went away"):
        _save(path, model, opt)
    assert calls[:2] == ["fsync", "replace"]
    assert path.read_bytes() == before                           # the old checkpoint is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # and no temporary file is left
    monkeypatch.setattr(os, "replace", real_replace)
    _save(path, model, opt)
    assert path.read_bytes() != before


# -- refusing bad files ----------------------------------------------------------------------------

def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.npz: no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.npz")


@pytest.mark.parametrize("damage", ["truncate_half", "truncate_tail", "empty", "flip_bytes", "garbage"])
def test_truncated_or_corrupt_files_are_refused(tmp_path, damage):
    model, opt = _trained()
    path = _save(tmp_path / "c.npz", model, opt)
    data = bytearray(path.read_bytes())
    if damage == "truncate_half":
        data = data[: len(data) // 2]
    elif damage == "truncate_tail":
        data = data[:-10]
    elif damage == "empty":
        data = bytearray()
    elif damage == "flip_bytes":   # inside the first array's data: its CRC no longer matches
        start = data.index(b"\x93NUMPY") + 200
        for i in range(start, start + 16):
            data[i] ^= 0xFF
    else:
        data = bytearray(np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"c\.npz: cannot be read, the file is truncated or corrupt") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value)


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_newer_format_version_is_refused(tmp_path):
    model, opt = _trained()
    path = _save(tmp_path / "c.npz", model, opt)

    def bump(arrays):
        meta = json.loads(str(arrays["__meta__"]))
        meta["format_version"] = FORMAT_VERSION + 1
        meta["package_version"] = "9.0.0"
        arrays["__meta__"] = np.array(json.dumps(meta))

    _rewrite(path, bump)
    with pytest.raises(CheckpointError, match=rf"newer gmvae-np \(9.0.0, checkpoint format {FORMAT_VERSION + 1}\)"
                                              r".*upgrade gmvae-np"):
        load_checkpoint(path)


def test_pickled_content_is_never_loaded(tmp_path):
    model, opt = _trained()
    path = _save(tmp_path / "c.npz", model, opt)
    _rewrite(path, lambda arrays: arrays.__setitem__("model/evil", np.array([{"a": 1}], dtype=object)))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_a_foreign_npz_is_refused(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"weights\.npz: not a gmvae-np checkpoint"):
        load_checkpoint(path)


def test_mismatched_config_is_refused_naming_the_settings(tmp_path):
    model, opt = _trained()
    ckpt = load_checkpoint(_save(tmp_path / "c.npz", model, opt))
    other = GMVAE(_config(K=4, variant="mi"), seed=0)
    snapshot = [p.numpy().copy() for p in other.parameters()]
    with pytest.raises(CheckpointError, match=r"c\.npz: was saved from a model with different settings: "
                                              r"K \(checkpoint 3, model 4\); variant \(checkpoint 'cv', model 'mi'\)"):
        restore(ckpt, other, Adam(other.parameters()))
    for p, before in zip(other.parameters(), snapshot):
        np.testing.assert_array_equal(p.numpy(), before)


def test_restore_is_all_or_nothing(tmp_path):
    model, opt = _trained()
    ckpt = load_checkpoint(_save(tmp_path / "c.npz", model, opt))
    target = GMVAE(_config(), seed=4)
    snapshot = [p.numpy().copy() for p in target.parameters()]
    wrong_opt = Adam(target.parameters()[:3])                  # an optimizer over other parameters
    with pytest.raises(CheckpointError, match="does not fit this model/optimizer"):
        restore(ckpt, target, wrong_opt)
    for p, before in zip(target.parameters(), snapshot):
        np.testing.assert_array_equal(p.numpy(), before)


def test_restoring_an_optimizer_needs_its_state(tmp_path):
    model, _ = _trained()
    ckpt = load_checkpoint(_save(tmp_path / "c.npz", model, None))
    assert ckpt.optimizer_state is None
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        restore(ckpt, model, Adam(model.parameters()))
    restore(ckpt, model)


def test_unserialisable_extra_is_refused_and_nothing_is_written(tmp_path):
    model, opt = _trained()
    with pytest.raises(CheckpointError, match="must be JSON-serialisable"):
        _save(tmp_path / "c.npz", model, opt, extra={"when": object()})
    assert not any(tmp_path.iterdir())


def test_numpy_scalars_and_config_objects_are_stored_as_json(tmp_path):
    model, opt = _trained()
    path = save_checkpoint(tmp_path / "c.npz", model=model, optimizer=opt, config=model.config,
                           extra={"loss": np.float32(1.5), "step": np.int64(7)})
    ckpt = load_checkpoint(path)
    assert ckpt.extra == {"loss": 1.5, "step": 7} and ckpt.config == model.config.to_dict()
    restore(ckpt, GMVAE(_config(), seed=2))
