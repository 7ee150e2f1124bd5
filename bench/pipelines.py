"""Shell-stage pipelines, mloop vs DVC, on the same 10 stages in one run.

The pipeline is a diamond: one source stage, four parallel branches of two stages each,
one merge stage. Every stage runs ``python work.py …``, which does about a second of
real CPU work (rounds of SHA-256 over 1 MiB, calibrated on this machine, deterministic)
and writes its outs (files, and a folder per branch). mloop reads it from ``mloop.yaml``
in a project made by ``mloop init``; DVC reads the very same text as ``dvc.yaml`` in a
git repository made by ``dvc init``; both share one ``params.yaml``. Both run through
their command lines, as a user would: ``mloop pipeline run`` and ``dvc repro``.

Both run with compiled bytecode, warmed up once. Measured: (a) the first run, (b) a
no-op re-run (everything cached; best of 3), (c) a re-run after changing a param only
one branch uses. Goals: no-op ≥ 10× faster than DVC, first run ≥ 1.5× faster thanks to
parallel branches on 2 cores (both tools are pinned to ``--cores`` CPUs). The final
outputs of both tools must be identical.

(d) measures what a Python step costs beyond its work: a chain of 10 trivial Python steps
run with warm step processes (forked from the run's zygote, the default) and with a fresh
interpreter per step (``MLOOP_STEP_PROCESSES=fresh``, the mode before), and DVC's
``dvc repro --force`` of 10 trivial ``python -c`` stages. Goals: ≤ 100 ms per warm step,
the warm run ≥ 5× faster than the fresh one.

Usage: python bench/pipelines.py [--smoke] [--no-peer] [--seconds 1.0] [--cores 2] [--profile]
                                 [--only stages|steps]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
BRANCHES = 4
CHANGED = 2  # the branch whose seed (c) changes

# What every stage runs: hash its inputs, then ROUNDS rounds of SHA-256 over 1 MiB.
WORK_PY = '''\
"""One benchmark stage: python work.py SEED_KEY OUT INPUT... (an OUT ending in / is a folder)."""
import hashlib
import sys
from pathlib import Path

import yaml

seed_key, out, *inputs = sys.argv[1:]
params = yaml.safe_load(Path("params.yaml").read_text())
seed = "-" if seed_key == "-" else str(params[seed_key.split(".")[0]][seed_key.split(".")[1]])
h = hashlib.sha256(seed.encode())
for name in inputs:
    files = sorted(p for p in Path(name).rglob("*") if p.is_file()) if Path(name).is_dir() \\
        else [Path(name)]
    for f in files:
        h.update(f.read_bytes())
block = h.digest() * 32768  # 1 MiB
for _ in range(params["work"]["rounds"]):
    block = hashlib.sha256(block).digest() * 32768
result = hashlib.sha256(block).hexdigest()
if out.endswith("/"):
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "model.bin").write_bytes(bytes.fromhex(result) * 8192)
    (Path(out) / "metrics.json").write_text('{"digest": "%s"}\\n' % result)
else:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(bytes.fromhex(result) * 8192)
print(sys.argv[2], result)
'''


def stages_yaml() -> str:
    """The pipeline, in the form mloop.yaml and dvc.yaml share."""
    lines = ["stages:",
             "  source:",
             "    cmd: python work.py - data/source.bin raw.bin",
             "    deps: [raw.bin, work.py]",
             "    params: [work.rounds]",
             "    outs: [data/source.bin]"]
    for i in range(1, BRANCHES + 1):
        lines += [f"  features{i}:",
                  f"    cmd: python work.py branch{i}.seed data/features{i}.bin data/source.bin",
                  "    deps: [data/source.bin, work.py]",
                  f"    params: [work.rounds, branch{i}.seed]",
                  f"    outs: [data/features{i}.bin]",
                  f"  train{i}:",
                  f"    cmd: python work.py - models/branch{i}/ data/features{i}.bin",
                  f"    deps: [data/features{i}.bin, work.py]",
                  "    params: [work.rounds]",
                  f"    outs: [models/branch{i}]"]
    models = ", ".join(f"models/branch{i}" for i in range(1, BRANCHES + 1))
    lines += ["  merge:",
              "    cmd: python work.py - report.bin "
              + " ".join(f"models/branch{i}" for i in range(1, BRANCHES + 1)),
              f"    deps: [{models}, work.py]",
              "    params: [work.rounds]",
              "    outs: [report.bin]"]
    return "\n".join(lines) + "\n"


def params_yaml(rounds: int, changed_seed: int | None = None) -> str:
    seeds = {i: i for i in range(1, BRANCHES + 1)}
    if changed_seed is not None:
        seeds[CHANGED] = changed_seed
    return f"work:\n  rounds: {rounds}\n" + "".join(
        f"branch{i}:\n  seed: {seeds[i]}\n" for i in range(1, BRANCHES + 1))


def calibrate(seconds: float) -> int:
    """SHA-256 rounds over 1 MiB that take ``seconds`` here (at least 1)."""
    block, n, start = bytes(1 << 20), 0, time.perf_counter()
    while time.perf_counter() - start < 0.3:
        block = hashlib.sha256(block).digest() * 32768
        n += 1
    return max(1, round(n / (time.perf_counter() - start) * seconds))


# Both tools run with compiled bytecode, as after a pip install (some environments set
# PYTHONDONTWRITEBYTECODE, which makes every start-up compile mloop's source again): it is
# kept in the bench's temp folder, and a warm-up run of each tool fills it before timing.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{out.stdout[-2000:]}\n"
                           f"{out.stderr[-3000:]}")
    return elapsed, out.stdout + out.stderr


def setup(root: Path, rounds: int) -> None:
    root.mkdir(parents=True)
    (root / "work.py").write_text(WORK_PY)
    (root / "params.yaml").write_text(params_yaml(rounds))
    (root / "raw.bin").write_bytes(hashlib.sha256(b"raw").digest() * 65536)  # 2 MiB


class Mloop:
    name = "mloop"

    def __init__(self, root: Path, rounds: int) -> None:
        setup(root, rounds)
        self.root = root
        run([str(BIN / "mloop"), "-q", "init", "."], root)
        (root / "mloop.yaml").write_text(stages_yaml())

    def cmd(self) -> list[str]:
        return [str(BIN / "mloop"), "-q", "pipeline", "run", "--json"]

    def repro(self) -> tuple[float, int]:
        """(seconds, stages that ran)."""
        elapsed, out = run(self.cmd(), self.root)
        result = json.loads(out[out.index("{"):])
        if result["status"] != "succeeded":
            raise RuntimeError(f"mloop pipeline run: {result['status']}: {result['error']}")
        return elapsed, sum(s["status"] == "ran" for s in result["steps"])


class DVC:
    name = "DVC"

    def __init__(self, root: Path, rounds: int) -> None:
        setup(root, rounds)
        self.root = root
        run(["git", "init", "-q"], root)
        run([str(BIN / "dvc"), "init", "-q"], root)
        run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
        (root / "dvc.yaml").write_text(stages_yaml())

    def repro(self) -> tuple[float, int]:
        elapsed, out = run([str(BIN / "dvc"), "repro"], self.root)
        return elapsed, len(re.findall(r"^Running stage", out, re.M))


def line(label: str, ours: float, theirs: float | None, goal: float | None = None) -> str:
    if theirs is None:
        return f"{label:<52} mloop {ours:>8.3f} s"
    ratio = theirs / ours if ours else float("inf")
    text = (f"{label:<52} mloop {ours:>8.3f} s   DVC {theirs:>8.3f} s   "
            f"mloop is {ratio:,.1f}x faster")
    if goal is not None:
        text += f"   (goal ≥ {goal:g}x: {'met' if ratio >= goal else 'NOT met'})"
    return text


def measure(tool: Mloop | DVC, repeats: int) -> dict[str, float]:
    r: dict[str, float] = {}
    r["first"], ran = tool.repro()
    assert ran == 2 * BRANCHES + 2, f"{tool.name}: first run ran {ran} stages"
    r["output_first"] = int((tool.root / "report.bin").read_bytes()[:4].hex(), 16)
    noop = []
    for _ in range(repeats):
        seconds, ran = tool.repro()
        assert ran == 0, f"{tool.name}: a no-op re-run ran {ran} stages"
        noop.append(seconds)
    r["noop"] = min(noop)
    params = (tool.root / "params.yaml").read_text()
    rounds = int(params.split("rounds: ")[1].split()[0])
    (tool.root / "params.yaml").write_text(params_yaml(rounds, changed_seed=20))
    r["param"], ran = tool.repro()
    assert ran == 3, f"{tool.name}: after changing branch{CHANGED}.seed, {ran} stages ran"
    r["output_param"] = int((tool.root / "report.bin").read_bytes()[:4].hex(), 16)
    return r


def profile(project: Path, noop: float, start: float) -> None:
    """Where mloop's no-op re-run spends its time: start-up, imports, then the work."""
    cmd = [sys.executable, "-m", "mloop", "-q", "pipeline", "run"]
    time.sleep(2.1)  # params.yaml was just edited: let mloop's parse cache take it (RACY_NS)
    subprocess.run(cmd, cwd=project, capture_output=True, check=True, env=ENV)
    env = dict(ENV, PYTHONPROFILEIMPORTTIME="1")
    out = subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=env, check=True)
    top = []
    for text in out.stderr.splitlines():
        parts = text.split("|")
        # top level: imported by the command itself, not by another import (2 spaces deeper)
        if text.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit() \
                and not parts[2].startswith("   "):
            top.append((int(parts[1]) / 1000, parts[2].strip()))
    imports = sum(ms for ms, _ in top)
    print(f"\nmloop no-op re-run: {noop * 1000:.0f} ms = python start-up {start * 1000:.0f} ms"
          f" + imports ~{imports:.0f} ms (under -X importtime, which inflates them)"
          " + the work; imports by top-level module, cumulative ms:")
    print("  " + ", ".join(f"{name} {ms:.1f}" for ms, name in sorted(top, reverse=True)[:12]))
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "noop.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), *cmd[1:]],
                       cwd=project, capture_output=True, check=True, env=ENV)
        import pstats

        print("the work (cProfile; module bodies, i.e. imports, left out), cumulative:")
        p = pstats.Stats(str(stats), stream=sys.stdout)
        p.sort_stats("cumulative").print_stats(r"mloop/(?!cli/__init__).*\((?!<module>)", 15)


