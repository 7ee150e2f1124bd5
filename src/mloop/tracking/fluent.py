"""The module-level tracking API: ``mloop.start_run``, ``mloop.log_metric`` and friends.

Each function works on the active run of this process (see :mod:`lifecycle`) or, for
reads, on the current project (:func:`mloop.project.current_project`). Logging without
an active run starts one, as users of other trackers expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.uris import RunURI, parse_uri
from mloop.errors import InvalidURIError
from mloop.project import Project, current_project
from mloop.tracking import artifacts as _artifacts
from mloop.tracking import experiments as _experiments
from mloop.tracking import lifecycle, records
from mloop.tracking import search as _search
from mloop.tracking.active import ActiveRun
from mloop.tracking.model import ArtifactInfo, Experiment, Run, RunStatus
from mloop.tracking.tracker import tracker_for

if TYPE_CHECKING:
    import pandas as pd

_experiment_name: str | None = None


def _project(project: Project | None) -> Project:
    return project if project is not None else current_project()


def set_experiment(name: str | None) -> None:
    """Use experiment ``name`` for runs started without one (``None``: back to default)."""
    global _experiment_name
    _experiment_name = name


def start_run(experiment: str | None = None, name: str | None = None,
              tags: Mapping[str, Any] | None = None, *, nested: bool = False,
              run_id: str | None = None, description: str | None = None,
              project: Project | None = None) -> ActiveRun:
    """Start a run and make it active; use it as a context manager or call :func:`end_run`.

    ``nested=True`` starts a child of the active run. ``run_id`` resumes an ended run.
    The status is set for you: FINISHED, FAILED on an exception, KILLED on Ctrl-C or
    SIGTERM.
    """
    tracker = tracker_for(_project(project))
    return tracker.start_run(experiment or _experiment_name, name, tags, nested=nested,
                             run_id=run_id, description=description)


def active_run() -> ActiveRun | None:
    """The innermost active run, or ``None``."""
    return lifecycle.active_run()


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the innermost active run (no-op when there is none)."""
    run = lifecycle.active_run()
    if run is not None:
        run.end(status)


def active_or_new_run() -> ActiveRun:
    """The innermost active run, or a new one when none is active (as ``log_*`` do)."""
    return lifecycle.active_run() or start_run()


_run = active_or_new_run


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log one metric point to the active run (buffered; durable at the next flush)."""
    _run().log_metric(key, value, step)


def log_metrics(values: Mapping[str, float], step: int | None = None) -> None:
    """Log several metrics at one step."""
    _run().log_metrics(values, step)


def log_param(key: str, value: Any) -> None:
    """Log one param (immutable: a different value later is an error)."""
    _run().log_param(key, value)


def log_params(values: Mapping[str, Any]) -> None:
    """Log several params at once."""
    _run().log_params(values)


def set_tag(key: str, value: Any) -> None:
    """Set one tag on the active run."""
    _run().set_tag(key, value)


def set_tags(values: Mapping[str, Any]) -> None:
    """Set several tags on the active run."""
    _run().set_tags(values)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Store a file or folder with the active run."""
    return _run().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Store a folder's contents with the active run."""
    return _run().log_artifacts(local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    """Store text as an artifact file of the active run."""
    return _run().log_text(text, artifact_file)


def log_dict(obj: Any, artifact_file: str) -> ArtifactInfo:
    """Store a dict as JSON/YAML with the active run."""
    return _run().log_dict(obj, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> ArtifactInfo:
    """Store a matplotlib figure with the active run."""
    return _run().log_figure(figure, artifact_file)


def flush() -> None:
    """Write every buffered metric point of the current project now."""
    run = lifecycle.active_run()
    tracker = run.tracker if run is not None else tracker_for(current_project())
    tracker.writer.flush()


def record_seed(seed: int) -> None:
    """Called by ``seed_everything``: store the seed on the active run, if any."""
    run = lifecycle.active_run()
    if run is not None:
        run.set_seed(seed)


def get_run(run_id: str, *, project: Project | None = None) -> Run:
    """A stored run by id (or unique id prefix), with params, latest metrics, tags, artifacts."""
    p = _project(project)
    active = lifecycle.active_run()
    if active is not None and active.tracker.project is p:
        active.tracker.writer.flush()  # reads see everything logged so far
    return records.get_run(p, run_id)


def search_runs(experiment: str | Sequence[str] | None = None, filter: str | None = None,
                order_by: list[str] | tuple[str, ...] | str | None = None,
                max_results: int | None = _search.DEFAULT_MAX_RESULTS,
                page_token: str | None = None, *, include_deleted: bool = False,
                project: Project | None = None) -> pd.DataFrame:
    """Runs matching a filter such as ``"metrics.acc > 0.9 and params.model = 'logreg'"``.

    See :mod:`mloop.tracking.filter` for the language. Returns a DataFrame;
    ``df.attrs["next_page_token"]`` is set when more runs remain.
    """
    p = _project(project)
    for run in lifecycle.active_runs():
        if run.tracker.project is p:
            run.tracker.writer.flush()
            break
    return _search.search_runs(p, experiment=experiment, filter=filter, order_by=order_by,
                               max_results=max_results, page_token=page_token,
                               include_deleted=include_deleted)


def list_experiments(*, project: Project | None = None) -> list[Experiment]:
    """Every experiment with its run count."""
    return _experiments.list_experiments(_project(project))


def get_experiment(name_or_id: str, *, project: Project | None = None) -> Experiment:
    """One experiment by name or id."""
    return _experiments.get_experiment(_project(project), name_or_id)


def delete_runs(run_ids: Sequence[str], *, project: Project | None = None) -> list[str]:
    """Soft-delete runs (hidden from listings; ``restore_runs`` brings them back)."""
    return records.set_deleted(_project(project), run_ids, True)


def restore_runs(run_ids: Sequence[str], *, project: Project | None = None) -> list[str]:
    """Undo :func:`delete_runs`."""
    return records.set_deleted(_project(project), run_ids, False)


def _run_uri(uri: str) -> RunURI:
    parsed = parse_uri(uri)
    if not isinstance(parsed, RunURI):
        raise InvalidURIError(f"{uri!r} is not a run artifact URI; expected runs:/<run_id>/<path>.")
    return parsed


def download_artifacts(uri: str, dst_path: str | Path = ".", *,
                       project: Project | None = None) -> Path:
    """Copy ``runs:/<run_id>/<path>`` (a file or folder) into ``dst_path``, verified."""
    p = _project(project)
    ref = _run_uri(uri)
    run_id = records.resolve_run_id(p, ref.run_id)
    return _artifacts.download(p, run_id, ref.path, dst_path)


def read_artifact(uri: str, *, project: Project | None = None) -> bytes:
    """The verified bytes of the artifact file ``runs:/<run_id>/<path>``."""
    p = _project(project)
    ref = _run_uri(uri)
    return _artifacts.read_artifact(p, records.resolve_run_id(p, ref.run_id), ref.path)


def log_input(ref: str, *, project: Project | None = None) -> str:
    """Record that the active run read dataset version ``ref`` (``train@2``); returns its URI.

    ``mloop.data.load`` inside a run records this by itself.
    """
    from mloop import data, lineage

    p = _project(project)
    version = data.get(ref, project=p)
    lineage.add_edge(p, version.uri, f"runs:/{_run().id}", "input")
    return version.uri
