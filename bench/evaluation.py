"""Evaluation, mloop vs Fairlearn, in one run.

(a) fairness over N predictions with a 4-group sensitive feature: mloop.fairness against
    Fairlearn's MetricFrame (selection rate, TPR, FPR) + demographic_parity_difference +
    equalized_odds_difference (+ their ratios); the values must agree.
(b) the default suite on R rows x 20 features for a RandomForest: wall time and where it
    goes (mloop only).

Usage: python bench/evaluation.py [--smoke] [--no-peer] [--rows N] [--suite-rows R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def fairness_case(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c", "d"], n)
    y = rng.integers(0, 2, n)
    pred = (rng.random(n) < 0.35 + 0.05 * (groups == "a") + 0.1 * y).astype(int)
    return y, pred, groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--suite-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.suite_rows = 20_000, 3_000
    with_peer = not args.no_peer
    if with_peer:
        try:
            import fairlearn  # noqa: F401
        except ImportError:
            print("Fairlearn is not installed (pip install fairlearn): peer skipped.")
            with_peer = False
    from mloop.evaluation.fairness import fairness

    y, pred, groups = fairness_case(args.rows)
    fairness(*fairness_case(100))  # imports (pandas) paid before timing, as for Fairlearn
    start = time.perf_counter()
    ours = fairness(y, pred, groups)
    summary = ours.summary()
    ours_s = time.perf_counter() - start
    print(f"(a) fairness over {args.rows:,} predictions, 4 groups")
    if with_peer:
        from fairlearn.metrics import (
            MetricFrame,
            demographic_parity_difference,
            demographic_parity_ratio,
            equalized_odds_difference,
            equalized_odds_ratio,
            false_positive_rate,
            selection_rate,
            true_positive_rate,
        )

        warnings.filterwarnings("ignore")
        start = time.perf_counter()
        frame = MetricFrame(metrics={"selection_rate": selection_rate,
                                     "tpr": true_positive_rate, "fpr": false_positive_rate},
                            y_true=y, y_pred=pred, sensitive_features=groups)
        theirs = {
            "demographic_parity_difference": demographic_parity_difference(
                y, pred, sensitive_features=groups),
            "demographic_parity_ratio": demographic_parity_ratio(
                y, pred, sensitive_features=groups),
            "equalized_odds_difference": equalized_odds_difference(
                y, pred, sensitive_features=groups),
            "equalized_odds_ratio": equalized_odds_ratio(y, pred, sensitive_features=groups)}
        theirs_s = time.perf_counter() - start
        for name, value in theirs.items():
            assert abs(summary[name] - value) < 1e-12, (name, summary[name], value)
        assert np.allclose(frame.by_group["selection_rate"].to_numpy(), ours.selection_rate)
        print(f"    mloop {ours_s:8.3f} s   Fairlearn {theirs_s:8.3f} s   mloop is "
              f"{theirs_s / ours_s:,.0f}x faster; the values agree")
    else:
        print(f"    mloop {ours_s:8.3f} s")
    suite_run(args.suite_rows, args.smoke)
    return 0


def suite_run(rows: int, smoke: bool) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import mloop

    train_rows = rows // 2
    X, y = make_classification(rows + train_rows, 20, n_informative=8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="mloop-eval-bench-") as tmp:
        project = mloop.init(Path(tmp))
        half = train_rows
        start = time.perf_counter()
        model = RandomForestClassifier(20 if smoke else 50, max_depth=12, n_jobs=-1,
                                       random_state=0).fit(frame[:half], y[:half])
        with mloop.start_run(project=project):
            mloop.log_model(model, input_example=frame[:5], registered_name="rf", onnx=False)
        train_s = time.perf_counter() - start
        test = frame[half:].assign(target=y[half:], group=rng.choice(["a", "b"], rows))
        start = time.perf_counter()
        report = mloop.evaluate("models:/rf/1", test, "target", sensitive_features=["group"],
                                project=project)
        total = time.perf_counter() - start
        project.close()
    print(f"\n(b) default suite on {rows:,} rows x 20 features, RandomForest "
          f"(trained and logged in {train_s:.1f} s): {total:.2f} s, "
          f"{'passed' if report.passed else 'failed'} {report.counts}")
    for name, seconds in sorted(report.timings.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {name:<52} {seconds:7.3f} s  {seconds / total:6.1%}")


if __name__ == "__main__":
    sys.exit(main())
