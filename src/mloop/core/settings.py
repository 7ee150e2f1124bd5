"""Settings, resolved with one precedence everywhere.

    explicit argument  >  MLOOP_* environment variable  >  <project>/.mloop/config.toml
                       >  the user's ~/.config/mloop/config.toml  >  default

Each setting is declared once in :data:`SPECS` (its config section and key, its
environment variable, its type and default); later features add their settings there.
``Settings.source(name)`` tells where a value came from, which ``mloop`` prints when a
user asks why a value is what it is.

Some settings switch off a protection (unpickling model files, webhooks to private
addresses). Those are *user* settings: they are read from an argument, an ``MLOOP_*``
variable or the user's own config file, never from the project's config, which is
tracked by git — a cloned repository must not be able to switch them on for everyone
who clones it. Setting one in ``.mloop/config.toml`` is an error that says where it
belongs. Both config files reject keys they do not know, naming the closest known key.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.core.redact import holds_secret
from mloop.errors import ConfigError, ProjectNotFoundError

PROJECT_DIR = ".mloop"
CONFIG_FILE = "config.toml"
PROJECT_ENV = "MLOOP_PROJECT"
USER_SOURCE = "user config"


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


def _targets(*known: str) -> Callable[[Any], tuple[str, ...]]:
    def parse(value: Any) -> tuple[str, ...]:
        names = _names(value)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not one of {', '.join(known)}")
        return names

    return parse


@dataclass(frozen=True)
class SettingSpec:
    name: str
    section: str
    key: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    user_only: bool = False  # never read from the project's (git-tracked) config

    @property
    def env(self) -> str:
        return "MLOOP_" + self.name.upper()


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("store_uri", "store", "uri", str, None,
                "the metadata store: a SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…) or an "
                "mloop server (http(s)://host:port; MLOOP_TRACKING_URI is an alias); default "
                "sqlite:///<project>/.mloop/mloop.db"),
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
    SettingSpec("allow_pickle", "models", "allow_pickle", _bool, False,
                "load model files and pipeline values that are pickles (joblib, cloudpickle) "
                "and so can run code when loaded; only for files you trust", user_only=True),
    SettingSpec("pipeline_modules", "pipelines", "modules", _names, (),
                "modules (importable names or .py paths relative to the project) that define "
                "pipelines, besides pipelines.py at the project root"),
    SettingSpec("step_processes", "pipelines", "step_processes", _choice("warm", "fresh"),
                "warm", "how the local executor starts a Python step: warm (forked from a "
                "process of the run that imported mloop and the pipeline modules once) or "
                "fresh (a new interpreter per step)"),
    SettingSpec("serve_engine", "serving", "engine", _choice("native", "onnx", "auto"), "auto",
                "how mloop serve predicts by default: auto (the verified ONNX twin when there "
                "is one and onnxruntime is installed, else the model's own library), native "
                "or onnx; see docs/serving.md for the measurements behind the default"),
    SettingSpec("feedback_max_items", "serving", "feedback_max_items", _positive(int), 10_000,
                "most labels one POST /api/v1/feedback request may carry (413 above)"),
    SettingSpec("feedback_max_label_bytes", "serving", "feedback_max_label_bytes",
                _positive(int), 65_536,
                "largest label (as JSON) POST /api/v1/feedback accepts (413 above)"),
    SettingSpec("broker", "serving", "broker", str, "sqlite",
                "job broker of mloop.submit, mloop.result and mloop worker: sqlite (the "
                "project's queue), sqlite:///path/queue.db or redis://host:6379/0; a URL "
                "with a password belongs in the user config or MLOOP_BROKER"),
    SettingSpec("serve_tokens", "serving", "tokens", str, None,
                "token file of mloop serve (ids and SHA-256 digests of bearer tokens, made "
                "by `mloop token create`): writes need a token when it is set",
                user_only=True),
    SettingSpec("serve_allowed_hosts", "serving", "allowed_hosts", _names, (),
                "Host header values mloop serve answers to besides 127.0.0.1, localhost, "
                "::1 and its --host (DNS rebinding protection; * turns it off)",
                user_only=True),
    SettingSpec("server_rate_limit", "server", "rate_limit", _positive(float), 200.0,
                "writes per second one token may send to mloop server (a token bucket per "
                "token; 429 with Retry-After above it)"),
    SettingSpec("server_rate_burst", "server", "rate_burst", _positive(int), 400,
                "writes one token may send to mloop server at once before server_rate_limit "
                "applies (the size of its bucket)"),
    SettingSpec("server_session_hours", "server", "session_hours", _positive(float), 12.0,
                "how long a browser session of mloop server lasts after `/login` (never "
                "longer than its token)"),
    SettingSpec("server_allowed_hosts", "server", "allowed_hosts", _names, (),
                "Host header values mloop server accepts on a browser session's writes "
                "besides 127.0.0.1, localhost, ::1 and its --host (CSRF and DNS rebinding)",
                user_only=True),
    SettingSpec("require_approval", "governance", "require_approval",
                _targets("deploy"), (),
                "what needs a model version approved first (`mloop models approve`): "
                "deploy (putting it into a deployment's traffic)"),
    SettingSpec("webhook_allow_hosts", "webhooks", "allow_hosts", _names, (),
                "hosts or networks (CIDR) on loopback or private addresses that alert "
                "webhooks may call; others are refused (server-side request forgery)",
                user_only=True),
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


def user_config_dir() -> Path:
    """The user's mloop folder: ``$XDG_CONFIG_HOME/mloop``, else ``~/.config/mloop``.

    It holds the user's own ``config.toml``, ``credentials.toml`` and the key that signs
    pipeline values; never inside a project or a store."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "mloop"


