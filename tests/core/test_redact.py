"""core.redact: the one way secrets are hidden in errors, logs and recorded commands."""

import json
import logging
import re
import string
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from mloop.core.redact import (
    MASK,
    get_logger,
    holds_secret,
    is_secret_name,
    redact,
    redact_argv,
    url_origin,
)
from mloop.errors import ConfigError, InvalidInputError

# secrets as people write them: letters, digits and the punctuation of generated tokens
# and passwords (no white space or quotes, which end a value in free text; no '*', the
# mask itself)
TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~+/=!$%^()[]{}:@"
secrets = st.text(TOKEN_CHARS, min_size=6, max_size=40)
secret_names = st.sampled_from([
    "password", "passwd", "pwd", "PGPASSWORD", "MYSQL_PWD", "secret", "client_secret",
    "token", "access_token", "sessionToken", "api_key", "apiKey", "APIKEY", "x-api-key",
    "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "private_key", "privateKey", "auth",
    "authorization", "credentials", "db.password", "jwt", "X-Amz-Signature",
])
secret_flags = st.sampled_from([
    "--password", "--passwd", "--token", "--auth", "--access-key", "--secret-key",
    "--private-key", "--api-key", "--aws-secret-access-key", "--client-secret",
    "--credential", "--db-password", "--auth-token", "-p",
])


def _absent(secret: str, out: str, *context: str) -> None:
    # the secret could only "appear" by chance inside the text around it
    assume(not any(secret in c for c in context))
    assert secret not in out, out


