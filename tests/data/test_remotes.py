"""Remotes keep their credentials out of the metadata store (SQLite and PostgreSQL)."""

import logging
import os
import stat
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from sqlalchemy import select

import mloop
from mloop.core.credentials import credentials_path, get_credentials
from mloop.data.remotes import (
    CREDENTIALS_KIND,
    add_remote,
    env_credentials,
    list_remotes,
    open_remote,
    remove_remote,
    split_credentials,
    storage_options,
)
from mloop.errors import ConfigError, InvalidInputError, NotFoundError
from mloop.store.schema import remotes
from tests.cli.test_cli import run_cli

SECRETS = ("S3CR3T-pass", "T0KEN-value", "AKIA-ID-77")


def _stored_text(project) -> str:
    """What the project keeps of its remotes: the project config (git shares it) and
    every column of every row of the remotes table an older mloop wrote, as text."""
    with project.store.read() as conn:
        rows = repr([tuple(r) for r in conn.execute(select(remotes)).all()])
    return (project.root / ".mloop" / "config.toml").read_text() + rows


def _bucket() -> str:
    return f"bkt-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(("url", "clean", "found"), [
    ("s3://AKIA:se%2Fcret@bucket/prefix", "s3://bucket/prefix",
     {"key": "AKIA", "secret": "se/cret"}),
    ("s3://KEY:SEC@RET@bucket/p", "s3://bucket/p", {"key": "KEY", "secret": "SEC@RET"}),
    ("s3://KEY:SE?C#RET@bucket/p", "s3://bucket/p", {"key": "KEY", "secret": "SE?C#RET"}),
    ("sftp://bob:pw@host:2222/data", "sftp://host:2222/data",
     {"username": "bob", "password": "pw"}),
    ("ftp://:pw@host/x", "ftp://host/x", {"password": "pw"}),
    ("https://h/x?sig=abc&region=eu&api_key=k", "https://h/x?region=eu",
     {"sig": "abc", "api_key": "k"}),
    ("abfs://container@account.dfs.core.windows.net/p",
     "abfs://container@account.dfs.core.windows.net/p", {}),  # a container, not a secret
    ("s3://bucket/prefix", "s3://bucket/prefix", {}),
    ("/some/folder", "/some/folder", {}),
    ("file:///tmp/x", "file:///tmp/x", {}),
])
def test_split_credentials(url, clean, found):
    assert split_credentials(url) == (clean, found)


def test_a_url_cut_by_a_raw_slash_in_the_password_is_refused_without_the_secret():
    with pytest.raises(InvalidInputError, match="Percent-encode") as err:
        split_credentials("s3://KEY:SE/CR3T@bucket/p")
    assert "CR3T" not in err.value.message


def test_add_keeps_every_secret_out_of_the_store(project):
    bucket = _bucket()
    remote = add_remote(project, "mem", f"memory://AKIA-ID-77:S3CR3T-pass@{bucket}/p"
                        f"?token=T0KEN-value&region=eu", {"endpoint_url": "http://s3.local"})
    assert remote.url == f"memory://{bucket}/p?region=eu"
    text = _stored_text(project)
    assert "region=eu" in text
    for secret in SECRETS:
        assert secret not in text
    path = credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert get_credentials(CREDENTIALS_KIND, remote.url) == {
        "username": "AKIA-ID-77", "password": "S3CR3T-pass", "token": "T0KEN-value",
        "endpoint_url": "http://s3.local"}
    (listed,) = list_remotes(project)
    assert listed.to_dict() == {"name": "mem", "url": remote.url, "default": False,
                                "credentials": ["endpoint_url", "password", "token",
                                                "username"]}
    # re-pointing with a new secret merges into the file; the store still holds none
    add_remote(project, "mem", remote.url, {"token": "T0KEN-2"})
    assert get_credentials(CREDENTIALS_KIND, remote.url)["token"] == "T0KEN-2"
    assert get_credentials(CREDENTIALS_KIND, remote.url)["password"] == "S3CR3T-pass"
    assert "T0KEN-2" not in _stored_text(project)


