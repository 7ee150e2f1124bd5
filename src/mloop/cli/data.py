"""``mloop data …``: version files and folders, compare, restore, share, validate."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mloop.cli.render import echo, emit_json, fmt, json_option, kv_section, table
from mloop.core.humanize import human_size as _human
from mloop.core.humanize import plural


@click.group()
def data() -> None:
    """Data versions: files and folders as immutable, deduplicated versions."""


@data.command("add")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-n", "--name", help="Dataset name (default: the dataset already tracking "
              "PATH, else the file name without extension).")
@click.option("-m", "--message", help="What this version is, e.g. 'May export'.")
@json_option
def add(path: Path, name: str | None, message: str | None, as_json: bool) -> None:
    """Version PATH (a file or folder inside the project) as the next version of a dataset.

    Only chunks the store lacks are written, so a new version of a large file costs about
    the size of the change. Writes PATH.mloop (commit it to git) and adds PATH to
    .gitignore. Adding unchanged content makes no new version, so a new --message is
    not recorded; a note on stderr says so. A CSV or Parquet file is summarised here up
    to 16 MiB; a larger one on first use (`mloop data show`).
    """
    from mloop.data.ingest import add as do_add
    from mloop.project import current_project

    version = do_add(current_project(), path, name, message)
    if as_json:
        emit_json(version.to_dict())
        return
    echo(f"{version.ref}  ({plural(version.files, 'file')}, {_human(version.size)}"
         + (f", {version.rows:,} rows" if version.rows is not None else "") + ")")


@data.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Datasets with their latest version."""
    from mloop.core.clock import format_ms
    from mloop.data.catalog import list_datasets
    from mloop.project import current_project

    versions = list_datasets(current_project())
    if as_json:
        emit_json([v.to_dict() for v in versions])
        return
    table(["dataset", "latest", "path", "size", "rows", "added (UTC)"],
          [(v.name, v.version, v.source_path, _human(v.size), v.rows, format_ms(v.created_at))
           for v in versions], empty="No datasets yet. Add one with `mloop data add PATH`.")


@data.command("log")
@click.argument("name")
@json_option
def log_(name: str, as_json: bool) -> None:
    """Every version of dataset NAME: who, when, message, size, rows, digest."""
    from mloop.core.clock import format_ms
    from mloop.data.catalog import log
    from mloop.project import current_project

    versions = log(current_project(), name)
    if as_json:
        emit_json([v.to_dict() for v in versions])
        return
    table(["version", "tags", "added (UTC)", "user", "size", "rows", "digest", "message"],
          [(v.version, ",".join(v.tags) or "-", format_ms(v.created_at), v.user,
            _human(v.size), v.rows, v.tree[:12], v.message) for v in versions])


@data.command("show")
@click.argument("ref")
@json_option
def show(ref: str, as_json: bool) -> None:
    """Schema, rows, per-column summary, validation result and lineage of REF (e.g. train@2)."""
    from mloop import lineage
    from mloop.core.clock import format_ms
    from mloop.data.catalog import get
    from mloop.data.summary import ensure
    from mloop.project import current_project

    project = current_project()
    v = ensure(project, get(project, ref))  # a large table's summary: computed once, here
    upstream, downstream = lineage.neighbours(project, v.uri)
    if as_json:
        data = v.to_dict()
        data["lineage"] = {"from": [e.src for e in upstream], "to": [e.dst for e in downstream]}
        emit_json(data)
        return
    kv_section(v.uri, {"path": v.source_path, "kind": v.kind, "files": v.files,
                       "size": _human(v.size), "rows": "-" if v.rows is None else v.rows,
                       "added (UTC)": format_ms(v.created_at), "user": v.user or "-",
                       "message": v.message or "-", "tags": ",".join(v.tags) or "-",
                       "digest": v.tree}, sort=False)
    if v.stats:
        rows = []
        for col, info in v.stats["columns"].items():
            summary = (f"min {fmt(info['min'])}  mean {fmt(info['mean'])}  max {fmt(info['max'])}"
                       if "mean" in info else
                       f"{info.get('distinct', 0)} distinct; top "
                       + ", ".join(list(info.get("top", {}))[:3]))
            rows.append((col, info["type"], info["nulls"], summary))
        sampled = v.stats.get("sample_rows")
        table(["column", "type", "nulls", "summary"], rows,
              title="Columns" + (f" (summary of a {sampled:,}-row sample)" if sampled else ""))
    if v.validation:
        state = "passed" if v.validation["passed"] else "FAILED"
        echo(f"Validation: {state} ({len(v.validation['checks'])} checks)")
    for e in upstream:  # "from runs:/<12> (produced models:/churn/3)", as mloop lineage
        echo(f"from {lineage.describe(e, upstream=True)}")
    for e in downstream:
        echo(f"to   {lineage.describe(e, upstream=False)}")


