"""The catalogue of the API: every repository method the server exposes, its role, its types.

Both ends read it: the server builds one route per method (``POST
/api/v1/<repository>/<method>``, the body an object of the method's parameters, the
answer ``{"result": …}``), the HTTP client one proxy method per entry. A method is
read from the repository's ``Protocol`` (its signature and type hints), so a new method
of a repository is served as soon as it is declared, with the role :func:`role_of` gives.

Not served: the stat cache (a machine's own file stats: the client keeps it locally)
and the token table (``mloop server token`` works on the store directly).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any

from mloop.server.codec import hints

# repository (the Backend's property) → (module, Protocol)
REPOSITORIES: dict[str, tuple[str, str]] = {
    "experiments": ("mloop.repositories.experiments", "Experiments"),
    "runs": ("mloop.repositories.runs", "Runs"),
    "datasets": ("mloop.repositories.datasets", "Datasets"),
    "stored_remotes": ("mloop.repositories.datasets", "StoredRemotes"),
    "lineage": ("mloop.repositories.lineage", "LineageEdges"),
    "blob_references": ("mloop.repositories.references", "BlobReferences"),
    "models": ("mloop.repositories.models", "Models"),
    "evaluations": ("mloop.repositories.evaluations", "Evaluations"),
    "precompute": ("mloop.repositories.precompute", "PrecomputeTables"),
    "feedback": ("mloop.repositories.feedback", "FeedbackLabels"),
    "alerts": ("mloop.repositories.alerts", "Alerts"),
    "deployments": ("mloop.repositories.deployments", "Deployments"),
    "traffic": ("mloop.repositories.traffic", "Traffic"),
    "prediction_segments": ("mloop.repositories.prediction_segments", "PredictionSegments"),
    "pipeline_runs": ("mloop.repositories.pipelines", "PipelineRuns"),
    "automation": ("mloop.repositories.automation", "Automation"),
}

# Methods that only read. Everything else writes and needs at least ``writer``.
_READS = frozenset({
    "get", "all", "find", "versions", "latest", "latest_versions", "source_paths", "trees",
    "profiles", "touching", "rows", "source", "events", "of_models", "batch",
    "scored_keys", "newest_model", "read", "list", "open_counts", "revision", "revisions",
    "serials", "lease_holder", "counts", "served", "since", "digests", "cached", "recent",
    "running", "consumed", "get_state", "recorded_report", "resolve_id", "newest_id",
    "metric_history", "environment", "list_artifacts", "search",
})

# Roles other than reader/writer, by repository and method.
_ROLES: dict[tuple[str, str], str] = {
    # an approver approves versions, moves aliases and deploys
    ("models", "set_alias"): "approver",
    ("models", "delete_alias"): "approver",
    ("models", "delete"): "approver",
    ("deployments", "create"): "approver",
    ("deployments", "delete"): "approver",
    ("deployments", "add_revision"): "approver",
    ("deployments", "update"): "approver",
    # serving replicas index their traffic and take the controller's lease
    ("traffic", "record"): "predictor",
    ("prediction_segments", "add"): "predictor",
    ("deployments", "acquire_lease"): "predictor",
    ("deployments", "release_lease"): "predictor",
    # deleting history is an administrator's call
    ("traffic", "prune"): "admin",
    ("feedback", "prune"): "admin",
    ("prediction_segments", "prune"): "admin",
    ("stored_remotes", "set_url"): "admin",
    ("stored_remotes", "delete"): "admin",
}

# Registry statuses whose setting is an approval (an approver's decision).
APPROVAL_STATUSES = frozenset({"approved", "rejected"})

# Parameters that say who acts: a server that knows its caller fills them in itself.
IDENTITY_PARAMETERS = frozenset({"initiated_by"})


@dataclass(frozen=True)
class Method:
    """One served repository method."""

    repository: str
    name: str
    role: str
    signature: inspect.Signature
    parameters: dict[str, Any]  # name → type hint
    returns: Any
    doc: str

    @property
    def path(self) -> str:
        return f"/api/v1/{self.repository}/{self.name}"


def role_of(repository: str, name: str) -> str:
    """The least role that may call ``repository.name``."""
    role = _ROLES.get((repository, name))
    if role is not None:
        return role
    return "reader" if name in _READS else "writer"


def protocol(repository: str) -> type:
    module, cls = REPOSITORIES[repository]
    found: type = getattr(importlib.import_module(module), cls)
    return found


@cache
def methods(repository: str) -> dict[str, Method]:
    """The served methods of one repository, by name."""
    proto = protocol(repository)
    found: dict[str, Method] = {}
    for name, fn in vars(proto).items():
        if name.startswith("_") or not callable(fn):
            continue
        resolved = hints(fn)
        signature = inspect.signature(fn)
        params = {p: resolved[p] for p in list(signature.parameters)[1:]}
        doc = inspect.getdoc(fn) or f"{proto.__name__}.{name}"
        found[name] = Method(repository, name, role_of(repository, name), signature,
                             params, resolved.get("return"), doc)
    return found


def lookup(repository: str, name: str) -> Method | None:
    if repository not in REPOSITORIES:
        return None
    return methods(repository).get(name)
