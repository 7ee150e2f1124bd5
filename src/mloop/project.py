"""The project: one context object holding settings, the metadata store and the object store.

Everything mloop does happens in a project: a folder with ``.mloop/config.toml``, found
from the current directory upwards as git finds ``.git``. Domain modules take a
:class:`Project` explicitly; the fluent API (``mloop.start_run`` …) uses
:func:`current_project`, which is the project set with :func:`set_project` or else the one
found from the current directory.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.settings import (
    CONFIG_FILE,
    CONFIG_TEMPLATE,
    PROJECT_DIR,
    Settings,
    find_project_root,
    load_settings,
)
from mloop.objects import ObjectStore, open_object_store

if TYPE_CHECKING:
    from mloop.store import Store

# Git keeps the project's configuration (config.toml, monitoring.yaml, automation.yaml
# and any other *.toml / *.yaml mloop reads from .mloop/); the local store, blobs,
# caches, logs, locks and queues stay out.
GITIGNORE = ("# mloop: git keeps the project's configuration files; the local store, blobs,\n"
             "# caches, logs and locks stay out\n*\n!/.gitignore\n!/*.toml\n!/*.yaml\n"
             "!/*.yml\n")
# what earlier mloops wrote: replaced when found unchanged (a user's own edit is kept)
_OLD_GITIGNORES = ("# mloop's local store: metadata, blobs and caches\n*\n!config.toml\n"
                   "!.gitignore\n",)


def update_gitignore(project_dir: Path) -> None:
    """Write ``.mloop/.gitignore``, or bring an earlier mloop's unchanged one up to date."""
    gitignore = project_dir / ".gitignore"
    try:
        current = gitignore.read_text(encoding="utf-8") if gitignore.exists() else None
        if current is None or current in _OLD_GITIGNORES:
            tmp = gitignore.with_name(".gitignore.tmp")
            tmp.write_text(GITIGNORE, encoding="utf-8")
            tmp.replace(gitignore)
    except OSError:  # a read-only checkout: nothing to share from here anyway
        pass


def is_server_uri(uri: str | None) -> bool:
    """Whether a store URI names an mloop server rather than a database."""
    return bool(uri) and str(uri).startswith(("http://", "https://"))


class Project:
    """Settings + metadata store + object store of one project folder."""

    def __init__(self, root: str | Path, **overrides: Any) -> None:
        self.settings: Settings = load_settings(root, **overrides)
        self.root: Path = self.settings.project_root
        update_gitignore(self.settings.project_dir)
        self._components: dict[str, Any] = {}
        self._lock = threading.RLock()  # a component may create another one

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    @classmethod
    def open(cls, path: str | Path | None = None, **overrides: Any) -> Project:
        """The project at or above ``path`` (default: the current directory)."""
        return cls(find_project_root(path), **overrides)

    @classmethod
    def init(cls, path: str | Path = ".", *, force: bool = False, **overrides: Any) -> Project:
        """Create (or re-open) a project in ``path``; safe to run again.

        Writes ``.mloop/config.toml`` (kept when present unless ``force``: in a clone,
        the tracked config stays as git brought it and only the local state is made), a
        ``.gitignore`` that keeps the local store out of git and the configuration in,
        and creates or upgrades the metadata store.
        """
        root = Path(path).expanduser().resolve()
        project_dir = root / PROJECT_DIR
        project_dir.mkdir(parents=True, exist_ok=True)
        config = project_dir / CONFIG_FILE
        if force or not config.exists():
            tmp = config.with_suffix(".tmp")
            tmp.write_text(CONFIG_TEMPLATE)
            tmp.replace(config)
        project = cls(root, **overrides)  # writes or updates .mloop/.gitignore
        if not project.remote:  # a server's stores are the server's to create
            project.store  # noqa: B018 - creates or migrates the metadata store now
            project.objects  # noqa: B018
        return project

    @property
    def remote(self) -> bool:
        """Whether the store is an ``mloop server`` (``http(s)://…``): the repositories
        and the blobs are then reached over HTTP."""
        return is_server_uri(self.settings.store_uri)

    @cached_property
    def store(self) -> Store:
        """The metadata store (opened, and migrated if needed, on first use)."""
        from mloop.store.engine import Store  # SQLAlchemy: ~0.2 s, only when needed

        s = self.settings
        if self.remote:
            from mloop.errors import ConfigError

            raise ConfigError(f"This project's store is the mloop server at {s.store_uri}: "
                              "its database is the server's, reached through the API.")
        return Store(s.store_uri, sqlite_synchronous=s.sqlite_synchronous,
                     busy_timeout_ms=s.busy_timeout_ms)

    @cached_property
    def objects(self) -> ObjectStore:
        """The content-addressed object store (the server's, over HTTP, when the store is
        an mloop server and no object store is configured)."""
        if self.remote and self.settings.source("objects_uri") == "default":
            from mloop.core.credentials import server_token
            from mloop.objects.http import HttpObjectStore

            url = self.settings.store_uri.rstrip("/")
            return HttpObjectStore(url, token=server_token(url))
        return open_object_store(self.settings.objects_uri)

    def component(self, key: str, factory: Any) -> Any:
        """A per-project singleton (tracker, caches…), created by ``factory(project)`` once."""
        try:
            return self._components[key]
        except KeyError:
            with self._lock:
                if key not in self._components:
                    self._components[key] = factory(self)
                return self._components[key]

    def close(self) -> None:
        """Stop background work of every component and release connections."""
        for comp in list(self._components.values()):
            close = getattr(comp, "close", None)
            if close is not None:
                close()
        self._components.clear()
        if "objects" in self.__dict__:
            close = getattr(self.objects, "close", None)
            if close is not None:
                close()
        if "store" in self.__dict__:
            self.store.close()


_explicit: Project | None = None
_by_root: dict[Path, Project] = {}
_registry_lock = threading.Lock()


def set_project(project: Project | str | Path | None) -> Project | None:
    """Make ``project`` (or the project at a path) the default of the fluent API.

    ``None`` goes back to finding the project from the current directory.
    """
    global _explicit
    if project is None or isinstance(project, Project):
        _explicit = project
    else:
        _explicit = _cached(find_project_root(project))
    return _explicit


def current_project() -> Project:
    """The project set with :func:`set_project`, else the one at or above the cwd."""
    if _explicit is not None:
        return _explicit
    return _cached(find_project_root())


def _cached(root: Path) -> Project:
    with _registry_lock:
        project = _by_root.get(root)
        if project is None:
            project = _by_root[root] = Project(root)
        return project


def init(path: str | Path = ".", *, force: bool = False) -> Project:
    """Create a project in ``path`` (default: the cwd), make it current and return it."""
    root = Project.init(path, force=force).root
    project = _cached(root)
    set_project(project)
    return project
