"""Code fingerprints follow project helpers, constants, closures and classes — not libraries."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import linecache
import os
import runpy
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mloop.core.hashing import is_digest
from mloop.pipelines.fingerprint import describe, fingerprint

FILES = {
    "helpers_deep.py": """
        def inner(x):
            return x * 2
        """,
    "helpers.py": """
        import helpers_deep

        THRESHOLD = 0.5
        FEATURES = ["a", "b"]


        def outer(x):
            return helpers_deep.inner(x) + 1


        def scale(x):
            return x * 10


        def ping(n):
            return pong(n - 1) if n > 0 else 0


        def pong(n):
            return ping(n)


        class Scaler:
            def __init__(self, k):
                self.k = k

            def apply(self, x):
                return helpers_deep.inner(x) * self.k
        """,
    "unrelated.py": """
        # nothing imports this module
        def noise():
            return 1
        """,
    "steps.py": """
        import numpy as np
        import pandas as pd

        import helpers
        from helpers import FEATURES


        def step_a(x):
            return helpers.outer(x)


        def step_b(values):
            return pd.DataFrame({"v": [float(np.mean(values))]})


        def step_c(x):
            return x > helpers.THRESHOLD


        def step_d(xs):
            f = lambda v: helpers.outer(v)
            return [helpers.scale(v) for v in xs], f


        def make_closure():
            fn = helpers.outer

            def step_e(x):
                return fn(x)

            return step_e


        step_e = make_closure()


        def step_f(x):
            return helpers.Scaler(2).apply(x)


        def step_g(n):
            return helpers.ping(n)


        def step_h(x):
            import helpers as local

            return local.scale(x)


        def step_i(row):
            return [row[name] for name in FEATURES]


        class Local:
            def run(self, x):
                return helpers.scale(x)


        def step_j(x):
            return Local().run(x)
        """,
}


class Project:
    """A throwaway project on sys.path whose modules are re-imported after each edit."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self._monkeypatch = monkeypatch
        for name, text in FILES.items():
            self.write(name, text)

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    def load(self, module: str = "steps") -> types.ModuleType:
        self.purge()
        importlib.invalidate_caches()
        linecache.clearcache()  # an edit of equal size within one mtime tick
        return importlib.import_module(module)

    def purge(self) -> None:
        prefix = str(self.root) + os.sep  # the sys.path entry our modules were found by
        ours = {p.stem for p in self.root.iterdir()}
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None)).startswith(prefix):
                del sys.modules[name]
            elif name.partition(".")[0] in ours:  # another test's `helpers`: set aside
                self._monkeypatch.delitem(sys.modules, name)

    def fp(self, fn: Callable[..., Any]) -> str:
        return fingerprint(fn, roots=[self.root])

    def fps(self) -> dict[str, str]:
        steps = self.load()
        return {name: self.fp(getattr(steps, name)) for name in dir(steps)
                if name.startswith("step_")}

    def names(self, fn: Callable[..., Any]) -> list[str]:
        return describe(fn, roots=[self.root])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc after an edit
    proj = Project(tmp_path, monkeypatch)
    proj.purge()
    yield proj
    proj.purge()


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_fingerprint_is_a_digest_and_describe_names_the_helpers(project: Project) -> None:
    steps = project.load()
    assert is_digest(project.fp(steps.step_a))
    assert project.names(steps.step_a) == ["helpers.outer", "helpers_deep.inner", "steps.step_a"]


def test_a_helper_two_calls_deep_invalidates_only_its_users(project: Project) -> None:
    before = project.fps()
    project.edit("helpers_deep.py", "x * 2", "x * 3")
    # step_f: helpers.Scaler.apply calls inner too
    assert _changed(before, project.fps()) == {"step_a", "step_d", "step_e", "step_f"}


def test_a_constant_invalidates_only_its_users(project: Project) -> None:
    before = project.fps()
    project.edit("helpers.py", "THRESHOLD = 0.5", "THRESHOLD = 0.6")
    assert _changed(before, project.fps()) == {"step_c"}
    assert "helpers.THRESHOLD" in project.names(project.load().step_c)


def test_a_list_global_is_hashed_by_its_assignment_not_its_run_time_value(
        project: Project) -> None:
    steps = project.load()
    first = project.fp(steps.step_i)
    assert "helpers.FEATURES" in project.names(steps.step_i)
    steps.FEATURES.append("filled at run time")
    assert project.fp(steps.step_i) == first
    before = project.fps()
    project.edit("helpers.py", 'FEATURES = ["a", "b"]', 'FEATURES = ["a", "c"]')
    assert _changed(before, project.fps()) == {"step_i"}


def test_comments_and_line_shifts_change_nothing(project: Project) -> None:
    before = project.fps()
    project.edit("unrelated.py", "# nothing imports this module", "# still nothing")
    project.edit("helpers.py", "import helpers_deep\n", "import helpers_deep\n\n# moved down\n\n")
    assert _changed(before, project.fps()) == set()


