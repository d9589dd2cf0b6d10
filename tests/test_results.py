"""Results store, atomic writes and checkpoints."""

import os

import pandas as pd
import pytest
import torch

from l2l_utils import results
from l2l_utils.results import (Checkpointer, ResultsStore, atomic_save_torch, atomic_write_text,
                               config_key)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "hello")
    atomic_write_text(target, "again")
    assert target.read_text() == "again"
    assert os.listdir(target.parent) == ["a.txt"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    with pytest.raises(OSError):
        atomic_save_torch({"x": 1}, target)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_config_key_is_stable_and_order_free():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})
    assert len(config_key({})) == 12


def test_store_round_trip_and_has(tmp_path):
    store = ResultsStore(tmp_path / "res")
    frame = pd.DataFrame({"optimizer": ["adam", "lstm"], "step": [0, 1], "loss": [1.5, 0.25]})
    config = {"profile": "smoke", "steps": 10, "lrs": [0.1, 0.01]}
    assert not store.has("curves")
    store.save("curves", frame, {"config": config, "seed": 0})
    loaded, meta = store.load("curves")
    pd.testing.assert_frame_equal(loaded, frame)
    assert meta["seed"] == 0 and meta["config"] == config
    assert {"torch_version", "python_version", "saved_at"} <= meta.keys()
    assert store.path("curves") == tmp_path / "res" / "curves.csv"
    assert store.has("curves")
    assert store.has("curves", config=dict(config))
    assert not store.has("curves", config={**config, "steps": 11})
    assert sorted(os.listdir(tmp_path / "res")) == ["curves.csv", "curves.json"]


def test_checkpoint_round_trip(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt" / "meta.pt")
    assert ckpt.load() is None
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(123)
    torch.randn(5, generator=gen)
    state = {"step": 7, "losses": [1.0, 0.5], "model": model.state_dict(),
             "optimizer": opt.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state()}
    ckpt.save(state)
    expected = torch.randn(5, generator=gen)

    loaded = ckpt.load()
    assert loaded["step"] == 7 and loaded["losses"] == [1.0, 0.5]
    restored = torch.Generator()
    restored.set_state(loaded["generator"])
    assert torch.equal(torch.randn(5, generator=restored), expected)
    model2 = torch.nn.Linear(3, 2)
    model2.load_state_dict(loaded["model"])
    assert torch.equal(model2.weight, model.weight)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    opt2.load_state_dict(loaded["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    ckpt.clear()
    assert ckpt.load() is None
    ckpt.clear()  # clearing twice is fine
