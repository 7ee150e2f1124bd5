"""One way to hide secrets in text mloop prints, logs or stores.

Every error message (``MloopError`` redacts its own), log line (loggers from
:func:`get_logger`) and recorded command line goes through :func:`redact` (free text) or
:func:`redact_argv` (a command line). What counts as a secret:

- the password of a URL's user-info (``postgresql://u:pw@h`` → ``postgresql://u:***@h``,
  ``s3://KEY:SECRET@bucket`` → ``s3://KEY:***@bucket``), and a user-info that is a lone
  token (``https://ghp_x@host`` → ``https://***@host``). Raw ``@`` and ``/`` in a
  password are covered (``?`` and ``#`` end a URL's authority: percent-encode them);
- the value of a query parameter whose name suggests a secret (``?token=…``,
  ``X-Amz-Signature=…``, ``api_key=…``);
- the path of a webhook URL (``https://hooks.slack.com/services/***``,
  ``…/api/webhooks/***``): webhook services put their secret there;
- ``name=value`` and ``name: value`` pairs in free text whose name suggests a secret
  (``password=hunter2``, ``AWS_SECRET_ACCESS_KEY=…``, ``"token": "…"`` in JSON or a
  Python repr, ``Authorization: Bearer …``). An unquoted value ends at white space, a
  quote, ``,``, ``;`` or ``&``; a quoted one at its closing quote;
- bearer tokens and mloop API tokens (``mloop_<id>_<secret>``) wherever they appear;
- on a command line, the value of any flag whose name suggests a secret, in both the
  ``--flag value`` and ``--flag=value`` forms (``--password``, ``--access-key``,
  ``--private-key``, ``--auth``, ``--token``, ``--credential``), and of ``-p`` (a
  password for mysql and friends) unless it is a ``name=value`` parameter.

The rule errs on the side of hiding: a flag named ``--keyring-path`` loses its value in
the record, which costs a little reproducibility and never a secret. :func:`redact` is
idempotent, and text with nothing secret-looking in it comes back unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

MASK = "***"

# words that mark a name as secret, matched as whole parts of a name split on - _ . or
# case changes ("accessKey" → access, key)
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "auth",
    "authorization", "credential", "credentials", "apikey", "sig", "signature", "cookie",
    "private", "bearer", "jwt", "dsn", "key",
})
# single words that prose uses as plain words ("tests pass: 3", "signature: 4 columns"):
# alone they mark a secret flag or query parameter, not a pair in free text
_PROSE_WORDS = frozenset({"pass", "sig", "signature", "private"})
# one-word compounds ("clientsecret", "AUTHTOKEN", "privatekey") end with one of these
_SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey", "accesskey",
                   "secretkey", "privatekey", "credential", "credentials")
# flags that are secret though no word says so
_SECRET_SHORT_FLAGS = frozenset({"-p"})
# names that contain a secret word but never hold a secret
_NOT_SECRET = frozenset({"key-column", "key_column", "keys", "primary-key", "sort-key",
                         "partition-key", "token-file", "tokens-file", "key-file",
                         "credentials-file", "pass-through"})
_AUTH_SCHEMES = "basic|bearer|token|digest|negotiate"

# each pattern starts where a token starts (look-behind), so that a long word costs one
# scan, not one per character
_URL_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/\s?#]*)@")
# "u:pa/ss@host": a raw '/' in the password ends the authority early; a digit-only part
# before the '/' is a port ("host:8080/x@y"), not a password. It runs to the last '@' of
# the token, so "u:p/w@h/x@y" hides up to "y": more than needed, never less
_URL_SLASHED_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s?#@:]*):"
    r"(?!\d+/)(?P<password>[^\s/]*/\S*)@")
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&#\s]+)=(?P<value>[^&#\s'\"]*)")
_WEBHOOK_PATH = re.compile(
    r"(?P<keep>https?://(?:(?:[^/\s?#@]*@)?hooks\.[^/\s?#]+/|[^/\s?#]+(?:/[^/\s?#]+)*?"
    r"/(?:hooks|webhooks?|webhookb2)/))(?P<path>[^\s?#'\"<>]+)", re.IGNORECASE)
_TEXT_PAIR = re.compile(
    r"(?P<nq>['\"]?)(?<![A-Za-z0-9_.\-])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P=nq)(?P<sep>\s*[=:]\s*)"
    r"(?:(?P<q>['\"])(?P<quoted>(?:\\.|(?!(?P=q))[^\\])*)(?P=q)"
    rf"|(?P<scheme>(?i:{_AUTH_SCHEMES})\s+)?(?P<bare>[^\s'\",;&]+))")
_BEARER = re.compile(r"\b(?P<scheme>[Bb]earer|BEARER)\s+(?P<token>[A-Za-z0-9._~+/\-]+=*)")
# an mloop token, also glued to other text (the id stays, the secret goes); the exact
# format of mloop.core.tokens needs no boundary, a looser one must start a word
_MLOOP_TOKEN = re.compile(r"(?P<keep>mloop_[0-9a-f]{12}_)(?P<secret>[0-9a-f]{64})"
                          r"|\b(?P<keep2>mloop_[A-Za-z0-9]+_)(?P<secret2>[A-Za-z0-9_\-]{20,})")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*=")
_WORD_SPLIT = re.compile(r"[-_.\s]+|(?<=[a-z0-9])(?=[A-Z])")


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
    if any(w in _SECRET_WORDS - {"key"} or w.endswith(_SECRET_ENDINGS) for w in words):
        return True
    # "key" alone is often a column or an id ("--key id"); qualified, it is a credential
    return "key" in words and len(words) > 1


def _userinfo(match: re.Match[str], *, lone: bool = True) -> str:
    info = match.group("info")
    if not info or info == MASK:
        return match.group(0)
    user, colon, _password = info.partition(":")
    if colon:
        return f"{match.group('scheme')}{user}:{MASK}@"
    # a lone token as user name (https://ghp_x@github.com); or a plain user name
    return f"{match.group('scheme')}{MASK}@" if lone else match.group(0)


def _query(match: re.Match[str]) -> str:
    if is_secret_name(match.group("name")) and match.group("value"):
        return f"{match.group('sep')}{match.group('name')}={MASK}"
    return match.group(0)


def _pairs(text: str) -> str:
    """Mask the values of secret pairs; a pair that is not secret is skipped only up to
    its separator, so ``user:bob:password=x`` still finds ``password=x``."""
    out: list[str] = []
    pos = 0
    while (match := _TEXT_PAIR.search(text, pos)) is not None:
        name = match.group("name")
        if is_secret_name(name) and name.lower() not in _PROSE_WORDS:
            out.append(text[pos:match.start()] + _pair(match))
            pos = match.end()
        else:
            out.append(text[pos:match.end("sep")])
            pos = match.end("sep")
    out.append(text[pos:])
    return "".join(out)


def _pair(match: re.Match[str]) -> str:
    head = f"{match.group('nq')}{match.group('name')}{match.group('nq')}{match.group('sep')}"
    quote = match.group("q")
    if quote is not None:
        value = match.group("quoted")
        return match.group(0) if value in ("", MASK) else f"{head}{quote}{MASK}{quote}"
    if match.group("bare") == MASK:
        return match.group(0)
    scheme = match.group("scheme") or ""
    if "auth" not in match.group("name").lower():
        scheme = ""  # "password=Bearer x": only an Authorization header has a scheme word
    return f"{head}{scheme}{MASK}"


def _mloop_token(match: re.Match[str]) -> str:
    if match.group("secret") is not None:
        return f"{match.group('keep')}{MASK}"
    secret = match.group("secret2")
    # a random secret has a digit or a capital; snake_case words (identifiers) have none
    if any(c.isdigit() or c.isupper() for c in secret):
        return f"{match.group('keep2')}{MASK}"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with URL passwords, secret query parameters, webhook paths, tokens and
    ``secret=value`` pairs replaced by ``***``. Idempotent; text without secrets comes
    back unchanged."""
    return _redact(text, lone=True)


