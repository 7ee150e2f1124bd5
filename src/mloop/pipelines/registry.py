"""Finding pipelines: ``pipelines.py`` at the project root, the modules listed under
``[pipelines] modules = [...]`` in ``.mloop/config.toml``, and ``mloop.yaml``'s stages."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from mloop.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from mloop.pipelines.dag import Pipeline
    from mloop.project import Project

YAML_FILE = "mloop.yaml"


class PipelineNotFoundError(NotFoundError):
    """No pipeline of that name in the project."""

    code = "pipeline_not_found"


_STAMPS: dict[str, tuple[int, int]] = {}


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _project_modules(root: Path) -> list[tuple[str, str]]:
    """(name, file) of every imported module whose file lies in the project."""
    prefix = str(root.resolve())
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or not str(Path(file).resolve()).startswith(prefix) or \
                "site-packages" in file or "dist-packages" in file:
            continue
        found.append((name, file))
    return found


def _forget_edited(root: Path) -> None:
    """Drop the project's modules whose files changed since they were imported, so a
    long-running process (``mloop automate run``) runs the code the cache keys hash."""
    imported = _project_modules(root)
    for name, file in imported:
        now = _stamp(file)
        if now is None or _STAMPS.get(name, now) != now:
            break
    else:
        return
    # One file changed: drop them all, since the others hold the old module objects
    # (``import helpers`` binds the module once) and would pass the old code on.
    for name, _file in imported:
        sys.modules.pop(name, None)
        _STAMPS.pop(name, None)


def _stamp_imported(root: Path) -> None:
    """Stamp the project's modules just imported (helpers the pipeline files import), so
    that an edit made before the next run is seen: stamped only at that run, an edited
    helper would look unchanged and its old code would reach the steps."""
    for name, file in _project_modules(root):
        if name not in _STAMPS and (now := _stamp(file)) is not None:
            _STAMPS[name] = now


def _load_file(path: Path) -> ModuleType:
    """A project file as a module of its own (steps pickled by value for the workers)."""
    name = f"mloop_user_{path.stem}"
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"Cannot load {path} as Python.")
    module = importlib.util.module_from_spec(spec)
    module.__mloop_by_value__ = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    stamp = _stamp(str(path))
    if stamp is not None:
        _STAMPS[name] = stamp
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InvalidInputError(f"{path.name} failed to import: {type(exc).__name__}: "
                                f"{exc}") from exc
    return module


def modules(project: Project) -> list[ModuleType]:
    """The project's pipeline modules, imported."""
    root = project.root
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # so they can import their helpers
    _forget_edited(root)
    found = []
    default = root / "pipelines.py"
    if default.is_file():
        found.append(_load_file(default))
    for entry in project.settings.pipeline_modules:
        path = root / entry
        if entry.endswith(".py"):
            if not path.is_file():
                raise InvalidInputError(f"[pipelines] modules lists {entry}, which does not "
                                        "exist.")
            found.append(_load_file(path))
        else:
            try:
                found.append(importlib.import_module(entry))
            except ImportError as exc:
                raise InvalidInputError(f"[pipelines] modules lists {entry!r}, which does not "
                                        f"import: {exc}") from exc
    _stamp_imported(root)
    return found


def list_pipelines(project: Project) -> dict[str, Pipeline]:
    """Every pipeline the project defines, by name (mloop.yaml's stages as ``default``)."""
    from mloop.pipelines.dag import Pipeline

    out: dict[str, Pipeline] = {}
    for module in modules(project):
        for value in vars(module).values():
            if isinstance(value, Pipeline):
                out.setdefault(value.name, value)
    if (project.root / YAML_FILE).is_file() and "default" not in out:
        from mloop.pipelines.stages import load_stages

        out["default"] = load_stages(project.root)
    return out


def find_pipeline(project: Project, name: str | None) -> Pipeline:
    """The pipeline called ``name`` (None: the stages of mloop.yaml)."""
    if name is None:
        if not (project.root / YAML_FILE).is_file():
            raise PipelineNotFoundError(
                f"No {YAML_FILE} in {project.root}: name a pipeline (defined in "
                "pipelines.py or a module under [pipelines] modules in .mloop/config.toml), "
                f"or write {YAML_FILE} stages.")
        from mloop.pipelines.stages import load_stages

        return load_stages(project.root)
    found = list_pipelines(project)
    if name not in found:
        raise PipelineNotFoundError(
            f"No pipeline {name!r} in this project; defined: "
            f"{', '.join(sorted(found)) or 'none'}. Pipelines live in pipelines.py at the "
            "project root or in modules listed under [pipelines] modules in "
            ".mloop/config.toml.")
    return found[name]
