"""The command line a run records hides every secret the issue found in it."""

import os
import subprocess
import sys

import pytest

import mloop

SCRIPT = """
import sys
import mloop
with mloop.start_run() as run:
    pass
print(run.id)
"""

FORMS = [  # (arguments, the secret, what must stay readable)
    (["--db-url", "postgresql://u:pw-S1@h/db"], "pw-S1", "postgresql://u:***@h/db"),
    (["--db-url=postgresql+psycopg://u:pw-S2@h:5432/db"], "pw-S2", "--db-url=postgresql"),
    (["https://user:pw-S3@example.com/data.csv"], "pw-S3", "https://user:***@example.com"),
    (["--access-key", "AK-S4"], "AK-S4", "--access-key '***'"),
    (["--private-key=PK-S5"], "PK-S5", "'--private-key=***'"),
    (["-p", "pw-S6"], "pw-S6", "-p '***'"),
    (["--auth", "x-S7"], "x-S7", "--auth '***'"),
    (["--password", "pw-S8"], "pw-S8", "--password '***'"),
    (["--token=tk-S9"], "tk-S9", "'--token=***'"),
    (["--aws-secret-access-key", "sk-S10"], "sk-S10", "--aws-secret-access-key '***'"),
    (["s3://KEY:sk-S11@bucket/prefix"], "sk-S11", "s3://KEY:***@bucket/prefix"),
    (["https://h/x?token=tk-S12&page=2"], "tk-S12", "page=2"),
    (["DB_PASSWORD=pw-S13"], "pw-S13", "DB_PASSWORD="),
    (["-H", "Authorization: Bearer tk-S14"], "tk-S14", "Authorization: Bearer ***"),
]


@pytest.fixture
def script(sqlite_project):
    path = sqlite_project.root / "train.py"
    path.write_text(SCRIPT)
    return path


def test_each_form_of_the_issue_is_hidden_in_the_recorded_command(script, sqlite_project):
    args = [a for form, _, _ in FORMS for a in form]
    env = {**os.environ, "MLOOP_PROJECT": str(sqlite_project.root)}
    out = subprocess.run([sys.executable, str(script), "--epochs", "3", *args],
                         cwd=sqlite_project.root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    command = mloop.get_run(out.stdout.strip().splitlines()[-1]).command
    assert "train.py --epochs 3" in command  # what is not secret stays
    for _, secret, kept in FORMS:
        assert secret not in command, (secret, command)
        assert kept in command, (kept, command)
    assert "-p C=1" in _command(["-p", "C=1"])  # a parameter, as `mloop pipeline run` has


def _command(args):
    from mloop.core.process import command_line

    saved = sys.orig_argv
    try:
        sys.orig_argv = ["python", "x.py", *args]
        return command_line()
    finally:
        sys.orig_argv = saved
