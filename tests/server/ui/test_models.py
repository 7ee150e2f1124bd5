"""The Models pages: the list, a model's versions and audit trail, one version (card,
evaluation reports, signature, exports, lineage), and the changes an approver makes —
on ``mloop ui`` (every role, a CSRF token) and behind ``mloop server``'s roles."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import mloop
from mloop.project import Project
from mloop.registry.models import events, get_version, register_model, set_tag
from tests.server.ui.conftest import csrf_of

HOSTILE = '<script>alert("x")</script> "quoted" [b]'
PAGE = "/ui/models/breast-cancer/1"


@pytest.fixture(scope="module")
def registry(demo_project: Project) -> dict[str, Any]:
    """v1 evaluated on the holdout with a sensitive feature; v2 (same run) with a hostile
    description and tag."""
    holdout = mloop.data.load("breast-cancer-holdout@1", project=demo_project)
    holdout["group"] = np.where(holdout["mean radius"] > 14, "<b>big</b>", "small")
    report = mloop.evaluate("models:/breast-cancer/1", data=holdout, target="target",
                            sensitive_features=["group"], resamples=20,
                            project=demo_project)
    v1 = get_version(demo_project, "breast-cancer/1")
    v2 = register_model(demo_project, v1.source, "breast-cancer", description=HOSTILE)
    set_tag(demo_project, v2.uri, "ticket", "<img src=x onerror=alert(1)>")
    return {"report": report, "v1": v1, "v2": v2}


def main_of(html: str) -> str:
    return html.split("<main", 1)[1]


def csv_rows(client: httpx.Client, url: str, table: str) -> list[list[str]]:
    answer = client.get(httpx.URL(url).copy_merge_params({"format": "csv", "table": table}))
    assert answer.status_code == 200, answer.text
    return list(csv.reader(io.StringIO(answer.text)))


def status_of(project: Project, ref: str = "breast-cancer/1") -> str:
    return str(get_version(project, ref).status)


def test_the_list_shows_latest_versions_aliases_and_status(ui: httpx.Client,
                                                           registry: object) -> None:
    page = ui.get("/ui/models")
    assert page.status_code == 200
    assert 'href="/ui/models/breast-cancer"' in page.text
    latest = str(registry["v2"].version)  # type: ignore[index]
    assert f'href="/ui/models/breast-cancer/{latest}"' in page.text
    rows = csv_rows(ui, "/ui/models", "models")
    assert rows[0][:4] == ["Model", "Latest", "Latest status", "Versions"]
    row = rows[1]
    assert row[0] == "breast-cancer" and row[1] == latest and row[3] == latest
    assert "champion → v1" in row[5]


def test_a_model_lists_versions_with_their_source_runs(ui: httpx.Client,
                                                       registry: dict[str, Any]) -> None:
    page = ui.get("/ui/models/breast-cancer")
    assert page.status_code == 200
    body = main_of(page.text)
    assert f'href="/ui/runs/{registry["v1"].run_id}"' in body
    assert "<script>" not in body and "&lt;script&gt;alert" in body
    versions = csv_rows(ui, "/ui/models/breast-cancer", "versions")
    newest = registry["v2"].version  # type: ignore[index]
    assert [r[0] for r in versions[1:]] == [str(n) for n in range(newest, 0, -1)]
    assert versions[-1][2] == "champion"
    history = csv_rows(ui, "/ui/models/breast-cancer", "history")
    assert {r[2] for r in history[1:]} >= {"registered", "alias"}


def test_a_version_shows_card_evaluation_signature_exports_and_lineage(
        ui: httpx.Client, registry: dict[str, Any]) -> None:
    page = ui.get(PAGE)
    assert page.status_code == 200
    body = main_of(page.text)
    for heading in ("Approval", "Aliases", "Evaluation", "Model card", "Signature",
                    "Exports", "History", "Lineage"):
        assert f"<h2>{heading}</h2>" in body
    levels = [int(h) for h in re.findall(r"<h([1-6])[ >]", body)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))  # in order
    # the card, rendered from the registry's card (its sections as HTML)
    assert "<h3>Model details</h3>" in body and "<h3>Intended use</h3>" in body
    assert "<td>breast-cancer</td>" in body
    # the stored report: gate, metrics with intervals, checks by kind, fairness by group
    metrics = {r[0]: r for r in csv_rows(ui, PAGE, "metrics")[1:]}
    value, low, high = (float(x) for x in metrics["accuracy"][1:4])
    assert low <= value <= high
    assert "<h3>Robustness checks</h3>" in body and "<h3>Behaviour checks</h3>" in body
    assert "robustness: gaussian_noise" in body and "determinism" in body
    assert "<h3>Fairness by group</h3>" in body and "&lt;b&gt;big&lt;/b&gt;" in body
    groups = {r[0]: r for r in csv_rows(ui, PAGE, "fairness-0")[1:]}
    assert set(groups) == {"<b>big</b>", "small"}
    assert sum(int(g[1]) for g in groups.values()) == 114
    fairness_checks = csv_rows(ui, PAGE, "checks-4")
    assert any(r[1] == "demographic_parity_difference (group)" for r in fairness_checks)
    assert "badge-passed" in body  # the gate decision
    # signature, exports, lineage
    signature = csv_rows(ui, PAGE, "signature")
    assert signature[1] == ["mean radius", "float64"] and len(signature) == 31
    exports = {r[0]: r for r in csv_rows(ui, PAGE, "exports")[1:]}
    assert exports["ONNX file"][1] == "yes"
    assert exports["Python package"][2].startswith("mloop models export breast-cancer/1")
    assert f'href="/ui/runs/{registry["v1"].run_id}"' in body
    assert 'href="/ui/lineage?uri=models%3A%2Fbreast-cancer%2F1"' in body


def test_an_alias_names_a_version_too(ui: httpx.Client, registry: object) -> None:
    for ref in ("@champion", "champion"):
        page = ui.get(f"/ui/models/breast-cancer/{ref}")
        assert page.status_code == 200
        assert "<h1>breast-cancer v1</h1>" in page.text


def test_hostile_descriptions_and_tags_render_as_text(ui: httpx.Client,
                                                      registry: object) -> None:
    page = ui.get(f"/ui/models/breast-cancer/{registry['v2'].version}")  # type: ignore[index]
    assert page.status_code == 200
    body = main_of(page.text)
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#34;quoted&#34; [b]" in body
    assert "ticket=&lt;img src=x onerror=alert(1)&gt;" in body
    assert "Never evaluated" in body


def test_the_card_downloads_in_each_format(ui: httpx.Client, registry: object) -> None:
    md = ui.get(f"{PAGE}/card", params={"format": "md"})
    assert md.status_code == 200 and md.text.startswith("# Model card: breast-cancer v1")
    assert "attachment" in md.headers["content-disposition"]
    hf = ui.get(f"{PAGE}/card", params={"format": "hf"})
    assert hf.text.startswith("---\n") and "model-index" in hf.text
    html = ui.get(f"{PAGE}/card", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and "<script" not in html.text
    assert ui.get(f"{PAGE}/card", params={"format": "pdf"}).status_code == 422


@pytest.mark.parametrize("url", [
    "/ui/models/nope", "/ui/models/breast-cancer/99", "/ui/models/breast-cancer/@nope",
    "/ui/models/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/ui/models/breast-cancer/%3Cscript%3E", "/ui/models/breast-cancer/1?evaluation=zz"])
def test_unknown_models_and_versions_are_404_pages_with_a_way_back(
        ui: httpx.Client, registry: object, url: str) -> None:
    page = ui.get(url)
    assert page.status_code == 404
    body = main_of(page.text)
    assert "<script>" not in body and 'href="/ui/' in body


# ── changes on mloop ui ──────────────────────────────────────────────────────────────
def test_approving_needs_the_pages_csrf_token(ui: httpx.Client, demo_project: Project,
                                              registry: object) -> None:
    page = ui.get(PAGE)
    assert 'action="/ui/models/breast-cancer/1/approve"' in page.text
    refused = ui.post(f"{PAGE}/approve", data={"message": "no token"})
    assert refused.status_code == 403
    assert status_of(demo_project) == "registered"
    done = ui.post(f"{PAGE}/approve", data={"csrf": csrf_of(page.text), "message": HOSTILE,
                                            "next": PAGE}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(PAGE + "?done=")
    assert status_of(demo_project) == "approved"
    last = events(demo_project, "breast-cancer")[-1]
    assert (last.action, last.version, last.message) == ("approved", 1, HOSTILE)
    again = ui.get(done.headers["location"])
    assert "badge-approved" in again.text and 'role="status"' in again.text
    history = csv_rows(ui, PAGE, "history")
    assert history[1][2:5] == ["approved", last.user, HOSTILE]  # newest first
    assert "&lt;script&gt;" in main_of(again.text) and "<script>" not in main_of(again.text)


def test_rejecting_needs_a_reason(ui: httpx.Client, demo_project: Project,
                                  registry: object) -> None:
    token = csrf_of(ui.get("/ui/models/breast-cancer/2").text)
    url = "/ui/models/breast-cancer/2/reject"
    silent = ui.post(url, data={"csrf": token, "message": "  "})
    assert silent.status_code == 422 and "Say why" in silent.text
    assert status_of(demo_project, "breast-cancer/2") == "registered"
    done = ui.post(url, data={"csrf": token, "message": "worse on the holdout"},
                   follow_redirects=False)
    assert done.status_code == 303
    assert status_of(demo_project, "breast-cancer/2") == "rejected"


def test_moving_an_alias(ui: httpx.Client, demo_project: Project, registry: object) -> None:
    token = csrf_of(ui.get(PAGE).text)
    url = "/ui/models/breast-cancer/2/alias"
    assert ui.post(url, data={"alias": "challenger"}).status_code == 403
    done = ui.post(url, data={"csrf": token, "alias": "challenger"}, follow_redirects=False)
    assert done.status_code == 303
    assert get_version(demo_project, "breast-cancer@challenger").version == 2
    bad = ui.post(url, data={"csrf": token, "alias": "<b>x</b>"})
    assert bad.status_code == 422 and "<b>x</b>" not in bad.text
    page = ui.get(PAGE)
    assert 'href="/ui/models/breast-cancer/%40challenger"' in page.text


# ── changes behind mloop server's roles ──────────────────────────────────────────────
@pytest.fixture(scope="module")
def server(demo_root: Path, registry: object) -> Iterator[tuple[str, Project]]:
    """``mloop server`` over the demo (its own Project on the same store): its URL."""
    from mloop.server.main import ServerConfig, build_app
    from tests.server.live import LiveServer

    project = Project.open(demo_root)
    app = build_app(ServerConfig(root=str(demo_root)), project)
    try:
        with LiveServer(app) as live:
            yield live.url, project
    finally:
        asyncio.run(_shut_down(app))  # the audit writer and the project, as at shutdown


async def _shut_down(app: Any) -> None:
    async with app.router.lifespan_context(app):
        pass


@contextlib.contextmanager
def logged_in(url: str, project: Project, name: str, role: str) -> Iterator[httpx.Client]:
    """A browser's session: logged in with a new token of ``role``."""
    from mloop.server import tokens

    token, _, _ = tokens.create(project, name, role)
    with httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/login", data={"token": token, "next": "/ui/models"},
                             follow_redirects=False)
        assert answer.status_code == 303, answer.text
        assert "mloop_session" in client.cookies and "mloop_csrf" in client.cookies
        yield client


