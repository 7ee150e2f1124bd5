"""``mloop models …``: the model registry: versions, aliases, approvals, cards, exports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mloop.cli.render import echo, emit_json, fmt, json_option, kv_section, table


@click.group()
def models() -> None:
    """Registered models: versions, aliases, governance, model cards and exports.

    A version is named NAME/VERSION (churn/2) or NAME@ALIAS (churn@champion); the
    models:/ form works too.
    """


def _when(ms: int) -> str:
    from mloop.core.clock import format_ms

    return format_ms(ms)


@models.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Registered models with their latest version."""
    from mloop.project import current_project
    from mloop.repositories import backend

    latest = backend(current_project()).models.latest()
    if as_json:
        emit_json([v.to_dict() for v in latest])
        return
    table(["model", "latest", "status", "aliases", "flavor", "registered (UTC)"],
          [(v.name, v.version, v.status, ",".join(v.aliases) or "-", v.flavor,
            _when(v.created_at)) for v in latest],
          empty="No registered models. Register one with mloop.log_model(model, "
                "registered_name='NAME').")


@models.command("versions")
@click.argument("name")
@json_option
def versions(name: str, as_json: bool) -> None:
    """Every version of model NAME, newest first."""
    from mloop.project import current_project
    from mloop.repositories import backend

    found = backend(current_project()).models.versions(name)
    if as_json:
        emit_json([v.to_dict() for v in found])
        return
    table(["version", "status", "aliases", "flavor", "registered (UTC)", "user", "source"],
          [(v.version, v.status, ",".join(v.aliases) or "-", v.flavor, _when(v.created_at),
            v.user, v.source) for v in found])


@models.command("show")
@click.argument("ref")
@json_option
def show(ref: str, as_json: bool) -> None:
    """One version: status, aliases, signature, source run, lineage and its audit trail."""
    from mloop import lineage as graph
    from mloop.project import current_project
    from mloop.registry.models import events, get_version
    from mloop.registry.safety import storage

    project = current_project()
    v = get_version(project, ref)
    manifest = json.loads(project.objects.get_bytes(v.manifest))
    stored = storage(project, v.run_id, v.artifact_path, manifest) if v.run_id else None
    upstream, downstream = graph.neighbours(project, v.uri)
    history = [e for e in events(project, v.name) if e.version in (v.version, None)]
    from mloop.repositories import backend

    tested = backend(project).evaluations.latest(v.uri)
    if as_json:
        data = v.to_dict()
        data.update(serializer=stored.to_dict() if stored else None,
                    signature=manifest.get("signature"), onnx=bool(manifest.get("onnx")),
                    onnx_note=manifest.get("onnx_note"), metadata=manifest.get("metadata"),
                    lineage={"from": [e.src for e in upstream],
                             "to": [e.dst for e in downstream]},
                    history=[{"action": e.action, "user": e.user, "message": e.message,
                              "at": _when(e.created_at)} for e in history],
                    evaluation=None if tested is None else dict(
                        tested.summary(), created_at=_when(tested.created_at)))
        emit_json(data)
        return
    from mloop.registry.signature import Signature

    sig = manifest.get("signature")
    kv_section(v.uri, {"status": v.status, "aliases": ",".join(v.aliases) or "-",
                       "flavor": v.flavor, "class": manifest.get("model_class"),
                       "serializer": stored.text if stored else "-",
                       "onnx": "yes" if manifest.get("onnx") else
                       f"no ({manifest.get('onnx_note') or '-'})",
                       "input": str(Signature.from_dict(sig)) if sig else "-",
                       "source": v.source, "registered (UTC)": _when(v.created_at),
                       "user": v.user or "-", "description": v.description or "-",
                       "tags": ", ".join(f"{k}={x}" for k, x in v.tags.items()) or "-",
                       "evaluation": "never tested (mloop test)" if tested is None else
                       f"{'PASSED' if tested.passed else 'FAILED'} suite {tested.suite} "
                       f"on {tested.data}, {_when(tested.created_at)} UTC"},
               sort=False)
    for e in upstream:  # "from runs:/<12> (produced models:/churn/3)", as mloop lineage
        echo(f"from {graph.describe(e, upstream=True)}")
    for e in downstream:
        echo(f"to   {graph.describe(e, upstream=False)}")
    table(["when (UTC)", "action", "user", "message"],
          [(_when(e.created_at), e.action, e.user, e.message) for e in history],
          title="History")


