"""One way to hide secrets in text mloop prints, logs or stores.

Every error message, log line and recorded command line goes through :func:`redact`
(free text) or :func:`redact_argv` (a command line). What counts as a secret:

- the password of a URL's user-info (``postgresql://u:pw@h`` → ``postgresql://u:***@h``,
  ``s3://KEY:SECRET@bucket`` → ``s3://KEY:***@bucket``), and a user-info that is a lone
  token (``https://ghp_x@host`` → ``https://***@host``);
- the value of a query parameter whose name suggests a secret (``?token=…``,
  ``X-Amz-Signature=…``, ``api_key=…``);
- ``name=value`` and ``name: value`` pairs in free text whose name suggests a secret
  (``password=hunter2``, ``AWS_SECRET_ACCESS_KEY=…``);
- the secret part of an mloop bearer token (``mloop_<id>_<secret>`` → ``mloop_<id>_***``);
- on a command line, the value of any flag whose name suggests a secret, in both the
  ``--flag value`` and ``--flag=value`` forms (``--password``, ``--access-key``,
  ``--private-key``, ``--auth``, ``--token``, ``-p``).

The rule errs on the side of hiding: a flag named ``--keyring-path`` loses its value in
the record, which costs a little reproducibility and never a secret.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"

# words that mark a name as secret, matched as whole parts of a name split on - _ . or
# case changes ("accessKey" → access, key)
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "auth",
    "authorization", "credential", "credentials", "apikey", "sig", "signature", "cookie",
    "session", "private", "bearer", "key",
})
# flags that are secret though no word says so
_SECRET_SHORT_FLAGS = frozenset({"-p"})
# names that contain a secret word but never hold a secret
_NOT_SECRET = frozenset({"key-column", "key_column", "keys", "primary-key", "sort-key",
                         "partition-key", "token-file", "tokens-file", "key-file",
                         "credentials-file", "pass-through"})

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/\s@?#]*)@")
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&#\s]+)=(?P<value>[^&#\s]*)")
_TEXT_PAIR = re.compile(
    r"(?P<name>\b[A-Za-z][A-Za-z0-9_.\-]*)(?P<sep>\s*[=:]\s*)(?P<quote>['\"]?)"
    r"(?P<value>[^\s'\",;&]+)")
_WORD_SPLIT = re.compile(r"[-_.\s]+|(?<=[a-z0-9])(?=[A-Z])")
# an mloop bearer token (mloop.core.tokens) anywhere: its id stays, its secret goes
_MLOOP_TOKEN = re.compile(r"(mloop_[0-9a-f]{12}_)[0-9a-f]{64}")


def is_secret_name(name: str) -> bool:
    """True when a flag, variable or parameter named ``name`` probably holds a secret."""
    bare = name.lstrip("-")
    if bare.lower() in _NOT_SECRET:
        return False
    if name in _SECRET_SHORT_FLAGS:
        return True
    words = [w.lower() for w in _WORD_SPLIT.split(bare) if w]
    if not words:
        return False
    if any(w in _SECRET_WORDS - {"key"} for w in words):
        return True
    # "key" alone is often a column or an id ("--key id"); qualified, it is a credential
    return ("key" in words and len(words) > 1) or bare.lower().endswith(("apikey", "secretkey"))


def _userinfo(match: re.Match[str]) -> str:
    info = match.group("info")
    if not info:
        return match.group(0)
    user, colon, _password = info.partition(":")
    if colon:
        return f"{match.group('scheme')}{user}:{MASK}@"
    return f"{match.group('scheme')}{MASK}@"  # a lone token as user name


def _query(match: re.Match[str]) -> str:
    if is_secret_name(match.group("name")) and match.group("value"):
        return f"{match.group('sep')}{match.group('name')}={MASK}"
    return match.group(0)


def _pair(match: re.Match[str]) -> str:
    if is_secret_name(match.group("name")) and match.group("value") != MASK:
        return f"{match.group('name')}{match.group('sep')}{match.group('quote')}{MASK}"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with URL passwords, secret query parameters and ``secret=value`` pairs
    replaced by ``***``. Idempotent; text without secrets comes back unchanged."""
    if not text:
        return text
    text = _MLOOP_TOKEN.sub(rf"\g<1>{MASK}", text)
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _QUERY_PAIR.sub(_query, text)
    return _TEXT_PAIR.sub(_pair, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line safe to record: secret flags' values and URL secrets hidden."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-") and len(arg) > 1 and arg != "--":
            name, eq, _value = arg.partition("=")
            if is_secret_name(name):
                if eq:
                    out.append(f"{name}={MASK}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(redact(arg))
    return out
