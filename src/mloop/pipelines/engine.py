"""Running a pipeline: cache keys, the ready set, an executor, records and lineage.

A step's cache key covers its code (the function and every project helper it calls,
transitively: :mod:`.fingerprint`), its params, the content digests of its inputs
(dataset versions' trees, upstream outputs' blobs) and the environment lock (the
interpreter and installed packages). A step whose key has an entry — and whose outputs
are still in the object store — is not run: its outputs are restored. Steps whose inputs
are ready run side by side on the executor; a failing step is retried with exponential
backoff, then marks the run failed: its downstream steps do not run, independent
branches finish, and the next run resumes from it (everything before is cached).

Records: ``pipeline_runs`` and ``pipeline_steps`` (status, attempts, seconds, the error
with its traceback, the step's log), ``pipeline_cache``; a tracking run parents one
nested run per executed step (created only when a step runs, so a fully cached re-run
costs no tracking); lineage ``pipelines:/<name>/<id> --step--> runs:/<step run>``,
``data:/… --input--> runs:/…`` and ``runs:/<upstream> --feeds--> runs:/<downstream>``.
The pipeline run itself reads its dataset inputs (``data:/… --input--> pipelines:/…``),
and a step restored from the cache points at the run that made its outputs
(``pipelines:/… --cached--> runs:/…``), so a fully cached run still has its lineage.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.hashing import hash_bytes
from mloop.core.humanize import plural
from mloop.core.ids import new_id
from mloop.core.redact import redact
from mloop.errors import InvalidInputError, MloopError, StepFailedError
from mloop.pipelines.step import Dataset, Step, coerce_param
from mloop.pipelines.values import ValueRef
from mloop.repositories.pipelines import PipelineStatus, StepStatus, count_steps

if TYPE_CHECKING:
    from mloop.pipelines.dag import Edge, Pipeline
    from mloop.pipelines.history import RunRecords
    from mloop.pipelines.processes import StepProcesses
    from mloop.project import Project

EXECUTORS = ("local", "dask")


@dataclass
class StepResult:
    name: str
    status: StepStatus = StepStatus.PENDING
    key: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    run_id: str | None = None
    error: str | None = None
    outputs: dict[str, ValueRef] = field(default_factory=dict)
    log: str | None = None  # digest of the step's log

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.name, "status": str(self.status), "key": self.key,
                "attempts": self.attempts, "seconds": round(self.seconds, 3),
                "run_id": self.run_id, "error": self.error, "log": self.log,
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()}}


@dataclass
class PipelineRun:
    """The outcome of one run: status, per-step results, the models it logged."""

    id: str
    pipeline: str
    status: PipelineStatus
    steps: dict[str, StepResult]
    run_id: str | None = None
    error: str | None = None
    started_at: int = 0
    finished_at: int | None = None
    trigger: str | None = None

    @property
    def uri(self) -> str:
        return f"pipelines:/{self.pipeline}/{self.id}"

    @property
    def models(self) -> list[str]:
        """``runs:/…`` URIs of every model output, in step order (the newest last),
        including models restored from the cache."""
        return [ref.uri for s in self.steps.values() for ref in s.outputs.values()
                if ref.kind == "model" and ref.uri]

    @property
    def new_models(self) -> list[str]:
        """The model outputs of steps that ran in this run (not restored)."""
        return [ref.uri for s in self.steps.values() if s.status == StepStatus.RAN
                for ref in s.outputs.values() if ref.kind == "model" and ref.uri]

    def step_counts(self) -> dict[str, int]:
        """How many steps ended with each status (``{"cached": 3, "ran": 1}``)."""
        return count_steps(s.status for s in self.steps.values())

    def output(self, name: str, project: Project | None = None) -> Any:
        """The value of an output (loaded from the object store)."""
        from mloop.pipelines import values
        from mloop.project import current_project

        for s in self.steps.values():
            if name in s.outputs:
                return values.load(project or current_project(), s.outputs[name])
        raise InvalidInputError(f"No output {name!r}; outputs: "
                                f"{', '.join(n for s in self.steps.values() for n in s.outputs)}.")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "uri": self.uri, "pipeline": self.pipeline,
                "status": str(self.status), "run_id": self.run_id, "error": self.error,
                "trigger": self.trigger, "started_at": self.started_at,
                "finished_at": self.finished_at, "models": self.models,
                "new_models": self.new_models,
                "steps": [s.to_dict() for s in self.steps.values()]}


StepError = StepFailedError  # a step's process failed; ``details`` holds its traceback


# -- preparing ---------------------------------------------------------------------------------

_ENV: dict[str, str] = {}


def environment_lock() -> str:
    """The digest of the interpreter, platform and installed packages (once per process)."""
    if "id" not in _ENV:
        from mloop.tracking.environment import capture_environment

        _ENV["id"] = capture_environment().id
    return _ENV["id"]


def _resolve_inputs(project: Project, pipeline: Pipeline,
                    inputs: Mapping[str, Any]) -> dict[str, ValueRef]:
    """Pipeline inputs as stored values: dataset refs → the version (its tree is its
    content), anything else stored like a step output."""
    from mloop.pipelines import values

    wanted = pipeline.external_inputs(inputs)
    unknown = sorted(set(inputs) - set(wanted))
    if unknown:
        raise InvalidInputError(f"Pipeline {pipeline.name!r} takes no input "
                                f"{', '.join(map(repr, unknown))}; its inputs: "
                                f"{', '.join(sorted(wanted)) or 'none'}.")
    out: dict[str, ValueRef] = {}
    for name, value in inputs.items():
        if isinstance(value, Dataset):
            out[name] = ValueRef("dataset", value.digest, value.uri, value.uri)
        elif wanted[name] is Dataset or (isinstance(value, str) and (
                value.startswith("data:/") or "@" in value)):
            from mloop.data import catalog

            version = catalog.get(project, str(value))
            out[name] = ValueRef("dataset", version.tree, version.uri, version.uri)
        else:
            out[name] = values.store(project, name, value, wanted[name], None)
    return out


def step_params(pipeline: Pipeline, given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each step's params: ``given`` checked (known names, the params' types), defaults
    for the rest; :class:`InvalidInputError` names the param at fault."""
    known = pipeline.params()
    unknown = sorted(set(given) - set(known))
    if unknown and all(s.kind == "shell" for s in pipeline.steps.values()):
        raise InvalidInputError(f"mloop.yaml's stages read their params from params.yaml: "
                                f"change {', '.join(unknown)} there (a change re-runs the "
                                "stages that list it).")
    if unknown:
        raise InvalidInputError(f"No step of {pipeline.name!r} takes the param(s) "
                                f"{', '.join(unknown)}; params: "
                                f"{', '.join(sorted(known)) or 'none'}.")
    out: dict[str, dict[str, Any]] = {}
    for s in pipeline.steps.values():
        out[s.name] = {p.name: coerce_param(s, p, given[p.name]) if p.name in given
                       else p.default for p in s.params.values()}
    return out


