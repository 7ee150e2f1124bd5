"""``mloop fl server`` and ``mloop fl client`` as users run them: separate processes over
HTTP, a server killed mid-training and resumed, clients that find it again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mloop
from mloop.project import Project

TOKEN = "cli-federation-token-0123456789"

SITE = textwrap.dedent('''
    import time
    import numpy as np
    from mloop.federated import Client

    class Site(Client):
        def __init__(self, target):
            self.target = float(target)
        def get_weights(self):
            return [np.zeros(4)]
        def fit(self, weights, config):
            time.sleep(0.4)
            return [weights[0] + 0.5 * (self.target - weights[0])], 10, {}
        def evaluate(self, weights, config):
            return float(np.mean((weights[0] - self.target) ** 2)), 10, {}

    def make(data):
        return Site(data)

    def central(server_round, weights):
        return float(np.abs(weights[0] - 1.0).mean()), {"accuracy": 1.0}
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mloop(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), *sys.path])
    return subprocess.Popen([sys.executable, "-m", "mloop", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _checkpoints(root: Path) -> list[Path]:
    return sorted((root / ".mloop" / "objects" / "records" / "fl").glob("*/*.json"))


def test_server_killed_mid_training_resumes_and_clients_find_it(tmp_path: Path) -> None:
    Project.init(tmp_path).close()
    (tmp_path / "fedsite.py").write_text(SITE)
    port = _free_port()
    server_args = ["fl", "server", "--rounds", "4", "--min-clients", "2", "--port", str(port),
                   "--token", TOKEN, "--evaluate", "fedsite:central", "--federation", "demo",
                   "--experiment", "fl-cli", "--round-timeout", "30", "--json"]
    server = _mloop(*server_args, cwd=tmp_path)
    clients = [_mloop("fl", "client", "--server", f"http://127.0.0.1:{port}", "--client",
                      "fedsite:make", "--data", str(target), "--name", f"site-{target}",
                      "--token", TOKEN, "--retry-for", "60", cwd=tmp_path)
               for target in (0, 2)]
    try:
        deadline = time.monotonic() + 60
        while len(_checkpoints(tmp_path)) < 2:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "no checkpoint of round 2 in time"
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)  # a crash: nothing is flushed or ended
        server.communicate()
        run_id = _checkpoints(tmp_path)[0].parent.name
        done = len(_checkpoints(tmp_path))  # the rounds completed before the crash
        server = _mloop(*server_args, "--resume", run_id, cwd=tmp_path)
        out, err = server.communicate(timeout=90)
        assert server.returncode == 0, err
        history = json.loads(out)
        assert history["run_id"] == run_id
        assert [r["round"] for r in history["rounds"]] == list(range(done + 1, 5))
        for client in clients:
            c_out, c_err = client.communicate(timeout=60)
            assert client.returncode == 0, c_err
            assert "fits" in c_out
    finally:
        for proc in (server, *clients):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    mloop.set_project(tmp_path)
    try:
        run = mloop.get_run(run_id)
        assert run.status.value == "FINISHED"
        assert run.metrics["central_loss"] == pytest.approx(1.0 * 0.5 ** 4, abs=1e-9)
        assert len(_checkpoints(tmp_path)) == 4
    finally:
        mloop.set_project(None)
    lineage = _mloop("lineage", "clients:/demo/site-2", cwd=tmp_path)
    out, err = lineage.communicate(timeout=60)
    assert lineage.returncode == 0, err
    assert f"runs:/{run_id[-12:]}" in out and "trained-on" in out


def test_server_refuses_to_start_open_and_says_when_clients_never_come(tmp_path: Path) -> None:
    Project.init(tmp_path).close()
    proc = _mloop("fl", "server", "--port", "0", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--token" in err
    proc = _mloop("fl", "server", "--port", "0", "--token", TOKEN, "--min-clients", "3",
                  "--wait-timeout", "0.5", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 69 and "0 of the 3 clients" in err
    proc = _mloop("fl", "server", "--port", "0", "--token", "short", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "at least 16" in err
    proc = _mloop("fl", "server", "--port", "0", "--token", TOKEN, "--strategy", "fedmagic",
                  cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "fedavg" in err
    for option, bad, says in (("--param", "bogus=1", "bogus"), ("--dp", "noise_multiplier=1",
                                                                 "clip_norm"),
                              ("--dp", "clip", "key=value")):
        proc = _mloop("fl", "server", "--port", "0", "--token", TOKEN, option, bad,
                      "--wait-timeout", "0.5", cwd=tmp_path)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and says in err, (option, bad, err)
    proc = _mloop("fl", "server", "--port", "0", "--token", TOKEN, "--dp", "noise_multiplier=1",
                  "--dp", "clip_norm=0.5", "--secure", "--wait-timeout", "0.5", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 69 and "clients" in err  # valid settings: waits, then says why
    proc = _mloop("fl", "client", "--server", "http://127.0.0.1:9", "--client", "nope:make",
                  "--token", TOKEN, cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot import 'nope'" in err
