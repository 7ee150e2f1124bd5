"""The deployment controller: steps canaries, analyses them, updates A/B decisions and
bandit weights, and starts rollouts once approved.

One controller at a time works on a deployment: each tick it takes (or renews) the
deployment's lease in the store, and a deployment whose lease another process holds is
left alone; a lease that lapses (its holder died) is taken over. Any ``mloop serve
--deployment`` process runs one, or ``mloop deploy run``.

Nothing is kept in memory between ticks: each tick reads the deployment's ``serial`` and
current revision, decides from the stored state what is due, and writes with a
compare-and-set on that serial. A write that finds the serial moved (another controller or
a person acted first) raises ConflictError, and the tick skips that deployment quietly; the
next tick starts over from what is stored. So a controller killed mid-step is replaced by
the next lease holder, which resumes from the stored state, and no step is applied twice.

Per strategy (only ``active`` revisions move; see :mod:`mloop.deploy.model` for the state):

- canary: every tick, an *early* analysis of the traffic since the step started may abort
  a clearly bad canary before the interval ends (always-valid tests only, see
  :mod:`mloop.deploy.analysis`); once the interval has passed, the scheduled analysis:
  fail → rollback (the revision ends aborted), inconclusive → the step holds (aborted
  after ``max_inconclusive`` in a row), pass → the next step, or promotion when the next
  step would be 100%.
- ab: the always-valid sequential test on the policy's metric, stored as
  ``state["decision"]``; a person promotes (``mloop deploy promote`` takes its winner).
- bandit: every ``interval_ms``, weights from the rewards of feedback (:func:`rewards`).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.clock import now_ms as clock_now
from mloop.core.redact import get_logger
from mloop.errors import ConflictError, InvalidInputError, NotFoundError
from mloop.repositories.deployments import RevisionStatus, Strategy

if TYPE_CHECKING:
    from mloop.deploy.analysis import Analysis
    from mloop.deploy.measure import ArmMeasure
    from mloop.project import Project
    from mloop.repositories.deployments import Revision

__all__ = ["DEFAULT_LEASE_MS", "Controller", "Decision", "rewards", "run"]

log = get_logger(__name__)
DEFAULT_LEASE_MS = 15_000  # several 2 s ticks: a slow tick does not lose the lease
AB_EVERY_MS = 10_000  # how often an A/B test is looked at (looking is free: it is valid)
# an early canary analysis reads the step's traffic so far: at most this often per deployment
EARLY_EVERY_MS = 5_000


@dataclass(frozen=True)
class Decision:
    """What one tick did to one deployment (``action``: started, step, promoted, aborted,
    rolled_back (a monitoring alert),
    held, decision, weights, skipped)."""

    deployment: str
    revision: int
    action: str
    reason: str = ""
    analysis: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "revision": self.revision,
                "action": self.action, "reason": self.reason, "analysis": self.analysis}


def _holder() -> str:
    from mloop.core.ids import new_id
    from mloop.core.owner import this_process

    me = this_process()
    # two controllers in one process (tests, a server with a standalone loop) must differ
    return f"{me.host}:{me.pid}:{me.start or '-'}:{new_id()[-6:]}"


class Controller:
    """Moves the rollouts of ``names`` (every deployment when empty), one tick at a time."""

    def __init__(self, project: Project, names: list[str] | None = None, *,
                 holder: str | None = None, lease_ms: int = DEFAULT_LEASE_MS,
                 early_every_ms: int = EARLY_EVERY_MS) -> None:
        if lease_ms < 1:
            raise InvalidInputError("lease_ms must be a positive number of milliseconds.")
        self.project = project
        self.names = list(names or [])
        self.holder = holder or _holder()
        self.lease_ms = lease_ms
        self.early_every_ms = early_every_ms
        self._held: set[str] = set()
        # when each deployment last had an early look (memory only: a new controller
        # simply looks at once)
        self._early: dict[str, int] = {}
        self._early_seen: dict[str, int] = {}  # canary requests at the last counted look

    @property
    def _deployments(self) -> Any:
        from mloop import repositories

        return repositories.backend(self.project).deployments

    def tick(self, now_ms: int | None = None) -> list[Decision]:
        """One pass over the deployments: what was done to each (nothing due: no entry)."""
        now = clock_now() if now_ms is None else now_ms
        names = self.names or [d.name for d in self._deployments.all()]
        out = []
        for name in names:
            try:
                if not self._deployments.acquire_lease(name, self.holder, self.lease_ms, now):
                    self._held.discard(name)
                    continue
                self._held.add(name)
                decision = self.step(name, now)
            except ConflictError as exc:  # another controller or a person acted first
                log.debug("mloop: %s moved meanwhile (%s); next tick starts over", name, exc)
                decision = Decision(name, 0, "skipped", "changed meanwhile")
            except NotFoundError:  # deleted meanwhile, or no revision yet
                continue
            except Exception:  # one broken deployment must not stop the others
                log.exception("mloop: the controller failed on deployment %s", name)
                continue
            if decision is not None:
                out.append(decision)
        return out

    def release(self) -> None:
        """Give up every lease this controller holds (another takes over at once)."""
        for name in sorted(self._held):
            try:
                self._deployments.release_lease(name, self.holder)
            except Exception:  # a store gone away: the lease lapses by itself
                log.debug("mloop: could not release the lease of %s", name, exc_info=True)
        self._held.clear()

    def step(self, name: str, now: int) -> Decision | None:
        """Do what is due on ``name`` (the lease is the caller's business): read the serial
        and revision, act, write with compare-and-set. ConflictError when it moved."""
        from mloop.deploy import strategies

        deployments = self._deployments
        found = deployments.get(name)
        if found.current_revision is None:
            return None
        serial = found.serial
        revision = deployments.revision(name, found.current_revision)
        alarmed = self._alarm(revision, serial)
        if alarmed is not None:
            return alarmed
        if revision.status is RevisionStatus.AWAITING_APPROVAL:
            started = strategies.start_approved(self.project, name)
            return (Decision(name, revision.number, "started", "every version is approved")
                    if started is not None else None)
        if revision.status is not RevisionStatus.ACTIVE:
            return None
        if revision.strategy is Strategy.CANARY:
            return self._canary(revision, serial, now)
        if revision.strategy is Strategy.AB:
            return self._ab(revision, serial, now)
        if revision.strategy is Strategy.BANDIT:
            return self._bandit(revision, serial, now)
        return None

    def _labels_due(self, revision: Revision, since_ms: int, spec: dict[str, Any]) -> bool:
        """Whether labels, counted in the database, just gave every arm the live metric's
        ``min_samples`` (or half as many again as at the last such look): then the early
        analysis runs now, so a canary worse on labelled traffic is judged at the first
        look with enough labels, not at the next throttled one."""
        from mloop import repositories

        rules = [m for m in spec.get("metrics", []) if m.get("kind") == "live_metric"]
        if not rules:
            return False
        counts = repositories.backend(self.project).traffic.counts(
            revision.deployment, revision.number, since_ms=since_ms, labelled=True)
        least = min((sum(v for k, v in counts.get(arm, {}).items() if k != "shadow")
                     for arm in ("stable", "canary")), default=0)
        key = f"{revision.deployment}:labels"
        if least < min(int(m["min_samples"]) for m in rules) or \
                least < 1.5 * self._early_seen.get(key, 0):
            return False
        self._early_seen[key] = least
        return True

    def _alarm(self, revision: Revision, serial: int) -> Decision | None:
        """Roll back when a monitoring rule naming this deployment has an open alert on a
        version the revision put into traffic (:mod:`mloop.deploy.alarms`)."""
        from mloop.deploy import strategies
        from mloop.deploy.alarms import alarm

        if revision.status is RevisionStatus.AWAITING_APPROVAL:
            return None  # nothing of it is in traffic yet
        found = alarm(self.project, revision)
        if found is None:
            return None
        strategies.rollback(self.project, revision.deployment, initiated_by=_system(),
                            reason=found.reason, expected_serial=serial)
        return Decision(revision.deployment, revision.number, "rolled_back", found.reason)

    # ── canary ─────────────────────────────────────────────────────────────────────────

    def _canary(self, revision: Revision, serial: int, now: int) -> Decision | None:
        from mloop.deploy.analysis import analyse, default_spec, load_spec, sensitive_columns
        from mloop.deploy.measure import measure_all
        from mloop.deploy.model import CanaryPolicy

        policy = CanaryPolicy.from_dict(revision.policy)
        spec = load_spec(policy.analysis) if policy.analysis else default_spec()
        state = revision.state
        started = int(state.get("step_started_at") or revision.created_at)
        interval = int(spec.get("interval_ms") or policy.interval_ms)
        step = int(state.get("step", 0))
        due = now - max(started, int(state.get("analysed_at") or 0)) >= interval
        if policy.steps[step] >= 100:  # no stable traffic left to compare with
            return self._promote(revision, serial, None, "the canary took all traffic "
                                 "for an interval") if due else None
        if not due:
            name = revision.deployment
            if now - self._early.get(name, -self.early_every_ms) < self.early_every_ms:
                # between throttled looks, look now only when counting says the canary
                # fails, and again only once its sample has grown by half
                failing, seen = _failing(self.project, revision, started, spec)
                if failing and seen >= 1.5 * self._early_seen.get(name, 0):
                    self._early_seen[name] = seen
                elif not self._labels_due(revision, started, spec):
                    return None
            self._early[name] = now
        measured = measure_all(self.project, revision, since_ms=started,
                               sensitive=sensitive_columns(spec))
        result = analyse(spec, measured.arms, "stable", "canary", early=not due,
                         previous_failures=int(state.get("failures", 0)))
        report = result.to_dict() | {"step": step, "ignored_rows": measured.ignored}
        if result.verdict == "fail":
            return self._abort(revision, serial, result.summary(), report)
        if not due:
            return None
        if result.verdict == "inconclusive":
            return self._hold(revision, serial, now, limit=policy.max_inconclusive,
                              result=result, report=report)
        if policy.steps[step + 1] >= 100:
            return self._promote(revision, serial, report, result.summary())
        weight = policy.steps[step + 1]
        new_state = {**state, "step": step + 1, "step_started_at": now, "analysed_at": None,
                     "inconclusive": 0, "failures": 0, "decision": _brief(report, now),
                     "weights": {"stable": 100 - weight, "canary": weight}}
        self._deployments.update(revision.deployment, revision.number,
                                 expected_serial=serial, kind="step", initiated_by=_system(),
                                 state=new_state, reason=f"{result.summary()}; canary at "
                                 f"{weight:g}%", analysis=report)
        return Decision(revision.deployment, revision.number, "step",
                        f"canary at {weight:g}%", report)

    def _hold(self, revision: Revision, serial: int, now: int, *, limit: int,
              result: Analysis, report: dict[str, Any]) -> Decision:
        count = int(revision.state.get("inconclusive", 0)) + 1
        if count >= limit:
            return self._abort(revision, serial, f"{count} inconclusive analyses in a row "
                               f"({result.summary()})", report)
        state = {**revision.state, "inconclusive": count, "analysed_at": now,
                 "failures": result.failures, "decision": _brief(report, now)}
        self._deployments.update(revision.deployment, revision.number,
                                 expected_serial=serial, kind="held", initiated_by=_system(),
                                 state=state, reason=f"{result.summary()} ({count} of "
                                 f"{limit})", analysis=report)
        return Decision(revision.deployment, revision.number, "held", result.summary(),
                        report)

    def _abort(self, revision: Revision, serial: int, why: str,
               report: dict[str, Any]) -> Decision:
        from mloop.deploy import strategies

        strategies.rollback(self.project, revision.deployment, initiated_by=_system(),
                            reason=f"canary aborted: {why}", analysis=report,
                            expected_serial=serial)
        return Decision(revision.deployment, revision.number, "aborted", why, report)

    def _promote(self, revision: Revision, serial: int, report: dict[str, Any] | None,
                 why: str) -> Decision:
        from mloop.deploy import strategies

        strategies.promote(self.project, revision.deployment, initiated_by=_system(),
                           reason=f"canary promoted: {why}", analysis=report,
                           expected_serial=serial)
        return Decision(revision.deployment, revision.number, "promoted", why, report)

    # ── A/B ────────────────────────────────────────────────────────────────────────────

    def _ab(self, revision: Revision, serial: int, now: int) -> Decision | None:
        from mloop.deploy.measure import measure_all

        previous = revision.state.get("decision") or {}
        if now - int(previous.get("updated_at") or 0) < AB_EVERY_MS:
            return None
        measured = measure_all(self.project, revision)
        decision = ab_decision(revision, measured.arms, previous)
        if decision["n"] == previous.get("n"):
            return None  # no new label: nothing to write (and no event to add)
        decision |= {"updated_at": now, "ignored_rows": measured.ignored}
        state = {**revision.state, "decision": decision}
        winner = decision["winner"]
        self._deployments.update(
            revision.deployment, revision.number, expected_serial=serial, kind="decision",
            initiated_by=_system(), state=state,
            reason=(f"{winner} wins on {decision['metric']}" if winner else
                    "no decision yet"), analysis=decision)
        return Decision(revision.deployment, revision.number, "decision",
                        f"winner {winner}" if winner else "no decision yet", decision)

    # ── bandit ─────────────────────────────────────────────────────────────────────────

    def _bandit(self, revision: Revision, serial: int, now: int) -> Decision | None:
        from mloop.deploy import bandits
        from mloop.deploy.analysis import jsonable
        from mloop.deploy.measure import measure_all
        from mloop.deploy.model import BanditPolicy

        policy = BanditPolicy.from_dict(revision.policy)
        last = int(revision.state.get("updated_at") or revision.created_at)
        if now - last < policy.interval_ms:
            return None
        measured = measure_all(self.project, revision)
        names = [a.name for a in revision.arms]
        binary, totals = rewards(policy.reward, [measured.arms[n] for n in names])
        floor = min(policy.min_share, 1 / len(names))
        w = bandits.weights(policy.algorithm, totals, binary=binary, min_share=floor,
                            epsilon=policy.epsilon)
        posterior = bandits.posterior(totals, binary=binary)
        means = np.array([p["posterior_mean"] for p in posterior])
        pulls = np.array([t.pulls for t in totals], dtype=float)
        regret = float(np.sum(pulls * (means.max() - means)))
        state = {**revision.state, "weights": _percent(names, w), "updated_at": now,
                 "posterior": jsonable(dict(zip(names, posterior, strict=True))),
                 "regret": regret, "ignored_rows": measured.ignored}
        weights = ", ".join(f"{n} {v:.1f}%" for n, v in state["weights"].items())
        self._deployments.update(revision.deployment, revision.number,
                                 expected_serial=serial, kind="weights",
                                 initiated_by=_system(), state=state,
                                 reason=f"{policy.algorithm} on {policy.reward}: {weights}",
                                 analysis={"posterior": state["posterior"], "regret": regret})
        return Decision(revision.deployment, revision.number, "weights", weights,
                        {"posterior": state["posterior"], "regret": regret})


def _failing(project: Project, revision: Revision, since_ms: int,
             spec: dict[str, Any]) -> tuple[bool, int]:
    """(Whether the canary's error rate, counted in the database (cheap: every tick),
    already exceeds stable's by the analysis' margin with its samples in: then the full
    early analysis runs now rather than at its next throttled look, so a canary that fails
    requests is stopped after about ``min_samples`` of them, whatever the request rate;
    the canary's requests counted)."""
    from mloop import repositories

    rules = [m for m in spec.get("metrics", []) if m.get("kind") == "error_rate"]
    if not rules:
        return False, 0
    counts = repositories.backend(project).traffic.counts(revision.deployment,
                                                          revision.number, since_ms=since_ms)

    def rate(arm: str) -> tuple[int, float]:
        seen = counts.get(arm, {})
        total = seen.get("ok", 0) + seen.get("error", 0) + seen.get("fallback", 0)
        bad = seen.get("error", 0) + seen.get("fallback", 0)
        return total, bad / total if total else 0.0

    (n_s, stable), (n_c, canary) = rate("stable"), rate("canary")
    return any(min(n_s, n_c) >= int(m["min_samples"]) and canary - stable > float(m["threshold"])
               for m in rules), n_c


def _system() -> str:
    from mloop.deploy.strategies import SYSTEM

    return SYSTEM


def _brief(report: dict[str, Any], now: int) -> dict[str, Any]:
    """What the revision's state keeps of an analysis (the event keeps all of it)."""
    return {"verdict": report["verdict"], "summary": report["summary"], "at": now,
            "step": report.get("step")}


def _percent(names: list[str], w: np.ndarray) -> dict[str, float]:
    """Weights (fractions) as percent rounded to 0.01, summing to exactly 100."""
    pct = np.round(np.asarray(w, dtype=float) * 100, 2)
    pct[int(np.argmax(pct))] += round(100 - float(pct.sum()), 2)
    return {n: round(float(v), 2) for n, v in zip(names, pct, strict=True)}


def rewards(reward: str, arms: list[ArmMeasure]) -> tuple[bool, list[Any]]:
    """Per arm the bandit's reward totals from its labelled rows, and whether binary.

    ``accuracy``: 1 when the prediction equals the label (Beta-Bernoulli). ``label``: the
    numeric label itself (a click: binary when every label is 0 or 1; a revenue).
    ``mae``/``rmse``/``neg_abs_error``: minus the absolute error (continuous; the Gaussian
    posterior). Rows without a label count
    nothing.
    """
    from mloop.deploy.bandits import ArmStats

    out, seen = [], []
    for arm in arms:
        if reward == "accuracy":
            values = arm.correct.astype(float)
        elif reward == "label":
            values = arm.label_values if arm.label_values is not None else np.array([])
        elif reward in ("mae", "rmse", "neg_abs_error"):
            values = -arm.abs_error if arm.abs_error is not None else np.array([])
        else:
            raise InvalidInputError(f"Unknown bandit reward {reward!r}; use accuracy, label "
                                    "or neg_abs_error.")
        values = np.asarray(values, dtype=float)
        out.append(ArmStats(len(values), float(values.sum()), float((values ** 2).sum())))
        seen.append(values)
    every = np.concatenate(seen) if seen else np.array([])
    # labels that are all 0 or 1 (a click) are Bernoulli rewards: the Beta posterior
    binary = reward == "accuracy" or (reward == "label" and bool(np.isin(every, (0, 1)).all()))
    return binary, out


def ab_decision(revision: Revision, arms: dict[str, ArmMeasure],
                previous: dict[str, Any]) -> dict[str, Any]:
    """The A/B test's look now: the policy's metric of every arm compared with the first
    (the control) by the mSPRT (:mod:`mloop.deploy.stats`; with more than two arms at
    α / (arms − 1), Bonferroni), each with its running always-valid p and, for reference
    only, the fixed-horizon test. The winner: the best arm decided better than the
    control, or the control when it is decided better than every other arm; once decided,
    it stays (the p-value is a running minimum)."""
    from mloop.deploy import stats
    from mloop.deploy.analysis import jsonable, live_metric_name
    from mloop.deploy.model import ABPolicy

    policy = ABPolicy.from_dict(revision.policy)
    names = [a.name for a in revision.arms]
    control, others = names[0], names[1:]
    metric = live_metric_name(policy.metric or "auto", *(arms[n] for n in names))
    alpha = policy.alpha / len(others)
    before = previous.get("comparisons") or {}
    comparisons: dict[str, dict[str, Any]] = {}
    for other in others:
        seq, reference = _compare(metric, arms[control], arms[other], alpha=alpha,
                                  min_samples=policy.min_samples)
        p = stats.running_p((before.get(other) or {}).get("p"), seq.p_value)
        better = {"a": control, "b": other}.get(seq.winner or "") if seq.decided else None
        comparisons[other] = {"effect": seq.effect, "ci": [seq.ci_low, seq.ci_high], "p": p,
                              "decided": p <= alpha, "better": better,
                              "fixed_horizon": reference}
    winner = _ab_winner(control, comparisons, higher_is_better=metric == "accuracy")
    if winner is None and any(c["decided"] for c in comparisons.values()):
        winner = previous.get("winner")  # decided at an earlier look: it stays
    lead = comparisons[others[0]] if len(others) == 1 else min(
        comparisons.values(), key=lambda c: c["p"])
    return jsonable({"metric": metric, "winner": winner, "effect": lead["effect"],
                     "ci": lead["ci"], "p": lead["p"], "alpha": policy.alpha,
                     "control": control, "arms": names,
                     "n": {n: arms[n].labelled for n in names},
                     "fixed_horizon": lead["fixed_horizon"], "comparisons": comparisons})


def _ab_winner(control: str, comparisons: dict[str, dict[str, Any]], *,
               higher_is_better: bool) -> str | None:
    """The best arm decided better than the control; the control when it is decided
    better than all the others; else None."""
    better = [(c["effect"], arm) for arm, c in comparisons.items() if c["better"] == arm]
    if better:
        return max(better)[1] if higher_is_better else min(better)[1]
    if all(c["better"] == control for c in comparisons.values()):
        return control
    return None


def _compare(metric: str, a: ArmMeasure, b: ArmMeasure, *, alpha: float,
             min_samples: int) -> tuple[Any, dict[str, Any] | None]:
    """mSPRT of b against a on ``metric``, and the fixed-horizon reference."""
    from mloop.deploy import stats

    if metric == "accuracy":
        sa, sb = int(a.correct.sum()), int(b.correct.sum())
        seq = stats.msprt_proportions(sa, a.labelled, sb, b.labelled, alpha=alpha,
                                      min_samples=min_samples)
        if not (a.labelled and b.labelled):
            return seq, None
        ref = stats.fixed_horizon(sa, a.labelled, sb, b.labelled)
        return seq, {"test": "two-proportion z", "p_value": ref.p_value,
                     "difference": ref.difference, "ci": list(ref.ci)}
    if a.abs_error is None or b.abs_error is None or min(a.labelled, b.labelled) < 2:
        return stats.msprt_proportions(0, 0, 0, 0, alpha=alpha), None
    xa, xb = ((a.abs_error, b.abs_error) if metric == "mae"
              else (a.abs_error ** 2, b.abs_error ** 2))
    seq = stats.msprt_means(float(xa.mean()), float(xa.var(ddof=1)), len(xa),
                            float(xb.mean()), float(xb.var(ddof=1)), len(xb), alpha=alpha,
                            higher_is_better=False, min_samples=min_samples)
    with warnings.catch_warnings():  # identical errors: scipy warns, the p is 1 or nan
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = stats.welch_reference(xa, xb)
    return seq, {"test": "Welch t", "p_value": ref.p_value, "difference": ref.difference,
                 "ci": list(ref.ci)}


def run(project: Project, names: list[str] | None = None, *, every_s: float = 2.0,
        stop: threading.Event | None = None, holder: str | None = None,
        lease_ms: int = DEFAULT_LEASE_MS) -> None:
    """Tick a :class:`Controller` every ``every_s`` seconds until ``stop`` is set (or the
    process is interrupted); its leases are released on the way out."""
    if not every_s > 0:
        raise InvalidInputError("every_s must be a positive number of seconds.")
    stop = stop or threading.Event()
    controller = Controller(project, names, holder=holder, lease_ms=lease_ms)
    try:
        while not stop.is_set():
            for decision in controller.tick():
                log.info("mloop: %s revision %s: %s %s", decision.deployment,
                         decision.revision, decision.action, decision.reason)
            stop.wait(every_s)
    finally:
        controller.release()
