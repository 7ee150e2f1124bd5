"""Remotes: other object stores (any fsspec URL) that versions are pushed to and pulled from.

Only blobs the other side lacks travel, several at a time. Blobs are content-addressed
and written atomically, so an interrupted push or pull leaves nothing half-done: running
it again sends what is still missing. The transfers themselves are in
:mod:`mloop.data.sync`.

Remotes live in the project's git-tracked ``.mloop/config.toml``, one ``[remotes.NAME]``
table each (``url``, ``default``), so a clone of the repository knows them. Remotes an
older mloop kept in the metadata store are still read (the config's table wins on a
name clash). A remote's URL is stored without secrets. Its credentials (any fsspec storage option:
``key``, ``secret``, ``token``, ``endpoint_url``, …) are read when the remote is opened,
from, in this order:

1. ``MLOOP_REMOTE_<NAME>_<OPTION>`` environment variables (``MLOOP_REMOTE_ORIGIN_SECRET``;
   the name upper-cased, characters other than letters and digits as ``_``);
2. the user's credentials file, table ``[remotes."<url>"]`` (keyed by the URL, so two
   projects with a remote named ``origin`` never share the wrong secret);
3. the driver's own sources (``AWS_ACCESS_KEY_ID``, ``~/.aws/credentials``, gcloud, …).

A URL given with a password (``s3://KEY:SECRET@bucket/prefix``) or a secret query
parameter (``?token=…``) is split: the URL without them goes to the metadata store, the
secrets to the credentials file. Rows written by older versions with secrets in them are
split the same way the first time they are read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import Field

from mloop.core import credentials as creds
from mloop.core.configfile import remove_table, set_table
from mloop.core.redact import get_logger, is_secret_name, redact
from mloop.core.schema import Schema, validate
from mloop.core.settings import CONFIG_FILE, PROJECT_DIR, read_config
from mloop.core.uris import check_name
from mloop.errors import ConfigError, InvalidInputError, MloopError, NotFoundError
from mloop.objects import ObjectStore, open_object_store
from mloop.project import Project
from mloop.repositories import backend

DEFAULT_REMOTE = "origin"
REMOTES_SECTION = "remotes"
CREDENTIALS_KIND = "remotes"
_S3 = frozenset({"s3", "s3a", "s3n"})
_logger = get_logger("mloop.data")


@dataclass(frozen=True)
class Remote:
    name: str
    url: str  # never holds a secret
    default: bool = False
    source: str = "config"  # "config" (.mloop/config.toml) or "store" (an older mloop's row)
    # secrets of a row that could not be moved out of a read-only store: used, never shown
    _fallback: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """What ``mloop remote list`` shows: the URL, and the names (never the values) of
        the options the credentials file holds for it."""
        return {"name": self.name, "url": redact(self.url), "default": self.default,
                "credentials": sorted(creds.get_credentials(CREDENTIALS_KIND, self.url))}


class RemoteEntry(Schema):
    """``[remotes.NAME]`` in ``.mloop/config.toml`` (written by ``mloop remote add``)."""

    url: str = Field(description="where the remote keeps blobs and version records: an "
                     "fsspec URL (s3://bucket/prefix, file:///srv/store, …) without "
                     "credentials, which come from the credentials file or MLOOP_REMOTE_* "
                     "variables")
    default: bool = Field(False, description="push and pull use this remote when none is "
                          "named (else origin, else the first by name)")


def _config_path(project: Project) -> Path:
    return project.root / PROJECT_DIR / CONFIG_FILE


def config_remotes(project: Project) -> dict[str, Remote]:
    """The ``[remotes.NAME]`` tables of the project config, checked."""
    path = _config_path(project)
    table = read_config(project.root).get(REMOTES_SECTION, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{REMOTES_SECTION}] must hold one [{REMOTES_SECTION}.NAME] "
                          "table per remote (url = \"…\", default = true).")
    out = {}
    for name, raw in table.items():
        try:
            check_name(name, "remote name")
        except InvalidInputError as exc:
            raise ConfigError(f"{path}: [{REMOTES_SECTION}.{name}]: {exc.message}") from None
        entry = validate(RemoteEntry, raw, source=path, at=(REMOTES_SECTION, name))
        out[name] = Remote(name, entry.url, entry.default)
    return out


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its secrets, and the secrets as fsspec storage options.

    A user-info with a password becomes ``key``/``secret`` on S3 and ``username``/
    ``password`` elsewhere (fsspec's names); a query parameter with a secret name keeps
    its name. A user-info without a password (``abfs://container@account…``) is not a
    secret and stays."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, {}
    authority, slash, tail = rest.partition("/")
    found: dict[str, str] = {}
    if "@" in authority:
        info, _, host = authority.rpartition("@")  # a raw '@' may sit in the password
        user, colon, password = info.partition(":")
        if colon:
            names = ("key", "secret") if scheme.lower() in _S3 else ("username", "password")
            found.update({names[0]: unquote(user)} if user else {})
            found[names[1]] = unquote(password)
            authority = host
    _check_authority(authority, url)
    clean = f"{scheme}://{authority}{slash}{tail}"
    parts = urlsplit(clean)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        found.update({k: v for k, v in pairs if is_secret_name(k)})
        kept = [(k, v) for k, v in pairs if not is_secret_name(k)]
        if len(kept) < len(pairs):
            clean = urlunsplit(parts._replace(query=urlencode(kept)))
    return clean, found


def _check_authority(authority: str, url: str) -> None:
    host, colon, port = authority.rpartition(":") if not authority.endswith("]") \
        else (authority, "", "")
    if colon and host and port and not host.endswith("]") and not port.isdigit():
        # "KEY:SE/CRET@bucket": a '/' in the password cut the URL in the wrong place
        raise InvalidInputError(
            f"Cannot read the remote URL {redact(url)}: its host part is not host:port. "
            "Percent-encode special characters of the user name and password (/ → %2F, "
            "? → %3F, # → %23), or pass them with --credential instead.")


def env_credentials(name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Storage options of remote ``name`` from ``MLOOP_REMOTE_<NAME>_<OPTION>`` variables."""
    environ = os.environ if environ is None else environ
    prefix = f"MLOOP_REMOTE_{re.sub(r'[^A-Z0-9]', '_', name.upper())}_"
    return {key[len(prefix):].lower(): option_value(value) for key, value in environ.items()
            if key.startswith(prefix) and len(key) > len(prefix)}