def test_mutual_recursion_terminates(project: Project) -> None:
    steps = project.load()
    assert project.names(steps.step_g) == ["helpers.ping", "helpers.pong", "steps.step_g"]
    before = project.fps()
    project.edit("helpers.py", "return ping(n)", "return ping(n - 0)")
    assert _changed(before, project.fps()) == {"step_g"}


def test_lambdas_and_comprehensions_are_followed(project: Project) -> None:
    steps = project.load()
    assert {"helpers.outer", "helpers.scale"} <= set(project.names(steps.step_d))
    before = project.fps()
    project.edit("helpers.py", "x * 10", "x * 11")
    assert _changed(before, project.fps()) == {"step_d", "step_h", "step_j"}


def test_a_closure_over_a_project_function_is_followed(project: Project) -> None:
    steps = project.load()
    assert {"helpers.outer", "helpers_deep.inner"} <= set(project.names(steps.step_e))


def test_a_closure_over_a_constant_is_hashed_by_value(project: Project) -> None:
    project.write("made.py", """
        def make(k):
            def step(x):
                return x * k
            return step
        """)
    made = project.load("made")
    assert project.fp(made.make(2)) != project.fp(made.make(3))
    assert project.fp(made.make(2)) == project.fp(made.make(2))
    assert "made.make.<locals>.step.<closure>.k" in project.names(made.make(2))


def test_a_project_class_is_included_and_a_method_edit_invalidates(project: Project) -> None:
    steps = project.load()
    assert {"helpers.Scaler", "helpers_deep.inner"} <= set(project.names(steps.step_f))
    before = project.fps()
    project.edit("helpers.py", "* self.k", "* self.k * 1")
    assert _changed(before, project.fps()) == {"step_f"}


def test_library_code_is_not_described(project: Project) -> None:
    assert project.names(project.load().step_b) == ["steps.step_b"]


def test_site_packages_under_a_root_is_library(project: Project) -> None:
    site = project.root / ".venv" / "lib" / "python3.11" / "site-packages"
    project.write(".venv/lib/python3.11/site-packages/fakelib.py", """
        def util(x):
            return x
        """)
    project.write("uses_lib.py", """
        import fakelib

        def step(x):
            return fakelib.util(x)
        """)
    sys.path.insert(0, str(site))
    try:
        first = project.load("uses_lib")
        assert project.names(first.step) == ["uses_lib.step"]
        project.edit(".venv/lib/python3.11/site-packages/fakelib.py", "return x", "return -x")
        assert project.fp(project.load("uses_lib").step) == project.fp(first.step)
    finally:
        sys.path.remove(str(site))


PACKAGE = {
    "pkg/__init__.py": "",
    "pkg/sub.py": """
        import functools
        from dataclasses import dataclass


        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a):
                return fn(*a)
            return wrapper


        @deco
        def decorated(x):
            return x - 1


        @dataclass
        class Cfg:
            lr: float = 0.1


        class Base:
            def hook(self):
                return "base"


        class Child(Base):
            def run(self):
                return self.hook()
        """,
    "pkg/flow.py": """
        import numpy as np

        from .sub import Cfg, Child, decorated

        CFG = Cfg(lr=0.2)
        MODEL = Child()
        mean = np.mean
        CACHE = {}


        def step(x):
            CACHE[x] = 1
            return decorated(x), MODEL.run(), CFG, mean(x)
        """,
}


@pytest.mark.parametrize(("file", "old", "new"), [
    ("pkg/sub.py", "return fn(*a)", "return fn(*a) or 0"),  # the decorator's wrapper
    ("pkg/sub.py", "return x - 1", "return x - 2"),  # the decorated helper
    ("pkg/sub.py", 'return "base"', 'return "BASE"'),  # a base class, reached via self
    ("pkg/sub.py", "lr: float = 0.1", "lr: float = 0.3"),  # a dataclass
    ("pkg/flow.py", "Cfg(lr=0.2)", "Cfg(lr=0.25)"),  # an instance's arguments
    ("pkg/flow.py", "mean = np.mean", "mean = np.median"),  # a library alias
])
def test_decorators_bases_instances_and_aliases_are_followed(
        project: Project, file: str, old: str, new: str) -> None:
    for name, text in PACKAGE.items():
        project.write(name, text)
    flow = project.load("pkg.flow")
    before = project.fp(flow.step)
    flow.step(3)  # filling CACHE at run time changes nothing
    assert project.fp(flow.step) == before
    project.edit(file, old, new)
    assert project.fp(project.load("pkg.flow").step) != before


