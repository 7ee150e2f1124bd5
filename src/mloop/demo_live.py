"""The demo's second half: the registered model tested, deployed and watched in production.

After :mod:`mloop.demo` has trained and registered a champion and a challenger, this
tests both on the held-out split (the stored ``mloop test`` report and its gate
decision), deploys the champion and starts a canary of the challenger, serves patients
through the deployment in this process (the server's own application: predictions
logged, traffic indexed by arm), sends back the true outcome for part of them (the rest
wait in the labelling queue), lets the deployment's controller analyse the canary once,
and runs the monitoring checks: the last patients come from a shifted population, so the
inputs drift and an alert opens. Every step goes through mloop's public functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.redact import get_logger

if TYPE_CHECKING:
    import pandas as pd

    from mloop.project import Project

DEPLOYMENT = "breast-cancer-live"
PATIENTS = 120  # requests of ROWS rows each; the last SHIFTED come from a shifted population
ROWS = 4
SHIFTED = 40
LABELLED_EVERY = 3  # of the unshifted requests, all but every third get their outcome back
STEPS = "25,50,100"
INTERVAL_S = 1  # between canary analyses: short, so the demo sees one analysis
# the canary's analysis: errors, the arms' predictions and, once labelled, accuracy
ANALYSIS = {"metrics": [
    {"kind": "error_rate", "threshold": 0.01, "min_samples": 50},
    {"kind": "drift", "test": "psi", "threshold": 0.2, "min_samples": 50},
    {"kind": "live_metric", "metric": "accuracy", "threshold": 0.05, "min_samples": 30}]}


@dataclass
class LiveResult:
    """What the second half made."""

    evaluations: dict[str, bool] = field(default_factory=dict)  # model uri → passed
    deployment: str = DEPLOYMENT
    requests: int = 0
    labelled: int = 0
    waiting: int = 0
    verdict: str = ""
    alerts: list[str] = field(default_factory=list)


def _in_own_loop(make: Callable[[], Any]) -> Any:
    """Run a coroutine to its end in an event loop of its own: here, or in a thread when
    the caller already runs one (a notebook, a test driving a browser)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def run_live(project: Project, *, champion: str, challenger: str, holdout: str,
             train: str, echo: Callable[[str], None], seed: int) -> LiveResult:
    """Test, deploy, serve, label and monitor (see the module's docstring)."""
    import mloop

    out = LiveResult()
    for uri in (champion, challenger):
        report = mloop.evaluate(uri, data=holdout, target="target", project=project)
        out.evaluations[uri] = bool(report.passed)
        echo(f"  mloop test {uri} on {holdout}: "
             f"{'passed' if report.passed else 'failed'} (accuracy "
             f"{report.metrics['accuracy']['value']:.3f})")
    mloop.deploy.create(DEPLOYMENT, champion, project=project)
    revision = mloop.deploy.canary(DEPLOYMENT, challenger, steps=STEPS,
                                   interval=f"{INTERVAL_S}s", analysis=ANALYSIS,
                                   project=project)
    echo(f"Deployment {DEPLOYMENT}: {champion} serves, canary of {challenger} at "
         f"{revision.weights['canary']:g}% (steps {STEPS})")
    patients = _patients(project, holdout, train, seed)
    answers = _in_own_loop(lambda: _serve(project, patients))
    out.requests = len(answers)
    out.labelled = _feedback(project, answers, patients)
    out.waiting = len(answers) * ROWS - out.labelled
    echo(f"  served {len(answers)} requests ({len(answers) * ROWS} patients, the last "
         f"{SHIFTED * ROWS} from a shifted population); outcomes sent back for "
         f"{out.labelled}, {out.waiting} wait in the labelling queue")
    out.verdict = _analyse(project, revision.created_at)
    echo(f"  canary analysis: {out.verdict}")
    with _quiet("mloop.monitoring"):  # the demo says it itself, on one line
        results = mloop.monitoring.check(project=project)
    out.alerts = [f"[{a.severity}] {a.rule} on {a.subject}" for r in results for a in r.fired]
    echo(f"Monitoring: {len(out.alerts)} alert(s) — {'; '.join(out.alerts) or 'none'}")
    return out


