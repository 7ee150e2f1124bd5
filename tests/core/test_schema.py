"""core.schema: how a file's mistakes are reported (path, closest key, expected type),
and a fuzz of every file schema: any parsed YAML is accepted or refused with a
ConfigError, never another exception."""

import string
from pathlib import Path
from typing import Annotated, Literal, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from mloop.core.schema import (
    MAX_REPORTED,
    Duration,
    Schema,
    Strings,
    keys_of,
    path_text,
    type_text,
    unwrap,
    validate,
)
from mloop.errors import ConfigError


class Inner(Schema):
    column: str = Field(..., description="a column")
    step: Annotated[float, Field(gt=0)] = 0.5


class Outer(Schema):
    every: Duration = Field("10m", validate_default=True)
    mode: Literal["fast", "slow"] = "fast"
    items: list[Inner] = []
    named: dict[str, Inner] = {}
    paths: Strings = []
    either: int | str = 0


def _error(data):
    with pytest.raises(ConfigError) as err:
        validate(Outer, data, source="f.yaml")
    return err.value.message


@pytest.mark.parametrize(("loc", "text"), [
    ((), ""), (("a",), "a"), (("checks", 0, "min"), "checks[0].min"),
    (("columns", "mean radius", "max"), "columns['mean radius'].max"),
    (("stages", "train-1", "cmd", 2), "stages.train-1.cmd[2]"),
])
def test_paths_read_like_the_file(loc, text):
    assert path_text(loc) == text


@pytest.mark.parametrize(("data", "message"), [
    ({"evry": "1m"}, "f.yaml: evry: unknown key; did you mean 'every'?"),
    ({"colour": 1}, "f.yaml: colour: unknown key; known keys: every, mode, items, named, "
                    "paths, either"),
    ({"items": [{"column": "a", "stpe": 1}]},
     "f.yaml: items[0].stpe: unknown key; did you mean 'step'?"),
    # the unknown key stands where a required one is missing: that is the suggestion
    ({"items": [{"feature": "a"}]}, "f.yaml: items[0].feature: unknown key; did you mean "
                                    "'column'?"),
    ({"items": [{}]}, "f.yaml: items[0]: the key 'column' is required (a string); add it"),
    ({"named": {"x y": {"column": "a", "step": 0}}},
     "f.yaml: named['x y'].step: must be greater than 0, got 0"),
    ({"mode": "fats"}, "f.yaml: mode: expected one of 'fast' or 'slow', got 'fats'; did you "
                       "mean 'fast'?"),
    ({"every": "soon"}, "f.yaml: every: Cannot read the duration 'soon'"),
    ({"paths": 3}, "f.yaml: paths: expected a string or a list of strings, got 3"),
    ({"either": [1]}, "f.yaml: either: expected an integer or a string, got a list [1]"),
    ({"items": {"column": "a"}}, "f.yaml: items: expected a list of mappings, got a mapping"),
    ("text", "f.yaml: expected a mapping, got 'text'"),
])
def test_each_problem_names_the_key_and_what_was_expected(data, message):
    assert _error(data).startswith(message)


def test_strict_types_refuse_what_could_pass_for_a_number():
    for value in ("0.5", True, "yes"):
        assert "items[0].step: expected a number" in _error(
            {"items": [{"column": "a", "step": value}]})
    assert validate(Outer, {"items": [{"column": "a", "step": 2}]},
                    source="f").items[0].step == 2.0  # an integer is a number


def test_every_problem_is_listed_up_to_a_limit():
    many = {f"key{i}": i for i in range(MAX_REPORTED + 5)}
    lines = _error(many).splitlines()
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1] == "f.yaml: … and 5 more problems"


def test_long_values_are_cut_short():
    message = _error({"mode": "x" * 500})
    assert len(message) < 200 and "…" in message


def test_type_names_for_docs():
    assert type_text(Duration).startswith("a duration")
    assert type_text(list[Inner]) == "a list of mappings"
    assert type_text(dict[str, int]) == "a mapping of names to an integer"
    assert type_text(Annotated[float, Field(ge=0, le=1)] | None) == "a number (>= 0, <= 1)"
    assert type_text(Literal["a", "b"]) == "one of 'a', 'b'"


# -- fuzz: every file schema ----------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | \
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | \
    st.sampled_from(["10m", "1h", "0 3 * * *", "accuracy", "drift.share", "warn", "int",
                     "data:/train@1", "https://example.com/h", "auto", "ks", ">="])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=8), inner,
                                    max_size=3), max_leaves=8)


def _models_in(tp):
    bare, _ = unwrap(tp)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return [bare]
    return [m for arg in get_args(bare) for m in _models_in(arg)]


