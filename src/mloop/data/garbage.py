"""``mloop data gc``: delete blobs that nothing references.

Referenced: every dataset version's tree, chunks and distribution profile, every run
artifact, every stored git diff, every evaluation report, every pipeline output and step
log. A blob younger than the grace
period is never deleted, so a ``data add`` running at the same moment (its chunks are
written before its version row commits) keeps everything it needs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import select

from mloop.data.remotes import version_blobs
from mloop.objects import LocalObjectStore
from mloop.project import Project
from mloop.store.schema import (
    artifacts,
    dataset_versions,
    evaluations,
    pipeline_cache,
    pipeline_steps,
    runs,
)

GRACE_SECONDS = 3600


@dataclass(frozen=True)
class GCResult:
    kept: int
    deleted: int
    freed_bytes: int


def referenced(project: Project) -> set[str]:
    """Every blob digest the metadata store points at."""
    with project.store.read() as conn:
        trees = conn.execute(select(dataset_versions.c.tree).distinct()).scalars().all()
        refs = set(conn.execute(select(artifacts.c.digest).distinct()).scalars().all())
        refs |= {d for d in conn.execute(select(runs.c.git_diff).distinct()).scalars() if d}
        refs |= set(conn.execute(select(evaluations.c.report).distinct()).scalars().all())
        outputs = [*conn.execute(select(pipeline_cache.c.outputs)).scalars(),
                   *conn.execute(select(pipeline_steps.c.outputs)).scalars()]
        refs |= {d for d in conn.execute(select(pipeline_steps.c.log).distinct()).scalars()
                 if d}
        for stats in conn.execute(select(dataset_versions.c.stats).where(
                dataset_versions.c.stats.like('%"profile"%'))).scalars():
            profile = json.loads(stats).get("profile")
            if profile:
                refs.add(profile)
    for text in outputs:  # pipeline values, and the files a stage's outputs hold
        for ref in json.loads(text or "{}").values():
            refs.add(ref["digest"])
            if ref.get("kind") == "files" and project.objects.exists(ref["digest"]):
                manifest = json.loads(project.objects.get_bytes(ref["digest"]))
                refs |= {f["digest"] for f in manifest.get("files", manifest).values()
                         if isinstance(f, dict) and "digest" in f}
    for tree in trees:
        if project.objects.exists(tree):
            refs |= version_blobs(project.objects.get_bytes(tree), tree)
        else:
            refs.add(tree)
    return refs


def gc(project: Project, *, dry_run: bool = False, grace_seconds: int = GRACE_SECONDS) -> GCResult:
    """Remove unreferenced blobs older than ``grace_seconds``."""
    keep = referenced(project)
    objects = project.objects
    cutoff = time.time() - grace_seconds
    deleted = freed = kept = 0
    for digest in list(objects.iter_digests()):
        if digest in keep:
            kept += 1
            continue
        if isinstance(objects, LocalObjectStore) and objects.path(digest).stat().st_mtime > cutoff:
            kept += 1  # too young: may belong to an add still in progress
            continue
        size = objects.size(digest)
        if not dry_run:
            objects.delete(digest)
        deleted += 1
        freed += size
    return GCResult(kept, deleted, freed)

