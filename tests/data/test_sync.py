"""A teammate clones the git repository and pulls the data: two real git clones, a
``file://`` remote and an fsspec ``memory://`` one, through the API and the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import mloop
from mloop.data.catalog import get, log
from mloop.data.remotes import add_remote, list_remotes
from mloop.errors import ConflictError, NotFoundError
from mloop.objects import open_object_store
from mloop.project import Project
from tests.cli.test_cli import run_cli

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Ada Tester")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "ada@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(root: Path, names: list[str]) -> dict[str, str]:
    return {n: digest(root / n) for n in names}


FILES = ["data/train.csv", "data/imgs/a.bin", "data/imgs/b/c.bin"]


def make_data(root: Path, seed: int = 0) -> None:
    (root / "data" / "imgs" / "b").mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i},{(i * 7 + seed) % 13}" for i in range(2_000))
    (root / "data" / "train.csv").write_text(f"id,x\n{rows}\n")
    (root / "data" / "imgs" / "a.bin").write_bytes(bytes(range(256)) * (40 + seed))
    (root / "data" / "imgs" / "b" / "c.bin").write_bytes(uuid.UUID(int=seed).bytes * 3000)


def author(tmp_path: Path, url: str) -> Project:
    """User A: a git repository with versioned data pushed to ``url``, committed."""
    root = tmp_path / "a"
    root.mkdir()
    git(root, "init", "-q")
    project = Project.init(root)
    make_data(root)
    mloop.data.add(root / "data" / "train.csv", name="train", message="first export",
                   project=project)
    with (root / "data" / "train.csv").open("a") as f:
        f.write("2000,1\n")
    mloop.data.add(root / "data" / "train.csv", message="May export", project=project)
    mloop.data.add(root / "data" / "imgs", message="images", project=project)
    (root / ".mloop" / "monitoring.yaml").write_text("every: 10m\n")
    add_remote(project, "origin", url, default=True)
    pushed = mloop.data.push(project=project)
    assert sorted(pushed.records) == ["imgs@1", "train@1", "train@2"]
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "data")
    return project


def clone(tmp_path: Path, source: Path, name: str) -> Path:
    git(tmp_path, "clone", "-q", str(source), name)
    return tmp_path / name


def remote_url(kind: str, tmp_path: Path) -> str:
    if kind == "file":
        return f"file://{tmp_path / 'remote'}"
    return f"memory://team-{uuid.uuid4().hex}/store"  # fsspec: one process, shared


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_teammate_clones_and_pulls_the_exact_bytes(tmp_path, kind):
    a = author(tmp_path, remote_url(kind, tmp_path))
    tracked = git(a.root, "ls-files").split()
    assert {".mloop/config.toml", ".mloop/.gitignore", ".mloop/monitoring.yaml",
            "data/train.csv.mloop", "data/imgs.mloop", "data/.gitignore"} <= set(tracked)
    assert not [t for t in tracked if "mloop.db" in t or "/objects/" in t]
    assert not [t for t in tracked if t in FILES]

    b_root = clone(tmp_path, a.root, "b")
    config = (b_root / ".mloop" / "config.toml").read_bytes()
    b = Project.init(b_root)  # a clone: the tracked config is kept, local state made
    assert (b_root / ".mloop" / "config.toml").read_bytes() == config
    assert [(r.name, r.default) for r in list_remotes(b)] == [("origin", True)]
    assert not (b_root / "data" / "train.csv").exists()

    result = mloop.data.pull(project=b)
    assert sorted(result.records) == ["imgs@1", "train@2"]  # what the pointers name
    assert digests(b_root, FILES) == digests(a.root, FILES)
    assert sorted(c.version.ref for c in result.checkouts) == ["imgs@1", "train@2"]
    for ref in ("train@2", "imgs@1"):
        theirs, ours = get(a, ref), get(b, ref)
        assert (ours.tree, ours.message, ours.user, ours.created_at, ours.rows) == (
            theirs.tree, theirs.message, theirs.user, theirs.created_at, theirs.rows)
    assert [s.state for s in mloop.data.status(project=b)] == ["clean", "clean"]
    train = get(b, "train@2")
    assert train.stats == get(a, "train@2").stats  # the summary came with the record
    profile = (train.stats or {}).get("profile")
    assert profile is None or b.objects.exists(profile)  # and the drift profile travelled

    # an older version by its number, never seen here: its record brings its metadata
    mloop.data.pull(refs=["train@1"], project=b)
    assert get(b, "train@1").message == "first export"
    again = mloop.data.pull(project=b)
    assert (again.sent, again.records) == (0, [])


def test_a_number_made_twice_is_a_conflict_on_push_and_on_pull(tmp_path):
    url = remote_url("file", tmp_path)
    a = author(tmp_path, url)
    b_root = clone(tmp_path, a.root, "b")
    b = Project.init(b_root)
    mloop.data.pull(project=b)
    # both teammates make train@3, from different bytes
    (a.root / "data" / "train.csv").write_text("id,x\n1,A\n")
    (b_root / "data" / "train.csv").write_text("id,x\n1,B\n")
    mine = mloop.data.add(a.root / "data" / "train.csv", project=a)
    theirs = mloop.data.add(b_root / "data" / "train.csv", project=b)
    assert mine.ref == theirs.ref == "train@3" and mine.tree != theirs.tree
    mloop.data.push(project=a)
    with pytest.raises(ConflictError, match="train@3") as err:
        mloop.data.push(project=b)
    assert "Nothing was overwritten" in err.value.message and err.value.exit_code == 4
    record = open_object_store(url).get_record("data/train/3.json")
    assert json.loads(record)["tree"] == mine.tree

    # B gets A's pointer (as from `git pull`): pulling it is the same conflict
    shutil.copy(a.root / "data" / "train.csv.mloop", b_root / "data" / "train.csv.mloop")
    with pytest.raises(ConflictError, match="train@3"):
        mloop.data.pull(project=b)
    assert (b_root / "data" / "train.csv").read_text() == "id,x\n1,B\n"  # untouched


def test_checkout_without_argument_in_a_clone_uses_data_already_fetched(tmp_path):
    url = remote_url("file", tmp_path)
    a = author(tmp_path, url)
    b_root = clone(tmp_path, a.root, "b")
    b = Project.init(b_root)
    with pytest.raises(NotFoundError, match="mloop data pull"):
        mloop.data.checkout(project=b)
    assert not (b_root / "data" / "train.csv").exists()  # nothing written
    # the blobs arrive some other way (a copied store, a shared object store)
    shutil.copytree(tmp_path / "remote", b_root / ".mloop" / "objects", dirs_exist_ok=True)
    results = mloop.data.checkout(project=b)
    assert sorted(r.version.ref for r in results) == ["imgs@1", "train@2"]
    assert digests(b_root, FILES) == digests(a.root, FILES)
    assert [v.version for v in log(b, "train")] == [2]


def test_pull_keeps_local_changes_and_updates_older_versions(tmp_path):
    a = author(tmp_path, remote_url("file", tmp_path))
    b_root = clone(tmp_path, a.root, "b")
    b = Project.init(b_root)
    mloop.data.pull(project=b)
    # A makes train@3 and commits; B pulls git, then the data
    (a.root / "data" / "train.csv").write_text("id,x\n1,new\n")
    mloop.data.add(a.root / "data" / "train.csv", message="June", project=a)
    (a.root / "data" / "imgs" / "a.bin").write_bytes(b"edited")
    mloop.data.add(a.root / "data" / "imgs", project=a)
    mloop.data.push(project=a)
    git(a.root, "commit", "-q", "-am", "June data")
    (b_root / "data" / "imgs" / "a.bin").write_bytes(b"B's own unsaved edit")
    git(b_root, "pull", "-q")
    result = mloop.data.pull(project=b)
    assert (b_root / "data" / "train.csv").read_text() == "id,x\n1,new\n"  # train@2 → @3
    assert result.kept == ["data/imgs"]  # an edit no version has is not overwritten
    assert (b_root / "data" / "imgs" / "a.bin").read_bytes() == b"B's own unsaved edit"
    assert get(b, "train@3").message == "June"


def test_clone_and_pull_through_the_cli(tmp_path):
    remote = tmp_path / "remote"
    a = tmp_path / "a"
    a.mkdir()
    git(a, "init", "-q")
    run_cli("init", cwd=a)
    make_data(a)
    run_cli("data", "add", "data/train.csv", "-m", "first export", cwd=a)
    run_cli("data", "add", "data/imgs", cwd=a)
    out = run_cli("remote", "add", "origin", f"file://{remote}", "--default", cwd=a)
    assert out.stdout.strip().endswith("(default)")
    assert "[remotes.origin]" in (a / ".mloop" / "config.toml").read_text()
    run_cli("data", "push", cwd=a)
    git(a, "add", "-A")
    git(a, "commit", "-q", "-m", "data")

    b = clone(tmp_path, a, "b")
    out = run_cli("init", cwd=b)
    assert "kept the existing .mloop/config.toml" in out.stdout
    out = run_cli("data", "pull", cwd=b)
    assert "Recorded imgs@1, train@1" in out.stdout, out.stdout
    assert digests(b, FILES) == digests(a, FILES)
    shown = json.loads(run_cli("data", "log", "train", "--json", cwd=b).stdout)
    assert [(v["version"], v["message"]) for v in shown] == [(1, "first export")]
    # a first argument naming a remote is the remote; -r names it too
    assert "Pulled 0 of" in run_cli("data", "pull", "origin", cwd=b).stdout
    assert "Pulled 0 of" in run_cli("data", "pull", "data/train.csv", "-r", "origin",
                                    cwd=b).stdout

    c = clone(tmp_path, a, "c")
    out = run_cli("data", "checkout", cwd=c, check=False)
    assert out.returncode == 3 and "mloop data pull" in out.stderr
    shutil.copytree(remote, c / ".mloop" / "objects", dirs_exist_ok=True)
    out = run_cli("data", "checkout", cwd=c)
    assert "train@1 →" in out.stdout and digests(c, FILES) == digests(a, FILES)

    # B makes its own train@2 while A pushed one: exit 4, a conflict, nothing overwritten
    (a / "data" / "train.csv").write_text("id,x\n1,A\n")
    run_cli("data", "add", "data/train.csv", cwd=a)
    run_cli("data", "push", cwd=a)
    (b / "data" / "train.csv").write_text("id,x\n1,B\n")
    run_cli("data", "add", "data/train.csv", cwd=b)
    out = run_cli("data", "push", cwd=b, check=False)
    assert out.returncode == 4 and "train@2" in out.stderr, out.stderr


def test_pull_with_versions_never_pushed_fetches_nothing_and_keeps_them(sqlite_project,
                                                                        tmp_path):
    root = sqlite_project.root
    (root / "t.csv").write_text("a\n1\n")
    v = mloop.data.add(root / "t.csv", message="mine")
    add_remote(sqlite_project, "origin", f"file://{tmp_path / 'empty'}")
    result = mloop.data.pull()
    assert (result.sent, result.records, result.kept) == (0, [], [])
    assert [c.version.ref for c in result.checkouts] == [v.ref]
    assert get(sqlite_project, v.ref).message == "mine"
    with pytest.raises(NotFoundError, match="push it from the clone"):
        mloop.data.pull(refs=["t@7"])
    with pytest.raises(NotFoundError, match="tags are not shared"):
        mloop.data.pull(refs=["other@golden"])


def test_checkout_of_known_versions_stays_on_the_fast_path(sqlite_project):
    """No SQLAlchemy, no pydantic when every pointer names a version recorded here."""
    import sys

    root = sqlite_project.root
    (root / "t.csv").write_text("a\n1\n")
    mloop.data.add(root / "t.csv")
    code = ("import sys; from mloop.project import Project; "
            "from mloop.data.workspace import checkout_pointers; "
            f"print(len(checkout_pointers(Project({str(root)!r})))); "
            "print(sorted(m for m in ('sqlalchemy', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1", "[]"]


def test_versions_are_recorded_with_their_numbers_on_each_backend(project, tmp_path):
    """The record → row path on SQLite and PostgreSQL: the store forgets the versions (as
    a fresh clone has none), pull records them again under their own numbers."""
    from mloop.store.schema import dataset_versions, datasets

    root = project.root
    (root / "t.csv").write_text("a\n1\n")
    mloop.data.add(root / "t.csv", message="one")
    (root / "t.csv").write_text("a\n2\n")
    second = mloop.data.add(root / "t.csv", message="two")
    add_remote(project, "origin", f"file://{tmp_path / 'remote'}")
    mloop.data.push()
    with project.store.write() as conn:
        conn.execute(dataset_versions.delete())
        conn.execute(datasets.delete())
    (root / "t.csv").unlink()
    result = mloop.data.pull()
    assert result.records == ["t@2"] and (root / "t.csv").read_text() == "a\n2\n"
    again = get(project, "t@2")
    assert (again.tree, again.message, again.created_at) == (
        second.tree, "two", second.created_at)
    mloop.data.pull(refs=["t@1"])
    assert [v.message for v in log(project, "t")] == ["two", "one"]
    assert mloop.data.add(root / "t.csv").version == 2  # unchanged: no new version


@pytest.fixture
def http_folder(tmp_path):
    """A read-only HTTP server over ``tmp_path / 'remote'`` (a static file host)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "remote"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_teammate_pulls_through_a_read_only_http_remote(tmp_path, http_folder):
    a = author(tmp_path, remote_url("file", tmp_path))  # pushed to the folder it serves
    b_root = clone(tmp_path, a.root, "b")
    b = Project.init(b_root)
    add_remote(b, "web", http_folder)
    result = mloop.data.pull("web", project=b)
    assert sorted(result.records) == ["imgs@1", "train@2"]
    assert digests(b_root, FILES) == digests(a.root, FILES)
    assert get(b, "train@2").message == "May export"