def test_rows_an_older_mloop_wrote_are_cleaned_when_read(project, caplog):
    bucket = _bucket()
    old = f"memory://AKIA-ID-77:S3CR3T-pass@{bucket}/p?token=T0KEN-value"
    stmt = project.store.insert(remotes).values(name="legacy", url=old, created_at=1)
    with project.store.write() as conn:
        conn.execute(stmt)
    caplog.set_level(logging.WARNING, logger="mloop.data")
    (remote,) = list_remotes(project)
    assert remote.url == f"memory://{bucket}/p"
    for secret in SECRETS:
        assert secret not in _stored_text(project)
        assert secret not in caplog.text
    assert "Moved the credentials" in caplog.text and "legacy" in caplog.text
    assert storage_options(remote) == {"username": "AKIA-ID-77", "password": "S3CR3T-pass",
                                       "token": "T0KEN-value"}
    caplog.clear()
    assert list_remotes(project) == [remote] and caplog.text == ""  # once


class RecordingFS(MemoryFileSystem):
    """A memory file system that remembers the storage options it was opened with."""

    protocol = "mlooprec"
    opened: list = []

    def __init__(self, *args, **storage_options):
        super().__init__(*args, **storage_options)
        RecordingFS.opened.append(storage_options)


@pytest.fixture
def recording():
    fsspec.register_implementation("mlooprec", RecordingFS, clobber=True)
    RecordingFS.opened.clear()
    RecordingFS.clear_instance_cache()
    return RecordingFS.opened


