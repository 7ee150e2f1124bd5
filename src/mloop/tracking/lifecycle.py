"""The process-wide stack of active runs, and ending them however the process ends.

* normal exit: runs still active are ended FINISHED (atexit);
* an uncaught exception: FAILED (or KILLED for Ctrl-C), recorded by an excepthook;
* SIGTERM: the handler raises :class:`Terminated` in the main thread, so ``with`` blocks
  unwind and mark their runs KILLED, and atexit ends the rest KILLED.

In every case the metric buffer is flushed first, so no logged point is lost. The
SIGTERM handler is only installed from the main thread and only when nobody else has
installed one.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING

from mloop import lineage
from mloop.core.humanize import plural
from mloop.core.redact import redact
from mloop.tracking.active import ActiveRun, Terminated, status_for
from mloop.tracking.model import RunStatus

if TYPE_CHECKING:
    from mloop.tracking.tracker import Tracker

_stack: list[ActiveRun] = []
_trackers: list[Tracker] = []
_lock = threading.RLock()
_installed = False
_exit_status: RunStatus = RunStatus.FINISHED


def _active_run_id() -> str | None:
    return _stack[-1].id if _stack else None


lineage.set_active_run_provider(_active_run_id)


def push(run: ActiveRun) -> None:
    with _lock:
        _stack.append(run)
        if run.tracker not in _trackers:
            _trackers.append(run.tracker)
    _install_hooks()


def remove(run: ActiveRun) -> None:
    with _lock:
        if run in _stack:
            _stack.remove(run)


def active_run() -> ActiveRun | None:
    """The innermost active run of this process, if any."""
    return _stack[-1] if _stack else None


def active_runs() -> list[ActiveRun]:
    with _lock:
        return list(_stack)


def _install_hooks() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_at_exit)
    previous = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException,
                   tb: TracebackType | None) -> None:
        global _exit_status
        _exit_status = status_for(exc_type, exc)
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    if threading.current_thread() is threading.main_thread():
        # Not allowed in some embedded interpreters: then SIGTERM keeps its default.
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _exit_status
    _exit_status = RunStatus.KILLED
    # Unwind the main thread: context managers end their runs KILLED, atexit the rest.
    raise Terminated(128 + signum)


def _at_exit() -> None:
    for run in reversed(active_runs()):
        try:
            run.end(_exit_status)
        except Exception as exc:
            print(redact(f"mloop: could not end run {run.id}: {exc}"), file=sys.stderr)
    with _lock:
        trackers = list(_trackers)
    for tracker in trackers:
        try:
            tracker.writer.close()
        except Exception as exc:
            print(redact(f"mloop: {plural(tracker.writer.pending(), 'metric point')} could not be "
                         f"written: {exc}"), file=sys.stderr)
