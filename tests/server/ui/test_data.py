"""The Datasets pages: the list, a dataset's versions, one version's schema, profiles,
validation and lineage, and the diff of two versions; hostile column names as text."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import mloop
from mloop.project import Project

HOSTILE = '<script>alert("x")</script>'
PLAN = 'plan "quoted" [b]'


@pytest.fixture(scope="module")
def people(demo_root: Path, demo_project: Project) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dataset ``people``: v1 (tagged golden, validated) and v2 — 5 rows removed, 10 added,
    ``age`` changed in 5 rows, the hostile column shifted by 1.5, a column ``extra``."""
    rng = np.random.default_rng(0)
    v1 = pd.DataFrame({"id": np.arange(80), HOSTILE: rng.normal(0, 1, 80),
                       PLAN: rng.choice(["free", "<b>pro</b>", "team"], 80),
                       "age": rng.integers(18, 80, 80)})
    path = demo_root / "data" / "people.csv"
    v1.to_csv(path, index=False)
    mloop.data.add(path, name="people", message="first <i>export</i>", project=demo_project)
    mloop.data.tag("people@1", "golden", project=demo_project)
    schema = demo_root / "people-schema.yaml"
    schema.write_text("columns:\n  age: {type: int, max: 70}\n  id: {unique: true}\n")
    mloop.data.validate("people@1", schema, project=demo_project)
    v2 = v1[v1.id >= 5].copy()
    v2.loc[v2.id.between(10, 14), "age"] += 100
    v2[HOSTILE] += 1.5
    v2 = pd.concat([v2, pd.DataFrame({"id": np.arange(80, 90), HOSTILE: 2.0,
                                      PLAN: "team", "age": 30})])
    v2["extra"] = 1.0
    v2.to_csv(path, index=False)
    mloop.data.add(path, name="people", message="second", project=demo_project)
    return v1, v2


def main_of(html: str) -> str:
    """The page's own content (the head holds the page's scripts)."""
    return html.split("<main", 1)[1]


def csv_rows(ui: httpx.Client, url: str, table: str) -> list[list[str]]:
    answer = ui.get(httpx.URL(url).copy_merge_params({"format": "csv", "table": table}))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(answer.text)))


def test_the_list_shows_each_dataset_with_its_latest_version(
        ui: httpx.Client, people: object, demo_project: Project) -> None:
    page = ui.get("/ui/data")
    assert page.status_code == 200
    for name in ("breast-cancer", "breast-cancer-train", "breast-cancer-holdout", "people"):
        assert f'href="/ui/data/{name}"' in page.text
    assert 'href="/ui/data/people/2"' in page.text
    rows = {r[0]: r for r in csv_rows(ui, "/ui/data", "datasets")[1:]}
    assert rows["people"][1:4] == ["2", "2", "85"]  # latest, versions, rows
    from mloop.data.catalog import get

    latest = get(demo_project, "breast-cancer@latest")
    assert rows["breast-cancer"][1:4] == [str(latest.version), str(latest.version),
                                          str(latest.rows)]


def test_a_dataset_lists_its_versions_and_offers_a_diff(ui: httpx.Client,
                                                         people: object) -> None:
    page = ui.get("/ui/data/people")
    assert page.status_code == 200
    body = main_of(page.text)
    assert "first &lt;i&gt;export&lt;/i&gt;" in body and "<i>export" not in body
    assert "golden" in body
    assert 'action="/ui/data/people/diff"' in body and '<select name="key">' in body
    versions = csv_rows(ui, "/ui/data/people", "versions")
    assert [r[0] for r in versions[1:]] == ["2", "1"]
    assert versions[2][1] == "golden"


def test_a_version_shows_schema_profiles_and_lineage(ui: httpx.Client) -> None:
    page = ui.get("/ui/data/breast-cancer/1")
    assert page.status_code == 200
    body = main_of(page.text)
    assert body.count('<svg class="hist"') == 31  # one histogram a column
    assert "mean radius" in body and "569" in body
    assert re.search(r'href="/ui/runs/[0-9a-f]{32}"', body)  # the run that read it
    assert 'href="/ui/lineage?uri=data%3A%2Fbreast-cancer%401"' in body
    schema = csv_rows(ui, "/ui/data/breast-cancer/1", "schema")
    assert schema[0][:3] == ["Column", "Type", "Kind"]
    by_name = {r[0]: r for r in schema[1:]}
    assert by_name["target"][5] == "2"  # distinct
    assert by_name["mean radius"][6] == "6.981"  # the summary's exact minimum
    lineage = csv_rows(ui, "/ui/data/breast-cancer/1", "lineage")
    assert any(r[0] == "downstream" and r[2] == "reads this" for r in lineage[1:])
    assert ui.get("/ui/data/breast-cancer/latest").status_code == 200


