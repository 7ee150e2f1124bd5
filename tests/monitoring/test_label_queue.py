"""The labelling queue: logged predictions without a label, least certain first or in a
stable random order; labels given by a person stored with who gave them."""

import getpass
import json

import numpy as np
import pandas as pd
import pytest

from mloop import repositories
from mloop.core.identity import Identity, acting_as
from mloop.errors import InvalidInputError
from mloop.monitoring import feedback as F
from mloop.serving.predlog import PredictionLogger, log_root

# five requests of two rows; P(class 1) chosen so that the margins are known
P1 = np.array([0.9, 0.55, 0.3, 0.5, 0.99, 0.62, 0.42, 0.1, 0.8, 0.51])


def _log(project, model="churn", version=1, proba=True, prefix="r"):
    logger = PredictionLogger(log_root(project), flush_seconds=0.05)
    for i in range(5):
        rows = slice(2 * i, 2 * i + 2)
        p1 = P1[rows]
        frame = pd.DataFrame({"age": [20.0 + 2 * i, 21.0 + 2 * i], "plan": ["a", "b"]})
        logger.log(model, version, f"{prefix}{i}", frame=frame,
                   pred=(p1 >= 0.5).astype(int),
                   proba=np.column_stack([1 - p1, p1]) if proba else None, latency_ms=1.0)
    logger.close()


def _keys(queue):
    return [(it.request_id, it.row) for it in queue.items]


def test_the_least_certain_come_first_with_inputs_and_probabilities(sqlite_project):
    _log(sqlite_project)
    queue = F.label_queue(sqlite_project, "churn", limit=3)
    assert (queue.total, queue.labelled, queue.waiting) == (10, 0, 10)
    assert _keys(queue) == [("r1", 1), ("r4", 1), ("r0", 1)]  # |2p - 1|: 0, .02, .1
    first = queue.items[0]
    assert first.margin == pytest.approx(0.0) and first.version == 1
    assert first.inputs == {"age": 23.0, "plan": "b"}
    assert first.probabilities == pytest.approx({"0": 0.5, "1": 0.5})
    assert _keys(F.label_queue(sqlite_project, "churn", limit=2, offset=1)) == _keys(queue)[1:]


def test_labelled_rows_leave_the_queue_and_are_counted(sqlite_project):
    _log(sqlite_project)
    F.log_feedback(sqlite_project, "r1", [0, 1])
    queue = F.label_queue(sqlite_project, "churn", limit=10)
    assert (queue.total, queue.labelled, queue.waiting) == (10, 2, 8)
    assert ("r1", 1) not in _keys(queue) and len(queue.items) == 8


def test_random_order_is_stable_and_covers_every_waiting_row(sqlite_project):
    _log(sqlite_project)
    one = F.label_queue(sqlite_project, "churn", mode="random", limit=10)
    two = F.label_queue(sqlite_project, "churn", mode="random", limit=10)
    assert _keys(one) == _keys(two)
    assert sorted(_keys(one)) == sorted((f"r{i}", r) for i in range(5) for r in (0, 1))
    assert _keys(one) != _keys(F.label_queue(sqlite_project, "churn", limit=10))


def test_versions_and_predictions_without_probabilities(sqlite_project):
    _log(sqlite_project, version=1)
    _log(sqlite_project, version=2, proba=False, prefix="s")
    assert F.label_queue(sqlite_project, "churn").total == 20
    second = F.label_queue(sqlite_project, "churn", version=2, limit=10)
    assert second.total == 10 and {it.version for it in second.items} == {2}
    assert second.note and "random" in second.note
    assert all(it.margin is None and it.probabilities == {} for it in second.items)
    assert F.label_queue(sqlite_project, "unknown").total == 0


def test_bad_orders_and_ranges_are_refused(sqlite_project):
    with pytest.raises(InvalidInputError, match="uncertainty or random"):
        F.label_queue(sqlite_project, "churn", mode="loudest")
    with pytest.raises(InvalidInputError, match="limit"):
        F.label_queue(sqlite_project, "churn", limit=0)


def test_a_label_keeps_who_gave_it(sqlite_project):
    _log(sqlite_project)
    assert F.label(sqlite_project, "r0", 1, row=1).to_dict() == {"stored": 1, "unmatched": 0}
    with acting_as(Identity("alice", "writer")):
        F.label(sqlite_project, "r2", "malignant")
    stored = repositories.backend(sqlite_project).feedback.read()
    found = {(r, n): (json.loads(v), who) for r, n, v, who in zip(
        stored.request_id, stored.row, stored.label, stored.labelled_by, strict=True)}
    assert found == {("r0", 1): (1, getpass.getuser()), ("r2", 0): ("malignant", "alice")}


@pytest.mark.parametrize(("typed", "value"), [("1", 1), ("0.5", 0.5), ("true", True),
                                              ('"yes"', "yes"), ("malignant", "malignant"),
                                              ("[1, 2]", "[1, 2]"), (" 2 ", 2)])
def test_typed_labels(typed, value):
    assert F.label_value(typed) == value


def test_an_empty_label_is_refused():
    with pytest.raises(InvalidInputError, match="empty"):
        F.label_value("  ")
