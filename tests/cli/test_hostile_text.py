"""User text is data: every listing and show command prints hostile names literally.

One project is filled with names, messages, keys, column names, file names, errors and
log lines full of Rich markup (``[/b]``, ``[bold]…[/bold]``, ``[link=…]``), emoji codes,
newlines and ANSI escapes; then every command that lists or shows something runs
through the real ``mloop`` entry point. Each must exit normally, print the text as
written (control characters as visible escapes, see ``mloop.core.printable``), and never
send a raw escape character to the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import mloop
import mloop.deploy
from mloop.core.printable import printable

H = "x[/b]y [bold]WIP[/bold] [link=http://x]l[/link] \x1b[31mred :smile:"
NL = "two\nlines [i]"
R2 = "tab\there [i] \x1b[31mred"  # a run name: one line, but tabs and escapes
ONE = printable(H, one_line=True)  # how a table cell shows H
MULTI = printable(f"{H}\n{NL}", one_line=True)  # a multi-line message in a cell
LONG = "L" * 4000 + "[/b]"
FILE = "d[b]x [red]y.csv"
COL = f"c{H}"
STEP = f"s{H}"
REMOTE = "file:///tmp/r[/b] [bold]x[/bold]"


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    # model loading is not what this test is about (pickle opt-in: see the registry tests)
    env.update(MLOOP_QUIET="1", MLOOP_CAPTURE_PACKAGES="0", MLOOP_ALLOW_PICKLE="1",
               XDG_CONFIG_HOME=str(root.parent / "user-config"))
    return env


PIPELINES = f'''
    import mloop

    @mloop.step(name={STEP!r}, outputs="first")
    def first() -> dict:
        return {{"k": 1}}

    @mloop.step
    def boom(first: dict) -> dict:
        print({H!r})
        raise ValueError({(H + chr(10) + NL)!r})

    hp = mloop.Pipeline("hp", steps=[first, boom])
'''


def _fill(root: Path) -> dict[str, str]:
    """The hostile project; returns the ids the commands need."""
    from sklearn.linear_model import LogisticRegression

    from mloop.automation import state
    from mloop.monitoring.alerting import Firing, fire
    from mloop.registry.models import set_tag, transition
    from mloop.serving.broker import open_broker

    project = mloop.init(root)
    frame = pd.DataFrame({COL: [0.1, 0.5, 0.9, 0.3, 0.7, 0.2] * 5,
                          "g[/b]": ["[red]a", "b\x1b[2J"] * 15,
                          "target": [0, 1, 1, 0, 1, 0] * 5})
    frame.to_csv(root / FILE, index=False)
    mloop.data.add(root / FILE, name="hd", message=f"{H}\n{NL}", project=project)
    frame.iloc[:20].to_csv(root / FILE, index=False)
    mloop.data.add(root / FILE, name="hd", message=H, project=project)
    frame.to_csv(root / "eval.csv", index=False)
    with mloop.start_run(experiment="hx", name=H, tags={f"t{H}": H, "nl": NL, "long": LONG},
                         project=project) as r1:
        r1.log_params({f"p{H}": H, "long": LONG})
        r1.log_metrics({f"m{H}": 0.5})
        r1.log_text("hello", "art[/b]/[bold]f[/bold] :smile:.txt")
        model = LogisticRegression().fit(frame[[COL]], frame["target"])
        mloop.log_model(model, "model", registered_name="hm", input_example=frame[[COL]][:3],
                        description=f"{H}\n{NL}")
    mloop.evaluate("hm/1", root / FILE, "target", resamples=0, project=project)  # the card
    with mloop.start_run(experiment="hx", name=R2, project=project) as r2:
        r2.log_metrics({f"m{H}": 0.7})
    set_tag(project, "hm/1", "team", H)
    transition(project, "hm/1", "approved", f"{H}\n{NL}")
    fire(project, Firing(rule=f"r{H}", signal="drift.share", subject="models:/hm/1",
                         severity="warning", value=0.9, threshold=0.5, message=f"{H}\n{NL}",
                         cooldown_ms=0))
    state.record(project, "hp", f"trig{H}", "failed", [f"{H}\n{NL}"])
    queue = open_broker("sqlite", root, visibility=1, max_attempts=1)
    queue.enqueue("hm", {"records": []}, job_id="j1")
    queue.fail(queue.claim("hm", "c", 1, 0.1)[0], f"{H}\n{NL}")
    queue.close()
    (root / "schema.yaml").write_text(yaml.safe_dump(
        {"columns": {COL: {"type": "float", "min": 0.2}, "g[/b]": {"allowed": ["[red]a"]}}}))
    (root / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    from mloop.core.tokens import create_token

    create_token(root / "tokens.jsonl", "writer", name=H)
    mloop.deploy.create("hdep", "hm/1", project=project)
    mloop.deploy.replace("hdep", "hm/1", project=project)
    mloop.deploy.rollback("hdep", reason=f"{H}\n{NL}", project=project)
    from mloop.core.clock import now_ms
    from mloop.repositories import backend
    from mloop.repositories.audit import AuditEntry
    from mloop.server import tokens

    tokens.create(project, "hx", "reader")
    backend(project).audit.add([AuditEntry(now_ms(), "hx", None, "writer",
                                           f"PUT /artifacts/a{H}", f"name={H}\n{NL}", 200)])
    project.close()
    mloop.set_project(None)
    return {"r1": r1.id, "r2": r2.id, "tokens": str(root / "tokens.jsonl")}


# (id, arguments, exit codes accepted, texts that must appear on stdout)
COMMANDS: list[tuple[str, list[str], tuple[int, ...], list[str]]] = [
    ("experiments-list", ["experiments", "list"], (0,), ["hx"]),
    ("runs-list", ["runs", "list"], (0,), [ONE, printable(R2, one_line=True), f"m{ONE}"]),
    ("runs-show", ["runs", "show", "{r1}"], (0,),
     [ONE, f"p{ONE}", f"t{ONE}", "art[/b]/[bold]f[/bold] :smile:.txt"]),
    ("runs-compare", ["runs", "compare", "{r1}", "{r2}"], (0,), [f"params.p{ONE}"]),
    ("runs-show-metric", ["runs", "show", "{r1}", "--metric", f"m{H}"], (0,),
     [f"m{printable(H)} of run"]),
    ("data-list", ["data", "list"], (0,), [FILE]),
    ("data-log", ["data", "log", "hd"], (0,), [ONE, MULTI]),
    ("data-show", ["data", "show", "hd"], (0,), [ONE, printable(COL, one_line=True),
                                                 "[red]a", "b\\x1b[2J", FILE]),
    ("data-status", ["data", "status"], (0,), [FILE]),
    ("data-diff", ["data", "diff", "hd@1", "hd@2"], (0,),
     [FILE, printable(COL, one_line=True)]),
    ("data-validate", ["data", "validate", "hd@1", "-s", "schema.yaml"], (1,),
     [printable(COL, one_line=True), "g[/b]"]),
    ("data-checkout", ["data", "checkout", "hd@2"], (0,), [FILE]),
    ("remote-list", ["remote", "list"], (0,), [REMOTE]),
    ("models-list", ["models", "list"], (0,), ["hm"]),
    ("models-versions", ["models", "versions", "hm"], (0,), ["approved"]),
    ("models-show", ["models", "show", "hm/1"], (0,),
     [MULTI, f"team={ONE}", printable(COL, one_line=True)]),
    ("models-history", ["models", "history", "hm"], (0,), [MULTI]),
    ("models-compare", ["models", "compare", "hm/1", "hm/1"], (0,), [f"params.p{ONE}"]),
    ("models-card", ["models", "card", "hm/1"], (0,), [printable(H), f"/{FILE}`**"]),
    ("lineage", ["lineage", "models:/hm/1"], (0,), ["(produced models:/hm/1)",
                                                     "(alert on models:/hm/1)"]),
    ("monitor-alerts", ["monitor", "alerts"], (0,), [f"r{ONE}"]),
    ("monitor-drift", ["monitor", "drift", "-r", "eval.csv", "-c", FILE], (0,),
     [printable(COL, one_line=True), "g[/b]", f"eval.csv → {FILE}"]),
    ("monitor-performance", ["monitor", "performance", "hm"], (0,), ["hm"]),
    ("evaluate", ["evaluate", "hm/1", "-d", "eval.csv", "-t", "target", "--slice", "g[/b]",
                  "--resamples", "0", "--no-record"], (0,),
     ["By g[/b]", "[red]a", "b\\x1b[2J"]),
    ("pipeline-status", ["pipeline", "status"], (0,), ["hp", "failed"]),
    ("pipeline-show", ["pipeline", "show", "{pipeline_run}"], (0,), [ONE, printable(NL)]),
    ("pipeline-show-log", ["pipeline", "show", "{pipeline_run}", "--log", "boom"], (0,),
     [printable(H)]),
    ("pipeline-list", ["pipeline", "list"], (0,), [STEP.replace("\x1b", "\\x1b")]),
    ("pipeline-dag", ["pipeline", "dag", "hp"], (0,), [printable(STEP)]),
    ("automate-history", ["automate", "history"], (0,), [f"trig{ONE}"]),
    ("jobs-dead", ["jobs", "dead"], (0,), [MULTI]),
    ("token-list", ["token", "list", "--file", "{tokens}"], (0,), [ONE]),
    ("deploy-list", ["deploy", "list"], (0,), ["hdep"]),
    ("deploy-history", ["deploy", "history", "hdep"], (0,), [MULTI]),
    ("deploy-status", ["deploy", "status", "hdep"], (0,), [MULTI]),
    ("server-token-list", ["server", "token", "list"], (0,), ["hx", "reader"]),
    ("server-audit", ["server", "audit"], (0,), [f"a{ONE}", MULTI.replace(ONE, f"name={ONE}", 1)]),
]


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=root, env=_env(root),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every command's output (run two at a time against the hostile project), and the
    project's root under "root"."""
    root = tmp_path_factory.mktemp("hostile") / "proj"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _env(root).items():
            mp.setenv(key, value)
        ids = _fill(root)
    added = _run(["remote", "add", "r", REMOTE], root)
    assert added.returncode == 0, added.stderr
    ran = _run(["pipeline", "run", "hp"], root)
    outputs: dict[str, Any] = {"pipeline-run": ran, "root": root}
    run_id = json.loads(_run(["pipeline", "status", "--json"], root).stdout)[0]["id"]
    ids["pipeline_run"] = run_id[-12:]
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_run, [a.format(**ids) for a in args], root)
                   for name, args, _codes, _texts in COMMANDS}
        outputs.update({name: f.result() for name, f in futures.items()})
    return outputs


