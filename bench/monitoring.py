"""Data drift, mloop vs Evidently's DataDriftPreset, in one run.

(a) ROWS_A rows x 25 columns (20 numeric: normal, lognormal, integer-valued, binary, with
    some nulls; 5 categorical strings with 3-12 levels), reference and current each ROWS_A
    rows, some columns shifted in the current half;
(b) ROWS_B rows x 20 columns (16 numeric + 4 categorical), reference and current.
For each: wall time and peak memory of mloop's ``drift()`` with method="auto" (its default)
and method="evidently" (Evidently's default test selection, same scores), and of
``Report([DataDriftPreset()]).run(...)`` plus its result dict. Each measurement runs in a
fresh subprocess (Evidently needs pandas<3, so it has its own virtualenv) that reads the same
Parquet files; file reading is not timed. Peak memory is the peak RSS increase over the RSS
just before the call, sampled every ~2 ms by a background thread reading /proc/self/statm,
and is divided by the data size (reference + current frames, memory_usage(deep=True), as
loaded in that process: pandas 3 stores strings more compactly than pandas 2).
Agreement: with method="evidently" mloop's per-column flags must equal Evidently's and the
scores agree to 1e-6 relative; (c) repeats the check per single test on 1,000 rows.
(d) false alarms: reference and current drawn from the same distribution, NULL_REPS times,
1,000 rows per side; the share of repetitions flagged drifted at alpha 0.05 per method.

Evidently's virtualenv is created once at bench/.peers/evidently
(pip install 'evidently==0.7.23' 'pandas<3' pyarrow) unless --evidently-python names one.

Usage: python bench/monitoring.py [--smoke] [--no-peer] [--sizes 100000,1000000]
                                  [--null-reps 500] [--evidently-python PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
PEER_VENV = HERE.parent / ".peers" / "evidently"
PEER_PACKAGES = ["evidently==0.7.23", "pandas<3", "pyarrow"]
REL_TOL = 1e-6

# Evidently's method names (display names when it chose, registered names when told) ->
# mloop's: Evidently's "chisquare" is the goodness-of-fit test, mloop's "chisquare_gof"
EV_METHODS = {"K-S p_value": "ks", "chi-square p_value": "chisquare_gof", "Z-test p_value": "z",
              "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance":
              "jensenshannon", "PSI": "psi", "ks": "ks", "chisquare": "chisquare_gof",
              "z": "z", "wasserstein": "wasserstein", "jensenshannon": "jensenshannon",
              "psi": "psi"}
# mloop's method names -> Evidently's registered names (for single-test runs)
EV_NAMES = {"ks": "ks", "chisquare_gof": "chisquare", "z": "z", "wasserstein": "wasserstein",
            "jensenshannon": "jensenshannon", "psi": "psi"}
# how Evidently turns a score into a flag (legacy/calculations/stattests/*.py)
EV_RULES = {"ks": "p<=", "chisquare_gof": "p<", "z": "p<", "wasserstein": ">=",
            "jensenshannon": ">=", "psi": ">="}


# ---------------------------------------------------------------- data

def _numeric(kind: int, n: int, rng: np.random.Generator, current: bool) -> np.ndarray:
    """Numeric column number ``kind`` (0-19); the current half is shifted for some kinds."""
    c = current
    match kind:
        case 0:
            return rng.normal(0, 1, n)
        case 1:  # drift: mean +0.25 sd
            return rng.normal(5.5 if c else 5.0, 2, n)
        case 2:  # drift: wider
            return rng.normal(-3, 0.65 if c else 0.5, n)
        case 3:
            return rng.lognormal(0, 0.6, n)
        case 4:  # drift: log-mean +0.2
            return rng.lognormal(1.2 if c else 1.0, 1, n)
        case 5:
            return rng.lognormal(2, 0.3, n)
        case 6:  # integer-valued, ~15 levels
            return rng.poisson(4, n)
        case 7:  # integer-valued, drift
            return rng.poisson(22 if c else 20, n)
        case 8:  # 5 levels
            return rng.integers(0, 5, n)
        case 9:  # 3 levels, drift
            return rng.choice(3, n, p=[0.4, 0.35, 0.25] if c else [0.5, 0.3, 0.2])
        case 10:  # binary
            return (rng.random(n) < 0.3).astype(np.int64)
        case 11:  # binary, drift
            return (rng.random(n) < (0.6 if c else 0.5)).astype(np.int64)
        case 12:  # mixture, small shift of the weights
            heavy = rng.random(n) < (0.33 if c else 0.3)
            return np.where(heavy, rng.normal(4, 1, n), rng.normal(0, 1, n))
        case 13:
            return rng.uniform(0, 100, n)
        case 14:
            return rng.exponential(2, n)
        case 15:  # integer-valued, many levels
            return np.round(rng.normal(100, 15, n))
        case 16:  # 2% nulls
            x = rng.normal(0, 1, n)
            x[rng.random(n) < 0.02] = np.nan
            return x
        case 17:  # 5% nulls, tiny shift
            x = rng.lognormal(0.05 if c else 0.0, 1, n)
            x[rng.random(n) < 0.05] = np.nan
            return x
        case 18:  # tiny shift: a test's p-value may see it, a distance should not
            return rng.normal(0.01 if c else 0.0, 1, n)
        case _:
            return rng.standard_t(3, n)


def _categorical(kind: int, n: int, rng: np.random.Generator, current: bool) -> np.ndarray:
    """Categorical column number ``kind`` (0-4), strings with 3-12 levels."""
    if kind == 0:
        levels, p = ["red", "green", "blue"], [0.5, 0.3, 0.2]
    elif kind == 1:  # drift
        levels = ["a", "b", "c", "d", "e"]
        p = [0.2, 0.2, 0.2, 0.2, 0.2] if current else [0.3, 0.25, 0.2, 0.15, 0.1]
    elif kind == 2:
        levels = [f"level_{i}" for i in range(8)]
        p = list(np.full(8, 1 / 8))
    elif kind == 3:  # a rare level
        levels = [f"city_{i:02d}" for i in range(12)]
        w = np.r_[np.linspace(1, 0.2, 11), 0.02]
        p = list(w / w.sum())
    else:  # a level the reference never saw, and 1% nulls
        levels = ["mon", "tue", "wed", "thu", "fri", "sat"]
        p = [0.2, 0.2, 0.2, 0.2, 0.1, 0.1]
        if current:
            levels, p = [*levels, "new"], [0.2, 0.2, 0.2, 0.2, 0.1, 0.09, 0.01]
    x = rng.choice(np.array(levels, dtype=object), n, p=p)
    if kind == 4:
        x[rng.random(n) < 0.01] = None
    return x


def make_frames(rows: int, n_num: int, n_cat: int, seed: int,
                flag: bool = False) -> tuple[Any, Any]:
    """Reference and current frames; ``flag`` adds a binary string column, cat_flag."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for current in (False, True):
        data: dict[str, Any] = {}
        for k in range(n_num):
            data[f"num_{k:02d}"] = _numeric(k, rows, rng, current)
        for k in range(n_cat):
            data[f"cat_{k}"] = pd.array(_categorical(k, rows, rng, current), dtype="str")
        if flag:
            yes = rng.random(rows) < (0.36 if current else 0.3)
            data["cat_flag"] = pd.array(np.where(yes, "yes", "no"), dtype="str")
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1]


