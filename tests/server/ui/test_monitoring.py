"""The monitoring pages over the demo's traffic: drift over time, the latest report, live
performance against the evaluation, alerts resolved from the page (CSRF, roles), hostile
text escaped."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from mloop import monitoring
from mloop.core.clock import now_ms
from mloop.monitoring.alerting import Firing, fire, list_alerts
from mloop.project import Project
from tests.server.ui.conftest import csrf_of
from tests.server.ui.served import server_ui

MODEL = "breast-cancer"
PAGE = f"/ui/monitoring?model={MODEL}&version=1"
HOSTILE = "<script>alert('x')</script> \"quoted\" [brackets]"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1]


def test_the_overview_lists_models_and_their_open_alerts(ui: httpx.Client) -> None:
    page = ui.get("/ui/monitoring")
    assert page.status_code == 200
    models = _rows(ui.get("/ui/monitoring?format=csv&table=models").text)
    assert [(m["Model"], m["Versions logged"]) for m in models] == [(MODEL, "1, 2")]
    assert int(models[0]["Open alerts"]) >= 2
    alerts = _rows(ui.get("/ui/monitoring?format=csv&table=alerts").text)
    drift = {a["Subject"] for a in alerts if a["Rule"] == "data-drift" and a["Status"] == "open"}
    assert drift == {f"models:/{MODEL}/1", f"models:/{MODEL}/2"}
    assert page.text.count(">Resolve</button>") == sum(a["Status"] == "open" for a in alerts)


def test_a_version_shows_drift_over_time_and_the_latest_report(ui: httpx.Client) -> None:
    page = ui.get(PAGE)
    assert page.status_code == 200
    for heading in ("Drift over time", "Latest drift report", "Live performance", "Alerts"):
        assert f"<h2>{heading}</h2>" in page.text
    share = re.search(r'<script type="application/json" id="drift-share">(.*?)</script>',
                      page.text, re.S)
    assert share is not None
    import json

    series = json.loads(share.group(1))["series"]
    drifted = series[0]["y"]
    assert len(drifted) >= 4 and drifted[0] < drifted[-1] == 1.0  # the shifted patients
    assert all(v == 0.5 for v in series[1]["y"])  # the dataset threshold
    columns = _rows(ui.get(PAGE + "&format=csv&table=columns").text)
    assert len(columns) == 30 and all(c["Status"] == "drift" for c in columns)
    first = columns[0]
    assert first["Score"] == "wasserstein" and float(first["Value"]) > float(first["Threshold"])
    chosen = ui.get(PAGE + "&column=" + first["Column"].replace(" ", "%20"))
    assert f"{first['Column']}: wasserstein" in chosen.text
    report = ui.get(f"/ui/monitoring/report?model={MODEL}&version=1")
    assert report.status_code == 200 and "Data drift" in report.text
    assert "<script" not in report.text


def test_live_performance_is_set_against_the_evaluation(ui: httpx.Client,
                                                        demo_project: Project) -> None:
    measured = monitoring.performance(MODEL, window="24h", project=demo_project)
    version = next(v for v in measured.versions if v.version == 1)
    rows = {r["Metric"]: r for r in _rows(ui.get(PAGE + "&format=csv&table=performance").text)}
    assert float(rows["accuracy"]["Live"]) == version.metrics["accuracy"]
    assert float(rows["accuracy"]["Evaluated"]) == version.criteria["accuracy"]["evaluated"]
    assert rows["accuracy"]["Status"] == "ok"
    assert 'id="live-chart"' in ui.get(PAGE).text


def test_unknown_models_versions_and_columns_are_404_pages(ui: httpx.Client) -> None:
    for path in ("/ui/monitoring?model=nope", f"/ui/monitoring?model={MODEL}&version=99",
                 f"{PAGE}&column=%3Cscript%3Ealert(1)%3C/script%3E",
                 "/ui/monitoring/report?model=nope&version=1"):
        page = ui.get(path)
        assert page.status_code == 404, path
        assert "<script>alert" not in _main(page.text) and 'href="/ui/' in page.text
    bad = ui.get("/ui/monitoring?model=%3Cscript%3Ealert(1)%3C/script%3E")
    assert bad.status_code == 422 and "<script>alert" not in _main(bad.text)
    assert ui.get(PAGE + "&window=soon").status_code == 422


def test_resolving_an_alert_needs_the_csrf_token(ui: httpx.Client,
                                                 demo_project: Project) -> None:
    alert = next(a for a in list_alerts(demo_project, open_only=True)
                 if a.subject == f"models:/{MODEL}/1")
    url = f"/ui/monitoring/alerts/{alert.id}/resolve"
    assert ui.post(url, follow_redirects=False).status_code == 403
    assert next(a for a in list_alerts(demo_project) if a.id == alert.id).status == "open"
    token = csrf_of(ui.get(PAGE).text)
    done = ui.post(url, data={"csrf": token, "next": PAGE}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(PAGE + "&done=")
    stored = next(a for a in list_alerts(demo_project) if a.id == alert.id)
    assert stored.status == "resolved" and stored.resolved_at is not None
    assert "Resolved alert data-drift" in ui.get(done.headers["location"]).text
    missing = ui.post("/ui/monitoring/alerts/nope/resolve", data={"csrf": token},
                      follow_redirects=False)
    assert missing.status_code == 404


def test_behind_the_server_a_reader_cannot_resolve(demo_root: Path,
                                                   demo_project: Project) -> None:
    alert, _ = fire(demo_project, Firing("reader-check", "drift.share", f"models:/{MODEL}/2",
                                         "info", 1.0, 0.5, "for the role test", 0))
    with server_ui(demo_root) as as_role:
        reader = as_role("reader")
        page = reader.get(f"/ui/monitoring?model={MODEL}&version=2")
        assert page.status_code == 200 and ">Resolve</button>" not in page.text
        refused = reader.post(f"/ui/monitoring/alerts/{alert.id}/resolve",
                              data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert refused.status_code == 403
        writer = as_role("writer")
        page = writer.get("/ui/monitoring")
        assert ">Resolve</button>" in page.text
        done = writer.post(f"/ui/monitoring/alerts/{alert.id}/resolve",
                           data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert done.status_code == 303
    assert next(a for a in list_alerts(demo_project) if a.id == alert.id).status == "resolved"


def test_hostile_alerts_and_column_names_render_as_text(ui: httpx.Client,
                                                        demo_project: Project) -> None:
    from mloop.serving.predlog import PredictionLogger, log_root

    fire(demo_project, Firing(HOSTILE, "drift.share", f"models:/{MODEL}/2", "warning", 1.0,
                              0.5, HOSTILE, 0))
    # a version whose logged input and reference both have a column with a hostile name
    rows = 40
    frame = pd.DataFrame({HOSTILE: np.linspace(0, 1, rows)})
    frame.to_csv(demo_project.root / "hostile.csv", index=False)
    (demo_project.root / ".mloop" / "monitoring.yaml").write_text(
        f"reference:\n  {MODEL}: hostile.csv\n")
    logger = PredictionLogger(log_root(demo_project))
    logger.log(MODEL, 3, f"hostile{now_ms()}", frame=frame, pred=np.zeros(rows, dtype=int),
               proba=None, latency_ms=1.0)
    logger.close()
    for path in ("/ui/monitoring", f"/ui/monitoring?model={MODEL}&version=3"):
        body = _main(ui.get(path).text)
        assert "<script>alert" not in body, path
        assert "&lt;script&gt;alert(" in body, path
    columns = _rows(ui.get(f"/ui/monitoring?model={MODEL}&version=3&format=csv"
                           "&table=columns").text)
    assert HOSTILE in [c["Column"] for c in columns]
    chart = ui.get(f"/ui/monitoring?model={MODEL}&version=3").text
    assert "</script><script>" not in chart.split("drift-col-0", 1)[1]
