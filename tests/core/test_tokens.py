"""Bearer tokens: format, the token file (digests only), verification, roles, parsing."""

import hashlib
import json
import os
import re
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.core import tokens as T
from mloop.core.clock import now_ms
from mloop.errors import ConfigError, InvalidInputError, NotFoundError

FORMAT = re.compile(r"mloop_[0-9a-f]{12}_[0-9a-f]{64}")


@pytest.fixture
def file(tmp_path):
    return tmp_path / "tokens.jsonl"


def test_create_stores_the_hash_and_never_the_secret(file):
    token, record = T.create_token(file, "writer", name="labeller")
    assert FORMAT.fullmatch(token)
    token_id, secret = T.parse_token(token)
    assert len(bytes.fromhex(secret)) == 32 and record.id == token_id
    assert record.sha256 == hashlib.sha256(secret.encode()).hexdigest()
    text = file.read_text()
    assert secret not in text and token not in text
    (line,) = [json.loads(x) for x in text.splitlines() if not x.startswith("#")]
    assert line == {"id": token_id, "sha256": record.sha256, "role": "writer",
                    "name": "labeller", "created_ms": record.created_ms, "expires_ms": None}
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    other, _ = T.create_token(file, "reader")
    assert other != token and len(T.read_token_file(file)) == 2


def test_verify_good_wrong_unknown_and_expired(file):
    token, record = T.create_token(file, "predictor")
    records = T.read_token_file(file)
    assert T.check_token(records, token) == record
    token_id, secret = T.parse_token(token)
    wrong = f"mloop_{token_id}_{'0' * 64 if secret != '0' * 64 else '1' * 64}"
    unknown = f"mloop_{'a' * 12 if token_id != 'a' * 12 else 'b' * 12}_{secret}"
    for bad in (wrong, unknown):
        with pytest.raises(T.TokenError, match="not valid here") as caught:
            T.check_token(records, bad)
        assert secret not in str(caught.value) and caught.value.http_status == 401
    soon, rec = T.create_token(file, "writer", expires_ms=now_ms() + 60_000)
    records = T.read_token_file(file)
    assert T.check_token(records, soon) == rec
    with pytest.raises(T.TokenError, match=f"{rec.id} has expired"):
        T.check_token(records, soon, at_ms=rec.expires_ms)
    assert rec.expired(rec.expires_ms) and not rec.expired(rec.expires_ms - 1)


def test_digests_are_compared_in_constant_time_known_id_or_not(file, monkeypatch):
    token, record = T.create_token(file, "writer")
    records = T.read_token_file(file)
    calls = []
    real = T.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(T.hmac, "compare_digest", spy)
    T.check_token(records, token)
    with pytest.raises(T.TokenError):
        T.check_token(records, "mloop_" + "f" * 12 + "_" + "e" * 64)  # an unknown id
    assert len(calls) == 2 and calls[0][1] == record.sha256.encode()


def test_roles_are_ordered():
    assert T.role_allows("admin", "writer") and T.role_allows("writer", "predictor")
    assert T.role_allows("predictor", "reader") and T.role_allows("reader", "reader")
    assert not T.role_allows("predictor", "writer") and not T.role_allows("reader",
                                                                          "predictor")
    record = T.TokenRecord("a" * 12, "0" * 64, "reader", 0)
    with pytest.raises(T.ForbiddenError, match=r"'reader'.*needs 'writer'") as caught:
        T.authorize(record, "writer")
    assert caught.value.http_status == 403
    with pytest.raises(InvalidInputError, match="Unknown role 'root'"):
        T.new_token("root")


def test_revoke_and_a_running_server_sees_changes(file):
    first, rec1 = T.create_token(file, "writer")
    live = T.TokenFile(file)
    assert live.verify(first) == rec1
    second, rec2 = T.create_token(file, "reader")
    assert live.verify(second) == rec2  # created after the server started
    assert T.revoke_token(file, rec1.id.upper()) == rec1
    with pytest.raises(T.TokenError):
        live.verify(first)
    with pytest.raises(NotFoundError, match="No token"):
        T.revoke_token(file, rec1.id)
    file.unlink()  # gone: every token refused (fail closed)
    with pytest.raises(T.TokenError):
        live.verify(second)
    assert "No token file" in live.problem


def test_a_broken_token_file_is_a_clear_error_naming_the_line(file):
    with pytest.raises(ConfigError, match=r"No token file at .*mloop token create"):
        T.read_token_file(file)
    good = T.TokenRecord("a" * 12, "0" * 64, "writer", 1).to_dict()
    cases = {
        "not json\n": ":1: not a JSON object",
        "# comment\n\n[1]\n": ":3: a token line is a JSON object",
        json.dumps(good | {"secret": "x"}) + "\n": "unknown key(s) secret",
        json.dumps(good | {"role": "root"}) + "\n": "role (reader, predictor",
        json.dumps(good | {"sha256": "xyz"}) + "\n": "sha256 (64",
        json.dumps(good | {"expires_ms": True}) + "\n": "optionally expires_ms",
        (json.dumps(good) + "\n") * 2: ":2: token aaaaaaaaaaaa appears twice",
    }
    for text, message in cases.items():
        file.write_text(text)
        file.chmod(0o600)
        with pytest.raises(ConfigError, match=re.escape(message)):
            T.read_token_file(file)


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_token_file_others_may_change_is_refused(file):
    T.create_token(file, "writer")
    file.chmod(0o620)
    with pytest.raises(ConfigError, match=r"other users .*chmod 600"):
        T.read_token_file(file)
    file.chmod(0o644)  # readable is fine: it holds digests only
    assert len(T.read_token_file(file)) == 1


_MESSAGES = {"A token is text of the form mloop_<id>_<secret>.",
             "That is not an mloop token (mloop_<12 hex digits>_<64 hex digits>); create one "
             "with `mloop token create`."}


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.from_regex(r"mloop_[0-9a-fA-F_]{0,90}", fullmatch=True),
                 st.binary(), st.integers(), st.none()))
def test_the_parser_raises_only_its_error_and_never_repeats_the_text(text):
    parsed, message = _parse(text)
    if parsed is None:
        assert message in _MESSAGES
    else:
        assert FORMAT.fullmatch("mloop_{}_{}".format(*parsed))
        assert text.strip() == "mloop_{}_{}".format(*parsed)


def _parse(text):
    """(the parse, None) or (None, the error's message); any other exception escapes."""
    try:
        return T.parse_token(text), None
    except T.TokenError as exc:
        return None, exc.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_checking_arbitrary_text_raises_only_token_errors(text):
    records = {"a" * 12: T.TokenRecord("a" * 12, "0" * 64, "writer", 0)}
    with pytest.raises(T.TokenError):
        T.check_token(records, text)


def test_every_message_mloop_prints_hides_a_token_secret(file):
    from mloop.core.redact import redact, redact_argv

    token, record = T.create_token(file, "writer")
    for text in (f"token {token} end", f"Bearer {token}", f"x{token}", f"MLOOP_TOKEN={token}",
                 f"http://h/?t={token}"):
        hidden = redact(text)
        assert token[18:] not in hidden and redact(hidden) == hidden
    assert redact(f"sent {token}") == f"sent mloop_{record.id}_***"  # the id stays
    assert token[18:] not in " ".join(redact_argv(["mloop", "x", token]))
