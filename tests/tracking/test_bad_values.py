"""Bad values never poison a writer (issue 13 §4), on SQLite and PostgreSQL.

A value a database refuses is an InvalidInputError at the call; a batch the database
still refuses is split so that only the refused points are dropped; a transient failure
is retried; a permanent one is raised instead of retried forever.
"""

import logging
import os
import sqlite3

import pytest
import sqlalchemy.exc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloop
from mloop.core.clock import now_ms
from mloop.errors import InvalidInputError, ServiceUnavailableError
from mloop.tracking import writer as writer_module
from mloop.tracking.model import RunStatus
from mloop.tracking.tracker import tracker_for

BAD_TEXT = ["bad\x00key", "lone \udcff surrogate", "x" * 251]


def test_a_nul_in_a_metric_key_is_refused_at_the_call_and_later_metrics_land(project):
    with mloop.start_run() as run:
        with pytest.raises(InvalidInputError, match="NUL"):
            mloop.log_metric("bad\x00key", 1)
        for i in range(100):
            mloop.log_metric("good", i)
    stored = mloop.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.metrics == {"good": 99.0}
    assert len(stored.metric_history("good")) == 100


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_every_way_in_refuses_text_the_databases_cannot_keep(project, bad):
    with mloop.start_run() as run:
        for call in (lambda: mloop.log_metric(bad, 1), lambda: mloop.log_metrics({bad: 1}),
                     lambda: mloop.log_param(bad, 1), lambda: mloop.set_tag(bad, "v")):
            with pytest.raises(InvalidInputError):
                call()
        if len(bad) < 250:  # a long value is fine up to MAX_VALUE
            with pytest.raises(InvalidInputError):
                mloop.log_param("p", bad)
            with pytest.raises(InvalidInputError):
                mloop.set_tag("t", bad)
        mloop.log_metric("after", 1)
    assert mloop.get_run(run.id).metrics == {"after": 1.0}
    with pytest.raises(InvalidInputError):
        mloop.start_run(name=bad if len(bad) < 250 else "y" * 300)
    with pytest.raises(InvalidInputError):
        mloop.start_run(experiment=bad)
    with pytest.raises(InvalidInputError):
        mloop.start_run(tags={"t": bad} if len(bad) < 250 else {bad: "v"})


def test_names_with_a_trailing_newline_are_refused(project):
    for call in (lambda: mloop.start_run(experiment="exp\n"),
                 lambda: mloop.data.add("x.csv", name="train\n")):
        with pytest.raises(InvalidInputError):
            call()


def test_steps_and_values_outside_64_bits_are_refused(project):
    with mloop.start_run() as run:
        with pytest.raises(InvalidInputError, match="64 bits"):
            mloop.log_metric("x", 1, step=2**63)
        with pytest.raises(InvalidInputError, match="64 bits"):
            run.log_metric("x", 1, timestamp=-(2**64))
        mloop.log_metric("x", 2, step=2**63 - 1)
    assert mloop.get_run(run.id).metric_history("x")["step"].tolist() == [2**63 - 1]


def test_a_batch_the_store_refuses_loses_only_the_refused_points(project, caplog):
    """The writer itself (past the call-site checks): a point of a run that does not exist
    (a foreign-key violation) and one whose key the driver cannot encode are dropped and
    named; every other point of the batch, and every later one, is written."""
    run = mloop.start_run()
    writer = tracker_for(project).writer
    ts = now_ms()
    good = [(run.id, "good", i, ts, float(i)) for i in range(50)]
    bad = [("0" * 32, "orphan", 0, ts, 1.0), (run.id, "bad\udcffkey", 0, ts, 1.0)]
    if project.store.dialect == "postgresql":
        bad.append((run.id, "bad\x00key", 0, ts, 1.0))  # the reported case
    with caplog.at_level(logging.WARNING, logger="mloop.tracking.writer"):
        writer.extend(good[:20] + bad + good[20:])
        writer.flush()
    assert f"refused {len(bad)} metric point(s)" in caplog.text
    assert "'orphan'" in caplog.text and "bad\\udcffkey" in caplog.text
    writer.add((run.id, "later", 0, ts, 7.0))
    run.end()
    stored = mloop.get_run(run.id)
    assert stored.metrics == {"good": 49.0, "later": 7.0}
    assert stored.metric_history("good")["step"].tolist() == list(range(50))
    assert writer.pending() == 0


def test_a_transient_failure_is_retried_and_nothing_is_lost(project, monkeypatch):
    real = writer_module.write_points
    failures = iter([True, True, False])

    def flaky(store, conn, batch):
        if next(failures, False):
            raise sqlalchemy.exc.OperationalError(
                "INSERT", {}, sqlite3.OperationalError("database is locked"))
        real(store, conn, batch)

    monkeypatch.setattr(writer_module, "write_points", flaky)
    monkeypatch.setattr(writer_module, "_RETRY_PAUSES", (0.01, 0.01, 0.01))
    with mloop.start_run() as run:
        for i in range(10):
            mloop.log_metric("x", i)
    assert len(mloop.get_run(run.id).metric_history("x")) == 10


def test_a_permanent_failure_is_raised_not_retried_forever(project, monkeypatch):
    real = writer_module.write_points
    calls = []

    def broken(store, conn, batch):
        calls.append(len(batch))
        raise sqlalchemy.exc.ProgrammingError("INSERT", {}, Exception("no such table"))

    run = mloop.start_run()
    mloop.log_metric("x", 1)
    monkeypatch.setattr(writer_module, "write_points", broken)
    with pytest.raises(ServiceUnavailableError, match="no such table"):
        run.flush()
    assert calls == [1]  # once: no retry, no bisection of a fault that is not the data's
    monkeypatch.setattr(writer_module, "write_points", real)
    run.end()  # the kept point is written once the cause is gone
    assert mloop.get_run(run.id).metrics == {"x": 1.0}


# Any code point (surrogates included), and texts with a troublemaker inside or too long.
_any = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
printable_or_not = st.one_of(
    _any,
    st.builds("{}{}{}".format, _any, st.sampled_from(["\x00", "\udcff", "\n", "\r"]), _any),
    st.text(alphabet="ab", min_size=240, max_size=260),
    st.text(alphabet="ab", min_size=7990, max_size=8010))


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=printable_or_not, value=printable_or_not)
def test_any_text_is_refused_at_the_call_or_read_back_identical(project, key, value):
    with mloop.start_run(project=project) as run:
        for what, log, read in (
                ("tag", lambda: run.set_tag(key, value), lambda r: r.tags.get(key)),
                ("param", lambda: run.log_param(key, value), lambda r: r.params.get(key)),
                ("metric", lambda: run.log_metric(key, 1.5), lambda r: r.metrics.get(key))):
            try:
                log()
            except InvalidInputError:
                continue
            expected = 1.5 if what == "metric" else value
            assert read(run.to_run()) == expected, what


def test_data_messages_and_unreadable_file_names_are_refused_before_anything_is_stored(
        project):
    data = project.root / "train.csv"
    data.write_text("a\n1\n")
    with pytest.raises(InvalidInputError, match="NUL"):
        mloop.data.add(data, message="May\x00export")
    folder = project.root / "raw"
    folder.mkdir()
    (folder / "ok.txt").write_text("x")
    (folder / os.fsdecode(b"bad-\xff.txt")).write_text("y")  # not UTF-8 on disk
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        mloop.data.add(folder)
    assert mloop.data.list_datasets() == []
    assert list(project.objects.iter_digests()) == []  # nothing written before the check
