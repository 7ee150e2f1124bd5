"""Pipeline values that are pickles: signed with the user's key, refused when not."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import mloop
from mloop.core import signing
from mloop.errors import ConfigError, UnsafeModelError, UnsafeValueError
from mloop.pipelines import values
from mloop.pipelines.engine import run_pipeline
from mloop.pipelines.registry import find_pipeline
from mloop.project import Project
from tests.pipelines.test_engine import _write
from tests.registry import hostile


class Sum:
    def predict(self, X):
        return np.asarray(X, dtype=float).sum(axis=1)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def allowing(project: Project) -> Iterator[Project]:
    """The same project, opened by a user who allows pickles."""
    opened = Project(project.root, store_uri=project.settings.store_uri, allow_pickle=True)
    yield opened
    opened.close()


def test_pickles_are_signed_with_a_key_kept_with_the_user(project: Project,
                                                          tmp_path: Path) -> None:
    ref = values.store(project, "v", {1: "a", 2: (3, 4)}, None, None)
    assert ref.kind == "pickle" and ref.signed
    key = tmp_path / "user-config" / "mloop" / "signing.key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not key.is_relative_to(project.root)  # never in the project, nor its store
    assert values.load(project, ref) == {1: "a", 2: (3, 4)}  # no opt-in needed
    assert values.ValueRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    json_ref = values.store(project, "j", {"a": [1, 2]}, None, None)
    assert json_ref.kind == "json" and json_ref.sig is None  # JSON stays as it was


def test_a_tampered_or_foreign_pickle_is_refused(project: Project, marker: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 allowing: Project) -> None:
    ref = values.store(project, "v", {1: "a"}, None, None)
    evil = project.objects.put_bytes(hostile.evil_pickle(marker))
    swapped = dataclasses.replace(ref, digest=evil)  # the signature of another value
    unsigned = dataclasses.replace(swapped, sig=None)
    monkeypatch.setenv(signing.KEY_ENV, "k" * 40)  # another user's (or machine's) key
    foreign = values.store(project, "v", {2: "b"}, None, None)
    monkeypatch.delenv(signing.KEY_ENV)
    for bad, why in ((swapped, "signed by another key"), (unsigned, "is not signed"),
                     (foreign, "signed by another key")):
        with pytest.raises(UnsafeValueError, match=why) as err:
            values.load(project, bad)
        assert isinstance(err.value, UnsafeModelError) and err.value.exit_code == 7
        assert "MLOOP_ALLOW_PICKLE" in str(err.value) and signing.KEY_ENV in str(err.value)
        assert not values.exists(project, bad)  # a cached step holding it runs again
    assert not marker.exists()
    assert values.load(allowing, foreign) == {2: "b"}
    values.load(allowing, unsigned)  # the user's explicit choice
    assert marker.exists()


def test_the_signing_key_is_guarded(sqlite_project: Project, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    values.store(sqlite_project, "v", (1, 2), None, None)
    key = tmp_path / "user-config" / "mloop" / "signing.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        values.store(sqlite_project, "v", (1, 2), None, None)
    key.chmod(0o600)
    monkeypatch.setenv(signing.KEY_ENV, "short")
    with pytest.raises(ConfigError, match="at least 32"):
        values.store(sqlite_project, "v", (1, 2), None, None)
    monkeypatch.delenv(signing.KEY_ENV)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocked))  # no key can be made there
    with pytest.raises(ConfigError, match="MLOOP_SIGNING_KEY"):
        values.store(sqlite_project, "v", (1, 2), None, None)


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    code = "from mloop.core import signing; print(signing.sign('pickle', 'abc'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ)) for _ in range(4)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(outs) == 1 and len(next(iter(outs))) == 64


def test_a_model_value_loads_while_its_files_are_the_signed_ones(project: Project) -> None:
    from mloop.tracking import artifacts

    with mloop.start_run() as run:
        ref = values.store(project, "m", Sum(), mloop.Model, run.id)
    assert ref.kind == "model" and ref.signed
    # a python model is a pickle: the signed value loads it, nothing else does unasked
    assert values.load(project, ref).predict([[1, 2]]).tolist() == [3.0]
    with pytest.raises(UnsafeModelError):
        mloop.load_model(str(ref.uri))
    unsigned = dataclasses.replace(ref, sig=None)
    with pytest.raises(UnsafeModelError):
        values.load(project, unsigned)
    assert not values.exists(project, unsigned)
    # the files change under the same run path: the signature no longer covers them
    artifacts.log_bytes(project, run.id, hostile.evil_pickle(project.root / "x"),
                        "m/model.joblib")
    with pytest.raises(UnsafeModelError, match="changed after"):
        values.load(project, ref)
    assert not (project.root / "x").exists()


PIPE = """
    import mloop

    @mloop.step
    def make() -> dict:
        return {(1, 2): 3, (4, 5): 6}      # tuple keys: JSON cannot hold it, so a pickle

    @mloop.step
    def use(make: dict) -> int:
        return sum(make.values())

    pairs = mloop.Pipeline("pairs", steps=[make, use])
"""


def test_steps_pass_pickles_through_their_processes_and_reject_unsigned_cache(
        sqlite_project: Project) -> None:
    from mloop.store.lite import lite

    _write(sqlite_project, "pipelines.py", PIPE)
    pipe = find_pipeline(sqlite_project, "pairs")
    first = run_pipeline(sqlite_project, pipe)
    assert first.status == "succeeded", first.error
    assert first.steps["make"].outputs["make"].kind == "pickle"
    assert first.output("use", sqlite_project) == 9
    # the cache is rewritten without signatures (as by someone else, or an old mloop)
    db = lite(sqlite_project)
    with db.write() as q:
        for row in q.all("SELECT key, outputs FROM pipeline_cache"):
            outs = {k: {f: v for f, v in ref.items() if f != "sig"}
                    for k, ref in json.loads(row["outputs"]).items()}
            q.all("UPDATE pipeline_cache SET outputs = :o WHERE key = :k",
                  {"o": json.dumps(outs), "k": row["key"]})
    again = run_pipeline(sqlite_project, pipe)
    assert again.status == "succeeded", again.error
    assert again.steps["make"].status == "ran"  # made anew and signed, never unpickled
    assert again.output("use", sqlite_project) == 9
