"""The controller: canary steps, aborts and promotion, the lease, resuming after a killed
controller, A/B decisions, bandit weights and rollouts that wait for approval."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import mloop
from mloop import deploy, repositories
from mloop.deploy.controller import AB_EVERY_MS, Controller, run
from mloop.deploy.strategies import SYSTEM
from mloop.project import Project
from mloop.repositories.deployments import RevisionStatus
from mloop.repositories.feedback import Feedback
from tests.deploy.traffic import register, send

MINUTE = 60_000


@pytest.fixture
def canary(project):
    register()
    deploy.create("live", "models:/churn@champion")
    return deploy.canary("live", "models:/churn/2", interval="1m")


def current(project):
    return repositories.backend(project).deployments.revision("live")


def kinds(project):
    return [e.kind for e in repositories.backend(project).deployments.events("live")]


def champion():
    return mloop.get_model_version("churn@champion").version


def test_a_canary_erroring_on_20_percent_is_aborted_at_the_first_analysis_with_enough(
        project, canary):
    ctl = Controller(project, ["live"], early_every_ms=0)
    start = canary.state["step_started_at"]
    send(project, "live", "stable", 1500, seed=1)
    canary_ids = send(project, "live", "canary", 60, error_rate=0.2, seed=2)
    assert ctl.tick(start + 1000) == []  # 60 requests: not enough to judge, not due
    canary_ids += send(project, "live", "canary", 40, error_rate=0.2, seed=3)
    (decision,) = ctl.tick(start + 2000)  # 100 requests: an early analysis fails it
    assert decision.action == "aborted" and "error_rate" in decision.reason
    after = current(project)
    assert after.weights == {"stable": 100.0} and after.rollback_of == canary.number
    assert after.arm("stable").model == "models:/churn/1"
    old = repositories.backend(project).deployments.revision("live", canary.number)
    assert old.status is RevisionStatus.ABORTED
    last = [e for e in repositories.backend(project).deployments.events("live")
            if e.kind == "aborted"][-1]
    assert last.initiated_by == SYSTEM and last.analysis["verdict"] == "fail"
    assert champion() == 1  # the alias did not move
    assert ctl.tick(start + 3000) == []  # nothing left to do
    # feedback for the aborted canary's requests: its arm is gone; the new revision's
    # measures do not count it
    repositories.backend(project).feedback.save(
        [Feedback(rid, 0, "1") for rid in canary_ids])
    now = deploy.status("live").measurements
    assert set(now) == {"stable"} and now["stable"]["labelled"] == 0


def test_a_canary_worse_on_labels_is_judged_as_soon_as_it_has_its_labels(project, canary):
    ctl = Controller(project, ["live"])  # at most one full early look per 5 s, unless due
    start = canary.state["step_started_at"]
    assert ctl.tick(start + 1000) == []  # looked: nothing yet
    send(project, "live", "stable", 150, accuracy=0.9, seed=1)
    send(project, "live", "canary", 150, accuracy=0.7, seed=2)
    assert ctl.tick(start + 2000) == []  # fewer than 200 labels an arm: not looked at
    send(project, "live", "stable", 100, accuracy=0.9, seed=3)
    send(project, "live", "canary", 100, accuracy=0.7, seed=4)
    # counted in the database on this tick: every arm has its 200 labels, judged now
    (decision,) = ctl.tick(start + 3000)
    assert decision.action == "aborted" and "live_metric" in decision.reason


def test_a_canary_failing_requests_is_judged_at_once_between_throttled_looks(project,
                                                                              canary):
    ctl = Controller(project, ["live"])
    start = canary.state["step_started_at"]
    send(project, "live", "stable", 1000, seed=1)
    assert ctl.tick(start + 1000) == []  # looked: not enough canary requests yet
    send(project, "live", "canary", 100, error_rate=0.3, seed=2)
    # counted in the database on this tick: failing with its 100 requests, judged now
    assert [d.action for d in ctl.tick(start + 2000)] == ["aborted"]


def test_a_canary_20_points_less_accurate_is_aborted_once_each_arm_has_200_labels(
        project, canary):
    ctl = Controller(project, ["live"], early_every_ms=0)
    start = canary.state["step_started_at"]
    send(project, "live", "stable", 150, accuracy=0.9, seed=1)
    send(project, "live", "canary", 150, accuracy=0.7, seed=2)
    assert ctl.tick(start + 1000) == []
    send(project, "live", "stable", 50, accuracy=0.9, seed=3)
    send(project, "live", "canary", 50, accuracy=0.7, seed=4)
    (decision,) = ctl.tick(start + 2000)
    assert decision.action == "aborted" and "live_metric" in decision.reason
    assert current(project).weights == {"stable": 100.0}


def test_a_good_canary_walks_every_step_and_promotes(project, canary):
    ctl = Controller(project, ["live"])
    seen = []
    for _ in range(3):  # steps 5, 25, 50; passing at 50 promotes (100)
        rev = current(project)
        start = rev.state["step_started_at"]
        send(project, "live", "stable", 300, seed=len(seen), time_ms=start)
        send(project, "live", "canary", 300, seed=len(seen) + 10, time_ms=start)
        (decision,) = ctl.tick(start + MINUTE)
        seen.append((decision.action, rev.weights["canary"]))
    assert seen == [("step", 5.0), ("step", 25.0), ("promoted", 50.0)]
    done = current(project)
    assert done.status is RevisionStatus.COMPLETED and done.weights["canary"] == 100.0
    assert kinds(project).count("step") == 2 and champion() == 2  # the alias moved


def test_three_inconclusive_analyses_abort(project, canary):
    ctl = Controller(project, ["live"])
    when = canary.state["step_started_at"]
    actions = []
    for _ in range(3):
        when += MINUTE
        actions += [d.action for d in ctl.tick(when)]
    assert actions == ["held", "held", "aborted"]
    assert current(project).weights == {"stable": 100.0}
    assert ctl.tick(when + MINUTE) == []


def test_two_controllers_one_lease(project, canary):
    lease = 2 * MINUTE
    a, b = Controller(project, ["live"], lease_ms=lease), Controller(project, ["live"])
    now = canary.state["step_started_at"] + MINUTE
    assert [d.action for d in a.tick(now)] == ["held"]
    assert b.tick(now + MINUTE) == []  # due again, but a holds the lease: b leaves it
    deployments = repositories.backend(project).deployments
    assert deployments.lease_holder("live", now + MINUTE) == a.holder
    assert [d.action for d in b.tick(now + lease + 1)] == ["held"]  # a's lease lapsed
    assert deployments.lease_holder("live", now + lease + 1) == b.holder
    assert a.tick(now + lease + 2) == []  # and a, back, now leaves it to b
    b.release()
    assert deployments.lease_holder("live", now + lease + 1) is None


def test_a_controller_killed_mid_step_is_resumed_without_a_double_step(
        project, canary, monkeypatch):
    import mloop.deploy.analysis as analysis

    start = canary.state["step_started_at"]
    send(project, "live", "stable", 300, seed=1)
    send(project, "live", "canary", 300, seed=2)
    real = analysis.analyse

    def dies(*args, **kwargs):
        raise SystemExit("killed after reading")  # not caught: the process is gone

    a = Controller(project, ["live"], lease_ms=5_000)
    monkeypatch.setattr(analysis, "analyse", dies)
    with pytest.raises(SystemExit):
        a.tick(start + MINUTE)
    monkeypatch.setattr(analysis, "analyse", real)
    b = Controller(project, ["live"])
    assert b.tick(start + MINUTE + 1) == []  # the dead one's lease has not lapsed yet
    (decision,) = b.tick(start + MINUTE + 5_001)  # taken over: resumes from the store
    assert decision.action == "step" and current(project).state["step"] == 1
    assert kinds(project).count("step") == 1


def test_two_controllers_racing_apply_a_step_once(project, canary, monkeypatch):
    import mloop.deploy.measure as measure

    start = canary.state["step_started_at"]
    send(project, "live", "stable", 300, seed=1)
    send(project, "live", "canary", 300, seed=2)
    a, b = Controller(project, ["live"]), Controller(project, ["live"])
    real = measure.measure_all
    raced = []

    def racing(*args, **kwargs):
        if not raced:  # a has read serial and revision; b steps first
            raced.append(None)
            raced[0] = b.step("live", start + MINUTE)
        return real(*args, **kwargs)

    monkeypatch.setattr(measure, "measure_all", racing)
    (decision,) = a.tick(start + MINUTE)
    assert raced[0].action == "step"
    assert decision.action == "skipped"  # a's write found the serial moved
    assert kinds(project).count("step") == 1 and current(project).state["step"] == 1


def test_an_a_a_test_stays_undecided_under_continuous_peeking(project):
    register()
    deploy.create("live", "models:/churn@champion")
    deploy.ab("live", ["a=models:/churn/1", "b=models:/churn/1"], metric="accuracy",
              min_samples=50)
    ctl = Controller(project, ["live"])
    now = current(project).created_at
    for look in range(15):
        send(project, "live", "a", 60, accuracy=0.8, seed=2 * look)
        send(project, "live", "b", 60, accuracy=0.8, seed=2 * look + 1)
        now += AB_EVERY_MS
        (decision,) = ctl.tick(now)
        assert decision.analysis["winner"] is None
    state = current(project).state["decision"]
    assert state["n"] == {"a": 900, "b": 900} and state["p"] > 0.05
    assert state["fixed_horizon"]["test"] == "two-proportion z"
    assert ctl.tick(now + AB_EVERY_MS) == []  # no new labels: no new event


def test_an_ab_test_finds_the_better_arm_and_promote_takes_it(project):
    register()
    deploy.create("live", "models:/churn@champion")
    deploy.ab("live", ["a=models:/churn/1", "b=models:/churn/2"], min_samples=50)
    send(project, "live", "a", 400, accuracy=0.6, seed=1)
    send(project, "live", "b", 400, accuracy=0.9, seed=2)
    ctl = Controller(project, ["live"])
    (decision,) = ctl.tick(current(project).created_at + AB_EVERY_MS)
    assert decision.analysis["winner"] == "b" and decision.analysis["metric"] == "accuracy"
    assert current(project).status is RevisionStatus.ACTIVE  # a person promotes
    deploy.promote("live")
    assert current(project).weights == {"a": 0.0, "b": 100.0}


def test_an_ab_test_of_three_arms_compares_each_with_the_control(sqlite_project):
    register(versions=3)
    deploy.create("live", "models:/churn@champion")
    deploy.ab("live", ["models:/churn/1", "models:/churn/2", "models:/churn/3"],
              min_samples=50)
    for seed, (arm, accuracy) in enumerate([("a", 0.6), ("b", 0.6), ("c", 0.9)]):
        send(sqlite_project, "live", arm, 400, accuracy=accuracy, seed=seed)
    (decision,) = Controller(sqlite_project, ["live"]).tick(
        current(sqlite_project).created_at + AB_EVERY_MS)
    got = decision.analysis
    assert got["winner"] == "c" and got["control"] == "a"
    assert got["comparisons"]["b"]["better"] is None
    assert got["comparisons"]["c"]["decided"] and got["effect"] == pytest.approx(0.3)


def test_bandit_weights_move_to_the_better_arm(project):
    register()
    deploy.create("live", "models:/churn@champion")
    deploy.bandit("live", ["models:/churn/1", "models:/churn/2"], interval="1m",
                  min_share=0.05)
    created = current(project).created_at
    ctl = Controller(project, ["live"])
    assert ctl.tick(created + 1000) == []  # not due yet
    send(project, "live", "v1", 200, accuracy=0.3, seed=1)
    send(project, "live", "v2", 200, accuracy=0.8, seed=2)
    (decision,) = ctl.tick(created + MINUTE)
    state = current(project).state
    assert decision.action == "weights"
    assert state["weights"]["v2"] > 90 and state["weights"]["v1"] >= 5
    assert sum(state["weights"].values()) == pytest.approx(100)
    assert state["posterior"]["v2"]["posterior_mean"] > state["posterior"]["v1"][
        "posterior_mean"]
    assert state["regret"] > 0
    assert ctl.tick(created + MINUTE + 1000) == []  # the next update is an interval away


def test_a_rollout_awaiting_approval_starts_once_approved(project, backend):
    register()
    governed = Project(project.root, require_approval="deploy",
                       **({"store_uri": backend} if backend else {}))
    try:
        mloop.approve_model("models:/churn/1", project=governed)
        deploy.create("live", "models:/churn@champion", project=governed)
        waiting = deploy.canary("live", "models:/churn/2", initiated_by=SYSTEM,
                                project=governed)
        assert waiting.status is RevisionStatus.AWAITING_APPROVAL
        ctl = Controller(governed, [])  # every deployment
        assert ctl.tick() == []
        mloop.approve_model("models:/churn/2", project=governed)
        (decision,) = ctl.tick()
        assert decision.action == "started"
        assert current(governed).status is RevisionStatus.ACTIVE
    finally:
        governed.close()


def test_run_ticks_until_stopped_and_releases_its_lease(project, canary):
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(project, ["live"]),
                              kwargs={"every_s": 0.05, "stop": stop, "holder": "runner"})
    thread.start()
    deployments = repositories.backend(project).deployments
    for _ in range(100):
        if deployments.lease_holder("live") == "runner":
            break
        stop.wait(0.05)
    assert deployments.lease_holder("live") == "runner"
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and deployments.lease_holder("live") is None


def test_a_broken_deployment_does_not_stop_the_others(project, canary, monkeypatch):
    import mloop.deploy.measure as measure

    monkeypatch.setattr(measure, "measure_all", lambda *a, **k: 1 / 0)
    assert Controller(project, []).tick(canary.state["step_started_at"] + MINUTE) == []
    assert np.isfinite(canary.state["step_started_at"])


def _measure(name, errors=None, labels=None):
    from mloop.deploy.measure import ArmMeasure

    m = ArmMeasure(name)
    if errors is not None:
        m.abs_error = np.asarray(errors, dtype=float)
        m.labelled = len(m.abs_error)
        m.correct = m.abs_error == 0
        m.labelled_predictions = np.full(m.labelled, 0.5, dtype=object)
    if labels is not None:
        m.label_values = np.asarray(labels, dtype=float)
    return m


def test_rewards_by_kind():
    from mloop.deploy.controller import rewards
    from mloop.errors import InvalidInputError

    arm = _measure("a", errors=[0, 1, 2], labels=[1, 0, 1])
    assert rewards("label", [arm])[0] is True  # 0/1 labels: Bernoulli
    binary, (totals,) = rewards("neg_abs_error", [arm])
    assert not binary and (totals.pulls, totals.reward_sum) == (3, -3.0)
    assert rewards("accuracy", [arm])[1][0].reward_sum == 1
    with pytest.raises(InvalidInputError, match="Unknown bandit reward"):
        rewards("revenue", [arm])


def test_an_ab_decision_on_a_numeric_metric_uses_the_errors():
    from mloop.deploy.controller import ab_decision
    from mloop.repositories.deployments import Arm, Revision, Strategy

    rev = Revision("live", 2, Strategy.AB, RevisionStatus.ACTIVE,
                   (Arm("a", "models:/m/1", "models:/m/1", 50), Arm("b", "models:/m/2",
                                                                    "models:/m/2", 50)),
                   {"metric": "mae", "min_samples": 20}, None, {}, None, None, "me", None, 0)
    rng = np.random.default_rng(0)
    arms = {"a": _measure("a", errors=rng.exponential(1.0, 500)),
            "b": _measure("b", errors=rng.exponential(0.5, 500))}
    decision = ab_decision(rev, arms, {})
    assert decision["winner"] == "b" and decision["effect"] < 0  # lower error wins
    assert decision["fixed_horizon"]["test"] == "Welch t"
    kept = ab_decision(rev, {"a": _measure("a", errors=[1.0] * 30),
                             "b": _measure("b", errors=[1.0] * 30)}, decision)
    assert kept["winner"] == "b" and kept["p"] == decision["p"]  # always valid: it stays


def test_a_fairness_measure_reads_the_groups_from_the_prediction_log(project):
    import pandas as pd

    from mloop.repositories.traffic import Outcome, TrafficRow
    from mloop.serving.predlog import PredictionLogger

    register()
    deploy.create("live", "models:/churn@champion")
    spec = {"metrics": [{"kind": "fairness", "sensitive": "group", "min_samples": 20,
                         "required": True}]}
    rev = deploy.canary("live", "models:/churn/2", interval="1m", analysis=spec)
    start = rev.state["step_started_at"]
    logger = PredictionLogger(project.root / ".mloop" / "predictions")
    rows, labels = [], []
    for i in range(80):
        arm, version = ("stable", 1) if i % 2 else ("canary", 2)
        group = "ab"[(i // 2) % 2]
        # stable always right; canary right on group a only
        label = 1
        pred = 1 if arm == "stable" or group == "a" else 0
        rid = f"req-{i}"
        logger.log("churn", version, rid, frame=pd.DataFrame({"group": [group]}),
                   pred=np.array([pred]), proba=None, latency_ms=1.0)
        rows.append(TrafficRow(rid, 0, arm, "live", rev.number, f"models:/churn/{version}",
                               Outcome.OK, pred, 1.0, start))
        labels.append(Feedback(rid, 0, str(label)))
    logger.close()
    backend = repositories.backend(project)
    backend.traffic.record(rows)
    backend.feedback.save(labels)
    (decision,) = Controller(project, ["live"]).tick(start + MINUTE)
    assert decision.action == "aborted", decision.reason
    result = decision.analysis["metrics"][0]
    assert result["name"] == "fairness" and result["status"] == "fail"
    assert result["samples"] == {"stable": 40, "canary": 40}
    assert result["details"]["canary"] == pytest.approx(1.0)


def test_a_single_step_canary_is_promoted_after_its_interval(project):
    register()
    deploy.create("live", "models:/churn@champion")
    rev = deploy.canary("live", "models:/churn/2", steps="100", interval="1m")
    ctl = Controller(project, ["live"])
    assert ctl.tick(rev.state["step_started_at"] + 1000) == []
    (decision,) = ctl.tick(rev.state["step_started_at"] + MINUTE)
    assert decision.action == "promoted" and champion() == 2


def test_a_a_decisions_under_peeking_stay_within_alpha():
    """300 simulated A/A tests, each looked at 20 times: the share ever decided stays
    below α = 0.05 (the mSPRT is always valid; a fixed-horizon test read this often
    would decide in about a quarter of them)."""
    from mloop.deploy.controller import ab_decision
    from mloop.deploy.measure import ArmMeasure
    from mloop.repositories.deployments import Arm, Revision, Strategy

    rev = Revision("live", 2, Strategy.AB, RevisionStatus.ACTIVE,
                   (Arm("a", "models:/m/1", "models:/m/1", 50),
                    Arm("b", "models:/m/1", "models:/m/1", 50)),
                   {"metric": "accuracy", "min_samples": 10}, None, {}, None, None, "me",
                   None, 0)
    rng = np.random.default_rng(7)
    decided = 0
    for _ in range(300):
        outcomes = rng.random((2, 20 * 50)) < 0.8
        previous: dict = {}
        for look in range(1, 21):
            arms = {}
            for i, name in enumerate("ab"):
                m = ArmMeasure(name)
                m.correct = outcomes[i, :look * 50]
                m.labelled = len(m.correct)
                arms[name] = m
            previous = ab_decision(rev, arms, previous)
            if previous["winner"] is not None:
                decided += 1
                break
    assert decided / 300 <= 0.05


def test_a_paused_canary_is_left_alone(project, canary):
    deploy.pause("live")
    ctl = Controller(project, ["live"])
    assert ctl.tick(canary.state["step_started_at"] + 10 * MINUTE) == []
    deploy.resume("live")
    assert [d.action for d in ctl.tick(current(project).state["step_started_at"]
                                       + MINUTE)] == ["held"]
