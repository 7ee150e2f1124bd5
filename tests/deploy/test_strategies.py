"""The strategy commands through the Python API (mloop.deploy), on SQLite and PostgreSQL:
each makes the revision it should, refuses what it must, and leaves nothing behind when it
refuses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mloop
import mloop.deploy as deploy
from mloop.deploy.model import ArmRef, check_weights, parse_arm
from mloop.errors import ConflictError, InvalidInputError, NotFoundError
from mloop.project import Project
from mloop.repositories.deployments import RevisionStatus, Strategy


@pytest.fixture(scope="module")
def fitted() -> Any:
    """One tiny scikit-learn model, fitted once: registering it is what the tests need."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    return LogisticRegression().fit(x, np.array([0, 1, 0, 1]))


@pytest.fixture
def churn(project: Project, fitted: Any) -> Project:
    """Model ``churn`` with versions 1-3, ``champion`` on version 1."""
    for _ in range(3):
        with mloop.start_run(experiment="deploy", project=project):
            mloop.log_model(fitted, registered_name="churn")
    mloop.set_alias("churn", "champion", 1, project=project)
    return project


def _live(project: Project, model: str = "models:/churn@champion") -> None:
    deploy.create("live", model, project=project)


# ── create and replace ────────────────────────────────────────────────────────────────

def test_create_pins_the_version_and_keeps_the_alias_it_came_from(churn):
    rev = deploy.create("live", "models:/churn@champion", fallback_value=0, timeout_ms=250,
                        project=churn)
    assert (rev.number, rev.strategy, rev.status) == (1, Strategy.REPLACE,
                                                      RevisionStatus.COMPLETED)
    (arm,) = rev.arms
    assert (arm.name, arm.model, arm.source, arm.weight) == (
        "stable", "models:/churn/1", "models:/churn@champion", 100.0)
    assert rev.fallback == {"timeout_ms": 250, "value": 0}
    assert rev.rollback_target is None and rev.weights == {"stable": 100.0}
    assert [d.name for d in deploy.list_deployments(project=churn)] == ["live"]
    again = deploy.replace("live", "churn/2", project=churn)
    assert again.number == 2 and again.arms[0].model == "models:/churn/2"
    assert again.rollback_target == {"revision": 1, "model": "models:/churn/1",
                                     "source": "models:/churn@champion"}
    assert again.fallback == rev.fallback  # kept from the revision before
    with pytest.raises(ConflictError, match=r"taken|exists"):
        deploy.create("live", "churn/1", project=churn)


def test_a_registered_models_name_is_refused(churn):
    with pytest.raises(ConflictError, match=r"registered model.*/v2/models/churn.*churn-live"):
        deploy.create("churn", "churn/1", project=churn)
    assert deploy.list_deployments(project=churn) == []


@pytest.mark.parametrize("model", ["models:/churn/9", "models:/churn@gold", "nope/1"])
def test_an_unknown_version_creates_nothing(churn, model):
    with pytest.raises(NotFoundError):
        deploy.create("live", model, project=churn)
    assert deploy.list_deployments(project=churn) == []
    with pytest.raises(NotFoundError):
        deploy.history("live", project=churn)


def test_a_bad_name_is_refused(churn):
    with pytest.raises(InvalidInputError, match="deployment name"):
        deploy.create("x[/b] y", "churn/1", project=churn)
    assert deploy.list_deployments(project=churn) == []


def test_an_unknown_version_in_a_rollout_changes_nothing(churn):
    _live(churn)
    for start in (lambda: deploy.canary("live", "churn/9", project=churn),
                  lambda: deploy.ab("live", ["churn/1", "churn/9"], project=churn),
                  lambda: deploy.bluegreen("live", "churn/9", project=churn)):
        with pytest.raises(NotFoundError):
            start()
    assert [r.number for r in deploy.history("live", project=churn).revisions] == [1]


