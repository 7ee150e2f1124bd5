"""The PrecomputeTables contract: batches, bulk upserts by key, lookups."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.errors import NotFoundError
from mloop.project import Project
from mloop.repositories.precompute import BatchStatus, PrecomputeTables


@pytest.fixture
def tables(project: Project) -> PrecomputeTables:
    return repositories.backend(project).precompute


def test_a_batch_runs_then_completes(tables: PrecomputeTables) -> None:
    batch = tables.start("churn", "models:/churn/1", "in.csv")
    assert batch.status is BatchStatus.RUNNING and batch.rows == 0
    assert batch.finished_at is None and tables.batch(batch.id) == batch
    done = tables.finish(batch.id, 3)
    assert (done.status, done.rows, done.table, done.source) == (
        BatchStatus.COMPLETE, 3, "churn", "in.csv")
    assert done.finished_at is not None and done.finished_at >= done.started_at
    with pytest.raises(NotFoundError):
        tables.batch("nope")


def test_put_upserts_by_key(tables: PrecomputeTables) -> None:
    batch = tables.start("churn", "models:/churn/1", "in.csv").id
    assert tables.put("churn", "models:/churn/1", batch, []) == 0
    rows = [("a", '{"prediction": 1}'), ("b", '{"prediction": 0}')]
    assert tables.put("churn", "models:/churn/1", batch, rows) == 2
    again = tables.start("churn", "models:/churn/1", "in.csv").id
    assert tables.put("churn", "models:/churn/1", again, [("a", '{"prediction": 0}')]) == 1
    assert sorted(tables.scored_keys("churn", "models:/churn/1")) == ["a", "b"]
    assert tables.scored_keys("churn", "models:/churn/2") == []
    found = tables.get("churn", "models:/churn/1", "a")
    assert (found.key, found.batch_id, found.prediction) == ("a", again, '{"prediction": 0}')


def test_newest_complete_batch_and_missing_keys(tables: PrecomputeTables) -> None:
    with pytest.raises(NotFoundError, match="No complete batch for table 'churn'"):
        tables.newest_model("churn")
    first = tables.start("churn", "models:/churn/1", "in.csv").id
    tables.finish(first, 0)
    tables.start("churn", "models:/churn/2", "in.csv")  # still running: not the newest
    assert tables.newest_model("churn") == "models:/churn/1"
    with pytest.raises(NotFoundError, match="No precomputed prediction for key 7 in 'churn'"):
        tables.get("churn", "models:/churn/1", 7)
    tables.put("churn", "models:/churn/1", first, [("7", "{}")])
    assert tables.get("churn", "models:/churn/1", 7).key == "7"
