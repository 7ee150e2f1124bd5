"""Editing one table of the project's ``.mloop/config.toml`` in place.

mloop writes a few tables of the project config itself (``[remotes.NAME]``, by ``mloop
remote add``); the rest of the file is the user's, so comments, order and every other
table are kept byte for byte. A table is replaced where it stands (or appended at the
end); the result is parsed back and compared with what was meant before it replaces the
file (temp file + rename), so a file this line-based edit cannot handle (a table written
inline, a header inside a multi-line string) is reported, never mangled.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mloop.errors import ConfigError

_BARE = re.compile(r"[A-Za-z0-9_-]+\Z")


def _toml_str(text: str) -> str:
    # JSON's escapes are TOML's, but JSON leaves DEL (U+007F) bare and TOML forbids it
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(name: str) -> str:
    """A TOML key: bare when it can be, else a quoted string."""
    return name if _BARE.match(name) else _toml_str(name)


def toml_value(value: str | bool | int | float) -> str:
    """A TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_str(value)


def render_table(keys: tuple[str, ...], values: Mapping[str, str | bool | int | float]) -> str:
    """``[a.b]`` and its ``key = value`` lines."""
    lines = [f"[{'.'.join(toml_key(k) for k in keys)}]"]
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def set_table(path: Path, keys: tuple[str, ...],
              values: Mapping[str, str | bool | int | float]) -> None:
    """Make table ``keys`` of the TOML file at ``path`` hold exactly ``values``."""
    _edit(path, keys, dict(values))


def remove_table(path: Path, keys: tuple[str, ...]) -> bool:
    """Remove table ``keys``; whether it was there."""
    return _edit(path, keys, None)


def _header_keys(line: str) -> tuple[str, ...] | None:
    """The key path of a table header line (``[remotes."my s3"]  # note``), ``None`` for
    any other line; an array of tables gives ``("[[array]]",)``, never a table mloop
    edits."""
    if not line.lstrip().startswith("["):
        return None
    try:
        node: Any = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None  # e.g. a line of a multi-line array
    parts: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key, node = next(iter(node.items()))
        parts.append(key)
    if isinstance(node, list):
        return ("[[array]]",)
    return tuple(parts) if node == {} and parts else None


def _edit(path: Path, keys: tuple[str, ...], values: dict[str, Any] | None) -> bool:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file first.") from exc
    # TOML lines end at \n only (str.splitlines would also cut at U+0085, U+2028, …)
    lines = re.findall(r"[^\n]*\n|[^\n]+\Z", text)
    start = next((i for i, line in enumerate(lines) if _header_keys(line) == keys), None)
    found = start is not None
    block = render_table(keys, values) if values is not None else ""
    if start is None:
        if values is None:
            return False
        prefix = text if not text or text.endswith("\n") else text + "\n"
        new = prefix + ("\n" if prefix.strip() else "") + block
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if _header_keys(lines[i]) is not None), len(lines))
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # the blank lines before the next table stay
        new = "".join(lines[:start]) + block + "".join(lines[end:])
        if values is None and lines[:start] and not lines[start - 1].strip() and (
                end == len(lines) or not lines[end].strip()):
            new = "".join(lines[:start - 1]) + "".join(lines[end:])  # no double blank
    expected = _with(before, keys, values)
    try:
        after = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        after = None
    if after is None or _pruned(after) != _pruned(expected):
        where = ".".join(keys)
        raise ConfigError(f"Cannot edit [{where}] of {path} in place (is it written as an "
                          f"inline table?). Edit the file by hand: [{where}] with "
                          + ", ".join(f"{k} = {toml_value(v)}" for k, v in (values or {}).items())
                          + ".")
    _write(path, new)
    return found


def _with(config: dict[str, Any], keys: tuple[str, ...], values: dict[str, Any] | None
          ) -> dict[str, Any]:
    out = json.loads(json.dumps(config, default=str))  # a deep copy (dates as text)
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if values is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = dict(values)
    return out


def _pruned(value: Any) -> Any:
    """Tables without values dropped (``[remotes]`` alone equals no table at all)."""
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v != {}}
    return json.loads(json.dumps(value, default=str))


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
