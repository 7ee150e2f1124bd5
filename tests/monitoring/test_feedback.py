"""Feedback: validation, one row per label, upserts (SQLite and PostgreSQL), decoding."""

import numpy as np
import pandas as pd
import pytest

import mloop
from mloop.core.clock import now_ms
from mloop.errors import InvalidInputError
from mloop.monitoring import feedback as F


def _stored(project):
    return F.read(project, 0).sort_values(["request_id", "row"]).reset_index(drop=True)


@pytest.mark.parametrize("bad", ["", "a" * 65, "has space", "semi;colon", "slash/x", "é", 12,
                                 None, b"bytes"])
def test_bad_request_ids_are_refused(bad):
    with pytest.raises(InvalidInputError, match="request_id"):
        F.entries(bad, 1)


def test_good_request_ids():
    for rid in ("a", "a" * 64, "0f3c_9-A.b:c", "5e1d2f3a9b8c4d7e6f5a4b3c2d1e0f9a"):
        assert F.entries(rid, 1) == [F.Feedback(rid, 0, "1")]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_non_finite_labels_are_refused(bad):
    with pytest.raises(InvalidInputError, match="finite"):
        F.entries("r1", bad)


@pytest.mark.parametrize("bad", [{"a": 1}, None, object(), {1, 2}, b"x", 1j])
def test_objects_are_not_labels(bad):
    with pytest.raises(InvalidInputError, match="a number, a string or a boolean"):
        F.entries("r1", bad)


def test_a_list_element_that_is_not_a_label_names_its_row():
    with pytest.raises(InvalidInputError, match="row 2"):
        F.entries("r1", [1, 0, [1]])
    with pytest.raises(InvalidInputError, match=r"row 1.*finite"):
        F.entries("r1", [1.0, float("nan")])


def test_list_and_row_together_empty_list_and_bad_rows():
    with pytest.raises(InvalidInputError, match="not both"):
        F.entries("r1", [1, 0], row=1)
    with pytest.raises(InvalidInputError, match="empty"):
        F.entries("r1", [])
    for row in (-1, True, 1.5, "2"):
        with pytest.raises(InvalidInputError, match="row must be"):
            F.entries("r1", 1, row=row)


def test_list_labels_give_one_row_per_element():
    got = F.entries("r1", [1, "b", True, 2.5, np.int64(7)])
    assert [(e.row, e.label) for e in got] == [(0, "1"), (1, '"b"'), (2, "true"), (3, "2.5"),
                                                 (4, "7")]
    assert F.entries("r1", ("x", "y"))[1] == F.Feedback("r1", 1, '"y"')
    assert F.entries("r1", "yes", row=3) == [F.Feedback("r1", 3, '"yes"')]
    assert F.entries("r1", np.bool_(False)) == [F.Feedback("r1", 0, "false")]


def test_a_numpy_array_of_labels_is_one_row_per_element():
    got = F.entries("r1", np.array([1, 0, 1]))
    assert [e.label for e in got] == ["1", "0", "1"]


def test_resending_replaces_on_both_databases(project):
    assert mloop.log_feedback("req-1", [0, 1, 1]).stored == 3
    assert mloop.monitoring.log_feedback("req-2", "cat", row=4, project=project).stored == 1
    assert mloop.log_feedback("req-1", 0, row=2).stored == 1  # one label corrected
    assert mloop.log_feedback("req-2", "dog", row=4).stored == 1
    stored = _stored(project)
    assert list(zip(stored.request_id, stored.row, stored.label, strict=True)) == [
        ("req-1", 0, 0), ("req-1", 1, 1), ("req-1", 2, 0), ("req-2", 4, "dog")]
    # a whole batch with repeats inside it and against the table: last one wins, no error
    n = F.save(project, [F.Feedback("req-1", 0, "1"), F.Feedback("req-3", 0, "1"),
                         F.Feedback("req-1", 1, "0")])
    assert n == F.FeedbackResult(3, 3)  # no prediction is logged: none matched
    stored = _stored(project)
    assert stored.label.tolist() == [1, 0, 0, "dog", 1]  # decoded per column: object
    assert len(stored) == 5


def test_save_of_nothing_is_zero(sqlite_project):
    assert F.save(sqlite_project, []) == F.FeedbackResult(0, 0)
    assert F.read(sqlite_project, 0).empty


def test_read_only_returns_feedback_since(sqlite_project):
    from sqlalchemy import update

    from mloop.store.schema import feedback

    mloop.log_feedback("old", 1)
    with sqlite_project.store.write() as conn:
        conn.execute(update(feedback).values(created_at=1000))
    mloop.log_feedback("new", 0)
    assert F.read(sqlite_project, 2000).request_id.tolist() == ["new"]
    assert set(F.read(sqlite_project, 0).request_id) == {"old", "new"}


def _codes(values):
    return pd.Series([F._label(v, "t") for v in values])