# --- examples: the issue's forms -------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql+psycopg://bob:hunter2@db:5432/x", "postgresql+psycopg://bob:***@db:5432/x"),
    ("s3://KEY:SECRET@bucket/prefix", "s3://KEY:***@bucket/prefix"),
    ("https://user:pw@example.com/x", "https://user:***@example.com/x"),
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # a raw '@' in the password
    ("s3://KEY:SE/CR3T@bucket/p", "s3://KEY:***@bucket/p"),  # a raw '/' in it
    ("https://ghp_abc123@github.com/x", "https://***@github.com/x"),
    ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("GET /x?token=abc&page=2", "GET /x?token=***&page=2"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Signature=ab12&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/k?X-Amz-Signature=***&X-Amz-Expires=60"),
    ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/***"),
    ("https://discord.com/api/webhooks/12/abc", "https://discord.com/api/webhooks/***"),
    ("login failed (password=hunter2)", "login failed (password=***"),
    ("AWS_SECRET_ACCESS_KEY=abc AWS_REGION=eu-west-1",
     "AWS_SECRET_ACCESS_KEY=*** AWS_REGION=eu-west-1"),
    ('{"password": "two words", "user": "bob"}', '{"password": "***", "user": "bob"}'),
    ("{'token': 'abc'}", "{'token': '***'}"),
    ("user:bob:password=x", "user:bob:password=***"),
    ("Authorization: Bearer eyJhbGci.eyJzdWIi.sig", "Authorization: Bearer ***"),
    ("Authorization: Basic dXNlcjpwdw==", "Authorization: Basic ***"),
    ("sent Bearer abc.def-ghi to the server", "sent Bearer *** to the server"),
    ("token mloop_k3y1d_AbCdEfGh0123456789xyzXYZ ok", "token mloop_k3y1d_*** ok"),
])
def test_redact_hides_each_form(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize("text", [
    "tests pass: 3", "signature: 4 columns", "Unknown key: mni (did you mean min?)",
    "Column 'session_id' cannot be read as float64", "models:/churn@champion",
    "data:/train@2", "runs:/0191f/model", "https://example.com:8080/v2/models/churn/infer",
    "postgresql+psycopg://db:5432/x", "sqlite:////tmp/x.db", "http://h:8080/v2/m@champion",
    "ssh host:22", "a=1, b=2",
    "mloop_remote_credentials_upgrade_for_everyone", "--key-column id", "",
])
def test_redact_leaves_text_without_secrets_alone(text):
    assert redact(text) == text


def test_redact_argv_each_form_of_the_issue():
    argv = ["python", "train.py", "--db-url", "postgresql://u:pw@h/db",
            "https://user:pw@example.com/data.csv", "--access-key", "AK", "--private-key=PK",
            "-p", "pw1", "--auth", "x1", "--password", "pw2", "--token=tk", "--key", "col",
            "-p", "C=1", "--aws-secret-access-key", "sk", "-H", "Authorization: Bearer b1"]
    assert redact_argv(argv) == [
        "python", "train.py", "--db-url", "postgresql://u:***@h/db",
        "https://user:***@example.com/data.csv", "--access-key", MASK, f"--private-key={MASK}",
        "-p", MASK, "--auth", MASK, "--password", MASK, f"--token={MASK}", "--key", "col",
        "-p", "C=1", "--aws-secret-access-key", MASK, "-H", "Authorization: Bearer ***"]


def test_secret_names():
    for name in ("--password", "--access-key", "--private-key", "--auth", "-p", "apiKey",
                 "AWS_SECRET_ACCESS_KEY", "client_secret", "PGPASSWORD", "x-api-key"):
        assert is_secret_name(name), name
    for name in ("--key", "--key-column", "--db-url", "--token-file", "-P", "--port",
                 "tokenizer", "keys", "--author", "--passage"):
        assert not is_secret_name(name), name


def test_holds_secret_tells_a_user_name_from_a_password():
    assert holds_secret("postgresql://bob:pw@h/db") and holds_secret("x?token=1")
    assert holds_secret("password=x") and holds_secret("s3://K:S/S@b")
    assert not holds_secret("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert not holds_secret("s3://bucket/prefix") and not holds_secret("")


def test_url_origin_keeps_scheme_host_and_port_only():
    assert url_origin("https://u:pw@hooks.example.com:8443/T0/SECRET?t=1") == \
        "https://hooks.example.com:8443/…"
    assert url_origin("http://[::1]:9/x") == "http://[::1]:9/…"
    assert url_origin("no-scheme/secret") == "…"
    assert url_origin("http://h:notaport/SECRET") == "…"


def test_errors_redact_their_own_message():
    err = ConfigError("Cannot open postgresql://u:hunter2@h/db: refused (password=hunter2)")
    assert "hunter2" not in err.message and "hunter2" not in str(err)
    assert "hunter2" not in json.dumps(InvalidInputError("token=hunter2").to_dict())


def test_loggers_redact_messages_arguments_and_tracebacks(caplog):
    log = get_logger("mloop.test.redact")
    caplog.set_level(logging.DEBUG, logger="mloop.test.redact")
    secret = "hunter" + "2"  # never whole in a source line a traceback may quote
    log.warning("cannot reach %s (%s)", f"postgresql://u:{secret}@h/db", {"token": "tk-77"})
    try:
        raise RuntimeError(f"connect to redis://:{secret}@h failed")
    except RuntimeError:
        log.exception("round failed")
    assert "hunter2" not in caplog.text and "tk-77" not in caplog.text
    assert "postgresql://u:***@h/db" in caplog.text and "RuntimeError" in caplog.text
    assert get_logger("mloop.test.redact").filters == log.filters  # added once


def test_every_mloop_logger_redacts():
    """A module that logs through logging.getLogger would bypass the filter."""
    from pathlib import Path

    import mloop

    src = Path(mloop.__file__).parent
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if "logging.getLogger(" in p.read_text() and p.name != "redact.py"]
    assert offenders == []


# --- properties ------------------------------------------------------------------------

@given(secret=secrets, user=st.sampled_from(["u", "bob", "AKIAXYZ", ""]),
       scheme=st.sampled_from(["postgresql+psycopg", "s3", "https", "redis", "ftp"]))
@example(secret="p@ss:w@rd", user="u", scheme="postgresql")
def test_a_url_password_never_survives(secret, user, scheme):
    context = (f"Cannot open {scheme}://{user}:", "@db.example.com:5432/x: refused")
    raw_ok = "?" not in secret and "#" not in secret and not re.match(r"\d*/", secret)
    # '?' and '#' end a URL's authority; "h:8080/x" is a port and a path
    for form in (quote(secret, safe=""), secret.replace("/", "%2F"), *([secret] * raw_ok)):
        if "?" in form or "#" in form:
            continue
        text = f"{context[0]}{form}{context[1]}"
        _absent(secret, redact(text), *context)
        _absent(form, redact(text), *context)


@given(secret=st.text(TOKEN_CHARS.replace("&", "").replace("#", ""), min_size=6,
                      max_size=40), name=secret_names)
def test_a_secret_query_parameter_never_survives(secret, name):
    context = ("GET https://api.example.com/v1/x?page=2&", "=", "&limit=10 failed")
    text = f"{context[0]}{name}={secret}{context[2]}"
    _absent(secret, redact(text), *context, name)


@given(secret=secrets, name=secret_names, sep=st.sampled_from(["=", ": ", " = ", ":"]))
@example(secret="BEARER", name="password", sep="=")  # a scheme word only after Authorization
def test_a_secret_pair_never_survives(secret, name, sep):
    for text, context in [
        (f"login failed with {name}{sep}{secret} today", ("login failed with", "today")),
        (f"{name}{sep}'{secret} and more'", ()),
        (json.dumps({"user": "bob", name: secret + " x"}), ("user", "bob")),
        (repr({name: secret, "n": 1}), ()),
        (f"{name.upper()}={secret}", ()),
    ]:
        _absent(secret, redact(text), *context, name, name.upper())


@given(secret=st.text(min_size=1, max_size=40), flag=secret_flags,
       before=st.lists(st.sampled_from(["train.py", "--epochs", "3", "-v"]), max_size=3))
def test_a_secret_flag_never_survives_in_a_recorded_command(secret, flag, before):
    assume(not (flag == "-p" and "=" in secret))  # `-p NAME=VALUE` is a parameter
    context = ["python", *before, flag]
    # exactly the secret goes, whatever it holds; everything else stays
    assert redact_argv([*context, secret, "--out", "x"]) == [*context, MASK, "--out", "x"]
    assert redact_argv([*context[:-1], f"{flag}={secret}"]) == [*context[:-1], f"{flag}={MASK}"]


@given(token=st.text(string.ascii_letters + string.digits + "-._~+/", min_size=8,
                     max_size=60))
def test_a_bearer_token_never_survives(token):
    for text in (f"Authorization: Bearer {token}", f"header bearer {token} sent"):
        _absent(token, redact(text), "Authorization: Bearer", "header bearer", "sent")


@settings(max_examples=300)
@given(st.text())
@example("?password=#'")  # a query value and a pair that ended at different characters
@example("pw://password:////&@")  # masking a pair made a URL user-info
def test_redact_is_idempotent_on_any_text(text):
    once = redact(text)
    assert redact(once) == once


@given(secret=secrets, name=secret_names, flag=secret_flags)
def test_redact_is_idempotent_on_secrets(secret, name, flag):
    for text in (f"{name}={secret}", f"s3://k:{quote(secret, safe='')}@b/p",
                 f"x?{name}={secret}&y=1", f"{{'{name}': '{secret}'}}"):
        once = redact(text)
        assert redact(once) == once
    once = redact_argv([flag, secret])
    assert redact_argv(once) == once


# prose, numbers, benign URLs and key=value pairs whose names hold no secret
benign_words = st.sampled_from([
    "the", "run", "failed", "accuracy", "0.93", "rows:", "200", "alpha=0.1", "step=3",
    "models:/churn@champion", "data:/train@2", "https://example.com:8080/v2/models/x",
    "https://pypi.org/simple/?page=2&limit=10", "s3://bucket/prefix/file.csv",
    "/tmp/mloop/x.db", "(see", "mloop", "runs", "list)", "key:", "value", "tokenizer=bpe",
    "author:", "bob", "user=alice", "pass", "keys", "'quoted'", '"double"', "a,b;c",
    "port=5432", "sqlite:////tmp/x.db", "--epochs", "-v", "@scope/pkg", "x@y.org",
])


@given(st.lists(benign_words, max_size=20), st.sampled_from([" ", "\n", ", ", "\t"]))
def test_text_without_secrets_is_unchanged(words, sep):
    text = sep.join(words)
    assert redact(text) == text
    assert redact_argv(words) == words
