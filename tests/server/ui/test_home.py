"""Home: the loop, model by model, and what changed recently."""

from __future__ import annotations

import csv
import io

import httpx

from mloop.project import Project


def test_the_loop_links_data_run_model_and_monitoring(ui: httpx.Client,
                                                      demo_project: Project) -> None:
    from mloop.registry.models import get_version

    champion = get_version(demo_project, "models:/breast-cancer@champion")
    page = ui.get("/ui/")
    assert page.status_code == 200
    text = page.text
    assert f'href="/ui/models/breast-cancer/{champion.version}"' in text
    assert f'href="/ui/runs/{champion.run_id}"' in text
    assert "breast-cancer-train@1" in text  # the data it learned from
    assert 'href="/ui/monitoring?model=breast-cancer"' in text


def test_recent_changes_download_as_csv(ui: httpx.Client) -> None:
    table = ui.get("/ui/", params={"format": "csv", "table": "recent"})
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    kinds = {r["Kind"] for r in rows}
    assert {"model", "dataset", "run"} <= kinds
    assert all(r["When"].endswith("UTC") for r in rows)
    when = [r["When"] for r in rows]
    assert when == sorted(when, reverse=True)


def test_unknown_table_is_refused(ui: httpx.Client) -> None:
    assert ui.get("/ui/", params={"format": "csv", "table": "nope"}).status_code == 422
