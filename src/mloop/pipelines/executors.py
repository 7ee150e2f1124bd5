"""Where steps run: fresh local processes (the default) or a Dask cluster.

Both take the same task (see :mod:`.task`) and give back the step's output refs or raise
:class:`~mloop.pipelines.engine.StepError` with the step's error and traceback. The
engine runs up to ``slots`` steps at once.

* ``local``: each step in a process of its own, its stdout and stderr in the step's log;
  as many at once as the machine has cores. By default the process is forked from the
  run's warm process, which imported mloop and the project's pipeline modules once
  (:mod:`.zygote`: milliseconds instead of seconds per step); with ``[pipelines]
  step_processes = "fresh"`` (``MLOOP_STEP_PROCESSES=fresh``), and off Linux, it is a
  new ``python -m mloop.pipelines.task`` interpreter. A process killed (SIGKILL, the
  OOM killer) fails its step with the signal named. Steps run under a guard
  (:mod:`.processes`): they die with the engine, however it ends.
* ``dask``: the task is submitted to a Dask scheduler (``tcp://host:8786``) or, with no
  address, to a local cluster started for the run (one single-threaded worker per
  core). Workers need the project folder at the same path (or the object store on
  shared storage) and should run one thread each (``dask worker --nthreads 1``): the
  active tracking run a step logs to belongs to its process.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mloop.errors import ConfigError, ServiceUnavailableError
from mloop.pipelines.processes import StepProcesses, clean_stale_folders, step_folder
from mloop.pipelines.values import ValueRef
from mloop.pipelines.zygote import Zygote

if TYPE_CHECKING:
    from mloop.project import Project


class Executor(Protocol):
    slots: int

    def run(self, task: dict[str, Any]) -> dict[str, ValueRef]: ...

    def close(self) -> None: ...


def _outputs(result: dict[str, Any]) -> dict[str, ValueRef]:
    from mloop.pipelines.engine import StepError

    if not result.get("ok"):
        error = StepError(result.get("error") or "the step failed")
        error.details = (result.get("traceback") or result.get("error") or "").strip()  # type: ignore[attr-defined]
        raise error
    return {k: ValueRef.from_dict(v) for k, v in result["outputs"].items()}


def _cpus() -> int:
    """The cores this process may use (affinity and cpusets count, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Each step in a process of its own (guarded: it dies with the engine); logs to the
    step's file. ``warm`` (the default): forked from the run's warm process, which
    imports mloop and the project's pipeline modules once (:mod:`.zygote`); ``fresh``: a
    new interpreter per step. Step folders that a killed engine left are removed on start."""

    def __init__(self, slots: int | None = None, procs: StepProcesses | None = None,
                 root: str | Path | None = None, mode: str = "warm") -> None:
        self.slots = slots or _cpus()
        self.procs = procs or StepProcesses()
        self.zygote: Zygote | None = None  # the run's warm process (warm mode, Linux)
        if mode == "warm" and root is not None and sys.platform.startswith("linux"):
            self.zygote = Zygote(str(root), _step_env(str(root)), self.procs)
        clean_stale_folders()

    def run(self, task: dict[str, Any]) -> dict[str, ValueRef]:
        import json

        from mloop.pipelines.engine import StepError

        log_path = Path(task["log"])
        with step_folder() as tmp:
            task_file, result_file = Path(tmp) / "task.pkl", Path(tmp) / "result.json"
            task_file.write_bytes(pickle.dumps(task))
            env = _step_env(task["root"])
            code = None
            if self.zygote is not None:
                code = self.zygote.run({"task": str(task_file), "result": str(result_file),
                                         "log": str(log_path), "cwd": task["root"],
                                         "env": env})
            if code is None:
                with open(log_path, "ab") as log:
                    code = self.procs.run(
                        [sys.executable, "-m", "mloop.pipelines.task", str(task_file),
                         str(result_file)], cwd=task["root"], env=env, stdout=log,
                        stderr=subprocess.STDOUT)
            if result_file.is_file():
                return _outputs(json.loads(result_file.read_text()))
        if code < 0:
            name = signal.Signals(-code).name
            raise StepError(f"the step's process was killed by signal {-code} "
                            f"({name}); see its log")
        raise StepError(f"the step's process exited with status {code} without a "
                        f"result; see its log {log_path}")

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()


def _step_env(root: str) -> dict[str, str]:
    """A step's environment: the engine's, with the project and the engine's import
    path on ``PYTHONPATH`` (the project's modules import as they do at home)."""
    env = dict(os.environ)
    paths = [root, *[p for p in sys.path if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class DaskExecutor:
    """Steps as tasks on a Dask cluster (the same task the local executor runs)."""

    def __init__(self, scheduler: str | None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("The Dask executor needs `pip install 'mloop[dask]'` "
                              "(dask.distributed); or use --executor local.") from None
        self._cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                # one thread per worker process: a step's tracking run is its process's
                self._cluster = LocalCluster(n_workers=_cpus(), threads_per_worker=1,
                                             processes=True, dashboard_address=None)
                self.client = Client(self._cluster)
        except ValueError as exc:  # an address that does not parse
            raise ConfigError(f"Cannot use the Dask scheduler address {scheduler}: {exc}. "
                              "Write it as tcp://host:8786, or use --executor local.") from None
        except (OSError, TimeoutError) as exc:
            raise ServiceUnavailableError(
                f"Cannot reach the Dask scheduler {scheduler}: {exc}. Check the address "
                "(tcp://host:8786) and that it runs, or use --executor local.") from None
        info = self.client.scheduler_info()
        self.slots = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))

    def run(self, task: dict[str, Any]) -> dict[str, ValueRef]:
        from mloop.pipelines.task import execute

        future = self.client.submit(execute, task, pure=False, key=f"mloop-{task['step']}-"
                                    f"{task['run_id']}")
        return _outputs(future.result())

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def open_executor(name: str, scheduler: str | None, project: Project,
                  procs: StepProcesses | None = None, python_steps: bool = False) -> Executor:
    """The executor ``name`` (``local`` or ``dask``); local steps run under ``procs``.
    With ``python_steps`` the local executor launches the run's warm process at once."""
    if name == "dask":
        return DaskExecutor(scheduler)
    if scheduler:
        raise ConfigError("--scheduler is for --executor dask.")
    local = LocalExecutor(procs=procs, root=project.root,
                          mode=project.settings.step_processes)
    if python_steps and local.zygote is not None:
        local.zygote.start()
    return local
