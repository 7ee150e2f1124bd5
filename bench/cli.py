"""The command line's everyday latencies, this source tree against a baseline, in one run.

What people feel every day is how long a command takes to answer: ``mloop --help``, ``mloop
data status`` on a one-file project, a no-op ``mloop pipeline run`` (every stage cached),
``mloop runs list`` and ``mloop models list``. Each is timed from launch to exit, best of
``--repeat``, in one project made here, with the commands of the two trees interleaved so
that the machine's load falls on both alike. The baseline is another mloop source tree
(``--baseline DIR``: its ``src`` folder, e.g. a ``git worktree`` of the commit before a
change), which is how a change is checked for a start-up regression; without it only this
tree is timed. The peer for these figures is DVC's own start-up (``dvc status`` on the
same data, when DVC is installed): the leanest command of the tool mloop replaces.

Both trees run with compiled bytecode, as after a pip install (compiled here, beside the
sources, before anything is timed).

Usage: python bench/cli.py [--baseline DIR] [--repeat 15] [--no-peer]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent.parent / "src"

STAGES = """stages:
  prepare:
    cmd: python -c "open('out.txt', 'w').write(open('data.csv').read().upper())"
    deps: [data.csv]
    outs: [out.txt]
"""

COMMANDS = {  # label -> arguments after `mloop`
    "mloop --help": ["--help"],
    "mloop data status (one file)": ["data", "status"],
    "mloop pipeline run (no-op, cached)": ["-q", "pipeline", "run"],
    "mloop runs list": ["runs", "list"],
    "mloop models list": ["models", "list"],
}


def environment(src: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    env["MLOOP_QUIET"] = "1"
    return env


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-1500:]}")
    return elapsed


def make_project(root: Path, env: dict[str, str]) -> None:
    """A project with one versioned file, one logged run, one registered model and a
    one-stage pipeline that has run once (so the next run is a no-op)."""
    mloop = str(BIN / "mloop")
    subprocess.run([mloop, "-q", "init", "."], cwd=root, env=env, check=True)
    (root / "data.csv").write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(1000)))
    subprocess.run([mloop, "-q", "data", "add", "data.csv"], cwd=root, env=env, check=True)
    (root / "mloop.yaml").write_text(STAGES)
    subprocess.run([mloop, "-q", "pipeline", "run"], cwd=root, env=env, check=True)
    script = ("import mloop\nfrom sklearn.linear_model import LogisticRegression\n"
              "import numpy as np\nX = np.arange(40.0).reshape(20, 2); y = np.arange(20) % 2\n"
              "with mloop.start_run():\n"
              "    mloop.log_metric('acc', 0.9)\n"
              "    mloop.log_model(LogisticRegression().fit(X, y), registered_name='m')\n")
    subprocess.run([sys.executable, "-c", script], cwd=root, env=env, check=True,
                   capture_output=True)


def compile_tree(src: Path) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "mloop")], check=True,
                   env=environment(src))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path,
                        help="another mloop checkout (or its src folder) to compare with")
    parser.add_argument("--repeat", type=int, default=15, help="launches per command (best)")
    parser.add_argument("--no-peer", action="store_true", help="skip DVC's start-up")
    args = parser.parse_args(argv)
    trees = {"this tree": HERE}
    if args.baseline is not None:
        base = args.baseline.resolve()
        base = base / "src" if (base / "src" / "mloop").is_dir() else base
        if not (base / "mloop").is_dir():
            parser.error(f"--baseline {args.baseline}: no mloop package there (give a "
                         "checkout or its src folder)")
        trees["baseline"] = base
    for src in trees.values():
        compile_tree(src)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores); best of {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="mloop-cli-bench-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        make_project(root, environment(HERE))
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.repeat):
            for label, words in COMMANDS.items():
                for name, src in trees.items():
                    seconds = timed([str(BIN / "mloop"), *words], root, environment(src))
                    key = (label, name)
                    best[key] = min(best.get(key, seconds), seconds)
        peer = None if args.no_peer or shutil.which("dvc", path=str(BIN)) is None else \
            dvc_status(Path(tmp) / "dvc", root / "data.csv", args.repeat)
    for label in COMMANDS:
        text = f"{label:<38} {best[(label, 'this tree')] * 1000:7.1f} ms"
        if "baseline" in trees:
            ours, theirs = best[(label, "this tree")], best[(label, "baseline")]
            text += f"   baseline {theirs * 1000:7.1f} ms   this/baseline {ours / theirs:4.2f}x"
        print(text)
    if peer is not None:
        status = best[("mloop data status (one file)", "this tree")]
        print(f"{'dvc status (one file), the peer':<38} {peer * 1000:7.1f} ms   "
              f"DVC/mloop data status {peer / status:4.2f}x")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def dvc_status(root: Path, data: Path, repeat: int) -> float:
    """DVC's ``dvc status`` on the same one-file data (best of ``repeat``)."""
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    dvc = str(BIN / "dvc")
    for cmd in ([dvc, "init", "--no-scm", "-q"], [dvc, "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=root, env=env, check=True)
    shutil.copy(data, root / "data.csv")
    subprocess.run([dvc, "add", "-q", "data.csv"], cwd=root, env=env, check=True)
    return min(timed([dvc, "status", "-q"], root, env) for _ in range(repeat))


if __name__ == "__main__":
    sys.exit(main())
