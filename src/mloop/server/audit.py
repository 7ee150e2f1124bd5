"""The audit log's writer: every write through the team server, kept without a transaction
per request.

:meth:`AuditLog.record` only appends to an in-memory queue (microseconds, no lock held
across I/O); a background thread writes what has queued every ``interval`` seconds (0.2
by default) in one transaction through the ``audit`` repository, and :meth:`close` writes
the rest, so a clean shutdown loses nothing. When the store refuses a batch (it is down,
the disk is full) the batch stays queued and is tried again at the next tick; past
``max_queued`` entries the oldest are dropped, with an error in the log that says how
many.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from mloop.core.clock import now_ms
from mloop.core.redact import get_logger, redact
from mloop.repositories.audit import AuditEntry

if TYPE_CHECKING:
    from mloop.core.identity import Identity
    from mloop.repositories.audit import Audit

log = get_logger("mloop.server.audit")

ACTION_CHARS = 200
TARGET_CHARS = 300


def _short(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    clean = redact(" ".join(str(text).split()))  # one line, no secret
    return clean if len(clean) <= limit else clean[:limit - 1] + "…"


class AuditLog:
    """Batches audit entries into the store from a background thread."""

    def __init__(self, audit: Audit, *, interval: float = 0.2,
                 max_queued: int = 100_000) -> None:
        self.audit = audit
        self.interval = interval
        self.max_queued = max_queued
        self._queue: deque[AuditEntry] = deque()
        self._dropped = 0
        self._wake = threading.Event()
        self._closed = False
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def record(self, identity: Identity, action: str, target: str | None,
               status: int) -> None:
        """Queue one entry: ``identity`` did ``action`` (``"POST /api/v1/…"`` or a method
        name) on ``target`` (shortened to 300 characters and redacted), answered with HTTP
        ``status``. Never blocks on the store."""
        if self._thread is None:
            self._start()
        entry = AuditEntry(now_ms(), identity.name, identity.token_id, identity.role,
                           _short(action, ACTION_CHARS) or "", _short(target, TARGET_CHARS),
                           int(status))
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(entry)
        if self._closed:  # after close: write at once rather than lose it
            self.flush()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="mloop-audit",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._wake.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write every queued entry now (one transaction); how many were written. A
        failure keeps them queued for the next try and is logged, not raised."""
        with self._flush_lock:
            batch = list(self._queue)
            if not batch:
                return 0
            try:
                self.audit.add(batch)
            except Exception as exc:  # the store is down or full: keep them, try again
                log.warning("could not write %d audit entries (kept, will retry): %s",
                            len(batch), exc)
                return 0
            for _ in batch:  # the queue may have grown meanwhile: drop just these
                self._queue.popleft()
            if self._dropped:
                log.error("the audit queue was full: %d older entries were dropped",
                          self._dropped)
                self._dropped = 0
            return len(batch)

    def pending(self) -> int:
        """Entries queued and not yet written."""
        return len(self._queue)

    def close(self) -> None:
        """Stop the thread and write what is left (the server's shutdown calls this)."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        self.flush()
        if self._queue:
            log.error("%d audit entries could not be written at shutdown", len(self._queue))
