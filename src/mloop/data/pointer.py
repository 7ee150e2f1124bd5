"""Git-friendly pointers: ``PATH.mloop`` beside the data, and the data kept out of git.

Commit the pointer; after ``git checkout <commit>``, ``mloop data checkout PATH.mloop``
(or the dataset's name) brings back the bytes that commit meant, as with DVC.
"""

from __future__ import annotations

import json
from pathlib import Path

from mloop.data.model import DatasetVersion
from mloop.errors import InvalidInputError

SUFFIX = ".mloop"


def pointer_path(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + SUFFIX)


def write_pointer(data_path: Path, version: DatasetVersion) -> Path:
    """Write (atomically) the pointer for ``version`` next to ``data_path``."""
    target = pointer_path(data_path)
    body = {"dataset": version.name, "version": version.version, "tree": version.tree,
            "kind": version.kind, "size": version.size, "files": version.files}
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(target)
    _ignore_in_git(data_path)
    return target


def read_pointer(path: Path) -> dict[str, object]:
    """The contents of a pointer file (``PATH.mloop``)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "dataset" not in data or "version" not in data:
            raise ValueError("missing 'dataset' or 'version'")
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not an mloop pointer file ({exc}).") from exc
    return data


def _ignore_in_git(data_path: Path) -> None:
    """Add ``/<name>`` to the .gitignore beside the data (once)."""
    gitignore = data_path.parent / ".gitignore"
    line = f"/{data_path.name}"
    existing = gitignore.read_text().splitlines() if gitignore.exists() else []
    if line not in existing:
        with open(gitignore, "a") as f:
            if existing and existing[-1] != "":
                f.write("\n")
            f.write(line + "\n")
