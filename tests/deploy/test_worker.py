"""``mloop worker --deployment``: jobs of ``deployments:/NAME`` routed by the deployment's
current revision (weights, sticky key, fallback, shadow), indexed as deployment traffic, and
a new revision followed; on the project's SQLite broker, with tiny in-process models."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mloop
import mloop.deploy as deploy
from mloop import repositories
from mloop.cli import main
from mloop.deploy.router import Split, request_key
from mloop.deploy.worker import DeploymentWorker, job_key, queue_of
from mloop.project import Project
from mloop.repositories.traffic import TrafficColumns
from mloop.serving.broker import Broker, JobFailed, open_broker
from tests.deploy.toys import register


@pytest.fixture
def toys(sqlite_project: Project) -> Project:
    return register(sqlite_project)


@pytest.fixture
def broker(toys: Project) -> Iterator[Broker]:
    """The project's SQLite queue; a failed job is dead at once (no retry to wait for)."""
    b = open_broker("sqlite", toys.root, max_attempts=1, backoff=0.01)
    yield b
    b.close()


def _worker(project: Project, name: str, broker: Broker, **kwargs: Any) -> DeploymentWorker:
    return DeploymentWorker(project, name, broker, concurrency=1, allow_pickle=True,
                            rng=random.Random(7), **kwargs)


def _rows(n: int = 1, a: float = 1.0, user: str = "u0") -> list[dict[str, Any]]:
    return [{"a": a, "user": user}] * n


def _traffic(project: Project, name: str, revision: int) -> TrafficColumns:
    return repositories.backend(project).traffic.read(name, revision)


def test_jobs_are_split_by_weight_predicted_per_arm_and_all_indexed(toys, broker):
    deploy.create("churn", "models:/toy/1", project=toys)
    rev = deploy.ab("churn", ["a=models:/toy/1:30", "b=models:/toy/2:70"], project=toys)
    first = mloop.submit("deployments:/churn", _rows(2))  # the public way in
    jobs = [first, *(broker.enqueue(queue_of("churn"), _rows(2)) for _ in range(299))]
    worker = _worker(toys, "churn", broker)
    assert worker.run(max_jobs=300) == 300  # the traffic index is written when it returns
    results = {job: broker.result(job, timeout=5) for job in jobs}
    arms = Counter(r["arm"] for r in results.values())
    assert abs(arms["b"] / 300 - 0.7) < 0.1, arms
    for r in results.values():  # the arm's model answered, and the job says so
        version = 1 if r["arm"] == "a" else 2
        assert r["model"] == f"models:/toy/{version}"
        assert r["predictions"] == [float(version)] * 2
        assert (r["deployment"], r["revision"]) == ("churn", rev.number)
        assert "fallback" not in r
    rows = _traffic(toys, "churn", rev.number)
    assert len(rows) == 600 and set(rows.outcome) == {"ok"}
    assert set(rows.request_id) == set(jobs)  # the job id is the request id
    by_job = dict(zip(rows.request_id, rows.arm, strict=True))
    assert all(by_job[job] == r["arm"] for job, r in results.items())
    from mloop.serving.predlog import read_predictions  # and the prediction log, by version

    logged = read_predictions(toys.root / ".mloop" / "predictions", "toy")
    assert set(logged["request_id"]) == set(jobs)


def test_a_sticky_field_keeps_a_user_in_one_arm_as_the_server_does(toys, broker):
    deploy.create("churn", "models:/toy/1", project=toys)
    rev = deploy.ab("churn", ["a=models:/toy/1:50", "b=models:/toy/2:50"], sticky="user",
                    project=toys)
    users = [f"user-{i}" for i in range(12)]
    jobs = {broker.enqueue(queue_of("churn"), _rows(1, user=u)): u for u in users * 4}
    # the columns form of a payload is keyed by its first row too
    jobs[broker.enqueue(queue_of("churn"), {"a": [1.0, 1.0], "user": ["user-0", "x"]})] = \
        "user-0"
    _worker(toys, "churn", broker).run(max_jobs=len(jobs))
    seen: dict[str, set[str]] = {}
    for job, user in jobs.items():
        seen.setdefault(user, set()).add(broker.result(job, timeout=5)["arm"])
    assert all(len(arms) == 1 for arms in seen.values()), seen
    assert set().union(*seen.values()) == {"a", "b"}  # twelve users did not all land in one
    split = Split.of(rev.weights)  # the arm a request of that user gets from the server
    for user, (arm,) in seen.items():
        assert arm == split.pick(request_key({"records": _rows(1, user=user)}, "user", {}))
    assert job_key(_rows(1, user="u"), None) is None
    assert job_key({"a": [1.0]}, "user") is None


