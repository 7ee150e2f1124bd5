"""Check kinds: every built-in follows the contract plugins follow (a parameter schema
that refuses unknown keys), and plugins — registered or from entry points — are held to
it too."""

import importlib.metadata
from typing import Literal

import pytest
from pydantic import Field

from mloop.errors import ConfigError
from mloop.evaluation import kinds
from mloop.evaluation.checks import PASS, CheckResult
from mloop.evaluation.kinds import CheckKind, CheckParams, register_check, validate_entry

REQUIRED = {"column": "age", "sensitive": "gender", "columns": {"age": {"max": 1}}}


def _builtins():
    for kind in kinds.kinds().values():
        if kind.run.__module__ == "mloop.evaluation.checks":
            for value in kind.variants:
                yield kind, value


@pytest.mark.parametrize(("kind", "value"), list(_builtins()),
                         ids=[f"{k.name}:{v}" for k, v in _builtins()])
def test_every_builtin_kind_follows_the_contract(kind, value):
    model = kind.schema_for(value)
    assert issubclass(model, CheckParams)
    assert model.model_config["extra"] == "forbid" and model.model_config["strict"]
    for name, info in model.model_fields.items():
        assert info.description, f"{kind.name}: {value}: {name} has no description (docs)"
    entry = {kind.name: value, **{k: v for k, v in REQUIRED.items()
                                  if k in model.model_fields and
                                  model.model_fields[k].is_required()}}
    checked = validate_entry(entry, source="s.yaml", at=("checks", 3))
    assert checked[kind.name] == value and checked["severity"] == "block"
    assert validate_entry(checked, source="s.yaml") == checked  # idempotent
    with pytest.raises(ConfigError) as err:
        validate_entry({**entry, "severty": "warn"}, source="s.yaml", at=("checks", 3))
    assert err.value.message == ("s.yaml: checks[3].severty: unknown key; did you mean "
                                 "'severity'?")


class Threshold(CheckParams):
    limit: float = Field(0.5, description="fails above")
    mode: Literal["fast", "slow"] = Field("fast", description="how")


def _always(ctx, entry):
    return CheckResult(f"plugged {entry}", PASS, 1.0, "-", "plugged in")


PLUGIN = CheckKind("plugged", _always, Threshold)


@pytest.fixture
def registry(monkeypatch):
    """The kinds registry as it is, restored after the test."""
    kinds.kinds()
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    return kinds


def test_a_plugin_declares_its_params_and_gets_them_typed(registry):
    register_check("threshold", _always, params=Threshold)
    assert validate_entry({"threshold": "x"}, source="s") == {
        "threshold": "x", "severity": "block", "limit": 0.5, "mode": "fast"}
    with pytest.raises(ConfigError, match=r"s: checks\[0\]\.limt: unknown key; did you mean "
                                          "'limit'"):
        validate_entry({"threshold": "x", "limt": 0.2}, source="s", at=("checks", 0))
    with pytest.raises(ConfigError, match="limit: expected a number, got 'high'"):
        validate_entry({"threshold": "x", "limit": "high"}, source="s")
    with pytest.raises(ConfigError, match=r"threshold: expected a name, got \{'a': 1\}"):
        validate_entry({"threshold": {"a": 1}}, source="s")


def test_a_plugin_without_a_schema_takes_no_params(registry):
    register_check("bare", _always)
    assert validate_entry({"bare": "x", "severity": "warn"}, source="s")["severity"] == "warn"
    with pytest.raises(ConfigError, match=r"bare\.yaml: extra: unknown key; known keys: "
                                          "severity"):
        validate_entry({"bare": "x", "extra": 1}, source="bare.yaml")


def test_the_contract_is_enforced_at_registration(registry):
    with pytest.raises(TypeError, match="CheckParams models"):
        register_check("wrong", _always, params=dict)  # type: ignore[arg-type]

    class Repeats(CheckParams):
        repeats: str = "x"

    with pytest.raises(TypeError, match="cannot repeat its own key"):
        register_check("repeats", _always, params=Repeats)


def test_entry_points_register_kinds(registry, monkeypatch):
    eps = [importlib.metadata.EntryPoint("plugged", "tests.evaluation.test_kinds:PLUGIN",
                                         kinds.ENTRY_POINTS),
           importlib.metadata.EntryPoint("plain", "tests.evaluation.test_kinds:_always",
                                         kinds.ENTRY_POINTS)]
    monkeypatch.setattr(kinds.importlib.metadata, "entry_points",
                        lambda group: eps if group == kinds.ENTRY_POINTS else [])
    monkeypatch.setattr(kinds, "_loaded", False)
    assert {"plugged", "plain"} <= set(kinds.check_kinds())
    assert validate_entry({"plugged": "x", "mode": "slow"}, source="s")["mode"] == "slow"
    with pytest.raises(ConfigError, match="mod: unknown key; did you mean 'mode'"):
        validate_entry({"plugged": "x", "mod": "slow"}, source="s")
    with pytest.raises(ConfigError, match="unknown key; known keys: severity"):
        validate_entry({"plain": "x", "limit": 1}, source="s")


def test_a_broken_entry_point_is_a_clear_error(registry, monkeypatch):
    eps = [importlib.metadata.EntryPoint("gone", "tests.evaluation.no_such_module:KIND",
                                         kinds.ENTRY_POINTS)]
    monkeypatch.setattr(kinds.importlib.metadata, "entry_points", lambda group: eps)
    monkeypatch.setattr(kinds, "_loaded", False)
    with pytest.raises(ConfigError, match=r"The check plugin 'gone'.*cannot be loaded"):
        kinds.check_kinds()


@pytest.mark.parametrize(("entry", "words"), [
    ("metric: accuracy", "expected a mapping such as {metric: accuracy, min: 0.9}"),
    ({"metric": "accuracy", "data": "nulls"}, "names 2 check kinds (metric, data)"),
    ({"metrc": "accuracy"}, "names no check kind; did you mean 'metric'?"),
    ({"behaviour": "monotonc", "column": "a"}, "'monotonc' is not a behaviour check; did "
                                               "you mean 'monotonic'?"),
    ({"behaviour": "monotonic"}, "checks[0]: the key 'column' is required"),
    ({"behaviour": "monotonic", "feature": "age"},
     "checks[0].feature: unknown key; did you mean 'column'?"),
    ({"metric": "accuracy", "min": 0.9, "max_change": 0.1},
     "give min or max_change, not both"),
    ({"metric": "accuracy", "min": 0.9, "relative": True},
     "relative applies to min_change/max_change only"),
    ({"robustness": "missing_values", "share": 1.5}, "share: must be less than or equal"),
    ({"data": "ranges", "columns": {}}, "columns: needs at least 1 item"),
    ({"data": "ranges", "columns": {"mean radius": {"mx": 1}}},
     "checks[0].columns['mean radius'].mx: unknown key; did you mean 'max'?"),
    ({"metric": "recall", "slice": {"gender": ["f"]}}, "slice.gender: expected a value"),
])
def test_entry_mistakes(entry, words):
    with pytest.raises(ConfigError) as err:
        validate_entry(entry, source="s.yaml", at=("checks", 0))
    assert err.value.message.startswith("s.yaml: checks[0]")
    assert words in err.value.message
