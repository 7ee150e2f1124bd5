"""Driving Debian's Chromium with Playwright for the UI's browser tests.

Playwright starts the system's ``chromium`` (never a browser of its own download). Where
none is installed the tests skip with the reason, unless ``MLOOP_REQUIRE_SERVICES=1``
(CI), where they fail: CI installs the browser in ``.ci/run``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic", "--disable-default-apps"]
A11Y = (Path(__file__).parent / "a11y.js").read_text(encoding="utf-8").split("\n", 1)[1]
SCREENSHOTS_ENV = "MLOOP_UI_SCREENSHOTS"  # a folder to keep the pages' screenshots in


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def launch() -> Iterator[Any]:
    """A headless Chromium (skips, or fails in CI, when there is none)."""
    path = chromium_path()
    if path is None:
        reason = "no chromium on this machine (apt install chromium chromium-driver)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (MLOOP_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A browser page that remembers its console errors and failed requests."""

    page: Any
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("load")
        return response

    def settle(self) -> None:
        """Wait until every chart and graph of the page is drawn."""
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('[data-chart],[data-graph]')]"
            ".every(e => e.dataset.drawn === '1')", timeout=15_000)

    def shot(self, name: str) -> Path:
        target = self.shots / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=True)
        keep = os.environ.get(SCREENSHOTS_ENV)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, Path(keep) / target.name)
        return target

    def accessibility_problems(self) -> list[str]:
        """Basic checks: one h1, headings in order, a label on every input, a name on every
        button and link."""
        problems: list[str] = self.page.evaluate(A11Y)
        return problems


def new_tab(browser: Any, base: str, shots: Path, *, storage: Any = None,
            scheme: str = "light") -> Tab:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  storage_state=storage, color_scheme=scheme)
    page = context.new_page()
    tab = Tab(page, base, shots)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())  # "Roll back?": yes
    return tab
