"""Claims in the store (SQLite and PostgreSQL): one winner, cooldowns across processes,
skips recorded once, leases of dead processes taken over, history."""

import subprocess
import sys
import threading
import time

from mloop.automation import check, history, state
from tests.automation.conftest import TRAIN, add_dataset, write_yaml

HOUR = 3_600_000
T0 = 1_700_000_000_000


def test_claim_busy_release_and_events_once(both):
    first = state.claim(both, "p", [("dataset train", "1")], "dataset train@1",
                        cooldown_ms=0, now=T0)
    assert first.status == "claimed" and first.events == [("dataset train", "1")]
    assert history(project=both)[0].decision == "running"
    # held: another claim (other events) is told who holds it
    busy = state.claim(both, "p", [("dataset train", "2")], "x", cooldown_ms=0, now=T0)
    assert busy.status == "busy" and busy.decision_id == first.decision_id
    assert busy.holder == state.holder()
    done = state.finish(both, first.decision_id, "succeeded", ["fine"], now=T0 + 5)
    assert (done.decision, done.reasons, done.finished_at) == ("succeeded", ["fine"], T0 + 5)
    # released; the consumed event cannot be claimed again, a new one can
    assert state.claim(both, "p", [("dataset train", "1")], "x", cooldown_ms=0,
                       now=T0).status == "stale"
    again = state.claim(both, "p", [("dataset train", "1"), ("dataset train", "2")], "y",
                        cooldown_ms=0, now=T0)
    assert again.status == "claimed" and again.events == [("dataset train", "2")]
    assert state.consumed(both, "p", "dataset train") == {"1", "2"}
    # a stale claim rolled back: no decision, no lease left behind
    assert [d.decision for d in history(project=both)] == ["running", "succeeded"]


def test_cooldown_holds_and_the_skip_is_recorded_once(both):
    c = state.claim(both, "p", [("k", "1")], "k 1", cooldown_ms=6 * HOUR, now=T0)
    state.started(both, "p", now=T0)
    state.finish(both, c.decision_id, "succeeded", [])
    skip = state.claim(both, "p", [("k", "2")], "k 2", cooldown_ms=6 * HOUR, now=T0 + HOUR)
    assert skip.status == "cooldown" and skip.until == T0 + 6 * HOUR
    assert skip.skipped.decision == "skipped_cooldown"
    assert "the next may start at" in skip.skipped.reasons[0]
    # the same events skipped again: not recorded again
    again = state.claim(both, "p", [("k", "2")], "k 2", cooldown_ms=6 * HOUR, now=T0 + 2 * HOUR)
    assert again.status == "cooldown" and again.skipped is None
    assert [d.decision for d in history(project=both)] == ["skipped_cooldown", "succeeded"]
    assert state.consumed(both, "p", "k") == {"1"}  # the waiting event was not consumed
    after = state.claim(both, "p", [("k", "2")], "k 2", cooldown_ms=6 * HOUR,
                        now=T0 + 6 * HOUR)
    assert after.status == "claimed"


def test_blocked_attempts_do_not_start_the_cooldown(proj):
    c = state.claim(proj, "p", [("k", "1")], "k 1", cooldown_ms=HOUR, now=T0)
    state.finish(proj, c.decision_id, "blocked", ["bad data"])  # never started
    assert state.claim(proj, "p", [("k", "2")], "k 2", cooldown_ms=HOUR,
                       now=T0 + 1).status == "claimed"


def test_a_dead_process_lease_is_taken_over(both):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    c = state.claim(both, "p", [("k", "1")], "k 1", cooldown_ms=0, now=T0)
    from sqlalchemy import update

    from mloop.store.schema import automation_state

    host = state.holder().rpartition(":")[0]
    with both.store.write() as conn:  # as if that process had claimed and died
        conn.execute(update(automation_state).values(lease_holder=f"{host}:{dead.stdout.strip()}"))
    taken = state.claim(both, "p", [("k", "2")], "k 2", cooldown_ms=0, now=T0 + 1)
    assert taken.status == "claimed"
    old = {d.id: d for d in history(project=both)}[c.decision_id]
    assert old.decision == "failed" and "ended before it finished" in old.reasons[0]
    assert old.reasons[0].endswith("its events fire again")
    assert state.consumed(both, "p", "k") == {"2"}  # "1" is pending again: it never finished


def test_a_crashed_round_gives_its_events_back(proj):
    c = state.claim(proj, "p", [("k", "1"), ("j", "x")], "k 1; j x", cooldown_ms=0, now=T0)
    state.finish(proj, c.decision_id, "failed", ["boom"], retry=True)
    assert state.consumed(proj, "p", "k") == set() and state.consumed(proj, "p", "j") == set()
    again = state.claim(proj, "p", [("k", "1")], "k 1", cooldown_ms=0, now=T0 + 1)
    assert again.status == "claimed" and again.events == [("k", "1")]
    state.finish(proj, again.decision_id, "succeeded", [])  # a decision keeps them
    assert state.consumed(proj, "p", "k") == {"1"}


def test_an_expired_lease_is_taken_over(proj):
    state.claim(proj, "p", [("k", "1")], "k 1", cooldown_ms=0, now=T0)
    assert state.claim(proj, "p", [("k", "2")], "k 2", cooldown_ms=0,
                       now=T0 + state.LEASE_MS - 1).status == "busy"
    assert state.claim(proj, "p", [("k", "2")], "k 2", cooldown_ms=0,
                       now=T0 + state.LEASE_MS + 1).status == "claimed"


def test_two_checks_at_once_start_one_run(both, engine):
    write_yaml(both, """
        pipelines:
          p:
            triggers: [{dataset: train}]
    """)
    add_dataset(both, "train", TRAIN)
    engine.hook = lambda: time.sleep(0.3)  # the run overlaps the other check
    barrier = threading.Barrier(4)
    results = []

    def one() -> None:
        barrier.wait()
        results.append(check(both)[0].status)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(engine.calls) == 1
    assert sorted(results).count("succeeded") == 1
    assert set(results) <= {"succeeded", "busy", "idle"}
    assert [d.decision for d in history(project=both)] == ["succeeded"]


def test_history_filters_newest_first(proj):
    for i, outcome in enumerate(["succeeded", "blocked", "promoted"]):
        state.record(proj, "a" if i < 2 else "b", f"t{i}", outcome, [f"r{i}"], now=T0 + i)
    assert [d.trigger for d in history(project=proj)] == ["t2", "t1", "t0"]
    assert [d.trigger for d in history(pipeline="a", project=proj)] == ["t1", "t0"]
    assert [d.trigger for d in history(decision="blocked", project=proj)] == ["t1"]
    assert len(history(limit=1, project=proj)) == 1
    d = history(project=proj)[0].to_dict()
    assert d["decision"] == "promoted" and d["reasons"] == ["r2"]
    assert d["fired_at"].startswith("2023-11-14T22:13")
