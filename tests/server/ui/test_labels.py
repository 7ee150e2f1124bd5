"""The labelling queue over the demo's unlabelled patients: the order, the progress, a label
given from the page (stored as feedback with who and when, counted by live performance),
CSRF and roles, hostile text escaped."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx

from mloop import monitoring, repositories
from mloop.core.clock import now_ms
from mloop.demo_live import PATIENTS, ROWS
from mloop.monitoring.feedback import label_queue
from mloop.project import Project
from tests.server.ui.conftest import csrf_of
from tests.server.ui.served import server_ui

MODEL = "breast-cancer"
PAGE = f"/ui/labels?model={MODEL}"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1]


def test_the_overview_counts_what_waits(ui: httpx.Client, demo_project: Project) -> None:
    assert ui.get("/ui/labels").status_code == 200
    models = _rows(ui.get("/ui/labels?format=csv&table=models").text)
    queue = label_queue(demo_project, MODEL)
    assert [(m["Model"], int(m["Logged predictions"]), int(m["Labelled"]), int(m["Waiting"]))
            for m in models] == [(MODEL, PATIENTS * ROWS, queue.labelled, queue.waiting)]
    assert 0 < queue.labelled < PATIENTS * ROWS


def test_the_least_certain_comes_first_with_its_inputs(ui: httpx.Client) -> None:
    page = ui.get(PAGE)
    assert page.status_code == 200
    queue = _rows(ui.get(PAGE + "&format=csv&table=queue").text)
    margins = [float(q["Margin"]) for q in queue]
    assert margins == sorted(margins) and len(queue) == 11
    inputs = _rows(ui.get(PAGE + "&format=csv&table=inputs").text)
    assert len(inputs) == 30 and inputs[0]["Input"] == "mean radius"
    assert f'value="{queue[0]["Request"]}"' in page.text  # the one shown is the first
    assert "<progress" in page.text and f"of {PATIENTS * ROWS:,} logged" in page.text
    assert '<button type="submit" name="choice" value="0"' in page.text  # its classes
    shuffled = _rows(ui.get(PAGE + "&mode=random&format=csv&table=queue").text)
    again = _rows(ui.get(PAGE + "&mode=random&format=csv&table=queue").text)
    assert shuffled == again and shuffled != queue  # random, but the same on each look
    later = _rows(ui.get(PAGE + "&offset=3&format=csv&table=queue").text)
    assert later[0] == queue[3]


def test_a_label_needs_the_csrf_token_and_is_stored_with_who_and_when(
        ui: httpx.Client, demo_project: Project) -> None:
    page = ui.get(PAGE)
    first = _rows(ui.get(PAGE + "&format=csv&table=queue").text)[0]
    before = label_queue(demo_project, MODEL)
    form = {"model": MODEL, "mode": "uncertainty", "request_id": first["Request"],
            "row": first["Row"], "choice": "1"}
    assert ui.post("/ui/labels", data=form, follow_redirects=False).status_code == 403
    assert label_queue(demo_project, MODEL).labelled == before.labelled
    live_before = _labelled(demo_project, int(first["Version"]))
    started = now_ms()
    done = ui.post("/ui/labels", data={**form, "csrf": csrf_of(page.text)},
                   follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].startswith(PAGE + "&mode=uncertainty&done=")
    stored = repositories.backend(demo_project).feedback.read(started)
    assert list(zip(stored.request_id, stored.row, stored.label, strict=True)) == [
        (first["Request"], int(first["Row"]), "1")]
    import getpass

    assert stored.labelled_by == [getpass.getuser()] and stored.created_at[0] >= started
    after = label_queue(demo_project, MODEL)
    assert (after.labelled, after.waiting) == (before.labelled + 1, before.waiting - 1)
    assert _labelled(demo_project, int(first["Version"])) == live_before + 1
    shown = ui.get(done.headers["location"])
    assert f"Labelled request {first['Request']} row {first['Row']} as 1." in shown.text
    assert _rows(ui.get(PAGE + "&format=csv&table=queue").text)[0] != first


def _labelled(project: Project, version: int) -> int:
    """Labelled predictions of a version, as live performance counts them."""
    report = monitoring.performance(MODEL, window="24h", project=project)
    return next(v.labelled for v in report.versions if v.version == version)


def test_a_typed_label_is_text_and_shown_escaped(ui: httpx.Client,
                                                 demo_project: Project) -> None:
    page = ui.get(PAGE)
    first = _rows(ui.get(PAGE + "&format=csv&table=queue").text)[0]
    hostile = "<script>alert('x')</script> \"quoted\" [b]"
    done = ui.post("/ui/labels", data={
        "csrf": csrf_of(page.text), "model": MODEL, "request_id": first["Request"],
        "row": first["Row"], "label": hostile}, follow_redirects=False)
    assert done.status_code == 303
    body = _main(ui.get(done.headers["location"]).text)
    assert "<script>alert" not in body and "&lt;script&gt;alert(" in body
    stored = repositories.backend(demo_project).feedback.read()
    import json

    labels = dict(zip(zip(stored.request_id, stored.row, strict=True), stored.label,
                      strict=True))
    assert json.loads(labels[(first["Request"], int(first["Row"]))]) == hostile
    empty = ui.post("/ui/labels", data={"csrf": csrf_of(page.text), "model": MODEL,
                                        "request_id": first["Request"], "row": "0",
                                        "label": "  "}, follow_redirects=False)
    assert empty.status_code == 422 and "empty" in empty.text


def test_unknown_models_are_404_pages(ui: httpx.Client) -> None:
    page = ui.get("/ui/labels?model=nope")
    assert page.status_code == 404 and 'href="/ui/' in page.text
    assert ui.get(PAGE + "&mode=sideways").status_code == 422


def test_behind_the_server_a_reader_cannot_label(demo_root: Path,
                                                 demo_project: Project) -> None:
    with server_ui(demo_root) as as_role:
        reader = as_role("reader")
        page = reader.get(PAGE)
        assert page.status_code == 200 and 'name="choice"' not in page.text
        first = _rows(reader.get(PAGE + "&format=csv&table=queue").text)[0]
        form = {"csrf": csrf_of(page.text), "model": MODEL, "request_id": first["Request"],
                "row": first["Row"], "choice": "0"}
        assert reader.post("/ui/labels", data=form, follow_redirects=False).status_code == 403
        writer = as_role("writer")
        page = writer.get(PAGE)
        assert 'name="choice"' in page.text
        done = writer.post("/ui/labels", data={**form, "csrf": csrf_of(page.text)},
                           follow_redirects=False)
        assert done.status_code == 303
    stored = repositories.backend(demo_project).feedback.read()
    who = dict(zip(zip(stored.request_id, stored.row, strict=True), stored.labelled_by,
                   strict=True))
    assert who[(first["Request"], int(first["Row"]))] == "ui-test-writer"
