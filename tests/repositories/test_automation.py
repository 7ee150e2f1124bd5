"""The automation repository's contract, through the Backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from mloop.errors import NotFoundError
from mloop.repositories import backend as repositories
from mloop.repositories.automation import (
    Automation,
    ClaimStatus,
    Decision,
    DecisionOutcome,
    holder,
)
from tests.server.live import sql_side

T0 = 1_700_000_000_000
HOUR = 3_600_000


def _auto(project) -> Automation:
    return repositories(project).automation


def test_a_claim_consumes_its_events_and_records_a_running_decision(project):
    auto = _auto(project)
    assert auto.get_state("p") is None and auto.consumed("p", "k") == set()
    c = auto.claim("p", [("k", "1"), ("k", "2"), ("k", "1")], "k 1, 2", cooldown_ms=0, now=T0)
    assert c.status == ClaimStatus.CLAIMED and c.decision_id
    assert c.events == [("k", "1"), ("k", "2")]
    assert auto.consumed("p", "k") == {"1", "2"}
    st = auto.get_state("p")
    assert st is not None and st.lease == c.decision_id and st.lease_holder == holder()
    (d,) = auto.history(pipeline="p")
    assert d.id == c.decision_id and d.decision == DecisionOutcome.RUNNING and d.fired_at == T0


def test_a_held_lease_makes_the_next_claim_busy(project):
    auto = _auto(project)
    first = auto.claim("p", [("k", "1")], "k 1", cooldown_ms=0, now=T0)
    second = auto.claim("p", [("k", "2")], "k 2", cooldown_ms=0, now=T0 + 1)
    assert second.status == ClaimStatus.BUSY and second.decision_id == first.decision_id
    assert second.holder == holder() and auto.consumed("p", "k") == {"1"}


def test_events_already_consumed_make_a_claim_stale(project):
    auto = _auto(project)
    c = auto.claim("p", [("k", "1")], "k 1", cooldown_ms=0, now=T0)
    assert c.decision_id is not None
    auto.finish(c.decision_id, DecisionOutcome.SUCCEEDED, ["ok"], now=T0 + 1)
    again = auto.claim("p", [("k", "1")], "k 1", cooldown_ms=0, now=T0 + 2)
    assert again.status == ClaimStatus.STALE
    st = auto.get_state("p")
    assert st is not None and st.lease is None  # rolled back with the events


def test_the_cooldown_skips_once_per_set_of_events(project):
    auto = _auto(project)
    c = auto.claim("p", [("k", "1")], "k 1", cooldown_ms=HOUR, now=T0)
    assert c.decision_id is not None
    auto.started("p", T0)
    auto.finish(c.decision_id, DecisionOutcome.PROMOTED, ["better"], now=T0 + 5)
    skip = auto.claim("p", [("k", "2")], "k 2", cooldown_ms=HOUR, now=T0 + 10)
    assert skip.status == ClaimStatus.COOLDOWN and skip.until == T0 + HOUR
    assert skip.skipped is not None
    assert skip.skipped.decision == DecisionOutcome.SKIPPED_COOLDOWN
    again = auto.claim("p", [("k", "2")], "k 2", cooldown_ms=HOUR, now=T0 + 20)
    assert again.status == ClaimStatus.COOLDOWN and again.skipped is None
    later = auto.claim("p", [("k", "2")], "k 2", cooldown_ms=HOUR, now=T0 + HOUR)
    assert later.status == ClaimStatus.CLAIMED
    kinds = [d.decision for d in auto.history(pipeline="p")]
    assert kinds == [DecisionOutcome.RUNNING, DecisionOutcome.SKIPPED_COOLDOWN,
                     DecisionOutcome.PROMOTED]


def test_finish_releases_the_lease_and_retry_gives_the_events_back(project):
    auto = _auto(project)
    c = auto.claim("p", [("k", "1")], "k 1", cooldown_ms=0, now=T0)
    assert c.decision_id is not None
    done = auto.finish(c.decision_id, DecisionOutcome.FAILED, ["boom"], retry=True,
                       pipeline_run_id="pr1", model_uri="runs:/r/model", now=T0 + 3)
    assert done.decision == DecisionOutcome.FAILED and done.reasons == ["boom"]
    assert done.finished_at == T0 + 3 and done.pipeline_uri == "pipelines:/p/pr1"
    assert done.model_uri == "runs:/r/model" and done.registered is None
    st = auto.get_state("p")
    assert st is not None and st.lease is None
    assert auto.consumed("p", "k") == set()
    with pytest.raises(NotFoundError):
        auto.finish("no-such-decision", DecisionOutcome.FAILED, [], now=T0)


def test_record_and_history_filters(project):
    auto = _auto(project)
    for i, (pipe, outcome) in enumerate([("a", DecisionOutcome.PROMOTED),
                                         ("a", DecisionOutcome.REJECTED),
                                         ("b", DecisionOutcome.PROMOTED)]):
        auto.record(Decision(f"d{i}", pipe, "manual", outcome, [f"why {i}"], T0 + i, T0 + i,
                             registered=f"models:/m/{i}"))
    assert [d.id for d in auto.history()] == ["d2", "d1", "d0"]
    assert [d.id for d in auto.history(pipeline="a")] == ["d1", "d0"]
    assert [d.id for d in auto.history(decision=DecisionOutcome.PROMOTED, limit=1)] == ["d2"]
    (d1,) = auto.history(decision=DecisionOutcome.REJECTED)
    assert d1.reasons == ["why 1"] and d1.registered == "models:/m/1"
    assert d1.to_dict()["decision"] == "rejected"


def test_recorded_report_is_the_newest_evaluation_on_the_data(project):
    from sqlalchemy import insert

    from mloop.store.schema import evaluations

    auto = _auto(project)
    assert auto.recorded_report("models:/m/1", "data:/test@1") is None
    with sql_side(project).store.write() as conn:
        for i, digest in enumerate(["old", "new"]):
            conn.execute(insert(evaluations).values(
                id=f"e{i}", model_uri="models:/m/1", data="data:/test@1", suite="default",
                passed=True, report=digest, created_at=T0 + i))
    assert auto.recorded_report("models:/m/1", "data:/test@1") == "new"
    assert auto.recorded_report("models:/m/1", "data:/test@2") is None
