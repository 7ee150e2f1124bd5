"""Triggers: a cron tick is due once within its grace (or, skipped for a cooldown, when the
cooldown ends); a dataset version and an alert fire once each; the alert trigger keeps to
its model and rules."""

from datetime import UTC, datetime

from mloop.automation import check, history
from mloop.automation.config import ScheduleTrigger, parse_pipeline
from mloop.automation.triggers import due_tick, latest_tick, next_tick, pending
from mloop.monitoring.alerting import Firing, fire, resolve
from tests.automation.conftest import TRAIN, add_dataset, write_yaml


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_latest_tick_within_the_grace():
    daily = ScheduleTrigger("0 3 * * *")  # grace 1 h
    assert latest_tick(daily, ms(2024, 5, 1, 2, 59)) is None  # yesterday's is too old
    assert latest_tick(daily, ms(2024, 5, 1, 3, 0)) == datetime(2024, 5, 1, 3, tzinfo=UTC)
    assert latest_tick(daily, ms(2024, 5, 1, 3, 59)) == datetime(2024, 5, 1, 3, tzinfo=UTC)
    assert latest_tick(daily, ms(2024, 5, 1, 4, 1)) is None  # missed by more than the grace
    assert next_tick(daily, ms(2024, 5, 1, 3, 0)) == datetime(2024, 5, 2, 3, tzinfo=UTC)
    # missed ticks coalesce: the newest one in the grace window stands for all
    often = ScheduleTrigger("*/10 * * * *", grace_ms=3_600_000)
    assert latest_tick(often, ms(2024, 5, 1, 3, 47)) == datetime(2024, 5, 1, 3, 40,
                                                                 tzinfo=UTC)


def test_schedule_due_once_per_tick(proj, engine):
    write_yaml(proj, """
        pipelines:
          nightly:
            triggers: [{schedule: "0 3 * * *"}]
    """)
    assert check(proj, now=ms(2024, 5, 1, 2, 59))[0].status == "idle"  # not due yet
    out = check(proj, now=ms(2024, 5, 1, 3, 0, 30))[0]
    assert out.status == "succeeded"
    assert out.trigger == "schedule 0 3 * * * (2024-05-01T03:00Z)"
    assert engine.calls[0]["trigger"] == out.trigger
    assert check(proj, now=ms(2024, 5, 1, 3, 5))[0].status == "idle"  # this tick fired
    assert check(proj, now=ms(2024, 5, 2, 3, 1))[0].status == "succeeded"  # the next one
    assert len(engine.calls) == 2


def test_a_new_dataset_version_fires_once(proj, engine):
    write_yaml(proj, """
        pipelines:
          train-on-data:
            inputs: {raw: train@latest}
            params: {C: 0.5}
            triggers: [{dataset: train}]
    """)
    first = check(proj)[0]
    assert first.status == "idle" and "no such dataset yet" in first.notes[0]
    add_dataset(proj, "train", TRAIN)
    ran = check(proj)[0]
    assert ran.status == "succeeded" and ran.trigger == "dataset train@1"
    assert engine.calls[0]["inputs"] == {"raw": "train@latest"}
    assert engine.calls[0]["params"] == {"C": 0.5}
    assert check(proj)[0].status == "idle"
    # two versions before the next check: one run, for the newest
    add_dataset(proj, "train", TRAIN.iloc[:300])
    add_dataset(proj, "train", TRAIN.iloc[:200])
    assert check(proj)[0].trigger == "dataset train@3"
    assert check(proj)[0].status == "idle"
    assert len(engine.calls) == 2


def _alert(project, rule, subject="models:/churn/1"):
    alert, _ = fire(project, Firing(rule, "drift.dataset", subject, "warning", 1.0, 1.0,
                                    "drifted", 3_600_000))
    return alert


def test_an_alert_fires_once_and_keeps_to_its_rules(proj, engine):
    write_yaml(proj, """
        pipelines:
          retrain:
            triggers:
              - alert: {model: churn, rules: [data-drift]}
    """)
    auto = parse_pipeline("retrain", {"triggers": [{"alert": {"model": "churn",
                                                              "rules": ["data-drift"]}}]})
    _alert(proj, "latency")  # another rule
    _alert(proj, "data-drift", subject="models:/fraud/1")  # another model
    _alert(proj, "data-drift", subject="models:/churner/1")  # a name that starts the same
    assert pending(proj, auto, now=0) == ([], [])
    drift = _alert(proj, "data-drift", subject="models:/churn/2")
    out = check(proj)[0]
    assert out.status == "succeeded" and out.events[0].source == drift.uri
    assert out.trigger == f"alert {drift.uri} (data-drift on models:/churn/2)"
    assert check(proj)[0].status == "idle"  # still open, already handled
    # it keeps firing in monitoring (same open record): no new run
    _alert(proj, "data-drift", subject="models:/churn/2")
    assert check(proj)[0].status == "idle"
    # resolved, and a new alert opens after the rule's cooldown: a new run
    resolve(proj, drift.id)
    later, _ = fire(proj, Firing("data-drift", "drift.dataset", "models:/churn/2", "warning",
                                 1.0, 1.0, "drifted again", 1), now=drift.opened_at + 10)
    assert later.id != drift.id
    assert check(proj)[0].events[0].event == later.id
    assert len(engine.calls) == 2


