"""MLflow's tracking routes over mloop's runs: experiments, runs, params, metrics, tags,
inputs, search and metric history (``/api/2.0/mlflow/...``)."""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.text import MAX_RUN_NAME, check_text
from mloop.errors import ExperimentNotFoundError, RunNotFoundError
from mloop.repositories import backend
from mloop.repositories.runs import NewRun, RunStatus, SearchQuery
from mloop.server.mlflow import convert, filters, wire
from mloop.server.mlflow.routing import Args, Routes, identity_of
from mloop.tracking import experiments as _experiments
from mloop.tracking import records
from mloop.tracking.filter import parse_filter, parse_order_by

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.repositories.experiments import Experiment

API = "/api/2.0/mlflow"
MAX_SEARCH = 50_000  # runs per page, as MLflow's server allows
_VIEWS = {"1": "ACTIVE_ONLY", "2": "DELETED_ONLY", "3": "ALL"}
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}


def get_experiment(project: Project, experiment_id: str) -> Experiment:
    """The experiment an MLflow id names ("0": mloop's default experiment)."""
    # experiments are never renamed nor removed: one found is remembered (a run created
    # is an experiment looked up)
    seen: dict[str, Experiment] = project.component("mlflow-experiments", lambda p: {})
    found = seen.get(experiment_id)
    if found is not None:
        return found
    if experiment_id == convert.DEFAULT_ID:
        found = _experiments.get_or_create_experiment(project, convert.DEFAULT_NAME)
    else:
        found = backend(project).experiments.get(experiment_id)
        if found.id != experiment_id:  # the repository also matches names
            raise ExperimentNotFoundError(f"No experiment with id={experiment_id}.")
    if len(seen) < 10_000:
        seen[experiment_id] = found
    return found


def run_id_of(project: Project, args: Args) -> str:
    """The full id of the run a request names (``run_id``, or the older ``run_uuid``)."""
    raw = wire.text(args, "run_id", required=False) or wire.text(args, "run_uuid")
    assert raw is not None
    if len(raw) != 32:  # MLflow's ids are whole; a prefix is mloop's CLI convenience
        raise RunNotFoundError(f"Run with id={raw} not found.")
    known: KnownRuns = project.component("mlflow-known-runs", KnownRuns)
    if raw in known:  # a training loop names one run thousands of times
        return raw
    found = records.resolve_run_id(project, raw)
    known.add(found)
    return found


