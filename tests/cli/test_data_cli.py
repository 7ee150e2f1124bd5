"""``mloop data``, ``mloop remote`` and ``mloop lineage`` through the real entry point."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import mloop
from tests.cli.test_cli import run_cli


@pytest.fixture
def proj(tmp_path):
    project = mloop.init(tmp_path / "p")
    (project.root / "data").mkdir()
    lines = ["id,age,plan"] + [f"{i},{20 + i % 60},{'free' if i % 3 else 'pro'}"
                               for i in range(20_000)]
    (project.root / "data" / "train.csv").write_text("\n".join(lines) + "\n")
    return project.root


def test_add_log_show_diff_checkout_tag_rollback(proj):
    out = run_cli("data", "add", "data/train.csv", "--name", "train", "-m", "May", cwd=proj)
    assert out.stdout.startswith("train@1")
    with open(proj / "data" / "train.csv", "a") as f:
        f.write("20000,44,team\n")
    run_cli("data", "add", "train.csv", "-m", "June", cwd=proj / "data")  # from a subfolder
    log = json.loads(run_cli("data", "log", "train", "--json", cwd=proj).stdout)
    assert [(v["version"], v["message"], v["rows"]) for v in log] == [(2, "June", 20_001),
                                                                     (1, "May", 20_000)]
    shown = json.loads(run_cli("data", "show", "train@2", "--json", cwd=proj).stdout)
    assert shown["stats"]["columns"]["plan"]["distinct"] == 3
    diff = json.loads(run_cli("data", "diff", "train@1", "train@2", "-k", "id", "--json",
                              cwd=proj).stdout)
    assert diff["table"]["rows"]["added"] == 1
    run_cli("data", "checkout", "train@1", cwd=proj)
    assert (proj / "data" / "train.csv").read_text().count("\n") == 20_001
    status = json.loads(run_cli("data", "status", "--json", cwd=proj).stdout)
    assert status[0]["state"] == "clean" and status[0]["version"] == 1
    run_cli("data", "tag", "train@2", "golden", cwd=proj)
    assert "train@3" in run_cli("data", "rollback", "train", "1", cwd=proj).stdout
    listed = json.loads(run_cli("data", "list", "--json", cwd=proj).stdout)
    assert [(d["name"], d["version"]) for d in listed] == [("train", 3)]


def test_remote_push_pull_gc_lineage(proj, tmp_path):
    run_cli("data", "add", "data/train.csv", cwd=proj)
    run_cli("remote", "add", "origin", f"file://{tmp_path / 'remote'}", cwd=proj)
    assert json.loads(run_cli("remote", "list", "--json", cwd=proj).stdout)[0]["name"] == "origin"
    assert "Pushed" in run_cli("data", "push", cwd=proj).stdout
    assert "Pushed 0 of" in run_cli("data", "push", "origin", cwd=proj).stdout
    assert "Pulled 0 of" in run_cli("data", "pull", "origin", "train@1", cwd=proj).stdout
    assert "Deleted 0 blob" in run_cli("data", "gc", cwd=proj).stdout
    assert "no lineage" in run_cli("lineage", "train@1", cwd=proj).stdout
    run_cli("remote", "remove", "origin", cwd=proj)
    out = run_cli("data", "push", cwd=proj, check=False)
    assert out.returncode == 2 and "mloop remote add" in out.stderr


def test_validate_exit_codes(proj):
    run_cli("data", "add", "data/train.csv", "--name", "train", cwd=proj)
    (proj / "ok.yaml").write_text("columns:\n  id: {type: int, unique: true}\n")
    (proj / "bad.yaml").write_text("columns:\n  plan: {allowed: [free]}\n")
    (proj / "broken.yaml").write_text("columns:\n  plan: {colour: red}\n")
    assert run_cli("data", "validate", "train@1", "-s", "ok.yaml", cwd=proj).returncode == 0
    assert run_cli("data", "validate", "train@1", "-s", "bad.yaml", cwd=proj,
                   check=False).returncode == 1
    broken = run_cli("data", "validate", "train@1", "-s", "broken.yaml", cwd=proj, check=False)
    assert broken.returncode == 2 and "colour" in broken.stderr
    missing = run_cli("data", "show", "train@9", cwd=proj, check=False)
    assert missing.returncode == 3 and "mloop data log train" in missing.stderr


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_add_killed_at_any_moment_then_rerun_completes(proj, delay):
    big = proj / "data" / "big.bin"
    big.write_bytes(os.urandom(24 << 20))
    proc = subprocess.Popen([sys.executable, "-m", "mloop", "data", "add", "data/big.bin"],
                            cwd=proj, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    out = run_cli("data", "add", "data/big.bin", cwd=proj)
    assert out.stdout.startswith("big@1")
    run_cli("data", "checkout", "big@1", "restored.bin", cwd=proj)
    assert (proj / "restored.bin").read_bytes() == big.read_bytes()
