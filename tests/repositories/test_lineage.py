"""The lineage edges repository's contract, through the Backend, on SQLite and PostgreSQL."""

from __future__ import annotations

from mloop.project import Project
from mloop.repositories import backend as backend_of


def test_edges_are_recorded_once_and_found_from_either_end(project: Project) -> None:
    edges = backend_of(project).lineage
    assert edges.touching("data:/t@1") == []
    edges.add("data:/t@1", "runs:/r1", "input")
    edges.add("runs:/r1", "models:/m/1", "produced")
    first = edges.touching("runs:/r1")
    edges.add("data:/t@1", "runs:/r1", "input")  # again: a no-op, the first time stays
    assert edges.touching("runs:/r1") == first
    assert sorted((e.src, e.dst, e.relation) for e in first) == [
        ("data:/t@1", "runs:/r1", "input"), ("runs:/r1", "models:/m/1", "produced")]
    assert first[0].created_at <= first[1].created_at  # oldest first
    assert [e.dst for e in edges.touching("data:/t@1")] == ["runs:/r1"]


def test_one_pair_may_be_joined_by_several_relations(project: Project) -> None:
    edges = backend_of(project).lineage
    edges.add("runs:/a", "runs:/b", "feeds")
    edges.add("runs:/a", "runs:/b", "cached")
    assert sorted(e.relation for e in edges.touching("runs:/b")) == ["cached", "feeds"]
    assert edges.touching("runs:/c") == []
