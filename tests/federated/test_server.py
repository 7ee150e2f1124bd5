"""The federation server over real HTTP(S): what a caller gets wrong is a 4xx for that
caller only, tokens and client certificates are checked, and training still finishes."""

from __future__ import annotations

import datetime
import http.client
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mloop.federated as fl
from mloop.errors import TokenError
from mloop.federated import arrays
from mloop.federated.server import Access, Listen
from mloop.federated.service import Federation
from tests.federated import toy

TOKEN = "s3cret-token-of-the-federation"
SITE_TOKEN = "token-for-site-a-only-1234"


class Served:
    """A federation served in a thread on a free port; ``result`` once it ends."""

    def __init__(self, rounds: int = 1, min_clients: int = 2, listen: Listen | None = None,
                 max_upload: int = 1 << 20, tokens: list[str] | None = None,
                 secure: bool = False, round_timeout: float = 30.0,
                 stale_after: float = 90.0) -> None:
        strategy = fl.FedAvg(min_fit_clients=min_clients, min_available_clients=min_clients,
                             fraction_evaluate=0.0)
        self.federation = Federation.build(strategy, rounds=rounds, n_clients=min_clients,
                                           wait_timeout=60, round_timeout=round_timeout,
                                           initial_weights=toy.Toward(0).get_weights(),
                                           secure=secure)
        self.federation.coordinator.settings.stale_after = stale_after
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        base = listen or Listen()
        self.listen = Listen(sock=self.sock, tls_cert=base.tls_cert, tls_key=base.tls_key,
                             tls_ca=base.tls_ca)
        self.result: Any = None
        specs = [TOKEN, f"site-a={SITE_TOKEN}"] if tokens is None else tokens
        self.access = Access.parse(specs, certificates_only=bool(base.tls_ca))
        self.thread = threading.Thread(target=self._run, args=(max_upload,), daemon=True)
        self.thread.start()

    def _run(self, max_upload: int) -> None:
        try:
            self.result = self.federation.serve(self.access, listen=self.listen,
                                                max_upload=max_upload)
        except BaseException as exc:  # the test reads it
            self.result = exc

    def finish(self, clients: list[threading.Thread], timeout: float = 60) -> Any:
        """Wait for the federation and its client threads to end; its history."""
        self.thread.join(timeout=timeout)
        for t in clients:
            t.join(timeout=10)
        assert not isinstance(self.result, BaseException), self.result
        assert self.result is not None, "the federation did not finish in time"
        return self.result

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data
        return response.status, dict(response.getheaders()), parsed


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served(rounds=len(BAD_ANSWERS))
    yield server
    server.thread.join(timeout=60)


def _auth(token: str = TOKEN, session: str = "") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-FL-Session": session,
            "Content-Type": "application/json"}


def _clients(port: int, n: int = 2, scheme: str = "http", **kw: Any
             ) -> list[threading.Thread]:
    threads = []
    for cid in range(n):
        t = threading.Thread(target=fl.run_client,
                             args=(toy.Toward(cid), f"{scheme}://127.0.0.1:{port}"),
                             kwargs={"token": TOKEN, "name": f"site-{cid}", "retry_for": 5,
                                     **kw}, daemon=True)  # kw may replace the token
        t.start()
        threads.append(t)
    return threads


