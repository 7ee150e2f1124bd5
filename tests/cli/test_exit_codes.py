"""Exit codes mean one thing each (``mloop.errors.EXIT_CODES``): one representative
command per code through the real ``mloop`` entry point, every error class mapped to a
documented code, and the README's table equal to the code's."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import mloop
from mloop.errors import EXIT_CODES, MloopError
from tests.cli.test_cli import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _run_patched(cwd: Path, patch: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point with ``patch`` (Python) applied first: for failures no input
    can provoke (a bug, Ctrl-C)."""
    code = f"import sys\n{patch}\nfrom mloop.cli import main\nmain(sys.argv[1:])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    """A project with dataset t (2 versions) and model m (alias champion)."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("codes") / "p"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(root.parent / "cfg"))
        project = mloop.init(root)
        frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 1, 0, 1]})
        frame.to_csv(root / "t.csv", index=False)
        mloop.data.add(root / "t.csv", project=project)
        with mloop.start_run(project=project):
            mloop.log_model(LogisticRegression().fit(frame[["x"]], frame["y"]),
                            input_example=frame[["x"]], registered_name="m")
        mloop.set_alias("m", "champion", 1)
        (root / "schema.yaml").write_text("columns:\n  x: {type: float, min: 10}\n")
        project.close()
        mloop.set_project(None)
    return root


def _one_error_line(out: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("Error: "), out.stderr


def test_0_ok(proj):
    assert run_cli("runs", "list", cwd=proj).returncode == 0


def test_1_a_check_failed(proj):
    out = run_cli("data", "validate", "t@1", "-s", "schema.yaml", cwd=proj, check=False)
    assert out.returncode == 1, out.stderr
    assert "FAILED" in out.stdout


@pytest.mark.parametrize("args", [["runs", "list", "-n", "0"],  # click: a bad option
                                  ["runs", "list", "-f", "metrics.acc >"],  # mloop: bad input
                                  ["no-such-command"]],
                         ids=["option", "filter", "command"])
def test_2_bad_input_or_usage(proj, args):
    out = run_cli(*args, cwd=proj, check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr


def test_3_not_found(proj):
    out = run_cli("models", "show", "nope@champion", cwd=proj, check=False)
    assert out.returncode == 3, out.stderr
    _one_error_line(out)


def test_4_conflict(proj):
    out = run_cli("models", "delete", "m/1", cwd=proj, check=False)  # champion points at it
    assert out.returncode == 4, out.stderr
    _one_error_line(out)


def test_5_integrity(proj, tmp_path):
    from mloop.data.catalog import get
    from mloop.project import Project

    project = Project(proj)
    tree = get(project, "t@1").tree
    project.close()
    blob = next(p for p in (proj / ".mloop" / "objects").rglob(tree[2:]))
    blob.chmod(0o644)
    original = blob.read_bytes()
    try:
        blob.write_bytes(original + b"tampered")
        out = run_cli("data", "checkout", "t@1", str(tmp_path / "out.csv"), cwd=proj,
                      check=False)
        assert out.returncode == 5, out.stderr
        _one_error_line(out)
    finally:
        blob.write_bytes(original)


def test_6_schema_too_new(tmp_path):
    mloop.init(tmp_path / "p")
    mloop.set_project(None)
    db = sqlite3.connect(tmp_path / "p" / ".mloop" / "mloop.db")
    with db:
        db.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    db.close()
    out = run_cli("runs", "list", cwd=tmp_path / "p", check=False)
    assert out.returncode == 6, out.stderr
    _one_error_line(out)


class Plain:
    """A model only pickle can save (the generic flavor writes it with joblib)."""

    def predict(self, rows):
        return [0] * len(rows)


def test_7_unsafe_model_refused(proj, tmp_path):
    root = tmp_path / "p"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLOOP_ALLOW_PICKLE", raising=False)
        project = mloop.init(root)
        with mloop.start_run(project=project):
            mloop.log_model(Plain(), registered_name="plain")  # joblib: a pickle
        project.close()
        mloop.set_project(None)
    pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}).to_csv(root / "d.csv", index=False)
    out = run_cli("evaluate", "plain/1", "-d", "d.csv", "-t", "y", "--resamples", "0",
                  cwd=root, check=False)
    assert out.returncode == 7, out.stderr
    _one_error_line(out)


def test_69_service_unavailable(proj):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_cli("remote", "add", "down", f"http://127.0.0.1:{port}/x", cwd=proj)
    out = run_cli("data", "push", "down", cwd=proj, check=False)
    assert out.returncode == 69, out.stderr
    _one_error_line(out)


def test_70_internal_error(proj):
    out = _run_patched(proj, "import mloop.tracking.search as s\n"
                             "s.search_runs = lambda *a, **k: 1 / 0", "runs", "list")
    assert out.returncode == 70, out.stderr
    _one_error_line(out)
    assert "Internal error: ZeroDivisionError" in out.stderr and "MLOOP_DEBUG=1" in out.stderr


def test_130_interrupted(proj):
    out = _run_patched(proj, "import mloop.tracking.search as s\n"
                             "def stop(*a, **k):\n    raise KeyboardInterrupt\n"
                             "s.search_runs = stop", "runs", "list")
    assert out.returncode == 130, out.stderr
    assert out.stderr.strip() in ("Interrupted.", "Aborted.")  # click reads it as an abort


def test_every_code_has_a_test_here():
    here = Path(__file__).read_text()
    tested = {int(m) for m in re.findall(r"^def test_(\d+)_", here, re.MULTILINE)}
    assert tested == set(EXIT_CODES)


def _all_error_classes() -> list[type[MloopError]]:
    for info in pkgutil.walk_packages(mloop.__path__, "mloop."):
        if info.name.split(".")[-1] not in {"__main__"}:
            importlib.import_module(info.name)
    found, todo = [], [MloopError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_a_documented_exit_code():
    classes = _all_error_classes()
    assert len(classes) > 20  # the walk found the classes defined outside errors.py too
    for cls in classes:
        assert cls.exit_code in EXIT_CODES and cls.exit_code not in (0, 130), cls
        assert 400 <= cls.http_status < 600, cls
        if inspect.getmodule(cls) is not None and cls.exit_code == 1:
            # 1 is for a check, gate or step that did not hold, nothing else
            assert issubclass(cls, mloop.errors.CheckFailedError), cls


def _readme_table() -> dict[int, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def test_readme_table_is_exit_codes():
    assert _readme_table() == EXIT_CODES


def test_json_errors_are_not_on_stdout(proj):
    """A failing --json command leaves stdout empty (scripts parse it), the error on
    stderr."""
    out = run_cli("models", "show", "nope/1", "--json", cwd=proj, check=False)
    assert out.returncode == 3 and out.stdout == ""
    assert json.loads(run_cli("models", "list", "--json", cwd=proj).stdout)[0]["name"] == "m"
