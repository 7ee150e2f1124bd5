"""Re-adding unchanged data with a new message: no new version, and the user is told."""

import logging

import mloop
from tests.cli.test_cli import run_cli


def test_a_new_message_on_unchanged_data_is_reported(project, tmp_path, caplog):
    csv = project.root / "t.csv"
    csv.write_text("a,b\n1,2\n")
    first = mloop.data.add(csv, message="first export")
    with caplog.at_level(logging.WARNING, logger="mloop"):
        again = mloop.data.add(csv, message="May export")
    assert again.version == first.version and again.message == "first export"
    assert "unchanged: t@1 already holds these bytes; message not recorded" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mloop"):
        mloop.data.add(csv)  # no message, or the same one: nothing to say
        mloop.data.add(csv, message="first export")
    assert "unchanged" not in caplog.text


def test_cli_says_the_message_was_not_recorded(sqlite_project):
    root = sqlite_project.root
    (root / "t.csv").write_text("a,b\n1,2\n")
    first = run_cli("data", "add", "t.csv", "-m", "first", cwd=root)
    assert "t@1  (1 file," in first.stdout and "unchanged" not in first.stderr
    out = run_cli("data", "add", "t.csv", "-m", "second", cwd=root)
    assert "unchanged: t@1 already holds these bytes; message not recorded" in out.stderr
    assert mloop.data.get("t@1").message == "first"
