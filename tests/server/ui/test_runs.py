"""The Runs pages: the table (paging, sorting, filter errors, grouping, columns, CSV), the
comparison, one run's page with its artifact previews and the raw route, hostile names."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from typing import Any

import httpx
import pytest

import mloop
from mloop.project import Project
from mloop.server.ui.pages.run_artifacts import RAW_CSP
from mloop.server.ui.pages.runs import field_ref, parse_fields
from mloop.server.ui.parcoords import Axis, Line, parallel_coordinates

HOSTILE = "<script>alert('x')</script>\"&[]"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9Q"
                       "DwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def logged(demo_project: Project, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs of this module: 55 in experiment "many", and two with hostile names, metric
    histories and artifacts of every kind (one over the preview limit)."""
    p = demo_project
    for i in range(55):
        with mloop.start_run(experiment="many", name=f"m{i:02d}", project=p):
            mloop.log_params({"i": i, "parity": ("even", "odd")[i % 2], "odd,key": "v"})
            mloop.log_metric("score", float(i))
    files = tmp_path_factory.mktemp("artifacts")
    (files / "plot.png").write_bytes(PNG)
    (files / "big.txt").write_bytes(b"x" * (2 * 1024 * 1024 + 10))
    hostile_ids = []
    for n, c in ((1, 0.1), (2, 100.0)):
        with mloop.start_run(experiment="hostile", name=f"{HOSTILE} {n}", project=p,
                             tags={"team": HOSTILE}) as run:
            mloop.log_params({"C": c, "<b>key</b>\"'": f"{HOSTILE}{n}", "same": "1"})
            for step in range(300):
                mloop.log_metric("loss<i>", 1.0 / (step + n), step=step)
            mloop.log_metric("acc", 0.5 + n / 10)
            if n == 1:  # longer than a chart sends: downsampled, the rest on zoom
                for step in range(1500):
                    mloop.log_metric("long", step % 7, step=step)
            mloop.log_dict({"name": HOSTILE, "n": n}, "report/summary.json")
            mloop.log_text("a,b\n1,<b>2</b>\n3,4\n", "table.csv")
            mloop.log_text(f"<html><body><script>alert(1)</script>{n}</body></html>",
                           "report.html")
            mloop.log_text(f"hello {HOSTILE}", "notes.txt")
            mloop.log_artifact(files / "plot.png")
            mloop.log_artifact(files / "big.txt")
            hostile_ids.append(run.id)
    with mloop.start_run(experiment="hostile", name="parent", project=p) as parent, \
            mloop.start_run(name="child", nested=True, project=p) as child:
        mloop.log_metric("acc", 0.1)
    demo = mloop.search_runs(filter="attributes.name = 'logreg-C1'", project=p)
    return {"hostile": hostile_ids, "parent": parent.id, "child": child.id,
            "demo": demo["run_id"].iloc[0]}


def heads(page: httpx.Response) -> dict[str, str]:
    """The sortable column headings of the runs table: "kind.key" (or the label) → link."""
    found = re.findall(r'<th scope="col"[^>]*><a href="([^"]+)">(?:<small class="muted">'
                       r'([^<]*)</small><br>)?([^<]+)</a>', page.text)
    return {(f"{kind}.{key}" if kind else key): href.replace("&amp;", "&")
            for href, kind, key in found}


def main_of(page: httpx.Response) -> str:
    return page.text.split("<main", 1)[1].split("</main>", 1)[0]


def names_in(page: httpx.Response) -> list[str]:
    return re.findall(r'<a href="/ui/runs/[0-9a-f]{32}">([^<]*)</a>', main_of(page))


def test_runs_page_sorts_and_pages_fifty_at_a_time(ui: httpx.Client, logged: Any) -> None:
    first = ui.get("/ui/runs", params={"experiment": "many", "order": "metrics.score DESC"})
    assert first.status_code == 200
    assert names_in(first)[:3] == ["m54", "m53", "m52"] and len(names_in(first)) == 50
    assert 'rel="next"' in first.text and "Runs 1–50" in first.text
    assert 'aria-sort="descending"' in first.text
    assert "uPlot" not in first.text  # no chart script on the first load
    second = ui.get("/ui/runs", params={"experiment": "many", "order": "metrics.score DESC",
                                        "page": 2})
    assert names_in(second) == ["m04", "m03", "m02", "m01", "m00"]
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    ascending = ui.get("/ui/runs", params={"experiment": "many", "order": "params.i ASC"})
    assert names_in(ascending)[:2] == ["m00", "m01"]  # params compare as text: 0, 1, 10 …
    assert names_in(ascending)[2] == "m10"


