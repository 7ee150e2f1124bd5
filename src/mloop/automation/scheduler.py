"""``mloop automate run``: the rounds of :mod:`.runner` on APScheduler's clock.

One APScheduler ``BlockingScheduler`` (UTC) holds a ``CronTrigger`` job per schedule
trigger, which checks that pipeline's schedule the moment it is due, and one interval job
that checks every trigger every ``poll`` (new dataset versions and alerts; a cron time
missed while a long run held the process is caught there, within its grace, and so is
one that waited for a cooldown, once the cooldown ends). The poll
also re-reads ``.mloop/automation.yaml``, so edits apply without a restart (cron jobs are
added and removed to match; a file that does not parse keeps the last good settings).

One process runs one round at a time: pipeline code and the engine's tracking are not
asked to be thread-safe. Several processes may run this (and ``mloop automate check``
from cron) on one project: claims in the store start each pipeline once (see
:mod:`.state`), so more processes mean more pipelines at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mloop.automation.config import AutomationConfig, ScheduleTrigger, load_config
from mloop.automation.runner import Outcome, check
from mloop.core.redact import get_logger
from mloop.errors import MloopError

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.automation")
OnOutcomes = Callable[[list[Outcome]], None]


class _Jobs:
    """The scheduler's jobs, kept in step with the configuration."""

    def __init__(self, project: Project, scheduler: Any, config: AutomationConfig,
                 on_outcomes: OnOutcomes | None) -> None:
        self.project, self.scheduler, self.config = project, scheduler, config
        self.on_outcomes = on_outcomes
        self.lock = threading.Lock()  # one round at a time in this process
        self.sync()

    def sync(self) -> None:
        """One cron job per (pipeline, schedule trigger); stale ones removed."""
        wanted: dict[str, tuple[str, ScheduleTrigger]] = {}
        for name, auto in self.config.pipelines.items():
            for trigger in auto.triggers:
                if isinstance(trigger, ScheduleTrigger):
                    wanted[f"cron|{name}|{trigger.key}"] = (name, trigger)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("cron|") and job.id not in wanted:
                job.remove()
        for job_id, (name, trigger) in wanted.items():
            if self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(
                    self.tick, trigger.cron_trigger(), args=[name], id=job_id,
                    name=f"{name}: {trigger.key}", coalesce=True, max_instances=1,
                    misfire_grace_time=max(1, trigger.grace_ms // 1000))

    def tick(self, pipeline: str) -> None:
        """A cron job: the schedule triggers of ``pipeline`` are due."""
        with self.lock:
            if pipeline in self.config.pipelines:
                self._round(pipelines=[pipeline], kinds={"schedule"})

    def poll(self) -> None:
        """The interval job: reload the configuration, then check every trigger."""
        with self.lock:
            try:
                config = load_config(self.project.root)
            except MloopError as exc:  # a half-saved file: keep the last good settings
                log.error("%s (keeping the previous settings)", exc.message)
            else:
                self.config = config
                self.sync()
            self._round(pipelines=None, kinds=None)

    def _round(self, *, pipelines: list[str] | None, kinds: set[str] | None) -> None:
        try:
            outcomes = check(self.project, self.config, pipelines=pipelines, kinds=kinds)
        except Exception:  # a round must never end the scheduler; the next one retries
            log.exception("automation round failed")
            return
        if self.on_outcomes is not None:
            self.on_outcomes(outcomes)


def run(project: Project, *, poll_ms: int = 60_000, stop: threading.Event | None = None,
        on_outcomes: OnOutcomes | None = None) -> None:
    """Run the schedule and poll the events until ``stop`` is set (or Ctrl-C); a round in
    progress finishes first. ``on_outcomes`` receives each round's outcomes."""
    from apscheduler.schedulers.base import SchedulerNotRunningError
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    config = load_config(project.root)  # a broken file at start: a clear error, no loop
    stop = stop if stop is not None else threading.Event()
    scheduler = BlockingScheduler(timezone=UTC)
    jobs = _Jobs(project, scheduler, config, on_outcomes)
    scheduler.add_job(jobs.poll, IntervalTrigger(seconds=poll_ms / 1000, timezone=UTC),
                      id="poll", name="event triggers", coalesce=True, max_instances=1,
                      next_run_time=datetime.now(UTC))

    finished = threading.Event()

    def watch() -> None:
        stop.wait()
        while not finished.is_set():
            try:
                scheduler.shutdown(wait=True)  # waits for running rounds, wakes start()
                return
            except SchedulerNotRunningError:  # stopped before it started: wait for it
                finished.wait(0.05)

    watcher = threading.Thread(target=watch, name="mloop-automation-stop", daemon=True)
    watcher.start()
    try:
        if not stop.is_set():
            scheduler.start()
    except KeyboardInterrupt:
        if scheduler.running:
            scheduler.shutdown(wait=True)
    finally:
        finished.set()
        stop.set()
        watcher.join(timeout=5)