def user_config_path() -> Path:
    return user_config_dir() / CONFIG_FILE


# Sections of config.toml that other parts of mloop own (``[remotes.NAME]`` tables, …):
# their keys are checked by their owners, not here.
EXTRA_SECTIONS: dict[str, str] = {"remotes": "mloop.data.remotes"}


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" Did you mean {close[0]!r}?"
    return f" Known: {', '.join(sorted(choices))}." if choices else ""


def check_config(config: Mapping[str, Any], path: Path, *, user: bool) -> None:
    """Refuse a key ``path`` does not know, with the closest known one; in the project's
    config, also a user-only setting (it says where that setting belongs)."""
    sections: dict[str, dict[str, SettingSpec]] = {}
    for spec in SPECS:
        sections.setdefault(spec.section, {})[spec.key] = spec
    for name, table in config.items():
        if name in EXTRA_SECTIONS:
            if user:
                raise ConfigError(f"{path}: [{name}] belongs in a project's .mloop/config.toml "
                                  "(git shares it with every clone), not in your own config; "
                                  "move it there.")
            _refuse_secrets(table, path, name)
            continue
        if name not in sections:
            raise ConfigError(f"{path}: unknown section [{name}].{_suggest(name, list(sections))}"
                              " Remove it or fix its name.")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table of settings, not "
                              f"{type(table).__name__}: write `[{name}]` on its own line "
                              "with key = value lines under it.")
        known = sections[name]
        for key in table:
            found = known.get(key)
            if found is None:
                raise ConfigError(f"{path}: unknown setting {key!r} in [{name}]."
                                  f"{_suggest(key, list(known))} Remove it or fix its name.")
            if found.user_only and not user:
                raise ConfigError(
                    f"{path}: [{name}] {key} cannot be set in a project's config, which git "
                    f"shares with everyone who clones it ({found.help}). Set it for yourself "
                    f"in {user_config_path()} or with {found.env}.")
            if not user and isinstance(table[key], str) and holds_secret(table[key]):
                raise ConfigError(
                    f"{path}: [{name}] {key} holds a password or token, and git shares this "
                    f"file with everyone who clones the project. Keep the secret out of it: "
                    f"write the value without it here and give the password to the driver "
                    f"(PGPASSWORD or ~/.pgpass for PostgreSQL, AWS_* variables for S3), or "
                    f"set {found.env} for yourself.")