def holds_secret(text: str) -> bool:
    """True when ``text`` holds something :func:`redact` hides, a lone user name in a URL
    (``postgresql://bob@host/db``) aside: for refusing secrets in files git shares."""
    return _redact(text, lone=False) != text


def _redact(text: str, *, lone: bool) -> str:
    # one pass can make a shape another rule knows ("pw://password:///@" → a URL with a
    # user-info once its pair is masked): repeat until nothing changes (two or three passes)
    for _ in range(8):
        done = _one_pass(text, lone=lone)
        if done == text:
            break
        text = done
    return text


def _one_pass(text: str, *, lone: bool) -> str:
    if not text:
        return text
    # first the password with a raw '/': it runs to the token's last '@'
    text = _URL_SLASHED_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@",
                                     text)
    text = _URL_USERINFO.sub(lambda m: _userinfo(m, lone=lone), text)
    text = _QUERY_PAIR.sub(_query, text)
    text = _WEBHOOK_PATH.sub(lambda m: f"{m.group('keep')}{MASK}", text)
    text = _pairs(text)
    text = _BEARER.sub(lambda m: f"{m.group('scheme')} {MASK}", text)
    return _MLOOP_TOKEN.sub(_mloop_token, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line safe to record: secret flags' values and URL secrets hidden."""
    out: list[str] = []
    hide_next: str | None = None
    for arg in argv:
        if hide_next is not None:
            # `-p C=1` is a parameter (mloop pipeline run); `-p hunter2` a password
            keep = hide_next == "-p" and _PARAM.match(arg) is not None
            out.append(redact(arg) if keep else MASK)
            hide_next = None
            continue
        if arg.startswith("-") and len(arg) > 1 and arg != "--":
            name, eq, _value = arg.partition("=")
            if is_secret_name(name):
                if eq:
                    out.append(f"{name}={MASK}")
                else:
                    out.append(arg)
                    hide_next = name
                continue
        out.append(redact(arg))
    return out


def url_origin(url: str) -> str:
    """Only the scheme, host and port of ``url`` (``https://hooks.example.com/…``), for
    URLs whose whole path may be a secret, such as a webhook's."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "…"
    if not parts.scheme or not host:
        return "…"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/…"


class RedactingFilter(logging.Filter):
    """Redacts a record's message (arguments merged in) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # the traceback's text holds the exception's message: format it redacted once
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` whose records are redacted; mloop's only way to log."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def filter_library_logger(name: str, noise: logging.Filter) -> None:
    """Add ``noise`` (once per filter class) to a library's own logger, e.g. to drop a
    message a dependency logs on every call; mloop itself logs through :func:`get_logger`."""
    logger = get_logger(name)
    if not any(type(f) is type(noise) for f in logger.filters):
        logger.addFilter(noise)