def _code_of(project: Project, s: Step) -> str:
    from mloop.pipelines.fingerprint import fingerprint

    return fingerprint(s.fn, roots=[project.root])


def cache_key(project: Project, s: Step, params: dict[str, Any],
              inputs: dict[str, ValueRef]) -> str:
    """The digest of everything a step's result depends on."""
    if s.kind == "shell":
        from mloop.pipelines.stages import shell_key

        parts: dict[str, Any] = {"shell": shell_key(project, s)}
    else:
        parts = {"code": _code_of(project, s), "params": params,
                 "inputs": {k: v.digest for k, v in sorted(inputs.items())},
                 "env": environment_lock(), "outputs": list(s.outputs)}
    return hash_bytes(json.dumps(parts, sort_keys=True, default=str).encode())


# -- running -------------------------------------------------------------------------------------

class _Tracking:
    """The parent tracking run, made the first time a step actually runs."""

    def __init__(self, project: Project, run: PipelineRun) -> None:
        self.project = project
        self.run = run
        self.lock = threading.Lock()
        self.parent: Any = None

    @property
    def heartbeat(self) -> Any:
        """The process's heartbeat (it keeps the pipeline run and the parent run alive)."""
        from mloop.tracking.tracker import tracker_for

        return tracker_for(self.project).heartbeat

    def child(self, step: str, params: dict[str, Any]) -> str:
        from mloop import lineage
        from mloop.tracking.tracker import tracker_for

        tracker = tracker_for(self.project)
        tags = {"mloop.pipeline": self.run.pipeline, "mloop.pipeline_run": self.run.id}
        with self.lock:
            if self.parent is None:
                self.parent = tracker.create_run(self.run.pipeline, f"{self.run.pipeline}-"
                                                 f"{self.run.id[-6:]}", None, tags)
                self.run.run_id = self.parent.id
            created = tracker.create_run(self.run.pipeline, step, self.parent.id,
                                         {**tags, "mloop.step": step})
            if params:
                created.log_params(params)
            tracker.forget(created)
        lineage.add_edge(self.project, self.run.uri, f"runs:/{created.id}", "step")
        return str(created.id)

    def end(self, status: PipelineStatus) -> None:
        if self.parent is None:
            return
        from mloop.tracking.model import RunStatus

        self.parent.end(RunStatus.FINISHED if status == PipelineStatus.SUCCEEDED
                        else RunStatus.FAILED)


