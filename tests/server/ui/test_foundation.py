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
