"""Obviously bad input gets one clear error line and the right exit code, never
"Internal error" (exit 70) or a traceback. Each case below once ended in one."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import mloop
from tests.cli.test_cli import run_cli

BIG = "9" * 30  # a version number no database column holds


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "p"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(root.parent / "cfg"))
        project = mloop.init(root)
        frame = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5], "y": [0, 1, 0, 1, 0, 1]})
        frame.to_csv(root / "t.csv", index=False)
        mloop.data.add(root / "t.csv", project=project)
        with mloop.start_run(project=project):
            mloop.log_model(LogisticRegression().fit(frame[["x"]], frame["y"]),
                            input_example=frame[["x"]], registered_name="m")
        project.close()
        mloop.set_project(None)
    return root


CASES = [
    (["data", "show", f"t@{BIG}"], 2, "larger than any version"),
    (["models", "show", f"m/{BIG}"], 2, "larger than any version"),
    (["models", "show", "models:/m/²"], 2, "give a version number"),  # a digit to Python
    (["monitor", "drift", "-r", "t.csv", "-c", "serving:m/²"], 2, "must be a number"),
    (["data", "checkout", "t@1", "/proc/no/such/place"], 2, "Check the path"),
    (["init", "/proc/x"], 2, "Check the path"),
    (["data", "add", "."], 2, "project folder itself"),
    (["evaluate", "m/1", "-d", "t.csv", "-t", "y", "--cv", "100"], 2, "smaller --cv"),
    (["remote", "add", "r", "file://"], 2, "file:// needs a folder"),
    (["monitor", "alerts", "-n", "-1"], 2, "-1"),
    (["automate", "history", "-n", "0"], 2, "0"),
    (["lineage", "bogus:/x"], 2, "not something lineage records"),
    (["batch", "predict", "m/1", "-i", "t.csv", "-k", "x", "--blocksize", "0"], 2,
     "not a size"),
    (["runs", "list", "-n", "9" * 20], 0, ""),  # as many as there are
    (["evaluate", "m/1", "-d", "t.csv", "-t", "y", "--cv", "2", "--seeds", "1000000"], 2,
     "1000000"),  # would run for days
    (["monitor", "performance", "m", "--min-labels", "-3"], 2, "-3"),
    (["jobs", "dead", "--broker", "redis://127.0.0.1:1/0"], 69, "Cannot reach the Redis"),
    (["worker", "m/1", "--broker", "redis://127.0.0.1:1/0"], 69, "Cannot reach the Redis"),
]


@pytest.mark.parametrize(("args", "code", "says"), CASES,
                         ids=[" ".join(a)[:40] for a, _c, _s in CASES])
def test_bad_input_is_one_clear_error(proj, args, code, says):
    out = run_cli(*args, cwd=proj, check=False)
    assert out.returncode == code, out.stderr
    assert says in out.stderr
    assert "Internal error" not in out.stderr and "Traceback" not in out.stderr


def test_a_file_version_checked_out_into_a_folder_lands_in_it(proj, tmp_path):
    out = run_cli("data", "checkout", "t@1", str(tmp_path), cwd=proj)
    assert "t.csv" in out.stdout
    assert (tmp_path / "t.csv").read_text() == (proj / "t.csv").read_text()


def _damage(db, how: str) -> None:
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    if how == "garbage":
        db.write_bytes(b"not a database at all" * 1000)
    else:  # a sound header, damaged pages after it
        data = bytearray(db.read_bytes())
        data[4096:] = b"\xff" * (len(data) - 4096)
        db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage", "pages"])
def test_a_damaged_store_is_an_integrity_error(tmp_path, how):
    root = tmp_path / "p"
    project = mloop.init(root)
    with mloop.start_run(project=project) as run:
        run.log_metric("m", 1.0)
    project.close()
    mloop.set_project(None)
    db = root / ".mloop" / "mloop.db"
    with sqlite3.connect(db) as conn:  # everything in the main file, nothing in the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage(db, how)
    out = run_cli("runs", "list", cwd=root, check=False)
    assert out.returncode == 5, out.stderr
    assert "is damaged" in out.stderr and "Traceback" not in out.stderr
