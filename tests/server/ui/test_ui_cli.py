"""``mloop ui`` as a user runs it: a real process on loopback over a project."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.test_server_cli import _env, _free_port


def test_mloop_ui_serves_the_project_on_loopback(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    assert subprocess.run([sys.executable, "-m", "mloop", "init", "-q"], cwd=project,
                          env=_env(), capture_output=True, timeout=120).returncode == 0
    port = _free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "mloop", "ui", "--port", str(port)],
                                  cwd=project, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                home = httpx.get(f"http://127.0.0.1:{port}/ui/")
                break
            except httpx.TransportError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "mloop ui did not start"
                time.sleep(0.1)
        assert home.status_code == 200
        assert "No model is registered yet" in home.text
        assert httpx.get(f"http://127.0.0.1:{port}/").headers["location"] == "/ui/"
        # a DNS-rebinding page reaches the port under another name: refused
        assert httpx.get(f"http://127.0.0.1:{port}/ui/",
                         headers={"host": "attacker.example"}).status_code == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert f"http://127.0.0.1:{port}/ui/" in log.read_text()


def test_mloop_ui_refuses_other_addresses_and_busy_ports(tmp_path: Path) -> None:
    wide = subprocess.run([sys.executable, "-m", "mloop", "ui", "--host", "0.0.0.0"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert wide.returncode == 2 and "0.0.0.0" in wide.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        subprocess.run([sys.executable, "-m", "mloop", "init", "-q"], cwd=tmp_path,
                       env=_env(), capture_output=True, timeout=120)
        taken = subprocess.run([sys.executable, "-m", "mloop", "ui", "--port", str(port)],
                               cwd=tmp_path, env=_env(), capture_output=True, text=True,
                               timeout=120)
    assert taken.returncode != 0 and "--port" in taken.stderr
