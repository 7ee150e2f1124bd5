"""The team server end to end: `mloop server` as its own process, tokens made on its
machine, a client project that logs in, trains, registers and is refused what its role
does not allow, and the audit log that shows who did what."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(240)

TRAIN = """
import mloop
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
with mloop.start_run(experiment="iris") as run:
    mloop.log_params({"C": 1.0})
    for step in range(300):
        mloop.log_metric("loss", 1 / (step + 1), step=step)
    mloop.log_text("notes", "notes/readme.txt")
    model = LogisticRegression(max_iter=300).fit(X, y)
    mloop.log_model(model, "model", registered_name="iris-clf", input_example=X.head(2))
print(mloop.load_model("models:/iris-clf/1").predict(X.head(3)).tolist())
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLOOP_PROJECT", "MLOOP_STORE", "MLOOP_TRACKING",
                                "MLOOP_TOKEN"))}
    env.update(extra)
    return env


def _mloop(*args: str, cwd: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=cwd, input=stdin,
                          env=_env(**env), capture_output=True, text=True, timeout=120)


def _token(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stderr
    return next(w for w in out.stdout.split() if w.startswith("mloop_"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, server: subprocess.Popen, log: Path, **kwargs: object) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/v1/server-info", **kwargs).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_server_speaks_tls_and_checks_its_flags(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    half = _mloop("server", "--tls-cert", str(cert), cwd=tmp_path)
    assert half.returncode == 2 and "--tls-key" in half.stderr
    port = _free_port()
    url = f"https://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mloop", "server", "--port", str(port), "--tls-cert",
             str(cert), "--tls-key", str(key), "--insecure-no-auth"],
            cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            context = ssl.create_default_context(cafile=str(cert))
            _wait_up(url, server, log_path, verify=context)
            # --insecure-no-auth: no token needed
            answer = httpx.post(f"{url}/api/v1/runs/newest_id", json={}, verify=context)
            assert answer.status_code == 200 and answer.json() == {"result": None}
            with pytest.raises(httpx.TransportError):  # plain HTTP is not served
                httpx.get(f"http://127.0.0.1:{port}/api/v1/server-info", timeout=5)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            finally:
                server.kill()


def test_a_team_works_through_the_server(tmp_path: Path) -> None:
    srv, laptop = tmp_path / "srv", tmp_path / "laptop"
    srv.mkdir()
    laptop.mkdir()
    assert _mloop("init", cwd=srv).returncode == 0
    admin = _token(_mloop("server", "token", "create", "--name", "admin", "--role", "admin",
                          cwd=srv))
    alice = _token(_mloop("server", "token", "create", "--name", "alice", "--role",
                          "writer", cwd=srv))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen([sys.executable, "-m", "mloop", "server", "--port", str(port)],
                              cwd=srv, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_up(url, server, tmp_path / "server.log")
        anonymous = httpx.post(f"{url}/api/v1/runs/newest_id", json={})
        assert anonymous.status_code == 401 and alice not in anonymous.text

        login = _mloop("login", url, cwd=laptop, stdin=alice + "\n")
        assert login.returncode == 0 and alice not in login.stdout + login.stderr
        init = _mloop("init", cwd=laptop, MLOOP_STORE_URI=url)
        assert "signed in as alice, role writer" in init.stdout, init.stdout + init.stderr
        (laptop / "train.py").write_text(TRAIN)
        train = subprocess.run([sys.executable, "train.py"], cwd=laptop, timeout=120,
                               env=_env(MLOOP_STORE_URI=url), capture_output=True, text=True)
        assert train.returncode == 0, train.stderr
        assert train.stdout.strip().splitlines()[-1].startswith("[")
        assert not (laptop / ".mloop" / "mloop.db").exists()  # nothing stored locally

        runs = _mloop("runs", "list", "--json", cwd=laptop, MLOOP_TRACKING_URI=url)
        (run,) = json.loads(runs.stdout)
        assert run["status"] == "FINISHED" and run["user"] == "alice"
        # a writer may not move an alias: an approver's move
        alias = _mloop("models", "alias", "iris-clf", "champion", "1", cwd=laptop,
                       MLOOP_STORE_URI=url)
        assert alias.returncode != 0 and "approver" in alias.stderr
        # the server's own view, with direct access to its store
        versions = _mloop("models", "versions", "iris-clf", "--json", cwd=srv)
        assert json.loads(versions.stdout)[0]["user"] == "alice"
        audit = _mloop("server", "audit", "--json", cwd=srv)
        actions = {(e["actor"], e["action"]) for e in json.loads(audit.stdout)}
        assert ("alice", "models.register") in actions
        assert admin not in audit.stdout + versions.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=30) == 0 or server.returncode == -signal.SIGTERM
        finally:
            server.kill()
            log.close()