def column_kinds(frame: Any) -> tuple[list[str], list[str]]:
    numerical = [c for c in frame.columns if c.startswith("num_")]
    return numerical, [c for c in frame.columns if not c.startswith("num_")]


# ---------------------------------------------------------------- measuring (subprocess)

class PeakRSS:
    """Peak RSS increase over the RSS at entry, sampled every ``interval`` s by a thread."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = 0
        self.hwm: int | None = None
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    @staticmethod
    def _hwm() -> int:
        """VmHWM (kernel's peak RSS), a cross-check; reset at entry when the kernel allows."""
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> PeakRSS:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.base = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.hwm = max(0, self._hwm() - self.base) if self.hwm_reset else None

    @property
    def increase(self) -> int:
        return self.peak - self.base


def _clean(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _mloop_run(ref: Any, cur: Any, method: str, columns: list[str] | None) -> tuple[Any, Any]:
    from mloop.monitoring import drift

    rep = drift(ref, cur, columns=columns, method=method)
    return rep, rep.to_dict()


def _mloop_columns(rep: Any) -> dict[str, dict[str, Any]]:
    cols = rep.columns
    items = cols.items() if hasattr(cols, "items") else ((c.name, c) for c in cols)
    out = {}
    for name, c in items:
        p = _clean(getattr(c, "p_value", None))
        stat = _clean(getattr(c, "statistic", None))
        out[str(name)] = {"method": c.method, "score": p if p is not None else stat,
                          "statistic": stat, "p_value": p,
                          "drifted": None if c.drifted is None else bool(c.drifted),
                          "status": str(getattr(c, "status", ""))}
    return out


def _ev_definition(numerical: list[str], categorical: list[str]) -> Any:
    from evidently import DataDefinition

    return DataDefinition(numerical_columns=numerical, categorical_columns=categorical)


def _ev_run(ref: Any, cur: Any, method: str, columns: list[str] | None,
            numerical: list[str], categorical: list[str]) -> tuple[Any, Any]:
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = _ev_definition(numerical, categorical)
    preset = (DataDriftPreset(columns=columns) if method == "default" else
              DataDriftPreset(columns=columns, method=EV_NAMES[method]))
    snap = Report([preset]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition))
    return snap, snap.dict()


def _ev_flag(method: str, score: float | None, threshold: float) -> bool | None:
    if score is None:
        return None
    rule = EV_RULES.get(method)
    if rule == "p<=":
        return score <= threshold
    if rule == "p<":
        return score < threshold
    return score >= threshold


def _ev_columns(result: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    cols, summary = {}, {}
    for m in result["metrics"]:
        config = m["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            summary = {"count": m["value"]["count"], "share": m["value"]["share"]}
        elif config["type"].endswith("ValueDrift"):
            method = EV_METHODS.get(config["method"], config["method"])
            score = _clean(m["value"])
            cols[config["column"]] = {"method": method, "score": score,
                                      "threshold": config["threshold"],
                                      "drifted": _ev_flag(method, score, config["threshold"])}
    return cols, summary


def worker(task_path: str) -> int:
    """Run the measurements a task file asks for, in this interpreter; write a JSON result."""
    import warnings

    import pandas as pd

    warnings.filterwarnings("ignore")
    task = json.loads(Path(task_path).read_text())
    tool = task["tool"]
    ref, cur = pd.read_parquet(task["ref"]), pd.read_parquet(task["cur"])
    numerical, categorical = task["numerical"], task["categorical"]
    data_bytes = int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum())

    def call(frame_ref: Any, frame_cur: Any, method: str, columns: list[str] | None) -> Any:
        if tool == "mloop":
            return _mloop_run(frame_ref, frame_cur, method, columns)
        return _ev_run(frame_ref, frame_cur, method, columns, numerical, categorical)

    results = []
    for run in task["runs"]:
        method, columns = run["method"], run.get("columns")
        entry: dict[str, Any] = {"method": method, "columns": columns}
        if run.get("timed"):
            k = min(len(ref), run.get("warmup_rows", 2000))
            call(ref.iloc[:k], cur.iloc[:k], method, columns)  # imports and caches paid
            with PeakRSS() as mem:
                start = time.perf_counter()
                obj, as_dict = call(ref, cur, method, columns)
                entry["seconds"] = time.perf_counter() - start
            entry["peak_bytes"], entry["peak_hwm_bytes"] = mem.increase, mem.hwm
        else:
            obj, as_dict = call(ref, cur, method, columns)
        if tool == "mloop":
            entry["columns_result"] = _mloop_columns(obj)
            entry["dataset_drift"] = obj.dataset_drift
            entry["share_drifted"] = _clean(obj.share_drifted)
        else:
            entry["columns_result"], summary = _ev_columns(as_dict)
            entry["share_drifted"] = summary.get("share")
            entry["drifted_count"] = summary.get("count")
            share = summary.get("share")
            entry["dataset_drift"] = None if share is None else bool(share >= 0.5)
            flagged = sum(bool(c["drifted"]) for c in entry["columns_result"].values())
            if summary.get("count") is not None and flagged != summary["count"]:
                entry["flag_rule_error"] = (f"flags derived from Evidently's scores count "
                                            f"{flagged}, its DriftedColumnsCount "
                                            f"{summary['count']:g}")
        if run.get("html"):
            start = time.perf_counter()
            if tool == "mloop":
                html_bytes = len(obj.to_html().encode())
            else:
                obj.save_html(run["html"])
                html_bytes = Path(run["html"]).stat().st_size
            entry["html_bytes"], entry["html_seconds"] = html_bytes, time.perf_counter() - start
        del obj, as_dict
        results.append(entry)
    Path(task["out"]).write_text(json.dumps({"tool": tool, "data_bytes": data_bytes,
                                             "rows": len(ref), "runs": results}))
    return 0


# ---------------------------------------------------------------- parent side

def evidently_python(explicit: str | None) -> str | None:
    """An interpreter with Evidently 0.7 and pandas<3: the given one or the cached venv."""
    if explicit:
        return explicit
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".installed"
    if python.exists() and marker.exists():
        return str(python)
    print(f"creating Evidently's virtualenv at {PEER_VENV} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"could not create Evidently's virtualenv ({exc}): peer skipped.")
        return None
    marker.write_text(" ".join(PEER_PACKAGES) + "\n")
    return str(python)


def run_worker(python: str, tool: str, tmp: Path, case: dict[str, Any],
               runs: list[dict[str, Any]], label: str) -> dict[str, Any]:
    out = tmp / f"result-{tool}-{label}.json"
    task = {"tool": tool, "ref": case["ref"], "cur": case["cur"], "numerical": case["numerical"],
            "categorical": case["categorical"], "runs": runs, "out": str(out)}
    task_path = tmp / f"task-{tool}-{label}.json"
    task_path.write_text(json.dumps(task))
    proc = subprocess.run([python, str(HERE), "--worker", str(task_path)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed ({label}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def agree(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[int, int, list[str]]:
    """Columns whose method, flag and score agree; a line describing each other one."""
    good, bad = 0, []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if a is None or b is None:
            bad.append(f"{name}: only in {'Evidently' if a is None else 'mloop'}")
            continue
        sa, sb = a["score"], b["score"]
        if sa is None or sb is None:
            close = sa is None and sb is None
        else:
            close = abs(sa - sb) <= REL_TOL * max(abs(sa), abs(sb)) or abs(sa - sb) <= 1e-12
        if close and a["drifted"] == b["drifted"] and a["method"] == b["method"]:
            good += 1
            continue
        rel = ("" if sa is None or sb is None or max(abs(sa), abs(sb)) == 0
               else f", rel. diff {abs(sa - sb) / max(abs(sa), abs(sb)):.1e}")
        what = ("flag" if a["drifted"] != b["drifted"] else
                "method" if a["method"] != b["method"] else "score")
        bad.append(f"[{what}] {name}: method {a['method']} / {b['method']}, score {sa!r} / "
                   f"{sb!r}{rel}, drifted {a['drifted']} / {b['drifted']}")
    return good, good + len(bad), bad


def null_simulation(reps: int, n: int = 1000, seed: int = 7) -> list[tuple[str, str, float]]:
    """False-alarm rate per (column kind, method) when nothing drifts."""
    import pandas as pd

    from mloop.monitoring import drift

    rng = np.random.default_rng(seed)
    levels = np.array(["a", "b", "c", "d", "e"], dtype=object)
    p = [0.4, 0.25, 0.15, 0.12, 0.08]
    num = rng.normal(0, 1, (2, reps, n))
    cat = rng.choice(levels, (2, reps, n), p=p)
    flag = np.where(rng.random((2, reps, n)) < 0.3, "yes", "no").astype(object)
    frames = [[pd.DataFrame({"num": num[side, r], "cat": pd.array(cat[side, r], dtype="str"),
                             "flag": pd.array(flag[side, r], dtype="str")})
               for r in range(reps)] for side in (0, 1)]
    plan = [("ks", ["num"]), ("wasserstein", ["num"]), ("psi", ["num", "cat"]),
            ("jensenshannon", ["num", "cat"]), ("auto", ["num", "cat"]), ("chisquare", ["cat"]),
            ("chisquare_gof", ["cat"]), ("z", ["flag"])]
    alarms: dict[tuple[str, str], int] = {}
    for method, columns in plan:
        for r in range(reps):
            rep = drift(frames[0][r], frames[1][r], columns=columns, method=method)
            for col in columns:
                key = (col, method)
                alarms[key] = alarms.get(key, 0) + bool(rep.columns[col].drifted)
    order = [("num", m) for m in ("ks", "wasserstein", "psi", "jensenshannon", "auto")]
    order += [("flag", "z")]
    order += [("cat", m) for m in ("chisquare", "chisquare_gof", "psi", "jensenshannon", "auto")]
    names = {"num": "numeric (normal)", "cat": "categorical (5 levels)",
             "flag": "categorical (binary)"}
    return [(names[col], method, alarms[(col, method)] / reps) for col, method in order]


def log_storage(rows: int, columns: int = 20, segments: int = 100) -> dict[str, float]:
    """The prediction log stored both ways it could be: Parquet segments (what the server
    writes) and one SQLite table with a time index; the write, the bytes, and the read
    of every input column of the newer half (what a drift check does)."""
    import sqlite3
    import tempfile

    import pandas as pd

    from mloop.serving.predlog import read_predictions

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({f"in.x{i}": rng.normal(size=rows) for i in range(columns)})
    frame.insert(0, "request_id", [f"{i:032x}" for i in range(rows)])
    frame.insert(1, "row", 0)
    frame.insert(2, "time_ms", np.arange(rows, dtype=np.int64) + 1_000_000)
    frame["prediction"] = rng.integers(0, 2, rows)
    since = 1_000_000 + rows // 2
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "predictions"
        folder = root / "m" / "1"
        folder.mkdir(parents=True)
        start = time.perf_counter()
        bounds = np.linspace(0, rows, segments + 1).astype(int)
        parts = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
        for k, part in enumerate(parts):
            stamp = int(part["time_ms"].iloc[-1])
            part.to_parquet(folder / f"{stamp}-{k:08x}.parquet", index=False)
        out["parquet_write_s"] = time.perf_counter() - start
        out["parquet_mb"] = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        start = time.perf_counter()
        got = read_predictions(root, "m", since_ms=since, columns=["in.*"])
        out["parquet_read_s"] = time.perf_counter() - start
        assert len(got) == rows - rows // 2
        db = Path(tmp) / "log.db"
        conn = sqlite3.connect(db)
        names = [c.replace(".", "_") for c in frame.columns]
        conn.execute(f"CREATE TABLE log ({', '.join(names)})")
        conn.execute("CREATE INDEX ix_time ON log (time_ms)")
        start = time.perf_counter()
        for part in parts:
            conn.executemany(f"INSERT INTO log VALUES ({', '.join('?' * len(names))})",
                             part.itertuples(index=False, name=None))
            conn.commit()
        out["sqlite_write_s"] = time.perf_counter() - start
        out["sqlite_mb"] = db.stat().st_size / 1e6
        inputs = ", ".join(n for n in names if n.startswith("in_"))
        start = time.perf_counter()
        back = pd.read_sql_query(f"SELECT {inputs} FROM log WHERE time_ms >= ?", conn,
                                 params=(since,))
        out["sqlite_read_s"] = time.perf_counter() - start
        assert len(back) == len(got)
        conn.close()
    return out


def mb(x: float) -> str:
    return f"{x / 2**20:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--sizes", default="100000,1000000",
                        help="rows per side for (a) and (b), comma-separated")
    parser.add_argument("--null-reps", type=int, default=500)
    parser.add_argument("--evidently-python", help="an interpreter with evidently and pandas<3")
    parser.add_argument("--json", help="write machine-readable results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.smoke:
        args.sizes, args.null_reps = "2000,4000", min(args.null_reps, 20)
    sizes = [int(x.replace("_", "")) for x in args.sizes.split(",")]
    if len(sizes) != 2 or min(sizes) < 100:
        parser.error("--sizes takes two row counts of at least 100, e.g. 100000,1000000")
    rows_a, rows_b = sizes
    ev_python = None if args.no_peer else evidently_python(args.evidently_python)
    report: dict[str, Any] = {"sizes": [rows_a, rows_b], "cases": {}, "agreement": {}}
    cases = {"a": (rows_a, 20, 5), "b": (rows_b, 16, 4)}
    with tempfile.TemporaryDirectory(prefix="mloop-drift-bench-") as tmp_name:
        tmp = Path(tmp_name)
        specs: dict[str, dict[str, Any]] = {}
        start = time.perf_counter()
        for key, (rows, n_num, n_cat) in cases.items():
            ref, cur = make_frames(rows, n_num, n_cat, seed=ord(key))
            numerical, categorical = column_kinds(ref)
            ref.to_parquet(tmp / f"{key}-ref.parquet")
            cur.to_parquet(tmp / f"{key}-cur.parquet")
            specs[key] = {"ref": str(tmp / f"{key}-ref.parquet"),
                          "cur": str(tmp / f"{key}-cur.parquet"),
                          "numerical": numerical, "categorical": categorical,
                          "shape": f"{rows:,} rows x {n_num + n_cat} columns ({n_num} numeric, "
                                   f"{n_cat} categorical) per side"}
            del ref, cur
        # (c): 1,000 rows per side of (a), for the per-test agreement check
        ref, cur = make_frames(1000, 20, 5, seed=ord("c"), flag=True)
        ref.to_parquet(tmp / "c-ref.parquet")
        cur.to_parquet(tmp / "c-cur.parquet")
        numerical, categorical = column_kinds(ref)
        specs["c"] = {"ref": str(tmp / "c-ref.parquet"), "cur": str(tmp / "c-cur.parquet"),
                      "numerical": numerical, "categorical": categorical}
        print(f"data generated and written as Parquet in {time.perf_counter() - start:.1f} s",
              flush=True)

        rows_out = []
        for key in ("a", "b"):
            spec = specs[key]
            print(f"({key}) {spec['shape']}", flush=True)
            html = key == "a"
            for method in ("auto", "evidently"):
                res = run_worker(sys.executable, "mloop", tmp, spec,
                                 [{"method": method, "timed": True, "html": html}],
                                 f"{key}-{method}")
                run = res["runs"][0]
                print(f"    mloop {method:<10} {run['seconds']:8.2f} s", flush=True)
                rows_out.append((key, f"mloop method={method!r}", res))
            if ev_python:
                print("    Evidently DataDriftPreset ...", flush=True)
                res = run_worker(ev_python, "evidently", tmp, spec,
                                 [{"method": "default", "timed": True,
                                   "html": str(tmp / "evidently.html") if html else None}],
                                 f"{key}-default")
                print(f"    Evidently        {res['runs'][0]['seconds']:8.2f} s", flush=True)
                rows_out.append((key, "Evidently DataDriftPreset", res))
            report["cases"][key] = {"shape": spec["shape"], "results": [
                {"name": name, **res} for k, name, res in rows_out if k == key]}

        per_method: list[tuple[str, int, int, list[str]]] = []
        if ev_python:
            spec = specs["c"]
            num, cat = spec["numerical"], spec["categorical"]
            plan = [("evidently", None), ("ks", num), ("wasserstein", num),
                    ("chisquare_gof", cat), ("z", ["cat_flag"]), ("psi", num + cat),
                    ("jensenshannon", num + cat)]
            ours = run_worker(sys.executable, "mloop", tmp, spec,
                              [{"method": m, "columns": c} for m, c in plan], "c")
            theirs = run_worker(ev_python, "evidently", tmp, spec,
                                [{"method": "default" if m == "evidently" else m, "columns": c}
                                 for m, c in plan], "c")
            for (m, _), a, b in zip(plan, ours["runs"], theirs["runs"], strict=True):
                good, total, bad = agree(a["columns_result"], b["columns_result"])
                if b.get("flag_rule_error"):
                    bad.append(f"[bench] {b['flag_rule_error']}")
                per_method.append((m, good, total, bad))

    print()
    print(f"(a) {specs['a']['shape']}\n(b) {specs['b']['shape']}")
    print(f"{'':<38}{'time':>10}{'peak RSS +':>13}{'data':>12}{'peak/data':>11}"
          f"{'drifted':>10}  dataset drift")
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for key, name, res in rows_out:
        run = res["runs"][0]
        by[(key, name)] = {**run, "data_bytes": res["data_bytes"]}
        flags = [c["drifted"] for c in run["columns_result"].values()]
        print(f"({key}) {name:<34}{run['seconds']:>8.2f} s{mb(run['peak_bytes']):>13}"
              f"{mb(res['data_bytes']):>12}{run['peak_bytes'] / res['data_bytes']:>10.2f}x"
              f"{sum(bool(f) for f in flags):>6}/{len(flags):<3}  {run['dataset_drift']}")
    print("(data = reference + current frames as loaded: pandas 3 in mloop's process, "
          "pandas 2 in Evidently's)")
    if ev_python:
        for key, goal in (("a", 10), ("b", 20)):
            ev = by[(key, "Evidently DataDriftPreset")]["seconds"]
            for method in ("evidently", "auto"):
                ours = by[(key, f"mloop method={method!r}")]["seconds"]
                verdict = f" (goal >= {goal}x: {'met' if ev / ours >= goal else 'MISSED'})"
                print(f"({key}) mloop method={method!r} is {ev / ours:,.1f}x faster than "
                      f"Evidently{verdict if method == 'evidently' else ''}")
        for key in ("a", "b"):
            ev = by[(key, "Evidently DataDriftPreset")]
            ours = by[(key, "mloop method='evidently'")]
            print(f"({key}) peak memory: Evidently / mloop = "
                  f"{ev['peak_bytes'] / max(ours['peak_bytes'], 1):,.1f}x")
    for key in ("a", "b"):
        for method in ("auto", "evidently"):
            run = by[(key, f"mloop method={method!r}")]
            ratio = run["peak_bytes"] / run["data_bytes"]
            print(f"({key}) mloop method={method!r} peak memory = {ratio:.2f}x the data size "
                  f"(goal <= 1.3x: {'met' if ratio <= 1.3 else 'MISSED'})")

    if ev_python:
        print("\nagreement, mloop method='evidently' vs Evidently (method, flag, score to "
              f"{REL_TOL:g} relative; values shown as mloop / Evidently):")
        for key in ("a", "b"):
            good, total, bad = agree(by[(key, "mloop method='evidently'")]["columns_result"],
                                     by[(key, "Evidently DataDriftPreset")]["columns_result"])
            if by[(key, "Evidently DataDriftPreset")].get("flag_rule_error"):
                bad.append(f"[bench] {by[(key, 'Evidently DataDriftPreset')]['flag_rule_error']}")
            report["agreement"][key] = {"agree": good, "total": total, "disagreements": bad}
            ours_dd = by[(key, "mloop method='evidently'")]["dataset_drift"]
            theirs_dd = by[(key, "Evidently DataDriftPreset")]["dataset_drift"]
            print(f"    ({key}) {good}/{total} columns agree; dataset drift "
                  f"{ours_dd} / {theirs_dd}")
            for line in bad:
                print(f"        DISAGREE {line}")
        print("(c) per test, 1,000 rows per side (mloop method=M vs DataDriftPreset(method=M)):")
        for m, good, total, bad in per_method:
            report["agreement"][f"c-{m}"] = {"agree": good, "total": total,
                                             "disagreements": bad}
            print(f"    {m:<14} {good}/{total} columns agree")
            binned = m in ("psi", "jensenshannon")
            for line in bad:
                if not (binned and line.startswith("[score]")):
                    print(f"        DISAGREE {line}")
            score_only = [line.split()[1].rstrip(":") for line in bad
                          if binned and line.startswith("[score]")]
            if score_only:
                print(f"        score only (same flag), {len(score_only)} numeric columns: "
                      f"{', '.join(score_only)}")
        print("    (psi and jensenshannon as single tests: mloop bins numbers at the "
              "reference's deciles,\n     Evidently at Sturges bins over both samples, so "
              "the scores of numeric columns with\n     more than 20 values differ; "
              "method='evidently' uses Evidently's bins; details in --json)")
        ours_html = by[("a", "mloop method='auto'")]
        ev_html = by[("a", "Evidently DataDriftPreset")]
        print(f"\nHTML report (a): mloop {ours_html['html_bytes'] / 1024:,.0f} KB in "
              f"{ours_html['html_seconds']:.2f} s, Evidently "
              f"{ev_html['html_bytes'] / 1024:,.0f} KB in {ev_html['html_seconds']:.2f} s")
    else:
        run = by[("a", "mloop method='auto'")]
        print(f"\nHTML report (a): mloop {run['html_bytes'] / 1024:,.0f} KB in "
              f"{run['html_seconds']:.2f} s")

    print(f"\n(d) false alarms, no drift: {args.null_reps} repetitions, 1,000 rows per side, "
          "alpha 0.05 (goal <= 0.06)", flush=True)
    start = time.perf_counter()
    alarms = null_simulation(args.null_reps)
    for column, method, rate in alarms:
        print(f"    {column:<24} {method:<14} {rate:6.3f}  {'ok' if rate <= 0.06 else 'TOO HIGH'}")
    print(f"    ({time.perf_counter() - start:.1f} s)")
    report["null"] = [{"column": c, "method": m, "false_alarm_rate": r} for c, m, r in alarms]
    report["null_reps"] = args.null_reps

    log_rows = 2_000 if args.smoke else 500_000
    print(f"\n(e) the prediction log, {log_rows:,} rows x 20 inputs in 100 segments: "
          "Parquet (what mloop writes) vs one SQLite table", flush=True)
    storage = log_storage(log_rows)
    for kind in ("parquet", "sqlite"):
        print(f"    {kind:<8} write {storage[kind + '_write_s']:6.2f} s   "
              f"{storage[kind + '_mb']:7.1f} MB   read the newer half's inputs "
              f"{storage[kind + '_read_s']:6.2f} s")
    print(f"    Parquet reads {storage['sqlite_read_s'] / storage['parquet_read_s']:.1f}x "
          f"faster, writes {storage['sqlite_write_s'] / storage['parquet_write_s']:.1f}x "
          f"faster, in {storage['parquet_mb'] / storage['sqlite_mb']:.2f}x the bytes")
    report["log_storage"] = storage
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
