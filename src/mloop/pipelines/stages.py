"""Shell-command stages from ``mloop.yaml``, run by the same engine as Python steps.

.. code-block:: yaml

    stages:
      prepare:
        cmd: python prepare.py          # run by the shell, in the project root
        deps: [data/raw.csv, prepare.py]
        outs: [data/clean.csv]          # files or folders
        params: [prepare.split]         # dotted keys of params.yaml, optional
      train:
        cmd: python train.py
        deps: [data/clean.csv, train.py]
        params: [train.C]
        outs: [model.pkl]

A stage reads the stages that write its deps (an out equal to a dep, holding it, or inside
it): that is the whole wiring. Its cache key covers the command, the content of every
dep, the values of the params it names (not the rest of params.yaml) and the names of its
outs; its result is the outs themselves, stored by content behind a JSON manifest
``{path: {digest, size, mode}}``. The engine calls three hooks for these steps:
:func:`shell_key`, :func:`run_shell` on a miss and :func:`restore` on a hit.

Nothing here hashes a file the stat cache of :mod:`mloop.data.workspace` already knows
unchanged (size, mtime, inode), so a run where nothing changed costs one ``stat`` per file.
This module is on that path: it imports no pandas, NumPy or SQLAlchemy.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.hashing import hash_bytes
from mloop.core.paths import safe_join, safe_relpath
from mloop.core.settings import PROJECT_DIR
from mloop.errors import ConfigError, InvalidInputError, StepFailedError
from mloop.pipelines.dag import Pipeline
from mloop.pipelines.processes import StepProcesses
from mloop.pipelines.step import Step
from mloop.pipelines.values import ValueRef

if TYPE_CHECKING:
    from mloop.project import Project

STAGES_FILE = "mloop.yaml"
PARAMS_FILE = "params.yaml"
PIPELINE_NAME = "default"
PARSE_CACHE = "stages-parsed.json"  # in .mloop/
CACHE_FORMAT = 2  # 2: entries were checked against stagefile's schema when parsed
RACY_NS = 2_000_000_000
LOG_TAIL_LINES = 20
# Paths a stage may not write: mloop's own files (outs are deleted before their stage runs).
_RESERVED = (STAGES_FILE, PARAMS_FILE, ".mloop", ".git")


StepFailed = StepFailedError  # a command that failed, an out it did not write


# -- mloop.yaml ----------------------------------------------------------------------------


def load_stages(root: Path) -> Pipeline:
    """The stages of ``<root>/mloop.yaml`` as a :class:`Pipeline` named ``default``.

    Checked here, with errors that name the file and the stage: unknown keys, a missing
    ``cmd``, paths outside the project, two stages writing one path (or one inside the
    other), a stage reading its own out, a param key params.yaml lacks, a cycle. A dep
    that neither exists nor is written by a stage fails when the stage runs.
    """
    path = Path(root) / STAGES_FILE
    parses = _ParseCache(Path(root) / PROJECT_DIR / PARSE_CACHE)
    raw = _read_yaml(path, parses, required=True, schema=True)
    stages = raw["stages"]
    params_file: dict[str, Any] | None = None
    parsed: dict[str, dict[str, Any]] = {}
    for name, body in stages.items():
        spec = _parse_stage(path, str(name), body)
        if spec["params"]:
            if params_file is None:
                params_file = _params_of(Path(root) / PARAMS_FILE, parses, path, str(name))
            spec["params"] = {k: _param(params_file, k, path, str(name)) for k in spec["params"]}
        else:
            spec["params"] = {}
        parsed[str(name)] = spec
    _check_outs(path, parsed)
    parses.save()
    steps = [_make_step(name, spec, _upstream(path, name, spec, parsed))
             for name, spec in parsed.items()]
    pipe = Pipeline(PIPELINE_NAME, steps, description=f"the stages of {STAGES_FILE}")
    try:
        pipe.wire()
    except InvalidInputError as exc:
        raise ConfigError(f"{path}: {exc.message} Change the deps or outs so that the "
                          "stages form a graph without loops.") from None
    return pipe


def _read_yaml(path: Path, parses: _ParseCache, *, required: bool,
               schema: bool = False) -> Any:
    """The parsed file (through core.yamlio's limits), checked against mloop.yaml's schema
    when ``schema``; an unchanged file's last parse is reused, already checked."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError(f"No {path.name} in {path.parent}: write one with a 'stages:' "
                          "mapping (as in dvc.yaml), or name a Python pipeline.") from None
    hit, data = parses.get(path.name, st)
    if hit:
        return data
    from mloop.core.yamlio import load_yaml

    data = load_yaml(path)
    if schema:
        from mloop.pipelines import stagefile

        stagefile.check(data, path)
    parses.put(path.name, st, data)
    return data


