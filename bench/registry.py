"""Model loading and prediction, mloop vs MLflow pyfunc, on the same models in one run.

For a scikit-learn pipeline (StandardScaler + LogisticRegression) and a RandomForest of
100 trees, each registered in both tools:

(a) cold: a fresh Python process imports the tool, loads ``models:/NAME/1`` and
    predicts one row (the median of 3 processes, each measured from its first line
    to its prediction; the tools alternate, so load on the machine hits both alike);
(b) warm: the median latency of one-row ``predict`` calls on a loaded model, for
    mloop's native (scikit-learn) and ONNX engines and for MLflow's pyfunc.

Usage: python bench/registry.py [--smoke] [--no-peer] [--calls N]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

COLD = """
import io, time, sys
start = time.perf_counter()
{load}
model.predict(row)
print(time.perf_counter() - start)
"""
MLOOP_LOAD = """
import mloop, pandas as pd
row = pd.read_json(io.StringIO(sys.argv[1]), orient="split").astype("float64")
model = mloop.load_model("models:/{name}/1"{engine})
"""
MLFLOW_LOAD = """
import mlflow, pandas as pd, logging
logging.getLogger("mlflow").setLevel(logging.ERROR)
mlflow.set_tracking_uri("{uri}")
row = pd.read_json(io.StringIO(sys.argv[1]), orient="split").astype("float64")
model = mlflow.pyfunc.load_model("models:/{name}/1")
"""


def models() -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {"logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            "forest": RandomForestClassifier(100, random_state=0)}


def cold_once(code: str, cwd: Path, row_json: str) -> float:
    out = subprocess.run([sys.executable, "-c", code, row_json], cwd=cwd, check=False,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"The cold-load process failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def colds(runs: dict[str, tuple[str, Path]], row_json: str, repeats: int) -> dict[str, float]:
    """The median cold time of each (code, cwd), taking turns: run 1 of each, then 2 …"""
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, (code, cwd) in runs.items():
            times[key].append(cold_once(code, cwd, row_json))
    return {key: statistics.median(values) for key, values in times.items()}


def warm(model: Any, row: Any, calls: int) -> float:
    for _ in range(20):
        model.predict(row)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(row)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def line(label: str, ours: float, theirs: float | None, unit: str) -> str:
    scale = 1e6 if unit == "us" else 1.0
    if theirs is None:
        return f"{label:<52} mloop {ours * scale:>10.1f} {unit}"
    return (f"{label:<52} mloop {ours * scale:>10.1f} {unit}   MLflow {theirs * scale:>10.1f} "
            f"{unit}   mloop is {theirs / ours:,.1f}x faster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    repeats = 1 if args.smoke else 3
    calls = 50 if args.smoke else args.calls
    try:
        import mlflow
        with_peer = not args.no_peer
    except ImportError:
        with_peer = False
        if not args.no_peer:
            print("MLflow is not installed (pip install mlflow): peer skipped.")
    from sklearn.datasets import load_breast_cancer

    import mloop

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    row = X.iloc[:1]
    row_json = row.to_json(orient="split")
    with tempfile.TemporaryDirectory(prefix="mloop-registry-bench-") as tmp:
        base = Path(tmp)
        ours_root = base / "mloop"
        project = mloop.init(ours_root)
        uri = f"sqlite:///{base / 'mlflow.db'}"
        if with_peer:
            import mlflow
            import mlflow.sklearn

            logging.getLogger("mlflow").setLevel(logging.ERROR)
            warnings.filterwarnings("ignore")
            mlflow.set_tracking_uri(uri)
            # MLflow's default artifact root is ./mlruns in the working directory (the
            # repository, when run from there): keep its files in the temporary folder.
            mlflow.create_experiment("bench", artifact_location=(base / "mlartifacts").as_uri())
            mlflow.set_experiment("bench")
        results: dict[str, dict[str, float]] = {}
        for name, model in models().items():
            model.fit(X, y)
            with mloop.start_run(experiment="bench", project=project):
                mloop.log_model(model, input_example=X[:20], registered_name=name)
            r = results[name] = {}
            runs = {"cold": (COLD.format(load=MLOOP_LOAD.format(
                        name=name, engine=', engine="native"')), ours_root),
                    "cold_onnx": (COLD.format(load=MLOOP_LOAD.format(
                        name=name, engine=', engine="onnx"')), ours_root)}
            r["warm"] = warm(mloop.load_model(f"models:/{name}/1"), row, calls)
            r["warm_onnx"] = warm(mloop.load_model(f"models:/{name}/1", engine="onnx"), row,
                                  calls)
            if with_peer:
                import skops.io as sio

                trusted = sio.get_untrusted_types(data=sio.dumps(model))  # as mloop records
                with mlflow.start_run():
                    mlflow.sklearn.log_model(model, name="model", input_example=X[:20],
                                             registered_model_name=name,
                                             skops_trusted_types=trusted)
                runs["mlflow_cold"] = (COLD.format(load=MLFLOW_LOAD.format(uri=uri, name=name)),
                                       base)
                r["mlflow_warm"] = warm(mlflow.pyfunc.load_model(f"models:/{name}/1"), row,
                                        calls)
            r.update(colds(runs, row_json, repeats))
        project.close()
    print(f"breast-cancer (30 features); cold = median of {repeats} fresh processes; warm = "
          f"median of {calls:,} one-row predicts; load average {os.getloadavg()[0]:.2f}")
    for name, r in results.items():
        print(f"\n{name}")
        print(line("cold: import + load + first prediction", r["cold"], r.get("mlflow_cold"),
                   "s"))
        print(line("cold, ONNX engine", r["cold_onnx"], r.get("mlflow_cold"), "s"))
        print(line("warm one-row predict, native (scikit-learn)", r["warm"],
                   r.get("mlflow_warm"), "us"))
        print(line("warm one-row predict, ONNX engine", r["warm_onnx"], r.get("mlflow_warm"),
                   "us"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
