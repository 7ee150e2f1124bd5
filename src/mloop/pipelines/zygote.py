"""The warm process of one pipeline run: imports once, then forks one guarded child per step.

``python -m mloop.pipelines.zygote ENGINE_PID CONTROL_FD`` is started by the local
executor (:class:`mloop.pipelines.executors.Zygote`) at the first Python step a run
executes, with the environment and working directory a fresh step process would get. It
imports mloop's step machinery and the project's pipeline modules (``pipelines.py`` and
``[pipelines] modules``), then says ``{"ready": true}`` on the control socket and waits.
A fresh interpreter per step spends 1-3 s importing the same modules again; a fork
starts in milliseconds and keeps the isolation of a process: a step's crash, exception,
``os._exit`` or SIGKILL ends its own process only, and what a step does to module
globals, ``os.environ`` or the working directory dies with it.

For each step the engine sends, over the control socket (a ``SOCK_SEQPACKET`` pair), the
engine's end of a new socket pair of the step's own (passed with ``SCM_RIGHTS``, so no
path or name another user could connect to), and writes the request on it first: the
task and result files, the log, the working directory and the environment. The zygote
forks a *guard* for the step, which

* leads a session and process group of its own, so the step and everything it starts
  can be killed together (``killpg``), as :mod:`.guard` does for fresh processes;
* dies with the zygote (``PR_SET_PDEATHSIG``) and then kills its group; the zygote
  dies with the engine the same way, so a SIGKILL of the engine takes every step along;
* sends its pid (the group to kill on Ctrl-C), forks the step, waits for it and sends
  its exit status (negative: the signal that killed it). The zygote reaps ended guards.

The step process points stdout and stderr at the step's log, takes the working directory
and the environment of the request, reseeds NumPy's global generator (the ``random``
module reseeds itself after a fork), runs :func:`mloop.pipelines.task.main` and exits
as an interpreter does (non-daemon threads joined, atexit handlers run, output flushed)
but without tearing every module down. The zygote opened the project's stores once
(the schema check, the engine) and closed their connections before its first fork: a
step whose environment gives the same settings uses that project and opens its own
connections; any other step opens the project anew.

The zygote stays single-threaded: it refuses to serve (and the run falls back to fresh
processes) when importing the project's modules started threads, since forking a
process with other threads can copy a lock some thread held.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mloop.core.redact import get_logger
from mloop.pipelines.processes import step_folder

if TYPE_CHECKING:
    from mloop.pipelines.processes import StepProcesses
    from mloop.project import Project

log_ = get_logger(__name__)

MAX_MESSAGE = 1 << 20  # a request holds the environment: far below this


def _preload() -> Project | None:
    """Import what every step needs, and the project's pipeline modules (their own
    imports included); a module that fails to import is left for the step to report.
    Returns the project, its stores opened once (schema checked) and their connections
    closed again, for the steps whose settings are the same (None: it did not open)."""
    import ctypes  # noqa: F401 - each guard arms PR_SET_PDEATHSIG through it

    import cloudpickle  # noqa: F401 - the step function comes pickled

    import mloop
    import mloop.pipelines.task
    import mloop.pipelines.values
    import mloop.tracking.fluent  # noqa: F401
    from mloop.pipelines.registry import modules
    from mloop.project import Project

    try:
        project = Project.open(os.getcwd())
        modules(project)
    except (Exception, SystemExit) as exc:  # the step that needs it will say what broke
        print(f"mloop: the project's pipeline modules did not import here: {exc}",
              file=sys.stderr, flush=True)
        return None
    try:
        if not project.remote:  # a server's connections are made by each child
            project.objects  # noqa: B018
            _warm_statements(project)
            project.store.close()  # a child opens its own connections, never the zygote's
    except Exception as exc:  # the step opens them itself, and reports what fails
        print(f"mloop: the project's stores did not open here: {exc}", file=sys.stderr,
              flush=True)
        return None
    return project


def _warm_statements(project: Project) -> None:
    """Read the newest run as a step resuming its run does: SQLAlchemy compiles those
    statements here once (its cache lives on the engine the children share), not in
    every step. A project without runs has nothing to read."""
    from mloop.repositories import backend
    from mloop.tracking import records

    newest = backend(project).runs.newest_id()
    if newest is not None:
        records.get_run(project, newest)


def _step(request: dict[str, Any], warm: Project | None) -> int:
    """In the step's process: its log, directory and environment; then the task (in the
    warm project when this environment gives it the same settings)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # a fork copies the generator: fresh entropy as a new process
        numpy.random.seed()
    from mloop.core.settings import load_settings
    from mloop.pipelines import task

    if warm is not None and load_settings(request["cwd"]).values != warm.settings.values:
        warm = None
    sys.argv = [str(task.__file__), request["task"], request["result"]]
    return task.main([request["task"], request["result"]], warm)


def _exit_step(code: int) -> NoReturn:
    """End a step's process as an interpreter ends (its non-daemon threads joined, its
    atexit handlers run, its output flushed), without tearing down every module the
    zygote imported, which takes longer than the step."""
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _guard(conn: socket.socket, zygote: int, warm: Project | None) -> tuple[int, bool]:
    """In the step's guard (a child of the zygote): see the module docs. Returns the
    exit status and whether this process is the step's (it exits as an interpreter
    does; the guard does not run the atexit handlers the zygote registered)."""
    from mloop.pipelines.guard import _die_with

    os.setsid()
    _die_with(zygote)
    request = json.loads(conn.recv(MAX_MESSAGE) or b"null")
    if request is None:  # the engine gave up on the step before it started
        return 0, False
    conn.send(json.dumps({"pid": os.getpid()}).encode())
    pid = os.fork()
    if pid == 0:
        conn.close()
        return _step(request, warm), True
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):  # the engine is gone: nobody to tell
        conn.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
    return 0, False