def test_credentials_are_read_when_the_remote_is_used(project, monkeypatch,
                                                      recording):
    csv = project.root / "t.csv"
    csv.write_text("a,b\n1,2\n")
    mloop.data.add(csv, name="t")
    url = f"mlooprec://{_bucket()}/p"
    add_remote(project, "rec-1", url, {"token": "from-file", "anon": False})
    RecordingFS.clear_instance_cache()
    monkeypatch.setenv("MLOOP_REMOTE_REC_1_TOKEN", "from-env")  # the env wins
    monkeypatch.setenv("MLOOP_REMOTE_REC_1_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("MLOOP_REMOTE_OTHER_TOKEN", "not-mine")
    assert mloop.data.push("rec-1").sent > 0
    assert recording[-1] == {"token": "from-env", "anon": False,
                             "endpoint_url": "http://minio:9000"}


def test_env_credentials_names():
    env = {"MLOOP_REMOTE_MY_S3_SECRET": "s", "MLOOP_REMOTE_MY_S3_ANON": "true",
           "MLOOP_REMOTE_MY_S3_": "x", "MLOOP_REMOTE_OTHER_KEY": "k"}
    assert env_credentials("my-s3", env) == {"secret": "s", "anon": True}


def test_an_http_remote_with_credentials_is_refused_without_echoing_them(project):
    with pytest.raises(InvalidInputError, match="HTTP remote") as err:
        add_remote(project, "web", "https://user:S3CR3T-pass@example.com/x")
    assert "S3CR3T-pass" not in err.value.message
    assert "S3CR3T-pass" not in _stored_text(project)


def test_cli_remote_add_never_prints_or_stores_the_secret(sqlite_project):
    root = sqlite_project.root
    out = run_cli("remote", "add", "s3r", "s3://KEY:SECRET@bucket/prefix", cwd=root,
                  check=False)
    assert "SECRET" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    bucket = _bucket()
    out = run_cli("remote", "add", "mem", f"memory://KEY:SECRET@{bucket}/prefix", cwd=root)
    assert out.stdout.splitlines() == [
        f"Remote mem → memory://{bucket}/prefix",
        f"Credentials (password, username) saved in {credentials_path()}, not in the project."]
    listed = run_cli("remote", "list", cwd=root).stdout
    assert "SECRET" not in listed and "password, username" in listed
    assert "SECRET" not in _stored_text(sqlite_project)
    assert get_credentials(CREDENTIALS_KIND, f"memory://{bucket}/prefix")["password"] == "SECRET"


def test_cli_credential_option_and_prompt(sqlite_project):
    import subprocess
    import sys

    url = f"memory://{_bucket()}/p"
    out = subprocess.run(
        [sys.executable, "-m", "mloop", "remote", "add", "mem", url, "--credential",
         "endpoint_url=http://s3.local", "--credential", "secret"],
        cwd=sqlite_project.root, input="PROMPTED-S3CR3T\n", capture_output=True, text=True,
        timeout=60, env={k: v for k, v in os.environ.items() if k != "MLOOP_PROJECT"})
    assert out.returncode == 0, out.stderr
    assert "PROMPTED-S3CR3T" not in out.stdout + out.stderr
    assert get_credentials(CREDENTIALS_KIND, url) == {"endpoint_url": "http://s3.local",
                                                      "secret": "PROMPTED-S3CR3T"}
    bad = run_cli("remote", "add", "mem", url, "--credential", "=x", cwd=sqlite_project.root,
                  check=False)
    assert bad.returncode == 2 and "OPTION=VALUE" in bad.stderr


def test_remotes_live_in_the_project_config(project, tmp_path):
    config = project.root / ".mloop" / "config.toml"
    before = config.read_text()
    add_remote(project, "origin", f"file://{tmp_path / 'a'}")
    add_remote(project, "team.s3", f"memory://{_bucket()}/p", default=True)
    text = config.read_text()
    assert text.startswith(before)  # the template and its comments are kept
    assert '[remotes."team.s3"]' in text and "default = true" in text
    assert [(r.name, r.default, r.source) for r in list_remotes(project)] == [
        ("origin", False, "config"), ("team.s3", True, "config")]
    add_remote(project, "origin", f"file://{tmp_path / 'b'}", default=True)  # moves the flag
    assert [(r.name, r.default) for r in list_remotes(project)] == [
        ("origin", True), ("team.s3", False)]
    remove_remote(project, "team.s3")
    assert "team.s3" not in config.read_text()
    with pytest.raises(NotFoundError):
        remove_remote(project, "team.s3")


def test_an_older_mloops_remote_stays_visible_until_re_added(project, tmp_path):
    url = f"file://{tmp_path / 'old'}"
    with project.store.write() as conn:
        conn.execute(project.store.insert(remotes).values(name="old", url=url, created_at=1))
    (listed,) = list_remotes(project)
    assert (listed.name, listed.url, listed.source) == ("old", url, "store")
    assert open_remote(project, None).url.endswith("/old")  # the only one: the default
    add_remote(project, "old", url)  # now in the config, the row is gone
    assert [(r.name, r.source) for r in list_remotes(project)] == [("old", "config")]
    with project.store.read() as conn:
        assert conn.execute(select(remotes)).all() == []


@pytest.mark.parametrize(("table", "error"), [
    ('[remotes.origin]\nurl = "s3://AKIA:S3CR3T-pass@bucket/p"\n', "password or token"),
    ('[remotes.origin]\nurl = "https://h/x?token=T0KEN-value"\n', "password or token"),
    ('[remotes.origin]\nurll = "s3://bucket/p"\n', "did you mean 'url'"),
    ('[remotes.origin]\nurl = "s3://b"\ndefault = "yes"\n', "default"),
    ('[remotes."bad name"]\nurl = "s3://b"\n', "Invalid remote name"),
])
def test_the_project_config_refuses_secrets_and_mistakes_in_remotes(project, table, error):
    config = project.root / ".mloop" / "config.toml"
    config.write_text(config.read_text() + table)
    with pytest.raises(ConfigError, match=error) as err:
        list_remotes(mloop.project.Project(project.root))
    for secret in SECRETS:
        assert secret not in err.value.message


def test_remotes_in_the_users_own_config_are_refused(project):
    from mloop.core.settings import user_config_path

    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[remotes.origin]\nurl = "s3://bucket/p"\n')
    with pytest.raises(ConfigError, match="belongs in a project's"):
        mloop.project.Project(project.root)
