"""The Deployments and Traffic contracts: revisions, compare-and-set, events, leases, the
prediction index joined with feedback."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.errors import ConflictError, NotFoundError
from mloop.project import Project
from mloop.repositories.deployments import (
    Arm,
    Deployments,
    NewRevision,
    RevisionStatus,
    Strategy,
)
from mloop.repositories.feedback import Feedback
from mloop.repositories.traffic import Outcome, TrafficRow

STABLE = Arm("stable", "models:/churn/3", "models:/churn@champion", 100.0, "stable")
CANARY = Arm("canary", "models:/churn/4", "models:/churn/4", 0.0, "canary")


@pytest.fixture
def deployments(project: Project) -> Deployments:
    return repositories.backend(project).deployments


def test_a_deployment_starts_without_a_revision_and_names_are_unique(
        deployments: Deployments) -> None:
    made = deployments.create("churn")
    assert (made.name, made.current_revision, made.serial, made.uri) == (
        "churn", None, 0, "deployments:/churn")
    with pytest.raises(ConflictError, match="exists already"):
        deployments.create("churn")
    with pytest.raises(NotFoundError, match="no revision yet"):
        deployments.revision("churn")
    with pytest.raises(NotFoundError, match="there are churn"):
        deployments.get("other")
    assert [d.name for d in deployments.all()] == ["churn"]


def test_revisions_are_numbered_and_the_previous_live_one_is_superseded(
        deployments: Deployments) -> None:
    deployments.create("churn")
    first = deployments.add_revision("churn", NewRevision(Strategy.REPLACE, (STABLE,),
                                                          status=RevisionStatus.COMPLETED),
                                     initiated_by="user:ann")
    second = deployments.add_revision("churn", NewRevision(
        Strategy.CANARY, (STABLE, CANARY), policy={"steps": [5, 100]},
        state={"weights": {"stable": 95, "canary": 5}, "step": 0},
        fallback={"value": 0}, rollback_target={"revision": 1, "model": STABLE.model}),
        initiated_by="user:ann")
    assert (first.number, second.number) == (1, 2)
    assert deployments.get("churn").current_revision == 2
    assert second.uri == "deployments:/churn/2"
    assert second.weights == {"stable": 95.0, "canary": 5.0}
    assert second.fallback == {"value": 0} and second.policy == {"steps": [5, 100]}
    assert second.rollback_target == {"revision": 1, "model": "models:/churn/3"}
    assert second.arm("canary") == CANARY
    with pytest.raises(NotFoundError, match="no arm 'x'"):
        second.arm("x")
    # a completed revision stays completed; a live one gives way to the next
    third = deployments.add_revision("churn", NewRevision(Strategy.REPLACE, (CANARY,)),
                                     initiated_by="system")
    statuses = [r.status for r in deployments.revisions("churn")]
    assert statuses == [RevisionStatus.COMPLETED, RevisionStatus.SUPERSEDED,
                        RevisionStatus.ACTIVE]
    assert third.weights == {"canary": 0.0}
    assert third.to_dict()["strategy"] == "replace"
    assert type(third.to_dict()["status"]) is str
    with pytest.raises(NotFoundError, match="no revision 9"):
        deployments.revision("churn", 9)


def test_update_is_compare_and_set_so_a_step_is_never_applied_twice(
        deployments: Deployments) -> None:
    deployments.create("churn")
    rev = deployments.add_revision("churn", NewRevision(
        Strategy.CANARY, (STABLE, CANARY), state={"step": 0}), initiated_by="user:ann")
    serial = deployments.get("churn").serial
    moved = deployments.update("churn", rev.number, expected_serial=serial, kind="step",
                               initiated_by="system", state={"step": 1},
                               reason="analysis passed", analysis={"verdict": "pass"})
    assert moved.state == {"step": 1}
    # a second controller that read the same serial loses
    with pytest.raises(ConflictError, match="changed while"):
        deployments.update("churn", rev.number, expected_serial=serial, kind="step",
                           initiated_by="system", state={"step": 2})
    assert deployments.revision("churn").state == {"step": 1}
    assert deployments.get("churn").serial == serial + 1
    # status changes and events
    deployments.update("churn", rev.number, expected_serial=serial + 1, kind="paused",
                       initiated_by="user:bob", status=RevisionStatus.PAUSED)
    assert deployments.revision("churn").status is RevisionStatus.PAUSED
    kinds = [(e.kind, e.initiated_by) for e in deployments.events("churn")]
    assert kinds == [("created", "user:ann"), ("step", "system"), ("paused", "user:bob")]
    step = deployments.events("churn")[1]
    assert step.analysis == {"verdict": "pass"} and step.reason == "analysis passed"
    assert [e.kind for e in deployments.events("churn", limit=1)] == ["paused"]
    with pytest.raises(ConflictError):  # add_revision checks the serial too
        deployments.add_revision("churn", NewRevision(Strategy.REPLACE, (STABLE,)),
                                 initiated_by="user:ann", expected_serial=serial)


def test_serials_and_delete(deployments: Deployments) -> None:
    deployments.create("a")
    deployments.create("b")
    deployments.add_revision("a", NewRevision(Strategy.REPLACE, (STABLE,)),
                             initiated_by="system")
    assert deployments.serials(["a", "b", "c"]) == {"a": 1, "b": 0}
    deployments.delete("a")
    assert [d.name for d in deployments.all()] == ["b"]
    with pytest.raises(NotFoundError):
        deployments.delete("a")
    with pytest.raises(NotFoundError, match="No deployment named 'zz'"):
        deployments.update("zz", 1, expected_serial=0, kind="step", initiated_by="system")


def test_one_controller_holds_the_lease_until_it_lapses(deployments: Deployments) -> None:
    assert deployments.acquire_lease("churn", "host-a:1", 10_000, now=1_000)
    assert not deployments.acquire_lease("churn", "host-b:2", 10_000, now=5_000)
    assert deployments.lease_holder("churn", now=5_000) == "host-a:1"
    assert deployments.acquire_lease("churn", "host-a:1", 10_000, now=9_000)  # renewed
    assert not deployments.acquire_lease("churn", "host-b:2", 10_000, now=15_000)
    assert deployments.acquire_lease("churn", "host-b:2", 10_000, now=19_001)  # lapsed
    assert deployments.lease_holder("churn", now=19_001) == "host-b:2"
    deployments.release_lease("churn", "host-a:1")  # not its lease: nothing happens
    assert deployments.lease_holder("churn", now=19_001) == "host-b:2"
    deployments.release_lease("churn", "host-b:2")
    assert deployments.lease_holder("churn", now=19_001) is None


def test_traffic_is_indexed_and_joined_with_feedback(project: Project) -> None:
    backend = repositories.backend(project)
    rows = [TrafficRow(f"r{i}", 0, "stable" if i % 2 else "canary", "churn", 2,
                       "models:/churn/3", Outcome.OK, i % 3, 1.5, 1_000 + i)
            for i in range(10)]
    rows.append(TrafficRow("r0", 0, "shadow", "churn", 2, "models:/churn/5",
                           Outcome.SHADOW, "yes", 2.0, 1_000))
    rows.append(TrafficRow("e1", 0, "canary", "churn", 2, "models:/churn/4",
                           Outcome.ERROR, None, None, 2_000))
    assert backend.traffic.record(rows) == 12
    assert backend.traffic.record(rows[:2]) == 2  # a repeat is ignored, not an error
    backend.feedback.save([Feedback("r1", 0, "1"), Feedback("r2", 0, "0")])
    every = backend.traffic.read("churn", 2)
    assert len(every) == 12
    by_key = {(r, a): (o, p, lab) for r, a, o, p, lab in zip(
        every.request_id, every.arm, every.outcome, every.prediction, every.label,
        strict=True)}
    assert by_key[("r1", "stable")] == ("ok", 1, "1")
    assert by_key[("r0", "shadow")] == ("shadow", "yes", None)
    assert by_key[("e1", "canary")] == ("error", None, None)
    labelled = backend.traffic.read("churn", 2, labelled=True)
    assert sorted(labelled.request_id) == ["r1", "r2"]
    assert len(backend.traffic.read("churn", 2, since_ms=1_005)) == 6
    assert len(backend.traffic.read("churn", 1)) == 0
    assert backend.traffic.prune(1_005) == 6
    assert len(backend.traffic.read("churn", 2)) == 6
    # counted in the database, by arm and outcome
    assert backend.traffic.counts("churn", 2) == {"canary": {"ok": 2, "error": 1},
                                                  "stable": {"ok": 3}}
    assert backend.traffic.counts("churn", 2, since_ms=1_009) == {"stable": {"ok": 1},
                                                                  "canary": {"error": 1}}
    assert backend.traffic.counts("churn", 1) == {}
    assert backend.traffic.counts("churn", 2, labelled=True) == {}  # r1, r2 were pruned
    backend.feedback.save([Feedback("r6", 0, "1"), Feedback("e1", 0, "0")])
    assert backend.traffic.counts("churn", 2, labelled=True) == {
        "canary": {"ok": 1, "error": 1}}