class Reaper:
    """Marks runs whose owning process died as KILLED (what every mloop read does), at
    most every few seconds: the mlflow client reads its run at the end of each one."""

    EVERY = 5.0

    def __init__(self, project: Project) -> None:
        self._runs = backend(project).runs
        self._last = -self.EVERY
        self._lock = threading.Lock()

    def now_and_then(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.EVERY:
                return
            self._last = now
        self._runs.reap()


class KnownRuns:
    """Ids of runs that exist (runs are never removed from the store, only marked
    deleted), so a request naming one needs no look-up; bounded, oldest forgotten."""

    SIZE = 4096

    def __init__(self, project: Project) -> None:
        self._ids: dict[str, None] = {}
        self._lock = threading.Lock()

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._ids

    def add(self, run_id: str) -> None:
        with self._lock:
            self._ids[run_id] = None
            if len(self._ids) > self.SIZE:
                self._ids.pop(next(iter(self._ids)))


def user_of(args: Args, claimed: str | None) -> str:
    """Who a new run is recorded as: the token's holder behind authentication, else the
    name the client sends (the local user of an auth-less server)."""
    identity = identity_of(args)
    if identity.token_id is not None:
        return identity.name
    return claimed or identity.name


def metric_points(run_id: str, metrics: list[dict[str, Any]]) -> list[Any]:
    points = []
    now = now_ms()
    for m in metrics:
        key = records.check_key(wire.need(m, "key"), "metric")
        value = wire.number(m.get("value"), key)
        points.append((run_id, key, wire.integer(m, "step", 0) or 0,
                       wire.integer(m, "timestamp", now) or now,
                       None if math.isnan(value) else value))
    return points


def new_points(project: Project, run_id: str, metrics: list[dict[str, Any]]) -> list[Any]:
    """The points to store. ``log_model`` links a run's metrics to the model by logging
    them again with a ``model_id``: such a point already stored is not stored twice (as
    MLflow's store keeps (key, step, timestamp, value) unique)."""
    points = metric_points(run_id, metrics)
    if not any(m.get("model_id") for m in metrics):
        return points
    runs = backend(project).runs
    seen: dict[str, set[Any]] = {}
    kept = []
    for metric, point in zip(metrics, points, strict=True):
        key = point[1]
        if metric.get("model_id"):
            if key not in seen:
                seen[key] = set(runs.metric_history(run_id, key))
            if (point[2], point[3], point[4]) in seen[key]:
                continue
        kept.append(point)
    return kept


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise wire.invalid("Invalid page_token: pass the next_page_token unchanged.") from None
    if offset < 0:
        raise wire.invalid("Invalid page_token.")
    return offset


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def register(routes: Routes) -> None:
    """Add the tracking routes."""
    project = routes.project
    runs = backend(project).runs

    # -- experiments --------------------------------------------------------------------

    @routes.get(f"{API}/experiments/get-by-name")
    def experiment_by_name(args: Args) -> Args:
        name = wire.need(args, "experiment_name")
        if name == "Default":  # the name MLflow gives experiment "0"
            name = convert.DEFAULT_NAME
        try:
            found = backend(project).experiments.get(name)
        except ExperimentNotFoundError:
            found = None
        if found is None or found.name != name:
            raise wire.not_found(f"Could not find experiment with name '{name}'")
        return {"experiment": convert.experiment(found)}

    @routes.get(f"{API}/experiments/get")
    def experiment_by_id(args: Args) -> Args:
        found = get_experiment(project, wire.need(args, "experiment_id"))
        return {"experiment": convert.experiment(found)}

    @routes.post(f"{API}/experiments/create")
    def create_experiment(args: Args) -> Args:
        name = wire.need(args, "name")
        try:
            backend(project).experiments.get(name)
        except ExperimentNotFoundError:
            pass
        else:
            raise wire.exists(f"Experiment '{name}' already exists.")
        found = _experiments.get_or_create_experiment(project, name)
        return {"experiment_id": found.id}

    def search_experiments(args: Args) -> Args:
        wanted = filters.clauses(wire.text(args, "filter", required=False), ("name",))
        found = [e for e in _experiments.list_experiments(project)
                 if filters.keep(wanted, {"name": e.name})]
        view = str(args.get("view_type") or "ACTIVE_ONLY")
        if _VIEWS.get(view, view) == "DELETED_ONLY":
            found = []
        return wire.clean({"experiments": [convert.experiment(e) for e in found]})

    routes.add("POST", f"{API}/experiments/search", "reader", search_experiments)
    routes.add("GET", f"{API}/experiments/search", "reader", search_experiments)

    # -- runs ---------------------------------------------------------------------------

    @routes.post(f"{API}/runs/create")
    def create_run(args: Args) -> Args:
        exp = get_experiment(project, wire.text(args, "experiment_id", required=False)
                             or convert.DEFAULT_ID)
        tags = records.stringify_tags(wire.key_values(args, "tags"))
        name = (wire.text(args, "run_name", required=False) or tags.get("mlflow.runName")
                or _random_name())
        check_text(name, "run name", MAX_RUN_NAME, newlines=False, empty=False)
        tags["mlflow.runName"] = name
        parent = tags.get("mlflow.parentRunId") or None
        if parent is not None:
            parent = runs.get(records.resolve_run_id(project, parent)).id
        run_id = new_id()
        user = user_of(args, wire.text(args, "user_id", required=False)
                       or tags.get("mlflow.user"))
        if identity_of(args).token_id is not None:
            tags["mlflow.user"] = user  # who the token says, not who the client claims
        new = NewRun(
            id=run_id, experiment_id=exp.id, name=name,
            start_time=wire.integer(args, "start_time") or now_ms(), parent_id=parent,
            user=user,
            command=tags.get("mlflow.source.name"), seed=None,
            git_commit=tags.get("mlflow.source.git.commit"),
            git_branch=tags.get("mlflow.source.git.branch"), git_dirty=None,
            git_diff_digest=None, environment_id=None)
        runs.create(new, None, tags=tags)
        return {"run": convert.new_run(new, tags)}

    @routes.get(f"{API}/runs/get")
    def get_run(args: Args) -> Args:
        run_id = run_id_of(project, args)
        reaper: Reaper = project.component("mlflow-reaper", Reaper)
        reaper.now_and_then()
        return {"run": convert.run(project, runs.get(run_id))}

    @routes.post(f"{API}/runs/update")
    def update_run(args: Args) -> Args:
        run_id = run_id_of(project, args)
        status = wire.text(args, "status", required=False)
        if status is not None:
            if status not in _STATUSES:
                raise wire.invalid(f"Invalid run status {status!r}.")
            if status in ("RUNNING", "SCHEDULED"):
                runs.resume(run_id, None)
            else:
                runs.set_status(run_id, RunStatus(status), wire.integer(args, "end_time"))
        new_name = wire.text(args, "run_name", required=False)
        if new_name is not None:
            rename(run_id, new_name)
        return {"run_info": convert.run_info(runs.get(run_id))}

    @routes.post(f"{API}/runs/delete")
    def delete_run(args: Args) -> Args:
        runs.set_deleted([run_id_of(project, args)], True)
        return {}

    @routes.post(f"{API}/runs/restore")
    def restore_run(args: Args) -> Args:
        runs.set_deleted([run_id_of(project, args)], False)
        return {}

    @routes.post(f"{API}/runs/log-metric")
    def log_metric(args: Args) -> Args:
        runs.write_points(new_points(project, run_id_of(project, args), [args]))
        return {}

    @routes.post(f"{API}/runs/log-parameter")
    def log_param(args: Args) -> Args:
        run_id = run_id_of(project, args)
        key = wire.need(args, "key")
        runs.log_params(run_id, records.stringify_params({key: args.get("value", "")}))
        return {}

    def rename(run_id: str, name: str) -> None:
        """A new run name, kept as mloop's name and MLflow's ``mlflow.runName`` tag."""
        check_text(name, "run name", MAX_RUN_NAME, newlines=False, empty=False)
        runs.rename(run_id, name)
        runs.set_tags(run_id, {"mlflow.runName": name})

    @routes.post(f"{API}/runs/set-tag")
    def set_tag(args: Args) -> Args:
        run_id = run_id_of(project, args)
        key = wire.need(args, "key")
        tag = records.stringify_tags({key: args.get("value", "")})
        if key == "mlflow.runName":  # MLflow renames a run so
            rename(run_id, tag[key])
        else:
            runs.set_tags(run_id, tag)
        return {}

    @routes.post(f"{API}/runs/log-batch")
    def log_batch(args: Args) -> Args:
        run_id = run_id_of(project, args)
        params = records.stringify_params(wire.key_values(args, "params"))
        tags = records.stringify_tags(wire.key_values(args, "tags"))
        points = new_points(project, run_id, wire.items(args, "metrics"))
        if "mlflow.runName" in tags:
            rename(run_id, tags.pop("mlflow.runName"))
        if params:
            runs.log_params(run_id, params)
        if tags:
            runs.set_tags(run_id, tags)
        runs.write_points(points)
        return {}

    @routes.post(f"{API}/runs/log-inputs")
    def log_inputs(args: Args) -> Args:
        run_id = run_id_of(project, args)
        kept = {}
        for item in wire.items(args, "datasets"):
            if not isinstance(item.get("dataset"), dict):
                raise wire.invalid("Each dataset input needs a 'dataset'.")
            kept[convert.input_tag(item)] = json.dumps(item, sort_keys=True)
        if kept:
            runs.set_tags(run_id, records.stringify_tags(kept))
        return {}

    @routes.get(f"{API}/metrics/get-history")
    def metric_history(args: Args) -> Args:
        run_id = run_id_of(project, args)
        key = wire.need(args, "metric_key")
        points = runs.metric_history(run_id, key)
        offset = _page_offset(wire.text(args, "page_token", required=False))
        limit = wire.integer(args, "max_results")
        page = points[offset:] if limit is None else points[offset:offset + limit]
        more = limit is not None and offset + limit < len(points)
        return wire.clean({
            "metrics": [{"key": key, "value": wire.double(v), "timestamp": t, "step": s}
                        for s, t, v in page],
            "next_page_token": _page_token(offset + len(page)) if more else None})

    def search_runs(args: Args) -> Args:
        return _search(project, args)

    routes.add("POST", f"{API}/runs/search", "reader", search_runs)


def _random_name() -> str:
    from mloop.tracking.tracker import random_run_name

    return random_run_name()


def _search(project: Project, args: Args) -> Args:
    ids = tuple(get_experiment(project, e).id for e in wire.strings(args, "experiment_ids"))
    view = str(args.get("run_view_type") or "ACTIVE_ONLY")
    view = _VIEWS.get(view, view)
    limit = wire.integer(args, "max_results", 1000) or 1000
    if not 1 <= limit <= MAX_SEARCH:
        raise wire.invalid(f"max_results must be between 1 and {MAX_SEARCH}.")
    order = wire.strings(args, "order_by") or ["attributes.start_time DESC"]
    offset = _page_offset(wire.text(args, "page_token", required=False))
    runs = backend(project).runs
    runs.reap()
    query = SearchQuery(parse_filter(wire.text(args, "filter", required=False)),
                        tuple(parse_order_by(order)), ids or None, view != "ACTIVE_ONLY",
                        limit, offset)
    page = runs.search(query)
    exp_ids = {e.name: e.id for e in _experiments.list_experiments(project)}
    by_run: dict[str, dict[str, list[Any]]] = {}
    for prefix, rows in page.kv.items():
        for run_id, key, value in rows:
            by_run.setdefault(run_id, {}).setdefault(prefix, []).append((key, value))
    out = []
    for run_id, exp_name, name, status, start, end, parent, user in page.rows:
        kv = by_run.get(run_id, {})
        tags = dict(kv.get("tags", []))
        info = wire.clean({
            "run_id": run_id, "run_uuid": run_id, "run_name": name,
            "experiment_id": exp_ids.get(exp_name, ""), "user_id": user or "",
            "status": status, "start_time": start, "end_time": end,
            "artifact_uri": convert.artifact_root(exp_ids.get(exp_name, ""), run_id),
            "lifecycle_stage": "active"})
        visible = {k: v for k, v in tags.items() if not k.startswith(convert.HIDDEN)}
        visible.setdefault("mlflow.runName", name)
        if parent:
            visible.setdefault("mlflow.parentRunId", parent)
        data = wire.clean({
            "metrics": [{"key": k, "value": wire.double(None if v is None else float(v)),
                         "timestamp": 0, "step": 0} for k, v in sorted(kv.get("metrics", []))],
            "params": wire.pairs(dict(kv.get("params", []))), "tags": wire.pairs(visible)})
        out.append({"info": info, "data": data,
                    "inputs": wire.clean({"dataset_inputs": convert.dataset_inputs(tags)})})
    if view != "ACTIVE_ONLY":  # rows do not say which runs are deleted: ask (rare views)
        out = _mark_deleted(project, out, only=view == "DELETED_ONLY")
    return wire.clean({"runs": out,
                       "next_page_token": _page_token(offset + len(page.rows))
                       if page.more else None})


def _mark_deleted(project: Project, found: list[Args], *, only: bool) -> list[Args]:
    runs = backend(project).runs
    kept = []
    for item in found:
        deleted = runs.get(item["info"]["run_id"]).deleted
        if deleted:
            item["info"]["lifecycle_stage"] = "deleted"
        if deleted or not only:
            kept.append(item)
    return kept
