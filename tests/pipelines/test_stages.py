"""mloop.yaml stages: parsing and its errors, wiring, and the engine's three shell hooks."""

from __future__ import annotations

import inspect
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from mloop.errors import ConfigError, MloopError
from mloop.pipelines.stages import (
    StepFailed,
    blobs,
    load_stages,
    restore,
    run_shell,
    shell_key,
)
from mloop.project import Project

PY = sys.executable


def write(root: Path, text: str, params: str | None = None) -> None:
    (root / "mloop.yaml").write_text(textwrap.dedent(text))
    if params is not None:
        (root / "params.yaml").write_text(textwrap.dedent(params))


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- parsing ----------------------------------------------------------------------------------


def test_parses_the_dvc_like_form(tmp_path):
    write(tmp_path, """
        stages:
          prepare:
            cmd: python prepare.py
            deps: [data/raw.csv, prepare.py]
            outs: [data/clean.csv]
            params: [prepare.split]
          train:
            desc: fit the model
            cmd: [python train.py, echo done]
            deps: [./data/clean.csv, train.py]
            params: [train.C, seed]
            outs: [model.pkl]
        """, """
        prepare: {split: 0.2}
        train: {C: 1.5, kernel: rbf}
        seed: 7
        """)
    pipe = load_stages(tmp_path)
    assert pipe.name == "default"
    assert list(pipe.steps) == ["prepare", "train"]
    prepare, train = pipe.steps["prepare"], pipe.steps["train"]
    assert prepare.kind == train.kind == "shell"
    assert prepare.outputs == ("prepare",)
    assert prepare.inputs == {}
    assert train.inputs == {"prepare": inspect.Parameter.empty}
    assert prepare.params == {} and train.params == {}
    assert prepare.meta == {"cmd": "python prepare.py", "deps": ["data/raw.csv", "prepare.py"],
                            "outs": ["data/clean.csv"], "params": {"prepare.split": 0.2}}
    assert train.meta["cmd"] == "python train.py && echo done"
    assert train.meta["deps"] == ["data/clean.csv", "train.py"]  # normalised
    assert train.meta["params"] == {"train.C": 1.5, "seed": 7}
    assert train.meta["desc"] == "fit the model"
    prepare.fn()  # a stand-in: callable, does nothing


def test_a_whole_section_can_be_a_param(tmp_path):
    write(tmp_path, "stages: {a: {cmd: 'true', params: [train]}}", "train: {C: 1, n: [1, 2]}\n")
    assert load_stages(tmp_path).steps["a"].meta["params"] == {"train": {"C": 1, "n": [1, 2]}}


