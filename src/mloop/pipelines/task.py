"""One step, executed where the executor puts it: a process of its own or a Dask worker.

``python -m mloop.pipelines.task TASK RESULT`` reads a task (the step's function,
pickled; its inputs as stored values; its params; the tracking run to resume), runs the
step inside that run (so ``mloop.log_metric`` in the step lands there), stores its
outputs and writes the result (output refs, or the error and its traceback) as JSON.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.redact import redact

if TYPE_CHECKING:
    from mloop.project import Project


def execute(task: dict[str, Any], project: Project | None = None) -> dict[str, Any]:
    """Run the task in this process (in ``project``, default: the project at the task's
    root, opened here); never raises (the error is in the result)."""
    from mloop.pipelines import values
    from mloop.project import Project, set_project

    start = time.perf_counter()
    root = task["root"]
    if root not in sys.path:
        sys.path.insert(0, root)  # the project's own modules import as they do at home
    project = project or Project.open(root)
    set_project(project)
    try:
        fn = pickle.loads(task["fn"])
        from mloop.tracking.fluent import start_run

        with start_run(run_id=task["run_id"], project=project):
            args = {k: values.load(project, values.ValueRef.from_dict(v))
                    for k, v in task["inputs"].items()}
            out = fn(**args, **task["params"])
            names = task["outputs"]
            if len(names) == 1:
                produced = [out]
            elif isinstance(out, tuple) and len(out) == len(names):
                produced = list(out)
            else:
                raise TypeError(f"step {task['step']!r} declares outputs {names} but returned "
                                f"{type(out).__name__}")
            refs = {}
            for name, value in zip(names, produced, strict=True):
                kind = task["kinds"].get(name)
                annotation = (values.Model if kind == "model" else values.Report
                              if kind == "report" else None)
                refs[name] = values.store(project, name, value, annotation,
                                          task["run_id"], inputs=args).to_dict()
        return {"ok": True, "outputs": refs, "seconds": time.perf_counter() - start}
    except (Exception, SystemExit) as exc:  # the step's own failure, reported, not raised
        # stored and shown: a driver's error text can hold a DSN with its password
        return {"ok": False, "error": redact("".join(
                    traceback.format_exception_only(type(exc), exc)).strip()),
                "traceback": redact(traceback.format_exc()),
                "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None, project: Project | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    task_path, result_path = Path(args[0]), Path(args[1])
    task = pickle.loads(task_path.read_bytes())
    result = execute(task, project)
    if not result["ok"]:
        print(result["traceback"], file=sys.stderr, flush=True)
    tmp = result_path.with_name(f".{result_path.name}.tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, result_path)
    sys.stdout.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
