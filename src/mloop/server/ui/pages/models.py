"""Models: the registry's models, a model's versions, and one version — its card, its
approvals and their audit trail, aliases, stored evaluation reports, signature, exports
and lineage — with the changes an approver makes (approve, reject, move an alias).

Reads and changes go through :mod:`mloop.registry` and the evaluations repository; a
change needs the role the API's own route needs (:mod:`mloop.server.methods`): setting an
approval status or an alias is an approver's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from mloop import lineage
from mloop.errors import InvalidInputError, InvalidURIError, MloopError, ModelNotFoundError
from mloop.registry import card as cards
from mloop.registry.models import (
    ModelStatus,
    ModelVersion,
    events,
    get_version,
    list_models,
    list_versions,
    set_alias,
    transition,
)
from mloop.repositories import backend
from mloop.server.ui import model_views as mv
from mloop.server.ui.app import View, as_caller, audit, back, change, project_of
from mloop.server.ui.links import edge_rows, explore
from mloop.server.ui.render import Column, Context, Table, page

if TYPE_CHECKING:
    from mloop.project import Project

router = APIRouter()

APPROVER = "approver"  # the role of models.set_status(approved|rejected) and set_alias
CARD_TYPES = {"md": "text/markdown", "html": "text/html", "hf": "text/markdown"}


def _badge(status: str) -> Markup:
    return Markup('<span class="badge badge-{0}">{0}</span>').format(status)


def _ref(name: str, ref: str) -> str:
    """A registry ref from a page address: ``3`` a version, ``@champion`` (or
    ``champion``) an alias, ``latest`` the newest version."""
    if ref.isascii() and ref.isdigit():
        return f"{name}/{ref}"
    if ref == "latest":
        return name
    return f"{name}@{ref.removeprefix('@')}"


def _version(project: Project, name: str, ref: str = "latest") -> ModelVersion:
    try:
        return get_version(project, _ref(name, ref))
    except InvalidURIError:  # a name or alias that cannot exist: not found either
        raise ModelNotFoundError(f"No model version {name} {ref}. See the models at "
                                 "/ui/models.") from None


def _versions(project: Project, name: str) -> list[ModelVersion]:
    try:
        return list_versions(project, name)
    except InvalidURIError:
        raise ModelNotFoundError(f"No registered model {name!r}.") from None


def _aliases(versions: list[ModelVersion]) -> dict[str, int]:
    return {a: v.version for v in versions for a in v.aliases}


# ── reads ────────────────────────────────────────────────────────────────────────────
@router.get("/models")
def models(ctx: Context = View) -> Response:
    """Every registered model with its latest version, aliases and status."""
    project = project_of(ctx.request)
    rows = []
    for latest in list_models(project):
        versions = list_versions(project, latest.name)
        aliases = _aliases(versions)
        rows.append({
            "name": latest.name, "name_href": ctx.url("models", latest.name),
            "latest": latest.version,
            "latest_href": ctx.url("models", latest.name, latest.version),
            "status": _badge(latest.status), "versions": len(versions),
            "aliases": ", ".join(f"{a} → v{n}" for a, n in sorted(aliases.items())),
            "approved": sum(v.status == ModelStatus.APPROVED for v in versions),
            "flavor": latest.flavor, "description": latest.description,
            "created_at": latest.created_at})
    table = Table("models", [
        Column("name", "Model", "link"), Column("latest", "Latest", "link"),
        Column("status", "Latest status", "html"), Column("versions", "Versions", "num"),
        Column("approved", "Approved", "num"), Column("aliases", "Aliases"),
        Column("flavor", "Flavor"), Column("description", "Description"),
        Column("created_at", "Registered", "time")], rows,
        empty="No registered models. Register one with mloop.log_model(model, "
              "registered_name='NAME').")
    return page(ctx, "model_list.html", title="Models", tables=[table])


def _history(ctx: Context, found: list[Any], name: str) -> Table:
    return Table("history", [
        Column("created_at", "When", "time"), Column("version", "Version", "link"),
        Column("action", "Action", "html"), Column("user", "Who"),
        Column("message", "Comment")],
        [{"created_at": e.created_at, "version": e.version,
          "version_href": ctx.url("models", name, e.version) if e.version else None,
          "action": _badge(e.action) if e.action in tuple(ModelStatus) else e.action,
          "user": e.user, "message": e.message} for e in reversed(found)],
        empty="Nothing recorded.")


@router.get("/models/{name}")
def model(name: str, ctx: Context = View) -> Response:
    """A model's versions (status, aliases, source run) and its audit log."""
    project = project_of(ctx.request)
    versions = _versions(project, name)
    table = Table("versions", [
        Column("version", "Version", "link"), Column("status", "Status", "html"),
        Column("aliases", "Aliases"), Column("flavor", "Flavor"),
        Column("run", "Source run", "link"), Column("user", "Registered by"),
        Column("description", "Description"), Column("created_at", "Registered", "time")],
        [{"version": v.version, "version_href": ctx.url("models", name, v.version),
          "status": _badge(v.status), "aliases": ", ".join(v.aliases), "flavor": v.flavor,
          "run": v.run_id[:12] if v.run_id else None,
          "run_href": ctx.url("runs", v.run_id) if v.run_id else None,
          "user": v.user, "description": v.description, "created_at": v.created_at}
         for v in versions])
    history = _history(ctx, events(project, name), name)
    return page(ctx, "model_versions.html", title=f"Model {name}",
                tables=[table, history], name=name, latest=versions[0],
                alias_text=", ".join(f"{a} → v{n}" for a, n in
                                     sorted(_aliases(versions).items())),
                lineage_href=explore(versions[0].uri))


