"""What a run needs to be reproduced, captured without being asked.

Captured once per process and reused by every run it starts: the code that runs is the
code the interpreter loaded at start-up, so a later look at the working tree would
describe files that are not what is running. Packages are stored once per distinct
environment (the row's id is the hash of its content).
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mloop.core.hashing import hash_bytes
from mloop.core.process import command_line, current_user

_GIT_TIMEOUT = 10


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


def capture_environment() -> EnvironmentInfo:
    """Python version, platform and a lock of the installed distributions."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    packages = "\n".join(sorted(seen.values(), key=str.lower))
    python = f"{platform.python_implementation()} {platform.python_version()}"
    plat = platform.platform()
    ident = hash_bytes(f"{python}\n{plat}\n{packages}".encode())
    return EnvironmentInfo(ident, python, plat, packages)


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