def option_value(text: str) -> Any:
    """A storage option from text: ``true``/``false`` as booleans (``anon=false`` must not
    read as a true string), anything else as the text itself."""
    lowered = text.strip().lower()
    return {"true": True, "false": False}.get(lowered, text)


def storage_options(remote: Remote) -> dict[str, Any]:
    """Every option remote needs, read now: environment > credentials file > fallback."""
    return {**remote._fallback, **creds.get_credentials(CREDENTIALS_KIND, remote.url),
            **env_credentials(remote.name)}


def add_remote(project: Project, name: str, url: str,
               credentials: Mapping[str, Any] | None = None, *,
               default: bool = False) -> Remote:
    """Register (or re-point) a remote in ``.mloop/config.toml``; checks that it opens.

    Secrets in ``url`` and ``credentials`` go to the user's credentials file, never to
    the project; the file's table for the URL is merged, not replaced. ``default``: push
    and pull use this remote when none is named (another default loses the flag)."""
    check_name(name, "remote name")
    clean, found = split_credentials(url)
    given = {**found, **(credentials or {})}
    if found and urlsplit(clean).scheme.lower() in ("http", "https"):
        raise InvalidInputError(
            f"An HTTP remote cannot take credentials from its URL ({redact(url)}): mloop "
            "cannot pass them to the HTTP driver. Use a URL that needs none (a public or "
            "pre-signed one) or an object store URL (s3://, gs://, …).")
    merged = {**creds.get_credentials(CREDENTIALS_KIND, clean), **given}
    try:
        open_object_store(clean, **{**merged, **env_credentials(name)})
    except MloopError:
        raise
    except Exception as exc:  # the driver's own complaint (a bad option, a missing extra)
        raise ConfigError(f"Remote {name!r} ({redact(clean)}) cannot be opened: "
                          f"{type(exc).__name__}: {exc}") from None
    if given:
        creds.set_credentials(CREDENTIALS_KIND, clean, merged)
    known = config_remotes(project)
    previous = known.get(name)
    keep_default = default or (previous is not None and previous.default
                               and previous.url == clean)
    path = _config_path(project)
    if default:
        for other in known.values():
            if other.default and other.name != name:
                set_table(path, (REMOTES_SECTION, other.name), {"url": other.url})
    set_table(path, (REMOTES_SECTION, name),
              {"url": clean, **({"default": True} if keep_default else {})})
    backend(project).stored_remotes.delete(name)  # an older mloop's row of that name goes
    return Remote(name, clean, keep_default)


