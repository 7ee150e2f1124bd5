"""The user's signing key: HMAC-SHA256 over what mloop pickles for itself.

Pipeline values that are pickles live in the object store, which a team may share (a
remote, a bucket). mloop signs each one it writes with a key only this user has, and
loads a signed one freely: anyone can put bytes in the store, but only the key's holder
can make them pass. The key is ``signing.key`` in the user's config folder
(:func:`mloop.core.settings.user_config_dir`), 32 random bytes created with mode 0600
on first use — never in a project or a store — or the ``MLOOP_SIGNING_KEY`` variable
(at least 32 characters), for machines that must share one: Dask workers on other hosts,
a CI runner. A key file that others can read is refused, as ssh refuses such a private
key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from mloop.core.paths import write_private
from mloop.errors import ConfigError

KEY_FILE = "signing.key"
KEY_ENV = "MLOOP_SIGNING_KEY"
_MIN_ENV_KEY = 32


def key_path() -> Path:
    from mloop.core.settings import user_config_dir

    return user_config_dir() / KEY_FILE


def _read(path: Path) -> bytes:
    st = path.stat()
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} can be read by other users (mode "
                          f"{stat.S_IMODE(st.st_mode):o}); it is your signing key. Run "
                          f"`chmod 600 {path}` and try again.")
    key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(key) < 32:
        raise ConfigError(f"{path} holds a key shorter than 32 bytes; delete it and mloop "
                          "makes a new one (values signed with the old key then need "
                          "allow_pickle, or a re-run).")
    return key


def _create(path: Path) -> None:
    """Write a new key unless one appears meanwhile (steps start at once: first wins)."""
    write_private(path, secrets.token_hex(32) + "\n", replace=False)


def signing_key() -> bytes:
    """The key: ``MLOOP_SIGNING_KEY``, else the user's key file (made on first use)."""
    env = os.environ.get(KEY_ENV)
    if env is not None:
        if len(env) < _MIN_ENV_KEY:
            raise ConfigError(f"{KEY_ENV} must be at least {_MIN_ENV_KEY} characters (e.g. "
                              "`python -c 'import secrets; print(secrets.token_hex(32))'`).")
        return env.encode()
    path = key_path()
    try:
        try:
            return _read(path)
        except FileNotFoundError:
            _create(path)
            return _read(path)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not a signing key (64 hex digits); delete it and mloop "
                          "makes a new one.") from None
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ConfigError(f"Cannot read or create your signing key {path}: {why}. Make its "
                          f"folder writable, or set {KEY_ENV} (32+ characters).") from None


def sign(purpose: str, digest: str) -> str:
    """The hex HMAC-SHA256 of ``digest`` (a content hash) for ``purpose`` (a value kind)."""
    message = f"mloop/{purpose}/v1\0{digest}".encode()
    return hmac.new(signing_key(), message, hashlib.sha256).hexdigest()


def verify(purpose: str, digest: str, signature: str | None) -> bool:
    """Whether ``signature`` is this user's :func:`sign` of ``digest`` (constant time)."""
    if not signature:
        return False
    return hmac.compare_digest(sign(purpose, digest), signature)
