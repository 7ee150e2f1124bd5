"""The FeedbackLabels contract: labels stored once per (request, row), read, pruned."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.project import Project
from mloop.repositories.feedback import Feedback, FeedbackLabels


@pytest.fixture
def labels(project: Project) -> FeedbackLabels:
    return repositories.backend(project).feedback


def test_save_and_read_back(labels: FeedbackLabels) -> None:
    assert len(labels.read()) == 0 and labels.save([]) == []
    stored = labels.save([Feedback("r1", 0, "1"), Feedback("r1", 1, '"yes"')], now=1_000)
    assert stored == [("r1", 0), ("r1", 1)]
    found = labels.read()
    assert sorted(zip(found.request_id, found.row, found.label, found.created_at,
                      strict=True)) == [("r1", 0, "1", 1_000), ("r1", 1, '"yes"', 1_000)]
    assert set(found.columns()) == {"request_id", "row", "label", "created_at",
                                    "labelled_by"}
    assert found.labelled_by == [None, None]  # who sent them is not known


def test_who_gave_a_label_is_kept_and_replaced_with_it(labels: FeedbackLabels) -> None:
    labels.save([Feedback("r1", 0, "1"), Feedback("r2", 0, "0")], now=1_000,
                initiated_by="alice")
    labels.save([Feedback("r2", 0, "1")], now=2_000)  # sent again, by someone unknown
    found = labels.read()
    assert sorted(zip(found.request_id, found.label, found.labelled_by, strict=True)) == [
        ("r1", "1", "alice"), ("r2", "1", None)]


def test_a_label_sent_again_is_replaced(labels: FeedbackLabels) -> None:
    labels.save([Feedback("r1", 0, "1")], now=1_000)
    stored = labels.save([Feedback("r1", 0, "2"), Feedback("r1", 0, "3")], now=2_000)
    assert stored == [("r1", 0)]  # the last one given wins
    found = labels.read()
    assert (found.label, found.created_at) == (["3"], [2_000])


def test_read_since_and_prune(labels: FeedbackLabels) -> None:
    labels.save([Feedback("old", 0, "1")], now=1_000)
    labels.save([Feedback("new", 0, "0")], now=5_000)
    assert labels.read(5_000).request_id == ["new"]
    assert labels.read(1_000).row == [0, 0]
    assert labels.prune(5_000) == 1
    assert labels.read().request_id == ["new"]
    assert labels.prune(5_000) == 0