def test_decode_plain_strings():
    assert F.decode(_codes(["yes", "no", ""])).tolist() == ["yes", "no", ""]
    assert F.decode(_codes(["1", "2"])).tolist() == ["1", "2"]  # strings stay strings
    # a backslash is escaped as two: that case is found and decoded
    assert F.decode(_codes(["back\\slash", "x"])).tolist() == ["back\\slash", "x"]


@pytest.mark.parametrize("value", ['say "hi"', "é", "line\nbreak", "tab\t"])
def test_decode_strings_with_escapes(value):
    assert F.decode(_codes([value, "plain"])).tolist() == [value, "plain"]


def test_decode_strings_with_escapes_and_other_types():
    # when not every label is a string, each is read as JSON: escapes are undone
    assert F.decode(_codes(['say "hi"', 1])).tolist() == ['say "hi"', 1]


def test_decode_booleans_numbers_and_mixtures():
    decoded = F.decode(_codes([True, False, True]))
    assert decoded.dtype == bool and decoded.tolist() == [True, False, True]
    ints = F.decode(_codes([1, 0, 3]))
    assert ints.dtype.kind == "i" and ints.tolist() == [1, 0, 3]
    floats = F.decode(_codes([1, 2.5, -1e-3]))
    assert floats.dtype.kind == "f" and floats.tolist() == [1.0, 2.5, -0.001]
    mixed = F.decode(_codes(["a", True, 2, 2.5]))
    assert mixed.tolist() == ["a", True, 2, 2.5]
    assert [type(v) for v in mixed] == [str, bool, int, float]
    assert F.decode(_codes([1, True])).tolist() == [1, True]


def test_decode_keeps_the_index_and_handles_empty():
    raw = pd.Series(['"a"', "1"], index=[7, 3])
    assert F.decode(raw).index.tolist() == [7, 3]
    raw = pd.Series(['"a"', '"b"'], index=[7, 3])
    assert F.decode(raw).to_dict() == {7: "a", 3: "b"}
    empty = F.decode(pd.Series([], dtype=str))
    assert empty.empty and empty.dtype == object


def test_log_frame_with_and_without_a_row_column(project):
    with_rows = pd.DataFrame({"request_id": ["a", "a", "b"], "row": [0, 1, 5],
                              "label": [1, 0, 1], "ignored": ["x", "y", "z"]})
    assert F.log_frame(project, with_rows).stored == 3
    without = pd.DataFrame({"request_id": ["c", "d"], "label": ["spam", "ham"]})
    assert F.log_frame(project, without).stored == 2
    stored = _stored(project)
    assert list(zip(stored.request_id, stored.row, strict=True)) == [
        ("a", 0), ("a", 1), ("b", 5), ("c", 0), ("d", 0)]
    assert stored.label.tolist() == [1, 0, 1, "spam", "ham"]
    # numeric request ids (as a CSV reads them) are taken as text
    assert F.log_frame(project, pd.DataFrame({"request_id": [42], "label": [1]})).stored == 1
    assert "42" in set(F.read(project, 0).request_id)


def test_log_frame_errors(sqlite_project):
    with pytest.raises(InvalidInputError, match="missing: label"):
        F.log_frame(sqlite_project, pd.DataFrame({"request_id": ["a"], "row": [0]}))
    with pytest.raises(InvalidInputError, match="missing: label, request_id"):
        F.log_frame(sqlite_project, pd.DataFrame({"x": [1]}))
    with pytest.raises(InvalidInputError, match="empty label \\(data row 2\\)"):
        F.log_frame(sqlite_project, pd.DataFrame({"request_id": ["a", "b"],
                                                  "label": [1.0, np.nan]}))
    assert F.read(sqlite_project, 0).empty  # a bad row stores none of the table


def test_log_frame_with_a_missing_row_value_is_a_clear_error(sqlite_project):
    frame = pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0], "row": [0, None]})
    with pytest.raises(InvalidInputError):
        F.log_frame(sqlite_project, frame)


# -- labels that arrive before their prediction, or for none ---------------------------------

def _log(project, model, rid, frame, pred):
    from mloop.serving.predlog import PredictionLogger

    logger = PredictionLogger(project.root / ".mloop" / "predictions", flush_seconds=0.05)
    logger.log(model, 1, rid, frame=frame, pred=pred, proba=None, latency_ms=1.0)
    logger.close()


def test_a_label_before_its_prediction_waits_then_counts_in_live_metrics(sqlite_project):
    from mloop.core.ids import new_id
    from tests.monitoring.test_runner import SERVE, Served, X

    served = Served(sqlite_project)
    served.log(X.iloc[SERVE[:10]])  # another request, unlabelled
    part = X.iloc[SERVE[10:40]]
    pred = served.model.predict(part)
    rid = new_id()  # as the server makes them
    assert mloop.log_feedback(rid, [int(p) for p in pred]) == F.FeedbackResult(30, 30)
    (before,) = mloop.monitoring.performance("churn").versions
    assert (before.predictions, before.labelled, before.metrics) == (10, 0, {})
    assert F.status(sqlite_project).unmatched == 30
    _log(sqlite_project, "churn", rid, part, pred)  # the prediction reaches the log
    (after,) = mloop.monitoring.performance("churn").versions
    assert (after.predictions, after.labelled) == (40, 30)
    assert after.metrics["accuracy"] == 1.0  # the labels are the predictions
    found = F.status(sqlite_project)
    assert (found.labels, found.matched, found.unmatched) == (30, {"churn": 30}, 0)
    # sending them again now reports them matched, through the time in the id
    assert mloop.log_feedback(rid, 1, row=29) == F.FeedbackResult(1, 0)


