"""Monitoring: data drift, concept drift, live performance, alerts.

>>> rep = mloop.monitoring.drift(reference_df, current_df)       # doctest: +SKIP
>>> rep.dataset_drift, rep.columns["age"].p_value                # doctest: +SKIP
>>> det = mloop.monitoring.ADWIN()                               # doctest: +SKIP
>>> det.update(0.0)                                              # doctest: +SKIP
False
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.monitoring.alerting import Alert
    from mloop.monitoring.feedback import FeedbackResult
    from mloop.monitoring.live import PerformanceReport
    from mloop.monitoring.runner import CheckResult
    from mloop.project import Project

_LAZY: dict[str, str] = {
    "ADWIN": "mloop.monitoring.detectors",
    "DDM": "mloop.monitoring.detectors",
    "EDDM": "mloop.monitoring.detectors",
    "KSWIN": "mloop.monitoring.detectors",
    "PageHinkley": "mloop.monitoring.detectors",
    "Detector": "mloop.monitoring.detectors",
    "detector": "mloop.monitoring.detectors",
    "ColumnDrift": "mloop.monitoring.datadrift",
    "DriftReport": "mloop.monitoring.datadrift",
    "drift": "mloop.monitoring.datadrift",
    "Profile": "mloop.monitoring.profile",
    "register_test": "mloop.monitoring.stattests",
    "known_tests": "mloop.monitoring.stattests",
}

__all__ = [
    "ADWIN",
    "DDM",
    "EDDM",
    "KSWIN",
    "ColumnDrift",
    "Detector",
    "DriftReport",
    "PageHinkley",
    "Profile",
    "alerts",
    "check",
    "detector",
    "drift",
    "known_tests",
    "log_feedback",
    "performance",
    "register_test",
    "resolve_alert",
]


def _p(project: Project | None) -> Project:
    from mloop.project import current_project

    return project if project is not None else current_project()


def log_feedback(request_id: str, label: Any, *, row: int | None = None,
                 project: Project | None = None, server: str | None = None
                 ) -> FeedbackResult:
    """Record the true outcome of a served prediction (a list: one label per row of the
    request); returns how many labels were stored and how many no logged prediction has
    yet (they are joined when it is logged). Sending a label again replaces it.

    ``server="http://host:8080"`` sends it to a running ``mloop serve`` instead of the
    local project, with the token from ``MLOOP_TOKEN`` or ``mloop token login``."""
    from mloop.monitoring.feedback import entries, send
    from mloop.monitoring.feedback import log_feedback as save

    if server is not None:
        return send(server, entries(request_id, label, row))
    return save(_p(project), request_id, label, row=row)


def performance(model: str, *, window: str | int = "1h", max_drop: float = 0.05,
                min_labels: int = 30, project: Project | None = None) -> PerformanceReport:
    """Live metrics of each version of ``model`` over the last ``window`` (labelled rows
    only) against what its latest evaluation measured."""
    from mloop.monitoring.live import performance as measure

    return measure(_p(project), model, window=window, max_drop=max_drop,
                   min_labels=min_labels)


def check(models: list[str] | None = None, *,
          project: Project | None = None) -> list[CheckResult]:
    """Run the rules of ``.mloop/monitoring.yaml`` once for every monitored model."""
    from mloop.monitoring.runner import check as run_check

    return run_check(_p(project), models=models)


def alerts(*, open_only: bool = False, model: str | None = None, limit: int = 100,
           project: Project | None = None) -> list[Alert]:
    """Stored alerts, newest first (``model``: a name or ``models:/name/version``)."""
    from mloop.monitoring.alerting import list_alerts

    p = _p(project)
    subject = None
    if model is not None:
        from mloop.registry.models import get_version, parse_model_ref

        parsed = parse_model_ref(model)
        if isinstance(parsed, tuple):  # a bare name: every version
            subject = f"models:/{parsed[0]}/"
        elif parsed.alias is not None:  # an alias: the version it names now
            subject = get_version(p, model).uri
        else:
            subject = f"models:/{parsed.name}/{parsed.version}"
    return list_alerts(p, open_only=open_only, subject=subject, limit=limit)


def resolve_alert(alert_id: str, *, project: Project | None = None) -> Alert:
    """Mark an alert resolved (it opens again if its rule keeps firing)."""
    from mloop.monitoring.alerting import resolve

    return resolve(_p(project), alert_id)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mloop.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
