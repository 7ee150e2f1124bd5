"""``mloop serve --deployment``: real uvicorn servers on 127.0.0.1, in this process (so the
tiny test models below unpickle), driven over HTTP while deployments change under them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import mloop
import mloop.deploy as deploy
from mloop import repositories
from mloop.deploy.serving import EXTENSION, plan_of
from mloop.errors import ConflictError
from mloop.project import Project
from mloop.repositories.deployments import Arm, Revision, RevisionStatus, Strategy
from mloop.serving.server import ServeConfig, create_app
from tests.deploy.toys import EXAMPLE, Toy, register

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.2


@pytest.fixture
def toys(sqlite_project: Project) -> Project:
    return register(sqlite_project)


@pytest.fixture
def any_toys(project: Project, backend: str, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The toys on SQLite and on PostgreSQL (replicas share a PostgreSQL store)."""
    if backend:  # the servers open the project by its folder: the store comes from the env
        monkeypatch.setenv("MLOOP_STORE_URI", backend)
    return register(project)


class Served:
    """``create_app`` under uvicorn in a thread, as ``mloop serve`` runs it."""

    def __init__(self, project: Project, *, models: tuple[str, ...] = (),
                 deployments: tuple[str, ...] = (), controller: bool = False) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = ServeConfig(list(models), project=str(project.root), allow_pickle=True,
                             monitor_every=0, deployments=list(deployments),
                             extensions=[EXTENSION] if deployments else [],
                             poll_interval=POLL, controller=controller)
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.02)

    def __call__(self, path: str, body: Any = None, headers: dict[str, str] | None = None
                 ) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                kind = r.headers.get_content_type()
                return r.status, json.loads(text) if kind == "application/json" else \
                    text.decode(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), e.headers

    def predict(self, name: str, a: float = 1.0, user: str = "u0",
                headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        return self(f"/predict?model={name}", {"records": [{"a": a, "user": user}]}, headers)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def serve():
    started: list[Served] = []

    def start(project: Project, **kwargs: Any) -> Served:
        started.append(Served(project, **kwargs))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def _traffic(project: Project, name: str, revision: int, rows: int) -> Any:
    """The indexed rows of a revision, once ``rows`` of them are written (~1 s batches)."""
    traffic = repositories.backend(project).traffic
    deadline = time.monotonic() + 10
    while True:
        found = traffic.read(name, revision)
        if len(found) >= rows or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_weighted_sticky_routes_headers_metrics_and_the_traffic_index(toys, serve):
    rev = deploy.create("churn", "models:/toy/1", project=toys)
    rev = deploy.ab("churn", ["a=models:/toy/1:30", "b=models:/toy/2:70"], sticky="user",
                    project=toys)
    app = serve(toys, deployments=("churn",))
    n = 300
    answers = [app.predict("churn", user=f"user-{i}") for i in range(n)]
    assert all(status == 200 for status, _, _ in answers)
    arms = Counter(h["x-mloop-arm"] for _, _, h in answers)
    assert abs(arms["b"] / n - 0.7) < 0.1, arms
    for _, body, headers in answers:  # the arm's model answered, and says so
        version = 1 if headers["x-mloop-arm"] == "a" else 2
        assert body["predictions"] == [float(version)] and body["version"] == version
        assert headers["x-mloop-model-version"] == f"models:/toy/{version}"
        assert headers["x-mloop-deployment"] == "churn"
        assert headers["x-mloop-revision"] == str(rev.number)
        assert headers["x-request-id"] == body["request_id"]
    # sticky: a user stays in one arm; so does a key given as the header
    for user in ("alice", "bob", "carol", "dave"):
        seen = {app.predict("churn", user=user)[2]["x-mloop-arm"] for _ in range(6)}
        assert len(seen) == 1
    keyed = [app("/predict?model=churn", {"records": [{"a": 1.0, "user": None}]},
                 {"x-mloop-key": f"k-{i // 6}"}) for i in range(24)]
    assert {status for status, _, _ in keyed} == {200}
    by_key = [{h["x-mloop-arm"] for _, _, h in keyed[i:i + 6]} for i in range(0, 24, 6)]
    assert all(len(arms) == 1 for arms in by_key), by_key
    # the other routes and the metadata answer at the deployment's name
    status, body, headers = app("/v2/models/churn/infer", {"inputs": [
        {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "user", "shape": [1], "datatype": "BYTES", "data": ["alice"]}]})
    assert status == 200 and headers["x-mloop-arm"] in ("a", "b")
    status, body, _ = app("/invocations?model=churn",
                          {"dataframe_records": [{"a": 1.0, "user": "x"}]})
    assert status == 200 and body["predictions"] in ([1.0], [2.0])
    status, meta, _ = app("/v2/models/churn")
    assert status == 200 and meta["name"] == "churn"
    assert app("/v2/models/churn/ready")[0] == 200
    assert app("/v2/models/churn/versions/1/infer", {"inputs": []})[0] == 404
    assert app("/predict?model=churn", {"records": [{"a": "x", "user": "u"}]})[0] == 422
    _, text, _ = app("/metrics")
    assert 'mloop_deployment_weight{arm="b",deployment="churn"} 70.0' in text
    assert f'mloop_deployment_revision{{deployment="churn"}} {rev.number}.0' in text
    assert 'mloop_deployment_requests_total{arm="a",deployment="churn",outcome="ok"}' in text
    # every answered row is indexed, under its arm (4xx refusals are not)
    total = n + 4 * 6 + 24 + 2
    rows = _traffic(toys, "churn", rev.number, total)
    assert len(rows) == total
    by_arm = Counter(rows.arm)
    assert by_arm["a"] + by_arm["b"] == total and set(rows.outcome) == {"ok"}
    expected = {"a": 1.0, "b": 2.0}
    assert all(p == expected[a] for a, p in zip(rows.arm, rows.prediction, strict=True))


def test_blue_green_switch_and_back_under_load_and_a_replica_converges(any_toys, serve):
    toys = any_toys
    deploy.create("churn", "models:/toy/1", project=toys)
    deploy.bluegreen("churn", "models:/toy/2", project=toys)
    app = serve(toys, deployments=("churn",))
    replica = serve(toys, deployments=("churn",))
    extension = app.app.state.serving.extensions[0]
    blue = extension.models["models:/toy/1"]
    results: list[tuple[float, float, int, Any]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            began = time.monotonic()
            status, body, _ = app.predict("churn")
            results.append((began, time.monotonic(), status,
                            body.get("predictions", [None])[0]))

    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(hammer)
        time.sleep(0.5)
        switched = time.monotonic()
        deploy.switch("churn", project=toys)
        converged = _until(lambda: replica.predict("churn")[1]["predictions"] == [2.0])
        assert converged - switched < POLL + 1.0  # one poll interval, plus a loaded machine
        time.sleep(1.0)
        back = time.monotonic()
        deploy.switch("churn", project=toys)
        _until(lambda: app.predict("churn")[1]["predictions"] == [1.0])
        time.sleep(0.5)
        stop.set()
    assert len(results) > 50 and {r[2] for r in results} == {200}, Counter(
        r[2] for r in results)
    assert {r[3] for r in results if r[1] < switched} == {1.0}  # blue before
    # the swap is atomic: once green answered, every request sent later is green's ...
    green = min(r[1] for r in results if r[3] == 2.0)
    assert {r[3] for r in results if green < r[0] and r[1] < back} == {2.0}
    # ... and after the switch back, blue's again
    blue_again = min(r[1] for r in results if r[3] == 1.0 and r[0] > back)
    assert {r[3] for r in results if r[0] > blue_again} == {1.0}
    assert extension.models["models:/toy/1"] is blue  # kept warm: never reloaded


def _until(check: Any, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change was not followed in time"
        time.sleep(0.02)
    return time.monotonic()


def test_fallback_by_model_error_by_timeout_by_value_and_none(toys, serve):
    first = deploy.create("churn", "models:/toy/1", fallback="models:/toy/3", timeout_ms=200,
                          project=toys)
    deploy.create("steady", "models:/toy/1", fallback_value=-7, project=toys)
    bare = deploy.create("bare", "models:/toy/1", project=toys)
    app = serve(toys, deployments=("churn", "steady", "bare"))
    status, body, headers = app.predict("churn")
    assert status == 200 and body["predictions"] == [1.0] and "x-mloop-fallback" not in headers
    for a in (-1.0, 5000.0):  # the model raises; the model is too slow
        status, body, headers = app.predict("churn", a=a)
        assert status == 200 and body["predictions"] == [3.0], body
        assert headers["x-mloop-fallback"] == "1" and headers["x-mloop-arm"] == "stable"
        assert headers["x-mloop-model-version"] == "models:/toy/3"
    status, body, headers = app.predict("steady", a=-1.0)
    assert status == 200 and body["predictions"] == [-7] and headers["x-mloop-fallback"] == "1"
    status, body, _ = app.predict("bare", a=-1.0)
    assert status == 500 and "a must not be negative" in body["error"]
    rows = _traffic(toys, "churn", first.number, 3)
    assert sorted(zip(rows.outcome, rows.prediction, strict=True)) == [
        ("fallback", 3.0), ("fallback", 3.0), ("ok", 1.0)]
    assert list(_traffic(toys, "bare", bare.number, 1).outcome) == ["error"]
    _, text, _ = app("/metrics")
    assert 'mloop_deployment_fallbacks_total{arm="stable",deployment="churn"} 2.0' in text


def test_shadow_answers_are_indexed_and_never_returned(toys, serve):
    deploy.create("churn", "models:/toy/1", project=toys)
    rev = deploy.shadow("churn", "models:/toy/2", sample=1.0, project=toys)
    app = serve(toys, deployments=("churn",))
    answers = [app.predict("churn") for _ in range(20)]
    assert {a[1]["predictions"][0] for a in answers} == {1.0}
    assert {a[2]["x-mloop-arm"] for a in answers} == {"primary"}
    rows = _traffic(toys, "churn", rev.number, 40)
    ids = {a[1]["request_id"] for a in answers}
    shadow = [(r, p) for r, a, o, p in zip(rows.request_id, rows.arm, rows.outcome,
                                            rows.prediction, strict=True) if o == "shadow"]
    assert len(shadow) == 20 and {r for r, _ in shadow} == ids
    assert {p for _, p in shadow} == {2.0}
    assert Counter(zip(rows.arm, rows.outcome, strict=True)) == {("primary", "ok"): 20,
                                                                 ("shadow", "shadow"): 20}


def test_a_revision_that_cannot_be_loaded_leaves_the_old_one_serving(toys, serve):
    with mloop.start_run():
        mloop.log_model(Toy(4.0, broken=True), input_example=EXAMPLE, registered_name="toy")
    deploy.create("churn", "models:/toy/1", project=toys)
    app = serve(toys, deployments=("churn",))
    deploy.replace("churn", "models:/toy/4", project=toys)
    answers = []
    for _ in range(20):  # four poll intervals: toy/4 fails its warm-up each time
        answers.append(app.predict("churn"))
        time.sleep(POLL / 5)
    assert {(a[0], a[1]["predictions"][0]) for a in answers} == {(200, 1.0)}
    fixed = deploy.replace("churn", "models:/toy/2", project=toys)
    _until(lambda: app.predict("churn")[2]["x-mloop-revision"] == str(fixed.number))
    assert app.predict("churn")[1]["predictions"] == [2.0]


def test_a_served_alias_is_followed_when_it_moves(toys, serve):
    mloop.set_alias("toy", "champion", 1)
    app = serve(toys, models=("models:/toy@champion",))
    assert app("/predict", {"records": [{"a": 1.0, "user": "u"}]})[1]["predictions"] == [1.0]
    mloop.set_alias("toy", "champion", 2)
    answers: list[Any] = []

    def moved() -> bool:
        answers.append(app("/predict", {"records": [{"a": 1.0, "user": "u"}]}))
        return answers[-1][1]["predictions"] == [2.0]

    _until(moved)
    assert {a[0] for a in answers} == {200} and answers[-1][1]["version"] == 2
    _, meta, _ = app("/v2")
    assert [m["uri"] for m in meta["models"]] == ["models:/toy/2"]


def test_awaiting_approval_routes_to_the_model_that_served_before():
    arm = Arm("stable", "models:/toy/1", "models:/toy@champion", 100.0, "stable")
    before = Revision("churn", 1, Strategy.REPLACE, RevisionStatus.COMPLETED, (arm,), {}, None,
                      {"weights": {"stable": 100.0}}, None, None, "user:x", None, 0)
    canary = (Arm("stable", "models:/toy/1", "", 100.0, "stable"),
              Arm("canary", "models:/toy/2", "", 0.0, "canary"))
    waiting = Revision("churn", 2, Strategy.CANARY, RevisionStatus.AWAITING_APPROVAL, canary,
                       {}, None, {"weights": {"stable": 95.0, "canary": 5.0}, "step": 0},
                       None, {"revision": 1, "model": "models:/toy/1"}, "system", None, 0)
    plan = plan_of(waiting, 7, before)
    assert (plan.revision, plan.weights, plan.models) == (
        1, {"stable": 100.0}, {"stable": "models:/toy/1"})
    live = plan_of(waiting.__class__(**{**waiting.__dict__,
                                        "status": RevisionStatus.ACTIVE}), 8)
    assert live.weights == {"stable": 95.0, "canary": 5.0} and live.step == 0
    with pytest.raises(ConflictError, match="awaits approval"):
        plan_of(waiting, 7, None)
    arms = (Arm("a", "models:/toy/1", "", 0.0), Arm("b", "models:/toy/2", "", 0.0))
    bandit = Revision("churn", 3, Strategy.BANDIT, RevisionStatus.ACTIVE, arms,
                      {"sticky": "user"}, None,
                      {"weights": {"a": 20.0, "b": 80.0},
                       "posterior": [{"posterior_mean": 0.1}, {"posterior_mean": 0.3}]},
                      None, None, "system", None, 0)
    plan = plan_of(bandit, 9)
    assert (plan.weights, plan.sticky, plan.posterior, plan.step) == (
        {"a": 20.0, "b": 80.0}, "user", {"a": 0.1, "b": 0.3}, None)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return subprocess.run([sys.executable, "-m", "mloop", "serve", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_serves_a_deployment_with_workers(toys, tmp_path):
    deploy.create("churn", "models:/toy/1", project=toys)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mloop", "serve", "--deployment",
                                 "churn", "--port", str(port), "--workers", "2",
                                 "--allow-pickle", "--no-controller", "--poll-interval",
                                 "0.2s"], cwd=toys.root, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            answer = None
            deadline = time.monotonic() + 90
            while answer is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    answer = Served.__call__(_Port(port), "/predict",  # type: ignore[arg-type]
                                             {"records": [{"a": 1.0, "user": "u"}]})
                except OSError:
                    time.sleep(0.2)
            assert answer is not None, log.read_text()
            assert answer[0] == 200 and answer[1]["predictions"] == [1.0]
            assert answer[2]["x-mloop-deployment"] == "churn"
            deploy.replace("churn", "models:/toy/2", project=toys)
            # both worker processes follow (a request lands on either)
            _until(lambda: all(Served.__call__(_Port(port), "/predict", {  # type: ignore[arg-type]
                "records": [{"a": 1.0, "user": "u"}]})[1]["predictions"] == [2.0]
                for _ in range(8)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Serving deployment churn on" in log.read_text()


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port


def test_cli_refuses_before_announcing(toys):
    out = _cli(cwd=toys.root)
    assert out.returncode == 2 and "--deployment" in out.stderr
    out = _cli("--deployment", "nope", "--port", "1", cwd=toys.root)
    assert out.returncode == 3 and "No deployment named 'nope'" in out.stderr
    assert "Serving" not in out.stderr
    deploy.create("twin", "models:/toy/1", project=toys)
    with mloop.start_run():  # a model registered after the deployment took the name
        mloop.log_model(Toy(9.0), input_example=EXAMPLE, registered_name="twin")
    out = _cli("models:/twin/1", "--deployment", "twin", cwd=toys.root)
    assert out.returncode == 2 and "both a model given to serve and a deployment" in out.stderr
    assert "Serving" not in out.stderr


def test_the_controller_ticks_every_poll_and_releases_on_stop(toys, serve, monkeypatch):
    """Against the interface `mloop.deploy.controller.Controller(project, names, holder=)`
    with `tick()` and `release()`, whatever implements it."""
    import importlib.machinery
    import types

    calls: list[tuple[str, Any]] = []

    class Controller:
        def __init__(self, project: Project, names: list[str], *, holder: str | None = None
                     ) -> None:
            calls.append(("init", (names, holder)))

        def tick(self, now_ms: int | None = None) -> list[Any]:
            calls.append(("tick", None))
            raise RuntimeError("one deployment's trouble must not stop the server")

        def release(self) -> None:
            calls.append(("release", None))

    fake = types.ModuleType("mloop.deploy.controller")
    fake.__spec__ = importlib.machinery.ModuleSpec("mloop.deploy.controller", None)
    fake.Controller = Controller  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mloop.deploy.controller", fake)
    deploy.create("churn", "models:/toy/1", project=toys)
    app = serve(toys, deployments=("churn",), controller=True)
    _until(lambda: sum(kind == "tick" for kind, _ in calls) >= 2)
    assert app.predict("churn")[0] == 200
    app.stop()
    names, holder = calls[0][1]
    assert names == ["churn"] and holder.startswith("serve:")
    assert calls[-1] == ("release", None)


def test_extensions_survive_the_workers_json_config(monkeypatch):
    from dataclasses import asdict

    from mloop.errors import ConfigError
    from mloop.serving.endpoint import load_extension
    from mloop.serving.server import CONFIG_ENV, app_factory

    config = ServeConfig([], deployments=["churn"], extensions=[EXTENSION], poll_interval=5,
                         controller=False)
    monkeypatch.setenv(CONFIG_ENV, json.dumps(asdict(config)))
    made = app_factory().state.serving.config
    assert (made.deployments, made.extensions, made.poll_interval, made.controller) == (
        ["churn"], [EXTENSION], 5, False)
    assert type(load_extension(EXTENSION, made)).__name__ == "DeploymentServing"
    for bad in ("mloop.deploy.serving", "mloop.nope:x", "mloop.deploy.serving:nope"):
        with pytest.raises(ConfigError, match=r"module:factory|Cannot load"):
            load_extension(bad, made)


def test_a_failing_canary_is_rolled_back_by_the_servers_own_controller(toys, serve):
    """End to end: the server routes half the traffic to a canary that fails every request
    it gets; its controller aborts at the first look with enough samples and the server
    follows the rollback without a restart."""
    deploy.create("churn", "models:/toy/3", project=toys)  # calm: never fails
    canary = deploy.canary("churn", "models:/toy/2", steps="50,100", interval="1h",
                           project=toys)
    app = serve(toys, deployments=("churn",), controller=True)
    failed, hundredth = 0, None
    deadline = time.monotonic() + 30
    while deploy.status("churn", project=toys).revision.number == canary.number:
        assert time.monotonic() < deadline, "the canary was not rolled back"
        statuses = [app.predict("churn", a=-1.0)[0] for _ in range(20)]  # toy/2 raises
        failed += statuses.count(500)
        assert set(statuses) <= {200, 500}
        if hundredth is None and failed >= 100:
            hundredth = time.time() * 1000  # the analysis' min_samples are in
    history = deploy.history("churn", project=toys)
    aborted = next(e for e in history.events if e.kind == "aborted")
    assert aborted.initiated_by.startswith("system") and aborted.revision == canary.number
    assert aborted.analysis["verdict"] == "fail"
    # judged once it had its 100 requests: within the index's 1 s flush and a few polls,
    # not at the next 5 s early look
    assert hundredth is not None and aborted.created_at - hundredth < 4_000
    time.sleep(POLL * 3)  # one poll later the server routes by the rollback
    answers = [app.predict("churn", a=-1.0) for _ in range(20)]
    assert {status for status, _, _ in answers} == {200}
    assert {h["x-mloop-model-version"] for _, _, h in answers} == {"models:/toy/3"}


def test_the_canary_decision_gauge_follows_the_last_analysis():
    from prometheus_client import CollectorRegistry

    from mloop.deploy.traffic_log import DeploymentMetrics

    registry = CollectorRegistry()
    metrics = DeploymentMetrics(registry)

    def decision() -> float | None:
        return registry.get_sample_value("mloop_deployment_canary_decision",
                                         {"deployment": "churn"})

    metrics.routing("churn", 2, {"stable": 95.0, "canary": 5.0}, step=0, posterior={})
    assert decision() is None  # no analysis yet
    for verdict, value in (("pass", 1.0), ("inconclusive", 0.0), ("fail", -1.0)):
        metrics.routing("churn", 2, {"stable": 75.0, "canary": 25.0}, step=1, posterior={},
                        verdict=verdict)
        assert decision() == value
    metrics.routing("churn", 3, {"stable": 100.0}, step=None, posterior={})
    assert decision() is None


def test_a_canary_plan_carries_its_last_verdict():
    rev = Revision("churn", 2, Strategy.CANARY, RevisionStatus.ACTIVE,
                   (Arm("stable", "models:/m/1", "models:/m/1", 95.0, "stable"),
                    Arm("canary", "models:/m/2", "models:/m/2", 5.0, "canary")),
                   {"steps": [5, 100]}, None,
                   {"weights": {"stable": 95.0, "canary": 5.0}, "step": 0,
                    "decision": {"verdict": "inconclusive"}}, None, None, "system", None, 0)
    assert plan_of(rev, 7).verdict == "inconclusive"
