"""The deployments pages over the demo's canary: what they show, their CSV, and the changes
an approver makes there (pause, resume, roll back) with and without the CSRF token."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx

from mloop import repositories
from mloop.demo_live import DEPLOYMENT
from mloop.deploy.measure import measure
from mloop.deploy.strategies import canary
from mloop.project import Project
from mloop.repositories.deployments import RevisionStatus, Strategy
from tests.server.ui.conftest import csrf_of
from tests.server.ui.served import server_ui

PAGE = f"/ui/deployments/{DEPLOYMENT}"
HOSTILE = "<script>alert('x')</script> \"quoted\" [brackets] & more"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1]


def test_the_list_shows_the_demo_canary(ui: httpx.Client) -> None:
    page = ui.get("/ui/deployments")
    assert page.status_code == 200
    assert f'href="{PAGE}"' in page.text
    listed = _rows(ui.get("/ui/deployments?format=csv&table=deployments").text)
    assert [(r["Deployment"], r["Strategy"], r["Status"]) for r in listed] == [
        (DEPLOYMENT, "canary", "active")]
    assert listed[0]["Traffic"] == "stable 50% · canary 50%"  # the analysis stepped it


def test_a_deployment_shows_arms_traffic_canary_and_history(ui: httpx.Client,
                                                            demo_project: Project) -> None:
    page = ui.get(PAGE)
    assert page.status_code == 200
    text = page.text
    for heading in ("Arms", "Traffic over time", "Canary", "Analyses", "Revisions", "Events"):
        assert f"<h2>{heading}</h2>" in text
    assert "25% → 50% → 100%" in text and "2 of 3 (50% to the canary)" in text
    assert 'data-chart="requests-chart"' in text and 'data-chart="accuracy-chart"' in text
    # the arms' numbers are the domain's own measurements of the whole revision
    revision = repositories.backend(demo_project).deployments.revision(DEPLOYMENT)
    measured = {k: v.to_dict() for k, v in measure(demo_project, revision).items()}
    arms = {r["Arm"]: r for r in _rows(ui.get(PAGE + "?format=csv&table=arms").text)}
    assert set(arms) == {"stable", "canary"}
    for arm, row in arms.items():
        assert int(row["Rows"]) == measured[arm]["requests"] > 0
        assert int(row["Labelled"]) == measured[arm]["labelled"] > 0
        assert row["Model"] == ("models:/breast-cancer/1" if arm == "stable"
                                else "models:/breast-cancer/2")
    analyses = _rows(ui.get(PAGE + "?format=csv&table=analyses").text)
    assert [(a["Outcome"], a["Verdict"]) for a in analyses] == [("step", "pass")]
    measures = {m["Measure"]: m["Status"]
                for m in _rows(ui.get(PAGE + "?format=csv&table=measures").text)}
    assert measures["error_rate"] == "pass" and "live_metric" in measures
    revisions = _rows(ui.get(PAGE + "?format=csv&table=revisions").text)
    assert [(r["Revision"], r["Strategy"]) for r in revisions] == [("2", "canary"),
                                                                   ("1", "replace")]
    # the traffic charts carry points for both arms
    chart = re.search(r'<script type="application/json" id="requests-chart">(.*?)</script>',
                      text, re.S)
    assert chart and '"label":"stable"' in chart.group(1) and '"label":"canary"' in \
        chart.group(1)
    older = ui.get(PAGE + "?revision=1")
    assert older.status_code == 200 and "is not the current one" in older.text
    assert "Roll back" not in older.text  # changes act on the current revision only


def test_unknown_deployments_and_revisions_are_404_pages(ui: httpx.Client) -> None:
    for path in ("/ui/deployments/nope", f"{PAGE}?revision=99",
                 "/ui/deployments/%3Cscript%3Ealert(1)%3C%2Fscript%3E"):
        page = ui.get(path)
        assert page.status_code == 404, path
        assert "<script>alert" not in _main(page.text)
        assert 'href="/ui/' in page.text  # a way back
    assert ui.get(f"{PAGE}?revision=x").status_code == 400


def test_changes_without_the_csrf_token_are_refused(ui: httpx.Client,
                                                    demo_project: Project) -> None:
    before = repositories.backend(demo_project).deployments.get(DEPLOYMENT).serial
    for verb in ("pause", "rollback", "promote"):
        refused = ui.post(f"{PAGE}/{verb}", data={"reason": "no token"},
                          follow_redirects=False)
        assert refused.status_code == 403, verb
        assert "CSRF" in refused.text
    assert repositories.backend(demo_project).deployments.get(DEPLOYMENT).serial == before


def test_pause_resume_then_roll_back_with_a_hostile_reason(ui: httpx.Client,
                                                           demo_project: Project) -> None:
    store = repositories.backend(demo_project).deployments
    token = csrf_of(ui.get(PAGE).text)
    paused = ui.post(f"{PAGE}/pause", data={"csrf": token}, follow_redirects=False)
    assert paused.status_code == 303 and paused.headers["location"].startswith(PAGE + "?done=")
    assert store.revision(DEPLOYMENT).status is RevisionStatus.PAUSED
    again = ui.get(paused.headers["location"])
    assert "Paused revision 2." in again.text and ">Resume</button>" in again.text
    resumed = ui.post(f"{PAGE}/resume", data={"csrf": token}, follow_redirects=False)
    assert resumed.status_code == 303
    assert store.revision(DEPLOYMENT).status is RevisionStatus.ACTIVE

    rolled = ui.post(f"{PAGE}/rollback", data={"csrf": token, "reason": HOSTILE},
                     follow_redirects=False)
    assert rolled.status_code == 303
    current = store.revision(DEPLOYMENT)
    assert (current.number, current.strategy, current.rollback_of) == (3, Strategy.REPLACE, 2)
    assert current.arms[0].model == "models:/breast-cancer/1" and current.reason == HOSTILE
    assert store.revision(DEPLOYMENT, 2).status is RevisionStatus.ABORTED
    page = ui.get(rolled.headers["location"])
    body = _main(page.text)
    assert "<script>alert" not in body and "&lt;script&gt;alert(" in body
    assert "&#34;quoted&#34;" in body or "&quot;quoted&quot;" in body
    events = _rows(ui.get(PAGE + "?format=csv&table=events").text)
    assert events[0]["Event"] == "created" and events[0]["By"].startswith("user:")
    # the rolled-back canary cannot be rolled back twice: a clear 409 page, no 500
    twice = ui.post(f"{PAGE}/pause", data={"csrf": token}, follow_redirects=False)
    assert twice.status_code == 409 and "no rollout in progress" in twice.text


def test_behind_the_server_only_approvers_may_change_a_deployment(demo_root: Path,
                                                                   demo_project: Project
                                                                   ) -> None:
    store = repositories.backend(demo_project).deployments
    if not store.revision(DEPLOYMENT).status.live:  # another test rolled it back
        canary(demo_project, DEPLOYMENT, "models:/breast-cancer/2")
    before = store.get(DEPLOYMENT).serial
    with server_ui(demo_root) as as_role:
        writer = as_role("writer")
        page = writer.get(PAGE)
        assert page.status_code == 200 and ">Roll back</button>" not in page.text
        refused = writer.post(f"{PAGE}/rollback", data={"csrf": csrf_of(page.text)},
                              follow_redirects=False)
        assert refused.status_code == 403 and "approver" in refused.text
        assert store.get(DEPLOYMENT).serial == before
        approver = as_role("approver")
        page = approver.get(PAGE)
        assert ">Roll back</button>" in page.text and ">Pause</button>" in page.text
        done = approver.post(f"{PAGE}/rollback", data={"csrf": csrf_of(page.text)},
                             follow_redirects=False)
        assert done.status_code == 303
    current = store.revision(DEPLOYMENT)
    assert current.created_by == "user:ui-test-approver" and current.rollback_of is not None
