"""Settings, resolved with one precedence everywhere.

    explicit argument  >  MLOOP_* environment variable  >  <project>/.mloop/config.toml  >  default

Each setting is declared once in :data:`SPECS` (its config section and key, its
environment variable, its type and default); later features add their settings there.
``Settings.source(name)`` tells where a value came from, which ``mloop`` prints when a
user asks why a value is what it is.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mloop.errors import ConfigError, ProjectNotFoundError

PROJECT_DIR = ".mloop"
CONFIG_FILE = "config.toml"
PROJECT_ENV = "MLOOP_PROJECT"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true/false)")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def _positive(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"{value!r} must be positive")
        return number

    return parse


def _names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{value!r} is not a list of names")
    return tuple(str(v).strip() for v in items if str(v).strip())


@dataclass(frozen=True)
class SettingSpec:
    name: str
    section: str
    key: str
    parse: Callable[[Any], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "MLOOP_" + self.name.upper()


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("store_uri", "store", "uri", str, None,
                "SQLAlchemy URL of the metadata store; default sqlite:///<project>/.mloop/mloop.db"),
    SettingSpec("sqlite_synchronous", "store", "sqlite_synchronous",
                _choice("normal", "full"), "normal",
                "fsync policy of the metadata store (SQLite WAL) and of data versions: normal "
                "survives process crashes, full also survives power loss (an fsync per commit, "
                "a disk flush per data add)"),
    SettingSpec("busy_timeout_ms", "store", "busy_timeout_ms", _positive(int), 30_000,
                "how long a SQLite writer waits for another writer before failing"),
    SettingSpec("objects_uri", "objects", "uri", str, None,
                "where blobs live: a folder or an fsspec URL; default <project>/.mloop/objects"),
    SettingSpec("flush_interval", "tracking", "flush_interval", _positive(float), 0.5,
                "seconds between background flushes of buffered metrics"),
    SettingSpec("flush_batch_size", "tracking", "flush_batch_size", _positive(int), 20_000,
                "buffered metric points that trigger an early flush"),
    SettingSpec("capture_git", "tracking", "capture_git", _bool, True,
                "record git commit, dirty flag and diff on every run"),
    SettingSpec("capture_packages", "tracking", "capture_packages", _bool, True,
                "record the installed packages (name==version) on every run"),
    SettingSpec("model_engine", "models", "engine", _choice("native", "onnx", "auto"), "native",
                "how load_model predicts by default: native (the model's own library), onnx "
                "(its verified ONNX twin; an error when it has none) or auto (the twin when "
                "there is one)"),
    SettingSpec("pipeline_modules", "pipelines", "modules", _names, (),
                "modules (importable names or .py paths relative to the project) that define "
                "pipelines, besides pipelines.py at the project root"),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one project. Build with :func:`load_settings`."""

    project_root: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def project_dir(self) -> Path:
        return self.project_root / PROJECT_DIR

    def source(self, name: str) -> str:
        """``argument``, ``env:MLOOP_X``, ``config.toml`` or ``default``."""
        return self.sources[name]


def find_project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding ``.mloop/config.toml``, as git does.

    ``MLOOP_PROJECT`` overrides the search. Raises :class:`ProjectNotFoundError` that
    tells the user to run ``mloop init``.
    """
    env = os.environ.get(PROJECT_ENV)
    if env and start is None:
        root = Path(env).expanduser().resolve()
        if not (root / PROJECT_DIR / CONFIG_FILE).is_file():
            raise ProjectNotFoundError(
                f"{PROJECT_ENV}={env} is not an mloop project; run `mloop init {env}` "
                f"or unset {PROJECT_ENV}."
            )
        return root
    here = Path(start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_DIR / CONFIG_FILE).is_file():
            return folder
    raise ProjectNotFoundError(
        f"No mloop project in {here} or any folder above it. Run `mloop init` to create one "
        f"here (or mloop.init(path) from Python), or set {PROJECT_ENV}."
    )


def read_config(root: Path) -> dict[str, Any]:
    """The parsed ``.mloop/config.toml`` of a project (empty when absent)."""
    path = root / PROJECT_DIR / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file or re-create it "
                          "with `mloop init --force`.") from exc


def load_settings(root: str | Path, **overrides: Any) -> Settings:
    """Resolve every setting of the project at ``root`` (overrides are explicit arguments)."""
    root = Path(root).resolve()
    config = read_config(root)
    unknown = set(overrides) - set(SPEC_BY_NAME)
    if unknown:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}. "
                          f"Known: {', '.join(SPEC_BY_NAME)}.")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        raw, source = _lookup(spec, overrides, config)
        try:
            values[spec.name] = spec.parse(raw) if raw is not None else None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Setting {spec.name} from {source}: {exc}. ({spec.help})") from exc
        sources[spec.name] = source
    _fill_paths(root, values)
    return Settings(root, values, sources)


def _lookup(spec: SettingSpec, overrides: Mapping[str, Any],
            config: Mapping[str, Any]) -> tuple[Any, str]:
    if overrides.get(spec.name) is not None:
        return overrides[spec.name], "argument"
    if spec.env in os.environ:
        return os.environ[spec.env], f"env:{spec.env}"
    section = config.get(spec.section, {})
    if isinstance(section, dict) and spec.key in section:
        return section[spec.key], CONFIG_FILE
    return spec.default, "default"


def _fill_paths(root: Path, values: dict[str, Any]) -> None:
    project_dir = root / PROJECT_DIR
    store = values.get("store_uri")
    if not store:
        values["store_uri"] = f"sqlite:///{project_dir / 'mloop.db'}"
    elif store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
        # A relative SQLite path in config.toml is relative to the project, not the cwd.
        rel = store[len("sqlite:///"):]
        if rel and rel != ":memory:" and not Path(rel).is_absolute():
            values["store_uri"] = f"sqlite:///{(root / rel).resolve()}"
    objects = values.get("objects_uri")
    if not objects:
        values["objects_uri"] = str(project_dir / "objects")
    elif "://" not in objects and not Path(objects).expanduser().is_absolute():
        values["objects_uri"] = str((root / objects).resolve())


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, safe to print or log."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


CONFIG_TEMPLATE = """\
# mloop project settings. Precedence: explicit argument > MLOOP_* environment variable >
# this file > built-in default. Relative paths are relative to the project folder.

[store]
# uri = "postgresql+psycopg://user@host:5432/db"   # default: sqlite:///.mloop/mloop.db
# sqlite_synchronous = "normal"                    # "full" also survives power loss

[objects]
# uri = "s3://bucket/prefix"                       # default: .mloop/objects

[tracking]
# flush_interval = 0.5       # seconds between background metric flushes
# capture_git = true
# capture_packages = true

[models]
# engine = "native"          # "auto": predict through the verified ONNX twin when there is one
"""