# ── weights and one rollout at a time ─────────────────────────────────────────────────

@pytest.mark.parametrize(("arms", "message"), [
    (["a=churn/1:60", "b=churn/2:50"], "sum to 110, not 100"),
    (["a=churn/1:60", "b=churn/2"], "every arm"),
    (["a=churn/1:160", "b=churn/2:0"], "between 0 and 100"),
    (["churn/1"], "two arms"),
    (["x=churn/1", "x=churn/2"], "must differ"),
])
def test_bad_ab_arms_are_refused(churn, arms, message):
    _live(churn)
    with pytest.raises(InvalidInputError, match=message):
        deploy.ab("live", arms, project=churn)
    assert deploy.history("live", project=churn).revisions[-1].number == 1


def test_a_second_rollout_is_refused_naming_promote_and_rollback(churn):
    _live(churn)
    deploy.canary("live", "churn/2", project=churn)
    attempts = [lambda: deploy.ab("live", ["churn/1", "churn/3"], project=churn),
                lambda: deploy.canary("live", "churn/3", project=churn),
                lambda: deploy.bandit("live", ["churn/1", "churn/3"], project=churn),
                lambda: deploy.shadow("live", "churn/3", project=churn),
                lambda: deploy.bluegreen("live", "churn/3", project=churn),
                lambda: deploy.replace("live", "churn/3", project=churn)]
    for attempt in attempts:
        with pytest.raises(ConflictError, match=r"(?s)canary rollout in progress.*"
                           r"mloop deploy promote live.*mloop deploy rollback live"):
            attempt()
    assert len(deploy.history("live", project=churn).revisions) == 2


# ── each strategy's revision ──────────────────────────────────────────────────────────

def test_canary_revision_weights_state_and_policy(churn):
    _live(churn)
    rev = deploy.canary("live", "models:/churn/2", steps="10,50,100", interval="5m",
                        project=churn)
    assert (rev.number, rev.strategy, rev.status) == (2, Strategy.CANARY,
                                                      RevisionStatus.ACTIVE)
    assert rev.weights == {"stable": 90.0, "canary": 10.0}
    assert {a.name: (a.model, a.role) for a in rev.arms} == {
        "stable": ("models:/churn/1", "stable"), "canary": ("models:/churn/2", "canary")}
    assert rev.policy["steps"] == [10.0, 50.0, 100.0] and rev.policy["interval_ms"] == 300_000
    assert rev.policy["analysis"] is None  # the default analysis
    assert rev.state["step"] == 0 and rev.state["failures"] == 0
    assert rev.rollback_target["revision"] == 1
    assert deploy.history("live", project=churn).revisions[0].status is (
        RevisionStatus.COMPLETED)


@pytest.mark.parametrize(("steps", "message"), [
    ("5,25,50", "last canary step must be 100"), ("50,25,100", "must rise"),
    ("0,100", "above 0"), ("5,x,100", "commas")])
def test_bad_canary_steps_are_refused(churn, steps, message):
    _live(churn)
    with pytest.raises(InvalidInputError, match=message):
        deploy.canary("live", "churn/2", steps=steps, project=churn)


def test_a_canary_of_the_serving_version_is_refused(churn):
    _live(churn)
    with pytest.raises(InvalidInputError, match="another version"):
        deploy.canary("live", "churn/1", project=churn)


def test_ab_stores_its_split_and_policy(churn):
    _live(churn)
    rev = deploy.ab("live", ["a=models:/churn/1:30", "b=models:/churn/2:70"],
                    sticky="customer_id", metric="accuracy", min_samples=100, alpha=0.01,
                    project=churn)
    assert rev.strategy is Strategy.AB and rev.weights == {"a": 30.0, "b": 70.0}
    assert rev.policy == {"sticky": "customer_id", "metric": "accuracy",
                          "min_samples": 100, "alpha": 0.01}