def test_hostile_columns_and_categories_render_as_text(ui: httpx.Client,
                                                       people: object) -> None:
    page = ui.get("/ui/data/people/golden")  # by tag
    assert page.status_code == 200
    body = main_of(page.text)
    assert "<script>" not in body and "<b>pro" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert "&lt;b&gt;pro&lt;/b&gt;" in body
    assert "plan &#34;quoted&#34; [b]" in body
    schema = csv_rows(ui, "/ui/data/people/1", "schema")
    assert [r[0] for r in schema[1:]] == ["id", HOSTILE, PLAN, "age"]  # the file's order


def test_a_version_shows_its_validation(ui: httpx.Client, people: object) -> None:
    page = ui.get("/ui/data/people/1")
    assert "badge-failed" in page.text  # ages above 70
    checks = csv_rows(ui, "/ui/data/people/1", "validation")
    results = {(r[0], r[1]): r[2] for r in checks[1:]}
    assert results[("age", "max")] == "fail" and results[("id", "unique")] == "pass"
    assert "Not validated" in ui.get("/ui/data/people/2").text


def test_diff_by_key_lists_added_removed_and_changed_rows(ui: httpx.Client,
                                                          people: object) -> None:
    url = "/ui/data/people/diff?a=1&b=2&key=id"
    page = ui.get(url)
    assert page.status_code == 200, page.text
    body = main_of(page.text)
    assert "added <code>extra</code>" in body
    assert "<script>" not in body
    added = csv_rows(ui, url, "added")
    assert [r[0] for r in added[1:]] == [str(i) for i in range(80, 90)]
    assert added[0][:2] == ["id", HOSTILE]
    removed = csv_rows(ui, url, "removed")
    assert [r[0] for r in removed[1:]] == ["0", "1", "2", "3", "4"]
    changed = csv_rows(ui, url, "changed")
    ages = [r for r in changed[1:] if r[1] == "age"]
    assert [r[0] for r in ages] == ["10", "11", "12", "13", "14"]
    assert all(int(r[3]) == int(r[2]) + 100 for r in ages)
    assert re.search(r"Changed</dt><dd>75</dd>", body)  # every kept row: the column moved
    shift = {r[0]: r for r in csv_rows(ui, url, "shift")[1:]}
    assert shift[HOSTILE][2] == "drift" and shift["id"][2] in ("ok", "drift")
    assert shift[PLAN][1] == "categorical"
    # the two versions overlaid over the same bins, in a legend of both
    assert body.count('<span class="key"') >= 2 * 4 and ">v1</span>" in body


def test_diff_without_a_key_counts_whole_rows(ui: httpx.Client, people: object) -> None:
    page = ui.get("/ui/data/people/diff", params={"a": "1", "b": "2"})
    assert page.status_code == 200
    assert re.search(r"Rows removed \(whole-row match\)</dt><dd>80</dd>", page.text)
    assert "Choose a key column" in page.text


def test_diff_with_a_hostile_or_unknown_key_is_an_error_page(ui: httpx.Client,
                                                             people: object) -> None:
    page = ui.get("/ui/data/people/diff", params={"a": "1", "b": "2", "key": "<img src=x>"})
    assert page.status_code == 422
    assert "<img src=x>" not in page.text and "&lt;img src=x&gt;" in page.text


def test_a_folder_version_lists_its_files_and_profiles_its_tables(
        ui: httpx.Client, demo_root: Path, demo_project: Project) -> None:
    folder = demo_root / "data" / "batches"
    folder.mkdir()
    pd.DataFrame({"x": range(40), "y": ["a", "b"] * 20}).to_csv(folder / "one.csv",
                                                               index=False)
    (folder / "notes.txt").write_text("hello")
    mloop.data.add(folder, name="batches", project=demo_project)
    (folder / "notes.txt").write_text("hello again")
    (folder / "two.csv").write_text("x,y\n1,c\n")
    mloop.data.add(folder, name="batches", project=demo_project)
    page = ui.get("/ui/data/batches/1")
    assert page.status_code == 200
    assert [r[0] for r in csv_rows(ui, "/ui/data/batches/1", "files")[1:]] == [
        "notes.txt", "one.csv"]
    assert main_of(page.text).count('<svg class="hist"') == 2
    files = csv_rows(ui, "/ui/data/batches/diff?a=1&b=2", "files")
    assert sorted(files[1:]) == [["added", "two.csv"], ["changed", "notes.txt"]]


@pytest.mark.parametrize("url", [
    "/ui/data/nope", "/ui/data/people/9", "/ui/data/people/nosuchtag",
    "/ui/data/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/ui/data/%3Cscript%3E/1",
    "/ui/data/people/diff?a=1&b=99"])
def test_unknown_datasets_and_versions_are_404_pages_with_a_way_back(
        ui: httpx.Client, people: object, url: str) -> None:
    page = ui.get(url)
    assert page.status_code == 404
    body = main_of(page.text)
    assert "<script>" not in body
    assert 'href="/ui/' in body