@dataclass
class _Patients:
    """The requests to send: ROWS rows each, with their true outcomes."""

    frames: list[pd.DataFrame]
    outcomes: list[list[int]]


def _patients(project: Project, holdout: str, train: str, seed: int) -> _Patients:
    """Held-out patients measured again (2% noise: no two alike), in requests of ROWS; the
    last SHIFTED requests come from a population one standard deviation higher in every
    measurement (a new scanner, say)."""
    import mloop

    frame = mloop.data.load(holdout, project=project)
    X, y = frame.drop(columns=["target"]), frame["target"].to_numpy()
    spread = mloop.data.load(train, project=project).drop(columns=["target"]).std()
    rng = np.random.default_rng(seed)
    frames, outcomes = [], []
    for i in range(PATIENTS):
        rows = rng.choice(len(X), ROWS, replace=False)
        part = X.iloc[rows] * rng.normal(1.0, 0.02, size=(ROWS, X.shape[1]))
        if i >= PATIENTS - SHIFTED:
            part = part + spread.to_numpy()
        frames.append(part.reset_index(drop=True))
        outcomes.append([int(v) for v in y[rows]])
    return _Patients(frames, outcomes)


async def _serve(project: Project, patients: _Patients) -> list[str]:
    """Send every request to the deployment through ``mloop serve``'s own application in
    this process (its start-up loads the arms, its shutdown writes the prediction log and
    the traffic index); the request ids answered, in order."""
    import httpx

    from mloop.deploy.serving import EXTENSION
    from mloop.serving.server import ServeConfig, create_app

    app = create_app(ServeConfig([], project=str(project.root), monitor_every=0,
                                 deployments=[DEPLOYMENT], extensions=[EXTENSION],
                                 poll_interval=0, controller=False))
    ids = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as client:
        for i, frame in enumerate(patients.frames):
            answer = await client.post(f"/predict?model={DEPLOYMENT}",
                                       json={"records": frame.to_dict("records")},
                                       headers={"x-mloop-key": f"patient-{i}"})
            answer.raise_for_status()
            ids.append(answer.json()["request_id"])
    return ids


def _feedback(project: Project, answers: list[str], patients: _Patients) -> int:
    """The true outcomes of the unshifted requests, all but every LABELLED_EVERY-th; how
    many labels were stored."""
    import pandas as pd

    from mloop.monitoring.feedback import log_frame

    known = [i for i in range(PATIENTS - SHIFTED) if i % LABELLED_EVERY != LABELLED_EVERY - 1]
    frame = pd.DataFrame({
        "request_id": np.repeat([answers[i] for i in known], ROWS),
        "row": np.tile(np.arange(ROWS), len(known)),
        "label": np.concatenate([patients.outcomes[i] for i in known])})
    return log_frame(project, frame).stored


def _analyse(project: Project, started_ms: int) -> str:
    """One look of the deployment's controller once the canary's interval has passed: its
    analysis decides to step, hold or roll back."""
    from mloop.core.clock import now_ms
    from mloop.deploy.controller import Controller

    wait = started_ms + INTERVAL_S * 1000 - now_ms()
    if wait > 0:
        time.sleep(wait / 1000)
    controller = Controller(project, [DEPLOYMENT])
    try:
        decisions = controller.tick()
    finally:
        controller.release()  # no lease left behind for `mloop serve --deployment`
    if not decisions:
        return "not due yet"
    d = decisions[0]
    verdict = (d.analysis or {}).get("verdict", "")
    return f"{verdict} → {d.action}: {d.reason}" if verdict else f"{d.action}: {d.reason}"


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Warnings of ``logger`` held back for the block (its level restored after)."""
    log = get_logger(logger)
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


def next_steps(model: str) -> list[str]:
    """The demo's "Next, try" lines for what this half made."""
    return [f"  mloop deploy status {DEPLOYMENT}",
            f"  mloop deploy history {DEPLOYMENT}",
            f"  mloop monitor performance {model} --window 24h",
            f"  mloop monitor alerts --model {model}",
            f"  mloop serve --deployment {DEPLOYMENT}     # the controller moves the canary on"]