def run_pipeline(project: Project, pipeline: Pipeline, *, inputs: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, executor: str = "local",
                 scheduler: str | None = None, force: bool = False,
                 from_step: str | None = None, quiet: bool = True,
                 trigger: str | None = None) -> PipelineRun:
    """Run ``pipeline`` (see the module docs); returns how every step went."""
    if executor not in EXECUTORS:
        raise InvalidInputError(f"Unknown executor {executor!r}; use local or dask.")
    import linecache

    linecache.checkcache()  # source read for cache keys is the source on disk now
    inputs = dict(inputs or {})
    plan_params = step_params(pipeline, params or {})
    edges, external = pipeline.wire(inputs)
    order = pipeline.order(edges)
    forced = set(order) if force else (pipeline.downstream(from_step, edges)
                                       if from_step else set())
    given = _resolve_inputs(project, pipeline, inputs)
    from mloop.pipelines.executors import open_executor
    from mloop.pipelines.history import RunRecords
    from mloop.pipelines.processes import StepProcesses

    lock = _lock(project, pipeline.name)
    procs = StepProcesses()
    try:
        runner = open_executor(executor, scheduler, project, procs, python_steps=any(
            s.kind != "shell" for s in pipeline.steps.values()))
        run = PipelineRun(new_id(), pipeline.name, PipelineStatus.RUNNING,
                          {n: StepResult(n) for n in order},
                          started_at=now_ms(), trigger=trigger)
        # the params as the steps take them (--param n=3 is recorded as the int 3)
        taken = {k: next(p[k] for p in plan_params.values() if k in p) for k in params or {}}
        records = RunRecords(project, run, executor, taken, given)
        _input_edges(project, run, given)
        tracking = _Tracking(project, run)
        beating = tracking.heartbeat.add(records.beat)
        say = (lambda _m: None) if quiet else _echo
        stopped: BaseException | None = None
        try:
            _loop(_Context(project, pipeline, run, _Plan(edges, external, plan_params, given,
                                                         forced), runner, records, tracking,
                           say, procs))
        except BaseException as exc:  # Ctrl-C, or a failure of the engine itself
            stopped = exc
            raise
        finally:
            runner.close()
            tracking.heartbeat.remove(beating)  # before the outcome is written
            _finish(run, records, tracking, stopped)
    finally:
        lock.close()
    return run


def _finish(run: PipelineRun, records: RunRecords, tracking: _Tracking,
            stopped: BaseException | None) -> None:
    """The run's outcome: failed when a step failed or did not get to finish."""
    run.finished_at = now_ms()
    failed = [s for s in run.steps.values() if s.status == StepStatus.FAILED]
    unfinished = [s for s in run.steps.values() if s.status == StepStatus.PENDING]
    why = "interrupted" if isinstance(stopped, KeyboardInterrupt) else (
        f"stopped by {type(stopped).__name__}: {stopped}" if stopped else "stopped")
    for s in unfinished:
        s.status, s.error = StepStatus.NOT_RUN, f"the run was {why}"
        with contextlib.suppress(Exception):
            records.step(s)
    run.status = (PipelineStatus.FAILED if failed or unfinished or stopped
                  else PipelineStatus.SUCCEEDED)
    run.error = (f"the run was {why}" if stopped or (unfinished and not failed) else
                 f"step {failed[0].name} failed: {_headline(failed[0].error)}" if failed
                 else None)
    with contextlib.suppress(Exception):
        tracking.end(run.status)
    with contextlib.suppress(Exception):
        records.finish()


def _lock(project: Project, name: str) -> Any:
    """One run of a pipeline at a time per project: a second one is refused, not mixed
    into the first's files (the lock goes with the process, however it ends)."""
    from mloop.errors import ConflictError

    folder = project.root / ".mloop" / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / f"{name}.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConflictError(f"Pipeline {name!r} is already running in this project; wait "
                            "for that run to finish (mloop pipeline status).") from None
    return handle