# -- (d) per-step overhead: trivial Python steps -------------------------------------------------

TRIVIAL_STEPS = 10

_CHAIN = ", ".join(f"s{i}" for i in range(TRIVIAL_STEPS))
TRIVIAL_PY = "import mloop\n\n\n@mloop.step\ndef s0() -> int:\n    return 0\n" + "".join(
    f"\n\n@mloop.step\ndef s{i}(s{i - 1}: int) -> int:\n    return s{i - 1} + 1\n"
    for i in range(1, TRIVIAL_STEPS)) + (f'\n\nchain = mloop.Pipeline("chain", steps=[{_CHAIN}])\n'
                                         'one = mloop.Pipeline("one", steps=[s0])\n')


def trivial_dvc_yaml() -> str:
    """The same chain as DVC stages, each a trivial ``python -c`` (read, add one, write)."""
    lines = ["stages:"]
    for i in range(TRIVIAL_STEPS):
        read = f"int(open('o{i - 1}').read())" if i else "-1"
        lines += [f"  s{i}:",
                  f"    cmd: python -c \"open('o{i}', 'w').write(str({read} + 1))\""]
        if i:
            lines.append(f"    deps: [o{i - 1}]")
        lines.append(f"    outs: [o{i}]")
    return "\n".join(lines) + "\n"