@pytest.mark.parametrize(("text", "params", "says"), [
    ("stages:\n  a: {cmd: x, dep: [y]}\n", None,
     ["stages.a.dep: unknown key; did you mean 'deps'?"]),
    ("stages:\n  a: {deps: [y]}\n", None, ["stages.a: the key 'cmd' is required (a shell "
                                             "command"]),
    ("stages:\n  a: {cmd: '  '}\n", None, ["stages.a.cmd[0]: an empty command", "cmd: python"]),
    ("stages:\n  a: {cmd: [x, 3]}\n", None, ["stages.a.cmd[1]: expected a string, got 3"]),
    ("stages:\n  a: {cmd: x, desc: 5}\n", None, ["stages.a.desc: expected a string, got 5"]),
    ("stages:\n  a: {cmd: x, deps: 5}\n", None, ["stages.a.deps: expected a path or a list"]),
    ("stages:\n  a: python a.py\n", None, ["stages.a: expected a mapping"]),
    ("stages:\n  a: {cmd: x, outs: [o.csv]}\n  b: {cmd: y, outs: [o.csv]}\n", None,
     ["stages 'a' and 'b' both write", "o.csv"]),
    ("stages:\n  a: {cmd: x, outs: [data]}\n  b: {cmd: y, outs: [data/o.csv]}\n", None,
     ["stages 'a' and 'b' both write", "overlap"]),
    ("stages:\n  a: {cmd: x, deps: [o.csv], outs: [o.csv]}\n", None,
     ["stage 'a' reads 'o.csv'", "its own out"]),
    ("stages:\n  a: {cmd: x, params: [train.C]}\n", "train: {gamma: 1}\n",
     ["stage 'a' uses param 'train.C'", "params.yaml does not have"]),
    ("stages:\n  a: {cmd: x, params: [train.c]}\n", "train: {C: 1}\n",
     ["param 'train.c', which params.yaml does not have (did you mean 'train.C'?)"]),
    ("stages:\n  a: {cmd: x, params: [train.C.deep]}\n", "train: {C: 1}\n",
     ["param 'train.C.deep'"]),
    ("stages:\n  a: {cmd: x, params: [train.C]}\n", None, ["no params.yaml", "create it"]),
    ("stages:\n  a: {cmd: x, params: [{other.yaml: [k]}]}\n", "k: 1\n",
     ["stages.a.params[0]: expected a string, got a mapping"]),
    ("stages:\n  a: {cmd: x, outs: [../up.csv]}\n", None, ["stage 'a'", "escapes"]),
    ("stages:\n  a: {cmd: x, deps: [/etc/passwd]}\n", None, ["stage 'a'", "absolute"]),
    ("stages:\n  a: {cmd: x, outs: [.mloop/x]}\n", None, ["mloop's own"]),
    ("stages:\n  a: {cmd: x, outs: [o, ./o]}\n", None, ["same path twice"]),
    ("stages:\n  a: {cmd: x, deps: [i, i]}\n", None, ["same entry twice"]),
    ("stages:\n  'bad name': {cmd: x}\n", None, ["stages['bad name']: stage names", "rename"]),
    ("stages: {}\n", None, ["'stages' must map"]),
    ("stage:\n  a: {cmd: x}\n", None, ["stage: unknown key; did you mean 'stages'?"]),
    ("stages: [a\n", None, ["not valid YAML"]),
    ("stages:\n  a: {cmd: x, deps: [b.txt], outs: [a.txt]}\n"
     "  b: {cmd: y, deps: [a.txt], outs: [b.txt]}\n", None, ["cycle", "a, b"]),
])
def test_bad_files_say_where_and_what_to_do(tmp_path, text, params, says):
    write(tmp_path, text, params)
    with pytest.raises(ConfigError) as info:
        load_stages(tmp_path)
    assert str(tmp_path / "mloop.yaml") in info.value.message or "params.yaml" in \
        info.value.message
    for part in says:
        assert part in info.value.message
    assert info.value.exit_code == 2


def test_no_file(tmp_path):
    with pytest.raises(ConfigError, match=r"No mloop.yaml in .*write one"):
        load_stages(tmp_path)


def test_wiring_a_diamond(tmp_path):
    write(tmp_path, """
        stages:
          source: {cmd: s, deps: [raw.csv], outs: [data/src]}
          left: {cmd: l, deps: [data/src/part-1.csv], outs: [left.csv]}   # a file in a folder
          right: {cmd: r, deps: [data/src], outs: [right]}
          merge: {cmd: m, deps: [left.csv, right/x.csv, merge.py], outs: [merged.csv]}
          report: {cmd: p, deps: [merged.csv, right], outs: [report.txt]}
        """)
    pipe = load_stages(tmp_path)
    ins = {n: list(s.inputs) for n, s in pipe.steps.items()}
    assert ins["source"] == []
    assert ins["left"] == ins["right"] == ["source"]
    assert ins["merge"] == ["left", "right"]
    assert ins["report"] == ["right", "merge"]
    edges, _ = pipe.wire()
    order = pipe.order(edges)
    assert order.index("merge") > max(order.index("left"), order.index("right"))
    assert "can run side by side: left, right" in pipe.draw()


def age(*paths: Path) -> None:
    for path in paths:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # long ago: not racy


