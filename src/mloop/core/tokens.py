"""Bearer tokens: one scheme for every mloop server (``mloop serve`` now, later ones too).

A token is ``mloop_<id>_<secret>``: ``id`` is 12 hex digits (not secret: it names the
token in listings, logs and revocations), ``secret`` is 32 random bytes as 64 hex digits.
The server keeps only the id, the SHA-256 of the secret, a role and an expiry, in a token
file of JSON lines (one token per line, never the secret)::

    {"id": "3f9c0a1b2d4e", "sha256": "…64 hex…", "role": "writer", "name": "labeller",
     "created_ms": 1767225600000, "expires_ms": 1769817600000}

A presented token is checked by hashing its secret and comparing digests in constant time
(:func:`hmac.compare_digest`), also when the id is unknown, so timing tells nothing. No
message, log line or response ever contains a token: errors say *what* is wrong, and at
most name the token's id.

Roles are ordered; each allows what the ones before it do: ``reader`` (metadata and
reads) < ``predictor`` (inference) < ``writer`` (feedback and other writes) < ``approver``
(approve versions, move protected aliases, deploy) < ``admin`` (tokens, settings).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mloop.core.clock import now_ms
from mloop.core.identity import ROLES
from mloop.core.paths import write_private
from mloop.errors import (
    ConfigError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TokenError,
)

PREFIX = "mloop_"
ID_HEX = 12
SECRET_BYTES = 32
ENV_FILE = "MLOOP_SERVE_TOKENS"  # the setting serve_tokens: where a server's tokens live

_TOKEN = re.compile(rf"mloop_([0-9a-f]{{{ID_HEX}}})_([0-9a-f]{{{SECRET_BYTES * 2}}})")
_ID = re.compile(rf"[0-9a-f]{{{ID_HEX}}}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# compared against when the id is unknown, so a miss costs what a hit costs
_DUMMY = hashlib.sha256(b"mloop: no such token").hexdigest()


def role_allows(have: str, need: str) -> bool:
    """True when a token of role ``have`` may do what ``need`` requires."""
    return ROLES.index(have) >= ROLES.index(need)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    return role


def digest(secret: str) -> str:
    """The SHA-256 (hex) of a token's secret part: what the token file keeps."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse_token(text: str) -> tuple[str, str]:
    """``(id, secret)`` of ``text``; :class:`TokenError` (and nothing else) when it is not
    a token. The message never repeats the text."""
    if not isinstance(text, str):
        raise TokenError("A token is text of the form mloop_<id>_<secret>.")
    match = _TOKEN.fullmatch(text.strip())
    if match is None:
        raise TokenError("That is not an mloop token (mloop_<12 hex digits>_<64 hex "
                         "digits>); create one with `mloop token create`.")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class TokenRecord:
    """One line of a token file: everything about a token except its secret."""

    id: str
    sha256: str
    role: str
    created_ms: int
    expires_ms: int | None = None
    name: str | None = None

    def expired(self, at_ms: int | None = None) -> bool:
        return self.expires_ms is not None and (at_ms or now_ms()) >= self.expires_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TokenRecord:
        """A record from one parsed line; :class:`ConfigError` naming ``where`` otherwise."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a token line is a JSON object.")
        unknown = set(data) - {"id", "sha256", "role", "created_ms", "expires_ms", "name"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.")
        ok = (isinstance(data.get("id"), str) and _ID.fullmatch(data["id"])
              and isinstance(data.get("sha256"), str) and _DIGEST.fullmatch(data["sha256"])
              and data.get("role") in ROLES
              and _is_int(data.get("created_ms"))
              and (data.get("expires_ms") is None or _is_int(data["expires_ms"]))
              and (data.get("name") is None or isinstance(data["name"], str)))
        if not ok:
            raise ConfigError(f"{where}: a token line needs id (12 hex digits), sha256 (64 "
                              f"hex digits), role ({', '.join(ROLES)}), created_ms and "
                              "optionally expires_ms and name.")
        return cls(data["id"], data["sha256"], data["role"], data["created_ms"],
                   data.get("expires_ms"), data.get("name"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_token(role: str, *, expires_ms: int | None = None, name: str | None = None
              ) -> tuple[str, TokenRecord]:
    """A fresh token and its record; the token is shown once and stored nowhere."""
    _check_role(role)
    token_id = secrets.token_hex(ID_HEX // 2)
    secret = secrets.token_hex(SECRET_BYTES)
    record = TokenRecord(token_id, digest(secret), role, now_ms(), expires_ms, name)
    return f"{PREFIX}{token_id}_{secret}", record


def read_token_file(path: Path) -> dict[str, TokenRecord]:
    """The records of a token file by id. Refused when others may write to it (whoever
    can write it can let themselves in); errors name the line."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"No token file at {path}: create it with `mloop token create "
                          f"--role writer --file {path}`.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the token file {path}: {exc}.") from None
    if os.name == "posix" and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{path} can be changed by other users (mode "
                          f"{stat.S_IMODE(st.st_mode):o}), who could add tokens. Run "
                          f"`chmod 600 {path}`.")
    records: dict[str, TokenRecord] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{where}: not a JSON object (one token per line).") from None
        record = TokenRecord.from_dict(data, where)
        if record.id in records:
            raise ConfigError(f"{where}: token {record.id} appears twice.")
        records[record.id] = record
    return records