def test_describe_names_what_a_package_step_depends_on(project: Project) -> None:
    for name, text in PACKAGE.items():
        project.write(name, text)
    assert project.names(project.load("pkg.flow").step) == [
        "pkg.flow.CACHE", "pkg.flow.CFG", "pkg.flow.MODEL", "pkg.flow.mean", "pkg.flow.step",
        "pkg.sub.Base", "pkg.sub.Cfg", "pkg.sub.Child", "pkg.sub.deco.<locals>.wrapper",
        "pkg.sub.decorated"]


def test_a_function_import_inside_the_step_is_followed(project: Project) -> None:
    assert "helpers.scale" in project.names(project.load().step_h)


def test_wrappers_are_unwrapped(project: Project) -> None:
    steps = project.load()

    class Step:  # the shape of mloop's Step: the function in `fn`
        def __init__(self, fn: Callable[..., Any]) -> None:
            self.fn = fn

        def __call__(self, *args: Any) -> Any:
            return self.fn(*args)

    @functools.wraps(steps.step_a)
    def decorated(x: Any) -> Any:
        return steps.step_a(x)

    plain = project.fp(steps.step_a)
    assert project.fp(Step(steps.step_a)) == plain
    assert "helpers_deep.inner" in project.names(decorated)
    by_two = project.fp(functools.partial(steps.step_c, 2))
    assert by_two != project.fp(functools.partial(steps.step_c, 3))
    assert by_two == project.fp(functools.partial(steps.step_c, 2))


def test_a_script_and_its_import_agree(project: Project) -> None:
    as_script = runpy.run_path(str(project.root / "steps.py"), run_name="__main__")
    steps = project.load()
    for name in ("step_a", "step_c", "step_j"):  # step_j: a class defined in the script
        assert project.fp(as_script[name]) == project.fp(getattr(steps, name))
        assert project.names(as_script[name]) == project.names(getattr(steps, name))
    assert project.names(steps.step_j) == ["helpers.scale", "steps.Local", "steps.step_j"]


def test_a_module_loaded_under_another_name_is_described_by_its_path(
        project: Project) -> None:
    spec = importlib.util.spec_from_file_location("mloop_user_steps", project.root / "steps.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mloop_user_steps"] = module
    try:
        spec.loader.exec_module(module)
        assert project.names(module.step_c) == ["helpers.THRESHOLD", "steps.step_c"]
        assert project.fp(module.step_c) == project.fp(project.load().step_c)
    finally:
        sys.modules.pop("mloop_user_steps", None)


EXEC_SOURCE = """
def helper(x):
    return x in {"a", "b", "c"}

def made(x):
    return [helper(v) for v in x]
"""


def _exec_step(source: str) -> Callable[..., Any]:
    # dont_inherit: this module's `from __future__ import annotations` would otherwise set
    # a flag in the code object that a plain `python -c` does not (and the flag is hashed)
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec", dont_inherit=True), namespace)
    return namespace["made"]


def test_a_function_made_by_exec_fingerprints(tmp_path: Path) -> None:
    made = _exec_step(EXEC_SOURCE)
    first = fingerprint(made, roots=[tmp_path])
    for _ in range(2000):  # warm up the specialising interpreter: co_code stays the same
        made(["a", "z"])
    assert fingerprint(made, roots=[tmp_path]) == first
    assert fingerprint(_exec_step(EXEC_SOURCE), roots=[tmp_path]) == first
    edited = EXEC_SOURCE.replace('"c"', '"d"')  # only the helper changes
    assert fingerprint(_exec_step(edited), roots=[tmp_path]) != first
    assert describe(made, roots=[tmp_path]) == ["<exec>.helper", "<exec>.made"]


def test_builtins_and_odd_callables_do_not_raise(tmp_path: Path) -> None:
    assert is_digest(fingerprint(len, roots=[tmp_path]))
    assert fingerprint(len, roots=[tmp_path]) != fingerprint(max, roots=[tmp_path])
    assert is_digest(fingerprint(functools.partial(max, 1), roots=[tmp_path]))


def test_the_fingerprint_is_equal_in_fresh_processes(project: Project) -> None:
    steps = project.load()
    here = [project.fp(getattr(steps, name)) for name in ("step_a", "step_f", "step_i")]
    here.append(fingerprint(_exec_step(EXEC_SOURCE), roots=[project.root]))
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(project.root)!r})
        import steps
        from mloop.pipelines.fingerprint import fingerprint
        root = [Path({str(project.root)!r})]
        for name in ("step_a", "step_f", "step_i"):
            print(fingerprint(getattr(steps, name), roots=root))
        namespace = {{}}
        exec(compile({EXEC_SOURCE!r}, "<generated>", "exec"), namespace)
        print(fingerprint(namespace["made"], roots=root))
        """)
    for seed in ("0", "12345"):  # set iteration order follows the hash seed
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, cwd=project.root, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == here
