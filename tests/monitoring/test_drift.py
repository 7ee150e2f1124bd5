"""Data drift: values equal scipy's, presets choose as documented, bad input is explicit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from mloop.errors import InvalidInputError
from mloop.monitoring import Profile, drift
from mloop.monitoring.stattests import Numeric, _distances, quantile_edges, sturges_edges

RNG = np.random.default_rng(7)


def frame(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(shift, 1, n),
        "y": rng.lognormal(0, 1, n),
        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6 - shift / 2, 0.3, 0.1 + shift / 2]),
        "flag": rng.random(n) < 0.3 + shift / 4,
    })


@pytest.mark.parametrize(("n", "m"), [(300, 500), (20_000, 30_000)])
def test_ks_equals_scipy(n: int, m: int) -> None:
    ref, cur = frame(n), frame(m, shift=0.02, seed=1)
    col = drift(ref, cur, method="ks").columns["x"]
    expected = stats.ks_2samp(ref["x"], cur["x"])
    assert col.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert col.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_large_tail_uses_the_kolmogorov_limit_within_three_percent() -> None:
    ref, cur = frame(30_000), frame(30_000, shift=0.05, seed=1)
    col = drift(ref, cur, method="ks").columns["x"]
    expected = stats.ks_2samp(ref["x"], cur["x"])
    assert col.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert col.p_value == pytest.approx(expected.pvalue, rel=0.03)
    assert col.status == "drift"


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=40),
       st.lists(st.integers(-5, 5), min_size=1, max_size=40))
@settings(max_examples=150, deadline=None)
def test_merged_distances_equal_scipy_with_ties(a: list[int], b: list[int]) -> None:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d, w = _distances(Numeric.of(x), Numeric.of(y))
    grid = np.union1d(x, y)  # the definition, point by point
    gaps = [abs(np.mean(x <= g) - np.mean(y <= g)) for g in grid]
    assert d == pytest.approx(max(gaps), abs=1e-12)
    assert w == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-9)


def test_wasserstein_is_normalised_by_the_reference_std() -> None:
    ref, cur = frame(5000), frame(4000, shift=0.3, seed=2)
    col = drift(ref, cur, method="wasserstein").columns["x"]
    expected = stats.wasserstein_distance(ref["x"], cur["x"]) / np.std(ref["x"])
    assert col.statistic == pytest.approx(expected, rel=1e-9)
    assert col.p_value is None
    assert col.drifted is True


def test_chisquare_is_the_two_sample_contingency_test() -> None:
    ref, cur = frame(2000), frame(1500, shift=0.1, seed=3)
    col = drift(ref, cur, method="chisquare").columns["plan"]
    table = pd.crosstab(np.r_[np.zeros(len(ref)), np.ones(len(cur))],
                        np.r_[ref["plan"], cur["plan"]])
    expected = stats.chi2_contingency(table.to_numpy())
    assert col.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert col.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_goodness_of_fit_variant_matches_scipy_chisquare() -> None:
    ref, cur = frame(900), frame(600, shift=0.1, seed=3)
    col = drift(ref, cur, method="chisquare_gof").columns["plan"]
    keys = sorted(set(ref["plan"]) | set(cur["plan"]))
    r = ref["plan"].value_counts().reindex(keys, fill_value=0).to_numpy()
    c = cur["plan"].value_counts().reindex(keys, fill_value=0).to_numpy()
    expected = stats.chisquare(c, r * len(cur) / len(ref))
    assert col.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_z_test_on_a_binary_column() -> None:
    ref, cur = frame(3000), frame(2000, shift=0.2, seed=4)
    col = drift(ref, cur, method="z").columns["flag"]
    p1, p2 = (~ref["flag"]).mean(), (~cur["flag"]).mean()  # the sorted first label: False
    pooled = ((~ref["flag"]).sum() + (~cur["flag"]).sum()) / 5000
    z = (p2 - p1) / np.sqrt(pooled * (1 - pooled) * (1 / 3000 + 1 / 2000))
    assert abs(col.statistic) == pytest.approx(abs(z), rel=1e-9)
    assert col.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_jensenshannon_and_psi_on_categories() -> None:
    ref, cur = frame(4000), frame(3000, shift=0.2, seed=5)
    keys = sorted(set(ref["plan"]) | set(cur["plan"]))
    p = ref["plan"].value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    q = cur["plan"].value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
    js = drift(ref, cur, method="jensenshannon").columns["plan"]
    assert js.statistic == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)
    psi = drift(ref, cur, method="psi").columns["plan"]
    assert psi.statistic == pytest.approx(np.sum((p - q) * np.log(p / q)), rel=1e-9)


def test_bins_quantile_and_sturges() -> None:
    x = RNG.normal(size=1000)
    y = RNG.normal(size=700)
    edges = quantile_edges(Numeric.of(x))
    assert edges[0] == -np.inf
    assert edges[-1] == np.inf
    assert len(edges) == 11
    np.testing.assert_allclose(sturges_edges(Numeric.of(x), Numeric.of(y)),
                               np.histogram_bin_edges(np.r_[x, y], bins="sturges"))


def test_auto_needs_significance_and_effect() -> None:
    # a tiny shift on a large sample: significant, too small to matter
    ref, cur = frame(100_000), frame(100_000, shift=0.03, seed=9)
    col = drift(ref, cur).columns["x"]
    assert col.method == "ks"
    assert col.p_value < 0.05
    assert col.effect is not None
    assert col.effect["method"] == "wasserstein"
    assert col.effect["value"] < 0.1
    assert col.status == "ok"
    # a real shift: both
    big = drift(ref, frame(100_000, shift=0.5, seed=9)).columns["x"]
    assert big.status == "drift"


def test_evidently_preset_rules() -> None:
    small = drift(frame(800), frame(800, seed=1), method="evidently").columns
    assert small["x"].method == "ks"
    assert small["plan"].method == "chisquare_gof"
    assert small["flag"].method == "z"
    large = drift(frame(5000), frame(5000, seed=1), method="evidently").columns
    assert large["x"].method == "wasserstein"
    assert large["plan"].method == "jensenshannon"
    assert large["flag"].method == "jensenshannon"


def test_evidently_jensenshannon_uses_sturges_bins_on_numbers() -> None:
    ref = pd.DataFrame({"v": RNG.normal(size=3000)})
    cur = pd.DataFrame({"v": RNG.normal(0.2, 1, 2000)})
    col = drift(ref, cur, method="evidently", per_column={"v": "jensenshannon"}).columns["v"]
    edges = np.histogram_bin_edges(np.r_[ref["v"], cur["v"]], bins="sturges")
    p = np.histogram(ref["v"], edges)[0] / 3000
    q = np.histogram(cur["v"], edges)[0] / 2000
    assert col.statistic == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)


def test_dataset_drift_share() -> None:
    rep = drift(frame(3000), frame(3000, shift=0.6, seed=2), drift_share=0.5)
    assert rep.share_drifted >= 0.5
    assert rep.dataset_drift is True
    assert set(rep.drifted_columns) <= {"x", "y", "plan", "flag"}
    calm = drift(frame(3000), frame(3000, seed=2))
    assert calm.dataset_drift is False


def test_bad_input_is_explicit_per_column() -> None:
    ref = frame(500).assign(only_ref=1.0, when=pd.Timestamp("2026-01-01"),
                            empty=np.nan, typed=np.arange(500.0))
    cur = frame(400, seed=1).assign(only_cur="a", when=pd.Timestamp("2026-02-01"),
                                    empty=np.nan, typed="text")
    cur.loc[:5, "plan"] = "gold"
    rep = drift(ref, cur)
    cols = rep.columns
    assert cols["only_ref"].status == "not_tested"
    assert "missing in the current" in cols["only_ref"].reason
    assert "not in the reference" in cols["only_cur"].reason
    assert "type mismatch" in cols["typed"].reason
    assert "all values are missing" in cols["empty"].reason
    assert "not tested" in cols["when"].reason
    assert any("never seen in the reference: 'gold'" in w for w in cols["plan"].warnings)
    assert cols["x"].status in ("ok", "drift")
    assert rep.dataset_drift is not None


def test_empty_window_decides_nothing() -> None:
    rep = drift(frame(500), frame(0))
    assert rep.dataset_drift is None
    assert all(c.status == "not_tested" for c in rep.columns.values())
    assert "empty window" in rep.columns["x"].reason
    assert json.loads(rep.to_json())["dataset_drift"] is None


def test_too_few_rows_and_missing_share() -> None:
    rep = drift(frame(500), frame(12), min_rows=30)
    assert "at least 30" in rep.columns["x"].reason
    cur = frame(2000, seed=3)
    cur.loc[:1000, "y"] = np.nan
    col = drift(frame(2000), cur).columns["y"]
    assert col.status == "drift"
    assert "missing values went from 0.0%" in col.reason


def test_method_and_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="Unknown drift test 'nope'; known: "):
        drift(frame(50), frame(50), method="nope")
    with pytest.raises(InvalidInputError, match="alpha"):
        drift(frame(50), frame(50), alpha=1.5)
    with pytest.raises(InvalidInputError, match="Unknown drift test"):
        drift(frame(50), frame(50), per_column={"x": "bogus"})
    with pytest.raises(InvalidInputError, match="DataFrames"):
        drift([1, 2], frame(50))


def test_per_column_method_threshold_and_fallback() -> None:
    rep = drift(frame(3000), frame(3000, shift=0.2, seed=1),
                per_column={"x": {"method": "psi", "threshold": 5.0}, "plan": "ks"})
    assert rep.columns["x"].method == "psi"
    assert rep.columns["x"].threshold == 5.0
    assert rep.columns["x"].status == "ok"
    assert rep.columns["plan"].method == "chisquare"
    assert "ks does not apply to categorical" in rep.columns["plan"].warnings[0]


def test_profile_reference_agrees_with_raw_data() -> None:
    ref, cur = frame(50_000), frame(20_000, shift=0.1, seed=6)
    profile = Profile.from_frame(ref)
    raw, prof = drift(ref, cur), drift(profile, cur)
    assert prof.reference["profile"] is True
    for name in ("x", "y"):
        assert prof.columns[name].statistic == pytest.approx(raw.columns[name].statistic,
                                                             abs=2e-3)
        assert prof.columns[name].status == raw.columns[name].status
    assert prof.columns["plan"].statistic == pytest.approx(raw.columns["plan"].statistic)
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert drift(again, cur).columns["x"].statistic == prof.columns["x"].statistic


def test_dataset_versions_store_a_profile_used_as_reference(sqlite_project, tmp_path) -> None:
    import mloop
    from mloop.data.garbage import referenced
    from mloop.monitoring.profile import of_dataset

    path = sqlite_project.root / "train.csv"
    frame(5000).to_csv(path, index=False)
    version = mloop.data.add(path, project=sqlite_project)
    digest = version.stats["profile"]
    assert digest in referenced(sqlite_project)
    profile = of_dataset(sqlite_project, version.ref)
    assert profile.rows == 5000
    assert profile.source == version.uri
    rep = drift(profile, frame(3000, shift=0.5, seed=1))
    assert rep.columns["x"].status == "drift"


def test_report_json_and_html(tmp_path) -> None:
    rep = drift(frame(2000), frame(2000, shift=0.4, seed=1))
    data = json.loads(rep.save(tmp_path / "r.json").read_text())
    assert data["columns"]["x"]["plot"]["kind"] == "numeric"
    html = rep.save(tmp_path / "r.html").read_text()
    assert html.count("<svg") >= 4
    assert not list(tmp_path.glob(".*tmp"))


@given(st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_never_crashes_on_odd_columns(data: st.DataObject) -> None:
    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none())
    n = data.draw(st.integers(0, 40))
    m = data.draw(st.integers(0, 40))
    ref = pd.DataFrame({"a": data.draw(st.lists(values, min_size=n, max_size=n)),
                        "c": data.draw(st.lists(st.sampled_from(["p", "q", None]),
                                                min_size=n, max_size=n))}, dtype=object)
    cur = pd.DataFrame({"a": data.draw(st.lists(values, min_size=m, max_size=m)),
                        "c": data.draw(st.lists(st.sampled_from(["p", "r", None]),
                                                min_size=m, max_size=m))}, dtype=object)
    ref["a"] = pd.to_numeric(ref["a"])
    cur["a"] = pd.to_numeric(cur["a"])
    rep = drift(ref, cur, min_rows=1)
    for col in rep.columns.values():
        assert col.status in ("drift", "ok", "not_tested")
        assert (col.reason is not None) == (col.status == "not_tested") or col.reason
    json.loads(rep.to_json())


def test_false_alarms_without_drift_stay_near_alpha() -> None:
    """100 seeded repetitions with no drift: the two-sample tests hold α, Evidently's
    goodness-of-fit chi-squared does not."""
    rng = np.random.default_rng(12)
    levels = np.array(list("abcde"))
    alarms = {"ks": 0, "chisquare": 0, "chisquare_gof": 0, "auto": 0}
    for _ in range(100):
        ref = pd.DataFrame({"x": rng.normal(size=400), "c": levels[rng.integers(0, 5, 400)]})
        cur = pd.DataFrame({"x": rng.normal(size=400), "c": levels[rng.integers(0, 5, 400)]})
        for method in alarms:
            rep = drift(ref, cur, method=method)
            alarms[method] += bool(rep.columns["x" if method == "ks" else "c"].drifted) \
                if method != "auto" else bool(rep.drifted_columns)
    assert alarms["ks"] <= 10
    assert alarms["chisquare"] <= 10
    assert alarms["auto"] <= 10
    assert alarms["chisquare_gof"] >= 15


def test_public_names_are_documented() -> None:
    import mloop.monitoring as monitoring

    assert len(set(monitoring.__all__)) == len(monitoring.__all__)
    for name in monitoring.__all__:
        assert (getattr(monitoring, name).__doc__ or "").strip(), name
    assert {"ks", "chisquare", "chisquare_gof", "z", "psi", "wasserstein",
            "jensenshannon"} <= set(monitoring.known_tests())
