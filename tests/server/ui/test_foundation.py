"""The UI's frame: static assets, errors, CSRF and Host checks, CSV downloads, LTTB."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest

from mloop.server.ui.charts import Chart, lttb, script_json


def test_home_has_security_headers_and_assets(ui: httpx.Client) -> None:
    page = ui.get("/ui/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for path in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text):
        asset = ui.get(path, headers={"accept-encoding": "gzip"})
        assert asset.status_code == 200, path
        assert "immutable" in asset.headers["cache-control"]


def test_unknown_page_is_a_404_page_with_a_way_back(ui: httpx.Client) -> None:
    page = ui.get("/ui/runs/0000deadbeef/nope/<script>")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert "<script>" not in page.text.split("<main", 1)[1]
    assert 'href="/ui/' in page.text


def test_root_leads_to_the_ui(ui: httpx.Client) -> None:
    assert ui.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_another_host_is_refused(ui: httpx.Client) -> None:
    page = ui.get("/ui/", headers={"host": "evil.example"})
    assert page.status_code == 403


def test_lttb_keeps_ends_and_budget() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 300) + (x == 5000) * 10  # a spike LTTB must keep
    sx, _sy = lttb(x, y, 500)
    assert len(sx) == 500 and sx[0] == 0 and sx[-1] == 9999
    assert 5000 in sx.tolist()  # the spike
    assert np.all(np.diff(sx) > 0)
    same_x, _same_y = lttb(x[:100], y[:100], 500)
    assert len(same_x) == 100


def test_lttb_drops_non_finite() -> None:
    sx, sy = lttb(np.arange(5.0), np.array([1, np.nan, 3, np.inf, 5.0]), 10)
    assert sx.tolist() == [0, 2, 4] and sy.tolist() == [1, 3, 5]


@pytest.mark.parametrize("text", ["</script><script>alert(1)</script>", "a\u2028b", "&<>"])
def test_script_json_cannot_close_its_block(text: str) -> None:
    out = script_json({"label": text})
    assert "<" not in out and ">" not in out and "\u2028" not in out
    import json

    assert json.loads(out)["label"] == text


def test_chart_downsamples_and_names_full_data() -> None:
    chart = Chart("c")
    series = chart.add("loss", range(5000), np.linspace(1, 0, 5000), full="/full")
    assert len(series.x) == 1000 and series.full == "/full" and series.total == 5000
    small = chart.add("acc", range(10), range(10), full="/full2")
    assert small.full is None


@pytest.mark.parametrize("path", ["/ui/runs/{run}/artifacts/raw/model/MLmodel",
                                  "/ui/runs/{run}/metrics/accuracy",
                                  "/ui/models/breast-cancer/1/card?format=md"])
def test_a_rebinding_host_reads_no_route(ui: httpx.Client, demo_project: object,
                                         path: str) -> None:
    from mloop.registry.models import get_version

    run = get_version(demo_project, "breast-cancer/1").run_id  # type: ignore[arg-type]
    answer = ui.get(path.format(run=run), headers={"host": "attacker.example"})
    assert answer.status_code == 403


@pytest.mark.parametrize("query", [{"page": "9" * 30}, {"page": "2000000"},
                                   {"cols": ",".join(f"params.a{i}" for i in range(150))},
                                   {"cols": "params." + "a" * 5000}])
def test_absurd_runs_queries_are_refused_not_served(ui: httpx.Client, query: dict) -> None:
    answer = ui.get("/ui/runs", params=query)
    assert 400 <= answer.status_code < 500
    assert len(answer.content) < 200_000


def test_a_change_lands_before_a_fragment() -> None:
    from mloop.server.ui.app import back

    class Request:
        pass

    answer = back(Request(), {"next": "/ui/models/x/1#approval"},  # type: ignore[arg-type]
                  "/ui/", "done it")
    assert answer.headers["location"] == "/ui/models/x/1?done=done+it#approval"
