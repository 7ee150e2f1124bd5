"""The UI in a real browser (Debian's Chromium, driven by Playwright) over the demo:
every page opens without console errors and passes basic accessibility checks; the
interactions a user relies on work end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from mloop.project import Project
from tests.server.live import LiveServer
from tests.server.ui.browser import Tab, launch, new_tab


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def local_url(demo_project: Project) -> Iterator[str]:
    from mloop.server.ui.app import standalone

    with LiveServer(standalone(demo_project)) as served:
        yield served.url


@pytest.fixture
def tab(browser: Any, local_url: str, tmp_path: Path) -> Iterator[Tab]:
    opened = new_tab(browser, local_url, tmp_path)
    yield opened
    opened.page.context.close()


def _pipeline_run(tab: Tab) -> str:
    tab.open("/ui/pipelines/breast-cancer-training")
    return str(tab.page.locator("table#runs tbody tr a").first.get_attribute("href"))


PAGES = [("home", "/ui/"), ("runs", "/ui/runs?experiment=demo-breast-cancer"),
         ("datasets", "/ui/data"), ("dataset", "/ui/data/breast-cancer"),
         ("dataset-version", "/ui/data/breast-cancer/2"),
         ("models", "/ui/models"), ("model-versions", "/ui/models/breast-cancer"),
         ("model-version", "/ui/models/breast-cancer/@champion"),
         ("deployments", "/ui/deployments"), ("deployment", "/ui/deployments/breast-cancer-live"),
         ("monitoring-all", "/ui/monitoring"), ("monitoring", "/ui/monitoring?model=breast-cancer"),
         ("labels-all", "/ui/labels"), ("labels", "/ui/labels?model=breast-cancer"),
         ("pipelines", "/ui/pipelines"),
         ("pipeline", "/ui/pipelines/breast-cancer-training"),
         ("lineage", "/ui/lineage?uri=models:/breast-cancer@champion&depth=3")]


@pytest.mark.parametrize(("name", "path"), PAGES, ids=[p[0] for p in PAGES])
def test_page_opens_cleanly(tab: Tab, name: str, path: str) -> None:
    response = tab.open(path)
    assert response.status == 200
    tab.settle()
    assert tab.accessibility_problems() == []
    tab.shot(name)
    assert tab.errors == []


def test_graph_draws_and_a_node_recentres_the_explorer(tab: Tab) -> None:
    tab.open("/ui/lineage?uri=models:/breast-cancer@champion&depth=3")
    tab.settle()
    count = tab.page.evaluate("() => document.querySelector('[data-graph]')._cy.nodes().length")
    assert count >= 3
    target = tab.page.evaluate("""() => {
      const cy = document.querySelector('[data-graph]')._cy;
      const node = cy.nodes().filter(n => n.id().startsWith('runs:/'))[0];
      node.emit('tap');
      return node.id();
    }""")
    tab.page.wait_for_url("**/ui/lineage?uri=runs*")
    assert tab.page.locator("h1").inner_text().startswith("Lineage of runs:/")
    assert target.startswith("runs:/")
    assert tab.errors == []


def test_pipeline_run_dag_and_step_log(tab: Tab) -> None:
    href = _pipeline_run(tab)
    tab.open(href)
    tab.settle()
    tab.page.get_by_role("link", name="train", exact=True).click()
    tab.page.wait_for_url("**step=train*")
    assert tab.page.locator("#log").is_visible()
    tab.shot("pipeline-run")
    assert tab.errors == []


def test_tables_are_keyboard_navigable(tab: Tab) -> None:
    tab.open("/ui/pipelines")
    first = tab.page.locator("table#runs tbody tr").nth(0).locator("a").first
    first.focus()
    tab.page.keyboard.press("ArrowDown")
    focused_row = tab.page.evaluate(
        "() => [...document.querySelectorAll('table#runs tbody tr')]"
        ".indexOf(document.activeElement.closest('tr'))")
    assert focused_row == 1
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/ui/pipelines/**")
    assert tab.errors == []


@pytest.fixture(scope="module")
def team(demo_root: Path, demo_project: Project) -> Iterator[tuple[str, dict[str, str]]]:
    """The same demo behind `mloop server`, with a reader's and an approver's tokens."""
    from mloop.server import tokens
    from mloop.server.main import ServerConfig, build_app

    made = {role: tokens.create(demo_project, f"browser-{role}", role)[0]
            for role in ("reader", "approver")}
    with LiveServer(build_app(ServerConfig(root=str(demo_root)), demo_project)) as served:
        yield served.url, made


def _log_in(browser: Any, url: str, token: str, shots: Path) -> Tab:
    tab = new_tab(browser, url, shots)
    tab.open("/ui/models/breast-cancer/1")  # no session: the login page, then back here
    tab.page.wait_for_url("**/login?next=*")
    assert tab.accessibility_problems() == []
    tab.page.get_by_label("API token").fill(token)
    tab.page.get_by_role("button", name="Log in").click()
    tab.page.wait_for_url("**/ui/models/breast-cancer/1")
    return tab


def test_an_approver_approves_and_a_reader_cannot(browser: Any, team: tuple[str, dict],
                                                  demo_project: Project,
                                                  tmp_path: Path) -> None:
    from mloop.registry.models import get_version

    url, made = team
    reader = _log_in(browser, url, made["reader"], tmp_path)
    try:
        assert reader.page.get_by_role("button", name="Approve v1").count() == 0
        # the page's own script, forging the form a reader is not shown: refused
        status = reader.page.evaluate("""async () => {
          const csrf = document.querySelector('meta[name="csrf-token"]').content;
          const r = await fetch('/ui/models/breast-cancer/1/approve', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: new URLSearchParams({csrf, comment: 'sneaky'}), redirect: 'manual'});
          return r.status;
        }""")
        assert status == 403
        assert str(get_version(demo_project, "breast-cancer/1").status) != "approved"
        assert [e for e in reader.errors if "403 (Forbidden)" not in e] == []  # its own fetch
    finally:
        reader.page.context.close()
    approver = _log_in(browser, url, made["approver"], tmp_path)
    try:
        approver.page.get_by_role("button", name="Approve v1").click()
        # htmx sends the form and swaps the page's main part: the notice says it is done
        expect(approver.page.get_by_role("status")).to_contain_text("approved")
        assert approver.page.url.endswith("done=breast-cancer+v1+approved.")
        approver.shot("model")
        assert str(get_version(demo_project, "breast-cancer/1").status) == "approved"
        assert approver.errors == []
    finally:
        approver.page.context.close()


def test_a_dataset_diff_from_the_versions_form(tab: Tab) -> None:
    tab.open("/ui/data/breast-cancer")
    tab.page.get_by_role("button", name="Compare").click()
    tab.page.wait_for_url("**/ui/data/breast-cancer/diff?*")
    assert tab.page.locator("h1").inner_text().startswith("breast-cancer")
    assert tab.page.locator("svg.hist").count() > 0  # overlaid distributions
    assert tab.accessibility_problems() == []
    tab.shot("dataset-diff")
    assert tab.errors == []


def test_rolling_back_the_canary(tab: Tab, demo_project: Project) -> None:
    from mloop.repositories import backend

    tab.open("/ui/deployments/breast-cancer-live")
    tab.settle()
    before = backend(demo_project).deployments.get("breast-cancer-live").current_revision
    tab.page.get_by_label("Reason").fill("seen in the browser test")
    tab.page.get_by_role("button", name="Roll back").click()  # confirmed by the dialog
    expect(tab.page.get_by_role("status")).to_be_visible()
    after = backend(demo_project).deployments.get("breast-cancer-live")
    assert after.current_revision != before
    revision = backend(demo_project).deployments.revision("breast-cancer-live")
    assert revision.reason == "seen in the browser test"
    assert tab.errors == []


def test_labelling_the_least_certain_prediction(tab: Tab, demo_project: Project) -> None:
    tab.open("/ui/labels?model=breast-cancer")
    request_id = tab.page.locator("input[name=request_id]").get_attribute("value")
    tab.page.get_by_label("Or the true outcome").fill("1")
    tab.page.evaluate("() => { window.sameDocument = true; }")
    tab.page.get_by_role("button", name="Save label").click()
    expect(tab.page.get_by_role("status")).to_be_visible()
    # htmx sent it and swapped the item: no page load between one label and the next
    assert tab.page.evaluate("() => window.sameDocument === true")
    assert tab.page.locator("input[name=request_id]").get_attribute("value") != request_id
    assert tab.errors == []


def test_filtering_runs_with_a_valid_and_an_invalid_filter(tab: Tab) -> None:
    tab.open("/ui/runs?experiment=demo-breast-cancer")
    box = tab.page.get_by_label("Filter")
    box.fill("metrics.roc_auc > 0.99")
    tab.page.get_by_role("button", name="Search").click()
    tab.page.wait_for_url("**filter=*")
    names = tab.page.locator("table#runs tbody tr").all_inner_texts()
    assert names and all("random-forest" not in n for n in names)  # its AUC is 0.984
    tab.page.get_by_label("Filter").fill("metrics.roc_auc >> 0.99")
    tab.page.get_by_role("button", name="Search").click()
    tab.page.wait_for_load_state("load")
    error = tab.page.get_by_role("alert")
    assert "position" in error.inner_text()
    assert tab.page.get_by_label("Filter").get_attribute("aria-invalid") == "true"
    assert tab.page.locator(".filter-error mark").count() == 1  # the mistake, marked
    tab.shot("runs-filter-error")
    assert [e for e in tab.errors if "400 (Bad Request)" not in e] == []


def test_comparing_two_runs_draws_both_curves(tab: Tab) -> None:
    tab.open("/ui/runs?experiment=demo-breast-cancer&order=attributes.start_time ASC")
    boxes = tab.page.locator("table#runs tbody input[type=checkbox]")
    picked = [boxes.nth(1), boxes.nth(2)]
    for box in picked:
        box.check()
    ids = [box.get_attribute("value") for box in picked]
    tab.page.get_by_role("button", name="Compare selected").click()
    tab.page.wait_for_url("**/ui/runs/compare?*")
    tab.settle()
    charts = tab.page.evaluate("""() => [...document.querySelectorAll('[data-chart]')].map(h => ({
      id: h.dataset.chart, series: h._plot.series.length - 1,
      points: h._plot.data.slice(1).map(s => s.filter(v => v !== null && v !== undefined).length)
    }))""")
    curves = [c for c in charts if c["id"].startswith("curve") and c["series"] == 2]
    assert curves, charts  # a metric of both runs, overlaid
    assert all(n > 1 for c in curves for n in c["points"]), curves
    html = tab.page.content()
    assert all(f'href="/ui/runs/{i}"' in html for i in ids)
    assert tab.accessibility_problems() == []
    tab.shot("compare")
    assert tab.errors == []


def test_a_run_page_with_history_charts(tab: Tab) -> None:
    tab.open("/ui/runs?experiment=demo-breast-cancer")
    tab.page.locator("table#runs tbody tr a").first.click()
    tab.page.wait_for_url("**/ui/runs/*")
    tab.settle()
    assert tab.accessibility_problems() == []
    tab.shot("run")
    assert tab.errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_theme_follows_the_system(browser: Any, local_url: str, tmp_path: Path,
                                      scheme: str) -> None:
    tab = new_tab(browser, local_url, tmp_path, scheme=scheme)
    try:
        tab.open("/ui/deployments/breast-cancer-live")
        tab.settle()
        lightness = tab.page.evaluate("""() => {
          const [r, g, b] = getComputedStyle(document.body).backgroundColor
            .match(/\\d+/g).map(Number);
          return (r + g + b) / 3;
        }""")
        assert (lightness > 200) if scheme == "light" else (lightness < 60)
        tab.shot(f"deployment-{scheme}")
        assert tab.errors == []
    finally:
        tab.page.context.close()
