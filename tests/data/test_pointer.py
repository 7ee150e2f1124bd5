"""Pointer files and the .gitignore lines `data add` writes, checked with the real git."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mloop
from mloop.core.uris import MAX_VERSION
from mloop.data.pointer import ignore_in_git, ignore_pattern, read_pointer
from mloop.errors import InvalidInputError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          timeout=30)


def _ignored(repo: Path, name: str) -> bool:
    """Whether git ignores ``name`` (relative to ``repo``): exit 0 yes, 1 no."""
    out = _git(repo, "check-ignore", "-q", "--no-index", "--", name)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode == 0


@pytest.fixture
def repo(sqlite_project):
    root = sqlite_project.root
    assert _git(root, "init", "-q", ".").returncode == 0
    return sqlite_project


HOSTILE_NAMES = ["star*[x].csv", "q?.csv", "#hash.csv", "!bang.csv", " lead.csv",
                 "trail.csv  ", "back\\slash.csv", "br[a-z]ket.csv", "**.csv", "a b.csv",
                 "ünï çødé.csv"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_data_add_ignores_exactly_that_file(repo, name):
    root = repo.root
    (root / name).write_text("x\n1\n")
    sibling = "starAx.csv" if "*" in name else "other " + name.strip()
    (root / sibling).write_text("x\n2\n")
    mloop.data.add(root / name, name="ds", project=repo)
    assert _ignored(root, name)
    assert not _ignored(root, sibling)
    assert not _ignored(root, name + ".mloop")  # the pointer is what git keeps
    _git(root, "add", ".")
    tracked = _git(root, "ls-files", "-z").stdout.split("\0")
    assert name not in tracked and name + ".mloop" in tracked and sibling in tracked


def test_gitignore_line_is_written_once_and_after_a_final_newline(repo):
    root = repo.root
    (root / ".gitignore").write_text("/already")  # no final newline
    (root / "a.csv").write_text("x\n1\n")
    mloop.data.add(root / "a.csv", project=repo)
    (root / "a.csv").write_text("x\n2\n")
    mloop.data.add(root / "a.csv", project=repo)
    assert (root / ".gitignore").read_text() == "/already\n/a.csv\n"


@pytest.mark.parametrize("name", ["new\nline.csv", "esc\x1b[31m.csv", "tab\t.csv",
                                  "cr\r.csv", "del\x7f.csv"])
def test_control_characters_are_refused_before_anything_is_stored(repo, name):
    root = repo.root
    (root / name).write_text("x\n1\n")
    with pytest.raises(InvalidInputError, match=r"control character.*Rename"):
        mloop.data.add(root / name, project=repo)
    assert not (root / ".gitignore").exists()
    assert not (root / (name + ".mloop")).exists()
    assert mloop.data.list_datasets(project=repo) == []


def test_a_name_that_is_not_unicode_is_refused():
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        ignore_pattern("bad\udcff.csv")  # how Python spells an undecodable byte


# Names a file can have (no '/', no NUL, no control characters), rich in what gitignore
# treats specially.
_NAME_CHARS = st.one_of(st.sampled_from(list("*?[]!#\\ -.^$~{}()!,;'\"`ab")),
                        st.characters(exclude_categories=("Cc", "Cs"),
                                      exclude_characters="/\u2028\u2029"))
names = st.text(_NAME_CHARS, min_size=1, max_size=24).filter(
    lambda n: n not in (".", "..", ".git") and len(n.encode()) < 200)


def _glob_twin(name: str) -> str:
    """A different name the pattern would match if its specials were not escaped."""
    return name.replace("*", "Z").replace("?", "Q").replace("[", "").replace("]", "")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, other=names)
def test_property_the_line_ignores_the_name_and_nothing_else(tmp_path, name, other):
    assume(other != name)
    repo = tmp_path / "repo"
    if not (repo / ".git").exists():
        repo.mkdir(exist_ok=True)
        assert _git(repo, "init", "-q", ".").returncode == 0
    folder = repo / uuid.uuid4().hex  # one .gitignore per example
    folder.mkdir()
    ignore_in_git(folder / name)
    lines = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1  # the name stayed one line
    rel = f"{folder.name}/{name}"
    assert _ignored(repo, rel)
    assert not _ignored(repo, f"{folder.name}/{other}")
    twin = _glob_twin(name)
    if twin != name and twin:
        assert not _ignored(repo, f"{folder.name}/{twin}")


@pytest.mark.parametrize("version", [10**30, 0, -1, True, 2.0, "1", None, [1]])
def test_pointer_with_a_bad_version_is_a_clear_error(tmp_path, version):
    path = tmp_path / "t.csv.mloop"
    path.write_text(json.dumps({"dataset": "t", "version": version}))
    with pytest.raises(InvalidInputError, match=r"not an mloop pointer file.*'version'"):
        read_pointer(path)


def test_pointer_version_limit_is_what_a_database_holds(tmp_path):
    path = tmp_path / "t.csv.mloop"
    path.write_text(json.dumps({"dataset": "t", "version": MAX_VERSION}))
    assert read_pointer(path)["version"] == MAX_VERSION


def test_pointer_with_a_huge_version_through_the_cli(repo, tmp_path):
    from tests.cli.test_cli import run_cli

    root = repo.root
    (root / "t.csv").write_text("x\n1\n")
    mloop.data.add(root / "t.csv", project=repo)
    (root / "t.csv.mloop").write_text(json.dumps({"dataset": "t", "version": 10**30}))
    for args in (["data", "checkout", "t.csv.mloop"], ["data", "status"], ["data", "checkout"]):
        out = run_cli(*args, cwd=root, check=False)
        assert out.returncode == 2, (args, out.stderr)
        assert "not an mloop pointer file" in out.stderr and "Traceback" not in out.stderr


STATE = [".mloop/mloop.db", ".mloop/mloop.db-wal", ".mloop/objects/ab/cdef",
         ".mloop/predictions/m/1.parquet", ".mloop/pipelines/train.lock",
         ".mloop/pipelines/run/step.log", ".mloop/queue.db", ".mloop/stages-parsed.json",
         ".mloop/objects/records/data/x/1.json"]
CONFIG = [".mloop/config.toml", ".mloop/monitoring.yaml", ".mloop/automation.yaml",
          ".mloop/lifecycle.yaml", ".mloop/.gitignore"]


def test_git_keeps_the_projects_config_and_not_its_local_state(repo):
    for path in STATE:
        assert _ignored(repo.root, path), path
    for path in CONFIG:
        assert not _ignored(repo.root, path), path


def test_an_older_mloops_gitignore_is_updated_and_a_users_own_kept(tmp_path):
    from mloop.project import GITIGNORE, Project

    old = "# mloop's local store: metadata, blobs and caches\n*\n!config.toml\n!.gitignore\n"
    first = Project.init(tmp_path / "old")
    ignore = first.root / ".mloop" / ".gitignore"
    ignore.write_text(old)
    Project(first.root)  # opening it is enough
    assert ignore.read_text() == GITIGNORE
    own = "*\n!config.toml\n!my.yaml\n"
    ignore.write_text(own)
    Project.init(first.root)
    assert ignore.read_text() == own