def _check(out: subprocess.CompletedProcess[str], codes: tuple[int, ...],
           texts: list[str]) -> None:
    assert out.returncode in codes, out.stderr
    for stream in (out.stdout, out.stderr):
        assert "\x1b" not in stream, "a raw escape character reached the terminal"
    # (stdout may hold a failed step's traceback: `pipeline show` prints it as data)
    assert "Traceback" not in out.stderr and "MarkupError" not in out.stderr
    for text in texts:
        assert text in out.stdout, f"{text!r} not in:\n{out.stdout}"


@pytest.mark.parametrize(("name", "codes", "texts"),
                         [pytest.param(n, c, t, id=n) for n, _a, c, t in COMMANDS])
def test_listing_prints_hostile_text_literally(hostile, name, codes, texts):
    _check(hostile[name], codes, texts)


def test_a_failing_pipeline_reports_its_hostile_step_and_error(hostile):
    out = hostile["pipeline-run"]
    _check(out, (1,), [])
    assert printable(STEP) in out.stderr  # the progress lines
    assert "failed" in out.stdout


def test_every_listing_command_is_covered():
    """A new `list`/`show`/`log`/`status`/`history` command joins COMMANDS above."""
    from mloop.cli import cli
    from tests.cli.test_cli import _commands

    verbs = {"list", "show", "log", "status", "history", "versions", "alerts", "dead",
             "diff", "compare", "card", "dag", "lineage"}
    ran = [tuple(args) for _n, args, _c, _t in COMMANDS]
    for path, _cmd in _commands(cli):
        if path[-1] in verbs:
            assert path[:1] == ("lineage",) or any(args[:len(path)] == path for args in ran), \
                f"mloop {' '.join(path)} untested"


