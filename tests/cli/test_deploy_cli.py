"""``mloop deploy …`` through the real entry point: JSON outputs, exit codes, hostile text.

One project (model ``m``, versions 1-3, ``champion`` on 1) serves the module; each test
uses its own deployment name. ``status`` and ``canary`` read modules written in parallel
(``mloop.deploy.measure``, ``mloop.deploy.analysis``): the tests that need them run in
process with a stand-in, the rest through ``python -m mloop``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest

import mloop
from mloop.cli import cli, main
from tests.cli.test_cli import _commands, run_cli

HOSTILE = "[bold]x[/bold] [link=http://e]l[/link] \x1b[31mred :smile:"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import LogisticRegression

    where = tmp_path_factory.mktemp("deploy") / "p"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(where.parent / "cfg"))
        mp.setenv("MLOOP_CAPTURE_PACKAGES", "0")
        project = mloop.init(where)
        x = np.array([[0.0], [1.0], [2.0], [3.0]])
        model = LogisticRegression().fit(x, np.array([0, 1, 0, 1]))
        for _ in range(3):
            with mloop.start_run(project=project):
                mloop.log_model(model, registered_name="m")
        mloop.set_alias("m", "champion", 1, project=project)
        project.close()
        mloop.set_project(None)
    return where


def _cli(root: Path, *args: str, check: bool = True, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return run_cli(*args, cwd=root, check=check)
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=root, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def _json(root: Path, *args: str) -> Any:
    return json.loads(_cli(root, *args, "--json").stdout)


def _in_process(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                *args: str) -> tuple[int, str, str]:
    """The real ``main`` in this process (so stand-in modules apply): (code, out, err)."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 0), out.out, out.err


def test_create_replace_bluegreen_switch_rollback_history(root):
    made = _json(root, "deploy", "create", "flow", "models:/m@champion", "--fallback-value",
                 '"unknown"', "--timeout-ms", "150")
    assert made["revision"] == 1 and made["strategy"] == "replace"
    assert made["arms"][0]["model"] == "models:/m/1"
    assert made["fallback"] == {"timeout_ms": 150.0, "value": "unknown"}
    blue = _json(root, "deploy", "bluegreen", "flow", "m/2")
    assert blue["weights"] == {"blue": 100.0, "green": 0.0}
    switched = _json(root, "deploy", "switch", "flow")
    assert switched["weights"] == {"blue": 0.0, "green": 100.0}
    text = _cli(root, "deploy", "switch", "flow").stdout
    assert "deployments:/flow/2" in text and "blue=100%" in text
    back = _json(root, "deploy", "rollback", "flow", "--reason", "too slow")
    assert back["rollback_of"] == 2 and back["arms"][0]["model"] == "models:/m/1"
    replaced = _cli(root, "deploy", "replace", "flow", "m/3").stdout
    assert "deployments:/flow/4" in replaced and "stable=100%" in replaced
    hist = _json(root, "deploy", "history", "flow")
    assert [r["revision"] for r in hist["revisions"]] == [1, 2, 3, 4]
    assert hist["revisions"][1]["status"] == "aborted"
    kinds = [(e["kind"], e["reason"]) for e in hist["events"]]
    assert ("aborted", "too slow") in kinds
    assert all(e["initiated_by"].startswith("user:") for e in hist["events"])
    listed = _json(root, "deploy", "list")
    assert {"name": "flow", "current_revision": 4} .items() <= next(
        d for d in listed if d["name"] == "flow").items()


def test_ab_promote_pause_resume(root):
    _cli(root, "deploy", "create", "abx", "m/1")
    ab = _json(root, "deploy", "ab", "abx", "--arm", "a=m/1:20", "--arm", "b=m/2:80",
               "--sticky", "customer_id", "--metric", "accuracy", "--min-samples", "50")
    assert ab["weights"] == {"a": 20.0, "b": 80.0}
    assert ab["policy"] == {"sticky": "customer_id", "metric": "accuracy", "min_samples": 50,
                            "alpha": 0.05}
    assert _json(root, "deploy", "pause", "abx")["status"] == "paused"
    assert _json(root, "deploy", "resume", "abx")["status"] == "active"
    undecided = _cli(root, "deploy", "promote", "abx", check=False)
    assert undecided.returncode == 4 and "--arm NAME" in undecided.stderr
    done = _json(root, "deploy", "promote", "abx", "--arm", "b")
    assert done["weights"] == {"a": 0.0, "b": 100.0} and done["status"] == "completed"


def test_bandit_and_shadow(root):
    _cli(root, "deploy", "create", "bx", "m/1")
    made = _json(root, "deploy", "bandit", "bx", "--arm", "m/1", "--arm", "m/2", "--arm",
                 "m/3", "--reward", "accuracy", "--algorithm", "epsilon-greedy",
                 "--epsilon", "0.2", "--min-share", "0.05", "--interval", "30s")
    assert made["strategy"] == "bandit" and len(made["weights"]) == 3
    assert made["policy"]["algorithm"] == "epsilon-greedy" and made["policy"]["epsilon"] == 0.2
    _cli(root, "deploy", "create", "sx", "m/1")
    shadow = _json(root, "deploy", "shadow", "sx", "m/3", "--sample", "0.5")
    assert shadow["weights"] == {"primary": 100.0, "shadow": 0.0}
    assert shadow["policy"] == {"sample": 0.5}


