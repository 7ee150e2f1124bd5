"""The guard a step runs under: it dies with the engine and takes the step's processes along.

``python -I -S guard.py ENGINE_PID -- COMMAND…`` runs COMMAND as its child. The guard
leads its own session and process group (the engine starts it with
``start_new_session``), so COMMAND and everything it starts — a shell's children, data
loader workers — share that group, and killing the group kills them all. The group is
killed (SIGKILL) when

* the engine dies, even by SIGKILL: Linux sends the guard SIGTERM then
  (``prctl(PR_SET_PDEATHSIG)``, via ctypes); elsewhere the guard sees its parent change
  within a second;
* the engine stops the step (Ctrl-C, a failure of the engine): it sends SIGTERM, or
  kills the group itself.

The guard exits as COMMAND did (the same status, or the same signal). A process that
leaves the group on purpose (``setsid``) escapes, as it would escape any supervisor.
This file imports only the standard library, and runs isolated (``-I -S``): it starts in
~15 ms and no project module can shadow a standard one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1


def _kill_group(_signum: int | None = None, _frame: FrameType | None = None) -> None:
    os.killpg(0, signal.SIGKILL)  # the guard is in the group too: this is its end


def _die_with(parent: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _kill_group)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM),
                                                    0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the polling below still works
            pass
    if os.getppid() != parent:  # the engine died before the signal was armed
        _kill_group()


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[2:]  # argv[1] is "--"
    _die_with(parent)
    proc = subprocess.Popen(command)  # same session and group as the guard
    while True:
        try:
            code = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                _kill_group()
    if code < 0:  # end the way the command ended, so the engine can name the signal
        with contextlib.suppress(OSError, ValueError):  # SIGKILL/SIGSTOP: already default
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
