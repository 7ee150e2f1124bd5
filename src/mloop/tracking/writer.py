"""Buffered, asynchronous metric writes.

``log_metric`` appends one tuple to an in-memory buffer and returns (about a
microsecond); a background thread writes the buffer in one transaction every
``flush_interval`` seconds, or sooner when ``flush_batch_size`` points are waiting.
``flush()`` writes everything logged so far before it returns; ending a run, leaving the
interpreter and SIGTERM all go through it, so nothing logged is lost.

Each batch inserts the points into ``metrics`` and raises ``latest_metrics`` to the
point with the highest ``(step, timestamp)`` per run and key, with a conditional upsert
so that batches from several processes can land in any order.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, or_
from sqlalchemy.exc import OperationalError

from mloop.core.redact import get_logger
from mloop.errors import MloopError
from mloop.store import Store
from mloop.store.schema import latest_metrics, metrics

log = get_logger(__name__)

Point = tuple[str, str, int, int, float | None]  # run_id, key, step, timestamp, value
_RETRY_PAUSES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class MetricWriter:
    """One background writer per project and process."""

    def __init__(self, store: Store, *, flush_interval: float = 0.5,
                 batch_size: int = 20_000) -> None:
        self._store = store
        self._interval = flush_interval
        self._batch_size = batch_size
        self._buf: list[Point] = []
        self._error: BaseException | None = None
        self._reset_threading()
        # A forked child (multiprocessing, data-loader workers) inherits the buffer but
        # not the thread: it gets fresh locks and starts its own writer on first use.
        ref = weakref.ref(self)

        def _after_fork() -> None:
            writer = ref()
            if writer is not None:
                writer._reset_threading()

        os.register_at_fork(after_in_child=_after_fork)

    def _reset_threading(self) -> None:
        self._buf_lock = threading.Lock()
        self._io_lock = threading.Lock()  # one batch at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid_lock = threading.Lock()

    def add(self, point: Point) -> None:
        """Queue one point (never blocks on I/O)."""
        with self._buf_lock:
            self._buf.append(point)
            n = len(self._buf)
        self._poke(n)

    def extend(self, points: list[Point]) -> None:
        """Queue several points at once."""
        with self._buf_lock:
            self._buf.extend(points)
            n = len(self._buf)
        self._poke(n)

    def _poke(self, queued: int) -> None:
        if self._thread is None:
            self._start()
        if queued >= self._batch_size:
            self._wake.set()

    def flush(self, then: Callable[[Connection], Any] | None = None) -> None:
        """Write every queued point now; run ``then(conn)`` in the same transaction."""
        self._write_pending(then)
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise MloopError(f"Writing metrics to the store failed: {err}. The points are "
                             "kept in memory; fix the cause and call mloop.flush().") from err

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self._write_pending(None)
        with self._pid_lock:  # a later add() starts a fresh thread
            self._thread = None
            self._stop.clear()

    # -- internals -------------------------------------------------------------------

    def _start(self) -> None:
        with self._pid_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mloop-metric-writer",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._write_pending(None)
            except Exception as exc:  # kept and re-raised in the user's thread
                self._error = exc
                log.warning("mloop: metric flush failed, will retry: %s", exc)

    def _write_pending(self, then: Callable[[Connection], Any] | None) -> None:
        with self._io_lock:
            with self._buf_lock:
                batch, self._buf = self._buf, []
            if not batch and then is None:
                return
            try:
                self._write_with_retry(batch, then)
            except BaseException:
                with self._buf_lock:  # keep the points: nothing logged is dropped
                    self._buf[:0] = batch
                raise

    def _write_with_retry(self, batch: list[Point],
                          then: Callable[[Connection], Any] | None) -> None:
        for pause in (*_RETRY_PAUSES, None):
            try:
                with self._store.write() as conn:
                    if batch:
                        write_points(self._store, conn, batch)
                    if then is not None:
                        then(conn)
                return
            except OperationalError as exc:
                if pause is None or "locked" not in str(exc).lower():
                    raise
                time.sleep(pause)


def _latest_upsert(store: Store) -> Any:
    stmt = store.insert(latest_metrics)
    ex, cur = stmt.excluded, latest_metrics.c
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={"step": ex.step, "timestamp": ex.timestamp, "value": ex.value},
        where=or_(ex.step > cur.step, (ex.step == cur.step) & (ex.timestamp >= cur.timestamp)),
    )


def write_points(store: Store, conn: Connection, batch: list[Point]) -> None:
    """Insert ``batch`` into the history and advance ``latest_metrics``."""
    conn.execute(store.statement("metrics.insert", lambda s: metrics.insert()), [
        {"run_id": r, "key": k, "step": s, "timestamp": t, "value": v} for r, k, s, t, v in batch
    ])
    latest: dict[tuple[str, str], Point] = {}
    for point in batch:
        ident = (point[0], point[1])
        best = latest.get(ident)
        if best is None or (point[2], point[3]) >= (best[2], best[3]):
            latest[ident] = point
    conn.execute(store.statement("latest_metrics.upsert", _latest_upsert),
                 [{"run_id": r, "key": k, "step": s, "timestamp": t, "value": v}
                  for r, k, s, t, v in latest.values()])