@data.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("-k", "--key", help="Key column that identifies a row (CSV/Parquet).")
@json_option
def diff(a: str, b: str, key: str | None, as_json: bool) -> None:
    """What changed from A to B: files; for CSV/Parquet also schema, rows and column shifts."""
    from mloop.data.compare import diff as do_diff
    from mloop.project import current_project

    result = do_diff(current_project(), a, b, key)
    if as_json:
        emit_json(result.to_dict())
        return
    echo(f"{result.a} → {result.b}")
    for label, items in (("added", result.added), ("removed", result.removed),
                         ("changed", result.changed)):
        for item in items:
            echo(f"  {label:<8} {item}")
    if not (result.added or result.removed or result.changed):
        echo("  no file changes")
    if result.table:
        t = result.table
        s, r = t["schema"], t["rows"]
        echo(f"Rows: {r['old']:,} → {r['new']:,}  (+{r['added']:,} / -{r['removed']:,}"
             + (f" / ~{r['changed']:,} changed" if "changed" in r else "")
             + f", matched by {r['matched_by']})")
        if s["added"] or s["removed"] or s["type_changed"]:
            echo(f"Schema: added {s['added']}, removed {s['removed']}, "
                 f"type changed {s['type_changed']}")
        table(["column", "mean before", "mean after", "change"],
              [(c, v["mean_old"], v["mean_new"], v["mean_change"])
               for c, v in t["columns"].items()], empty="")


@data.command("checkout")
@click.argument("ref", required=False)
@click.argument("path", required=False, type=click.Path(path_type=Path))
def checkout(ref: str | None, path: Path | None) -> None:
    """Restore the exact bytes of REF at PATH (default: where it was added from).

    REF may be a pointer file (PATH.mloop). Without REF, every pointer file of the work
    tree is followed: run it after `git checkout <commit>` (in a fresh clone, run
    `mloop data pull`, which fetches the data and checks it out). Files that already
    match are not rewritten; the rest are written atomically from verified chunks.
    """
    from mloop.data.workspace import checkout as do_checkout
    from mloop.data.workspace import checkout_pointers
    from mloop.project import current_project

    project = current_project()
    results = [do_checkout(project, ref, path)] if ref else checkout_pointers(project)
    if not results:
        echo("No pointer files found; nothing to restore.")
    _checkouts(results)


@data.command("tag")
@click.argument("ref")
@click.argument("tag")
def tag(ref: str, tag: str) -> None:
    """Name version REF with TAG (e.g. `mloop data tag train@2 golden`); moves an existing tag."""
    from mloop.data.versions import tag as do_tag
    from mloop.project import current_project

    v = do_tag(current_project(), ref, tag)
    echo(f"{v.name}@{tag} → version {v.version}")


@data.command("rollback")
@click.argument("name")
@click.argument("version", type=int)
def rollback(name: str, version: int) -> None:
    """Make a new version of NAME with the content of VERSION; history is kept."""
    from mloop.data import rollback as do_rollback

    v = do_rollback(name, version)
    echo(f"{v.ref} has the content of {name}@{version}. "
         f"Run `mloop data checkout {v.ref}` to put it on disk.")


@data.command("status", short_help="Which tracked paths differ from the version their "
              "pointer names.")
@json_option
def status(as_json: bool) -> None:
    """Which tracked paths differ from the version their pointer names (unchanged files
    are recognised by their stat, not re-read)."""
    from mloop.data.workspace import status as do_status
    from mloop.project import current_project

    rows = do_status(current_project())
    if as_json:
        emit_json([asdict(r) for r in rows])
        return
    table(["dataset", "version", "path", "state", "changed"],
          [(r.dataset, r.version, r.path, r.state, ", ".join(r.changed[:5]) or "-")
           for r in rows], empty="No tracked data.")


def _transfer(result: Any, verb: str) -> None:
    echo(f"{verb} {result.sent} of {result.blobs} blob(s) "
         f"({_human(result.bytes)}) for {result.versions} version(s); "
         "the rest were already there.")


