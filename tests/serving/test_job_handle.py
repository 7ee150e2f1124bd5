"""Model-on-demand as written: ``mloop.result(mloop.submit(..., broker=URL))`` asks the
broker the job went to; the broker is configured once (MLOOP_BROKER, [serving] broker)."""

import json
import os
import pickle
import signal
import subprocess
import sys

import pytest

import mloop
from mloop.errors import ConfigError, ServiceUnavailableError
from mloop.project import Project
from mloop.serving.broker import JobHandle, open_broker
from mloop.serving.worker import Worker
from tests.cli.test_cli import run_cli
from tests.serving.test_broker import REDIS_URL, X, _redis_or_skip, _register


@pytest.fixture(params=["sqlite", "redis"])
def queue(request, tmp_path):
    if request.param == "redis":
        _redis_or_skip()
        return REDIS_URL
    return f"sqlite:///{tmp_path / 'elsewhere' / 'queue.db'}"


def _answer_one(project, url, model="models:/churn@champion"):
    b = open_broker(url)
    try:
        assert Worker(project, model, b, concurrency=1).run(max_jobs=1) == 1
    finally:
        b.close()


def test_result_asks_the_broker_the_job_went_to(sqlite_project, queue):
    _register()
    mloop.set_alias("churn", "champion", 1)
    job = mloop.submit("models:/churn@champion", X.iloc[:3], broker=queue)
    assert isinstance(job, JobHandle) and isinstance(job, str)
    assert job.broker == queue
    _answer_one(sqlite_project, queue)
    # the project is current and its own queue knows nothing of the job: the handle decides
    assert len(mloop.result(job, timeout=10)["predictions"]) == 3
    # the plain id string works too, on the broker named
    assert mloop.result(str(job), broker=queue, timeout=10)["model"] == "models:/churn/1"


def test_a_handle_is_the_id_string():
    job = JobHandle("0190abc", "redis://:hunter2@127.0.0.1:6379/0")
    assert job == "0190abc" and hash(job) == hash("0190abc") and f"{job}" == "0190abc"
    assert json.dumps({"job": job}) == '{"job": "0190abc"}'
    again = pickle.loads(pickle.dumps(job))
    assert isinstance(again, JobHandle) and again.broker == job.broker
    assert "hunter2" not in repr(job) and "***" in repr(job)


def test_the_default_sqlite_broker_is_pinned_in_the_handle(sqlite_project, tmp_path,
                                                            monkeypatch):
    _register()
    job = mloop.submit("models:/churn/1", X.iloc[:1])
    assert job.broker == f"sqlite:///{sqlite_project.root / '.mloop' / 'queue.db'}"
    _answer_one(sqlite_project, "sqlite:///" + str(sqlite_project.root / ".mloop/queue.db"),
                "models:/churn/1")
    monkeypatch.chdir(tmp_path)  # outside the project, with no project set
    mloop.set_project(None)
    assert len(mloop.result(job, timeout=10)["predictions"]) == 1


def test_a_plain_id_uses_the_configured_broker(sqlite_project, tmp_path, monkeypatch):
    from_config = f"sqlite:///{tmp_path / 'config-queue.db'}"
    from_env = f"sqlite:///{tmp_path / 'env-queue.db'}"
    config = sqlite_project.root / ".mloop" / "config.toml"
    config.write_text(config.read_text().replace(
        "[serving]\n", f'[serving]\nbroker = "{from_config}"\n'))
    project = Project(sqlite_project.root)
    assert project.settings.broker == from_config
    assert project.settings.source("broker") == "config.toml"
    job = mloop.submit("models:/m/1", [{"a": 1}], project=project)
    assert job.broker == from_config
    b = open_broker(from_config)
    b.complete(b.claim("models:/m/1", "test")[0], {"y": 1})
    b.close()
    assert mloop.result(str(job), project=project, timeout=5) == {"y": 1}

    monkeypatch.setenv("MLOOP_BROKER", from_env)  # env beats config, an argument beats both
    project = Project(sqlite_project.root)
    assert mloop.submit("models:/m/1", [{"a": 1}], project=project).broker == from_env
    assert mloop.submit("models:/m/1", [{"a": 1}], project=project,
                        broker=from_config).broker == from_config
    project.close()


def test_a_relative_sqlite_broker_in_config_is_relative_to_the_project(sqlite_project):
    config = sqlite_project.root / ".mloop" / "config.toml"
    config.write_text(config.read_text().replace(
        "[serving]\n", '[serving]\nbroker = "sqlite:///jobs/q.db"\n'))
    assert Project(sqlite_project.root).settings.broker == \
        f"sqlite:///{sqlite_project.root.resolve() / 'jobs' / 'q.db'}"


def test_a_broker_password_belongs_in_the_user_config(sqlite_project, tmp_path):
    config = sqlite_project.root / ".mloop" / "config.toml"
    config.write_text(config.read_text().replace(
        "[serving]\n", '[serving]\nbroker = "redis://:hunter2@127.0.0.1:6379/0"\n'))
    with pytest.raises(ConfigError, match="MLOOP_BROKER") as caught:
        Project(sqlite_project.root)
    assert "hunter2" not in str(caught.value)
    config.write_text(config.read_text().replace('broker = "redis://:hunter2@127.0.0.1:6379/0"\n',
                                                 ""))
    user = tmp_path / "user-config" / "mloop" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[serving]\nbroker = "redis://:hunter2@127.0.0.1:6379/0"\n')
    project = Project(sqlite_project.root)
    assert project.settings.broker == "redis://:hunter2@127.0.0.1:6379/0"
    assert project.settings.source("broker") == "user config"
    project.close()


def test_outside_a_project_the_default_broker_says_what_to_give(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="MLOOP_BROKER"):
        mloop.submit("models:/m/1", [{"a": 1}])
    monkeypatch.setenv("MLOOP_BROKER", f"sqlite:///{tmp_path / 'q.db'}")
    assert mloop.submit("models:/m/1", [{"a": 1}]).broker == f"sqlite:///{tmp_path / 'q.db'}"


def test_cli_worker_takes_its_broker_from_mloop_broker(sqlite_project, queue):
    """The real `mloop worker`, configured by MLOOP_BROKER only, answers a job submitted
    with broker=...; the handle gets the answer back."""
    _register()
    mloop.set_alias("churn", "champion", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    env["MLOOP_BROKER"] = queue
    worker = subprocess.Popen([sys.executable, "-m", "mloop", "worker",
                               "models:/churn@champion", "--concurrency", "1"],
                              cwd=sqlite_project.root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        job = mloop.submit("models:/churn@champion", X.iloc[:2], broker=queue)
        assert len(mloop.result(job, timeout=60)["predictions"]) == 2
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert f"on {queue}" in err
    assert "Answered 1 job " in err


def test_cli_never_prints_a_broker_password(sqlite_project):
    for args in (["worker", "models:/churn/1", "--broker", "redis://:hunter2@127.0.0.1:1/0"],
                 ["jobs", "dead", "--broker", "redis://user:hunter2@127.0.0.1:1/0"]):
        out = run_cli(*args, cwd=sqlite_project.root, check=False)
        assert out.returncode == ServiceUnavailableError.exit_code, out.stderr
        assert "Cannot reach the Redis broker" in out.stderr
        assert "hunter2" not in out.stdout + out.stderr
