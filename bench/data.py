"""Data versioning, mloop vs DVC, on the same generated files in one run.

Both tools run through their command lines (so both pay their start-up), each in its own
fresh project. Measures: adding a large CSV; cache growth after appending 1% rows and
after rewriting 1% of the bytes mid-file; adding a folder of many small files; switching
a checkout between two versions; pushing to a local folder remote; status on a clean
project; and mloop's CLI start-up.

Usage: python bench/data.py [--smoke] [--size-mb 1024] [--small-files 20000] [--no-peer]
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

import numpy as np

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return elapsed


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_csv(path: Path, megabytes: int, seed: int = 0) -> None:
    """A CSV of about ``megabytes`` MB: ids, integers, floats and a category."""
    rng = np.random.default_rng(seed)
    rows = megabytes * 1_000_000 // 52
    with open(path, "w") as f:
        f.write("id,age,spend,score,plan\n")
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            ids = np.arange(start, start + n)
            block = np.column_stack([ids, rng.integers(18, 90, n), rng.normal(50, 10, n),
                                     rng.random(n)])
            plans = rng.choice(np.array(["free", "pro", "team"]), n)
            lines = [f"{int(a)},{int(b)},{c:.4f},{d:.6f},{p}"
                     for (a, b, c, d), p in zip(block, plans, strict=True)]
            f.write("\n".join(lines) + "\n")


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

    def add(self, rel: str) -> float:
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

    def add(self, rel: str) -> float:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--small-files", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.smoke:
        args.size_mb, args.small_files = 4, 50
    with_peer = not args.no_peer and (BIN / "dvc").exists()
    if not args.no_peer and not with_peer:
        print("DVC is not installed (pip install dvc): peer skipped.")
    with tempfile.TemporaryDirectory(prefix="mloop-data-bench-") as tmp:
        base = Path(tmp)
        source = base / "train.csv"
        write_csv(source, args.size_mb)
        payload = base / "payload.bin"
        with open(payload, "wb") as f:
            for _ in range(0, source.stat().st_size, 1 << 20):
                f.write(os.urandom(1 << 20))
        small = base / "small"
        small.mkdir()
        rng = np.random.default_rng(1)
        for i in range(args.small_files):
            (small / f"{i:06d}.bin").write_bytes(rng.bytes(4096))
        tools: list[Tool] = [Mloop(base / "mloop")] + ([DVC(base / "dvc")] if with_peer else [])
        results: dict[str, dict[str, float]] = {t.name: {} for t in tools}
        size = source.stat().st_size
        print(f"CSV {size / 1e6:,.0f} MB; folder of {args.small_files:,} x 4 KiB files")
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
        print()
        print(line(f"add a {size / 1e6:,.0f} MB binary file", ours["add_bin"],
                   theirs.get("add_bin")))
        print(line(f"add a {size / 1e6:,.0f} MB CSV (mloop also profiles the table)",
                   ours["add"], theirs.get("add")))
        print(line("add again after appending 1% rows", ours["append_add"],
                   theirs.get("append_add")))
        print(line("cache growth / appended bytes (1% append)", ours["append_growth"],
                   theirs.get("append_growth"), "x"))
        print(line("cache growth / changed bytes (1% mid-file)", ours["rewrite_growth"],
                   theirs.get("rewrite_growth"), "x"))
        print(line("checkout switch between versions", ours["switch"], theirs.get("switch")))
        print(line(f"add {args.small_files:,} small files", ours["add_small"],
                   theirs.get("add_small")))
        print(line(f"push the {args.small_files:,}-file folder to a local folder",
                   ours["push_small"], theirs.get("push_small")))
        print(line("push everything to a local folder remote", ours["push"], theirs.get("push")))
        print(line("status on a clean project", ours["status"], theirs.get("status")))
        help_time = min(run([str(BIN / "mloop"), "--help"], base) for _ in range(5))
        print(line("mloop --help start-up", help_time, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
