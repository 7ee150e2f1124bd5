"""Only the repository layer talks to the metadata store.

Every stored thing's SQL lives in ``mloop/repositories/`` (with the store's own machinery
in ``mloop/store/``): a module elsewhere that imports a database driver, SQLAlchemy or the
store's tables, or holds SQL text, fails here. A reader then finds all of a table's
statements in one module, and the HTTP backend of the team server can stand in for the
SQL one without a statement left behind.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import mloop

SRC = Path(mloop.__file__).parent
OWNERS = ("repositories", "store")  # the packages allowed to hold SQL

# Modules with a database of their own, not the metadata store.
OWN_DATABASE = {
    "serving/broker.py": "the SQLite job queue: a broker over its own file, beside Redis",
}

# Modules that open or warm the store without running statements of their own.
INFRASTRUCTURE = {
    "project.py": "the context object: opens the Store on first use",
}

DRIVERS = ("sqlalchemy", "sqlite3", "psycopg", "mloop.store.schema", "mloop.store.lite",
           "mloop.store.engine")
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
                 r"ON\s+CONFLICT|CREATE\s+(TABLE|INDEX))\b", re.DOTALL)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                ids.add(id(body[0].value))
    return ids


def problems(path: Path) -> list[str]:
    """What in ``path`` talks to a database: driver imports and SQL text."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if any(name == d or name.startswith(d + ".") for d in DRIVERS):
                found.append(f"line {node.lineno}: imports {name}")
                break
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docs and SQL.search(node.value)):
            found.append(f"line {node.lineno}: SQL text {node.value[:60]!r}")
    return found


def _modules() -> list[str]:
    return sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                  if p.relative_to(SRC).parts[0] not in OWNERS)


def test_no_sql_outside_the_repository_layer() -> None:
    allowed = OWN_DATABASE.keys() | INFRASTRUCTURE.keys()
    offenders = {rel: found for rel in _modules()
                 if rel not in allowed and (found := problems(SRC / rel))}
    assert not offenders, "\n".join(f"{rel}: {'; '.join(found[:3])}"
                                    for rel, found in offenders.items())


def test_the_check_sees_sql_and_drivers(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('"""SELECT x FROM docs is prose."""\nimport sqlite3\n'
                      'Q = "SELECT id FROM runs WHERE x = 1"\n'
                      'from sqlalchemy import select\n', encoding="utf-8")
    found = problems(sample)
    assert len(found) == 3 and not any("prose" in f for f in found)


def test_listed_modules_exist() -> None:
    for rel in OWN_DATABASE.keys() | INFRASTRUCTURE.keys():
        assert (SRC / rel).is_file(), rel
