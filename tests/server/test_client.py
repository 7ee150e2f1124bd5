"""The HTTP Backend end to end: the fluent API against a real server, errors, identity,
metrics spooled on disk while the server is away."""

from __future__ import annotations

import logging
import math
import socket

import httpx
import pytest
from fastapi import Request

import mloop
from mloop import repositories
from mloop.core.identity import Identity
from mloop.errors import ConfigError, MalformedRequestError, RunNotFoundError
from mloop.project import Project, set_project
from mloop.repositories.runs import RunStatus
from mloop.server.app import create_app
from tests.server.live import LiveServer


@pytest.fixture
def served(tmp_path):
    project = Project.init(tmp_path / "server")
    yield project
    project.close()


def _client(tmp_path, url, **overrides):
    project = Project.init(tmp_path / "client", store_uri=url, capture_git=False,
                           capture_packages=False, **overrides)
    set_project(project)
    return project


def test_a_training_loop_logs_through_the_server(tmp_path, served):
    with LiveServer(create_app(served)) as server:
        client = _client(tmp_path, server.url)
        with mloop.start_run(experiment="exp", name="first") as run:
            mloop.log_params({"lr": 0.1, "depth": 3})
            for step in range(500):
                mloop.log_metric("loss", 1.0 / (step + 1), step=step)
            mloop.log_metric("odd", float("nan"), step=0)
            mloop.set_tag("team", "risk")
        got = repositories.backend(served).runs.get(run.id)
        assert got.status is RunStatus.FINISHED and got.experiment == "exp"
        assert got.params == {"lr": "0.1", "depth": "3"} and got.tags["team"] == "risk"
        history = repositories.backend(served).runs.metric_history(run.id, "loss")
        assert len(history) == 500 and history[-1][2] == pytest.approx(1 / 500)
        assert math.isnan(got.metrics["odd"])
        # and read back through the client, as the CLI does
        seen = repositories.backend(client).runs.get(run.id)
        assert seen.params == got.params and seen.metric_history("loss").shape[0] == 500
        client.close()


def test_errors_keep_their_class_and_say_what_to_do(tmp_path, served):
    with LiveServer(create_app(served)) as server:
        client = _client(tmp_path, server.url)
        with pytest.raises(RunNotFoundError):
            repositories.backend(client).runs.get("f" * 32)
        bad = httpx.post(f"{server.url}/api/v1/runs/get", json={"run_id": 7})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "malformed_request"
        assert "run_id" in bad.json()["error"]["message"]
        extra = httpx.post(f"{server.url}/api/v1/runs/get", json={"run_id": "a", "x": 1})
        assert extra.status_code == 400 and "x" in extra.json()["error"]["message"]
        nul = httpx.post(f"{server.url}/api/v1/experiments/get_or_create",
                         json={"name": "a\u0000b"})
        assert nul.status_code == 400
        big = httpx.post(f"{server.url}/api/v1/runs/set_seed",
                         json={"run_id": "a", "seed": 2**70})
        assert big.status_code == 400 and "64 bits" in big.text
        assert httpx.get(f"{server.url}/health").text == "OK"
        assert httpx.get(f"{server.url}/version").text == mloop.__version__
        missing = httpx.post(f"{server.url}/api/v1/runs/no_such_method", json={})
        assert missing.status_code == 404 and "newer server" in missing.text
        newer = httpx.post(f"{server.url}/api/v1/runs/newest_id", json={},
                           headers={"X-Mloop-Api": "2", "X-Mloop-Version": "9.0"})
        assert newer.status_code == 400
        assert newer.json()["error"]["code"] == "version_mismatch"
        assert "upgrade the server" in newer.json()["error"]["message"]
        with pytest.raises(MalformedRequestError):
            repositories.backend(client).runs.get(7)  # type: ignore[arg-type]
        client.close()


def test_the_server_names_the_caller_not_the_client(tmp_path, served):
    def alice(request: Request, need: str) -> Identity:
        return Identity("alice", "admin", "0123456789ab")

    with LiveServer(create_app(served, authorize=alice)) as server:
        client = _client(tmp_path, server.url)
        with mloop.start_run(experiment="exp") as run:
            pass
        assert repositories.backend(served).runs.get(run.id).user == "alice"
        deployments = repositories.backend(client).deployments
        deployments.create("web")
        from mloop.repositories.deployments import Arm, NewRevision, Strategy

        deployments.add_revision("web", NewRevision(
            strategy=Strategy.REPLACE, arms=(Arm("stable", "models:/m/1", "models:/m/1", 100.0),)),
            initiated_by="mallory")
        (event, *_) = repositories.backend(served).deployments.events("web")
        assert event.initiated_by == "alice"
        client.close()


def test_metrics_wait_on_disk_while_the_server_is_away(tmp_path, served, caplog):
    server = LiveServer(create_app(served))
    port = server.port
    client = _client(tmp_path, server.url, flush_interval=0.05)
    run = mloop.start_run(experiment="exp")
    for step in range(100):
        mloop.log_metric("m", float(step), step=step)
    run.flush()
    server.stop()
    # hold the port (bound, not listening: connections are refused) so that no other
    # test's server takes it while this one is away
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
    held.bind(("127.0.0.1", port))
    caplog.set_level(logging.WARNING)
    for step in range(100, 250):
        mloop.log_metric("m", float(step), step=step)  # never waits on the network
    run.flush()
    spool = client.settings.project_dir / "spool" / "metrics"
    assert list(spool.glob("*.json*")), "the points went to disk"
    assert "kept on disk" in caplog.text and "mloop_" not in caplog.text
    run.end()  # the end waits on disk too
    held.close()
    server = LiveServer(create_app(served), port=port)
    try:
        with mloop.start_run(experiment="exp") as again:  # a later run sends them first
            mloop.log_metric("x", 1.0)
        history = repositories.backend(served).runs.metric_history(run.id, "m")
        assert [p[0] for p in history] == list(range(250))
        assert repositories.backend(served).runs.get(run.id).status is RunStatus.FINISHED
        assert repositories.backend(served).runs.get(again.id).metrics == {"x": 1.0}
        assert not list(spool.glob("*.json"))
    finally:
        server.stop()
        client.close()


def test_tracking_uri_is_an_alias_of_the_store_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOOP_TRACKING_URI", "http://127.0.0.1:5999")
    project = Project(Project.init(tmp_path / "p").root)
    assert project.remote and project.settings.store_uri == "http://127.0.0.1:5999"
    monkeypatch.setenv("MLOOP_STORE_URI", "http://127.0.0.1:5998")
    with pytest.raises(ConfigError, match="both set"):
        Project(tmp_path / "p")
    monkeypatch.setenv("MLOOP_STORE_URI", "http://127.0.0.1:5999")
    assert Project(tmp_path / "p").remote