def test_a_reader_sees_no_buttons_and_cannot_approve(server: tuple[str, Project],
                                                     demo_project: Project) -> None:
    url, project = server
    target = "/ui/models/breast-cancer/2"
    before = status_of(demo_project, "breast-cancer/2")
    with logged_in(url, project, "rita", "reader") as reader:
        page = reader.get(target)
        assert page.status_code == 200
        assert "/approve" not in page.text and "/alias" not in page.text
        assert "needs the approver role; you are reader" in page.text
        csrf = reader.cookies["mloop_csrf"]
        refused = reader.post(f"{target}/approve", data={"csrf": csrf, "message": "me"})
        assert refused.status_code == 403 and "approver" in refused.text  # the role
        moved = reader.post(f"{target}/alias", data={"csrf": csrf, "alias": "champion"})
        assert moved.status_code == 403
    assert status_of(demo_project, "breast-cancer/2") == before
    assert get_version(demo_project, "breast-cancer@champion").version == 1


def test_an_approver_approves(server: tuple[str, Project], demo_project: Project) -> None:
    url, project = server
    target = "/ui/models/breast-cancer/2"
    with logged_in(url, project, "alice", "approver") as approver:
        page = approver.get(target)
        assert f'action="{target}/approve"' in page.text
        done = approver.post(f"{target}/approve", data={
            "csrf": csrf_of(page.text), "message": "re-reviewed"}, follow_redirects=False)
        assert done.status_code == 303
        assert approver.get(done.headers["location"]).status_code == 200
    assert status_of(demo_project, "breast-cancer/2") == "approved"
    last = events(demo_project, "breast-cancer")[-1]
    assert (last.action, last.user, last.message) == ("approved", "alice", "re-reviewed")
