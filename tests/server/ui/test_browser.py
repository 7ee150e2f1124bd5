"""The UI in a real browser (Debian's Chromium, driven by Playwright) over the demo:
every page opens without console errors and passes basic accessibility checks; the
interactions a user relies on work end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


PAGES = [("home", "/ui/"), ("pipelines", "/ui/pipelines"),
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