@pytest.mark.parametrize(("args", "code", "says"), [
    (["deploy", "history", "nope"], 3, "No deployment named 'nope'"),
    (["deploy", "replace", "nope", "m/1"], 3, "No deployment named 'nope'"),
    (["deploy", "create", "m", "m/1"], 4, "registered model"),
    (["deploy", "create", "ex", "m/9"], 3, "m"),
    (["deploy", "ab", "ex0", "--arm", "a=m/1:60", "--arm", "b=m/2:50"], 2, "sum to 110"),
    (["deploy", "create", "ex", "m/1", "--fallback-value", "{bad"], 2, "not JSON"),
    (["deploy", "bandit", "ex0", "--arm", "m/1", "--arm", "m/2", "--reward", "accuracy",
      "--algorithm", "greedy"], 2, "greedy"),
])
def test_exit_codes(root, args, code, says):
    _cli(root, "deploy", "create", "ex0", "m/1", check=False)
    out = _cli(root, *args, check=False)
    assert out.returncode == code, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr


def test_a_second_rollout_is_a_conflict(root):
    _cli(root, "deploy", "create", "cx", "m/1")
    _cli(root, "deploy", "bluegreen", "cx", "m/2")
    out = _cli(root, "deploy", "ab", "cx", "--arm", "m/1", "--arm", "m/3", check=False)
    assert out.returncode == 4
    assert "mloop deploy promote cx" in out.stderr and "mloop deploy rollback cx" in out.stderr


def test_hostile_reasons_are_printed_literally(root):
    _cli(root, "deploy", "create", "hx", "m/1")
    _cli(root, "deploy", "replace", "hx", "m/2")
    back = _cli(root, "deploy", "rollback", "hx", "--reason", HOSTILE).stdout
    out = _cli(root, "deploy", "history", "hx").stdout
    for text in (back, out):
        assert "[bold]x[/bold] [link=http://e]l[/link]" in text and ":smile:" in text
        assert "\\x1b[31mred" in text and "\x1b" not in text
    assert json.loads(_cli(root, "deploy", "history", "hx", "--json").stdout)[
        "revisions"][-1]["reason"] == HOSTILE


def test_delete_asks_unless_yes(root):
    _cli(root, "deploy", "create", "dx", "m/1")
    refused = _cli(root, "deploy", "delete", "dx", stdin="n\n")
    assert refused.returncode == 130 and "Delete deployment 'dx'" in refused.stdout
    assert "dx" in [d["name"] for d in _json(root, "deploy", "list")]
    assert _json(root, "deploy", "delete", "dx", "--yes") == {"deleted": "dx"}
    assert "dx" not in [d["name"] for d in _json(root, "deploy", "list")]
    assert _cli(root, "deploy", "delete", "dx", "--yes", check=False).returncode == 3


# ── in process, with stand-ins for the modules written in parallel ────────────────────

class _Measured:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def to_dict(self) -> dict[str, Any]:
        return self.values


def _stand_in(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> None:
    module = types.ModuleType(f"mloop.deploy.{name}")
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, f"mloop.deploy.{name}", module)


def test_canary_and_status(root, monkeypatch, capsys):
    spec = root / "analysis.yaml"
    spec.write_text("failure_limit: 2\n")
    seen: list[Any] = []
    _stand_in(monkeypatch, "analysis",
              load_spec=lambda given: seen.append(given) or {"failure_limit": 2})
    # the keys of mloop.deploy.measure.ArmMeasure.to_dict
    measured = {"stable": _Measured({"arm": "stable", "requests": 950, "errors": 3,
                                     "fallbacks": 1, "error_rate": 0.004,
                                     "latency_p99_ms": 12.5, "labelled": 400,
                                     "metrics": {"accuracy": 0.91}}),
                "canary": _Measured({"requests": 50})}  # nothing else yet: shown as "-"
    _stand_in(monkeypatch, "measure", measure=lambda project, revision, **_: measured)
    assert _in_process(root, monkeypatch, capsys, "deploy", "create", "kx", "m@champion")[0] \
        == 0
    code, out, _ = _in_process(root, monkeypatch, capsys, "deploy", "canary", "kx", "m/2",
                               "--steps", "10,100", "--interval", "2m", "--analysis",
                               str(spec), "--json")
    made = json.loads(out)
    assert code == 0 and made["weights"] == {"stable": 90.0, "canary": 10.0}
    assert made["policy"]["analysis"] == {"failure_limit": 2} and seen == [str(spec)]
    code, out, _ = _in_process(root, monkeypatch, capsys, "deploy", "status", "kx")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "950" in lines["stable"] and "12.5" in lines["stable"]
    assert "accuracy=0.91" in lines["stable"]
    assert [c for c in lines["canary"].split() if c != "│"][-4:] == ["-", "-", "-", "-"]
    assert "models:/m/2" in lines["canary"] and "10" in lines["canary"]
    assert "none (start `mloop deploy run kx`" in out and "2 (canary, active)" in out
    code, out, _ = _in_process(root, monkeypatch, capsys, "deploy", "status", "kx", "--json")
    shown = json.loads(out)
    assert shown["measurements"]["canary"] == {"requests": 50}
    assert shown["revision"]["revision"] == 2 and shown["controller"] is None
    code, _, err = _in_process(root, monkeypatch, capsys, "deploy", "status", "nope")
    assert code == 3 and "No deployment named 'nope'" in err


