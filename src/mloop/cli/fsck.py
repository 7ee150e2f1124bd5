"""``mloop fsck``: verify every stored blob and every blob the store needs."""

from __future__ import annotations

import click

from mloop.cli.render import echo, emit_json, json_option, table
from mloop.core.humanize import human_size, plural


@click.command("fsck")
@click.option("--repair", is_flag=True, help="Quarantine corrupt blobs and restore what the "
              "project's files or a data remote can give back.")
@json_option
def fsck(repair: bool, as_json: bool) -> None:
    """Check every stored blob against its hash, and every blob the store needs.

    Reports corrupt blobs, missing ones (referenced but absent) and orphans (referenced
    by nothing: `mloop data gc` removes them). With --repair, corrupt blobs are moved to
    the object store's quarantine/ folder, and missing or corrupt ones are rebuilt from
    the dataset files in the project or fetched, verified, from a data remote. Exits 5
    while problems remain, 0 when the store is whole.
    """
    from mloop.data.fsck import check
    from mloop.errors import IntegrityError
    from mloop.project import current_project

    result = check(current_project(), repair=repair, quiet=as_json)
    if as_json:
        emit_json(result.to_dict())
    else:
        echo(f"Checked {plural(result.objects, 'blob')} ({human_size(result.bytes)}); "
             f"{plural(result.orphans, 'orphan')} ({human_size(result.orphan_bytes)}, "
             "`mloop data gc` removes them).")
        table(("blob", "problem", "needed by", "repair"),
              [(p.digest[:12], p.kind, p.needed_by or "nothing (an orphan)",
                p.repaired or ("quarantined" if p.quarantined else "-"))
               for p in result.problems], empty="No problems: every blob is intact.")
        if result.remaining:
            hint = ("" if repair else " Run `mloop fsck --repair` to restore what the "
                    "project's files or a data remote hold.")
            left = len(result.remaining)
            echo(f"{plural(left, 'problem')} {'remains' if left == 1 else 'remain'}.{hint}",
                 err=True)
    if result.remaining:
        raise SystemExit(IntegrityError.exit_code)
