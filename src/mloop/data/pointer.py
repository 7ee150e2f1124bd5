"""Git-friendly pointers: ``PATH.mloop`` beside the data, and the data kept out of git.

Commit the pointer; after ``git checkout <commit>``, ``mloop data checkout PATH.mloop``
(or the dataset's name) brings back the bytes that commit meant, as with DVC.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

from mloop.core.printable import printable
from mloop.core.uris import MAX_VERSION
from mloop.data.model import DatasetVersion
from mloop.errors import InvalidInputError

SUFFIX = ".mloop"
# characters that mean something in a .gitignore pattern, escaped with a backslash
_GITIGNORE_SPECIAL = frozenset("*?[]!#\\")


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
    ignore_in_git(data_path)
    return target


def read_pointer(path: Path) -> dict[str, object]:
    """The contents of a pointer file (``PATH.mloop``): a dataset name (text) and a
    version number (a positive integer a database can hold), checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "dataset" not in data or "version" not in data:
            raise ValueError("missing 'dataset' or 'version'")
        dataset, version = data["dataset"], data["version"]
        if not isinstance(dataset, str) or not dataset:
            raise ValueError("'dataset' must be a dataset name")
        # bool is an int in Python; a float such as 2.0 is not a version number either
        if (not isinstance(version, int) or isinstance(version, bool)
                or not 1 <= version <= MAX_VERSION):
            raise ValueError(f"'version' must be a whole number from 1 to {MAX_VERSION}, "
                             f"not {printable(json.dumps(version), one_line=True)[:40]}")
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{path} is not an mloop pointer file ({exc}); restore it "
                                "from git or run `mloop data add` on the data again.") from exc
    return data


# folders never searched for pointers: version control, mloop's own, environments, caches
_SKIP = frozenset({".git", ".hg", ".svn", ".mloop", ".venv", "venv", "node_modules",
                   "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
                   ".ruff_cache"})


def find_pointers(root: Path) -> list[Path]:
    """Every pointer file (``*.mloop``) under ``root``, sorted.

    One ``scandir`` walk that does not enter a tracked folder (``data/imgs`` beside
    ``data/imgs.mloop``: its files are data, maybe thousands), version-control folders,
    ``.mloop`` or virtual environments.
    """
    found: list[Path] = []
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:  # unreadable or vanished: nothing of ours can be there
            continue
        pointers = {e.name for e in entries if e.name.endswith(SUFFIX) and e.is_file()}
        for e in entries:
            if e.name in pointers:
                found.append(Path(e.path))
            elif (e.is_dir(follow_symlinks=False) and e.name not in _SKIP
                  and e.name + SUFFIX not in pointers):
                stack.append(e.path)
    return sorted(found)


def ignore_pattern(name: str) -> str:
    """The .gitignore line that ignores exactly the file or folder ``name`` beside it.

    Anchored (``/name``) with every character special to gitignore (``* ? [ ] ! # \\``)
    and leading or trailing spaces backslash-escaped, so ``star*[x].csv`` ignores that
    file and no other. Names with control characters (a newline would split the line
    in two) or that are not valid Unicode are refused: rename the file.
    """
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs")
                or c in "\u2028\u2029"), None)
    if bad is not None or not name:
        what = "is empty" if bad is None else (
            "is not valid Unicode text" if unicodedata.category(bad) == "Cs"
            else f"holds the control character {printable(bad, one_line=True)}")
        raise InvalidInputError(
            f"Cannot track '{printable(name, one_line=True)}': the name {what}, which "
            "git's .gitignore cannot express. Rename it (letters, digits, spaces and "
            "punctuation are fine) and add it again.")
    body = "".join("\\" + c if c in _GITIGNORE_SPECIAL else c for c in name)
    # git drops trailing spaces of a pattern unless escaped; leading ones, for symmetry
    stripped = body.strip(" ")
    lead = len(body) - len(body.lstrip(" "))
    trail = len(body) - len(body.rstrip(" ")) if stripped else 0
    return "/" + "\\ " * lead + stripped + "\\ " * trail


def ignore_in_git(data_path: Path) -> None:
    """Add the pattern for ``data_path`` to the .gitignore beside it (once)."""
    gitignore = data_path.parent / ".gitignore"
    line = ignore_pattern(data_path.name)
    text = gitignore.read_text(encoding="utf-8", errors="replace") if gitignore.exists() else ""
    if line not in text.splitlines():
        with open(gitignore, "a", encoding="utf-8") as f:
            f.write(("\n" if text and not text.endswith("\n") else "") + line + "\n")
