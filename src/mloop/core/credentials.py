"""The user's credentials file: secrets kept outside every project and store.

``~/.config/mloop/credentials.toml`` (``$XDG_CONFIG_HOME/mloop/credentials.toml``), mode
0600, holds one table per thing that needs a secret, keyed by kind and name::

    [servers."http://127.0.0.1:8080"]      # a token for an mloop server (by URL)
    token = "mloop_…"

    [remotes.backup]                       # storage options of a data remote
    key = "AKIA…"
    secret = "…"

Nothing here is ever written to the metadata store, a log or a project file. The file is
written atomically with mode 0600, and refused when group or others can read it (as ssh
refuses a private key anyone can read): fix it with ``chmod 600``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from mloop.core.paths import write_private
from mloop.errors import ConfigError

FILE_NAME = "credentials.toml"
TOKEN_ENV = "MLOOP_TOKEN"


def credentials_path() -> Path:
    from mloop.core.settings import user_config_dir

    return user_config_dir() / FILE_NAME


def load_credentials(path: Path | None = None) -> dict[str, Any]:
    """Every table of the credentials file (empty when there is none)."""
    path = path or credentials_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} can be read by other users (mode "
                          f"{stat.S_IMODE(st.st_mode):o}); it holds secrets. Run "
                          f"`chmod 600 {path}` and try again.")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # the message of a TOML error can quote the line, and the line holds a secret
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise ConfigError(f"{path} is not valid TOML{where}. Fix the file.") from None


def get_credentials(kind: str, name: str, path: Path | None = None) -> dict[str, Any]:
    """The table ``[kind."name"]`` (empty when absent)."""
    table = load_credentials(path).get(kind, {})
    entry = table.get(name, {}) if isinstance(table, dict) else {}
    return dict(entry) if isinstance(entry, dict) else {}


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() \
        else _toml_str(key)


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    raise ConfigError(f"A credential must be text, a number or a boolean, not "
                      f"{type(value).__name__}.")


def dumps(data: dict[str, Any]) -> str:
    """TOML text of ``{kind: {name: {key: value}}}`` (the only shape this file holds)."""
    lines = ["# mloop credentials: keep this file private (mode 0600); never commit it.", ""]
    for kind in sorted(data):
        for name in sorted(data[kind]):
            lines.append(f"[{_toml_key(kind)}.{_toml_str(name)}]")
            for key, value in sorted(data[kind][name].items()):
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
            lines.append("")
    return "\n".join(lines)


def set_credentials(kind: str, name: str, values: dict[str, Any] | None,
                    path: Path | None = None) -> Path:
    """Store ``values`` as ``[kind."name"]`` (``None`` removes the entry); returns the path.

    The file is rewritten atomically (temp file with mode 0600 → fsync → rename)."""
    path = path or credentials_path()
    data = load_credentials(path)
    table = data.setdefault(kind, {})
    if values is None:
        table.pop(name, None)
    else:
        table[name] = dict(values)
    if not table:
        data.pop(kind, None)
    write_private(path, dumps(data))
    return path


def server_token(url: str, path: Path | None = None) -> str | None:
    """The token to send to the server at ``url``: ``MLOOP_TOKEN`` when set, else the
    credentials file's ``[servers."URL"]`` entry (the URL normalised as `mloop login`
    saves it: scheme and host in lower case, no trailing slash), else ``None``."""
    from mloop.core.client import normalize_url

    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    token = get_credentials("servers", normalize_url(url), path).get("token")
    return token.strip() if isinstance(token, str) and token.strip() else None