def test_ab_without_names_or_weights_splits_evenly(churn):
    _live(churn)
    rev = deploy.ab("live", ["churn/1", "churn/2", ArmRef("churn/3")], project=churn)
    assert [a.name for a in rev.arms] == ["a", "b", "c"]
    assert math.isclose(sum(rev.weights.values()), 100)
    assert all(math.isclose(w, 100 / 3) for w in rev.weights.values())


def test_an_a_a_test_puts_one_version_in_two_arms(churn):
    _live(churn)
    rev = deploy.ab("live", ["churn/2", "churn/2"], project=churn)
    assert [(a.name, a.model) for a in rev.arms] == [("a", "models:/churn/2"),
                                                     ("b", "models:/churn/2")]


def test_a_bandit_ignores_given_weights(churn):
    _live(churn)
    rev = deploy.bandit("live", ["churn/1:90", "churn/2:10"], reward="accuracy",
                        algorithm="ucb1", interval="30s", min_share=0.05, project=churn)
    assert rev.strategy is Strategy.BANDIT and rev.weights == {"v1": 50.0, "v2": 50.0}
    assert rev.policy["algorithm"] == "ucb1" and rev.policy["interval_ms"] == 30_000
    assert rev.policy["min_share"] == 0.05 and rev.policy["reward"] == "accuracy"
    with pytest.raises(ConflictError):
        deploy.bandit("live", ["churn/1", "churn/2"], project=churn)


@pytest.mark.parametrize(("options", "message"), [
    ({"algorithm": "greedy"}, "Unknown bandit algorithm"), ({"min_share": 1.0}, "min-share"),
    ({"epsilon": 2.0}, "epsilon"), ({"interval": "soon"}, "duration")])
def test_bad_bandit_options_are_refused(churn, options, message):
    _live(churn)
    with pytest.raises(InvalidInputError, match=message):
        deploy.bandit("live", ["churn/1", "churn/2"], project=churn, **options)


def test_shadow_gets_copies_and_no_traffic(churn):
    _live(churn)
    with pytest.raises(InvalidInputError, match="sample"):
        deploy.shadow("live", "churn/3", sample=0.0, project=churn)
    rev = deploy.shadow("live", "churn/3", sample=0.25, project=churn)
    assert rev.strategy is Strategy.SHADOW
    assert rev.weights == {"primary": 100.0, "shadow": 0.0} and rev.state["shadow"] == "shadow"
    assert {a.name: a.role for a in rev.arms} == {"primary": "primary", "shadow": "shadow"}
    assert rev.policy == {"sample": 0.25} and rev.number == 2


def test_bluegreen_switch_and_switch_back(churn):
    _live(churn)
    rev = deploy.bluegreen("live", "churn/2", project=churn)
    assert rev.weights == {"blue": 100.0, "green": 0.0} and rev.state["active"] == "blue"
    assert rev.arm("green").model == "models:/churn/2"
    green = deploy.switch("live", project=churn)
    assert green.weights == {"blue": 0.0, "green": 100.0} and green.state["active"] == "green"
    assert green.number == rev.number  # a switch moves the revision, makes no new one
    blue = deploy.switch("live", project=churn)
    assert blue.weights == {"blue": 100.0, "green": 0.0}
    kinds = [e.kind for e in deploy.history("live", project=churn).events]
    assert kinds.count("switched") == 2


def test_switch_needs_a_blue_green_rollout(churn):
    _live(churn)
    with pytest.raises(ConflictError, match="no rollout in progress"):
        deploy.switch("live", project=churn)
    deploy.canary("live", "churn/2", project=churn)
    with pytest.raises(ConflictError, match="not blue_green"):
        deploy.switch("live", project=churn)


# ── ending a rollout ──────────────────────────────────────────────────────────────────