def test_headers_sort_and_keep_the_state(ui: httpx.Client, logged: Any) -> None:
    page = ui.get("/ui/runs", params={"experiment": "many", "filter": "metrics.score > 1",
                                      "cols": "metrics.score"})
    target = heads(page)["metrics.score"]
    assert "filter=metrics.score" in target and "cols=metrics.score" in target
    assert "order=metrics.score+DESC" in target
    again = ui.get(target)
    assert names_in(again)[0] == "m54"


def test_filter_narrows_and_a_bad_filter_shows_where(ui: httpx.Client, logged: Any) -> None:
    page = ui.get("/ui/runs", params={"experiment": "many", "filter": "metrics.score >= 50"})
    assert sorted(names_in(page)) == ["m50", "m51", "m52", "m53", "m54"]
    bad = ui.get("/ui/runs", params={"experiment": "many", "filter": "metrics.score >> 50"})
    assert bad.status_code == 400
    body = main_of(bad)
    assert 'role="alert"' in body and "(at position 15)" in body
    assert "metrics.score &gt;<mark>&gt;</mark> 50" in body
    assert 'name="filter" value="metrics.score &gt;&gt; 50"' in body  # the form stays
    assert 'aria-invalid="true"' in body
    typed = ui.get("/ui/runs", params={"filter": "params.i = 3"})
    assert typed.status_code == 400 and "quote the value" in typed.text
    order = ui.get("/ui/runs", params={"order": "metrics.score SIDEWAYS"})
    assert order.status_code == 400 and 'id="order-error"' in order.text


def test_group_by_a_param_heads_each_value(ui: httpx.Client, logged: Any) -> None:
    page = ui.get("/ui/runs", params={"experiment": "many", "group": "params.parity",
                                      "order": "metrics.score DESC"})
    assert page.status_code == 200
    heads = re.findall(r'<tr class="group"><th scope="rowgroup"[^>]*>([^<]*)<span class="muted">'
                       r"\((\d+) on this page\)", page.text)
    assert [(h.strip(), n) for h, n in heads] == [("params.parity = even", "28"),
                                                   ("params.parity = odd", "22")]


def test_column_chooser(ui: httpx.Client, logged: Any) -> None:
    page = ui.get("/ui/runs", params={"experiment": "many",
                                      "cols": "params.parity, params.`odd,key`"})
    assert list(heads(page))[-2:] == ["params.parity", "params.odd,key"]
    assert "metrics.score" not in heads(page)
    # the chooser's checkboxes send one value each: folded into one shareable URL
    many = ui.get("/ui/runs?experiment=many&cols=metrics.score&cols=params.i&cols=",
                  follow_redirects=False)
    assert many.status_code == 303
    assert many.headers["location"] == "/ui/runs?experiment=many&cols=metrics.score%2Cparams.i"
    bad = ui.get("/ui/runs", params={"cols": "metrics.score, nonsense.x"})
    assert bad.status_code == 400 and 'id="cols-error"' in bad.text
    attribute = ui.get("/ui/runs", params={"cols": "metrics.score,attributes.user"})
    assert attribute.status_code == 400 and "Choose metrics., params. or tags." in attribute.text