def _cpu() -> float:
    """CPU seconds (user + system) of the reaped child processes of this one, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def trivial_mloop(root: Path, mode: str, repeats: int, name: str = "chain"
                  ) -> tuple[float, list[float], float]:
    """Best wall time of ``mloop pipeline run chain --force`` in ``mode`` (warm or fresh),
    the seconds of each step (engine-side, around the step's process) of that run, and the
    least CPU time a run took in all its processes (every level waits for its children)."""
    best: tuple[float, list[float]] | None = None
    cpu = float("inf")
    env = dict(ENV, MLOOP_STEP_PROCESSES=mode)
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), _cpu()
        out = subprocess.run([str(BIN / "mloop"), "-q", "pipeline", "run", name, "--force",
                              "--json"], cwd=root, capture_output=True, text=True, env=env,
                             check=False)
        elapsed = time.perf_counter() - start
        cpu = min(cpu, _cpu() - cpu_start)
        result = json.loads(out.stdout[out.stdout.index("{"):]) if "{" in out.stdout else {}
        if out.returncode != 0 or result.get("status") != "succeeded":
            raise RuntimeError(f"mloop pipeline run chain ({mode}) failed:\n{out.stdout[-2000:]}"
                               f"\n{out.stderr[-3000:]}")
        ran = [s["seconds"] for s in result["steps"] if s["status"] == "ran"]
        assert len(ran) == (TRIVIAL_STEPS if name == "chain" else 1), f"{mode}: {len(ran)} ran"
        if best is None or elapsed < best[0]:
            best = (elapsed, ran)
    assert best is not None
    return best[0], best[1], cpu


def trivial_dvc(root: Path, repeats: int) -> tuple[float, float]:
    root.mkdir(parents=True)
    run(["git", "init", "-q"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
    (root / "dvc.yaml").write_text(trivial_dvc_yaml())
    run([str(BIN / "dvc"), "repro"], root)  # warm-up
    times, cpu = [], float("inf")
    for _ in range(repeats):
        cpu_start = _cpu()
        elapsed, out = run([str(BIN / "dvc"), "repro", "--force"], root)
        cpu = min(cpu, _cpu() - cpu_start)
        ran = len(re.findall(r"^Running stage", out, re.M))
        assert ran == TRIVIAL_STEPS, f"dvc repro --force ran {ran} stages"
        times.append(elapsed)
    assert (root / f"o{TRIVIAL_STEPS - 1}").read_text() == str(TRIVIAL_STEPS - 1)
    return min(times), cpu


def trivial(base: Path, with_peer: bool, repeats: int) -> None:
    """(d): a chain of 10 trivial Python steps, warm step processes vs a fresh interpreter
    per step (the mode before warm processes), and DVC's 10 ``python -c`` stages."""
    root = base / "trivial"
    root.mkdir()
    run([str(BIN / "mloop"), "-q", "init", "."], root)
    (root / "pipelines.py").write_text(TRIVIAL_PY)
    for mode in ("warm", "fresh"):  # compiles what each one runs
        trivial_mloop(root, mode, 1)
    warm, warm_steps, warm_cpu = trivial_mloop(root, "warm", repeats)
    fresh, fresh_steps, fresh_cpu = trivial_mloop(root, "fresh", repeats)
    # the CPU a step adds: the 10-step run against the same run with its first step only
    step_cpu = {mode: (cpu - trivial_mloop(root, mode, repeats, "one")[2]) / (TRIVIAL_STEPS - 1)
                for mode, cpu in (("warm", warm_cpu), ("fresh", fresh_cpu))}
    peer = trivial_dvc(base / "trivial-dvc", repeats) if with_peer else None
    per_warm = sorted(warm_steps[1:])[len(warm_steps[1:]) // 2]
    per_fresh = sorted(fresh_steps[1:])[len(fresh_steps[1:]) // 2]
    print()
    print(f"(d) {TRIVIAL_STEPS} trivial Python steps in a chain, `mloop pipeline run --force`, "
          f"best of {repeats} (CPU: all processes of a run, least of {repeats}):")
    print(f"  mloop, warm step processes      {warm:>7.3f} s  CPU {warm_cpu:>6.2f} s   first step "
          f"(starts the run's warm process) {warm_steps[0]:.3f} s, the others "
          f"{per_warm * 1000:.0f} ms each (median; goal ≤ 100 ms: "
          f"{'met' if per_warm <= 0.1 else 'NOT met'})")
    print(f"  mloop, a fresh interpreter/step {fresh:>7.3f} s  CPU {fresh_cpu:>6.2f} s   first "
          f"step {fresh_steps[0]:.3f} s, the others {per_fresh * 1000:.0f} ms each (median)")
    ratio = fresh / warm
    print(f"  warm is {ratio:.1f}x faster than fresh (goal ≥ 5x: "
          f"{'met' if ratio >= 5 else 'NOT met'}), per step {per_fresh / per_warm:.0f}x; "
          f"{fresh_cpu / warm_cpu:.1f}x less CPU")
    print(f"  CPU a step adds (10 steps against 1, all processes): warm "
          f"{step_cpu['warm'] * 1000:.0f} ms, fresh {step_cpu['fresh'] * 1000:.0f} ms "
          "(about the wall time per step on an idle machine)")
    if peer is not None:
        print(f"  DVC, `dvc repro --force` of {TRIVIAL_STEPS} `python -c` stages {peer[0]:>7.3f} s"
              f"  CPU {peer[1]:>6.2f} s   mloop warm is {peer[0] / warm:.1f}x faster, "
              f"fresh {peer[0] / fresh:.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU work per stage")
    parser.add_argument("--cores", type=int, default=2, help="CPUs both tools may use")
    parser.add_argument("--profile", action="store_true", help="profile mloop's no-op re-run")
    parser.add_argument("--only", choices=["stages", "steps"],
                        help="only the shell stages (a-c) or the trivial Python steps (d)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds = 0.02
    with_peer = not args.no_peer and (BIN / "dvc").exists()
    if not args.no_peer and not with_peer:
        print("DVC is not installed (pip install dvc): peer skipped.")
    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cpus)  # inherited by both tools and every stage they start
    repeats = 1 if args.smoke else 3
    if args.only == "steps":
        with tempfile.TemporaryDirectory(prefix="mloop-pipelines-bench-") as tmp:
            ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            trivial(Path(tmp), with_peer, repeats)
        return 0
    rounds = calibrate(args.seconds)
    print(f"10 stages (1 source → {BRANCHES} branches × 2 → 1 merge), ~{args.seconds:g} s of "
          f"CPU each ({rounds} SHA-256 rounds over 1 MiB); {len(cpus)} CPUs")
    with tempfile.TemporaryDirectory(prefix="mloop-pipelines-bench-") as tmp:
        base = Path(tmp)
        ENV["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        for tool in [Mloop] + ([DVC] if with_peer else []):  # compiles what each one runs
            warm = tool(base / f"warm-{tool.name}", 1)
            warm.repro()
            warm.repro()
        ours = measure(Mloop(base / "mloop", rounds), repeats)
        theirs = measure(DVC(base / "dvc", rounds), repeats) if with_peer else {}
        print()
        print(line("(a) first run, 10 stages", ours["first"], theirs.get("first"), 1.5))
        print(line(f"(b) no-op re-run, everything cached (best of {repeats})", ours["noop"],
                   theirs.get("noop"), 10))
        print(line(f"(c) re-run after changing branch{CHANGED}.seed (3 stages)", ours["param"],
                   theirs.get("param")))
        if theirs:
            same = all(ours[k] == theirs[k] for k in ("output_first", "output_param"))
            print(f"final outputs of mloop and DVC: {'identical' if same else 'DIFFERENT'}")
            if not same:
                return 1
        start = min(run([sys.executable, "-c", "pass"], base)[0] for _ in range(3))
        print(line("python start-up alone (for scale)", start, None))
        if args.profile:
            profile(base / "mloop", ours["noop"], start)
        if args.only is None:
            trivial(base, with_peer, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
