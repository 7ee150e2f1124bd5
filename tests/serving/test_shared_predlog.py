"""The prediction log on a store shared across hosts: each host's segments are published
through the object store and listed, and every host's readers see all of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop import repositories
from mloop.project import Project
from mloop.serving.predlog import PredictionLogger, log_root, read_predictions, sharer


@pytest.fixture
def hosts(tmp_path: Path, pg_uri: str) -> tuple[Project, Project]:
    """Two project folders ("hosts") sharing one PostgreSQL store and one object store."""
    shared = {"store_uri": pg_uri, "objects_uri": str(tmp_path / "objects")}
    a = Project.init(tmp_path / "a", **shared)
    b = Project.init(tmp_path / "b", **shared)
    yield a, b
    a.close()
    b.close()


def _log(project: Project, request_ids: list[str]) -> None:
    logger = PredictionLogger(project.root / ".mloop" / "predictions", share=sharer(project))
    for rid in request_ids:
        logger.log("churn", 3, rid, frame=pd.DataFrame({"x": [1.0, 2.0]}),
                   pred=np.array([0, 1]), proba=None, latency_ms=1.0)
    logger.close()


def test_every_host_reads_every_hosts_predictions(hosts):
    a, b = hosts
    _log(a, ["ra1", "ra2"])
    _log(b, ["rb1"])
    for project in (a, b):
        rows = read_predictions(log_root(project), "churn")
        assert sorted(set(rows["request_id"])) == ["ra1", "ra2", "rb1"]
        assert len(rows) == 6 and set(rows["version"]) == {3}
    # fetched once: a second look finds nothing new to fetch, and rows are not doubled
    assert len(read_predictions(log_root(b), "churn")) == 6
    listed = repositories.backend(a).prediction_segments.since()
    assert len(listed) == 2 and {s.rows for s in listed} == {2, 4}
    # the blobs are kept by `mloop data gc`
    kept = {d for d, _ in repositories.backend(a).blob_references.rows().blobs}
    assert {s.digest for s in listed} <= kept


def test_a_listed_segment_whose_blob_is_missing_is_skipped_with_a_warning(hosts, caplog):
    a, b = hosts
    _log(a, ["ra1"])
    (seg,) = repositories.backend(a).prediction_segments.since()
    a.objects.delete(seg.digest)
    assert read_predictions(log_root(b), "churn").empty
    assert "not readable from the object store" in caplog.text


def test_prune_forgets_the_listing_and_the_traffic_index(hosts):
    from mloop.monitoring.runner import prune

    a, _ = hosts
    _log(a, ["ra1"])
    result = prune(a, 0, now=10**14)
    assert result.segments == 1
    assert repositories.backend(a).prediction_segments.since() == []


def test_a_store_of_one_host_shares_nothing(sqlite_project):
    assert sharer(sqlite_project) is None
    assert log_root(sqlite_project) == sqlite_project.root / ".mloop" / "predictions"
