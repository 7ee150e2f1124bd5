"""fl.simulate end to end: real client processes, real HTTP, a tracked run."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

import mloop
import mloop.federated as fl
from mloop.errors import ConfigError, InvalidURIError
from mloop.federated.simulation import Tracking
from mloop.project import Project
from tests.federated import toy


def _fedavg(n: int, **kw: float) -> fl.Strategy:
    return fl.FedAvg(min_fit_clients=n, min_available_clients=n, min_evaluate_clients=n, **kw)


def _model(weights: list[np.ndarray]) -> object:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression()
    model.coef_, model.intercept_ = weights[0][:, 0].copy(), float(weights[1][0])
    model.n_features_in_ = 3
    return model


def test_processes_train_track_register_and_lineage(sqlite_project: Project) -> None:
    history = fl.simulate(toy.make_toward, n_clients=4, rounds=3, strategy=_fedavg(4),
                          evaluate_fn=toy.central, experiment="fl-toy", register_as="toy-fl",
                          model_fn=_model, project=sqlite_project)
    want = toy.expected_fedavg([0, 1, 2, 3], [10] * 4, 3)
    for w in history.weights:
        np.testing.assert_allclose(w, want)
    assert [r.round for r in history.rounds] == [1, 2, 3]
    assert all(r.answered == [f"client-{i}" for i in range(4)] for r in history.rounds)
    assert history.rounds[-1].bytes_up > 0 and history.rounds[-1].bytes_down > 0
    assert history.final["fed_loss"] > 0 and "fed_worst_loss" in history.final
    run = mloop.get_run(history.run_id)
    assert run.status.value == "FINISHED"
    assert run.params["strategy"] == "fedavg" and run.params["rounds"] == "3"
    assert {"central_loss", "central_accuracy", "fed_loss", "clients_answered",
            "bytes_up"} <= set(run.metrics)
    clients = mloop.read_artifact(f"runs:/{run.id}/federation/clients.json")
    assert b'"label_histogram"' in clients and b"client-3" in clients
    assert history.model_version == 1
    version = mloop.get_model_version("models:/toy-fl/1")
    assert version.run_id == run.id
    from mloop.lineage import neighbours
    _, out = neighbours(sqlite_project, f"runs:/{run.id}")
    targets = {e.dst for e in out if e.relation == "trained-on"}
    federation = run.tags["fl.federation"]
    assert targets == {f"clients:/{federation}/client-{i}" for i in range(4)}


def test_threads_give_the_same_model_without_tracking() -> None:
    history = fl.simulate(toy.make_toward, 3, 2, _fedavg(3), mode="thread", track=False)
    np.testing.assert_allclose(history.weights[1], toy.expected_fedavg([0, 1, 2], [10] * 3, 2))
    assert history.run_id is None


def test_bad_clients_are_recorded_and_the_round_goes_on() -> None:
    kinds = [toy.Toward, toy.Toward, toy.NaNClient, toy.WrongShape, toy.Raises,
             functools.partial(toy.DiesInRound, round_=2)]

    def make(cid: int) -> fl.Client:
        return kinds[cid](cid)

    # every client in round 1 (all must join first); later, those still alive
    strategy = fl.FedAvg(min_fit_clients=1, min_available_clients=len(kinds),
                         fraction_evaluate=0.0)
    history = fl.simulate(make, len(kinds), 3, strategy, track=False, round_timeout=20)
    first, second, third = history.rounds
    assert first.answered == ["client-0", "client-1", "client-5"]
    reasons = {f.client: f.reason for f in first.failures}
    assert "NaN" in reasons["client-2"]
    assert "1 arrays; the model has 2" in reasons["client-3"]
    assert "disk is full" in reasons["client-4"]
    assert second.answered == ["client-0", "client-1"]
    assert "exit code 3" in {f.client: f.reason for f in second.failures}["client-5"]
    assert "client-5" not in third.fit_clients
    assert np.isfinite(history.weights[0]).all()


def test_a_slow_client_times_out_and_counts_as_failed() -> None:
    kinds = [toy.Toward, toy.Toward, toy.Slow]  # Slow takes 30 s to fit
    strategy = fl.FedAvg(min_fit_clients=1, min_available_clients=3, fraction_evaluate=0.0)
    history = fl.simulate(lambda cid: kinds[cid](cid), 3, 1, strategy, track=False,
                          round_timeout=8.0)
    record = history.rounds[0]
    assert record.answered == ["client-0", "client-1"]
    assert "no answer within 8 s" in record.failures[0].reason
    np.testing.assert_allclose(history.weights[0], toy.expected_fedavg([0, 1], [10, 10], 1))


def test_a_crashed_client_does_not_hold_up_the_rounds_after_it() -> None:
    def make(cid: int) -> fl.Client:
        return toy.DiesInRound(cid, round_=2) if cid == 2 else toy.Toward(cid)

    history = fl.simulate(make, 3, 3, track=False, round_timeout=30)  # default: FedAvg, all 3
    assert [r.answered for r in history.rounds] == [
        ["client-0", "client-1", "client-2"], ["client-0", "client-1"],
        ["client-0", "client-1"]]


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_a_client_that_dies_before_joining_is_not_waited_for(mode: str) -> None:
    def make(cid: int) -> fl.Client:
        if cid == 1:
            raise RuntimeError("this site's data is missing")
        return toy.Toward(cid)

    history = fl.simulate(make, 3, 1, track=False, round_timeout=30, mode=mode)  # all 3
    assert history.rounds[0].answered == ["client-0", "client-2"]


def _stateful() -> fl.Strategy:
    return fl.DPFedAvg(fl.FedAdam(eta=0.2, min_fit_clients=3, min_available_clients=3,
                                  fraction_evaluate=0.0),
                       noise_multiplier=0.5, num_clients=3, seed=7,
                       adaptive=fl.AdaptiveClipping(initial=0.3))


def test_a_resumed_stateful_strategy_continues_exactly(sqlite_project: Project) -> None:
    whole = fl.simulate(toy.make_toward, 3, 4, _stateful(), experiment="whole",
                        project=sqlite_project)
    first = fl.simulate(toy.make_toward, 3, 2, _stateful(), experiment="parts",
                        project=sqlite_project)
    rest = fl.simulate(toy.make_toward, 3, 4, _stateful(), project=sqlite_project,
                       tracking=Tracking(resume=first.run_id))
    for a, b in zip(whole.weights, rest.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert rest.final["epsilon"] == pytest.approx(whole.final["epsilon"])
    rounds = json.loads(mloop.read_artifact(f"runs:/{first.run_id}/federation/rounds.json"))
    assert [r["round"] for r in rounds] == [1, 2, 3, 4]  # the rounds before the resume too


def test_resume_goes_on_from_the_last_checkpoint(sqlite_project: Project) -> None:
    first = fl.simulate(toy.make_toward, 3, 2, _fedavg(3), experiment="resume",
                        project=sqlite_project)
    resumed = fl.simulate(toy.make_toward, 3, 4, _fedavg(3), project=sqlite_project,
                          tracking=Tracking(resume=first.run_id))
    assert [r.round for r in resumed.rounds] == [3, 4]
    assert resumed.run_id == first.run_id
    np.testing.assert_allclose(resumed.weights[0], toy.expected_fedavg([0, 1, 2], [10] * 3, 4))


def test_secure_aggregation_equals_plain_fedavg() -> None:
    def make(cid: int) -> fl.Client:
        return toy.Toward(cid, examples=5 + cid)

    plain = fl.simulate(make, 4, 2, _fedavg(4), track=False)
    secure = fl.simulate(make, 4, 2, _fedavg(4), track=False, secure=True)
    for a, b in zip(plain.weights, secure.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert secure.rounds[0].answered == ["client-0", "client-1", "client-2", "client-3"]


def test_secure_aggregation_unmasks_a_client_lost_after_sharing() -> None:
    def make(cid: int) -> fl.Client:
        return toy.DiesInRound(cid, round_=1) if cid == 3 else toy.Toward(cid)

    strategy = fl.FedAvg(min_fit_clients=1, min_available_clients=4, fraction_evaluate=0.0)
    history = fl.simulate(make, 4, 1, strategy, track=False, secure=True, round_timeout=20)
    record = history.rounds[0]
    assert record.answered == ["client-0", "client-1", "client-2"]
    assert any(f.client == "client-3" for f in record.failures)
    np.testing.assert_allclose(history.weights[0], toy.expected_fedavg([0, 1, 2], [10] * 3, 1),
                               atol=1e-6)


def test_secure_aggregation_refuses_robust_strategies() -> None:
    with pytest.raises(ConfigError, match="sum of the updates"):
        fl.simulate(toy.make_toward, 2, 1, fl.FedMedian(min_fit_clients=2), secure=True,
                    track=False)


def test_register_without_model_fn_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="model_fn"):
        fl.simulate(toy.make_toward, 2, 1, register_as="x")


@pytest.mark.parametrize("name", ["../etc", "a b", "[red]x[/red]", "x\n"])
def test_hostile_federation_and_model_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidURIError):
        Tracking(federation=name)
    with pytest.raises(InvalidURIError):
        Tracking(register_as=name)


@pytest.mark.parametrize(("mode", "secure"), [("central", False), ("local", False),
                                              ("central", True)])
def test_differential_privacy_spends_epsilon_and_stops_at_the_budget(
        sqlite_project: Project, mode: str, secure: bool) -> None:
    dp = fl.DPFedAvg(_fedavg(4, fraction_evaluate=0.0), noise_multiplier=1.0, num_clients=4,
                     clip_norm=0.5, mode=mode, target_epsilon=12.0)
    history = fl.simulate(toy.make_toward, 4, 30, dp, secure=secure, experiment="dp",
                          project=sqlite_project)
    epsilons = [e for _, e in history.metric("epsilon")]
    assert epsilons == sorted(epsilons) and epsilons[0] > 0
    assert history.stopped is not None and "epsilon" in history.stopped
    assert len(history.rounds) < 30 and epsilons[-1] <= dp.target_epsilon
    run = mloop.get_run(history.run_id)
    assert run.params["noise_multiplier"] == "1.0" and run.params["dp_mode"] == mode
    assert run.tags["fl.stopped"] == history.stopped
    assert all(np.isfinite(w).all() for w in history.weights)