def test_long_values_do_not_break_a_table(hostile):
    """A 4,000-character param is cut with an ellipsis, the table keeps its shape."""
    out = hostile["runs-show"]
    assert "LLLL" in out.stdout and "…" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 240


@pytest.mark.parametrize("args", [
    ["runs", "list", "-f", f"params.x = '{H}' and"],  # the filter is quoted back
    ["data", "show", f"hd@{H}"],
    ["models", "show", f"{H}/1"],
    ["runs", "show", f"{H}"],
    ["lineage", f"models:/hm@{H}"],
    [f"no{H}"],  # click's own usage error
], ids=["filter", "data-ref", "model-ref", "run-id", "uri", "command"])
def test_error_messages_show_user_text_literally(hostile, args):
    out = _run(args, hostile["root"])
    assert out.returncode in (2, 3), out.stderr  # bad input, or no such thing
    assert "\x1b" not in out.stderr and "Traceback" not in out.stderr
    assert "\\x1b[31mred" in out.stderr, out.stderr


def test_progress_description_is_not_markup(monkeypatch, capsys):
    """A file named like markup shows in the progress bar as named."""
    from mloop.core import progress

    monkeypatch.setattr(progress, "enabled", lambda quiet=False: True)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    with progress.progress(2, f"Hashing {H}") as bar:
        bar.advance(2)
    err = capsys.readouterr().err
    assert "[bold]WIP[/bold]" in err and "\\x1b[31mred" in err


def test_install_hints_keep_their_brackets(capsys):
    """`(pip install 'mloop[onnx]')` once printed as `'mloop'`: [onnx] read as a tag."""
    from mloop.cli.render import kv_section, table

    hint = "no (skl2onnx is not installed (pip install 'mloop[onnx]'))"
    kv_section("models:/m/1", {"onnx": hint})
    table(["a"], [], empty=f"nothing [bold]yet[/bold]: {hint}")
    out = capsys.readouterr().out
    assert out.count("pip install 'mloop[onnx]'") == 2 and "[bold]yet[/bold]" in out


def test_log_warnings_are_escaped_and_redacted(capsys):
    """mloop's warnings (an alert opened with its message) reach stderr escaped."""
    import logging

    from mloop.cli import _log_to_stderr

    logger = logging.getLogger("mloop")
    before = list(logger.handlers)
    try:
        _log_to_stderr()
        _log_to_stderr()  # once only
        logging.getLogger("mloop.monitoring").warning("alert %s: %s", H, "password=hunter2")
    finally:  # the CLI installs it for its process; this test's process goes on
        logger.handlers[:] = before
    err = capsys.readouterr().err
    assert err.count("alert ") == 1 and ONE in err
    assert "\x1b" not in err and "hunter2" not in err
