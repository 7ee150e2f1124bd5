"""Deployments: named endpoints that carry traffic from one model version to another.

>>> import mloop.deploy as deploy
>>> deploy.create("churn", "models:/churn@champion", fallback_value=0)   # doctest: +SKIP
>>> deploy.canary("churn", "models:/churn/4", steps="5,25,50,100",        # doctest: +SKIP
...               interval="10m")
>>> deploy.status("churn").to_dict()["weights"]                           # doctest: +SKIP
{'stable': 95.0, 'canary': 5.0}

Each strategy command makes a new revision of the deployment (``replace``, ``canary``,
``ab``, ``bandit``, ``shadow``, ``bluegreen``); ``switch``, ``promote``, ``pause``,
``resume`` and ``rollback`` act on the current one. ``mloop serve --deployment NAME``
routes traffic by it, and a controller (any such server, or ``mloop deploy run``) steps
canaries, analyses them and updates bandits. See docs/deployment.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.project import Project, current_project

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mloop.deploy.model import ArmRef
    from mloop.repositories.deployments import DeployEvent, Deployment, Revision

__all__ = ["DeploymentStatus", "History", "ab", "bandit", "bluegreen", "canary", "create",
           "delete", "history", "list_deployments", "pause", "promote", "replace", "resume",
           "rollback", "shadow", "status", "switch"]


def _s() -> Any:
    from mloop.deploy import strategies

    return strategies


def _p(project: Project | None) -> Project:
    return project if project is not None else current_project()


_UNSET: Any = object()


def create(name: str, model: str, *, fallback: str | None = None,
           fallback_value: Any = _UNSET, timeout_ms: float | None = None,
           initiated_by: str | None = None, project: Project | None = None) -> Revision:
    """A new deployment ``name`` sending all traffic to ``model``; ``fallback`` (a model
    reference) or ``fallback_value`` answers when it fails or exceeds ``timeout_ms``."""
    s = _s()
    return s.create(_p(project), name, model, fallback=fallback,
                    fallback_value=s.NO_VALUE if fallback_value is _UNSET else fallback_value,
                    timeout_ms=timeout_ms, initiated_by=initiated_by)


def replace(name: str, model: str, *, initiated_by: str | None = None,
            project: Project | None = None) -> Revision:
    """Send all of ``name``'s traffic to ``model`` at once."""
    return _s().replace_model(_p(project), name, model,
                              initiated_by=initiated_by)


def canary(name: str, model: str, *, steps: Any = None, interval: Any = None,
           analysis: str | dict[str, Any] | None = None, initiated_by: str | None = None,
           project: Project | None = None) -> Revision:
    """Move ``name``'s traffic to ``model`` in ``steps`` (percent, default 5,25,50,100),
    an analysis every ``interval`` (default 10m) deciding to go on, hold or roll back.
    ``analysis``: a YAML file's path or its content as a dict (default analysis without)."""
    spec = None
    if analysis is not None:
        from mloop.deploy.analysis import load_spec

        spec = load_spec(analysis)
    return _s().canary(_p(project), name, model, steps=steps,
                       interval=interval, analysis=spec, initiated_by=initiated_by)


def ab(name: str, arms: Sequence[str | ArmRef], *, sticky: str | None = None,
       metric: str | None = None, min_samples: int = 500, alpha: float = 0.05,
       initiated_by: str | None = None, project: Project | None = None) -> Revision:
    """Split ``name``'s traffic between ``arms`` (``[NAME=]REF[:WEIGHT]``), sticky by the
    request field or ``x-mloop-key`` header ``sticky``; judged on ``metric`` from feedback
    by an always-valid sequential test at level ``alpha``."""
    return _s().ab(_p(project), name, arms, sticky=sticky,
                   metric=metric, min_samples=min_samples, alpha=alpha,
                   initiated_by=initiated_by)


def bandit(name: str, arms: Sequence[str | ArmRef], *, reward: str = "accuracy",
           algorithm: str = "thompson", interval: Any = "1m", min_share: float = 0.0,
           epsilon: float = 0.1, sticky: str | None = None,
           initiated_by: str | None = None, project: Project | None = None) -> Revision:
    """Route ``name``'s traffic between ``arms`` by a bandit (thompson, ucb1 or
    epsilon-greedy) learning from the ``reward`` metric of feedback every ``interval``."""
    return _s().bandit(_p(project), name, arms, reward=reward,
                       algorithm=algorithm, interval=interval, min_share=min_share,
                       epsilon=epsilon, sticky=sticky, initiated_by=initiated_by)


def shadow(name: str, model: str, *, sample: float = 1.0, initiated_by: str | None = None,
           project: Project | None = None) -> Revision:
    """Copy ``sample`` of ``name``'s requests to ``model`` after the primary answered."""
    return _s().shadow(_p(project), name, model, sample=sample,
                       initiated_by=initiated_by)


