"""Buffered, asynchronous metric writes.

``log_metric`` appends one tuple to an in-memory buffer and returns (about a
microsecond); a background thread writes the buffer in one transaction every
``flush_interval`` seconds, or sooner when ``flush_batch_size`` points are waiting.
``flush()`` writes everything logged so far before it returns; ending a run, leaving the
interpreter and SIGTERM all go through it, so nothing logged is lost.

Each batch is one transaction of the runs repository's
:func:`~mloop.repositories.runs_sql.write_points`: the points appended to the history,
each key's latest point advanced (batches from several processes land in any order).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from mloop.core.redact import get_logger
from mloop.errors import MloopError, ServiceUnavailableError
from mloop.repositories.runs import MetricPoint, Runs, RunStatus
from mloop.repositories.runs_sql import Transaction, write_points
from mloop.store import Store
from mloop.store.failures import Failure, classify, store_error
from mloop.tracking.spool import Spool

log = get_logger(__name__)

Point = MetricPoint  # run_id, key, step, timestamp, value
_RETRY_PAUSES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # a transient failure: ~9 s in all
_MAX_BACKOFF = 60.0  # the background thread's longest wait between failing attempts
_WHERE = "the metadata store"
_TICK_EVERY = 5.0  # with ticks registered (a heartbeat), wake at least this often
MAX_PENDING_BATCHES = 10  # batches that may wait in memory before logging waits too


class MetricWriter:
    """One background writer per project and process.

    Failures are told apart (:mod:`mloop.store.failures`): a transient one (a busy
    database, a dropped connection) is retried with backoff and the points wait in
    memory; values the database refuses are found by splitting the batch in halves,
    and only those points are dropped, with a warning naming them; a full disk or any
    other failure keeps the points and is raised in the logging thread at its next call.

    Memory is bounded: when ``MAX_PENDING_BATCHES`` batches wait (a loop that logs faster
    than the store writes, or a store that is away), logging waits for the writer —
    and raises at once when the failure is a lasting one, such as a full disk.
    """

    def __init__(self, store: Store | None, *, flush_interval: float = 0.5,
                 batch_size: int = 20_000, remote: Runs | None = None,
                 spool: Spool | None = None) -> None:
        self._store = store
        # over HTTP (a team server): batches go to ``remote``; while the server cannot
        # be reached they wait in ``spool`` on disk instead of in memory
        self._remote = remote
        self._spool = spool
        self._offline = False
        self._offline_wait = flush_interval
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = MAX_PENDING_BATCHES * batch_size
        self._buf: list[Point] = []
        self._error: MloopError | None = None
        self._ticks: list[Callable[[], None]] = []
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
        self._room = threading.Condition()  # notified after every write attempt
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid_lock = threading.Lock()

    def add(self, point: Point) -> None:
        """Queue one point (never blocks on I/O); raises a failure the thread kept."""
        with self._buf_lock:
            self._buf.append(point)
            n = len(self._buf)
        if self._error is not None:
            self.raise_if_failed()
        self._poke(n)

    def extend(self, points: list[Point]) -> None:
        """Queue several points at once."""
        with self._buf_lock:
            self._buf.extend(points)
            n = len(self._buf)
        if self._error is not None:
            self.raise_if_failed()
        self._poke(n)

    def _wait_for_room(self) -> None:
        """Block the logging thread while too many points wait (see the class docstring)."""
        while self.pending() >= self._max_pending and self._error is None:
            if self._thread is None or not self._thread.is_alive():
                self._thread = None
                self._start()
            self._wake.set()
            with self._room:
                self._room.wait(0.5)
        self.raise_if_failed()

    def on_tick(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` from the writer's thread after every wake-up (e.g. a heartbeat,
        which decides itself whether it is due); starts the thread."""
        self._ticks.append(fn)
        if self._thread is None:
            self._start()

    def _poke(self, queued: int) -> None:
        if self._thread is None:
            self._start()
        if queued >= self._batch_size:
            self._wake.set()
        if queued >= self._max_pending:
            self._wait_for_room()

    def pending(self) -> int:
        """How many points wait in memory."""
        with self._buf_lock:
            return len(self._buf)

    def flush(self, then: Callable[[Transaction], Any] | None = None) -> None:
        """Write every queued point now; run ``then(conn)`` in the same transaction."""
        self._error = None  # this attempt reports for itself
        self._write_pending(then)

    def raise_if_failed(self) -> None:
        """Raise (once) the failure the background thread kept, if any."""
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        try:
            self._write_pending(None)
        finally:
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
        wait, failing = self._interval, False
        due = time.monotonic() + wait
        while not self._stop.is_set():
            # Ticks (the heartbeat) wake the thread at least every few seconds; points
            # are written only when the interval is up or a full batch asks for it.
            poked = self._wake.wait(max(0.0, min(due - time.monotonic(), _TICK_EVERY)
                                        if self._ticks else due - time.monotonic()))
            self._wake.clear()
            self._tick()
            if not poked and time.monotonic() < due:
                continue
            try:
                self._write_pending(None)
            except MloopError as exc:
                failing, wait = True, self._failed(exc, failing, wait)
            else:
                if failing:
                    log.warning("mloop: writing metrics works again; nothing was lost")
                failing, wait = False, self._interval
                if self._offline:  # the server is away (batches go to disk): ask less often
                    self._offline_wait = min(_MAX_BACKOFF, self._offline_wait * 2)
                    wait = self._offline_wait
                else:
                    self._offline_wait = self._interval
            finally:
                with self._room:
                    self._room.notify_all()
            due = time.monotonic() + wait

    def _tick(self) -> None:
        for tick in list(self._ticks):
            try:
                tick()
            except Exception as exc:  # a missed heartbeat is not worth a crash
                log.debug("mloop: writer tick failed: %s", exc)

    def _failed(self, exc: MloopError, failing: bool, wait: float) -> float:
        """Keep a lasting failure for the user's thread, warn once; the next wait."""
        kept = classify(exc) is not Failure.TRANSIENT
        if kept:  # raised in the user's thread at its next call
            self._error = exc
        if not failing:
            log.warning("mloop: writing metrics failed (%s); the points are kept in memory "
                        "and %s", exc.message, "the next log call raises this error" if kept
                        else "will be written when it can")
        return min(_MAX_BACKOFF, max(self._interval, wait * 2, 0.5))

    def _write_pending(self, then: Callable[[Transaction], Any] | None) -> None:
        with self._io_lock:
            with self._buf_lock:
                batch, self._buf = self._buf, []
            if not batch and then is None and not (self._spool and self._spool.pending()):
                return
            left = _Left(batch)
            try:
                self._write(left, then)
            except BaseException:
                with self._buf_lock:  # keep what is not written: nothing logged is lost
                    self._buf[:0] = left.points
                raise

    def _write(self, left: _Left, then: Callable[[Transaction], Any] | None) -> None:
        """Write ``left.points`` and ``then`` (points the database refuses are dropped)."""
        try:
            self._attempt(left.points, then)
            left.points = []
            return
        except _Refused:
            if not left.points:  # `then` itself was refused: no point is to blame
                raise
        self._split(left)
        if then is not None:
            self._attempt([], then)

    def _split(self, left: _Left) -> None:
        """Bisect a refused batch: write the halves that pass, drop (with a warning) the
        single points that do not; n points with k bad ones take ~2k·log2(n) transactions."""
        dropped: list[tuple[Point, str]] = []
        try:
            self._bisect(left, dropped)
        finally:
            if dropped:
                _warn_dropped(dropped)

    def _bisect(self, left: _Left, dropped: list[tuple[Point, str]]) -> None:
        todo = _halves(left.points)
        while todo:
            part = todo.pop()
            try:
                self._attempt(part, None)
            except _Refused as exc:
                if len(part) == 1:
                    dropped.append((part[0], _reason(exc)))
                else:
                    todo += _halves(part)
            except BaseException:
                left.points = [p for chunk in (*todo, part) for p in chunk]
                raise
        left.points = []

    def _attempt(self, batch: list[Point], then: Callable[[Transaction], Any] | None) -> None:
        """One transaction, retried while the failure is transient; raises MloopError."""
        if self._remote is not None:
            self._send(batch, then)
            return
        assert self._store is not None
        for pause in (*_RETRY_PAUSES, None):
            try:
                with self._store.write() as conn:
                    if batch:
                        write_points(self._store, conn, batch)
                    if then is not None:
                        then(conn)
                return
            except Exception as exc:
                kind = classify(exc)
                if kind is Failure.REFUSED:
                    raise _Refused(_reason(exc)) from exc
                if pause is None or kind is not Failure.TRANSIENT:
                    raise store_error(exc, _WHERE) from exc
                time.sleep(pause)


    def _send(self, batch: list[Point], then: Callable[[Any], Any] | None) -> None:
        """One request to the server (older spooled batches first); while the server is
        unreachable the batch goes to the spool on disk and logging carries on."""
        assert self._remote is not None
        try:
            if self._spool is not None and self._spool.pending():
                self._spool.drain(self._remote)
            if batch:
                self._remote.write_points(batch)
        except ServiceUnavailableError as exc:
            if self._spool is None:
                raise
            if batch:
                self._spool.put(batch)
            if not self._offline:
                log.warning("mloop: %s Metric points are kept on disk in %s and sent when "
                            "the server returns; nothing is lost.", exc.message,
                            self._spool.folder)
            self._offline = True
        except MloopError as exc:
            if 400 <= exc.http_status < 500 and exc.http_status not in (401, 403, 429):
                raise _Refused(exc.message) from exc  # a value the server refuses
            raise
        else:
            if self._offline:
                log.warning("mloop: the server is back; the metric points kept on disk "
                            "were sent")
                self._offline = False
        if then is not None:
            then(None)

    def end_remote_run(self, run_id: str, status: RunStatus, end_time: int) -> None:
        """Flush, then record a run's end on the server (kept in the spool, after the
        run's last points, while the server is unreachable)."""
        assert self._remote is not None
        self.flush()
        try:
            if self._spool is not None and self._spool.pending():
                raise ServiceUnavailableError("points are still waiting on disk")
            self._remote.set_status(run_id, status, end_time)
        except ServiceUnavailableError:
            if self._spool is None:
                raise
            self._spool.put([], (run_id, str(status), end_time))


class _Refused(MloopError):
    """The database refused a value of the batch (classified REFUSED)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class _Left:
    """The points of a batch not yet written (what goes back to the buffer on failure)."""

    def __init__(self, points: list[Point]) -> None:
        self.points = points


def _halves(part: list[Point]) -> list[list[Point]]:
    mid = len(part) // 2
    return [half for half in (part[:mid], part[mid:]) if half]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Refused):
        return exc.message
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".strip()


def _warn_dropped(dropped: list[tuple[Point, str]]) -> None:
    shown = "; ".join(f"run {p[0][-12:]} key {p[1]!r} step {p[2]} ({why})"
                      for p, why in dropped[:5])
    more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
    log.warning("mloop: the store refused %d metric point(s), which were dropped (the rest "
                "of the batch was written): %s%s", len(dropped), shown, more)