def _shaped(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy:
    """Mappings with mostly the schema's own keys (and a typo now and then), whose values
    are random or, where the schema nests, shaped the same way."""
    keys = list(keys_of(model))
    values = {}
    for key, annotation in keys_of(model).items():
        options = [JSON]
        for inner in _models_in(annotation)[:2] if depth < 3 else []:
            shaped = _shaped(inner, depth + 1)
            options += [shaped, st.lists(shaped, max_size=2),
                        st.dictionaries(st.sampled_from(["a", "b-1", "x y"]), shaped,
                                        max_size=2)]
        values[key] = st.one_of(*options)
    key = st.sampled_from([*keys, keys[0] + "x", "bogus"]) if keys else st.just("bogus")
    pair = key.flatmap(lambda k: st.tuples(st.just(k), values.get(k, JSON)))
    return st.lists(pair, max_size=6).map(dict)


def _parsers():
    from mloop.automation.config import AutomationFile
    from mloop.automation.config import parse_config as automation
    from mloop.data.quality import DataSchema
    from mloop.evaluation.kinds import validate_entry
    from mloop.evaluation.suite import SuiteFile
    from mloop.monitoring.rules import MonitoringFile
    from mloop.monitoring.rules import parse_config as monitoring
    from mloop.pipelines.stagefile import StagesFile
    from mloop.pipelines.stagefile import check as stages
    from mloop.registry.card import CardSpec

    def suite(data):
        checked = validate(SuiteFile, data, source="s.yaml")
        for i, entry in enumerate(checked.checks):
            validate_entry(entry, source="s.yaml", at=("checks", i))

    return [(MonitoringFile, monitoring), (AutomationFile, automation),
            (SuiteFile, suite), (StagesFile, lambda d: stages(d, Path("mloop.yaml"))),
            (DataSchema, lambda d: validate(DataSchema, d, source="d.yaml")),
            (CardSpec, lambda d: validate(CardSpec, d, source="c.yaml"))]


CHECK_ENTRY = st.dictionaries(
    st.sampled_from(["metric", "data", "behaviour", "robustness", "fairness", "baseline",
                     "min", "max", "column", "scale", "severity", "sensitive", "columns",
                     "slice", "relative", "min_change", "mni"]),
    SCALARS | st.sampled_from(["accuracy", "nulls", "monotonic", "gaussian_noise",
                               "four_fifths_rule", "majority", "ranges"]) |
    st.dictionaries(st.text(max_size=4), SCALARS | st.dictionaries(
        st.sampled_from(["min", "max", "mx"]), SCALARS, max_size=2), max_size=2),
    max_size=4)


@pytest.mark.parametrize("index", range(6), ids=["monitoring", "automation", "suite",
                                                 "mloop.yaml", "data schema", "card"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_file_is_accepted_or_refused_with_a_config_error(index, data):
    model, parse = _parsers()[index]
    doc = data.draw(_shaped(model) | JSON)
    if model.__name__ == "SuiteFile" and data.draw(st.booleans()):
        doc = {"checks": data.draw(st.lists(CHECK_ENTRY, max_size=3))}
    try:
        parse(doc)
    except ConfigError as exc:  # the one acceptable failure; anything else fails the test
        message = exc.message
        assert message and "Traceback" not in message


@settings(max_examples=100, deadline=None)
@given(key=st.text(string.ascii_lowercase + "_", min_size=1, max_size=12),
       where=st.sampled_from(["top", "rule"]))
def test_an_unknown_key_anywhere_is_named_with_its_path(key, where):
    from mloop.monitoring.rules import MonitoringFile, RuleSpec, parse_config

    known = keys_of(MonitoringFile) if where == "top" else keys_of(RuleSpec)
    if key in known:
        return
    rule = {"signal": "drift.share", "threshold": 0.3}
    doc = {"alpha": 0.1, "rules": [rule]}
    if where == "top":
        doc[key] = 1
    else:
        rule[key] = 1
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    path = key if where == "top" else f"rules[0].{key}"
    assert f"monitoring.yaml: {path}: unknown key" in err.value.message


def test_the_schemas_refuse_unknown_keys_at_every_level():
    """Every model of every file forbids extra keys and takes types strictly."""
    from mloop.core.schema import nested_models

    for model, _ in _parsers():
        for inner in (model, *(m for _, m in nested_models(model))):
            assert inner.model_config.get("extra") == "forbid", inner
            assert inner.model_config.get("strict") is True, inner



def test_a_key_named_like_a_secret_is_named_and_a_secret_value_is_hidden():
    """Each quoted part is redacted alone: mloop's words after a key called "jwt" stay,
    a credential given as a value is masked."""
    from mloop.monitoring.rules import parse_config

    with pytest.raises(ConfigError) as err:
        parse_config({"jwt": 1, "alpha": 0.1})
    assert err.value.message.startswith("monitoring.yaml: jwt: unknown key; known keys:")
    with pytest.raises(ConfigError) as err:
        parse_config({"alpha": "postgresql://u:hunter2@h/db"})
    assert "hunter2" not in err.value.message and "u:***@h" in err.value.message