def test_requests_a_server_has_not_logged_yet_count_as_matched(project):
    got = F.save(project, F.entries("r1", [1, 0, 1]) + F.entries("r2", 1),
                 unwritten=lambda ids: {"r1": 2} if "r1" in ids else {})
    assert got == F.FeedbackResult(4, 2)  # r1 row 2 and r2 wait


def test_ids_made_by_mloop_are_looked_up_only_in_segments_written_after_them(sqlite_project):
    from mloop.core.ids import new_id

    rid = new_id()
    frame = pd.DataFrame({"a": [1.0]})
    _log(sqlite_project, "m", "other-id", frame, np.array([1]))
    _log(sqlite_project, "m", rid, frame, np.array([1]))
    assert F.unmatched(sqlite_project, [(rid, 0), (rid, 1), ("other-id", 0)]) == {(rid, 1)}
    # a segment named as written an hour before the id cannot hold it: not read
    (segment,) = [p for p in (sqlite_project.root / ".mloop" / "predictions" / "m" / "1")
                  .glob("*.parquet") if rid in pd.read_parquet(p).request_id.tolist()]
    early = segment.with_name(f"{int(segment.name.split('-')[0]) - 3_600_000}-x.parquet")
    segment.rename(early)
    assert F.unmatched(sqlite_project, [(rid, 0)]) == {(rid, 0)}
    assert F.unmatched(sqlite_project, [("other-id", 0)]) == set()  # other ids: all read


def test_labels_that_never_match_go_with_the_retention(project):
    from sqlalchemy import update

    from mloop.monitoring.runner import prune
    from mloop.store.schema import feedback

    mloop.log_feedback("never-served", 1)
    with project.store.write() as conn:
        conn.execute(update(feedback).values(created_at=now_ms() - 40 * 86_400_000))
    mloop.log_feedback("recent", 1)
    assert prune(project, 30 * 86_400_000).feedback == 1
    found = F.status(project)
    assert (found.labels, found.unmatched, found.examples) == (1, 1, ["recent"])


# -- the body of POST /api/v1/feedback, with its limits ---------------------------------------

def _limited(body, items=10, label_bytes=20):
    return F.request_entries(body, max_items=items, max_label_bytes=label_bytes)


def test_request_bodies_are_read_into_rows():
    assert _limited({"request_id": "a", "label": [1, 0]}) == [F.Feedback("a", 0, "1"),
                                                                F.Feedback("a", 1, "0")]
    assert _limited({"items": [{"request_id": "a", "row": 3, "label": "x"}]}) == [
        F.Feedback("a", 3, '"x"')]


@pytest.mark.parametrize(("body", "field"), [
    (1, "$"), ([], "$"), ({"request_id": "a"}, "$"), ({"items": []}, "items"),
    ({"items": "a"}, "items"), ({"items": [{"label": 1}]}, "items[0]"),
    ({"items": [{"request_id": "a", "label": 1}, 7]}, "items[1]")])
def test_malformed_request_bodies_name_the_field(body, field):
    from mloop.serving.protocol import PayloadError

    with pytest.raises(PayloadError) as caught:
        _limited(body)
    assert caught.value.field == field


def test_request_limits_are_exact_and_named():
    assert len(_limited({"items": [{"request_id": f"r{i}", "label": 1}
                                   for i in range(10)]})) == 10
    with pytest.raises(F.LimitError, match="More than 10 labels") as caught:
        _limited({"items": [{"request_id": f"r{i}", "label": 1} for i in range(11)]})
    assert (caught.value.limit, caught.value.value, caught.value.http_status) == (
        "feedback_max_items", 10, 413)
    with pytest.raises(F.LimitError, match=r"items\[1\]: more than 10 labels"):
        _limited({"items": [{"request_id": "a", "label": [1] * 5},
                            {"request_id": "b", "label": [1] * 6}]})
    assert _limited({"request_id": "a", "label": "x" * 18})[0].label == '"' + "x" * 18 + '"'
    with pytest.raises(F.LimitError, match=r"a label of 21 bytes .* = 20") as caught:
        _limited({"request_id": "a", "label": "x" * 19})
    assert caught.value.limit == "feedback_max_label_bytes"
    with pytest.raises(F.LimitError, match="feedback_max_label_bytes"):
        _limited({"request_id": "a", "label": ["ok", "é" * 4]})  # \\u00e9: 6 bytes each
