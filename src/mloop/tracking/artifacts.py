"""Run artifacts: files and folders stored once in the object store, listed per run."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from mloop.core.paths import safe_relpath
from mloop.core.progress import progress
from mloop.errors import InvalidInputError
from mloop.project import Project
from mloop.repositories import backend
from mloop.tracking import lookup as _lookup
from mloop.tracking.model import ArtifactInfo


def _target(artifact_path: str | None, name: str) -> str:
    base = safe_relpath(artifact_path, allow_empty=True) if artifact_path else ""
    return safe_relpath(f"{base}/{name}" if base else name)


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def log_path(project: Project, run_id: str, local_path: str | Path,
             artifact_path: str | None = None, *,
             contents_only: bool = False) -> list[ArtifactInfo]:
    """Store a file, or every file of a folder, as artifacts of a run.

    A folder lands under its own name unless ``contents_only``. Identical bytes are stored
    once across all runs; re-logging a path replaces what the run lists there.
    """
    src = Path(local_path)
    if not src.exists():
        raise InvalidInputError(f"Cannot log artifact {str(src)!r}: no such file or folder.")
    if src.is_file():
        files = [(src, _target(artifact_path, src.name))]
    else:
        prefix = artifact_path if contents_only else (
            f"{artifact_path}/{src.name}" if artifact_path else src.name)
        files = [(f, _target(prefix, f.relative_to(src).as_posix())) for f in _walk(src)]
    infos: list[ArtifactInfo] = []
    total = sum(f.stat().st_size for f, _ in files)
    with progress(total, f"Logging {src.name}", unit="bytes", quiet=total < (64 << 20)) as bar:
        for file, rel in files:
            size = file.stat().st_size
            infos.append(ArtifactInfo(rel, size, project.objects.put_file(file)))
            bar.advance(size)
    _record(project, run_id, infos)
    return infos


def log_bytes(project: Project, run_id: str, data: bytes, artifact_file: str) -> ArtifactInfo:
    """Store ``data`` as the artifact ``artifact_file`` of a run."""
    info = ArtifactInfo(safe_relpath(artifact_file), len(data), project.objects.put_bytes(data))
    _record(project, run_id, [info])
    return info


def dict_bytes(obj: Any, artifact_file: str) -> bytes:
    """Serialise a dict as JSON, or YAML when the file name ends in .yaml/.yml."""
    suffix = PurePosixPath(artifact_file).suffix.lower()
    if suffix in {".yaml", ".yml"}:
        import yaml

        return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True).encode()
    return json.dumps(obj, indent=2, default=str, allow_nan=True).encode()


def figure_bytes(figure: Any, artifact_file: str) -> bytes:
    """Render a matplotlib figure in the format its file name asks for (png, svg, pdf…)."""
    fmt = PurePosixPath(artifact_file).suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    try:
        figure.savefig(buf, format=fmt, bbox_inches="tight")
    except (AttributeError, ValueError) as exc:
        raise InvalidInputError(
            f"Cannot save figure as {artifact_file!r}: {exc}. Pass a matplotlib Figure and "
            "a file name ending in .png/.svg/.pdf.") from exc
    return buf.getvalue()


def _record(project: Project, run_id: str, infos: list[ArtifactInfo]) -> None:
    backend(project).runs.record_artifacts(run_id, infos)


# Listing and reading go through plain SQL (no SQLAlchemy): see mloop.tracking.lookup.
list_artifacts = _lookup.list_artifacts
read_artifact = _lookup.read_artifact
download = _lookup.download