def test_status_escapes_hostile_measurements_and_decisions(root, monkeypatch, capsys):
    _stand_in(monkeypatch, "measure",
              measure=lambda project, revision, **_: {
                  "stable": _Measured({"metrics": {HOSTILE: 1}})})
    _in_process(root, monkeypatch, capsys, "deploy", "create", "hsx", "m/1")
    _in_process(root, monkeypatch, capsys, "deploy", "replace", "hsx", "m/2")
    _in_process(root, monkeypatch, capsys, "deploy", "rollback", "hsx", "--reason", HOSTILE)
    code, out, _ = _in_process(root, monkeypatch, capsys, "deploy", "status", "hsx")
    assert code == 0 and "\x1b" not in out
    assert out.count("[bold]x[/bold] [link=http://e]l[/link]") == 3  # reason, event, cell


def test_run_starts_the_controller_until_ctrl_c(root, monkeypatch, capsys):
    calls: list[tuple[Any, ...]] = []

    def run(project: Any, names: list[str], *, every_s: float = 2.0,
            stop: threading.Event | None = None) -> None:
        calls.append((project.root, names, every_s, stop))
        raise KeyboardInterrupt

    _stand_in(monkeypatch, "controller", run=run)
    code, _, err = _in_process(root, monkeypatch, capsys, "deploy", "run", "a", "b",
                               "--every", "3s")
    assert code == 0 and "Controller stopped." in err
    ((where, names, every_s, stop),) = calls
    assert where == root and names == ["a", "b"] and every_s == 3.0
    assert isinstance(stop, threading.Event) and stop.is_set()
    bad = _in_process(root, monkeypatch, capsys, "deploy", "run", "--every", "often")
    assert bad[0] == 2 and "duration" in bad[2]


def test_decisions_and_measures_render_as_one_line():
    from mloop.cli.deploy import _brief, _live_metric

    assert _brief(None) == "-" and _brief(0.5) == "0.5"
    line = _brief({"verdict": "pass", "winner": None, "at": 0, "summary": {"n": 3}})
    assert line == "verdict=pass, winner=-, at=1970-01-01 00:00:00 UTC"
    assert _brief({"nested": {"a": 1}}) == '{"nested": {"a": 1}}'
    assert _live_metric({"metrics": {"accuracy": 0.9, "mae": 0.1}}, "mae") == "0.1"
    assert _live_metric({"metrics": {"accuracy": 0.9, "mae": 0.1}}, None) == \
        "accuracy=0.9 mae=0.1"
    assert _live_metric({"metrics": {}}, "accuracy") is None
    assert _live_metric(None, "accuracy") is None


# ── help ──────────────────────────────────────────────────────────────────────────────

def test_every_deploy_command_explains_itself_with_an_example():
    group = cli.get_command(click.Context(cli), "deploy")
    for path, cmd in _commands(group, ("deploy",)):
        assert f"mloop {' '.join(path)}" in (cmd.help or ""), path
        names = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        assert isinstance(cmd, click.Group) or path[-1] == "run" or "--json" in names, path


def test_help_does_not_import_the_deploy_package(tmp_path):
    code = ("import sys\nfrom click.testing import CliRunner\nfrom mloop.cli import cli\n"
            "for args in (['--help'], ['deploy', '--help'], ['deploy', 'status', '--help']):\n"
            "    assert CliRunner().invoke(cli, args).exit_code == 0, args\n"
            "print(sorted(m for m in sys.modules if m.startswith('mloop.deploy')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_status_measures_a_window(root, monkeypatch, capsys):
    asked: list[Any] = []
    _stand_in(monkeypatch, "measure",
              measure=lambda project, revision, since_ms=None: asked.append(since_ms) or {})
    _in_process(root, monkeypatch, capsys, "deploy", "create", "wx", "m/1")
    import time as clock

    now = clock.time() * 1000
    _in_process(root, monkeypatch, capsys, "deploy", "status", "wx")
    _in_process(root, monkeypatch, capsys, "deploy", "status", "wx", "--window", "all")
    code, out, _ = _in_process(root, monkeypatch, capsys, "deploy", "status", "wx",
                               "--window", "24h", "--json")
    assert code == 0 and asked[1] is None
    assert abs(asked[0] - (now - 3_600_000)) < 60_000
    assert abs(json.loads(out)["measured_since_ms"] - (now - 86_400_000)) < 60_000
