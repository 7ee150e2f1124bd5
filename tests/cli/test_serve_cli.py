"""``mloop serve`` says what is wrong before it announces anything: a missing model, an
ONNX engine it cannot run, a port in use or a host not of this machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from sklearn.linear_model import LogisticRegression

import mloop

CLI = ("import sys; {setup}; from mloop.cli import main; main(sys.argv[1:])")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project with model ``m`` (version 1, alias champion, with an ONNX twin)."""
    root = tmp_path_factory.mktemp("serve") / "p"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(root.parent / "cfg"))
        project = mloop.init(root)
        import pandas as pd

        x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
        with mloop.start_run(project=project):
            mloop.log_model(LogisticRegression().fit(x, [0, 1, 0, 1]), input_example=x,
                            registered_name="m")
        mloop.set_alias("m", "champion", 1)
        project.close()
        mloop.set_project(None)
    return root


def _serve(root, *args, setup="pass", timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    env["XDG_CONFIG_HOME"] = str(root.parent / "cfg")
    return subprocess.run([sys.executable, "-c", CLI.format(setup=setup), "serve", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def _one_clean_line(out):
    assert "Serving" not in out.stderr, "announced before the check"
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize("ref", ["nope@champion", "m@nope", "m/7", "models:/nope/1"])
def test_a_missing_model_exits_3_before_announcing(served, ref):
    out = _serve(served, ref)
    assert out.returncode == 3, out.stderr
    _one_clean_line(out)


def test_a_port_in_use_exits_69_before_announcing(served):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _serve(served, "m@champion", "--port", str(port))
    assert out.returncode == 69, out.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in out.stderr
    _one_clean_line(out)


@pytest.mark.parametrize(("host", "says"), [("192.0.2.1", "not an address of this machine"),
                                            ("no-such-host.invalid", "resolves")])
def test_a_host_not_of_this_machine_exits_2(served, host, says):
    out = _serve(served, "m@champion", "--host", host)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr
    _one_clean_line(out)


def test_onnx_engine_without_onnxruntime_says_what_to_install(served):
    out = _serve(served, "m@champion", "--engine", "onnx",
                 setup="sys.modules['onnxruntime'] = None")  # as if not installed
    assert out.returncode == 2, out.stderr
    assert "pip install 'mloop[onnx]'" in out.stderr  # the brackets survive
    _one_clean_line(out)