def test_promoting_a_canary_moves_the_alias_the_stable_came_from(churn):
    _live(churn)  # from models:/churn@champion
    deploy.canary("live", "churn/2", project=churn)
    done = deploy.promote("live", project=churn)
    assert done.status is RevisionStatus.COMPLETED
    assert done.weights == {"stable": 0.0, "canary": 100.0}
    assert mloop.get_model_version("churn@champion", project=churn).version == 2
    kinds = [(e.kind, e.revision) for e in deploy.history("live", project=churn).events]
    assert ("promoted", 2) in kinds
    with pytest.raises(ConflictError, match="no rollout in progress"):
        deploy.promote("live", project=churn)


def test_promoting_a_pinned_stable_moves_no_alias(churn):
    _live(churn, "churn/1")
    deploy.canary("live", "churn/2", project=churn)
    deploy.promote("live", project=churn)
    assert mloop.get_model_version("churn@champion", project=churn).version == 1


def test_promoting_ab_needs_a_decision_or_an_arm(churn):
    _live(churn)
    deploy.ab("live", ["a=churn/1", "b=churn/2"], metric="accuracy", project=churn)
    with pytest.raises(ConflictError, match=r"No arm of 'live' has won yet.*--arm NAME"):
        deploy.promote("live", project=churn)
    with pytest.raises(NotFoundError, match="no arm 'c'"):
        deploy.promote("live", arm="c", project=churn)
    done = deploy.promote("live", arm="b", project=churn)
    assert done.weights == {"a": 0.0, "b": 100.0} and done.status is RevisionStatus.COMPLETED


def test_rollback_after_a_canary_restores_the_previous_model(churn):
    _live(churn)
    canary = deploy.canary("live", "churn/2", project=churn)
    back = deploy.rollback("live", reason="p99 doubled", project=churn)
    assert (back.number, back.strategy, back.rollback_of) == (3, Strategy.REPLACE, 2)
    assert back.arms[0].model == "models:/churn/1" and back.weights == {"stable": 100.0}
    assert back.reason == "p99 doubled"
    found = deploy.history("live", project=churn)
    assert found.revisions[1].number == canary.number
    assert found.revisions[1].status is RevisionStatus.ABORTED
    aborted = [e for e in found.events if e.kind == "aborted"]
    assert aborted and aborted[-1].reason == "p99 doubled" and aborted[-1].revision == 2
    assert all(e.initiated_by.startswith("user:") for e in found.events)


def test_rollback_after_a_switch_returns_to_blue(churn):
    _live(churn)
    deploy.bluegreen("live", "churn/2", project=churn)
    deploy.switch("live", project=churn)
    back = deploy.rollback("live", project=churn)
    assert back.arms[0].model == "models:/churn/1" and back.rollback_of == 2


def test_rollback_after_a_replace_and_with_nothing_to_roll_back_to(churn):
    _live(churn)
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        deploy.rollback("live", project=churn)
    deploy.replace("live", "churn/3", project=churn)
    back = deploy.rollback("live", initiated_by="system", project=churn)
    assert back.arms[0].model == "models:/churn/1" and back.created_by == "system"


def test_pause_and_resume(churn):
    _live(churn)
    deploy.canary("live", "churn/2", project=churn)
    paused = deploy.pause("live", project=churn)
    assert paused.status is RevisionStatus.PAUSED and paused.weights["canary"] == 5.0
    with pytest.raises(ConflictError, match="not active"):
        deploy.pause("live", project=churn)
    resumed = deploy.resume("live", project=churn)
    assert resumed.status is RevisionStatus.ACTIVE
    assert resumed.state["step_started_at"] >= paused.state["step_started_at"]
    with pytest.raises(ConflictError, match="not paused"):
        deploy.resume("live", project=churn)
    kinds = [e.kind for e in deploy.history("live", project=churn).events]
    assert kinds[-2:] == ["paused", "resumed"]


def test_delete_forgets_the_deployment(churn):
    _live(churn)
    deploy.delete("live", project=churn)
    assert deploy.list_deployments(project=churn) == []
    with pytest.raises(NotFoundError):
        deploy.replace("live", "churn/2", project=churn)


