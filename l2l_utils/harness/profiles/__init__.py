"""Profiles: named, validated sets of experiment sizes.

``smoke`` runs the whole pipeline at toy size on a CPU; ``paper`` holds the paper's own settings.
Every value can be overridden, and any bad value fails at once with a message naming the parameter
and what is allowed.
"""

from __future__ import annotations

import ast
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Mapping


class ParameterError(ValueError):
    """A notebook parameter or profile override has a value that is not allowed."""


class Profile(dict):
    """A resolved profile: a read-only dict whose keys are also attributes.

    Reads can be recorded (:meth:`recording`): the results store keys a cached computation by the fields it
    actually read, so a changed field recomputes exactly what depends on it (:mod:`l2l_utils.storage.results`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._recorders: list[set] = []

    def __getitem__(self, key):
        value = super().__getitem__(key)
        for reads in self._recorders:
            reads.add(key)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setitem__(self, key, value):  # pragma: no cover - guard only
        raise TypeError("a resolved profile is read-only; pass overrides to resolve_profile")

    def __reduce__(self):
        return (type(self), (dict(self),))

    @contextmanager
    def recording(self):
        """Collect the names of the fields read inside the block (nested blocks all see the inner reads)."""
        reads: set = set()
        self._recorders.append(reads)
        try:
            yield reads
        finally:
            self._recorders.remove(reads)

    def replay(self, keys) -> None:
        """Count ``keys`` as read (a cached result reused inside a recording depends on what it read)."""
        for key in keys:
            self[key]

    def snapshot(self, keys) -> dict:
        """{field: value} for ``keys`` (without recording them), to store beside a result."""
        return {key: dict.__getitem__(self, key) for key in sorted(keys)}


def parse_overrides(overrides: Mapping[str, Any] | str | None) -> dict:
    """Accept a dict, or its text form (as papermill ``-p overrides "{...}"`` passes it)."""
    if overrides is None or overrides == "":
        return {}
    if isinstance(overrides, str):
        try:
            overrides = ast.literal_eval(overrides)
        except (ValueError, SyntaxError) as exc:
            raise ParameterError(f"overrides must be a dict literal, got {overrides!r}") from exc
    if not isinstance(overrides, Mapping):
        raise ParameterError(f"overrides must be a dict, got {type(overrides).__name__}")
    return dict(overrides)


def _check_value(key: str, value: Any, default: Any, choices: Mapping[str, tuple]) -> Any:
    if key in choices:
        allowed = choices[key]
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ParameterError(f"{key}={value!r}: {bad} not allowed; allowed values are {list(allowed)}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"{key} must be True or False, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{key} must be a positive number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ParameterError(f"{key} must be a positive integer, got {value!r}")
        if not value > 0:
            raise ParameterError(f"{key} must be positive, got {value!r}")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise ParameterError(f"{key} must be a non-empty list, got {value!r}")
        integers = all(isinstance(d, int) and not isinstance(d, bool) for d in default)
        zero_ok = key.endswith("weight_decays")  # a weight-decay grid may include 0 (MetaMD App. A.9)
        for item in value:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not (item > 0 or zero_ok and item == 0):
                raise ParameterError(f"{key} must hold {'non-negative' if zero_ok else 'positive'} values, "
                                     f"got {value!r}")
            if integers and (isinstance(item, bool) or not isinstance(item, int)):
                raise ParameterError(f"{key} must hold positive integers, got {value!r}")
        return list(value)
    return value


def resolve_profile(profile: str, profiles: Mapping[str, Mapping[str, Any]],
                    overrides: Mapping[str, Any] | str | None = None,
                    choices: Mapping[str, tuple] | None = None) -> Profile:
    """Return ``profiles[profile]`` with ``overrides`` applied, everything validated.

    Numbers must be positive (and integers where the profile's value is an integer), lists non-empty
    with positive entries, and keys listed in ``choices`` must take one of the allowed values.
    """
    if not isinstance(profile, str) or profile not in profiles:
        raise ParameterError(f"profile={profile!r} is unknown; allowed values are {sorted(profiles)}")
    choices = choices or {}
    base = dict(profiles[profile])
    overrides = parse_overrides(overrides)
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ParameterError(f"unknown override(s) {unknown}; allowed keys are {sorted(base)}")
    resolved = {}
    for key, default in base.items():
        value = overrides.get(key, default)
        resolved[key] = _check_value(key, value, default, choices)
    resolved["profile"] = profile
    return Profile(resolved)


def cuts_from_paper(profiles: Mapping[str, Mapping[str, Any]], profile: str) -> list[tuple[str, Any, Any]]:
    """``(field, paper value, this profile's value)`` for every field where ``profiles[profile]`` differs from
    ``profiles["paper"]``, in the paper profile's order: what a reduced profile cut."""
    if profile not in profiles:
        raise ParameterError(f"profile={profile!r} is unknown; allowed values are {sorted(profiles)}")
    paper, chosen = profiles["paper"], profiles[profile]
    return [(key, paper[key], chosen[key]) for key in paper if chosen.get(key) != paper[key]]


def frozen(mapping: Mapping) -> Mapping:
    """Read-only view, so profile tables in code cannot be changed by accident."""
    return MappingProxyType(dict(mapping))


# Each paper's profiles live in a module of their own (this package): PAPER and SMOKE (and CPU where a module sizes
# one for two CPU cores), and the allowed values of its choice fields.
from . import andrychowicz2016, head_to_head, huisman2022, kuo2020, metamd, simple_optimizer  # noqa: E402

PAPER_MODULES = {"andrychowicz2016": andrychowicz2016, "huisman2022": huisman2022, "kuo2020": kuo2020,
                 "metamd": metamd, "simple_optimizer": simple_optimizer, "head_to_head": head_to_head}
PAPER_PROFILES = {name: {"smoke": module.SMOKE, "paper": module.PAPER,
                         **({"cpu": module.CPU} if hasattr(module, "CPU") else {})}
                  for name, module in PAPER_MODULES.items()}
PAPER_CHOICES = {name: module.CHOICES for name, module in PAPER_MODULES.items()}