_HEADER = ("# mloop tokens: one JSON object per line (id, SHA-256 of the secret, role, "
           "expiry).\n# No secret is kept here. Manage with `mloop token create|list|"
           "revoke`.\n")


def write_token_file(path: Path, records: dict[str, TokenRecord]) -> None:
    """Rewrite the token file atomically (temp file, mode 0600, fsync, rename)."""
    write_private(path, _HEADER + "".join(json.dumps(record.to_dict(), sort_keys=True) + "\n"
                                          for record in records.values()))


def create_token(path: Path, role: str, *, expires_ms: int | None = None,
                 name: str | None = None) -> tuple[str, TokenRecord]:
    """Add a new token to the file at ``path`` (created when missing); returns the token
    (to show once) and its record."""
    _check_role(role)
    records = read_token_file(path) if path.exists() else {}
    while True:
        token, record = new_token(role, expires_ms=expires_ms, name=name)
        if record.id not in records:  # 48 random bits: a clash is rare, never a merge
            break
    records[record.id] = record
    write_token_file(path, records)
    return token, record


def revoke_token(path: Path, token_id: str) -> TokenRecord:
    """Remove the token ``token_id`` from the file; a server refuses it from then on."""
    records = read_token_file(path)
    record = records.pop(token_id.strip().lower(), None)
    if record is None:
        raise NotFoundError(f"No token {token_id!r} in {path}; see `mloop token list "
                            f"--file {path}`.")
    write_token_file(path, records)
    return record


def check_token(records: dict[str, TokenRecord], token: str,
                at_ms: int | None = None) -> TokenRecord:
    """The record of a valid ``token``; :class:`TokenError` when it is malformed, unknown,
    wrong or expired. Digests are compared in constant time."""
    token_id, secret = parse_token(token)
    record = records.get(token_id)
    presented = digest(secret)
    matches = hmac.compare_digest(presented.encode(), (record.sha256 if record is not None
                                                       else _DUMMY).encode())
    if record is None or not matches:
        raise TokenError("The token is not valid here (unknown or wrong); ask for a new "
                         "one.")
    if record.expired(at_ms):
        raise TokenError(f"The token {record.id} has expired; create a new one with "
                         "`mloop token create`.")
    return record


class TokenFile:
    """The tokens of one file for a running server: re-read when the file changes, so a
    token created or revoked takes effect at the next request. A file that disappears or
    breaks refuses every token (fail closed) until it is fixed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._records = read_token_file(self.path)  # a bad file stops the server starting
        self._stamp = self._stat()
        self.problem: str | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _current(self) -> dict[str, TokenRecord]:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._records = read_token_file(self.path)
                self.problem = None
            except ConfigError as exc:
                self._records, self.problem = {}, exc.message
        return self._records

    def verify(self, token: str, at_ms: int | None = None) -> TokenRecord:
        """The record of ``token``; :class:`TokenError` otherwise."""
        return check_token(self._current(), token, at_ms)


def authorize(record: TokenRecord, need: str) -> None:
    """:class:`ForbiddenError` unless the token's role allows ``need``."""
    if not role_allows(record.role, need):
        raise ForbiddenError(f"Token {record.id} has the role {record.role!r}; this needs "
                             f"{need!r} or above. Create one with `mloop token create "
                             f"--role {need}`.")
