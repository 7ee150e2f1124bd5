"""The heartbeat of the work this process owns: its runs, and pipeline runs it drives.

Every :data:`~mloop.core.owner.HEARTBEAT_SECONDS` the owner's rows get a fresh
``heartbeat_at``; a reader on another host takes a heartbeat older than five minutes for
a dead owner (see :mod:`mloop.core.owner`). The beats ride on the metric writer's
background thread (one thread per project and process, which a process that logs
anything runs anyway), so a heartbeat costs one small UPDATE per 30 s and no thread of
its own. A forked child inherits the registrations but never beats for its parent.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from mloop.core.clock import now_ms
from mloop.core.owner import HEARTBEAT_SECONDS
from mloop.core.redact import get_logger
from mloop.tracking.writer import MetricWriter

log = get_logger(__name__)

Beat = Callable[[int], None]  # called with the time (Unix ms)


class Heartbeat:
    """Calls each registered beat every ``interval`` seconds from the writer's thread."""

    def __init__(self, writer: MetricWriter, interval: float = HEARTBEAT_SECONDS) -> None:
        self.interval = interval
        self.lock = threading.RLock()  # held while beating: removing a beat waits for it
        self._beats: dict[int, Beat] = {}
        self._next = 0
        self._pid = os.getpid()
        self._due = time.monotonic() + interval  # rows are created with a fresh heartbeat
        self._writer = writer
        self._started = False

    def add(self, beat: Beat) -> int:
        """Register ``beat``; returns the handle :meth:`remove` takes."""
        with self.lock:
            self._next += 1
            self._beats[self._next] = beat
            if not self._started:
                self._started = True
                self._writer.on_tick(self.tick)
            return self._next

    def remove(self, handle: int) -> None:
        """Stop calling a beat; returns once a beat in progress has finished, so a final
        status written afterwards is never overwritten by a late beat."""
        with self.lock:
            self._beats.pop(handle, None)

    def tick(self) -> None:
        """Beat if due (the writer's thread calls this at every wake-up)."""
        if os.getpid() != self._pid or time.monotonic() < self._due:
            return
        self._due = time.monotonic() + self.interval
        self.beat_now()

    def beat_now(self) -> None:
        """Call every beat now."""
        with self.lock:
            now = now_ms()
            for beat in list(self._beats.values()):
                try:
                    beat(now)
                except Exception as exc:  # the next beat tries again; readers allow 5 min
                    log.debug("mloop: heartbeat failed: %s", exc)