class _ParseCache:
    """mloop.yaml and params.yaml as last parsed, by (size, mtime, inode): a no-op run
    then neither imports nor runs the YAML parser (~15 ms of a ~150 ms run).

    Like the stat cache, it trusts an unchanged stat; a file modified in the last
    ``RACY_NS`` is not cached, since a second write in the same clock tick would keep
    its mtime. Values JSON cannot carry exactly (dates, non-string keys) are not cached.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dirty = False
        try:
            self.entries: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            self.entries = {}

    def get(self, name: str, st: os.stat_result) -> tuple[bool, Any]:
        entry = self.entries.get(name)
        if isinstance(entry, dict) and entry.get("stat") == _stat(st) and \
                entry.get("format") == CACHE_FORMAT:
            return True, entry.get("data")
        return False, None

    def put(self, name: str, st: os.stat_result, data: Any) -> None:
        if time.time_ns() - st.st_mtime_ns < RACY_NS or not self.path.parent.is_dir():
            return
        try:
            exact = json.loads(json.dumps(data)) == data
        except (TypeError, ValueError):
            exact = False
        if exact:
            self.entries[name] = {"stat": _stat(st), "data": data, "format": CACHE_FORMAT}
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:  # a cache: a read-only project still runs
            tmp.unlink(missing_ok=True)


def _stat(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _parse_stage(path: Path, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """One stage, normalised (its shape was checked against stagefile's schema)."""
    where = f"{path}: stage {name!r}"
    cmd = body["cmd"]
    if isinstance(cmd, list):
        cmd = " && ".join(cmd)  # several commands run in turn, stopping at a failure
    return {"cmd": cmd, "desc": body.get("desc"),
            "deps": _paths(where, "deps", body.get("deps")),
            "outs": _paths(where, "outs", body.get("outs")),
            "params": _strings(where, "params", body.get("params"))}


def _strings(where: str, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        hint = (" (only keys of params.yaml, e.g. [train.C])" if key == "params" else
                " of paths relative to the project root")
        raise ConfigError(f"{where}: {key} must be a list{hint}, not {value!r}.")
    if len(set(items)) != len(items):
        raise ConfigError(f"{where}: {key} lists the same entry twice; remove the copy.")
    return list(items)


def _paths(where: str, key: str, value: Any) -> list[str]:
    out = []
    for item in _strings(where, key, value):
        try:
            rel = safe_relpath(item)
        except InvalidInputError as exc:
            raise ConfigError(f"{where}: {key}: {exc.message}") from None
        if key == "outs" and rel.split("/")[0] in _RESERVED:
            raise ConfigError(f"{where}: out {item!r} is mloop's own file or folder; a stage "
                              "cannot write it.")
        out.append(rel)
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: {key} lists the same path twice; remove the copy.")
    return out


def _params_of(params_path: Path, parses: _ParseCache, path: Path,
               stage: str) -> dict[str, Any]:
    data = _read_yaml(params_path, parses, required=False)
    if data is None and not params_path.exists():
        raise ConfigError(f"{path}: stage {stage!r} names params, but there is no "
                          f"{params_path.name} in {params_path.parent}; create it.")
    if not isinstance(data, dict):
        raise ConfigError(f"{params_path}: expected a mapping of param names to values.")
    return data


def _param(params: dict[str, Any], key: str, path: Path, stage: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            from mloop.core.schema import closest  # an error path: pydantic's import is fine

            found = closest(key, _dotted(params))
            hint = f" (did you mean {found!r}?)" if found else ""
            raise ConfigError(f"{path}: stage {stage!r} uses param {key!r}, which "
                              f"{PARAMS_FILE} does not have{hint}; add it there or remove it "
                              "from the stage's params.")
        node = node[part]
    # The value as JSON sees it (a YAML date becomes its text): it goes into a cache key.
    return json.loads(json.dumps(node, default=str))


def _dotted(params: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of params.yaml a stage may name: ``train``, ``train.C``, …"""
    out = []
    for key, value in params.items():
        out.append(f"{prefix}{key}")
        if isinstance(value, dict):
            out += _dotted(value, f"{prefix}{key}.")
    return out


def _overlap(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` are the same or one holds the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _check_outs(path: Path, parsed: dict[str, dict[str, Any]]) -> None:
    owners = [(out, name) for name, spec in parsed.items() for out in spec["outs"]]
    for i, (out, name) in enumerate(owners):
        for other, other_name in owners[i + 1:]:
            if _overlap(out, other):
                both = (f"stages {name!r} and {other_name!r} both write" if name != other_name
                        else f"stage {name!r} writes")
                raise ConfigError(f"{path}: {both} {out!r} and {other!r}, which overlap; "
                                  "let one stage write each path.")
    for name, spec in parsed.items():
        for dep in spec["deps"]:
            for out in spec["outs"]:
                if _overlap(dep, out):
                    raise ConfigError(f"{path}: stage {name!r} reads {dep!r} and writes "
                                      f"{out!r}; a stage cannot read its own out. Write to "
                                      "another path.")


def _upstream(path: Path, name: str, spec: dict[str, Any],
              parsed: dict[str, dict[str, Any]]) -> list[str]:
    return [other for other, o in parsed.items() if other != name
            and any(_overlap(dep, out) for dep in spec["deps"] for out in o["outs"])]


def _shell_step(**_: Any) -> None:
    """Stands in for a shell stage's function: the engine runs its ``cmd`` instead."""


def _make_step(name: str, spec: dict[str, Any], upstream: list[str]) -> Step:
    meta = {"cmd": spec["cmd"], "deps": spec["deps"], "outs": spec["outs"],
            "params": spec["params"]}
    if spec["desc"]:
        meta["desc"] = str(spec["desc"])
    return Step(_shell_step, name, (name,), dict.fromkeys(upstream, inspect.Parameter.empty),
                {}, inspect.Parameter.empty, kind="shell", meta=meta)


# -- the engine's hooks --------------------------------------------------------------------


def shell_key(project: Project, step: Step) -> dict[str, Any]:
    """What a shell step's cache key covers: cmd, dep digests, param values, out names.

    A file's digest is its BLAKE3; a folder's is a digest over its sorted (path, digest)
    pairs. Files the stat cache knows unchanged are not read. A dep that does not exist
    (and that no stage wrote) raises :class:`StepFailed` naming it.
    """
    from mloop.data.workspace import current_digests

    meta = step.meta
    deps: dict[str, str] = {}
    for dep in meta["deps"]:
        local = project.root / dep
        if not local.exists():
            raise StepFailed(f"Stage {step.name!r} depends on {dep!r}, which does not exist "
                             f"and no stage of {STAGES_FILE} writes: create it, or add a stage "
                             "with it in its outs.")
        digests = current_digests(project, local, dep) or {}
        if local.is_dir():
            deps[dep] = hash_bytes(json.dumps(sorted(digests.items())).encode())
        elif digests:
            deps[dep] = next(iter(digests.values()))
        else:
            raise StepFailed(f"Stage {step.name!r} depends on {dep!r}, which is neither a "
                             "regular file nor a folder; point it at one.")
    return {"cmd": meta["cmd"], "deps": deps, "params": meta["params"],
            "outs": list(meta["outs"])}


def run_shell(project: Project, step: Step, log_path: Path,
              procs: StepProcesses | None = None) -> ValueRef:
    """Run the stage's cmd in the project root (output to ``log_path``) and store its outs.

    The outs are deleted first, so a stale file never passes for a new one. A non-zero
    exit, or an out the command did not write, raises :class:`StepFailed` (with the last
    lines of the log). Returns a ``files`` ref to the manifest of the stored outs.
    """
    meta = step.meta
    root = project.root
    for out in meta["outs"]:
        _remove(_inside(root, out))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # a retry adds to the log of the attempts before
        code = (procs or StepProcesses()).run(  # guarded: it dies with the engine
            meta["cmd"], cwd=root, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    if code != 0:
        how = (f"was killed by signal {-code}" if code < 0
               else f"exited with status {code}")
        raise StepFailed(f"Stage {step.name!r} failed: `{meta['cmd']}` {how}. The last lines "
                         f"of its log ({log_path}):\n{_tail(log_path)}")
    missing = [out for out in meta["outs"] if not (root / out).exists()]
    if missing:
        raise StepFailed(f"Stage {step.name!r} finished but did not write "
                         f"{', '.join(map(repr, missing))}: make `{meta['cmd']}` write it, or "
                         f"remove it from the stage's outs in {STAGES_FILE}.")
    manifest = _store_outs(project, meta["outs"])
    digest = project.objects.put_bytes(json.dumps(manifest, sort_keys=True).encode())
    total = sum(e["size"] for e in manifest.values())
    return ValueRef("files", digest, None, _summary(len(manifest), total))


def restore(project: Project, step: Step, ref: ValueRef) -> int:
    """Make the workspace hold exactly the outs ``ref`` names; the number of files
    written or removed (0 when they are intact, which the stat cache decides without
    reading them). Files are written temp file → rename, after verifying their bytes."""
    from mloop.data.workspace import current_digests

    manifest: dict[str, dict[str, Any]] = json.loads(project.objects.get_bytes(ref.digest))
    root = project.root
    changed = 0
    written: dict[str, list[tuple[str, str]]] = {}
    for out in step.meta["outs"]:
        wanted = {p: e for p, e in manifest.items() if p == out or p.startswith(out + "/")}
        local = _inside(root, out)
        is_file = out in wanted
        wrong_kind = local.is_dir() if is_file else (local.is_file() or local.is_symlink())
        if wrong_kind:
            _remove(local)  # a file where a folder belongs, or the other way round
        found = (current_digests(project, local, out) or {}) if local.exists() else {}
        have = {out if is_file else f"{out}/{inner}": d for inner, d in found.items()}
        for rel, entry in wanted.items():
            if have.get(rel) != entry["digest"]:
                dest = _inside(root, rel)
                project.objects.get_file(entry["digest"], dest)
                os.chmod(dest, entry.get("mode", 0o644))
                written.setdefault(out, []).append((rel, entry["digest"]))
        for rel in sorted(set(have) - set(wanted)):
            _inside(root, rel).unlink()
        changed += len(written.get(out, ())) + len(set(have) - set(wanted))
        if not wanted:
            local.mkdir(parents=True, exist_ok=True)  # an out folder that was empty
    for out, files in written.items():
        _remember(project, out, files)
    return changed


def blobs(project: Project, ref: ValueRef) -> set[str]:
    """Every blob a ``files`` ref needs: its manifest and each out file (for gc and push)."""
    manifest = json.loads(project.objects.get_bytes(ref.digest))
    return {ref.digest} | {e["digest"] for e in manifest.values()}


# -- helpers -------------------------------------------------------------------------------


def _inside(root: Path, rel: str) -> Path:
    """``root / rel``, refused when a symlink on the way leads out of the project."""
    path = safe_join(root, rel)
    real_root = root.resolve()
    resolved = path.parent.resolve() / path.name  # the out itself may be a (dangling) link
    if resolved != real_root and real_root not in resolved.parents:
        raise StepFailed(f"{rel!r} leads outside the project (through a symlink); stages "
                         "read and write only inside it.")
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _tail(log_path: Path) -> str:
    with open(log_path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 16_384))
        lines = f.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(f"  {line}" for line in lines) or "  (the log is empty)"


def _store_outs(project: Project, outs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Put every file of the outs in the object store; its manifest entries, by path."""
    from mloop.data.catalog import scan

    manifest: dict[str, dict[str, Any]] = {}
    for out in outs:
        kind, files = scan(project.root / out)
        stored = []
        for full, inner, st in files:
            rel = out if kind == "file" else f"{out}/{inner}"
            digest = project.objects.put_file(full)
            manifest[rel] = {"digest": digest, "size": st.st_size, "mode": st.st_mode & 0o777}
            stored.append((rel, digest))
        _remember(project, out, stored)
    return manifest


def _remember(project: Project, out: str, files: list[tuple[str, str]]) -> None:
    """Tell the stat cache the digests of files just hashed or written under ``out``."""
    from mloop.data.chunks import FileEntry
    from mloop.data.workspace import remember_stats

    local = project.root / out
    if local.is_file():
        entries = [FileEntry(local.name, 0, digest, ()) for _, digest in files]
        remember_stats(project, local, out, "file", entries)
    else:
        entries = [FileEntry(rel[len(out) + 1:], 0, digest, ()) for rel, digest in files]
        remember_stats(project, local, out, "folder", entries)


def _summary(count: int, size: int) -> str:
    files = f"{count:,} file{'' if count == 1 else 's'}"
    if size >= 1_000_000:
        return f"{files}, {size / 1e6:,.1f} MB"
    return f"{files}, {size / 1e3:,.1f} kB"
