"""Data versioning, mloop vs DVC, on the same generated files in one run.

Both tools run through their command lines (so both pay their start-up), each in its own
fresh project. (1) The adds, side by side at every size asked, each in a fresh project
with cold caches (``sync; echo 3 > /proc/sys/vm/drop_caches`` before each timed add, when
this process may; the output says whether it could), repeated ``--repeat`` times, median
printed: a CSV (200 MB and 1 GB by default) and a folder of 4 KiB files (5,000 and 20,000).
mloop's add returns once its blobs are on disk; DVC's leaves its copy for the kernel to
write later, so DVC's time is also printed with a ``sync`` after it (equal durability).
(2) Unless ``--adds-only``, on the first sizes, once, warm: adding a binary file; cache
growth after appending 1% rows and after rewriting 1% of the bytes mid-file; switching a
checkout between two versions; pushing to a local folder remote; status on a clean
project; and mloop's CLI start-up.

Usage: python bench/data.py [--smoke] [--csv-mb 200,1024] [--small-files 5000,20000]
                            [--repeat 3] [--adds-only] [--no-peer]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


CPU: list[float] = [0.0]  # CPU seconds (user + system) of the last command run

# Both tools run with compiled bytecode, as after a pip install (DVC's was compiled by
# pip; mloop installed in development mode was not, and some environments set
# PYTHONDONTWRITEBYTECODE, which makes every start-up compile mloop's source again): a
# warm-up add of each tool, untimed, writes it where Python looks for it.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], cwd: Path) -> float:
    cpu = _children_cpu()
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - start
    CPU[0] = _children_cpu() - cpu
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return elapsed


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_csv(path: Path, megabytes: float, seed: int = 0) -> None:
    """A CSV of about ``megabytes`` MB: ids, integers, floats and a category (written by
    Arrow's CSV writer: a gigabyte in seconds)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    target = int(megabytes * 1_000_000)
    start = 0
    with open(path, "wb") as f:
        while f.tell() < target:
            n = 200_000 if target > 4_000_000 else 2_000
            table = pa.table({
                "id": np.arange(start, start + n), "age": rng.integers(18, 90, n),
                "spend": np.round(rng.normal(50, 10, n), 4), "score": np.round(rng.random(n), 6),
                "plan": rng.choice(np.array(["free", "pro", "team"]), n)})
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=start == 0,
                                                                 quoting_style="none"))
            f.write(sink.getvalue().to_pybytes())
            start += n


