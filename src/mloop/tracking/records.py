"""Reading and changing stored runs: tracking's side of the runs repository.

The statements are :mod:`mloop.repositories.runs_sql`'s; here are the checks on what
users log (keys, values) and the calls the rest of mloop makes by project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mloop.core.text import MAX_KEY, MAX_VALUE, check_text, text_problem
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.repositories import backend
from mloop.repositories.runs import Run, resolve_run_id

# The statements that join a caller's transaction, as an active run uses them (ending
# a run after its last metrics, refusing a param logged twice with two values).
from mloop.repositories.runs_sql import insert_params, raise_on_conflict, set_status

__all__ = ["check_key", "check_value", "get_run", "insert_params", "raise_on_conflict",
           "reap_runs", "resolve_run_id", "set_deleted", "set_status", "stringify_params",
           "stringify_tags"]

def get_run(project: Project, run_id: str) -> Run:
    """A run with its params, latest metrics, tags and artifact list."""
    run_id = resolve_run_id(project, run_id)
    reap_runs(project)
    return backend(project).runs.get(run_id)


def check_key(key: str, what: str) -> str:
    """Validate a param/metric/tag key: non-empty, at most 250 characters, one line, no
    NUL, valid Unicode (what both databases store and give back unchanged)."""
    return check_text(key, f"{what} name", MAX_KEY, newlines=False, empty=False)


def check_value(key: str, value: Any, what: str) -> str:
    """A param or tag value as stored: ``str(value)``, checked like a key but multi-line."""
    text = value if isinstance(value, str) else str(value)
    problem = text_problem(text, MAX_VALUE)
    if problem is not None:
        long = len(text) > MAX_VALUE
        raise InvalidInputError(
            f"Invalid value of {what} {key!r}: {problem}. "
            + ("Log long values as an artifact with log_text or log_dict." if long else
               "Store valid UTF-8 text without NUL characters (encode binary data, e.g. "
               "as hex or base64)."))
    return text


def stringify_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Params as stored: checked keys, values as checked strings."""
    return {check_key(key, "param"): check_value(key, value, "param")
            for key, value in values.items()}


def stringify_tags(values: Mapping[str, Any]) -> dict[str, str]:
    """Tags as stored: checked keys, values as checked strings."""
    return {check_key(key, "tag"): check_value(key, value, "tag")
            for key, value in values.items()}


# -- liveness: runs whose process died (see mloop.core.owner) ------------------------

def reap_runs(project: Project) -> list[str]:
    """Mark RUNNING runs whose owner died as KILLED; returns their ids (see
    :meth:`mloop.repositories.runs_sql.SqlRuns.reap`)."""
    return backend(project).runs.reap()


def set_deleted(project: Project, run_ids: Iterable[str], deleted: bool) -> list[str]:
    """Soft-delete (or restore) runs; returns the full ids. Deleted runs leave listings."""
    ids = [resolve_run_id(project, r) for r in run_ids]
    backend(project).runs.set_deleted(ids, deleted)
    return ids