# ── governance and lineage ────────────────────────────────────────────────────────────

@pytest.fixture
def governed(churn: Project) -> Iterator[Project]:
    """``churn``'s project reopened with ``[governance] require_approval = ["deploy"]``."""
    config = churn.root / ".mloop" / "config.toml"
    config.write_text(config.read_text() + '\n[governance]\nrequire_approval = ["deploy"]\n')
    proj = Project(churn.root, store_uri=churn.settings.store_uri)
    assert proj.settings.require_approval == ("deploy",)
    yield proj
    proj.close()


def test_governance_refuses_an_unapproved_version_until_it_is_approved(governed):
    with pytest.raises(InvalidInputError,
                       match=r"not approved.*`mloop models approve churn/1`"):
        deploy.create("live", "churn@champion", project=governed)
    assert deploy.list_deployments(project=governed) == []
    mloop.approve_model("churn/1", "reviewed", project=governed)
    assert deploy.create("live", "churn@champion", project=governed).number == 1
    with pytest.raises(InvalidInputError, match="mloop models approve churn/2"):
        deploy.canary("live", "churn/2", project=governed)
    with pytest.raises(InvalidInputError, match="mloop models approve churn/3"):
        deploy.create("other", "churn/1", fallback="churn/3", project=governed)


def test_governance_makes_an_automated_rollout_await_approval(governed):
    mloop.approve_model("churn/1", project=governed)
    deploy.create("live", "churn/1", project=governed)
    waiting = deploy.canary("live", "churn/2", initiated_by="system", project=governed)
    assert waiting.status is RevisionStatus.AWAITING_APPROVAL
    assert "awaiting approval of models:/churn/2" in (waiting.reason or "")
    with pytest.raises(ConflictError, match="awaits approval"):
        deploy.promote("live", project=governed)
    assert deploy.rollback("live", project=governed).arms[0].model == "models:/churn/1"


def test_lineage_deployment_revisions_serve_model_versions(churn):
    _live(churn)
    deploy.canary("live", "churn/2", project=churn)
    _, first = mloop.lineage.neighbours(churn, "deployments:/live/1")
    assert [(e.dst, e.relation) for e in first] == [("models:/churn/1", "serves")]
    _, second = mloop.lineage.neighbours(churn, "deployments:/live/2")
    assert sorted((e.dst, e.relation) for e in second) == [
        ("models:/churn/1", "serves"), ("models:/churn/2", "serves")]
    into, _ = mloop.lineage.neighbours(churn, "models:/churn/2")
    assert "deployments:/live/2" in [e.src for e in into]


# ── parsing arms and weights ──────────────────────────────────────────────────────────

@pytest.mark.parametrize(("text", "expected"), [
    ("models:/churn/4", ArmRef("models:/churn/4")),
    ("b=models:/churn/4:50", ArmRef("models:/churn/4", "b", 50.0)),
    ("models:/churn/4:12.5", ArmRef("models:/churn/4", None, 12.5)),
    ("churn/4", ArmRef("churn/4")),
    ("a=churn@champion:30", ArmRef("churn@champion", "a", 30.0)),
    ("  b=churn/2  ", ArmRef("churn/2", "b")),
])
def test_parse_arm_examples(text, expected):
    assert parse_arm(text) == expected


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_arm_refuses_an_empty_arm(text):
    with pytest.raises(InvalidInputError, match=r"\[NAME=\]REF\[:WEIGHT\]"):
        parse_arm(text)


_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,20}", fullmatch=True).filter(
    lambda s: not s.startswith("models"))
_MODELS = st.from_regex(r"[a-z][a-z0-9_\-]{0,20}", fullmatch=True)


@given(name=st.none() | _NAMES, model=_MODELS, version=st.integers(1, 999),
       alias=st.booleans(), weight=st.none() | st.integers(0, 100),
       prefix=st.booleans())