@models.command("history")
@click.argument("name")
@json_option
def history(name: str, as_json: bool) -> None:
    """The audit log of model NAME: registrations, approvals, alias moves, deletions."""
    from mloop.project import current_project
    from mloop.registry.models import events

    found = events(current_project(), name)
    if as_json:
        emit_json([{"version": e.version, "action": e.action, "user": e.user,
                    "message": e.message, "at": _when(e.created_at)} for e in found])
        return
    table(["when (UTC)", "version", "action", "user", "message"],
          [(_when(e.created_at), e.version, e.action, e.user, e.message) for e in found])


@models.command("register")
@click.argument("source", metavar="RUNS_URI")
@click.argument("name")
@click.option("-d", "--description", help="What this version is; shown by `models show`.")
@json_option
def register(source: str, name: str, description: str | None, as_json: bool) -> None:
    """Register a logged model (runs:/RUN_ID/model) as the next version of model NAME.

    RUN_ID may be a unique prefix or the 12-character id `mloop runs list` shows. The
    same as mloop.register_model(source, name) in Python.
    """
    from mloop.project import current_project
    from mloop.registry.models import register_model

    v = register_model(current_project(), source, name, description=description)
    if as_json:
        emit_json(v.to_dict())
        return
    echo(f"Registered {v.uri} ({v.flavor}) from {v.source}")


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=click.IntRange(min=1))
def alias(name: str, alias: str, version: int) -> None:
    """Point ALIAS (e.g. champion) at VERSION of model NAME, moving it if needed."""
    from mloop.project import current_project
    from mloop.registry.models import set_alias

    v = set_alias(current_project(), name, alias, version)
    echo(f"{name}@{alias} → version {v.version}")


@models.command("tag")
@click.argument("ref")
@click.argument("key")
@click.argument("value")
def tag(ref: str, key: str, value: str) -> None:
    """Set tag KEY=VALUE on a version (e.g. team, ticket)."""
    from mloop.project import current_project
    from mloop.registry.models import set_tag

    v = set_tag(current_project(), ref, key, value)
    echo(f"{v.uri}: {key}={v.tags[key]}")


def _transition(ref: str, status: str, message: str | None) -> None:
    from mloop.project import current_project
    from mloop.registry.models import transition

    v = transition(current_project(), ref, status, message)
    echo(f"{v.uri}: {v.status}")


@models.command("approve")
@click.argument("ref")
@click.option("-m", "--message", help="Why, e.g. 'passed review'. Kept in the audit log.")
def approve(ref: str, message: str | None) -> None:
    """Mark a version approved for deployment (recorded with who, when and why)."""
    from mloop.repositories.models import ModelStatus

    _transition(ref, ModelStatus.APPROVED, message)


@models.command("reject")
@click.argument("ref")
@click.option("-m", "--message", required=True,
              help="Why it is rejected (required). Kept in the audit log.")
def reject(ref: str, message: str) -> None:
    """Mark a version rejected by review (deployments that need approval refuse it)."""
    from mloop.registry import reject_model

    v = reject_model(ref, message)
    echo(f"{v.uri}: {v.status}")


@models.command("archive")
@click.argument("ref")
@click.option("-m", "--message", help="Why it is retired. Kept in the audit log.")
def archive(ref: str, message: str | None) -> None:
    """Mark a version archived (retired); it stays loadable."""
    from mloop.repositories.models import ModelStatus

    _transition(ref, ModelStatus.ARCHIVED, message)