@dataclass
class _Plan:
    edges: list[Edge]
    external: dict[str, dict[str, str]]
    params: dict[str, dict[str, Any]]
    given: dict[str, ValueRef]
    forced: set[str]


@dataclass
class _Context:
    """One run in progress: what every step of it needs to reach."""

    project: Project
    pipeline: Pipeline
    run: PipelineRun
    plan: _Plan
    runner: Any
    records: RunRecords
    tracking: _Tracking
    say: Any
    procs: StepProcesses


def _headline(text: str | None) -> str:
    """The line that says what went wrong: a traceback's last, a message's first."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    return (lines[-1] if lines[0].startswith("Traceback") else lines[0]).strip()


def _echo(message: str) -> None:
    """A progress line; step names and errors are user text (control characters escaped)."""
    import sys

    from mloop.core.printable import printable

    print(printable(message), file=sys.stderr, flush=True)


def _log_name(step: str) -> str:
    """The log file's name for ``step``: the name itself when it is a plain file name, else
    a safe spelling of it plus a hash (a step named ``a/b`` must not name a folder)."""
    from mloop.core.uris import NAME_RE

    if NAME_RE.match(step):
        return f"{step}.log"
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in step)[:80].strip(".")
    return f"{safe}-{hash_bytes(step.encode())[:12]}.log"


def _loop(ctx: _Context) -> None:
    run = ctx.run
    upstream = {n: [e for e in ctx.plan.edges if e.dst == n] for n in run.steps}
    pending = list(run.steps)
    running: dict[Future[StepResult], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, ctx.runner.slots)) as pool:
        try:
            _schedule(ctx, upstream, pending, running, pool)
        except BaseException:  # Ctrl-C, an engine failure: end the steps, then the pool
            ctx.procs.stop()
            raise


def _schedule(ctx: _Context, upstream: dict[str, list[Edge]], pending: list[str],
              running: dict[Future[StepResult], str], pool: ThreadPoolExecutor) -> None:
    project, pipeline, run, plan = ctx.project, ctx.pipeline, ctx.run, ctx.plan
    records, say = ctx.records, ctx.say
    while pending or running:
        for name in list(pending):
            deps = upstream[name]
            states = [run.steps[e.src].status for e in deps]
            if any(s.blocks for s in states):
                run.steps[name].status = StepStatus.NOT_RUN
                run.steps[name].error = "an upstream step failed"
                records.step(run.steps[name])
                pending.remove(name)
                say(f"  - {name}: not run (upstream failed)")
                continue
            if not all(s.done for s in states):
                continue
            pending.remove(name)
            s = pipeline.steps[name]
            ins = {e.input: run.steps[e.src].outputs[e.output] for e in deps}
            ins.update({k: plan.given[v] for k, v in plan.external.get(name, {}).items()})
            result = run.steps[name]
            try:
                result.key = cache_key(project, s, plan.params[name], ins)
                restored = s.cache and name not in plan.forced and _restore(
                    project, s, result, records)
            except MloopError as exc:  # e.g. a stage's dependency is missing
                result.status, result.error = StepStatus.FAILED, exc.message
                records.step(result)
                say(f"  ✗ {name}: {exc.message}")
                continue
            if restored:
                records.step(result)
                _cached_edge(project, run, result)
                say(f"  ✓ {name}: cached")
                continue
            running[pool.submit(_execute, ctx, s, result, ins)] = name
        if not running:
            continue
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            name = running.pop(future)
            result = future.result()
            records.step(result, cache=result.status == StepStatus.RAN and
                         pipeline.steps[name].cache)
            _edges(project, run, upstream[name], result, plan)
            if result.status == StepStatus.RAN:
                say(f"  ✓ {name}: ran in {result.seconds:.1f} s"
                    + (f" ({result.attempts} attempts)" if result.attempts > 1 else ""))
            else:
                say(f"  ✗ {name}: failed after {plural(result.attempts, 'attempt')}: "
                    f"{_headline(result.error)}")


def _restore(project: Project, s: Step, result: StepResult, records: RunRecords) -> bool:
    from mloop.pipelines import values

    assert result.key is not None
    found = records.cached(result.key)
    if found is None:
        return False
    outputs, made_by = found
    if not all(values.exists(project, r) for r in outputs.values()):
        return False
    if s.kind == "shell":
        from mloop.pipelines.stages import restore

        for ref in outputs.values():
            restore(project, s, ref)
    result.status, result.outputs = StepStatus.CACHED, outputs
    result.run_id = made_by
    return True


def _input_edges(project: Project, run: PipelineRun, given: Mapping[str, ValueRef]) -> None:
    """The pipeline run reads its dataset inputs (recorded before any step runs)."""
    from mloop import lineage

    for ref in given.values():
        if ref.kind == "dataset" and ref.uri:
            lineage.add_edge(project, ref.uri, run.uri, "input")


def _cached_edge(project: Project, run: PipelineRun, result: StepResult) -> None:
    """A restored step: the pipeline run reuses what the run that made it produced."""
    if result.run_id:
        from mloop import lineage

        lineage.add_edge(project, run.uri, f"runs:/{result.run_id}", "cached")


def _edges(project: Project, run: PipelineRun, deps: list[Edge], result: StepResult,
           plan: _Plan) -> None:
    if result.run_id is None or result.status != StepStatus.RAN:
        return
    from mloop import lineage

    me = f"runs:/{result.run_id}"
    for e in deps:
        src = run.steps[e.src].run_id
        if src:
            lineage.add_edge(project, f"runs:/{src}", me, "feeds")
    for name in plan.external.get(result.name, {}).values():
        ref = plan.given[name]
        if ref.kind == "dataset" and ref.uri:
            lineage.add_edge(project, ref.uri, me, "input")
    for ref in result.outputs.values():
        if ref.kind == "model" and ref.uri:  # registering it later links models:/… to it
            lineage.add_edge(project, me, ref.uri, "output")


def _execute(ctx: _Context, s: Step, result: StepResult, ins: dict[str, ValueRef]
             ) -> StepResult:
    """Run one step with its retries (in a pool thread; the work is in the executor)."""
    project, run, params = ctx.project, ctx.run, ctx.plan.params[s.name]
    logs = project.root / ".mloop" / "pipelines" / run.id
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / _log_name(s.name)
    start = time.perf_counter()
    for attempt in range(s.retries + 1):
        result.attempts = attempt + 1
        try:
            if s.kind == "shell":
                from mloop.pipelines.stages import run_shell

                result.outputs = {s.outputs[0]: run_shell(project, s, log_path, ctx.procs)}
            else:
                run_id = ctx.tracking.child(s.name, params)
                result.run_id = run_id
                result.outputs = ctx.runner.run(_task(project, s, ins, params,
                                                      run_id=run_id, log_path=log_path))
            result.status, result.error = StepStatus.RAN, None
            break
        except Exception as exc:  # a step's failure, whatever raised it, is the step's
            result.status = StepStatus.FAILED
            result.error = redact(getattr(exc, "details", None) or "".join(
                traceback.format_exception_only(type(exc), exc)).strip())
            if attempt < s.retries and not ctx.procs.stopped:
                time.sleep(s.retry_delay * (2 ** attempt))
    result.seconds = time.perf_counter() - start
    if result.status == StepStatus.FAILED and ctx.procs.stopped:
        result.error = "stopped with the pipeline run (interrupted, or the engine failed)"
    if result.status == StepStatus.FAILED and result.run_id:
        # the step's process died (SIGKILL) with its run RUNNING: it failed
        from mloop.repositories import backend

        backend(project).runs.fail_if_running(result.run_id)
    if log_path.is_file() and log_path.stat().st_size:
        result.log = project.objects.put_file(log_path)
    return result


def _task(project: Project, s: Step, ins: dict[str, ValueRef], params: dict[str, Any], *,
          run_id: str, log_path: Path) -> dict[str, Any]:
    import cloudpickle

    from mloop.pipelines.values import Model, Report

    module = __import__("sys").modules.get(s.fn.__module__)
    if module is not None and getattr(module, "__mloop_by_value__", False):
        cloudpickle.register_pickle_by_value(module)  # loaded from a file, not importable
    kinds = {}
    for out in s.outputs:
        t = s.output_type(out)
        kinds[out] = "model" if t is Model else "report" if t is Report else None
    return {"root": str(project.root), "fn": cloudpickle.dumps(s.fn), "step": s.name,
            "inputs": {k: v.to_dict() for k, v in ins.items()}, "params": params,
            "outputs": list(s.outputs), "kinds": kinds, "run_id": run_id,
            "log": str(log_path)}
