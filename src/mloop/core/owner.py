"""Which process owns a piece of running work, and whether that process still lives.

A process killed by SIGKILL, the OOM killer or a power cut cannot write how its runs
ended. So a running row records its owner — the host, the pid and a *start token* that
tells this process from a later one given the same pid — and a heartbeat the owner
refreshes every :data:`HEARTBEAT_SECONDS`. A reader then decides:

* the owner is on this host (same host name, same boot, same pid namespace): it is dead
  when no process has that pid, the process is a zombie, or its start differs (the pid
  was reused). This is exact, and a live owner is never declared dead here, even when its
  heartbeat is late (a suspended laptop, a stopped process);
* anywhere else (another machine sharing PostgreSQL, another container): it is dead when
  its heartbeat is older than :data:`STALE_MS` (5 minutes).

The start token is ``<boot id>:<pid namespace>:<start time in clock ticks since boot>``,
read from ``/proc`` on Linux (no psutil). Elsewhere there is no token: on POSIX a pid that
no longer exists still means dead (a reused pid reads as alive), and on Windows only the
heartbeat decides.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_SECONDS = 30.0
STALE_MS = 5 * 60 * 1000

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Owner:
    """A process as recorded with the work it owns."""

    host: str
    pid: int
    start: str | None  # the start token (None where /proc is not available)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


_cached: tuple[int, Owner] | None = None


def host_name() -> str:
    return socket.gethostname()[:255]


def _boot_and_ns() -> str | None:
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        ns = os.stat(_PROC / "self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{ns}"


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from the state on (the name may hold spaces)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2:].decode("ascii", "replace").split()


def start_token(pid: int) -> str | None:
    """The start token of a running process (``None``: no such process, or no /proc)."""
    where = _boot_and_ns()
    fields = _stat_fields(pid) if where is not None else None
    if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return f"{where}:{fields[19]}"  # field 22 of stat: starttime, in clock ticks


def this_process() -> Owner:
    """This process as an owner (recomputed after a fork: the child has its own pid)."""
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:
        _cached = (pid, Owner(host_name(), pid, start_token(pid)))
    return _cached[1]


def is_alive(owner: Owner) -> bool | None:
    """Whether the owner still runs: ``True``/``False`` when this host can tell, else
    ``None`` (another host, another boot or pid namespace, or no way to look)."""
    if owner.host != host_name():
        return None
    if owner.start is not None:
        here = _boot_and_ns()
        if here is None or not owner.start.startswith(here + ":"):
            return None  # another boot or container with the same host name: cannot tell
        return start_token(owner.pid) == owner.start
    if os.name != "posix":
        return None
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def is_dead(owner: Owner | None, heartbeat_at: int | None, now_ms: int) -> bool:
    """Whether work recorded with this owner and heartbeat has lost its process."""
    if owner is None:
        return False  # recorded before owners were (or by a path that writes none)
    alive = is_alive(owner)
    if alive is not None:
        return not alive
    return heartbeat_at is not None and now_ms - heartbeat_at > STALE_MS