def write_small(folder: Path, count: int) -> None:
    """``count`` files of 4 KiB of random bytes."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(count):
        (folder / f"{i:06d}.bin").write_bytes(rng.bytes(4096))


def drop_caches() -> bool:
    """Write dirty pages and drop the page cache (needs root); whether it could."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def load() -> str:
    """The load averages (1, 5, 15 minutes): the machine is shared."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def append_rows(path: Path, share: float) -> int:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)[1:]
    extra = b"".join(lines[: max(1, int(len(lines) * share))])
    with open(path, "ab") as f:
        f.write(extra)
    return len(extra)


def rewrite_middle(path: Path, share: float) -> int:
    data = bytearray(path.read_bytes())
    n = int(len(data) * share)
    start = len(data) // 2
    data[start:start + n] = bytes(b if b in b",\n" else ord("7") for b in data[start:start + n])
    path.write_bytes(bytes(data))
    return n


class Tool:
    name = ""
    cache = ""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)

    def cache_bytes(self) -> int:
        return dir_bytes(self.root / self.cache)


class Mloop(Tool):
    name, cache = "mloop", ".mloop/objects"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        run([str(BIN / "mloop"), "-q", "init", "."], root)

    def add(self, rel: str, cold: bool = False) -> float:
        if cold:
            drop_caches()
        return run([str(BIN / "mloop"), "-q", "data", "add", rel], self.root)

    def snapshot(self, rel: str) -> str:
        return "latest"

    def checkout(self, rel: str, version: int) -> float:
        name = Path(rel).name.split(".")[0]
        return run([str(BIN / "mloop"), "-q", "data", "checkout", f"{name}@{version}"], self.root)

    def add_remote_and_push(self, remote: Path, only: str | None = None) -> float:
        run([str(BIN / "mloop"), "remote", "add", "origin", f"file://{remote}"], self.root)
        return run([str(BIN / "mloop"), "-q", "data", "push", "origin",
                    *([Path(only).name] if only else [])], self.root)

    def status(self) -> float:
        return run([str(BIN / "mloop"), "data", "status"], self.root)


class DVC(Tool):
    name, cache = "DVC", ".dvc/cache"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        run([str(BIN / "dvc"), "init", "--no-scm", "-q"], root)
        run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
        self.pointers: dict[tuple[str, int], str] = {}

    def add(self, rel: str, cold: bool = False) -> float:
        if cold:
            drop_caches()
        elapsed = run([str(BIN / "dvc"), "add", "-q", rel], self.root)
        versions = [v for (r, v) in self.pointers if r == rel]
        self.pointers[(rel, len(versions) + 1)] = (self.root / f"{rel}.dvc").read_text()
        return elapsed

    def checkout(self, rel: str, version: int) -> float:
        (self.root / f"{rel}.dvc").write_text(self.pointers[(rel, version)])
        return run([str(BIN / "dvc"), "checkout", "-q", "--force", f"{rel}.dvc"], self.root)

    def add_remote_and_push(self, remote: Path, only: str | None = None) -> float:
        run([str(BIN / "dvc"), "remote", "add", "-d", "origin", str(remote)], self.root)
        return run([str(BIN / "dvc"), "push", "-q", *([f"{only}.dvc"] if only else [])],
                   self.root)

    def status(self) -> float:
        return run([str(BIN / "dvc"), "status", "-q"], self.root)


def line(label: str, ours: float, theirs: float | None, unit: str = "s",
         higher_is_better: bool = False) -> str:
    if theirs is None:
        return f"{label:<52} mloop {ours:>10.3f} {unit}"
    ratio = (ours / theirs) if higher_is_better else (theirs / ours if ours else float("inf"))
    return (f"{label:<52} mloop {ours:>10.3f} {unit}   DVC {theirs:>10.3f} {unit}   "
            f"mloop is {ratio:,.1f}x better")


def sizes(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def timed_adds(kinds: list[type[Tool]], base: Path, what: Path, repeat: int,
               cold: bool) -> dict[str, list[float]]:
    """Each tool adds a copy of ``what`` in a fresh project, ``repeat`` times, interleaved;
    wall seconds by tool, and CPU seconds under ``"<tool> cpu"``."""
    times: dict[str, list[float]] = {}
    for i in range(repeat):
        for kind in kinds:
            tool = kind(base / f"{kind.name}-{what.name}-{i}")
            target = tool.root / what.name
            if what.is_dir():
                shutil.copytree(what, target)
            else:
                shutil.copy(what, target)
            times.setdefault(kind.name, []).append(tool.add(what.name, cold=cold))
            times.setdefault(f"{kind.name} cpu", []).append(CPU[0])
            if kind is not Mloop:  # mloop's add returns with its blobs on disk; DVC's
                start = time.perf_counter()  # copy is left to the kernel to write later
                os.sync()
                times.setdefault(f"{kind.name} durable", []).append(
                    times[kind.name][-1] + time.perf_counter() - start)
            shutil.rmtree(tool.root)
    return times


def add_line(label: str, times: dict[str, list[float]], goal: float) -> str:
    ours = statistics.median(times["mloop"])
    runs = " ".join(f"{t:.2f}" for t in times["mloop"])
    cpu = statistics.median(times["mloop cpu"])
    text = f"{label:<30} mloop {ours:6.2f} s [{runs}] cpu {cpu:5.2f} s"
    if "DVC" in times:
        theirs = statistics.median(times["DVC"])
        runs = " ".join(f"{t:.2f}" for t in times["DVC"])
        ratio = theirs / ours
        text += (f" | DVC {theirs:6.2f} s [{runs}] cpu {statistics.median(times['DVC cpu']):5.2f}"
                 f" s | DVC/mloop {ratio:4.2f}x (goal >= {goal:g}x: "
                 f"{'met' if ratio >= goal else 'NOT met'})")
        durable = statistics.median(times["DVC durable"])
        text += f" | DVC + sync (on disk, as mloop's) {durable:5.2f} s, {durable / ours:4.2f}x"
    return text


def warm_up(kinds: list[type[Tool]], base: Path) -> None:
    """One untimed add of a small table per tool, so that each one's bytecode is
    compiled (and cached) before anything is timed."""
    for kind in kinds:
        tool = kind(base / f"warm-up-{kind.name}")
        write_csv(tool.root / "warm.csv", 0.1)
        tool.add("warm.csv")
        tool.status()
        shutil.rmtree(tool.root)


def adds(args: argparse.Namespace, kinds: list[type[Tool]], base: Path) -> None:
    """(1) The adds at every size, cold, median of ``--repeat``."""
    cold = not args.warm and drop_caches()
    print(f"(1) adds, each in a fresh project, median of {args.repeat}, "
          + ("cold page cache (dropped before each add)" if cold else
             "WARM page cache (" + ("--warm" if args.warm else
                                    "cannot drop caches: not root") + ")"))
    for mb in sizes(args.csv_mb):
        csv = base / f"table-{mb:g}mb" / "train.csv"
        csv.parent.mkdir()
        write_csv(csv, mb)
        times = timed_adds(kinds, base, csv, args.repeat, cold)
        print(add_line(f"add a {csv.stat().st_size / 1e6:,.0f} MB CSV", times,
                       3 if mb >= 1000 else 2), flush=True)
        shutil.rmtree(csv.parent)
    for count in [int(n) for n in sizes(args.small_files)]:
        folder = base / f"small-{count}" / "small"
        folder.parent.mkdir()
        write_small(folder, count)
        times = timed_adds(kinds, base, folder, args.repeat, cold)
        print(add_line(f"add {count:,} files of 4 KiB", times, 3), flush=True)
        shutil.rmtree(folder.parent)


def details(args: argparse.Namespace, kinds: list[type[Tool]], base: Path) -> None:
    """(2) Everything else, on the first sizes, once, warm."""
    mb, count = sizes(args.csv_mb)[0], int(sizes(args.small_files)[0])
    source = base / "train.csv"
    write_csv(source, mb)
    payload = base / "payload.bin"
    with open(payload, "wb") as f:
        for _ in range(0, source.stat().st_size, 1 << 20):
            f.write(os.urandom(1 << 20))
    small = base / "small"
    write_small(small, count)
    tools = [kind(base / kind.name) for kind in kinds]
    results: dict[str, dict[str, float]] = {t.name: {} for t in tools}
    size = source.stat().st_size
    for tool in tools:
        r = results[tool.name]
        shutil.copy(payload, tool.root / "payload.bin")  # as large, no table to parse
        r["add_bin"] = tool.add("payload.bin")
        shutil.copy(source, tool.root / "train.csv")
        r["add"] = tool.add("train.csv")
        before = tool.cache_bytes()
        changed = append_rows(tool.root / "train.csv", 0.01)
        r["append_add"] = tool.add("train.csv")
        r["append_growth"] = (tool.cache_bytes() - before) / changed
        before = tool.cache_bytes()
        changed = rewrite_middle(tool.root / "train.csv", 0.01)
        tool.add("train.csv")
        r["rewrite_growth"] = (tool.cache_bytes() - before) / changed
        r["switch"] = (tool.checkout("train.csv", 1) + tool.checkout("train.csv", 3)) / 2
        shutil.copytree(small, tool.root / "small")
        r["add_small"] = tool.add("small")
        r["status"] = min(tool.status() for _ in range(3))
        small_only = tool.__class__(base / f"{tool.name}-small")
        shutil.copytree(small, small_only.root / "small")
        small_only.add("small")
        r["push_small"] = small_only.add_remote_and_push(base / f"remote-small-{tool.name}",
                                                         "small")
        r["push"] = tool.add_remote_and_push(base / f"remote-{tool.name}")
    ours = results["mloop"]
    theirs = results.get("DVC", {})
    print(f"\n(2) the rest, once, warm: CSV {size / 1e6:,.0f} MB; folder of {count:,} x 4 KiB")
    print(line(f"add a {size / 1e6:,.0f} MB binary file", ours["add_bin"],
               theirs.get("add_bin")))
    print(line(f"add a {size / 1e6:,.0f} MB CSV (warm)", ours["add"], theirs.get("add")))
    print(line("add again after appending 1% rows", ours["append_add"],
               theirs.get("append_add")))
    print(line("cache growth / appended bytes (1% append)", ours["append_growth"],
               theirs.get("append_growth"), "x"))
    print(line("cache growth / changed bytes (1% mid-file)", ours["rewrite_growth"],
               theirs.get("rewrite_growth"), "x"))
    print(line("checkout switch between versions", ours["switch"], theirs.get("switch")))
    print(line(f"add {count:,} small files (warm)", ours["add_small"],
               theirs.get("add_small")))
    print(line(f"push the {count:,}-file folder to a local folder",
               ours["push_small"], theirs.get("push_small")))
    print(line("push everything to a local folder remote", ours["push"], theirs.get("push")))
    print(line("status on a clean project", ours["status"], theirs.get("status")))
    help_time = min(run([str(BIN / "mloop"), "--help"], base) for _ in range(5))
    print(line("mloop --help start-up", help_time, None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--no-peer", action="store_true", help="mloop only")
    parser.add_argument("--csv-mb", default="200,1024", help="CSV sizes in MB (comma list)")
    parser.add_argument("--small-files", default="5000,20000",
                        help="small-file counts (comma list)")
    parser.add_argument("--repeat", type=int, default=3, help="timed adds per size (median)")
    parser.add_argument("--adds-only", action="store_true", help="only (1): skip (2)")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache")
    args = parser.parse_args(argv)
    if args.smoke:
        args.csv_mb, args.small_files, args.repeat, args.warm = "4", "50", 1, True
    with_peer = not args.no_peer and (BIN / "dvc").exists()
    if not args.no_peer and not with_peer:
        print("DVC is not installed (pip install dvc): peer skipped.")
    kinds: list[type[Tool]] = [Mloop] + ([DVC] if with_peer else [])
    print(f"load average at start: {load()} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="mloop-data-bench-") as tmp:
        base = Path(tmp)
        warm_up(kinds, base)
        adds(args, kinds, base)
        if not args.adds_only:
            details(args, kinds, base)
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