@models.command("delete")
@click.argument("ref")
@click.option("-m", "--message", help="Why. Kept in the audit log.")
def delete(ref: str, message: str | None) -> None:
    """Remove a version from the registry (its run keeps the files). Refused while an
    alias points at it."""
    from mloop.project import current_project
    from mloop.registry.models import delete_version

    v = delete_version(current_project(), ref, message)
    echo(f"Deleted {v.uri} from the registry (the files stay with {v.source}).")


@models.command("compare")
@click.argument("a")
@click.argument("b")
@json_option
def compare(a: str, b: str, as_json: bool) -> None:
    """Two versions side by side: status, flavor, input, and their runs' params and metrics."""
    from mloop.project import current_project
    from mloop.registry.models import get_version
    from mloop.tracking.records import get_run

    project = current_project()
    va, vb = get_version(project, a), get_version(project, b)
    ra = get_run(project, va.run_id) if va.run_id else None
    rb = get_run(project, vb.run_id) if vb.run_id else None
    rows: list[tuple[str, object, object]] = [
        ("status", va.status, vb.status), ("flavor", va.flavor, vb.flavor),
        ("aliases", ",".join(va.aliases) or "-", ",".join(vb.aliases) or "-")]
    for kind, get in (("params", lambda r: r.params), ("metrics", lambda r: r.metrics)):
        pa, pb = (get(ra) if ra else {}), (get(rb) if rb else {})
        rows += [(f"{kind}.{k}", pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb))]
    if as_json:
        emit_json({"a": va.uri, "b": vb.uri,
                   "rows": [{"field": f, "a": x, "b": y} for f, x, y in rows]})
        return
    table(["field", va.uri, vb.uri, "same"],
          [(f, fmt(x), fmt(y), "yes" if x == y else "no") for f, x, y in rows])


@models.command("card", short_help="A model card for a version, from the registry, its "
                "run and its data.")
@click.argument("ref")
@click.option("-f", "--format", "fmt_", type=click.Choice(["md", "html", "hf"]), default="md",
              show_default=True, help="Markdown, HTML, or a Hugging Face card (README.md with "
              "model-index front matter).")
@click.option("-s", "--spec", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML with what only people know: intended_use, factors, evaluation_data, "
                   "ethical_considerations, caveats_and_recommendations, license …")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the card to this file (default: print it).")
@click.option("--check", is_flag=True, help="List the sections still empty; exit 1 if any.")
def card(ref: str, fmt_: str, spec: Path | None, output: Path | None, check: bool) -> None:
    """A model card (Mitchell et al. 2019) for a version, filled from the registry, its
    run and its training data, plus your --spec."""
    from mloop.project import current_project
    from mloop.registry import card as cards

    built = cards.build(current_project(), ref, cards.load_spec(spec))
    if check:
        missing = built.missing()
        for title in missing:
            echo(f"empty: {title}")
        if missing:
            sys.exit(1)
        echo("Every section is filled.")
        return
    text = cards.render(built, fmt_)
    if output is None:
        echo(text)
        return
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text)
    tmp.replace(output)
    echo(f"Wrote {output}")


@models.command("export")
@click.argument("ref")
@click.option("-f", "--format", "fmt_", type=click.Choice(["onnx", "package"]), required=True,
              help="onnx: the ONNX file; package: a pip-installable Python package.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where to write: a file or folder (onnx), a new folder (package).")
@click.option("--allow-pickle", is_flag=True, help="Package a model saved as a pickle "
              "(joblib), which runs code when the package loads it: only models you trust. "
              "Without it it is refused (exit 7).")
def export(ref: str, fmt_: str, output: Path, allow_pickle: bool) -> None:
    """Export a version as an ONNX file or as a package an application pins and installs."""
    from mloop.project import current_project
    from mloop.registry import export as exporter

    project = current_project()
    if fmt_ == "onnx":
        echo(f"Wrote {exporter.export_onnx(project, ref, output)}")
        return
    path = exporter.export_package(project, ref, output, allow_pickle=allow_pickle or None)
    echo(f"Wrote package {path}; install it with: pip install {path}")