def list_remotes(project: Project) -> list[Remote]:
    """Known remotes: the project config's, then rows an older mloop kept in the metadata
    store (a row that still holds secrets has them moved to the credentials file first)."""
    configured = config_remotes(project)
    rows = backend(project).stored_remotes.all()
    out = list(configured.values())
    for r in rows:
        if r.name in configured:
            continue
        clean, found = _split_stored(r.name, r.url)
        out.append(Remote(r.name, clean, source="store") if not found or clean == r.url
                   else _upgrade(project, r.name, r.url, clean, found))
    return sorted(out, key=lambda r: r.name)


def _split_stored(name: str, url: str) -> tuple[str, dict[str, str]]:
    try:
        return split_credentials(url)
    except InvalidInputError:  # opening it says what to do
        return url, {}


def _upgrade(project: Project, name: str, old: str, clean: str,
             found: dict[str, str]) -> Remote:
    """Move the secrets of a stored URL to the credentials file, then drop them from the
    row; the file's own values win (they are the user's newer choice)."""
    try:
        path = creds.set_credentials(CREDENTIALS_KIND, clean, {
            **found, **creds.get_credentials(CREDENTIALS_KIND, clean)})
        backend(project).stored_remotes.set_url(name, old, clean)
    except Exception as exc:  # a read-only store or file: use them, warn, retry next time
        _logger.warning("Remote %r holds credentials in the metadata store, and they could "
                        "not be moved out (%s: %s); run `mloop remote add %s URL` again.",
                        name, type(exc).__name__, exc, name)
        return Remote(name, clean, source="store", _fallback=found)
    _logger.warning("Moved the credentials (%s) of remote %r out of the metadata store into "
                    "%s.", ", ".join(sorted(found)), name, path)
    return Remote(name, clean, source="store")


def remove_remote(project: Project, name: str) -> None:
    """Forget a remote (its config table, and an older mloop's row); its credentials stay
    (other projects may use the same URL)."""
    in_config = remove_table(_config_path(project), (REMOTES_SECTION, name))
    in_store = backend(project).stored_remotes.delete(name)
    if not (in_config or in_store):
        raise NotFoundError(f"No remote named {name!r}; see `mloop remote list`.")


def default_remote(known: Mapping[str, Remote]) -> str | None:
    """The remote used when none is named: the one marked default, else ``origin``, else
    the first by name."""
    marked = sorted(n for n, r in known.items() if r.default)
    if marked:
        return marked[0]
    if DEFAULT_REMOTE in known:
        return DEFAULT_REMOTE
    return sorted(known)[0] if known else None


def open_remote(project: Project, name: str | None) -> ObjectStore:
    known = {r.name: r for r in list_remotes(project)}
    if name is None:
        name = default_remote(known)
        if name is None:
            raise ConfigError("No remote configured. Add one: `mloop remote add origin "
                              "s3://bucket/prefix --default` (or file:///path for a folder), "
                              "then commit .mloop/config.toml so that clones know it.")
    if name not in known:
        raise NotFoundError(f"No remote named {name!r}; see `mloop remote list`.")
    remote = known[name]
    try:
        return open_object_store(remote.url, **storage_options(remote))
    except Exception as exc:
        detail = exc.message if isinstance(exc, MloopError) else f"{type(exc).__name__}: {exc}"
        detail = detail.rstrip(". ")
        raise ConfigError(f"Remote {name!r} ({redact(remote.url)}) cannot be opened: "
                          f"{detail}. Credentials come from MLOOP_REMOTE_"
                          f"{re.sub(r'[^A-Z0-9]', '_', name.upper())}_<OPTION> variables, "
                          f"the credentials file (`mloop remote add {name} URL --credential "
                          "key=…`) or the driver's own (AWS_ACCESS_KEY_ID, …).") from None
