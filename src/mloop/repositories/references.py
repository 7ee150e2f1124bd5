"""Which rows name blobs: the reads of ``mloop data gc`` and ``mloop fsck``.

The reachability walk (:func:`mloop.data.garbage.references`) must see every blob any
table points at: run artifacts and git diffs, evaluation reports, pipeline outputs and
step logs, shared prediction log segments (dataset trees and profiles come from
:mod:`mloop.repositories.datasets`).
These are read-only statements across other repositories' tables, in one snapshot; the
tables' writers stay their own repositories'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mloop.project import Project

__all__ = ["BlobReferences", "RowReferences", "SqlBlobReferences"]


@dataclass(frozen=True)
class RowReferences:
    """The blobs rows name directly, and the pipeline outputs that name more."""

    blobs: list[tuple[str | None, str]] = field(default_factory=list)  # (digest, owner)
    # (owner, JSON text of {name: value ref}): values and the files of a stage's outputs
    outputs: list[tuple[str, str | None]] = field(default_factory=list)


class BlobReferences(Protocol):
    """Blob digests the metadata store's rows (other than datasets') point at."""

    def rows(self) -> RowReferences:
        """Every such reference, read in one snapshot."""
        ...


class SqlBlobReferences:
    """:class:`BlobReferences` over the metadata store (SQLAlchemy Core)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def rows(self) -> RowReferences:
        from sqlalchemy import select

        from mloop.store.schema import (
            artifacts,
            evaluations,
            pipeline_cache,
            pipeline_steps,
            prediction_segments,
            runs,
        )

        found = RowReferences()
        blobs, outputs = found.blobs, found.outputs
        with self.project.store.read() as conn:
            for run_id, path, digest in conn.execute(
                    select(artifacts.c.run_id, artifacts.c.path, artifacts.c.digest)):
                blobs.append((digest, f"runs:/{run_id}/{path}"))
            for run_id, digest in conn.execute(select(runs.c.id, runs.c.git_diff)
                                               .where(runs.c.git_diff.is_not(None))):
                blobs.append((digest, f"runs:/{run_id} (git diff)"))
            for eval_id, digest in conn.execute(select(evaluations.c.id,
                                                       evaluations.c.report)):
                blobs.append((digest, f"evaluation {eval_id} (report)"))
            outputs.extend((f"pipeline cache of step {step}", text) for step, text in
                           conn.execute(select(pipeline_cache.c.step, pipeline_cache.c.outputs)))
            for run_id, step, text, log in conn.execute(select(
                    pipeline_steps.c.pipeline_run_id, pipeline_steps.c.step,
                    pipeline_steps.c.outputs, pipeline_steps.c.log)):
                outputs.append((f"pipeline run {run_id} step {step}", text))
                blobs.append((log, f"pipeline run {run_id} step {step} (log)"))
            seg = prediction_segments.c
            for model, version, name, digest in conn.execute(select(
                    seg.model, seg.version, seg.name, seg.digest)):
                blobs.append((digest, f"prediction log {model}/{version}/{name}"))
        return found
