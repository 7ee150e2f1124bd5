"""The ``mloop`` entry point, and the one answer it gives before the CLI loads.

``mloop pipeline run`` (``mloop.yaml``'s stages, no options) after a run that succeeded
and changed nothing since: every stage is cached. After such a run the CLI writes a
snapshot (:func:`record`) of what the stages' keys and outputs rest on — the size, mtime
and inode of ``mloop.yaml``, ``params.yaml``, every dependency and every output (folders
file by file) — and this module, importing nothing but the standard library, compares
them. Unchanged: the run is recorded (every step cached) and the command ends in a few
tens of milliseconds, the time of a ``stat`` per file. Anything else — a changed file,
an option, another store — goes through the full engine, which decides step by step
and writes a new snapshot. The same trust in (size, mtime, inode) as ``mloop data
status``: a rewrite that keeps all three within one clock tick would be missed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SNAPSHOT = Path(".mloop") / "pipelines" / "noop.json"


def _project_root() -> Path | None:
    env = os.environ.get("MLOOP_PROJECT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".mloop").is_dir():
            return folder
    return None


def _stats(root: Path, paths: list[str]) -> dict[str, Any]:
    """(mtime_ns, size, inode) of each path; folders file by file, plus their listing."""
    out: dict[str, Any] = {}
    for rel in paths:
        path = root / rel
        try:
            st = path.stat()
        except OSError:
            out[rel] = None
            continue
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    full = Path(dirpath) / name
                    s = full.stat()
                    out[str(full.relative_to(root))] = [s.st_mtime_ns, s.st_size, s.st_ino]
            out[rel] = "dir"
        else:
            out[rel] = [st.st_mtime_ns, st.st_size, st.st_ino]
    return out


def _watched(meta: list[dict[str, Any]]) -> list[str]:
    paths = ["mloop.yaml", "params.yaml"]
    for m in meta:
        paths += list(m.get("deps", [])) + list(m.get("outs", []))
    return sorted(set(paths))


def watched_stats(root: Path, pipeline: Any) -> dict[str, Any]:
    """The stats the snapshot compares, taken before a run (see :func:`record`)."""
    return _stats(root, _watched([dict(s.meta) for s in pipeline.steps.values()]))


def record(root: Path, pipeline: Any, run: Any, before: dict[str, Any]) -> None:
    """After a successful run of mloop.yaml's stages: the snapshot the next no-op reads.

    The run's cache keys were taken from the files as they were before it (``before``):
    a source edited while it ran would make the snapshot vouch for a result built from
    the old content, so then no snapshot is written and the next run decides afresh.
    """
    from mloop.store.revisions import HEAD

    meta = [dict(s.meta) for s in pipeline.steps.values()]
    after = _stats(root, _watched(meta))
    outs = [o for m in meta for o in m.get("outs", [])]
    written = {p for p in after if any(p == o or p.startswith(o.rstrip("/") + "/")
                                       for o in outs)}
    if any(before.get(p) != v for p, v in after.items() if p not in written) or \
            any(p not in after for p in before if p not in written):
        forget(root)
        return
    snapshot = {
        "head": HEAD, "pipeline": run.pipeline, "stats": after,
        "meta": meta, "steps": [
            {"step": s.name, "key": s.key, "run_id": s.run_id,
             "outputs": json.dumps({k: v.to_dict() for k, v in s.outputs.items()})}
            for s in run.steps.values()],
        "store": os.environ.get("MLOOP_STORE_URI", ""),
    }
    path = root / SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(snapshot))
    os.replace(tmp, path)


def forget(root: Path) -> None:
    """Drop the snapshot (a run that changed or failed something)."""
    (root / SNAPSHOT).unlink(missing_ok=True)


def _noop(as_json: bool) -> int | None:
    """0 when nothing changed since the snapshot (and the run is recorded), else None."""
    root = _project_root()
    if root is None:
        return None
    try:
        snapshot = json.loads((root / SNAPSHOT).read_text())
    except (OSError, ValueError):
        return None
    if snapshot.get("store", "") != os.environ.get("MLOOP_STORE_URI", "") or \
            os.environ.get("MLOOP_STORE_URI") or os.environ.get("MLOOP_TRACKING_URI"):
        return None  # another store: let the full path open it
    config = root / ".mloop" / "config.toml"
    if config.is_file() and "uri" in config.read_text():
        import tomllib

        try:
            if tomllib.loads(config.read_text()).get("store", {}).get("uri"):
                return None  # a store elsewhere: the full path opens it
        except tomllib.TOMLDecodeError:
            return None
    if _stats(root, _watched(snapshot["meta"])) != snapshot["stats"]:
        return None
    db = root / ".mloop" / "mloop.db"
    if not db.is_file():
        return None
    return _record_run(db, snapshot, as_json)


def _record_run(db: Path, snapshot: dict[str, Any], as_json: bool) -> int | None:
    from mloop.core.ids import new_id
    from mloop.repositories.pipeline_states import PipelineStatus, StepStatus, record_cached_run
    from mloop.store.revisions import HEAD

    if snapshot.get("head") != HEAD:
        return None
    start = time.time()
    run_id = new_id()
    now = int(time.time() * 1000)
    if not record_cached_run(db, run_id, snapshot["pipeline"], snapshot["steps"],
                             head=HEAD, now=now):
        return None
    steps = snapshot["steps"]
    uri = f"pipelines:/{snapshot['pipeline']}/{run_id}"
    if as_json:  # the shape of PipelineRun.to_dict()
        print(json.dumps({
            "id": run_id, "uri": uri, "pipeline": snapshot["pipeline"],
            "status": str(PipelineStatus.SUCCEEDED),
            "run_id": None, "error": None, "trigger": None, "started_at": now,
            "finished_at": now, "models": [], "new_models": [],
            "steps": [{"step": s["step"], "status": str(StepStatus.CACHED), "key": s["key"],
                       "attempts": 0, "seconds": 0.0, "run_id": s["run_id"], "error": None,
                       "log": None, "outputs": json.loads(s["outputs"])}
                      for s in steps]}, indent=2))
        return 0
    n = len(steps)  # (the standard library only: no mloop.core.humanize here)
    print(f"pipeline {snapshot['pipeline']}: {n} step{'' if n == 1 else 's'}", file=sys.stderr)
    for s in steps:
        print(f"  ✓ {s['step']}: {StepStatus.CACHED}", file=sys.stderr)
    print(f"{uri}: {PipelineStatus.SUCCEEDED} ({len(steps)} {StepStatus.CACHED}) in "
          f"{time.time() - start:.1f} s (nothing changed since the last run)")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``mloop`` script."""
    args = sys.argv[1:] if argv is None else argv
    rest = [a for a in args if a not in ("-q", "--quiet")]  # no bars to draw here anyway
    if rest[:2] == ["pipeline", "run"] and rest[2:] in ([], ["--json"]) and \
            args.index("pipeline") == len(args) - len(rest):
        code = _noop(as_json=rest[2:] == ["--json"])
        if code is not None:
            sys.exit(code)
    from mloop.cli import main as full

    full(argv)
