"""The page weight budget: a page's first load (its HTML and every script and stylesheet
it names, compressed as sent) stays within 500 KB."""

from __future__ import annotations

import re

import httpx
import pytest

BUDGET = 500 * 1024
PAGES = ["/ui/", "/ui/runs", "/ui/runs?experiment=demo-breast-cancer",
         "/ui/data/breast-cancer/2", "/ui/data/breast-cancer/diff?a=1&b=2",
         "/ui/models/breast-cancer/1", "/ui/deployments/breast-cancer-live",
         "/ui/monitoring?model=breast-cancer", "/ui/labels?model=breast-cancer",
         "/ui/pipelines/breast-cancer-training",
         "/ui/lineage?uri=models:/breast-cancer@champion&depth=4"]


def _wire_bytes(client: httpx.Client, url: str) -> int:
    """Bytes on the wire for ``url``, compressed as a browser asks for it."""
    with client.stream("GET", url, headers={"accept-encoding": "gzip"}) as answer:
        assert answer.status_code == 200, url
        return sum(len(chunk) for chunk in answer.iter_raw())


@pytest.mark.parametrize("path", PAGES)
def test_first_load_is_within_the_budget(ui: httpx.Client, path: str) -> None:
    assets = set(re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', ui.get(path).text))
    assert assets, "a page names its scripts and stylesheet"
    total = _wire_bytes(ui, path) + sum(_wire_bytes(ui, asset) for asset in assets)
    assert total <= BUDGET, f"{path}: {total:,} bytes compressed on first load"