def test_default_columns_and_csv_download(ui: httpx.Client, logged: Any) -> None:
    page = ui.get("/ui/runs", params={"experiment": "many", "order": "metrics.score DESC"})
    assert {"metrics.score", "params.parity", "params.i"} <= set(heads(page))
    got = ui.get("/ui/runs", params={"experiment": "many", "order": "metrics.score DESC",
                                     "format": "csv", "table": "runs"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert len(rows) == 50 and rows[0]["Run"] == "m54" and rows[0]["metrics.score"] == "54.0"


def chart_blocks(html: str) -> dict[str, Any]:
    blocks = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', html,
                        re.S)
    return {name: json.loads(text) for name, text in blocks}


def test_compare_overlays_curves_and_diffs_params(ui: httpx.Client, logged: Any) -> None:
    a, b = logged["hostile"]
    page = ui.get("/ui/runs/compare", params={"ids": f"{a[-12:]},{b}"})
    assert page.status_code == 200
    charts = chart_blocks(page.text)
    curve = next(c for c in charts.values() if c["title"] == "loss<i>")
    assert len(curve["series"]) == 2 and all(len(s["x"]) == 300 for s in curve["series"])
    assert curve["series"][0]["label"] == f"{HOSTILE} 1 ({a[-12:]})"
    assert "acc" not in {c["title"] for c in charts.values()}  # one point: a table row only
    body = main_of(page)
    assert "<script>alert" not in body
    differs = body.split('id="differs"', 1)[1].split("</table>", 1)[0]
    assert "params.C" in differs and "<mark>100.0</mark>" in differs
    assert "params.&lt;b&gt;key&lt;/b&gt;&#34;&#39;" in differs
    same = body.split('id="same"', 1)[1].split("</table>", 1)[0]
    assert "params.same" in same and "<details>" in body
    assert '<svg class="parcoords"' in body and "(log scale)" in body  # C from 0.1 to 100
    scatter = charts["scatter"]
    assert scatter["kind"] == "points" and scatter["x"] == "params.C"
    assert 'src="/ui/static/' in page.text and "uPlot" in page.text
    folded = ui.get(f"/ui/runs/compare?ids={a}&ids={b}", follow_redirects=False)
    assert folded.status_code == 303 and f"ids={a}%2C{b}" in folded.headers["location"]
    timed = chart_blocks(ui.get("/ui/runs/compare", params={"ids": f"{a},{b}",
                                                            "x": "time"}).text)
    assert next(iter(timed.values()))["x"] == "time"


def test_compare_needs_two_known_runs(ui: httpx.Client, logged: Any) -> None:
    one = ui.get("/ui/runs/compare", params={"ids": logged["hostile"][0]})
    assert one.status_code == 422 and "at least two runs" in one.text
    unknown = ui.get("/ui/runs/compare", params={"ids": f"{logged['hostile'][0]},0123456789ab"})
    assert unknown.status_code == 404


def test_metric_points_within_a_range(ui: httpx.Client, logged: Any) -> None:
    a = logged["hostile"][0]
    whole = ui.get(f"/ui/runs/{a}/metrics/loss%3Ci%3E")
    assert whole.status_code == 200 and len(whole.json()["x"]) == 300
    part = ui.get(f"/ui/runs/{a}/metrics/loss%3Ci%3E", params={"lo": 10, "hi": 20}).json()
    assert part["x"] == [float(s) for s in range(10, 21)]
    assert part["y"][0] == pytest.approx(1 / 11)
    assert ui.get(f"/ui/runs/{a}/metrics/nothing").status_code == 404
    assert ui.get(f"/ui/runs/{a}/metrics/acc", params={"x": "sideways"}).status_code == 422


def test_run_page_sections(ui: httpx.Client, logged: Any) -> None:
    a = logged["hostile"][0]
    page = ui.get(f"/ui/runs/{a[:14]}")
    assert page.status_code == 200
    body = main_of(page)
    assert re.findall(r"<h2>([^<]+)</h2>", body) == [
        "Params", "Metrics", "Tags", "Artifacts", "Environment and git", "Lineage",
        "Nested runs"]
    assert "<script>alert" not in body and "&lt;script&gt;alert(&#39;x&#39;)" in body
    charts = chart_blocks(page.text)
    assert [c["title"] for c in charts.values()] == ["long", "loss<i>"]  # acc: one point
    long, loss = charts["metric-0"]["series"][0], charts["metric-1"]["series"][0]
    assert long["full"] == f"/ui/runs/{a}/metrics/long" and len(long["x"]) == 1000
    assert loss["full"] is None and loss["total"] == 300
    assert f'href="/ui/lineage?uri=runs%3A%2F{a}"' in body
    assert "Python" in body and "Platform" in body


def test_artifact_previews(ui: httpx.Client, logged: Any) -> None:
    a = logged["hostile"][0]
    body = main_of(ui.get(f"/ui/runs/{a}"))
    raw = f"/ui/runs/{a}/artifacts/raw"
    assert f'<img class="preview" src="{raw}/plot.png?inline=1"' in body
    assert f'<iframe class="preview" sandbox src="{raw}/report.html?frame=1"' in body
    assert "&#34;name&#34;: &#34;&lt;script&gt;" in body  # JSON pretty-printed, escaped
    table = body.split('<table class="data preview">', 1)[1].split("</table>", 1)[0]
    assert "<th scope=\"col\">a</th>" in table and "<td>&lt;b&gt;2&lt;/b&gt;</td>" in table
    assert "hello &lt;script&gt;" in body
    big = body.split('aria-label="big.txt"', 1)[1].split("</section>", 1)[0]
    assert "Too large to show here" in big and f'href="{raw}/big.txt" download' in big
    assert "x" * 1000 not in body


def test_raw_route_headers(ui: httpx.Client, logged: Any) -> None:
    raw = f"/ui/runs/{logged['hostile'][0]}/artifacts/raw"
    image = ui.get(f"{raw}/plot.png", params={"inline": 1})
    assert image.content == PNG and image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline")
    report = ui.get(f"{raw}/report.html", params={"frame": 1})
    assert report.headers["content-security-policy"] == RAW_CSP
    assert report.headers["content-disposition"].startswith("inline")
    assert report.headers["x-content-type-options"] == "nosniff"
    assert report.headers["content-type"].startswith("text/html")
    alone = ui.get(f"{raw}/report.html")
    assert alone.headers["content-disposition"].startswith("attachment")
    text = ui.get(f"{raw}/notes.txt", params={"inline": 1})
    assert text.headers["content-disposition"].startswith("attachment")
    assert text.headers["content-type"].startswith("text/plain")
    big = ui.get(f"{raw}/big.txt")
    assert big.status_code == 200 and len(big.content) == 2 * 1024 * 1024 + 10
    again = ui.get(f"{raw}/plot.png", headers={"if-none-match": image.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd",
                                  "report/..%2F..%2F..%2Fetc%2Fpasswd", "nothing.txt"])
def test_raw_route_refuses_paths_outside(ui: httpx.Client, logged: Any, path: str) -> None:
    url = f"/ui/runs/{logged['hostile'][0]}/artifacts/raw/{path}"
    got = ui.send(ui.build_request("GET", httpx.URL(url)))
    assert got.status_code in (400, 404), got.text
    assert "root:" not in got.text


def test_lineage_and_nested_runs_link(ui: httpx.Client, logged: Any) -> None:
    demo = main_of(ui.get(f"/ui/runs/{logged['demo']}"))
    assert 'href="/ui/data/breast-cancer-train/1"' in demo
    assert 'href="/ui/models/breast-cancer/1"' in demo
    parent = main_of(ui.get(f"/ui/runs/{logged['parent']}"))
    nested = parent.split('id="nested"', 1)[1]
    assert f'href="/ui/runs/{logged["child"]}">child</a>' in nested
    child = main_of(ui.get(f"/ui/runs/{logged['child']}"))
    assert f'href="/ui/runs/{logged["parent"]}" rel="up"' in child


def test_hostile_names_render_as_text_in_the_list(ui: httpx.Client, logged: Any) -> None:
    key = "<b>key</b>\"'"
    cols = ",".join([field_ref("params", key), field_ref("tags", "team"),
                     field_ref("metrics", "loss<i>")])
    page = ui.get("/ui/runs", params={"experiment": "hostile", "cols": cols})
    assert page.status_code == 200, page.text
    body = main_of(page)
    assert "<script>" not in body and "<b>key" not in body and "<i>" not in body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;&amp;[] 1" in body
    group = ui.get("/ui/runs", params={"experiment": "hostile", "group": "tags.team"})
    assert "<script>" not in main_of(group) and group.status_code == 200


@pytest.mark.parametrize("run_id", ["0123456789ab", "not-a-run", "<script>x</script>"])
def test_unknown_run_is_a_404_page(ui: httpx.Client, run_id: str) -> None:
    page = ui.get(f"/ui/runs/{run_id}")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "<script>x" not in main_of(page) and 'href="/ui/' in main_of(page)


@pytest.mark.parametrize("key", ["acc", "val loss", "a,b", "k`q", 'q"`x', "loss<i>", "1st",
                                 "val.loss", "in"])
def test_field_refs_read_back(key: str) -> None:
    ref = field_ref("metrics", key)
    assert [(f.entity, f.key) for f in parse_fields(f"params.C, {ref}")] == [
        ("params", "C"), ("metrics", key)]


def test_parallel_coordinates_escape_and_scale() -> None:
    svg = parallel_coordinates(
        [Axis("params.C", [0.01, 1.0, 100.0]), Axis("<model>", ["a", "<b>", None]),
         Axis("acc", [0.5, 0.7, 0.9])],
        [Line("<script>1</script>", "/ui/runs/a?x=1&y=2"), Line("two"), Line("three")],
        title="t")
    assert "<script>" not in svg and "&lt;script&gt;1" in svg and "&amp;y=2" in svg
    assert "(log scale)" in svg and ">none<" in svg and svg.count("<path") == 3
    assert "at least two fields" in parallel_coordinates([Axis("a", [1])], [Line("x")],
                                                         title="t")


def test_no_chart_script_without_charts(ui: httpx.Client, logged: Any) -> None:
    child = ui.get(f"/ui/runs/{logged['child']}")  # one point of one metric: no chart
    assert "uPlot" not in child.text
