"""Pipelines: runs, a run's DAG from its records, step logs, decisions."""

from __future__ import annotations

import json
import re

import httpx

PIPELINE = "breast-cancer-training"


def _graph(html: str, block: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', html,
                      re.S)
    assert match, f"no {block} data block"
    return json.loads(match.group(1))


def test_pipelines_list_and_history(ui: httpx.Client) -> None:
    listing = ui.get("/ui/pipelines")
    assert listing.status_code == 200
    assert f'href="/ui/pipelines/{PIPELINE}"' in listing.text
    history = ui.get(f"/ui/pipelines/{PIPELINE}")
    assert history.status_code == 200
    runs = re.findall(rf'/ui/pipelines/{PIPELINE}/([0-9a-f]{{32}})"', history.text)
    assert len(set(runs)) == 2  # the demo runs it twice
    graph = _graph(history.text, "dag")
    steps = {n["id"] for n in graph["nodes"] if n["kind"] == "step"}
    assert steps == {"step:split", "step:train", "step:evaluate"}
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert ("step:split", "step:train") in edges and ("step:train", "step:evaluate") in edges
    assert any(n["kind"] == "data" for n in graph["nodes"])


def test_a_run_shows_steps_and_logs(ui: httpx.Client) -> None:
    history = ui.get(f"/ui/pipelines/{PIPELINE}").text
    first = re.findall(rf'/ui/pipelines/{PIPELINE}/([0-9a-f]{{32}})"', history)[-1]
    page = ui.get(f"/ui/pipelines/{PIPELINE}/{first}", params={"step": "train"})
    assert page.status_code == 200
    assert 'id="log"' in page.text
    statuses = {n["status"] for n in _graph(page.text, "dag")["nodes"] if n["kind"] == "step"}
    assert statuses <= {"ran", "cached"}
    steps = ui.get(f"/ui/pipelines/{PIPELINE}/{first}", params={"format": "csv",
                                                                "table": "steps"})
    assert steps.text.splitlines()[0].startswith("Step,Status")
    assert len(steps.text.splitlines()) == 4


def test_unknown_pipeline_run_and_step_are_404s(ui: httpx.Client) -> None:
    assert ui.get("/ui/pipelines/<nope>").status_code == 404
    assert ui.get(f"/ui/pipelines/{PIPELINE}/{'0' * 32}").status_code == 404
    history = ui.get(f"/ui/pipelines/{PIPELINE}").text
    run = re.findall(rf'/ui/pipelines/{PIPELINE}/([0-9a-f]{{32}})"', history)[0]
    missing = ui.get(f"/ui/pipelines/{PIPELINE}/{run}", params={"step": "<script>x"})
    assert missing.status_code == 404
    assert "<script>x" not in missing.text and "&lt;script&gt;x" in missing.text
