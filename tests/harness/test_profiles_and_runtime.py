"""Profiles, parameter validation, seeding and device choice."""

import pytest
import torch

from l2l_utils.harness import profiles as profiles_module
from l2l_utils.harness.profiles import ParameterError, parse_overrides, resolve_profile
from l2l_utils.harness.runtime import resolve_device, seed_everything

PROFILES = {
    "smoke": {"steps": 10, "meta_lr": 0.01, "optimizers": ["ADAM", "NAG"], "hidden": [20], "dataset": "MNIST",
              "tune": False},
    "paper": {"steps": 100, "meta_lr": 0.001, "optimizers": ["ADAM", "RMSprop", "NAG", "SGD"], "hidden": [20],
              "dataset": "MNIST", "tune": True},
}
CHOICES = {"optimizers": ("ADAM", "RMSprop", "NAG", "SGD"), "dataset": ("MNIST", "FashionMNIST")}


def _resolve(profile="smoke", overrides=None):
    return resolve_profile(profile, PROFILES, overrides, CHOICES)


def test_resolve_profile_defaults_and_overrides():
    p = _resolve("smoke", {"steps": 3, "optimizers": ["SGD"]})
    assert p["steps"] == 3 and p.steps == 3
    assert p.optimizers == ["SGD"]
    assert p.meta_lr == 0.01 and p.profile == "smoke"
    assert _resolve("paper").steps == 100


def test_unknown_profile_names_parameter_and_allowed_values():
    with pytest.raises(ParameterError) as err:
        _resolve("fast")
    msg = str(err.value)
    assert "profile" in msg and "fast" in msg and "smoke" in msg and "paper" in msg


def test_unknown_override_key_names_it_and_allowed_keys():
    with pytest.raises(ParameterError) as err:
        _resolve("smoke", {"stepz": 3})
    msg = str(err.value)
    assert "stepz" in msg and "steps" in msg and "meta_lr" in msg


@pytest.mark.parametrize("value", [0, -5])
def test_non_positive_integer_rejected(value):
    with pytest.raises(ParameterError, match="steps"):
        _resolve("smoke", {"steps": value})


@pytest.mark.parametrize("value", [2.5, 3.0, "10"])
def test_non_integer_where_integer_required(value):
    with pytest.raises(ParameterError, match="steps"):
        _resolve("smoke", {"steps": value})


def test_non_positive_float_rejected():
    with pytest.raises(ParameterError, match="meta_lr"):
        _resolve("smoke", {"meta_lr": 0.0})


def test_int_accepted_where_float_default():
    assert _resolve("smoke", {"meta_lr": 1}).meta_lr == 1


@pytest.mark.parametrize("key,value,bad", [("dataset", "CIFAR", "CIFAR"), ("optimizers", ["ADAM", "LBFGS"], "LBFGS")])
def test_value_outside_choices_names_parameter_and_allowed_values(key, value, bad):
    with pytest.raises(ParameterError) as err:
        _resolve("smoke", {key: value})
    msg = str(err.value)
    assert key in msg and bad in msg
    assert all(allowed in msg for allowed in CHOICES[key])


def test_bool_and_list_validation():
    with pytest.raises(ParameterError, match="tune"):
        _resolve("smoke", {"tune": 1})
    with pytest.raises(ParameterError, match="hidden"):
        _resolve("smoke", {"hidden": []})
    with pytest.raises(ParameterError, match="hidden"):
        _resolve("smoke", {"hidden": [20, 0]})
    with pytest.raises(ParameterError, match="hidden must hold positive integers"):
        _resolve("smoke", {"hidden": [20, 2.5]})  # a list of integers (layer sizes, T values) stays integer


def test_parse_overrides_accepts_dict_literal_string():
    assert parse_overrides("{'steps': 3, 'optimizers': ['SGD']}") == {"steps": 3, "optimizers": ["SGD"]}
    assert parse_overrides(None) == {} and parse_overrides("") == {}
    assert parse_overrides({"a": 1}) == {"a": 1}
    assert _resolve("smoke", "{'steps': 4}").steps == 4


@pytest.mark.parametrize("text", ["steps=3", "{'steps': }", "[1, 2]"])
def test_parse_overrides_rejects_non_dicts(text):
    with pytest.raises(ParameterError, match="overrides"):
        parse_overrides(text)


