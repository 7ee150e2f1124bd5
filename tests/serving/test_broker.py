"""The broker contract on SQLite and on a real Redis; workers end to end, incl. SIGKILL."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.errors import ServiceUnavailableError
from mloop.serving.broker import JobFailed, open_broker
from mloop.serving.worker import Worker
from tests.conftest import REQUIRE_SERVICES

REDIS_URL = os.environ.get("MLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
X, Y = load_breast_cancer(return_X_y=True, as_frame=True)


def _redis_or_skip():
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc} (MLOOP_REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")


@pytest.fixture(params=["sqlite", "redis"])
def broker_url(request, tmp_path):
    if request.param == "redis":
        _redis_or_skip()
        return REDIS_URL
    return f"sqlite:///{tmp_path / 'queue.db'}"


def test_contract_delivery_results_retries_dead_letters(broker_url):
    model = f"models:/m{uuid.uuid4().hex[:8]}/1"
    b = open_broker(broker_url, visibility=0.5, max_attempts=2, backoff=0.05)
    try:
        first = b.enqueue(model, [{"a": 1}])
        second = b.enqueue(model, [{"a": 2}])
        jobs = b.claim(model, "w1", count=10, block_s=2)
        assert sorted(j.id for j in jobs) == sorted([first, second])
        assert all(j.attempts == 1 for j in jobs)
        assert b.claim(model, "w2", count=10, block_s=0.1) == []  # claimed, not visible
        done, bad = (jobs if jobs[0].id == first else jobs[::-1])
        b.complete(done, {"y": 1})
        b.complete(done, {"y": 99})  # a second run of the same job: the first result wins
        assert b.result(first, timeout=5) == {"y": 1}
        assert b.fail(bad, "boom 1") is True  # retried after a backoff
        again = b.claim(model, "w1", count=10, block_s=3)
        assert [j.id for j in again] == [second] and again[0].attempts == 2
        assert b.fail(again[0], "boom 2") is False  # out of attempts: dead letter
        with pytest.raises(JobFailed, match="boom 2"):
            b.result(second, timeout=5)
        assert [d["id"] for d in b.dead_letters() if d["id"] == second] == [second]
        # a worker that claims and dies: the job comes back after the visibility timeout
        third = b.enqueue(model, [{"a": 3}])
        assert [j.id for j in b.claim(model, "dies", count=1, block_s=2)] == [third]
        time.sleep(0.7)
        taken = b.claim(model, "survivor", count=1, block_s=2)
        assert [j.id for j in taken] == [third] and taken[0].attempts == 2
        with pytest.raises(TimeoutError):
            b.result(b.enqueue(model, [{"a": 4}]), timeout=1)
    finally:
        b.close()


def test_unreachable_redis_is_a_clear_error():
    with pytest.raises(ServiceUnavailableError, match="Cannot reach the Redis broker"):
        open_broker("redis://127.0.0.1:1/0")


def _register(C=1.0):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X, Y)
    with mloop.start_run():
        mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
    return model


def test_worker_answers_follows_the_alias_and_isolates_bad_jobs(sqlite_project, broker_url):
    first = _register()
    mloop.set_alias("churn", "champion", 1)
    b = open_broker(broker_url, visibility=5, max_attempts=1, backoff=0.01)
    worker = Worker(sqlite_project, "models:/churn@champion", b, concurrency=2, follow=0.2)
    good = [b.enqueue(worker.model_ref, X.iloc[i:i + 3].to_dict(orient="records"))
            for i in range(0, 30, 3)]
    bad = b.enqueue(worker.model_ref, [{"mean radius": "not a number"}])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        out = b.result(good[0], timeout=20)
        assert out["predictions"] == first.predict(X.iloc[0:3]).tolist()
        assert out["model"] == "models:/churn/1"
        for job in good[1:]:
            assert len(b.result(job, timeout=20)["predictions"]) == 3
        with pytest.raises(JobFailed, match="ColumnError: Input is missing column"):
            b.result(bad, timeout=20)
        _register(C=0.01)
        mloop.set_alias("churn", "champion", 2)
        time.sleep(0.5)
        moved = b.enqueue(worker.model_ref, X.iloc[:2].to_dict(orient="records"))
        assert b.result(moved, timeout=20)["model"] == "models:/churn/2"
    finally:
        stop.set()
        thread.join(timeout=30)
        b.close()
    # answered jobs joined the prediction log (flushed when the worker stopped), by job id
    from mloop.serving.predlog import read_predictions

    logged = read_predictions(sqlite_project.root / ".mloop" / "predictions", "churn")
    assert set(good) <= set(logged["request_id"])
    assert moved in set(logged.loc[logged["version"] == 2, "request_id"])
    assert bad not in set(logged["request_id"])
    assert "in.mean radius" in logged.columns


def test_a_worker_killed_mid_job_loses_nothing(sqlite_project, tmp_path):
    _register()
    queue = f"sqlite:///{tmp_path / 'q.db'}"
    b = open_broker(queue, visibility=1.0)
    jobs = [b.enqueue("models:/churn/1", X.iloc[i:i + 1].to_dict(orient="records"))
            for i in range(40)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    cmd = [sys.executable, "-m", "mloop", "worker", "models:/churn/1", "--broker", queue,
           "--visibility", "1", "--concurrency", "1"]
    victim = subprocess.Popen(cmd, cwd=sqlite_project.root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        b.result(jobs[0], timeout=30)  # it is working
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        rescuer = subprocess.Popen(cmd, cwd=sqlite_project.root, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            answers = [b.result(j, timeout=60) for j in jobs]
        finally:
            rescuer.send_signal(signal.SIGTERM)
            rescuer.wait(timeout=30)
        assert all(len(a["predictions"]) == 1 for a in answers)
    finally:
        if victim.poll() is None:
            victim.kill()
        b.close()


def test_submit_and_result_api(sqlite_project):
    _register()
    job = mloop.submit("models:/churn/1", X.iloc[:2])
    b = open_broker("sqlite", sqlite_project.root)
    worker = Worker(sqlite_project, "models:/churn/1", b, concurrency=1)
    worker.run(max_jobs=1)
    assert len(mloop.result(job, timeout=5)["predictions"]) == 2
    b.close()


def test_a_worker_outlives_a_broker_outage(sqlite_project, tmp_path):
    _register()
    real = open_broker(f"sqlite:///{tmp_path / 'q.db'}")
    job = real.enqueue("models:/churn/1", X.iloc[:1].to_dict(orient="records"))

    class Flaky:
        outages = 2

        def __getattr__(self, name):
            return getattr(real, name)

        def claim(self, *args, **kwargs):
            if self.outages:
                self.outages -= 1
                raise ConnectionError("broker restarting")
            return real.claim(*args, **kwargs)

    worker = Worker(sqlite_project, "models:/churn/1", Flaky(), concurrency=1)
    assert worker.run(max_jobs=1) == 1
    assert worker.reconnects == 2
    assert len(real.result(job, timeout=5)["predictions"]) == 1
    real.close()
