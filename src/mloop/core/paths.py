"""Relative paths that can never escape their root (artifacts, dataset members, exports),
and the one way a private file (a key, credentials, tokens) is written."""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from pathlib import Path, PurePosixPath

from mloop.errors import UnsafePathError


def safe_relpath(path: str | PurePosixPath, *, allow_empty: bool = False) -> str:
    """Normalise ``path`` to a relative POSIX path inside its root.

    Rejects absolute paths, drive letters, NUL bytes and any ``..`` that would climb out
    of the root; ``a/./b/../c`` becomes ``a/c``. Backslashes count as separators so that
    a Windows-style ``..\\x`` is caught too.
    """
    text = str(path).replace("\\", "/")
    if "\x00" in text:
        raise UnsafePathError(f"Path {text!r} contains a NUL byte; use a plain relative path.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError(f"Path {text!r} is not valid Unicode text; rename it.") from None
    norm = posixpath.normpath(text) if text else "."
    # Checked on the text and on its normal form: 'x/../c:' normalises to a drive.
    if any(t.startswith("/") or (len(t) > 1 and t[1] == ":") for t in (text, norm)):
        raise UnsafePathError(
            f"Path {text!r} is absolute; artifact and dataset paths must be relative, "
            "e.g. 'plots/roc.png'."
        )
    if norm == "..":
        raise UnsafePathError(f"Path {text!r} escapes its root; remove the '..' parts.")
    if norm.startswith("../"):
        raise UnsafePathError(f"Path {text!r} escapes its root; remove the '..' parts.")
    if norm == ".":
        if allow_empty:
            return ""
        raise UnsafePathError("An empty path was given; name a file, e.g. 'model/model.pkl'.")
    return norm


def safe_join(root: str | Path, relpath: str) -> Path:
    """``root / relpath`` after checking that ``relpath`` stays inside ``root``."""
    rel = safe_relpath(relpath, allow_empty=True)
    return Path(root) / rel if rel else Path(root)


def write_private(path: Path, text: str, *, replace: bool = True) -> bool:
    """Write ``text`` to ``path`` with mode 0600, atomically: a temp file beside it, fsync,
    then rename (``replace``) or hard link (``replace=False``: an existing file is kept,
    so processes racing to create it agree on the first). Returns whether it was written.
    The folder is created with mode 0700 when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic, and never replaces what is there
            return True
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
