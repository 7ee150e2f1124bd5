"""The lineage explorer."""

from __future__ import annotations

import json
import re

import httpx

from mloop.project import Project


def _graph(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="lineage">(.*?)</script>', html,
                      re.S)
    assert match
    return json.loads(match.group(1))


def test_from_a_model_alias_up_to_its_data(ui: httpx.Client, demo_project: Project) -> None:
    from mloop.registry.models import get_version

    champion = get_version(demo_project, "models:/breast-cancer@champion")
    page = ui.get("/ui/lineage", params={"uri": "models:/breast-cancer@champion",
                                         "depth": 3})
    assert page.status_code == 200
    graph = _graph(page.text)
    ids = {n["id"] for n in graph["nodes"]}
    assert champion.uri in ids and f"runs:/{champion.run_id}" in ids
    assert "data:/breast-cancer-train@1" in ids
    focus = [n for n in graph["nodes"] if "focus" in n["kind"]]
    assert [n["id"] for n in focus] == [champion.uri]
    assert all(n["href"].startswith("/ui/lineage?uri=") for n in graph["nodes"])


def test_expanding_adds_nodes(ui: httpx.Client) -> None:
    near = _graph(ui.get("/ui/lineage", params={"uri": "breast-cancer@1", "depth": 1}).text)
    far = _graph(ui.get("/ui/lineage", params={"uri": "breast-cancer@1", "depth": 4}).text)
    assert len(far["nodes"]) > len(near["nodes"])


def test_bad_uris(ui: httpx.Client) -> None:
    assert ui.get("/ui/lineage").status_code == 200  # the form alone
    bad = ui.get("/ui/lineage", params={"uri": "nope:/<b>x</b>"})
    assert 400 <= bad.status_code < 500 and "<b>x</b>" not in bad.text
    assert ui.get("/ui/lineage", params={"uri": "data:/nosuch@1"}).status_code == 404
    assert ui.get("/ui/lineage", params={"uri": "runs:/ffffffffffff"}).status_code == 404


def test_a_deployment_by_name_starts_at_its_current_revision(ui: httpx.Client,
                                                             demo_project: Project) -> None:
    from mloop.repositories import backend

    live = backend(demo_project).deployments.get("breast-cancer-live")
    page = ui.get("/ui/lineage", params={"uri": "deployments:/breast-cancer-live"})
    assert page.status_code == 200
    ids = {n["id"] for n in _graph(page.text)["nodes"]}
    assert f"deployments:/breast-cancer-live/{live.current_revision}" in ids
    assert any(i.startswith("models:/breast-cancer/") for i in ids)
    assert ui.get("/ui/lineage", params={"uri": "deployments:/nope"}).status_code == 404


def test_from_an_alert_up_to_the_model(ui: httpx.Client, demo_project: Project) -> None:
    from mloop.repositories import backend

    alert = backend(demo_project).alerts.list(limit=1)[0]
    page = ui.get("/ui/lineage", params={"uri": alert.uri})
    assert page.status_code == 200
    ids = {n["id"] for n in _graph(page.text)["nodes"]}
    assert alert.subject in ids
