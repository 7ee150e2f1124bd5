"""``mloop demo`` is not run twice into one folder, and names the mloop to type."""

import os
import sys
from pathlib import Path

import pytest

import mloop
from mloop.demo import EXPERIMENT, _start_afresh, _typed_as_run, mloop_command
from mloop.errors import ConflictError
from mloop.project import Project
from tests.cli.test_cli import run_cli


@pytest.fixture
def old_demo(tmp_path):
    """A folder that holds the demo's experiment (as a demo run leaves it)."""
    root = tmp_path / "mloop-demo"
    project = Project.init(root)
    with mloop.start_run(experiment=EXPERIMENT, project=project):
        pass
    project.close()
    return root


def test_an_existing_demo_is_refused_or_made_afresh(old_demo, tmp_path):
    with pytest.raises(ConflictError, match="already holds the mloop demo"):
        _start_afresh(old_demo, fresh=False)
    _start_afresh(old_demo, fresh=True)
    assert not (old_demo / ".mloop").exists()
    _start_afresh(old_demo, fresh=False)  # nothing there any more: fine
    other = Project.init(tmp_path / "mine")  # a project that is not the demo: untouched
    other.close()
    _start_afresh(other.root, fresh=True)
    assert (other.root / ".mloop").is_dir()


def test_cli_refuses_a_second_demo_in_one_folder(old_demo):
    out = run_cli("demo", str(old_demo), cwd=old_demo.parent, check=False)
    assert out.returncode == ConflictError.exit_code
    assert "add --fresh" in out.stderr and "Traceback" not in out.stderr
    assert (old_demo / ".mloop").is_dir()


def _fake_mloop(folder: Path, with_activate: bool) -> Path:
    folder.mkdir(parents=True)
    exe = folder / "mloop"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    if with_activate:
        (folder / "activate").write_text("")
    return exe


def test_mloop_command_names_the_executable_a_new_shell_finds(tmp_path, monkeypatch):
    venv_bin = tmp_path / "proj" / ".venv" / "bin"
    exe = _fake_mloop(venv_bin, with_activate=True)
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # run by its path, venv not activated
    assert mloop_command() == str(exe)
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}/usr/bin")
    monkeypatch.setenv("VIRTUAL_ENV", str(venv_bin.parent))  # on PATH by activation only
    assert mloop_command() == str(exe)
    monkeypatch.delenv("VIRTUAL_ENV")  # installed on PATH for good
    assert mloop_command() == "mloop"

    printed: list[str] = []
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    say = _typed_as_run(printed.append, tmp_path)
    say("  mloop runs list")
    say("  cd somewhere")
    assert printed[-2:] == [f"  {exe} runs list", "  cd somewhere"]
    assert f"source {venv_bin / 'activate'}" in printed[0]