def _refuse_secrets(value: Any, path: Path, where: str) -> None:
    """No password or token anywhere under ``value`` (a table another module owns)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _refuse_secrets(inner, path, f"{where}.{key}")
    elif isinstance(value, str) and holds_secret(value):
        raise ConfigError(
            f"{path}: {where} holds a password or token, and git shares this file with "
            "everyone who clones the project. Write the value without it here and keep the "
            "secret in your credentials file (`mloop remote add NAME URL --credential "
            "OPTION`) or in MLOOP_REMOTE_<NAME>_<OPTION> variables.")


def _read_toml(path: Path, *, user: bool) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        fix = "Fix the file." if user else ("Fix the file or re-create it with "
                                            "`mloop init --force`.")
        raise ConfigError(f"{path} is not valid TOML: {exc}. {fix}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from exc
    check_config(config, path, user=user)
    return config


def read_config(root: Path) -> dict[str, Any]:
    """The parsed, checked ``.mloop/config.toml`` of a project (empty when absent)."""
    return _read_toml(root / PROJECT_DIR / CONFIG_FILE, user=False)


def read_user_config() -> dict[str, Any]:
    """The parsed, checked user config (``~/.config/mloop/config.toml``; empty when absent)."""
    return _read_toml(user_config_path(), user=True)


def load_settings(root: str | Path, **overrides: Any) -> Settings:
    """Resolve every setting of the project at ``root`` (overrides are explicit arguments)."""
    root = Path(root).resolve()
    config = read_config(root)
    user = read_user_config()
    unknown = set(overrides) - set(SPEC_BY_NAME)
    if unknown:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}. "
                          f"Known: {', '.join(SPEC_BY_NAME)}.")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SPECS:
        raw, source = _lookup(spec, overrides, config, user)
        try:
            values[spec.name] = spec.parse(raw) if raw is not None else None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Setting {spec.name} from {source}: {exc}. ({spec.help})") from exc
        sources[spec.name] = source
    _fill_paths(root, values)
    return Settings(root, values, sources)


def user_setting(name: str, override: Any = None) -> Any:
    """One setting resolved without a project (argument > env > user config > default),
    for commands that may run outside a project."""
    spec = SPEC_BY_NAME[name]
    raw, source = _lookup(spec, {name: override}, {}, read_user_config())
    try:
        return spec.parse(raw) if raw is not None else None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Setting {spec.name} from {source}: {exc}. ({spec.help})") from exc


TRACKING_URI_ENV = "MLOOP_TRACKING_URI"  # the store URI's alias, for MLflow users


def _lookup(spec: SettingSpec, overrides: Mapping[str, Any], config: Mapping[str, Any],
            user: Mapping[str, Any]) -> tuple[Any, str]:
    if overrides.get(spec.name) is not None:
        return overrides[spec.name], "argument"
    if spec.name == "store_uri" and TRACKING_URI_ENV in os.environ:
        alias = os.environ[TRACKING_URI_ENV]
        if spec.env in os.environ and os.environ[spec.env] != alias:
            raise ConfigError(f"{spec.env} and {TRACKING_URI_ENV} are both set, to different "
                              f"stores ({os.environ[spec.env]!r} and {alias!r}). Unset one: "
                              f"{TRACKING_URI_ENV} is only an alias of {spec.env}.")
        return alias, f"env:{TRACKING_URI_ENV}"
    if spec.env in os.environ:
        return os.environ[spec.env], f"env:{spec.env}"
    layers = ((user, USER_SOURCE),) if spec.user_only else ((config, CONFIG_FILE),
                                                            (user, USER_SOURCE))
    for layer, source in layers:
        section = layer.get(spec.section, {})
        if isinstance(section, dict) and spec.key in section:
            return section[spec.key], source
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
    broker = values.get("broker")
    if broker and broker.startswith("sqlite:///") and not broker.startswith("sqlite:////"):
        rel = broker[len("sqlite:///"):]  # like the store: relative to the project
        if rel and not Path(rel).is_absolute():
            values["broker"] = f"sqlite:///{(root / rel).resolve()}"
    objects = values.get("objects_uri")
    if not objects:
        values["objects_uri"] = str(project_dir / "objects")
    elif "://" not in objects and not Path(objects).expanduser().is_absolute():
        values["objects_uri"] = str((root / objects).resolve())


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
# (allow_pickle is a per-user setting: ~/.config/mloop/config.toml or MLOOP_ALLOW_PICKLE)

[serving]
# engine = "auto"                     # mloop serve: the verified ONNX twin when there is one
# feedback_max_items = 10000          # labels per POST /api/v1/feedback
# feedback_max_label_bytes = 65536    # largest label, as JSON
# broker = "redis://host:6379/0"      # jobs of mloop.submit / mloop worker; default sqlite
#                                     # (a URL with a password: user config or MLOOP_BROKER)
# (tokens and allowed_hosts are per-user settings: ~/.config/mloop/config.toml or
#  MLOOP_SERVE_TOKENS / MLOOP_SERVE_ALLOWED_HOSTS)
"""