def _remote_first(remote: str | None, args: tuple[str, ...]) -> tuple[str | None,
                                                                     tuple[str, ...]]:
    """``push origin train@2``: a first argument naming a known remote is the remote."""
    if remote is not None or not args:
        return remote, args
    from mloop.data.remotes import list_remotes
    from mloop.project import current_project

    if args[0] in {r.name for r in list_remotes(current_project())}:
        return args[0], args[1:]
    return remote, args


_REMOTE = click.option("-r", "--remote", help="Remote to use (default: the one marked "
                       "default, else origin).")


@data.command("push")
@click.argument("refs", nargs=-1)
@_REMOTE
def push(refs: tuple[str, ...], remote: str | None) -> None:
    """Send what the remote lacks, for every version or the REFS given (e.g. train@2).

    Each version's record (number, author, message, lineage) goes with its data, so that
    `mloop data pull` in a clone restores it; a number the remote holds with other data
    is a conflict (exit 4), never overwritten. Interrupted? Run it again: only what is
    still missing travels. A first argument naming a remote means that remote.
    """
    from mloop.data.sync import push as do_push
    from mloop.project import current_project

    remote, refs = _remote_first(remote, refs)
    result = do_push(current_project(), remote, refs or None)
    _transfer(result, "Pushed")


@data.command("pull")
@click.argument("targets", nargs=-1)
@_REMOTE
def pull(targets: tuple[str, ...], remote: str | None) -> None:
    """Fetch, record and check out the data the pointer files name, as after `git clone`.

    TARGETS are pointer files (PATH.mloop), data paths or versions (train@4); without
    any, every pointer file of the work tree and every version recorded here. Versions
    get the dataset name and number their pointer says. A path holding changes that no
    version has is kept, not overwritten. A first argument naming a remote means that
    remote (`mloop data pull origin train@1`).
    """
    from mloop.data.sync import pull as do_pull
    from mloop.project import current_project

    remote, targets = _remote_first(remote, targets)
    result = do_pull(current_project(), remote, targets or None)
    _transfer(result, "Pulled")
    if result.records:
        echo("Recorded " + ", ".join(result.records))
    _checkouts(result.checkouts)
    for path in result.kept:
        echo(f"Kept {path}: it holds changes no version has. Add them (`mloop data add "
             f"{path}`) or discard them (`mloop data checkout {path}.mloop`).")


def _checkouts(results: list[Any]) -> None:
    for result in results:
        echo(f"{result.version.ref} → {result.path}: {len(result.written)} file(s) "
             f"written, {result.unchanged} already up to date")
        if result.extra:
            echo(f"  {len(result.extra)} file(s) there are not in this version "
                 "(left alone): " + ", ".join(result.extra[:5]))


@data.command("gc")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def gc(dry_run: bool) -> None:
    """Delete stored blobs that no version, artifact or run references.

    Blobs written in the last hour are kept, so an `add` running meanwhile is safe.
    Temporary files that interrupted writes left (untouched for 15 minutes) go too.
    """
    from mloop.data.garbage import gc as do_gc
    from mloop.project import current_project

    r = do_gc(current_project(), dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    echo(f"{verb} {r.deleted} blob(s) ({_human(r.freed_bytes)}); kept {r.kept}."
         + (f" {verb} {r.temp_files} stale temporary file(s) "
            f"({_human(r.temp_bytes)})." if r.temp_files else ""))


@data.command("validate")
@click.argument("ref")
@click.option("-s", "--schema", "schema_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML schema: columns with type, min, max, max_null_share, unique, allowed.")
@json_option
def validate(ref: str, schema_path: Path, as_json: bool) -> None:
    """Check a CSV/Parquet version against a schema; the result is stored with the version.

    Exits 1 when a check fails.
    """
    from mloop.data.quality import validate as do_validate
    from mloop.project import current_project

    result = do_validate(current_project(), ref, schema_path)
    if as_json:
        emit_json(result.to_dict())
    else:
        table(["column", "check", "result", "measured", "expected"],
              [(c.column, c.check, "pass" if c.passed else "FAIL", c.measured, c.expected)
               for c in result.checks], title=f"{result.ref}: "
              + ("passed" if result.passed else "FAILED"))
    if not result.passed:
        raise SystemExit(1)
