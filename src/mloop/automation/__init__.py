"""Continuous training: triggers start pipelines, a policy promotes what they train.

>>> import mloop.automation
>>> outcomes = mloop.automation.check()                     # doctest: +SKIP
>>> [(o.pipeline, o.status) for o in outcomes]              # doctest: +SKIP
[('churn-training', 'promoted')]
>>> mloop.automation.history()[0].reasons                   # doctest: +SKIP

What to automate lives in ``.mloop/automation.yaml`` (see :mod:`mloop.automation.config`
for every key): per pipeline its triggers (cron schedule, new dataset version, monitoring
alert), a cooldown, a data-validation gate and a promotion policy. Every decision is
recorded in the store with its reasons (``mloop automate history``). Every function
takes ``project=`` (default: the current project).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from mloop.project import Project, current_project

if TYPE_CHECKING:
    from mloop.automation.config import AutomationConfig, PromotionPolicy
    from mloop.automation.promotion import PromotionResult
    from mloop.automation.runner import Outcome
    from mloop.automation.scheduler import OnOutcomes
    from mloop.automation.state import Decision

__all__ = [
    "check",
    "history",
    "load_config",
    "promote",
    "run",
]


def _p(project: Project | None) -> Project:
    return project if project is not None else current_project()


def load_config(*, project: Project | None = None) -> AutomationConfig:
    """``.mloop/automation.yaml`` read and checked (empty when the file is absent)."""
    from mloop.automation import config

    return config.load_config(_p(project).root)


def check(project: Project | None = None, dry_run: bool = False, *,
          pipelines: list[str] | None = None, now: int | None = None) -> list[Outcome]:
    """Evaluate every trigger once and act: run what fired (validated, promoted, recorded).

    ``dry_run`` only says what would run and writes nothing. ``pipelines`` limits the
    round to those names; ``now`` (Unix ms) pins the clock for schedule triggers.
    """
    from mloop.automation import runner

    return runner.check(_p(project), dry_run=dry_run, pipelines=pipelines, now=now)


def promote(pipeline_run_or_model_uri: Any, policy: PromotionPolicy | dict[str, Any] | str,
            project: Project | None = None) -> PromotionResult:
    """Apply a promotion policy to a pipeline run's newest model or to a ``runs:/`` URI.

    ``policy``: a :class:`PromotionPolicy`, its YAML form as a dict, or the name of a
    pipeline in ``.mloop/automation.yaml`` whose policy to use. The candidate is
    registered, with the policy's alias, only when promoted. The decision is recorded
    (trigger ``manual``) and shows in :func:`history`.
    """
    from mloop.automation import promotion, state
    from mloop.errors import InvalidInputError

    proj = _p(project)
    chosen = _policy(proj, policy)
    target = pipeline_run_or_model_uri
    source, pipeline, run_id = None, "", None
    if isinstance(target, str):
        candidate = target
    else:  # a PipelineRun
        if not target.models:
            raise InvalidInputError(f"{target.uri} logged no model to promote.")
        candidate, source = target.models[-1], target.uri
        pipeline, run_id = target.pipeline, target.id
    result = promotion.promote(proj, candidate, chosen, source=source)
    state.record(proj, pipeline, "manual", result.decision, result.reasons,
                 pipeline_run_id=run_id, model_uri=result.model_uri,
                 registered=result.registered)
    return result


def _policy(project: Project, policy: Any) -> PromotionPolicy:
    from mloop.automation import config
    from mloop.errors import NotFoundError

    if isinstance(policy, config.PromotionPolicy):
        return policy
    if isinstance(policy, dict):
        return config.parse_policy(policy, "policy", project.root)
    auto = config.load_config(project.root).pipelines.get(str(policy))
    if auto is None or auto.promotion is None:
        raise NotFoundError(f"No promotion policy for {policy!r} in .mloop/automation.yaml; "
                            "pass the policy itself, e.g. {model: churn, data: test@latest, "
                            "target: target}.")
    return auto.promotion


def history(*, pipeline: str | None = None, decision: str | None = None, limit: int = 50,
            project: Project | None = None) -> list[Decision]:
    """Recorded decisions, newest first (optionally one pipeline's, or one kind)."""
    from mloop.automation import state

    return state.history(_p(project), pipeline=pipeline, decision=decision, limit=limit)


def run(*, poll: str | int = "60s", stop: threading.Event | None = None,
        on_outcomes: OnOutcomes | None = None, project: Project | None = None) -> None:
    """Long-running: cron jobs for schedule triggers, a ``poll`` for event triggers,
    until ``stop`` is set or Ctrl-C (a round in progress finishes first)."""
    from mloop.automation import scheduler
    from mloop.core.clock import parse_duration

    scheduler.run(_p(project), poll_ms=parse_duration(poll), stop=stop,
                  on_outcomes=on_outcomes)
