"""The environment lock is cached per user: a hit equals a fresh capture, an installed or
removed distribution invalidates it, a corrupt cache file is rebuilt."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mloop
from mloop.project import Project
from mloop.tracking import environment as env


def _no_scan(*args, **kwargs):
    raise AssertionError("the installed distributions were read although the cache holds")


def _dist(site: Path, name: str, version: str) -> Path:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return info


@pytest.fixture
def site(tmp_path, monkeypatch):
    """An extra site-packages folder on sys.path, empty to start with."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_a_hit_returns_the_uncached_lock_without_reading_any_metadata(site, monkeypatch):
    first = env.capture_environment()
    assert env._cache_file().is_file() and env._cache_file().parent == env.cache_dir()
    assert str(env.cache_dir()).startswith(os.environ["XDG_CACHE_HOME"])
    assert first == env.capture_environment(cache=False)
    monkeypatch.setattr(env.metadata, "distributions", _no_scan)
    assert env.capture_environment() == first
    assert oct(env._cache_file().stat().st_mode & 0o777) == "0o600"


def test_installing_or_removing_a_distribution_invalidates_the_cache(site):
    before = env.capture_environment()
    assert "cache-probe==" not in before.packages
    info = _dist(site, "cache-probe", "1.0")
    after = env.capture_environment()
    assert "cache-probe==1.0" in after.packages.splitlines()
    assert after == env.capture_environment(cache=False) and after.id != before.id
    for f in info.iterdir():  # an upgrade: the old dist-info goes, a new one comes
        f.unlink()
    info.rmdir()
    _dist(site, "cache-probe", "2.0")
    upgraded = env.capture_environment()
    assert "cache-probe==2.0" in upgraded.packages.splitlines()
    assert "cache-probe==1.0" not in upgraded.packages
    assert upgraded == env.capture_environment(cache=False)


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"key": 1}', "\x00\xff",
                                     '{"key": "stale", "packages": "evil==6.6.6"}'])
def test_a_corrupt_or_stale_cache_file_is_rebuilt(site, content):
    truth = env.capture_environment(cache=False)
    env._cache_file().parent.mkdir(parents=True, exist_ok=True)
    env._cache_file().write_text(content, encoding="latin-1")
    assert env.capture_environment() == truth
    assert json.loads(env._cache_file().read_text())["packages"] == truth.packages


def test_an_unwritable_cache_folder_costs_only_the_scan(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert env.capture_environment() == env.capture_environment(cache=False)


def test_a_tracked_run_in_a_new_process_records_the_cached_lock(project, tmp_path):
    """Two processes: the first writes the cache, the second records the same lock."""
    code = ("import mloop\n"
            "with mloop.start_run() as run:\n"
            "    pass\n"
            "print(run.id)\n")
    environ = dict(os.environ, MLOOP_CAPTURE_PACKAGES="1",
                   PYTHONPATH=str(Path(mloop.__file__).resolve().parents[1]))
    if project.settings.store_uri.startswith("postgresql"):
        environ["MLOOP_STORE_URI"] = project.settings.store_uri
    ids = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], cwd=project.root, env=environ,
                              capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.strip().splitlines()[-1])
    fresh = Project(project.root, store_uri=project.settings.store_uri)
    try:
        envs = [mloop.get_run(i, project=fresh).environment for i in ids]
    finally:
        fresh.close()
    assert envs[0] is not None and envs[1] is not None
    assert envs[0].packages == envs[1].packages
    assert any(p.lower().startswith("sqlalchemy==") for p in envs[1].packages)
    assert list(Path(os.environ["XDG_CACHE_HOME"], "mloop").glob("env-lock-*.json"))