def _reap(block: bool) -> None:
    """Collect the guards that ended (all of them with ``block``): reaped, not ignored, so
    their CPU time adds up in the zygote's and then the engine's children's usage."""
    while True:
        try:
            pid, _status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:  # none left
            return
        if pid == 0:
            return


def serve(control: socket.socket, engine: int) -> tuple[int, bool]:
    """Fork a guard per step the engine sends until the engine closes the socket."""
    from mloop.pipelines.guard import _die_with

    _die_with(engine)
    warm = _preload()
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate()
                          if t is not threading.current_thread())
        control.send(json.dumps({"ready": False, "why": "importing the project's modules "
                                 f"started threads ({names})"}).encode())
        return 0, False
    gc.freeze()  # keep the imported objects' pages shared with the children
    control.send(json.dumps({"ready": True}).encode())
    me = os.getpid()
    while True:
        message, fds, _flags, _addr = socket.recv_fds(control, 16, 1)
        if not message:  # the engine closed its end: the run is over
            for fd in fds:
                os.close(fd)
            _reap(block=True)
            return 0, False
        _reap(block=False)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            control.close()
            with socket.socket(fileno=fds[0]) as conn:
                return _guard(conn, me, warm)
        for fd in fds:
            os.close(fd)


# -- the engine's side --------------------------------------------------------------------------

class Zygote:
    """The engine's handle on the warm process of one run. :meth:`start` launches it
    (the engine does so when the run opens, so its imports overlap the engine's own
    preparation); :meth:`run` waits until it is ready, launching it if need be."""

    def __init__(self, root: str, env: dict[str, str], procs: StepProcesses) -> None:
        self._root, self._env, self._procs = root, env, procs
        self._lock = threading.Lock()
        self._control: socket.socket | None = None  # once launched
        self._ready = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._broken = False

    def start(self) -> None:
        """Launch the zygote without waiting for it."""
        with self._lock:
            self._launch()

    def _launch(self) -> None:
        if self._proc is not None or self._broken:
            return
        self._folder = step_folder()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with theirs, open(self._out, "ab") as log:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "mloop.pipelines.zygote", str(os.getpid()),
                     str(theirs.fileno())], cwd=self._root, env=self._env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=[theirs.fileno()], start_new_session=True)
        except BaseException:
            mine.close()
            self._broken = True
            raise
        self._control = mine
        if not self._procs.watch(self._proc.pid):
            self._broken = True

    @property
    def _out(self) -> Path:
        assert self._folder is not None
        return Path(self._folder.name) / "zygote.log"

    def _start(self) -> socket.socket | None:
        """The control socket of a ready zygote (None: none could start; the caller
        runs the step in a fresh process)."""
        with self._lock:
            if self._ready or self._broken:
                return self._control if self._ready else None
            self._launch()
            said = {} if self._broken or self._control is None else json.loads(
                self._control.recv(MAX_MESSAGE) or b"{}")
            if not said.get("ready"):
                self._broken = True
                if not self._procs.stopped:
                    log_.warning("mloop: the run's warm step process did not start (%s); "
                                 "its steps run in fresh processes",
                                 said.get("why") or _tail(self._out) or "it ended at start")
                return None
            self._ready = True
            return self._control

    def run(self, request: dict[str, Any]) -> int | None:
        """Run one step (``request``: task, result, log, cwd, env) forked from the
        zygote and wait; its exit status (negative: the signal that killed it), or None
        when there is no zygote to fork from."""
        control = self._start()
        if control is None:
            return None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with mine:
            with theirs:
                try:
                    mine.send(json.dumps(request).encode())
                    with self._lock:
                        socket.send_fds(control, [b"step"], [theirs.fileno()])
                except OSError as exc:  # the zygote is gone (killed), or a huge request
                    log_.warning("mloop: cannot hand a step to the run's warm process "
                                 "(%s); it runs in a fresh process", exc)
                    return None
            said = json.loads(mine.recv(MAX_MESSAGE) or b"{}")
            if "pid" not in said:  # the guard died before it started the step
                return -signal.SIGKILL if self._procs.stopped else None
            group = said["pid"]
            self._procs.watch(group)
            try:
                said = json.loads(mine.recv(MAX_MESSAGE) or b"{}")
            finally:
                self._procs.unwatch(group)
        if "status" in said:
            return int(said["status"])
        return -signal.SIGKILL  # the guard was killed (Ctrl-C, the zygote's end)

    def close(self) -> None:
        """End the zygote (a ready one exits when its control socket closes; one still
        importing is killed) and remove its folder."""
        with self._lock:
            control, self._control = self._control, None
            proc, self._proc = self._proc, None
            ready, self._broken = self._ready, True
        if control is not None:
            control.close()
        if proc is not None:
            if not ready:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._procs.unwatch(proc.pid)
        if self._folder is not None:
            self._folder.cleanup()


def _tail(path: Path, size: int = 2000) -> str:
    """The end of a file, for a message (empty when it cannot be read)."""
    try:
        data = path.read_bytes()[-size:]
    except OSError:
        return ""
    return data.decode(errors="replace").strip()


def main(argv: list[str]) -> None:
    engine, fd = int(argv[0]), int(argv[1])
    control = socket.socket(fileno=fd)
    code, is_step = serve(control, engine)
    if is_step:
        _exit_step(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
