"""Reading pipeline runs back: listings for ``mloop pipeline status``, one run for ``show``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mloop.errors import NotFoundError

if TYPE_CHECKING:
    from mloop.project import Project


def list_runs(project: Project, pipeline: str | None = None, *,
              limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first, with a count of steps by status."""
    from mloop.store.lite import lite

    where, params = ("WHERE pipeline = :p", {"p": pipeline}) if pipeline else ("", {})
    with lite(project).read() as q:
        runs = q.all(f"SELECT * FROM pipeline_runs {where} ORDER BY started_at DESC "
                     f"LIMIT {int(limit)}", params)
        for r in runs:
            counts = q.all("SELECT status, COUNT(*) AS n FROM pipeline_steps WHERE "
                           "pipeline_run_id = :id GROUP BY status", {"id": r["id"]})
            r["steps"] = {c["status"]: int(c["n"]) for c in counts}
            r["uri"] = f"pipelines:/{r['pipeline']}/{r['id']}"
    return runs


def get_run(project: Project, run_id: str) -> dict[str, Any]:
    """One run (a full id, or a unique suffix of 6+ characters) with its steps."""
    from mloop.store.lite import lite

    with lite(project).read() as q:
        rows = q.all("SELECT * FROM pipeline_runs WHERE id = :id", {"id": run_id})
        if not rows and len(run_id) >= 6:
            rows = q.all("SELECT * FROM pipeline_runs WHERE id LIKE :s",
                         {"s": f"%{run_id.replace('%', '').replace('_', '')}"})
        if len(rows) != 1:
            raise NotFoundError(f"No pipeline run {run_id!r}" + (" (ambiguous)" if rows else "")
                                + "; see `mloop pipeline status`.")
        run = rows[0]
        steps = q.all("SELECT * FROM pipeline_steps WHERE pipeline_run_id = :id "
                      "ORDER BY started_at, step", {"id": run["id"]})
    for s in steps:
        s["outputs"] = json.loads(s["outputs"]) if s["outputs"] else {}
    run["params"] = json.loads(run["params"])
    run["inputs"] = json.loads(run["inputs"])
    run["steps"] = steps
    run["uri"] = f"pipelines:/{run['pipeline']}/{run['id']}"
    return run