def test_every_caller_mistake_is_a_4xx_and_training_still_finishes(served: Served) -> None:
    status, headers, body = served.request("POST", "/fl/v1/join", b"{}", {})
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert served.request("POST", "/fl/v1/join", b"{}", _auth("wrong-token-wrong-token"))[0] == 401
    status, _, body = served.request("POST", "/fl/v1/join", b'{"name": "site-b"}',
                                     _auth(SITE_TOKEN))
    assert status == 401 and "another client" in body["error"]["message"]
    assert served.request("POST", "/fl/v1/join", b"{not json", _auth())[0] == 400
    status, _, body = served.request("POST", "/fl/v1/join", b'{"name": "../etc"}', _auth())
    assert status == 422 and "not valid" in body["error"]["message"]
    status, _, joined = served.request("POST", "/fl/v1/join", b'{"properties": {}}',
                                       _auth(SITE_TOKEN))
    assert status == 200 and joined["client"] == "site-a"
    session = joined["session"]
    status, _, body = served.request("GET", "/fl/v1/task?client=site-a&wait=0", None,
                                     _auth(session="forged"))
    assert status == 401 and "session" in body["error"]["message"]
    status, _, task = served.request("GET", "/fl/v1/task?client=site-a&wait=0", None,
                                     _auth(session=session))
    assert status == 200 and task["kind"] == "wait"
    status, _, body = served.request("POST", "/fl/v1/result/99-fit?client=site-a", b"{}",
                                     _auth(session=session))
    assert status == 409  # no such task open: refused before the body is read
    assert served.request("GET", "/fl/v1/weights/77", None, _auth())[0] == 404
    assert served.request("GET", "/fl/v1/weights/abc", None, _auth())[0] == 422
    status, _, health = served.request("GET", "/fl/v1/health")
    assert status == 200 and health["clients"] == 1 and not health["finished"]
    threads = _clients(served.port, n=1)  # site-0 answers honestly; the rounds start
    seen = ""
    for bad in BAD_ANSWERS:  # one round each: site-a's answer is refused, the round goes on
        status, _, task = served.request("GET", f"/fl/v1/task?client=site-a&after={seen}"
                                         "&wait=30", None, _auth(session=session))
        assert status == 200 and task["kind"] == "fit", task
        seen = task["task"]
        path = f"/fl/v1/result/{seen}?client=site-a"
        content_type, body, want = bad
        headers = {**_auth(session=session), "Content-Type": content_type}
        status, _, answer = served.request("POST", path, body, headers)
        assert status == want, (bad, answer)
    history = served.finish(threads, timeout=90)
    assert len(history.rounds) == len(BAD_ANSWERS)
    for record, bad in zip(history.rounds, BAD_ANSWERS, strict=True):
        assert record.answered == ["site-0"]
        (failure,) = record.failures
        assert failure.client == "site-a"
        assert failure.reason.startswith("rejected:"), (bad[:2], failure.reason)
    assert np.isfinite(history.weights[0]).all()
    np.testing.assert_allclose(history.weights[0], 0.0)  # site-0 pulls toward 0 only


def _npz(weights: list[np.ndarray], meta: dict[str, Any]) -> bytes:
    return arrays.encode(weights, meta)


def _compressed() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, w0=np.zeros((3, 2)), w1=np.zeros(2))
    return buf.getvalue()


_RIGHT = [np.zeros((3, 2)), np.zeros(2)]
NPZ, JSON_ = "application/x-npz", "application/json"
BAD_ANSWERS: list[Any] = [
    ("text/plain", b"x", 400),
    (JSON_, b'{"a": 1, "b": 2, "c": 3}', 422),                   # JSON where weights belong
    (JSON_, b"[[1, 2], {\"num_examples\": 1}]", 422),
    (NPZ, _npz(_RIGHT, {"num_examples": float("inf")}), 422),
    (NPZ, _npz(_RIGHT, {"num_examples": 10**30}), 422),
    (NPZ, _npz(_RIGHT, {"num_examples": 5, "metrics": [1, 2, 3]}), 422),
    (NPZ, _npz(_RIGHT, {"num_examples": 5,
                        "metrics": dict.fromkeys(map(str, range(99)), 1)}), 422),
    (NPZ, _npz([np.zeros(7)], {"num_examples": 5}), 422),
    (NPZ, _npz([np.zeros((3, 2)), np.array([np.nan, 0])], {"num_examples": 5}), 422),
    (NPZ, _compressed(), 422),                                     # a deflate bomb's shape
    (NPZ, b"\0" * (2 << 20), 413),                                 # over the upload limit
]


