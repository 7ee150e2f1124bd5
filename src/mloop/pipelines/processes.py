"""Step processes that do not outlive their pipeline run.

Each step (a Python step's ``mloop.pipelines.task`` process, a stage's shell command)
runs under :mod:`.guard` (or, forked from the run's warm process, under the guard of
:mod:`.zygote`) in a session of its own, so the step and everything it starts
die with the engine — also when the engine is killed with SIGKILL — and
:meth:`StepProcesses.stop` ends the running steps at once on Ctrl-C or an engine
failure. Steps run in their own sessions, so a Ctrl-C in the terminal reaches the engine
only, which then stops them.

The local executor keeps each step's task and result in a temporary folder named
``mloop-step-<pid>-<start>-…`` after the engine process; a folder whose engine is gone
(killed before it could remove it) is removed by the next run (:func:`clean_stale_folders`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mloop.core.hashing import hash_bytes
from mloop.core.owner import Owner, is_alive, start_token, this_process

GUARD = Path(__file__).with_name("guard.py")
FOLDER_PREFIX = "mloop-step-"
_LEGACY_AGE = 24 * 3600  # folders of older releases (no pid in the name) older than this


class StepProcesses:
    """The guarded step processes one pipeline run has started and not yet reaped."""

    def __init__(self) -> None:
        self._live: set[subprocess.Popen[bytes]] = set()
        self._groups: set[int] = set()  # process groups started elsewhere (warm steps)
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def run(self, argv: list[str] | str, **popen: Any) -> int:
        """Run ``argv`` (a string: a shell command) guarded (see :mod:`.guard`) and wait;
        returns its exit status (negative: the signal that killed it)."""
        if os.name != "posix":  # no sessions or process groups: run it plainly
            return subprocess.run(argv, shell=isinstance(argv, str), check=False,
                                  **popen).returncode
        args = ["/bin/sh", "-c", argv] if isinstance(argv, str) else argv
        command = [sys.executable, "-I", "-S", str(GUARD), str(os.getpid()), "--", *args]
        with self._lock:
            if self._stopped:
                return -signal.SIGKILL
            proc = subprocess.Popen(command, start_new_session=True, **popen)
            self._live.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._live.discard(proc)

    def watch(self, group: int) -> bool:
        """Kill process group ``group`` on :meth:`stop` too (a step the warm process of
        the run forked, or that process); False, and the group is killed now, when the
        run is already stopping."""
        with self._lock:
            if not self._stopped:
                self._groups.add(group)
                return True
        _kill_group(group)
        return False

    def unwatch(self, group: int) -> None:
        """The group ended (or is someone else's concern now)."""
        with self._lock:
            self._groups.discard(group)

    def stop(self) -> None:
        """Kill every running step with all its processes; later :meth:`run` calls are
        refused (the run is ending)."""
        with self._lock:
            self._stopped = True
            groups = [proc.pid for proc in self._live] + list(self._groups)
        for group in groups:
            _kill_group(group)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _owner_tag() -> str:
    """``<pid>-<hash of the start token>``: names a folder after this engine process."""
    me = this_process()
    return f"{me.pid}-{hash_bytes((me.start or '').encode())[:8]}"


def step_folder() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for one step's task and result, named after this process."""
    return tempfile.TemporaryDirectory(prefix=f"{FOLDER_PREFIX}{_owner_tag()}-")


def clean_stale_folders(root: str | None = None) -> int:
    """Remove step folders of engines that no longer run; returns how many."""
    base = Path(root or tempfile.gettempdir())
    removed = 0
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            if entry.name.startswith(FOLDER_PREFIX) and entry.is_dir() and _stale(entry):
                shutil.rmtree(entry, ignore_errors=True)
                removed += not entry.exists()
    return removed


def _stale(folder: Path) -> bool:
    parts = folder.name[len(FOLDER_PREFIX):].split("-")
    if len(parts) >= 3 and parts[0].isdigit():
        pid = int(parts[0])
        me = this_process()
        if me.start is None:  # no /proc here: whether the pid exists is all we can tell
            return is_alive(Owner(me.host, pid, None)) is False
        token = start_token(pid)
        return token is None or hash_bytes(token.encode())[:8] != parts[1]
    try:  # a folder of an older release: no owner in its name
        return time.time() - folder.stat().st_mtime > _LEGACY_AGE
    except OSError:
        return False