def test_an_unchanged_file_is_not_parsed_again(tmp_path, monkeypatch):
    (tmp_path / ".mloop").mkdir()
    write(tmp_path, "stages: {a: {cmd: 'true', params: [p.x]}}\n", "p: {x: 1}\n")
    age(tmp_path / "mloop.yaml", tmp_path / "params.yaml")
    first = load_stages(tmp_path).steps["a"].meta
    assert (tmp_path / ".mloop" / "stages-parsed.json").is_file()
    import yaml

    monkeypatch.setattr(yaml, "load", lambda *a, **k: pytest.fail("parsed again"))
    assert load_stages(tmp_path).steps["a"].meta == first
    monkeypatch.undo()
    (tmp_path / "params.yaml").write_text("p: {x: 2}\n")  # a new stat: parsed
    assert load_stages(tmp_path).steps["a"].meta["params"] == {"p.x": 2}
    (tmp_path / "params.yaml").write_text("p: {x: 3}\n")  # recent, so never trusted
    assert load_stages(tmp_path).steps["a"].meta["params"] == {"p.x": 3}


def test_values_json_cannot_carry_are_not_cached(tmp_path):
    (tmp_path / ".mloop").mkdir()
    write(tmp_path, "stages: {a: {cmd: 'true', params: [day]}}\n", "day: 2024-05-01\n")
    age(tmp_path / "mloop.yaml", tmp_path / "params.yaml")
    assert load_stages(tmp_path).steps["a"].meta["params"] == {"day": "2024-05-01"}
    cached = json.loads((tmp_path / ".mloop" / "stages-parsed.json").read_text())
    assert set(cached) == {"mloop.yaml"}
    assert load_stages(tmp_path).steps["a"].meta["params"] == {"day": "2024-05-01"}


# -- the hooks ----------------------------------------------------------------------------------


def stage_project(project: Project, *, cmd: str | None = None, outs: str = "[out.txt]",
                  params: str = "[a.x]") -> None:
    root = project.root
    touch(root / "in.txt", "input")
    touch(root / "data" / "one.csv", "1")
    touch(root / "data" / "sub" / "two.csv", "2")
    touch(root / "unrelated.txt", "u")
    cmd = cmd or (f"{PY} -c \"import pathlib; p = pathlib.Path('out.txt'); "
                  "p.write_text(open('in.txt').read().upper()); "
                  "d = pathlib.Path('folder'); d.mkdir(exist_ok=True); "
                  "(d / 'f.txt').write_text('f'); print('made it')\"")
    write(root, f"""
        stages:
          make:
            cmd: {json.dumps(cmd)}
            deps: [in.txt, data]
            outs: {outs}
            params: {params}
        """, "a: {x: 1, y: 2}\nb: 3\n")


def key(project: Project) -> dict:
    return shell_key(project, load_stages(project.root).steps["make"])


def test_shell_key_covers_cmd_deps_params_and_outs(sqlite_project):
    stage_project(sqlite_project)
    root = sqlite_project.root
    first = key(sqlite_project)
    assert set(first) == {"cmd", "deps", "params", "outs"}
    assert set(first["deps"]) == {"in.txt", "data"}
    assert first["params"] == {"a.x": 1} and first["outs"] == ["out.txt"]
    assert key(sqlite_project) == first  # stable
    # Not: an unrelated file, an unused param.
    touch(root / "unrelated.txt", "changed")
    (root / "params.yaml").write_text("a: {x: 1, y: 99}\nb: 4\n")
    assert key(sqlite_project) == first
    # A dep's content (same size, another mtime, as an editor would leave it).
    touch(root / "in.txt", "INPUT")
    os.utime(root / "in.txt", ns=(1_000_000_000, 1_000_000_000))
    edited = key(sqlite_project)
    assert edited["deps"]["in.txt"] != first["deps"]["in.txt"]
    assert edited["deps"]["data"] == first["deps"]["data"]
    # A file in a dep folder, a file added to it.
    touch(root / "data" / "sub" / "two.csv", "22")
    assert key(sqlite_project)["deps"]["data"] != edited["deps"]["data"]
    before = key(sqlite_project)["deps"]["data"]
    touch(root / "data" / "three.csv", "3")
    assert key(sqlite_project)["deps"]["data"] != before
    # A used param, the command.
    (root / "params.yaml").write_text("a: {x: 2, y: 99}\nb: 4\n")
    assert key(sqlite_project)["params"] == {"a.x": 2}
    stage_project(sqlite_project, cmd="echo other")
    assert key(sqlite_project)["cmd"] == "echo other"