def bluegreen(name: str, model: str, *, initiated_by: str | None = None,
              project: Project | None = None) -> Revision:
    """Load ``model`` as green beside blue (the model serving now), at 0% traffic."""
    return _s().bluegreen(_p(project), name, model,
                          initiated_by=initiated_by)


def switch(name: str, *, initiated_by: str | None = None,
           project: Project | None = None) -> Revision:
    """Blue/green: all new requests to the other color at once."""
    return _s().switch(_p(project), name,
                       initiated_by=initiated_by)


def promote(name: str, *, arm: str | None = None, initiated_by: str | None = None,
            project: Project | None = None) -> Revision:
    """End the rollout with ``arm`` (default: the canary, shadow, active color or the
    decided winner) taking all traffic; the stable's alias moves to it."""
    return _s().promote(_p(project), name, arm=arm,
                        initiated_by=initiated_by)


def rollback(name: str, *, reason: str | None = None, initiated_by: str | None = None,
             project: Project | None = None) -> Revision:
    """Return to the model that last took all traffic (after a switch: blue)."""
    return _s().rollback(_p(project), name, reason=reason,
                         initiated_by=initiated_by)


def pause(name: str, *, initiated_by: str | None = None,
          project: Project | None = None) -> Revision:
    """Hold ``name``'s rollout where it is."""
    return _s().pause(_p(project), name,
                      initiated_by=initiated_by)


def resume(name: str, *, initiated_by: str | None = None,
           project: Project | None = None) -> Revision:
    """Carry on a paused rollout."""
    return _s().resume(_p(project), name,
                       initiated_by=initiated_by)


def delete(name: str, *, project: Project | None = None) -> None:
    """Forget deployment ``name`` (its traffic index stays for monitoring)."""
    from mloop import repositories

    repositories.backend(_p(project)).deployments.delete(name)


def list_deployments(*, project: Project | None = None) -> list[Deployment]:
    """Every deployment, by name."""
    from mloop import repositories

    return repositories.backend(_p(project)).deployments.all()


@dataclass(frozen=True)
class DeploymentStatus:
    """Where a deployment stands: its current revision, weights, per-arm measurements,
    the last decision, and which process runs its controller."""

    deployment: Deployment
    revision: Revision | None
    controller: str | None
    measurements: dict[str, Any] = field(default_factory=dict)
    last_event: DeployEvent | None = None
    since_ms: int | None = None  # the measurements cover traffic from then (None: all)

    @property
    def weights(self) -> dict[str, float]:
        return self.revision.weights if self.revision is not None else {}

    @property
    def decision(self) -> dict[str, Any] | None:
        if self.revision is None:
            return None
        found: dict[str, Any] | None = self.revision.state.get("decision")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment.to_dict(),
                "revision": self.revision.to_dict() if self.revision else None,
                "weights": self.weights, "decision": self.decision,
                "controller": self.controller, "measurements": self.measurements,
                "measured_since_ms": self.since_ms,
                "last_event": self.last_event.to_dict() if self.last_event else None}


def status(name: str, *, window: Any = "1h", project: Project | None = None
           ) -> DeploymentStatus:
    """``name``'s revision, weights, per-arm measurements and last decision. The
    measurements cover the traffic since the current canary step started, or the last
    ``window`` (``"1h"``; None: the whole revision, which may be long to read)."""
    from mloop import repositories
    from mloop.core.clock import now_ms, parse_duration
    from mloop.deploy.measure import measure

    proj = _p(project)
    deployments = repositories.backend(proj).deployments
    found = deployments.get(name)
    revision = (deployments.revision(name, found.current_revision)
                if found.current_revision is not None else None)
    events = deployments.events(name, limit=1)
    since = None if window is None else now_ms() - parse_duration(window)
    if revision is not None and revision.state.get("step_started_at") and revision.status.live:
        since = int(revision.state["step_started_at"])
    measured = ({k: v.to_dict() for k, v in measure(proj, revision, since_ms=since).items()}
                if revision is not None else {})
    return DeploymentStatus(found, revision, deployments.lease_holder(name), measured,
                            events[-1] if events else None, since)


@dataclass(frozen=True)
class History:
    """Every revision of a deployment and every event, oldest first."""

    revisions: list[Revision]
    events: list[DeployEvent]

    def to_dict(self) -> dict[str, Any]:
        return {"revisions": [r.to_dict() for r in self.revisions],
                "events": [e.to_dict() for e in self.events]}


def history(name: str, *, limit: int = 200, project: Project | None = None) -> History:
    """``name``'s revisions and its newest ``limit`` events."""
    from mloop import repositories

    deployments = repositories.backend(_p(project)).deployments
    deployments.get(name)
    return History(deployments.revisions(name), deployments.events(name, limit=limit))