def _certs(folder: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def make(name: str, issuer: Any, issuer_key: Any, *, ca: bool = False,
             ip: bool = False) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer is not None else subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ip:
            import ipaddress

            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())
        return cert, key

    ca, ca_key = make("mloop test CA", None, None, ca=True)
    files: dict[str, str] = {}
    for label, (cert, key) in {"ca": (ca, ca_key),
                               "server": make("server", ca, ca_key, ip=True),
                               "client": make("site", ca, ca_key)}.items():
        (folder / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{label}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        files[label] = str(folder / f"{label}.pem")
        files[f"{label}_key"] = str(folder / f"{label}.key")
    return files


def test_https_with_client_certificates_and_tokens(tmp_path: Path) -> None:
    files = _certs(tmp_path)
    served = Served(listen=Listen(tls_cert=files["server"], tls_key=files["server_key"],
                                  tls_ca=files["ca"]))
    url = f"https://127.0.0.1:{served.port}"
    tls = {"ca": files["ca"], "cert": files["client"], "key": files["client_key"]}
    with pytest.raises(TokenError, match="refused this client"):
        fl.run_client(toy.Toward(0), url, token="not-the-token-of-this-fed", retry_for=5, **tls)
    with pytest.raises(ConnectionError, match="cannot be reached"):
        fl.run_client(toy.Toward(0), url, token=TOKEN, ca=files["ca"], retry_for=0.5)
    with pytest.raises(ConnectionError, match="cannot be reached"):  # a server it can't trust
        fl.run_client(toy.Toward(0), url, token=TOKEN, retry_for=0.5,
                      cert=files["client"], key=files["client_key"])
    threads = _clients(served.port, scheme="https", **tls)
    assert served.finish(threads).rounds[0].answered == ["site-0", "site-1"]


def test_a_client_that_restarts_mid_round_is_a_failure_then_takes_part_again() -> None:
    served = Served(rounds=2)
    # a real client whose name comes from its NAME=SECRET token (no --name given)
    url = f"http://127.0.0.1:{served.port}"
    threads = [threading.Thread(target=fl.run_client, args=(toy.Toward(4), url),
                                kwargs={"token": f"site-a={SITE_TOKEN}", "retry_for": 5},
                                daemon=True)]
    status, _, joined = served.request("POST", "/fl/v1/join", b'{"name": "raw"}', _auth())
    first = joined["session"]
    threads[0].start()
    status, _, task = served.request("GET", "/fl/v1/task?client=raw&wait=30", None,
                                     _auth(session=first))
    assert task["kind"] == "fit"
    status, _, joined = served.request("POST", "/fl/v1/join", b'{"name": "raw"}', _auth())
    second = joined["session"]  # restarted: the old session's task fails at once
    status, _, body = served.request("GET", "/fl/v1/task?client=raw&wait=0", None,
                                     _auth(session=first))
    assert status == 401 and "session" in body["error"]["message"]
    status, _, task = served.request("GET", "/fl/v1/task?client=raw&wait=30", None,
                                     _auth(session=second))
    assert task["kind"] == "fit" and task["round"] == 2
    weights, _ = arrays.decode(served.request("GET", f"/fl/v1/weights/{task['version']}",
                                              None, _auth())[2])
    body = arrays.encode([np.zeros_like(w) for w in weights], {"num_examples": 3})
    status, _, _ = served.request("POST", f"/fl/v1/result/{task['task']}?client=raw", body,
                                  {**_auth(session=second), "Content-Type": "application/x-npz"})
    assert status == 200
    history = served.finish(threads)
    first_round, second_round = history.rounds
    assert first_round.answered == ["site-a"]
    assert "joined again" in first_round.failures[0].reason
    assert second_round.answered == ["raw", "site-a"]


def test_client_certificates_alone_admit_clients(tmp_path: Path) -> None:
    files = _certs(tmp_path)
    served = Served(listen=Listen(tls_cert=files["server"], tls_key=files["server_key"],
                                  tls_ca=files["ca"]), tokens=[])
    tls = {"ca": files["ca"], "cert": files["client"], "key": files["client_key"]}
    threads = _clients(served.port, scheme="https", token="", **tls)
    assert served.finish(threads).rounds[0].answered == ["site-0", "site-1"]


@pytest.mark.parametrize("step", ["advertise", "share", "masked", "unmask"])
def test_a_client_lying_in_secure_aggregation_cannot_crash_the_server(step: str) -> None:
    served = Served(rounds=1, min_clients=3, secure=True)
    status, _, joined = served.request("POST", "/fl/v1/join", b'{"name": "liar"}', _auth())
    session, seen = joined["session"], ""
    threads = _clients(served.port, n=2)
    garbage = {"advertise": b'{"c_pk": "\\u00b2", "\\u00b2": 1}', "share": b'{"\\u00b2": "AAAA"}',
               "unmask": b'{"b": {"1": "AAAA"}, "sk": {"\\u00b2": "x"}}'}
    while True:  # play the protocol honestly until the step where the liar lies
        status, _, task = served.request("GET", f"/fl/v1/task?client=liar&after={seen}"
                                         "&wait=30", None, _auth(session=session))
        if task["kind"] in ("done", "wait"):
            break
        seen = task["task"]
        kind = "masked" if task["kind"] == "fit" else task.get("step")
        path = f"/fl/v1/result/{seen}?client=liar"
        if kind == step:
            body, ctype = (arrays.encode([np.zeros(3, np.uint64)]), "application/x-npz") \
                if step == "masked" else (garbage[step], "application/json")
            status, _, _ = served.request("POST", path, body,
                                          {**_auth(session=session), "Content-Type": ctype})
            assert status in (200, 422)  # refused now, or by the protocol's own checks
            continue
        from mloop.federated import secagg
        if kind == "advertise":
            liar = secagg.SecAggClient(task["index"], task["round_id"], task["threshold"])
            answer = secagg.to_json(liar.advertise())
        elif kind == "share":
            answer = secagg.to_json(liar.share_keys(secagg.from_json(task["public_keys"])))
        elif kind == "masked":
            size = 6 + 2
            vector = secagg.encode(np.zeros(size), 24, summands=3)
            masked = liar.mask(vector, secagg.from_json(task["ciphertexts"]))
            served.request("POST", path, arrays.encode([masked], {"metrics": {}}),
                           {**_auth(session=session), "Content-Type": "application/x-npz"})
            continue
        else:
            answer = secagg.to_json(liar.unmask(task["survivors"], task["dropped"]))
        served.request("POST", path, json.dumps(answer).encode(), _auth(session=session))
    history = served.finish(threads)
    (record,) = history.rounds
    assert any(f.client == "liar" and "rejected" in f.reason for f in record.failures), \
        record.failures
    if step != "unmask":  # lying before the sum leaves the honest pair's secure average
        assert record.answered == ["site-0", "site-1"]
        np.testing.assert_allclose(history.weights[0], 0.25, atol=1e-6)


def test_a_client_cut_off_mid_upload_then_silent_holds_nothing_up() -> None:
    served = Served(rounds=1, round_timeout=60, stale_after=1.5)
    _, _, joined = served.request("POST", "/fl/v1/join", b'{"name": "cut"}', _auth())
    session = joined["session"]
    threads = _clients(served.port, n=1)
    _, _, task = served.request("GET", "/fl/v1/task?client=cut&wait=30", None,
                                     _auth(session=session))
    raw = socket.create_connection(("127.0.0.1", served.port))
    raw.sendall(f"POST /fl/v1/result/{task['task']}?client=cut HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {TOKEN}\r\nX-FL-Session: {session}\r\n"
                "Content-Type: application/x-npz\r\nContent-Length: 100000\r\n\r\nPK"
                .encode())
    raw.close()  # then silence: no poll, no heartbeat — dropped after 1.5 s, not 60
    history = served.finish(threads)
    (first,) = history.rounds
    assert first.answered == ["site-0"]
    assert "not heard from" in first.failures[0].reason
    assert first.seconds < 30  # not the round's 60 s timeout
