"""mloop: one tool around the whole ML loop.

>>> import mloop
>>> with mloop.start_run(experiment="churn") as run:        # doctest: +SKIP
...     mloop.log_params({"C": 1.0})
...     mloop.log_metric("loss", 0.3, step=1)

Attributes are imported on first use, so ``import mloop`` (and the CLI) start fast.
"""

from __future__ import annotations

import importlib

from mloop._version import __version__

TYPE_CHECKING = False  # importing typing costs ~12 ms of every command's start-up

_LAZY: dict[str, str] = {
    "ActiveRun": "mloop.tracking.active",
    "Experiment": "mloop.tracking.model",
    "MloopError": "mloop.errors",
    "Project": "mloop.project",
    "Run": "mloop.tracking.model",
    "RunStatus": "mloop.tracking.model",
    "active_run": "mloop.tracking.fluent",
    "autolog": "mloop.tracking.autolog",
    "current_project": "mloop.project",
    "delete_runs": "mloop.tracking.fluent",
    "download_artifacts": "mloop.tracking.fluent",
    "end_run": "mloop.tracking.fluent",
    "flush": "mloop.tracking.fluent",
    "fsck": "mloop.data.fsck",
    "get_experiment": "mloop.tracking.fluent",
    "get_run": "mloop.tracking.fluent",
    "init": "mloop.project",
    "list_experiments": "mloop.tracking.fluent",
    "log_input": "mloop.tracking.fluent",
    "log_artifact": "mloop.tracking.fluent",
    "log_artifacts": "mloop.tracking.fluent",
    "log_dict": "mloop.tracking.fluent",
    "log_figure": "mloop.tracking.fluent",
    "log_metric": "mloop.tracking.fluent",
    "log_metrics": "mloop.tracking.fluent",
    "log_param": "mloop.tracking.fluent",
    "log_params": "mloop.tracking.fluent",
    "log_text": "mloop.tracking.fluent",
    "read_artifact": "mloop.tracking.fluent",
    "restore_runs": "mloop.tracking.fluent",
    "search_runs": "mloop.tracking.fluent",
    "seed_everything": "mloop.tracking.seed",
    "set_experiment": "mloop.tracking.fluent",
    "set_project": "mloop.project",
    "set_tag": "mloop.tracking.fluent",
    "set_tags": "mloop.tracking.fluent",
    "start_run": "mloop.tracking.fluent",
    "log_model": "mloop.registry",
    "register_model": "mloop.registry",
    "load_model": "mloop.registry",
    "get_model_version": "mloop.registry",
    "list_models": "mloop.registry",
    "list_model_versions": "mloop.registry",
    "set_alias": "mloop.registry",
    "evaluate": "mloop.evaluation",
    "batch_predict": "mloop.serving",
    "lookup": "mloop.serving",
    "submit": "mloop.serving",
    "result": "mloop.serving",
    "set_model_tag": "mloop.registry",
    "approve_model": "mloop.registry",
    "archive_model": "mloop.registry",
    "reject_model": "mloop.registry",
    "delete_model_version": "mloop.registry",
    "model_events": "mloop.registry",
    "log_feedback": "mloop.monitoring",
    "Dataset": "mloop.pipelines",
    "Model": "mloop.pipelines",
    "Pipeline": "mloop.pipelines",
    "Report": "mloop.pipelines",
    "step": "mloop.pipelines",
}

_SUBMODULES = ("automation", "data", "deploy", "errors", "evaluation", "fairness", "lineage",
               "metrics", "monitoring", "pipelines", "registry")

__all__ = [
    "ActiveRun",
    "Dataset",
    "Experiment",
    "MloopError",
    "Model",
    "Pipeline",
    "Project",
    "Report",
    "Run",
    "RunStatus",
    "__version__",
    "active_run",
    "approve_model",
    "archive_model",
    "autolog",
    "batch_predict",
    "current_project",
    "delete_model_version",
    "delete_runs",
    "download_artifacts",
    "end_run",
    "evaluate",
    "flush",
    "fsck",
    "get_experiment",
    "get_model_version",
    "get_run",
    "init",
    "list_experiments",
    "list_model_versions",
    "list_models",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_feedback",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "lookup",
    "model_events",
    "read_artifact",
    "register_model",
    "reject_model",
    "restore_runs",
    "result",
    "search_runs",
    "seed_everything",
    "set_alias",
    "set_experiment",
    "set_model_tag",
    "set_project",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "submit",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"mloop.{name}")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from typing import Any

    from mloop.data.fsck import fsck
    from mloop.errors import MloopError
    from mloop.project import Project, current_project, init, set_project
    from mloop.tracking.active import ActiveRun
    from mloop.tracking.autolog import autolog
    from mloop.tracking.fluent import (
        active_run,
        delete_runs,
        download_artifacts,
        end_run,
        flush,
        get_experiment,
        get_run,
        list_experiments,
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        read_artifact,
        restore_runs,
        search_runs,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
    )
    from mloop.tracking.model import Experiment, Run, RunStatus
    from mloop.tracking.seed import seed_everything