def test_several_triggers_at_once_make_one_run(proj, engine):
    write_yaml(proj, """
        pipelines:
          p:
            triggers: [{dataset: train}, {alert: churn}, {schedule: "0 3 * * *"}]
    """)
    add_dataset(proj, "train", TRAIN)
    alert = _alert(proj, "performance-drop")
    out = check(proj, now=ms(2024, 5, 1, 3, 1))[0]
    assert out.status == "succeeded"
    assert [e.trigger for e in out.events] == ["dataset train", "alert churn",
                                               "schedule 0 3 * * *"]  # as configured
    assert out.trigger == (f"dataset train@1; alert {alert.uri} (performance-drop on "
                           "models:/churn/1); schedule 0 3 * * * (2024-05-01T03:00Z)")
    assert len(engine.calls) == 1
    assert check(proj, now=ms(2024, 5, 1, 3, 2))[0].status == "idle"


def test_a_tick_skipped_for_the_cooldown_fires_once_when_it_ends(proj, engine):
    write_yaml(proj, """
        pipelines:
          p:
            triggers: [{dataset: train}, {schedule: "0 3 * * *"}]
            cooldown: 6h
    """)
    add_dataset(proj, "train", TRAIN)
    assert check(proj, now=ms(2024, 5, 1, 2, 0))[0].trigger == "dataset train@1"
    skipped = check(proj, now=ms(2024, 5, 1, 3, 10))[0]
    assert skipped.status == "skipped_cooldown"
    assert skipped.trigger == "schedule 0 3 * * * (2024-05-01T03:00Z)"
    # still inside the cooldown, past the tick's grace: it waits (the skip recorded once)
    waiting = check(proj, now=ms(2024, 5, 1, 5, 0))[0]
    assert waiting.status == "skipped_cooldown" and waiting.decision is None
    assert check(proj, dry_run=True, now=ms(2024, 5, 1, 8, 1))[0].status == "would_run"
    # the cooldown ended at 08:00, the tick's grace at 04:00: it fires now, once
    ran = check(proj, now=ms(2024, 5, 1, 8, 5))[0]
    assert ran.status == "succeeded"
    assert ran.trigger == "schedule 0 3 * * * (2024-05-01T03:00Z)"
    assert check(proj, now=ms(2024, 5, 1, 8, 6))[0].status == "idle"
    assert check(proj, now=ms(2024, 5, 1, 10, 0))[0].status == "idle"
    assert len(engine.calls) == 2
    assert [d.decision for d in history(project=proj)] == ["succeeded", "skipped_cooldown",
                                                           "succeeded"]
    # the next day's tick fires as usual (the 08:05 run's cooldown ended at 14:05)
    assert check(proj, now=ms(2024, 5, 2, 3, 0))[0].status == "succeeded"


def test_a_tick_that_waited_is_let_go_a_grace_after_the_cooldown():
    daily = ScheduleTrigger("0 3 * * *")  # grace 1 h
    cooldown = (ms(2024, 5, 1, 2, 0), ms(2024, 5, 1, 8, 0))
    tick = datetime(2024, 5, 1, 3, tzinfo=UTC)
    assert due_tick(daily, ms(2024, 5, 1, 2, 30), cooldown) is None  # not yet due
    assert due_tick(daily, ms(2024, 5, 1, 6, 0), cooldown) == tick  # waiting
    assert due_tick(daily, ms(2024, 5, 1, 9, 0), cooldown) == tick  # due from 08:00
    assert due_tick(daily, ms(2024, 5, 1, 9, 1), cooldown) is None  # missed its grace
    assert due_tick(daily, ms(2024, 5, 1, 6, 0)) is None  # no cooldown: the grace alone
    # a tick at the run's start did not wait; one at the cooldown's end is just due
    assert due_tick(daily, ms(2024, 5, 1, 9, 0), (ms(2024, 5, 1, 3, 0),
                                                  ms(2024, 5, 1, 8, 0))) is None
    assert due_tick(daily, ms(2024, 5, 1, 3, 30), (ms(2024, 5, 1, 0, 0),
                                                   ms(2024, 5, 1, 3, 0))) == tick
    # a long cooldown and a per-minute cron: the newest tick, found quickly
    often = ScheduleTrigger("* * * * *", grace_ms=60_000)
    week = (ms(2024, 5, 1), ms(2024, 5, 8))
    assert due_tick(often, ms(2024, 5, 7, 12, 30, 30), week) == datetime(
        2024, 5, 7, 12, 30, tzinfo=UTC)
    assert due_tick(often, ms(2024, 5, 8, 0, 0, 30), week) == datetime(
        2024, 5, 8, 0, 0, tzinfo=UTC)