def test_a_new_revision_is_followed_without_a_restart(toys, broker):
    deploy.create("churn", "models:/toy/1", project=toys)
    blue_green = deploy.bluegreen("churn", "models:/toy/2", project=toys)
    worker = _worker(toys, "churn", broker, follow=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        before = broker.result(broker.enqueue(queue_of("churn"), _rows()), timeout=10)
        assert (before["model"], before["arm"]) == ("models:/toy/1", "blue")
        deploy.switch("churn", project=toys)
        deadline, after = time.monotonic() + 10, before
        while after["model"] != "models:/toy/2":
            assert time.monotonic() < deadline, "the switch was not followed in time"
            after = broker.result(broker.enqueue(queue_of("churn"), _rows()), timeout=10)
        assert (after["arm"], after["revision"]) == ("green", blue_green.number)
        assert after["predictions"] == [2.0]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and worker.failed == 0


def test_a_failing_arm_is_answered_by_the_fallback_model_or_value(toys, broker):
    with_model = deploy.create("churn", "models:/toy/1", fallback="models:/toy/3",
                               project=toys)
    with_value = deploy.create("steady", "models:/toy/1", fallback_value=-7, project=toys)
    bare = deploy.create("bare", "models:/toy/1", project=toys)
    jobs = {}
    for name in ("churn", "steady", "bare"):  # a bad job among good ones, in one batch
        jobs[name] = [broker.enqueue(queue_of(name), _rows(2, a=a)) for a in (1.0, -1.0, 1.0)]
        _worker(toys, name, broker).run(max_jobs=3)
    good, bad, _ = (broker.result(j, timeout=5) for j in jobs["churn"])
    assert good["predictions"] == [1.0, 1.0] and "fallback" not in good
    assert bad["fallback"] is True and bad["model"] == "models:/toy/3"
    assert (bad["arm"], bad["predictions"]) == ("stable", [3.0, 3.0])
    assert "probabilities" not in bad
    valued = broker.result(jobs["steady"][1], timeout=5)
    assert valued["fallback"] is True and valued["predictions"] == [-7, -7]
    assert valued["model"] == "models:/toy/1"
    assert broker.result(jobs["bare"][0], timeout=5)["predictions"] == [1.0, 1.0]
    with pytest.raises(JobFailed, match="a must not be negative"):
        broker.result(jobs["bare"][1], timeout=5)
    outcomes = Counter(_traffic(toys, "churn", with_model.number).outcome)
    assert outcomes == {"ok": 4, "fallback": 2}
    assert Counter(_traffic(toys, "steady", with_value.number).outcome) == {"ok": 4,
                                                                            "fallback": 2}
    bare_rows = _traffic(toys, "bare", bare.number)
    assert Counter(bare_rows.outcome) == {"ok": 4, "error": 2}
    assert set(bare_rows.request_id) == set(jobs["bare"])


def test_a_callers_mistake_fails_the_job_without_fallback_or_index(toys, broker):
    rev = deploy.create("churn", "models:/toy/1", fallback_value=0, project=toys)
    wrong = broker.enqueue(queue_of("churn"), [{"b": 1.0}])  # the signature refuses it
    _worker(toys, "churn", broker).run(max_jobs=1)
    with pytest.raises(JobFailed, match="missing column"):
        broker.result(wrong, timeout=5)
    assert len(_traffic(toys, "churn", rev.number)) == 0


def test_shadow_answers_are_indexed_and_never_returned(toys, broker):
    deploy.create("churn", "models:/toy/1", project=toys)
    rev = deploy.shadow("churn", "models:/toy/2", sample=1.0, project=toys)
    jobs = [broker.enqueue(queue_of("churn"), _rows(3)) for _ in range(10)]
    worker = _worker(toys, "churn", broker)
    worker.run(max_jobs=10)
    for job in jobs:
        r = broker.result(job, timeout=5)
        assert (r["arm"], r["model"], r["predictions"]) == ("primary", "models:/toy/1",
                                                            [1.0] * 3)
        assert "shadow" not in str(r)
    rows = _traffic(toys, "churn", rev.number)
    assert Counter(zip(rows.arm, rows.outcome, strict=True)) == {("primary", "ok"): 30,
                                                                 ("shadow", "shadow"): 30}
    shadow = {(r, p) for r, o, p in zip(rows.request_id, rows.outcome, rows.prediction,
                                        strict=True) if o == "shadow"}
    assert {r for r, _ in shadow} == set(jobs) and {p for _, p in shadow} == {2.0}
    assert worker.shadowed == 10


def _cli(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str]:
    """The real ``main`` in this process: (exit code, stderr)."""
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit) as done:
        main(["worker", *args])
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(("args", "says"), [
    ((), "Give the MODEL"),
    (("models:/toy/1", "--deployment", "churn"), "not both"),
    (("deployments:/churn",), "--deployment churn"),
])
def test_cli_wants_exactly_one_of_model_and_deployment(toys, monkeypatch, capsys, args, says):
    code, err = _cli(toys.root, monkeypatch, capsys, *args)
    assert code == 2 and says in err, err


def test_cli_refuses_an_unknown_deployment_before_announcing(toys, monkeypatch, capsys):
    deploy.create("churn", "models:/toy/1", project=toys)
    code, err = _cli(toys.root, monkeypatch, capsys, "--deployment", "nope")
    assert code == 3 and "nope" in err and "Worker for" not in err, err


def test_the_real_cli_answers_a_deployments_jobs(toys, broker, tmp_path):
    root = Path(__file__).resolve().parents[2]
    deploy.create("churn", "models:/toy/1", project=toys)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])  # the toys unpickle
    log = tmp_path / "worker.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mloop", "worker", "--deployment",
                                 "churn", "--allow-pickle", "--concurrency", "1"],
                                cwd=toys.root, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        job = mloop.submit("deployments:/churn", _rows(2))
        answer = mloop.result(job, timeout=30)
        assert (answer["model"], answer["predictions"]) == ("models:/toy/1", [1.0, 1.0])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = log.read_text()
    assert "Worker for deployments:/churn" in text and "Answered 1 job" in text, text
