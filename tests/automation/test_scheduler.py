"""``run``: APScheduler's cron jobs follow the configuration, the poll acts on events,
and the loop stops when asked."""

import threading
import time

from apscheduler.schedulers.blocking import BlockingScheduler

from mloop.automation import history, run
from mloop.automation.config import load_config
from mloop.automation.scheduler import _Jobs
from tests.automation.conftest import TRAIN, add_dataset, write_yaml

TWO = """
pipelines:
  nightly:
    triggers: [{schedule: "0 3 * * 1-5"}, {schedule: "30 * * * *", grace: 5m}]
  events:
    triggers: [{dataset: train}]
"""


def test_cron_jobs_follow_the_configuration(proj, engine):
    write_yaml(proj, TWO)
    scheduler = BlockingScheduler()
    jobs = _Jobs(proj, scheduler, load_config(proj.root), None)
    found = {j.id: j for j in scheduler.get_jobs()}
    assert set(found) == {"cron|nightly|schedule 0 3 * * 1-5",
                          "cron|nightly|schedule 30 * * * *"}
    weekdays = found["cron|nightly|schedule 0 3 * * 1-5"]
    assert "day_of_week='mon,tue,wed,thu,fri'" in str(weekdays.trigger)
    assert found["cron|nightly|schedule 30 * * * *"].misfire_grace_time == 300
    write_yaml(proj, """
        pipelines:
          nightly:
            triggers: [{schedule: "0 4 * * *"}]
    """)
    jobs.config = load_config(proj.root)
    jobs.sync()
    assert [j.id for j in scheduler.get_jobs()] == ["cron|nightly|schedule 0 4 * * *"]


def test_a_cron_job_runs_its_pipeline_schedule_only(proj, engine):
    write_yaml(proj, """
        pipelines:
          often:
            triggers: [{schedule: "* * * * *"}, {dataset: train}]
    """)
    add_dataset(proj, "train", TRAIN)
    seen = []
    jobs = _Jobs(proj, BlockingScheduler(), load_config(proj.root), seen.append)
    jobs.tick("often")
    assert [o.status for o in seen[0]] == ["succeeded"]
    assert seen[0][0].trigger.startswith("schedule * * * * * (")  # not the dataset
    jobs.tick("gone")  # a pipeline removed from the file meanwhile: nothing
    assert len(seen) == 1


def test_run_polls_events_until_stopped(proj, engine):
    write_yaml(proj, """
        pipelines:
          nightly:
            triggers: [{schedule: "0 0 29 2 *", grace: 1m}]   # not due while this runs
          events:
            triggers: [{dataset: train}]
    """)
    stop = threading.Event()
    rounds = []
    thread = threading.Thread(target=run, kwargs={"poll": 0.1, "stop": stop,
                                                  "on_outcomes": rounds.append,
                                                  "project": proj})
    thread.start()
    try:
        add_dataset(proj, "train", TRAIN)
        deadline = time.monotonic() + 20
        while not history(project=proj) and time.monotonic() < deadline:
            time.sleep(0.05)
        # a broken edit mid-run: the last good settings stay, the loop goes on
        (proj.root / ".mloop" / "automation.yaml").write_text("pipelines: [")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    assert [d.trigger for d in history(project=proj)] == ["dataset train@1"]
    assert engine.calls[0]["pipeline"] == "events"
    assert all({o.pipeline for o in r} == {"nightly", "events"} for r in rounds)


def test_run_stopped_before_it_starts_returns(proj, engine):
    stop = threading.Event()
    stop.set()
    run(poll="1s", stop=stop, project=proj)
