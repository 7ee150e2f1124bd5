"""Which triggers fired: cron ticks, new dataset versions, open monitoring alerts.

Each trigger turns what it watches into *events* with a stable identity, and an event
fires once (its row in ``automation_events`` is the proof, see :mod:`.state`):

* schedule: the latest cron time in ``(now - grace, now]`` (missed ticks coalesce into one;
  older ones are let go, as with APScheduler's ``misfire_grace_time``), or one that fell
  inside the pipeline's cooldown (after the last triggered run started, before the
  cooldown ends): it waits, and fires once when the cooldown is over, within ``grace``
  of its end. A tick no later than one that already fired is covered by it;
* dataset: the dataset's newest version, when it is newer than every version this trigger
  fired for (a first check fires for the newest version that exists);
* alert: every open alert on a version of the model (of the listed rules), once per alert:
  one that reopens within its cooldown keeps its id and does not fire again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mloop.automation import state
from mloop.automation.config import (
    AlertTrigger,
    DatasetTrigger,
    PipelineAutomation,
    ScheduleTrigger,
    Trigger,
)
from mloop.errors import NotFoundError

if TYPE_CHECKING:
    from mloop.project import Project

_MAX_TICKS = 100_000  # a per-minute cron with a week of grace is ~10k


@dataclass(frozen=True)
class Event:
    """Something a trigger saw that asks for a run."""

    trigger: str  # the trigger's key: "dataset train"
    event: str  # its identity within the trigger: a fire time, a version, an alert id
    label: str  # for people and for the run's trigger field: "dataset train@4"
    source: str | None = None  # the lineage node that triggered the run, if any

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "event": self.event, "label": self.label,
                "source": self.source}


def pending(project: Project, auto: PipelineAutomation, *, now: int,
            kinds: set[str] | None = None) -> tuple[list[Event], list[str]]:
    """(events of ``auto``'s triggers that have not fired yet, notes for people)."""
    found: list[Event] = []
    notes: list[str] = []
    cooldown: tuple[int, int] | None = None
    chosen = auto.triggers_of(kinds)
    if auto.cooldown_ms > 0 and any(isinstance(t, ScheduleTrigger) for t in chosen):
        current = state.get_state(project, auto.name)
        if current is not None and current.last_run_at is not None:
            start = int(current.last_run_at)
            cooldown = (start, start + auto.cooldown_ms)
    for trigger in chosen:
        seen = state.consumed(project, auto.name, trigger.key)
        found.extend(_pending(project, trigger, seen, now, notes, cooldown=cooldown))
    return found, notes


def _pending(project: Project, trigger: Trigger, seen: set[str], now: int,
             notes: list[str], *, cooldown: tuple[int, int] | None = None
             ) -> list[Event]:
    if isinstance(trigger, ScheduleTrigger):
        tick = due_tick(trigger, now, cooldown)
        # stamps sort as times: a tick no later than one that fired is covered by it
        if tick is None or _stamp(tick) <= max(seen, default=""):
            return []
        return [Event(trigger.key, _stamp(tick), f"{trigger.key} ({_stamp(tick)})")]
    if isinstance(trigger, DatasetTrigger):
        return _dataset(project, trigger, seen, notes)
    return _alerts(project, trigger, seen)


def due_tick(trigger: ScheduleTrigger, now: int,
             cooldown: tuple[int, int] | None = None) -> datetime | None:
    """The cron time that asks for a run at ``now`` (ms), if any: the later of the latest
    one within the grace (:func:`latest_tick`) and the latest one that fell inside the
    cooldown ``(start, end)`` (the last triggered run's start and the cooldown's end, ms).
    A tick of the cooldown waits for it and is due from its end, for ``grace`` like any
    tick (later: let go)."""
    tick = latest_tick(trigger, now)
    if cooldown is None:
        return tick
    start, end = cooldown
    if now > end + trigger.grace_ms:  # the cooldown ended too long ago: let go
        return tick
    waited = _latest_in(trigger, start + 1, min(now, end - 1))
    if waited is None or (tick is not None and tick >= waited):
        return tick
    return waited


def latest_tick(trigger: ScheduleTrigger, now: int) -> datetime | None:
    """The latest fire time of the cron in ``(now - grace, now]`` (ms), if any."""
    return _latest_in(trigger, now - trigger.grace_ms, now)


def _latest_in(trigger: ScheduleTrigger, first: int, last: int) -> datetime | None:
    """The latest fire time of the cron in ``[first, last]`` (ms), if any.

    APScheduler 3 only steps forwards, so windows ending at ``last`` are searched, each
    four times longer than the one before: the time taken follows the ticks near
    ``last``, not the length of a long cooldown.
    """
    if last < first:
        return None
    cron = trigger.cron_trigger()
    end = _utc(last)
    span = 60_000
    while True:
        low = max(first, last - span)
        tick = cron.get_next_fire_time(None, _utc(low))
        found = None
        for _ in range(_MAX_TICKS):
            if tick is None or tick > end:
                break
            found = tick
            tick = cron.get_next_fire_time(tick, tick)
        if found is not None or low == first:
            return None if found is None else found.astimezone(UTC)
        span *= 4


def next_tick(trigger: ScheduleTrigger, now: int) -> datetime | None:
    """The first fire time of the cron after ``now`` (ms)."""
    tick = trigger.cron_trigger().get_next_fire_time(None, _utc(now) + timedelta(
        microseconds=1))
    return None if tick is None else tick.astimezone(UTC)


def _dataset(project: Project, trigger: DatasetTrigger, seen: set[str],
             notes: list[str]) -> list[Event]:
    from mloop.data.catalog import get

    try:
        latest = get(project, trigger.dataset)
    except NotFoundError:
        notes.append(f"{trigger.key}: no such dataset yet (mloop data add PATH --name "
                     f"{trigger.dataset})")
        return []
    fired = max((int(e) for e in seen if e.isdigit()), default=0)
    if latest.version <= fired:
        return []
    return [Event(trigger.key, str(latest.version), f"dataset {latest.ref}", latest.uri)]


def _alerts(project: Project, trigger: AlertTrigger, seen: set[str]) -> list[Event]:
    from mloop.monitoring.alerting import list_alerts

    found = list_alerts(project, open_only=True, subject=f"models:/{trigger.model}/",
                        limit=1000)
    return [Event(trigger.key, a.id, f"alert {a.uri} ({a.rule} on {a.subject})", a.uri)
            for a in sorted(found, key=lambda a: (a.opened_at, a.id))
            if a.id not in seen and (trigger.rules is None or a.rule in trigger.rules)]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _stamp(tick: datetime) -> str:
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