def test_parse_arm_round_trips(name, model, version, alias, weight, prefix):
    ref = (("models:/" if prefix else "") + model
           + (f"@champion{version}" if alias else f"/{version}"))
    text = (f"{name}=" if name else "") + ref + (f":{weight}" if weight is not None else "")
    assert parse_arm(text) == ArmRef(ref, name, None if weight is None else float(weight))


@given(st.lists(st.integers(0, 100), min_size=1, max_size=8))
def test_check_weights_accepts_exactly_the_splits_summing_to_100(weights):
    if sum(weights) == 100:
        assert check_weights(list(map(float, weights))) == list(map(float, weights))
    else:
        with pytest.raises(InvalidInputError, match=f"sum to {sum(weights)}, not 100"):
            check_weights(list(map(float, weights)))


@given(st.integers(1, 12))
def test_check_weights_without_weights_splits_evenly(count):
    weights = check_weights([None] * count)
    assert len(weights) == count and math.isclose(sum(weights), 100)
    assert len(set(weights)) == 1


@given(st.lists(st.none() | st.floats(0, 100), min_size=2, max_size=6).filter(
    lambda ws: any(w is None for w in ws) and any(w is not None for w in ws)))
def test_check_weights_refuses_some_weights_missing(weights):
    with pytest.raises(InvalidInputError, match="every arm"):
        check_weights(weights)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 100.5])
def test_check_weights_refuses_non_percentages(bad):
    with pytest.raises(InvalidInputError, match="between 0 and 100"):
        check_weights([bad, 100.0 - (bad if math.isfinite(bad) else 0)])


@pytest.mark.parametrize("start", ["ab", "bandit"])
def test_promoting_an_ab_or_bandit_winner_moves_the_alias_the_stable_came_from(churn, start):
    """promote's contract ("the alias the stable came from moves to it") for the rollouts
    whose arms are all given anew: the stable before them came from champion."""
    _live(churn)  # from models:/churn@champion
    arms = ["a=churn/1", "b=churn/2"]
    if start == "ab":
        deploy.ab("live", arms, project=churn)
    else:
        deploy.bandit("live", arms, project=churn)
    deploy.promote("live", arm="b", project=churn)
    assert mloop.get_model_version("churn@champion", project=churn).version == 2


def test_rolling_back_a_promoted_canary_moves_its_alias_back(churn):
    _live(churn)
    deploy.canary("live", "churn/2", project=churn)
    promoted = deploy.promote("live", project=churn)
    assert promoted.state["aliases"] == [{"model": "churn", "alias": "champion", "from": 1,
                                          "to": 2}]
    assert mloop.get_model_version("churn@champion", project=churn).version == 2
    back = deploy.rollback("live", project=churn)
    assert back.arms[0].model == "models:/churn/1"
    assert mloop.get_model_version("churn@champion", project=churn).version == 1


def test_a_rollback_leaves_an_alias_moved_by_hand_since(churn):
    _live(churn)
    deploy.canary("live", "churn/2", project=churn)
    deploy.promote("live", project=churn)
    mloop.set_alias("churn", "champion", 3, project=churn)
    deploy.rollback("live", project=churn)
    assert mloop.get_model_version("churn@champion", project=churn).version == 3


def test_a_null_fallback_value_is_a_value(churn):
    rev = deploy.create("live", "churn/1", fallback_value=None, project=churn)
    assert rev.fallback == {"timeout_ms": None, "value": None}


def test_a_negative_weight_is_named_as_such(churn):
    _live(churn)
    with pytest.raises(InvalidInputError, match=r"between 0 and 100, not -60\.0"):
        deploy.ab("live", ["churn/1:60", "churn/2:-60"], project=churn)
    with pytest.raises(InvalidInputError, match="--interval"):
        deploy.bandit("live", ["churn/1", "churn/2"], interval="soon", project=churn)
