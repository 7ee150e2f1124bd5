"""Tracking in one project: starting runs and capturing how they can be reproduced."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from mloop.core.clock import now_ms
from mloop.core.ids import new_id, short_id
from mloop.core.owner import this_process
from mloop.core.text import MAX_RUN_NAME, check_text
from mloop.errors import RunStateError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.runs import NewRun, Runs
from mloop.tracking import environment as env
from mloop.tracking import lifecycle, records
from mloop.tracking.active import ActiveRun
from mloop.tracking.experiments import DEFAULT_EXPERIMENT, get_or_create_experiment
from mloop.tracking.heartbeat import Heartbeat
from mloop.tracking.model import Experiment, RunStatus
from mloop.tracking.seed import current_seed
from mloop.tracking.writer import MetricWriter

EXPERIMENT_ENV = "MLOOP_EXPERIMENT"
_ADJ = ("bold", "calm", "eager", "fuzzy", "gentle", "keen", "lucid", "merry", "nimble",
        "quiet", "rapid", "sly", "sunny", "tidy", "vivid", "witty", "brave", "clever")
_NOUN = ("otter", "heron", "lynx", "panda", "koala", "falcon", "badger", "marten", "ibis",
         "gecko", "yak", "wren", "bison", "crane", "moose", "tapir", "viper", "finch")


def random_run_name() -> str:
    return f"{random.choice(_ADJ)}-{random.choice(_NOUN)}-{random.randint(100, 999)}"


class Tracker:
    """Starts runs in one project and owns its background metric writer."""

    def __init__(self, project: Project) -> None:
        self.project = project
        s = project.settings
        if project.remote:  # a team server: batches over HTTP, spooled while it is away
            from mloop.repositories import backend
            from mloop.tracking.spool import Spool

            self.writer = MetricWriter(
                None, flush_interval=s.flush_interval, batch_size=s.flush_batch_size,
                remote=backend(project).runs,
                spool=Spool(project.settings.project_dir / "spool" / "metrics"))
        else:
            self.writer = MetricWriter(project.store, flush_interval=s.flush_interval,
                                       batch_size=s.flush_batch_size)
        self.heartbeat = Heartbeat(self.writer)
        self._owned: set[str] = set()  # runs this process runs (beating), ended or not
        self._beat_handle: int | None = None
        self._experiments: dict[str, Experiment] = {}
        self._capture_lock = threading.Lock()
        self._captured: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Tracker({self.project!r})"

    @cached_property
    def runs(self) -> Runs:
        """The project's runs repository (looked up on first use: the tracker is itself
        created inside the project's component lock)."""
        return backend(self.project).runs

    def start_run(self, experiment: str | None = None, name: str | None = None,
                  tags: Mapping[str, Any] | None = None, *, nested: bool = False,
                  run_id: str | None = None, description: str | None = None) -> ActiveRun:
        """Start a run (or resume one by ``run_id``) and make it the active run."""
        parent = lifecycle.active_run()
        if parent is not None and not nested and run_id is None:
            raise RunStateError(
                f"Run {short_id(parent.id)} ({parent.name}) is still active. End it first, or "
                "pass nested=True to start a child run inside it.")
        extra = records.stringify_tags(tags or {})
        if description:
            extra.update(records.stringify_tags({"mloop.description": description}))
        if name is not None:
            check_text(name, "run name", MAX_RUN_NAME, newlines=False, empty=False)
        if run_id is not None:
            run = self._resume(run_id)
            if extra:
                run.set_tags(extra)
        else:
            child_of = parent if nested else None
            run = self._create(experiment or (child_of.experiment if child_of else None), name,
                               child_of.id if child_of else None, extra)
        lifecycle.push(run)
        return run

    def create_run(self, experiment: str | None, name: str | None, parent_id: str | None,
                   tags: Mapping[str, str]) -> ActiveRun:
        """Create a run owned (heart-beaten) by this process without making it the active
        run: the pipeline engine's runs, whose work happens in step processes."""
        return self._create(experiment, name, parent_id, dict(tags))

    def _experiment(self, name: str | None) -> Experiment:
        name = name or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
        exp = self._experiments.get(name)
        if exp is None:
            exp = self._experiments[name] = get_or_create_experiment(self.project, name)
        return exp

    def _create(self, experiment: str | None, name: str | None, parent_id: str | None,
                tags: dict[str, str]) -> ActiveRun:
        exp = self._experiment(experiment)
        cap = self._capture()
        run_id = new_id()
        name = name or random_run_name()
        git = cap["git"]
        self.runs.create(NewRun(
            id=run_id, experiment_id=exp.id, name=name, start_time=now_ms(),
            parent_id=parent_id, user=cap["user"], command=cap["command"],
            seed=current_seed(), git_commit=git.commit, git_branch=git.branch,
            git_dirty=git.dirty, git_diff_digest=cap["diff_digest"],
            environment_id=cap["env_id"]), this_process(), tags=tags,
            environment=cap["env_row"])
        cap["env_row"] = None  # stored; later runs only reference it
        self.own(run_id)
        return ActiveRun(self, run_id, name, exp.name, parent_id)

    def _resume(self, run_id: str) -> ActiveRun:
        run = records.get_run(self.project, run_id)
        resumed = self.runs.resume(run.id, this_process())
        self.own(run.id)
        active = ActiveRun(self, run.id, run.name, run.experiment, run.parent_id)
        active._next_step.update({k: s + 1 for k, s in resumed.last_steps.items()})
        active._params.update(resumed.params)
        return active

    def _capture(self) -> dict[str, Any]:
        """The reproducibility record, captured on the first run of the process."""
        with self._capture_lock:
            if self._captured is None:
                s = self.project.settings
                info = env.capture_environment() if s.capture_packages else None
                git = env.capture_git(os.getcwd()) if s.capture_git else env.GitState()
                diff_digest = (self.project.objects.put_bytes(git.diff.encode())
                               if git.diff else None)
                self._captured = {
                    "user": env.current_user(), "command": env.command_line(), "git": git,
                    "diff_digest": diff_digest, "env_id": info.id if info else None,
                    "env_row": None if info is None else {
                        "id": info.id, "python": info.python, "platform": info.platform,
                        "packages": info.packages, "created_at": now_ms()},
                }
            return self._captured

    def forget(self, run: ActiveRun) -> None:
        """The run is no longer this process's: off the active stack, no more beats."""
        lifecycle.remove(run)
        self.disown(run.id)

    def own(self, run_id: str) -> None:
        """Beat for ``run_id`` until :meth:`disown` (it was created or resumed here)."""
        with self.heartbeat.lock:
            self._owned.add(run_id)
            if self._beat_handle is None:
                self._beat_handle = self.heartbeat.add(self._beat)

    def disown(self, run_id: str) -> None:
        """Stop beating for ``run_id``; call it before writing how the run ended, so no
        late beat can mark the ended run RUNNING again."""
        with self.heartbeat.lock:
            self._owned.discard(run_id)

    def _beat(self, now: int) -> None:
        self.runs.beat(list(self._owned), this_process(), now)

    def close(self) -> None:
        """End this project's active runs and flush the metric buffer."""
        for run in lifecycle.active_runs():
            if run.tracker is self:
                run.end(RunStatus.FINISHED)
        self.writer.close()


def tracker_for(project: Project) -> Tracker:
    """The project's tracker (one per project and process)."""
    tracker: Tracker = project.component("tracking", Tracker)
    return tracker
