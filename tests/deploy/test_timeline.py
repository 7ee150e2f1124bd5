"""A revision's traffic over time, arm by arm: rows, failures, latency and live accuracy
per stretch of time, from the traffic index and feedback."""

import pytest

from mloop import deploy, repositories
from mloop.deploy.timeline import arm_timelines
from mloop.repositories.traffic import Outcome
from tests.deploy.traffic import register, send

MINUTE = 60_000
T0 = 1_700_000_000_000


@pytest.fixture
def canary(project):
    register()
    deploy.create("live", "models:/churn@champion")
    return deploy.canary("live", "models:/churn/2", interval="1m")


def test_each_arm_per_stretch(project, canary):
    send(project, "live", "stable", 40, accuracy=0.9, latency=10.0, time_ms=T0)
    send(project, "live", "canary", 10, error_rate=1.0, latency=30.0, time_ms=T0, seed=1)
    send(project, "live", "stable", 20, accuracy=0.5, time_ms=T0 + 9 * MINUTE, seed=2)
    send(project, "live", "canary", 10, accuracy=1.0, time_ms=T0 + 9 * MINUTE, seed=3,
         labels=False)
    lines = arm_timelines(project, canary, buckets=10)
    stable, canary_line = lines["stable"], lines["canary"]
    assert list(lines) == ["stable", "canary"]
    assert stable.requests == [40, 20] and stable.failures == [0, 0]
    assert stable.labelled == [40, 20] and stable.accuracy == [0.9, 0.5]
    # the middles of the first and the last of ten stretches of 54 s
    assert T0 < stable.time_ms[0] < T0 + MINUTE < T0 + 8 * MINUTE < stable.time_ms[1]
    assert stable.latency_p50[0] == pytest.approx(10.5, abs=0.5)
    assert canary_line.requests == [10, 10] and canary_line.failures == [10, 0]
    assert canary_line.error_rate == [1.0, 0.0]
    assert canary_line.accuracy == [None, None]  # failed rows and unlabelled rows: no score
    assert canary_line.latency_p99[0] == pytest.approx(31, abs=1)


def test_since_and_no_traffic(project, canary):
    assert all(not line.time_ms for line in arm_timelines(project, canary).values())
    send(project, "live", "stable", 5, time_ms=T0)
    send(project, "live", "stable", 5, time_ms=T0 + MINUTE, outcome=Outcome.FALLBACK)
    later = arm_timelines(project, canary, since_ms=T0 + 1)["stable"]
    assert later.requests == [5] and later.failures == [5]


def test_labels_are_compared_as_numbers_or_as_text(project, canary):
    from mloop.repositories.feedback import Feedback

    ids = send(project, "live", "stable", 3, time_ms=T0, predict=1)
    repositories.backend(project).feedback.save(
        [Feedback(ids[0], 0, "1.0"), Feedback(ids[1], 0, '"1"'), Feedback(ids[2], 0, "0")])
    line = arm_timelines(project, canary)["stable"]
    assert line.labelled == [3] and line.accuracy == [pytest.approx(2 / 3)]
