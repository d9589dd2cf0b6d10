"""Results store, atomic writes and checkpoints."""

import os

import pandas as pd
import pytest
import torch

from l2l_utils.storage import results
from l2l_utils.storage.results import Checkpointer, ResultsStore, atomic_save_torch, atomic_write_text, config_key


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
    store.save("curves", frame, {**results.provenance(set(), config), "seed": 0})
    loaded, meta = store.load("curves")
    pd.testing.assert_frame_equal(loaded, frame)
    assert meta["seed"] == 0 and meta["config"] == config
    assert {"torch_version", "python_version", "saved_at"} <= meta.keys()
    assert store.path("curves") == tmp_path / "res" / "curves.csv"
    assert store.has("curves")
    assert store.has("curves", config=dict(config))
    assert not store.has("curves", config={**config, "steps": 11})
    assert sorted(os.listdir(tmp_path / "res")) == ["curves.csv", "curves.json"]
    # a result stored without its provenance (code version, reads) is never reused
    store.save("old", frame, {"config": config})
    assert not store.has("old", config)


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


# ----------------------------------------------------------------------------- derived cache keys

def test_cache_keys_are_derived_from_the_fields_a_computation_reads(tmp_path):
    """Changing each profile field in turn recomputes exactly the results that read it (directly, or through an
    upstream result whose key they name), and a reused result still counts its reads for the results around it."""
    from l2l_utils.harness.profiles import resolve_profile
    from l2l_utils.storage.results import ResultsStore, cached_frame, track_profile

    base = {"a": 1, "b": 2, "c": 3, "unused": 4}
    store = ResultsStore(tmp_path)

    def run(overrides):
        cfg = resolve_profile("p", {"p": base}, overrides)
        track_profile(cfg)
        computed = []
        try:
            def first():
                computed.append("first")
                return pd.DataFrame({"x": [cfg.a]})

            def second():
                computed.append("second")
                return pd.DataFrame({"x": [cfg.b + cfg["c"]]})

            cached_frame(store, "first", {"what": "first"}, first)
            cached_frame(store, "second", {"what": "second", "upstream": store.key("first")}, second)

            def outer():  # reads nothing itself, but reuses "first" inside: it depends on what "first" read
                computed.append("outer")
                frame, _ = cached_frame(store, "first", {"what": "first"}, first)
                return frame

            cached_frame(store, "outer", {"what": "outer"}, outer)
        finally:
            track_profile(None)
        return set(computed)

    assert run({}) == {"first", "second", "outer"}
    assert run({}) == set()  # nothing changed: everything reused
    assert run({"unused": 9}) == set()
    assert run({"c": 9}) == {"second"}
    assert run({"c": 9, "b": 7}) == {"second"}
    assert run({"c": 9, "b": 7, "a": 5}) == {"first", "second", "outer"}  # upstream key and replayed reads
    meta = store.load("second")[1]
    assert meta["reads"] == {"b": 7, "c": 9} and meta["code"] and meta["key"]


def test_a_code_change_recomputes(tmp_path, monkeypatch):
    from l2l_utils.storage import results as R
    store = R.ResultsStore(tmp_path)
    calls = []
    R.cached_frame(store, "x", {}, lambda: calls.append(1) or pd.DataFrame({"v": [1]}))
    R.cached_frame(store, "x", {}, lambda: calls.append(1) or pd.DataFrame({"v": [1]}))
    assert len(calls) == 1
    monkeypatch.setattr(R, "code_version", lambda: "edited")
    R.cached_frame(store, "x", {}, lambda: calls.append(1) or pd.DataFrame({"v": [1]}))
    assert len(calls) == 2


def test_code_version_covers_the_computational_modules_only():
    from l2l_utils.storage import results as R
    hashed = set(R.computational_modules())
    assert {"learned_optimizers/meta_learners.py", "meta_training/hypergradients.py", "tasks/problems.py",
            "optimizers/unroll.py", "tasks/datasets/core.py", "harness/runtime.py"} <= hashed
    assert not hashed & R.PRESENTATION_MODULES
    assert not any(name.startswith("harness/profiles/") for name in hashed)
    # every name in the presentation list is a module that exists (a moved module must not fall out of the list)
    assert all((R.PACKAGE_ROOT / name).is_file() for name in R.PRESENTATION_MODULES)
    assert {"reporting/verdicts.py", "reporting/claims.py", "reporting/plotting.py"} <= R.PRESENTATION_MODULES