def test_resolved_profile_is_read_only():
    p = _resolve()
    with pytest.raises(TypeError):
        p["steps"] = 5


def test_andrychowicz_paper_profile_matches_paper():
    table = getattr(profiles_module, "PAPER_PROFILES", {}).get("andrychowicz2016")
    if table is None:
        pytest.skip("no andrychowicz2016 profile table in l2l_utils.harness.profiles")
    paper = table["paper"]
    # §3.1: 10-D quadratics, 100 steps, unroll 20; §3.2: 20 hidden units, minibatch 128, output ×0.1,
    # Appendix A preprocessing with p = 10
    expected = {"quad_dim": 10, "quad_steps": 100, "quad_unroll": 20, "mnist_hidden": 20, "mnist_batch": 128,
                "mnist_steps": 100, "mnist_unroll": 20, "output_scale": 0.1, "preprocess_p": 10.0}
    for key, value in expected.items():
        if key in paper:
            assert paper[key] == value, key


# ----------------------------------------------------------------------------------- runtime
def test_resolve_device_rejects_unknown_with_allowed_values():
    with pytest.raises(ParameterError) as err:
        resolve_device("tpu")
    msg = str(err.value)
    assert "tpu" in msg and "cpu" in msg and "auto" in msg and "cuda" in msg
    with pytest.raises(ParameterError):
        resolve_device("cuda:x")
    with pytest.raises(ParameterError):
        resolve_device(0)


def test_resolve_device_auto(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ParameterError, match="CUDA"):
        resolve_device("cuda")


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ParameterError):
        seed_everything(seed)


def test_seed_everything_is_reproducible():
    g1 = seed_everything(7)
    a = (torch.rand(3), torch.rand(3, generator=g1))
    g2 = seed_everything(7)
    b = (torch.rand(3), torch.rand(3, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("paper, keys", [
    ("andrychowicz2016", ["quad_test", "mnist_test", "cifar_test"]),
    ("kuo2020", ["test_runs"]),
    ("metamd", ["trials", "quad_test_problems"]),
    ("simple_optimizer", ["test_runs"]),
    ("huisman2022", ["runs", "fig3_runs", "image_runs"]),
    ("head_to_head", ["test_runs", "tune_runs"]),
])
def test_the_paper_profiles_have_enough_independent_units_to_decide_a_comparison(paper, keys):
    """Below MIN_UNITS every comparison is inconclusive, so a paper profile with fewer could never decide a claim."""
    import importlib

    from l2l_utils.reporting.verdicts import MIN_UNITS
    settings = importlib.import_module(f"l2l_utils.harness.profiles.{paper}").PAPER
    for key in keys:
        assert settings[key] >= MIN_UNITS, (paper, key, settings[key])
    if paper == "metamd":  # Algorithm 1's claim is decided over the fixed validation problems of every domain
        assert settings["val_problems_per_task"] * (len(settings["rotated_domains"]) - 1) >= MIN_UNITS


def test_cuts_from_paper_lists_every_changed_field_with_both_values():
    profiles = {**PROFILES, "cpu": dict(PROFILES["paper"], steps=40, optimizers=["ADAM", "NAG"])}
    assert profiles_module.cuts_from_paper(profiles, "cpu") == [
        ("steps", 100, 40), ("optimizers", ["ADAM", "RMSprop", "NAG", "SGD"], ["ADAM", "NAG"])]
    assert profiles_module.cuts_from_paper(profiles, "paper") == []
    with pytest.raises(ParameterError, match="unknown"):
        profiles_module.cuts_from_paper(profiles, "gpu")


@pytest.mark.parametrize("paper", sorted(profiles_module.PAPER_PROFILES))
def test_every_cpu_profile_keeps_enough_test_runs_for_a_verdict(paper):
    """A reduced profile may cut amounts, but never below the verdicts' minimum number of units."""
    from l2l_utils.reporting.verdicts import MIN_UNITS

    profiles = profiles_module.PAPER_PROFILES[paper]
    if "cpu" not in profiles:
        pytest.skip(f"{paper} has no cpu profile")
    units = {field: value for field, value in profiles["cpu"].items()
             if field in ("test_runs", "runs", "trials", "fig3_runs", "image_runs", "mnist_test", "cifar_test",
                          "quad_test_problems", "art_test", "quad_test")}
    assert units, "name the cpu profile's test-run fields here"
    assert all(value >= MIN_UNITS for value in units.values()), units