def test_shell_key_reads_no_file_the_stat_cache_knows(sqlite_project, monkeypatch):
    stage_project(sqlite_project)
    first = key(sqlite_project)
    import mloop.data.workspace as workspace

    def no_hashing(path):
        raise AssertionError(f"hashed {path}")

    monkeypatch.setattr(workspace, "hash_file", no_hashing)
    assert key(sqlite_project) == first


def test_a_missing_dep_fails_naming_it(sqlite_project):
    stage_project(sqlite_project)
    (sqlite_project.root / "in.txt").unlink()
    with pytest.raises(StepFailed, match=r"Stage 'make' depends on 'in.txt', which does not"):
        key(sqlite_project)


def test_a_dep_that_is_no_file_fails_naming_it(sqlite_project):
    stage_project(sqlite_project)
    (sqlite_project.root / "in.txt").unlink()
    os.mkfifo(sqlite_project.root / "in.txt")
    with pytest.raises(StepFailed, match=r"'in.txt', which is neither a regular file"):
        key(sqlite_project)


def make_step(project: Project):
    return load_stages(project.root).steps["make"]


def test_run_shell_stores_the_outs(sqlite_project, tmp_path):
    stage_project(sqlite_project, outs="[out.txt, folder]")
    step = make_step(sqlite_project)
    touch(sqlite_project.root / "folder" / "stale.txt", "old")  # outs are cleared first
    log = tmp_path / "logs" / "make.log"
    ref = run_shell(sqlite_project, step, log)
    assert ref.kind == "files" and ref.summary == "2 files, 0.0 kB"
    assert "made it" in log.read_text()
    manifest = json.loads(sqlite_project.objects.get_bytes(ref.digest))
    assert sorted(manifest) == ["folder/f.txt", "out.txt"]
    assert sqlite_project.objects.get_bytes(manifest["out.txt"]["digest"]) == b"INPUT"
    assert manifest["out.txt"]["size"] == 5 and manifest["out.txt"]["mode"] == 0o666 & ~_umask()
    assert not (sqlite_project.root / "folder" / "stale.txt").exists()
    assert blobs(sqlite_project, ref) == {ref.digest} | {e["digest"] for e in manifest.values()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_run_shell_remembers_the_outs_stats(sqlite_project, tmp_path, monkeypatch):
    stage_project(sqlite_project, outs="[out.txt, folder]")
    step = make_step(sqlite_project)
    ref = run_shell(sqlite_project, step, tmp_path / "make.log")
    import mloop.data.workspace as workspace

    monkeypatch.setattr(workspace, "hash_file", lambda p: pytest.fail(f"hashed {p}"))
    assert restore(sqlite_project, step, ref) == 0


def test_run_shell_fails_on_a_non_zero_exit_with_the_log(sqlite_project, tmp_path):
    cmd = f"{PY} -c \"import sys; print('line one'); print('it broke'); sys.exit(3)\""
    stage_project(sqlite_project, cmd=cmd)
    with pytest.raises(StepFailed) as info:
        run_shell(sqlite_project, make_step(sqlite_project), tmp_path / "make.log")
    message = info.value.message
    assert "Stage 'make' failed" in message and "exited with status 3" in message
    assert "it broke" in message and str(tmp_path / "make.log") in message
    assert isinstance(info.value, MloopError) and info.value.exit_code == 1


def test_run_shell_fails_on_a_missing_out(sqlite_project, tmp_path):
    stage_project(sqlite_project, outs="[out.txt, never.txt]")
    with pytest.raises(StepFailed, match=r"did not write 'never.txt'.*remove it from"):
        run_shell(sqlite_project, make_step(sqlite_project), tmp_path / "make.log")


def test_restore_rewrites_deleted_and_edited_outs_only(sqlite_project, tmp_path):
    stage_project(sqlite_project, outs="[out.txt, folder]")
    root = sqlite_project.root
    step = make_step(sqlite_project)
    ref = run_shell(sqlite_project, step, tmp_path / "make.log")
    assert restore(sqlite_project, step, ref) == 0  # intact
    (root / "out.txt").unlink()
    assert restore(sqlite_project, step, ref) == 1
    assert (root / "out.txt").read_text() == "INPUT"
    (root / "folder" / "f.txt").write_text("edited")
    touch(root / "folder" / "extra.txt", "not an out")
    assert restore(sqlite_project, step, ref) == 2  # one rewritten, one removed
    assert (root / "folder" / "f.txt").read_text() == "f"
    assert not (root / "folder" / "extra.txt").exists()
    assert restore(sqlite_project, step, ref) == 0
    # A folder where a file belongs (and the other way round).
    (root / "out.txt").unlink()
    touch(root / "out.txt" / "inside", "?")
    assert restore(sqlite_project, step, ref) == 1
    assert (root / "out.txt").read_text() == "INPUT"
    assert not list(root.glob(".*.tmp")) and not list((root / "folder").glob(".*.tmp"))


def test_restore_keeps_the_mode(sqlite_project, tmp_path):
    cmd = f"{PY} -c \"import os; open('out.txt', 'w').write('#!'); os.chmod('out.txt', 0o755)\""
    stage_project(sqlite_project, cmd=cmd)
    step = make_step(sqlite_project)
    ref = run_shell(sqlite_project, step, tmp_path / "make.log")
    (sqlite_project.root / "out.txt").unlink()
    assert restore(sqlite_project, step, ref) == 1
    assert (sqlite_project.root / "out.txt").stat().st_mode & 0o777 == 0o755


# -- through the engine and the CLI -----------------------------------------------------------


def statuses(run) -> dict[str, str]:
    return {n: s.status for n, s in run.steps.items()}


def test_the_engine_runs_caches_and_restores_yaml_stages(sqlite_project):
    from mloop.pipelines.engine import run_pipeline

    root = sqlite_project.root
    touch(root / "raw.txt", "raw\n")
    write(root, """
        stages:
          source: {cmd: cat raw.txt raw.txt > src.txt, deps: [raw.txt], outs: [src.txt]}
          left:
            cmd: grep left params.yaml | cat - src.txt > left.txt
            deps: [src.txt]
            params: [left.x]
            outs: [left.txt]
          right:
            cmd: mkdir -p right && cp src.txt right/copy.txt
            deps: [src.txt]
            params: [right.x]
            outs: [right]
          merge:
            cmd: cat left.txt right/copy.txt > merged.txt
            deps: [left.txt, right]
            outs: [merged.txt]
        """, "left: {x: 1}\nright: {x: 1, unused: 1}\n")

    def run():
        result = run_pipeline(sqlite_project, load_stages(root))
        assert result.status == "succeeded", result.error
        return statuses(result)

    assert set(run().values()) == {"ran"}
    assert (root / "merged.txt").read_text() == "left: {x: 1}\nraw\nraw\nraw\nraw\n"
    assert set(run().values()) == {"cached"}
    (root / "params.yaml").write_text("left: {x: 1}\nright: {x: 1, unused: 2}\n")
    assert set(run().values()) == {"cached"}  # a param no stage uses
    (root / "params.yaml").write_text("left: {x: 2}\nright: {x: 1, unused: 2}\n")
    assert run() == {"source": "cached", "left": "ran", "right": "cached", "merge": "ran"}
    assert (root / "merged.txt").read_text().startswith("left: {x: 2}\n")
    (root / "merged.txt").unlink()
    (root / "right" / "copy.txt").write_text("edited")
    assert set(run().values()) == {"cached"}  # and the outs are back
    assert (root / "merged.txt").read_text().startswith("left: {x: 2}\n")
    assert (root / "right" / "copy.txt").read_text() == "raw\nraw\n"
    # The same through the command line (no name: the stages of mloop.yaml).
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    out = subprocess.run([PY, "-m", "mloop", "pipeline", "run", "--json"], cwd=root, env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    assert {s["status"] for s in json.loads(out.stdout)["steps"]} == {"cached"}


def test_a_failing_stage_stops_its_downstream(sqlite_project):
    from mloop.pipelines.engine import run_pipeline

    root = sqlite_project.root
    write(root, """
        stages:
          first: {cmd: echo it broke && exit 4, outs: [a.txt]}
          second: {cmd: cp a.txt b.txt, deps: [a.txt], outs: [b.txt]}
          aside: {cmd: echo ok > c.txt, outs: [c.txt]}
        """)
    result = run_pipeline(sqlite_project, load_stages(root))
    assert result.status == "failed"
    assert statuses(result) == {"first": "failed", "second": "not_run", "aside": "ran"}
    assert "exited with status 4" in (result.steps["first"].error or "")
    assert "it broke" in (result.steps["first"].error or "")


# -- the file's limits and schema ------------------------------------------------------------


def test_an_alias_bomb_under_deps_is_refused_fast(sqlite_project):
    import time

    from tests.cli.test_cli import run_cli
    from tests.core.test_yamlio import alias_bomb

    root = sqlite_project.root
    (root / "mloop.yaml").write_text("stages:\n  a:\n    cmd: echo hi\n    deps:\n"
                                     + alias_bomb(indent="      "))
    start = time.monotonic()
    out = run_cli("pipeline", "run", cwd=root, check=False)
    assert time.monotonic() - start < 5  # it reached 1.9 GB
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "mloop.yaml:" in out.stderr and "too many YAML aliases" in out.stderr


def test_an_unknown_key_fails_through_the_cli(sqlite_project):
    from tests.cli.test_cli import run_cli

    root = sqlite_project.root
    (root / "mloop.yaml").write_text("stages:\n  a:\n    cmd: echo hi\n    outz: [a.txt]\n")
    out = run_cli("pipeline", "run", cwd=root, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "mloop.yaml: stages.a.outz: unknown key; did you mean 'outs'?" in out.stderr


def _load_in_a_fresh_process(root: Path) -> list[str]:
    code = ("import sys; from pathlib import Path; from mloop.pipelines.stages import "
            "load_stages; load_stages(Path(sys.argv[1])); "
            "print(sorted(m for m in ('yaml', 'pydantic') if m in sys.modules))")
    import subprocess

    out = subprocess.run([PY, "-c", code, str(root)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.replace("'", '"'))


def test_an_unchanged_file_is_neither_parsed_nor_checked_again(tmp_path):
    (tmp_path / ".mloop").mkdir()
    write(tmp_path, "stages:\n  a: {cmd: 'true', params: [seed]}\n", "seed: 7\n")
    old = os.stat(tmp_path / "mloop.yaml").st_mtime - 10  # out of the racy window
    for name in ("mloop.yaml", "params.yaml"):
        os.utime(tmp_path / name, (old, old))
    assert _load_in_a_fresh_process(tmp_path) == ["pydantic", "yaml"]
    assert _load_in_a_fresh_process(tmp_path) == []  # the checked parse is reused
    cache = tmp_path / ".mloop" / "stages-parsed.json"
    entries = json.loads(cache.read_text())
    assert entries["mloop.yaml"]["format"] == 2
    # a parse cached by an mloop that did not check the schema is not trusted
    entries["mloop.yaml"]["data"] = {"stages": {"a": {"cmd": "true", "depz": ["x"]}}}
    del entries["mloop.yaml"]["format"]
    cache.write_text(json.dumps(entries))
    assert load_stages(tmp_path).steps["a"].meta["cmd"] == "true"  # parsed again: fine