@router.get("/models/{name}/{ref}")
def version(name: str, ref: str, ctx: Context = View, evaluation: str = "") -> Response:
    """One version: details, approval, aliases, evaluations, card, signature, exports,
    history and lineage."""
    from mloop.registry.safety import storage

    project = project_of(ctx.request)
    v = _version(project, name, ref)
    versions = _versions(project, name)
    manifest = json.loads(project.objects.get_bytes(v.manifest))
    stored = storage(project, v.run_id, v.artifact_path, manifest) if v.run_id else None
    found = backend(project).evaluations.of_models(
        [v.uri] + ([v.source] if v.run_id else []))
    chosen = next((e for e in found if e.id == evaluation), found[0] if found else None)
    if evaluation and (chosen is None or chosen.id != evaluation):
        raise ModelNotFoundError(f"{v.uri} has no evaluation {evaluation!r}.")
    report = mv.report_view(project, chosen) if chosen is not None else None
    tables = [Table("evaluations", [
        Column("created_at", "When", "time"), Column("data", "Data"),
        Column("suite", "Suite"), Column("decision", "Decision", "html"),
        Column("user", "Who"), Column("report", "Report", "link")],
        [{"created_at": e.created_at, "data": e.data, "suite": e.suite,
          "decision": _badge("passed" if e.passed else "failed"), "user": e.user,
          "report": "shown" if chosen is not None and e.id == chosen.id else "show",
          "report_href": ctx.url("models", name, v.version, evaluation=e.id)}
         for e in found], empty="Never evaluated. Test it with `mloop test "
        f"{name}/{v.version} --data DATA --target COLUMN`.")]
    tables += report.tables if report is not None else []
    signature = mv.signature_table(manifest)
    tables += [t for t in (signature,) if t is not None]
    tables.append(mv.export_table(v, manifest, stored.serializer if stored else None,
                                  stored.runs_code if stored else False))
    mine = [e for e in events(project, name) if e.version in (v.version, None)]
    tables.append(_history(ctx, mine, name))
    into, out_of = lineage.neighbours(project, v.uri)
    tables.append(Table("lineage", [
        Column("direction", "Direction"), Column("node", "Node", "link"),
        Column("relation", "Relation"), Column("created_at", "Recorded", "time")],
        edge_rows(into, out_of), empty="No lineage recorded."))
    try:
        card = mv.card_sections(cards.build(project, v.uri))
    except MloopError as exc:  # a card needs the run and its data: say what is missing
        card = [("Model card", Markup("<p class=\"error\">{}</p>").format(exc.message))]
    return page(ctx, "model_version.html", title=f"{name} v{v.version}", tables=tables,
                v=v, manifest=manifest, stored=stored, report=report, card=card,
                aliases=sorted(_aliases(versions).items()), tensor=manifest.get("signature")
                if signature is None else None, lineage_href=explore(v.uri))


@router.get("/models/{name}/{ref}/card")
def card_file(name: str, ref: str, request: Request, format: str = "md") -> Response:
    """The version's model card as a file: Markdown, HTML or a Hugging Face README."""
    if format not in CARD_TYPES:
        raise InvalidInputError(f"Unknown card format {format!r}; use md, html or hf.")
    project = project_of(request)
    v = _version(project, name, ref)
    text = cards.render(cards.build(project, v.uri), format)
    suffix = "html" if format == "html" else "md"
    filename = f"{v.name}-v{v.version}-card.{suffix}" if format != "hf" else "README.md"
    return Response(text, media_type=f"{CARD_TYPES[format]}; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="{filename}"',
        "cache-control": "no-store"})


# ── changes ──────────────────────────────────────────────────────────────────────────
async def _decide(request: Request, name: str, ref: str, status: ModelStatus) -> Response:
    identity, fields = await change(request, APPROVER)
    project = project_of(request)
    comment = fields.get("message", "").strip() or None
    if status == ModelStatus.REJECTED and comment is None:
        raise InvalidInputError("Say why the version is rejected: the comment is kept in "
                                "its audit trail.")

    def work() -> ModelVersion:
        target = _version(project, name, ref)
        return transition(project, target.uri, status, comment)

    done = await as_caller(identity, work)
    audit(request, identity, f"models.{status.value}", done.uri)
    return back(request, fields, f"/ui/models/{done.name}/{done.version}",
                f"{done.name} v{done.version} {status.value}.")


@router.post("/models/{name}/{ref}/approve")
async def approve(name: str, ref: str, request: Request) -> Response:
    """Approve the version (an approver's decision, with an optional comment)."""
    return await _decide(request, name, ref, ModelStatus.APPROVED)


@router.post("/models/{name}/{ref}/reject")
async def reject(name: str, ref: str, request: Request) -> Response:
    """Reject the version (an approver's decision; the comment says why)."""
    return await _decide(request, name, ref, ModelStatus.REJECTED)


@router.post("/models/{name}/{ref}/alias")
async def move_alias(name: str, ref: str, request: Request) -> Response:
    """Point an alias (``champion``) at this version, moving it from where it was."""
    identity, fields = await change(request, APPROVER)
    project = project_of(request)
    alias = fields.get("alias", "").strip().removeprefix("@")
    if not alias:
        raise InvalidInputError("Name the alias to move here, e.g. champion.")

    def work() -> ModelVersion:
        target = _version(project, name, ref)
        return set_alias(project, target.name, alias, target.version)

    done = await as_caller(identity, work)
    audit(request, identity, "models.alias", f"models:/{done.name}@{alias}")
    return back(request, fields, f"/ui/models/{done.name}/{done.version}",
                f"{done.name}@{alias} now points at version {done.version}.")
