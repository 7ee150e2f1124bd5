"""What a run needs to be reproduced, captured without being asked.

Captured once per process and reused by every run it starts: the code that runs is the
code the interpreter loaded at start-up, so a later look at the working tree would
describe files that are not what is running. Packages are stored once per distinct
environment (the row's id is the hash of its content).

Reading the metadata of every installed distribution takes ~1 s with a few hundred
packages, paid by every ``mloop pipeline run`` and every tracked process. The package
lock is cached per user (``$XDG_CACHE_HOME/mloop``, else ``~/.cache/mloop``), keyed by
the interpreter (version, ``sys.prefix``, executable) and the modification time of every
``sys.path`` folder or archive: installing, upgrading or removing a distribution adds or
removes its ``*.dist-info`` folder, which changes its folder's mtime, so the key changes
and the lock is read again. A missing, unreadable or corrupt cache file is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mloop.core.hashing import hash_bytes
from mloop.core.paths import write_private
from mloop.core.process import command_line, current_user

_GIT_TIMEOUT = 10
_CACHE_FORMAT = 1


__all__ = ["EnvironmentInfo", "GitState", "capture_environment", "capture_git", "command_line",
           "current_user"]


@dataclass(frozen=True)
class GitState:
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff: str | None = None  # `git diff HEAD`, only when dirty


@dataclass(frozen=True)
class EnvironmentInfo:
    id: str
    python: str
    platform: str
    packages: str  # sorted "name==version" lines


def capture_environment(*, cache: bool = True) -> EnvironmentInfo:
    """Python version, platform and a lock of the installed distributions.

    ``cache``: reuse the lock this interpreter computed while its ``sys.path`` folders
    were unchanged (see the module's notes); the result is the same either way.
    """
    packages = cached_packages() if cache else None
    if packages is None:
        packages = installed_packages()
        if cache:
            _store_packages(packages)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    plat = platform.platform()
    ident = hash_bytes(f"{python}\n{plat}\n{packages}".encode())
    return EnvironmentInfo(ident, python, plat, packages)


def installed_packages() -> str:
    """Sorted ``name==version`` lines of every distribution on ``sys.path``."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(sorted(seen.values(), key=str.lower))


def cache_dir() -> Path:
    """The user's mloop cache folder: ``$XDG_CACHE_HOME/mloop``, else ``~/.cache/mloop``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mloop"


def _cache_file() -> Path:
    """One file per interpreter and ``sys.path`` (a script's folder is on it), so that
    processes started differently do not overwrite each other's lock."""
    who = hash_bytes("\0".join([sys.prefix, sys.executable, *sys.path]).encode())[:16]
    return cache_dir() / f"env-lock-{who}.json"


def cache_key() -> str:
    """What the package lock depends on: the interpreter and every ``sys.path`` entry's
    modification time (a distribution installed or removed changes its folder's)."""
    parts = [f"{_CACHE_FORMAT}", sys.version, sys.prefix, sys.executable]
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)
        try:
            stat = os.stat(path)
        except OSError:
            parts.append(f"{path}\0-")
            continue
        parts.append(f"{path}\0{stat.st_mtime_ns}\0{stat.st_ino}")
    return hash_bytes("\n".join(parts).encode())


def cached_packages() -> str | None:
    """The cached lock when its key still holds, else ``None`` (missing, stale, corrupt)."""
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != cache_key():
        return None
    packages = data.get("packages")
    return packages if isinstance(packages, str) else None


def _store_packages(packages: str) -> None:
    # a cache: a read-only home or a full disk only costs the next run the scan
    with contextlib.suppress(OSError):
        write_private(_cache_file(), json.dumps({"key": cache_key(), "packages": packages}))


def capture_git(cwd: str | Path | None = None) -> GitState:
    """Commit, branch, dirty flag and diff of the git work tree around ``cwd``."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                 timeout=_GIT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return GitState()
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status and status.strip())
    diff = git("diff", "HEAD", "--no-color", "--no-ext-diff") if dirty else None
    return GitState(commit.strip(), branch.strip() if branch else None, dirty, diff)
