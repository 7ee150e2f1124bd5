"""What a revision's JSON holds, typed: arm references, policies, fallback and state.

The store keeps a revision's ``policy``, ``fallback`` and ``state`` as JSON (see
:mod:`mloop.repositories.deployments`); this module is their one reading and writing.

The **state** a controller moves, by strategy (every strategy has ``weights``, percent by
arm name, summing to 100):

=============  ==============================================================================
canary         ``step`` (index into the policy's steps), ``step_started_at`` (ms),
               ``inconclusive`` (analyses in a row without enough samples), ``failures``,
               ``decision`` (the last analysis' verdict)
ab             ``decision`` (the sequential test's last result, winner or None)
bandit         ``updated_at`` (ms), ``posterior`` (per arm), ``regret`` (estimated)
shadow         ``shadow``: the arm name that gets copies (absent once promoted)
blue_green     ``active``: ``blue`` or ``green``
=============  ==============================================================================
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from mloop.core.clock import parse_duration
from mloop.errors import InvalidInputError

__all__ = ["ABPolicy", "ArmRef", "BanditPolicy", "CanaryPolicy", "Fallback", "ShadowPolicy",
           "check_weights", "even_weights", "parse_arm"]

ALGORITHMS = ("thompson", "ucb1", "epsilon-greedy")
_ARM_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,99})=(.+)\Z", re.S)
_WEIGHT = re.compile(r"^(.*[^:]):(-?[0-9]+(?:\.[0-9]+)?)\Z", re.S)
TOLERANCE = 1e-6  # how far from 100 a sum of weights may be (an even split of 3 is 33.33…)


@dataclass(frozen=True)
class ArmRef:
    """``--arm [NAME=]REF[:WEIGHT]`` as given: the reference is resolved later."""

    ref: str
    name: str | None = None
    weight: float | None = None


def parse_arm(text: str) -> ArmRef:
    """``b=models:/churn/4:50`` → ArmRef("models:/churn/4", "b", 50.0)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("An arm is [NAME=]REF[:WEIGHT], e.g. "
                                "b=models:/churn/4:50; got an empty one.")
    text = text.strip()
    name = None
    named = _ARM_NAME.match(text)
    if named:
        name, text = named.group(1), named.group(2)
    weight = None
    weighted = _WEIGHT.match(text)
    if weighted and weighted.group(1) not in ("models", ""):
        text, weight = weighted.group(1), float(weighted.group(2))
    return ArmRef(text, name, weight)


def even_weights(count: int) -> list[float]:
    """``count`` weights that sum to 100."""
    return [100.0 / count] * count


def check_weights(weights: list[float | None]) -> list[float]:
    """Given weights (all or none), each in [0, 100] and summing to 100; none → even."""
    given = [w for w in weights if w is not None]
    if not given:
        return even_weights(len(weights))
    if len(given) != len(weights):
        raise InvalidInputError("Give a weight to every arm (REF:WEIGHT) or to none (an "
                                "even split).")
    bad = [w for w in given if not (math.isfinite(w) and 0 <= w <= 100)]
    if bad:
        raise InvalidInputError(f"A weight is a percentage between 0 and 100, not {bad[0]}.")
    total = sum(given)
    if abs(total - 100) > TOLERANCE:
        raise InvalidInputError(f"The arms' weights sum to {total:g}, not 100; adjust them "
                                "(e.g. a=models:/churn/3:50 b=models:/churn/4:50).")
    return [float(w) for w in given]


def _positive_duration(value: Any, what: str) -> int:
    try:
        return parse_duration(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc.message}") from None


@dataclass(frozen=True)
class CanaryPolicy:
    """Traffic steps (percent to the canary, the last 100), the pause between them, the
    analysis spec (None: the default analysis) and how many inconclusive analyses a step
    may have before the canary aborts."""

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    interval_ms: int = 600_000
    analysis: dict[str, Any] | None = None
    max_inconclusive: int = 3

    def __post_init__(self) -> None:
        steps = self.steps
        if not steps or any(not (math.isfinite(s) and 0 < s <= 100) for s in steps):
            raise InvalidInputError("Canary steps are percentages above 0 and at most 100, "
                                    f"e.g. 5,25,50,100; got {','.join(map(str, steps))}.")
        if list(steps) != sorted(set(steps)):
            raise InvalidInputError("Canary steps must rise, each above the one before: "
                                    f"{','.join(f'{s:g}' for s in steps)}.")
        if steps[-1] != 100:
            raise InvalidInputError("The last canary step must be 100 (the canary takes all "
                                    "traffic, then it is promoted).")

    @classmethod
    def of(cls, steps: Any = None, interval: Any = None,
           analysis: dict[str, Any] | None = None) -> CanaryPolicy:
        """From user input: steps as ``"5,25,50,100"`` or numbers; interval as ``"10m"``."""
        if isinstance(steps, str):
            try:
                steps = [float(s) for s in steps.split(",") if s.strip()]
            except ValueError:
                raise InvalidInputError(f"--steps takes percentages separated by commas, "
                                        f"e.g. 5,25,50,100; got {steps!r}.") from None
        parsed = tuple(float(s) for s in steps) if steps is not None else cls.steps
        every = (_positive_duration(interval, "--interval") if interval is not None
                 else cls.interval_ms)
        return cls(parsed, every, analysis)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "interval_ms": self.interval_ms,
                "analysis": self.analysis, "max_inconclusive": self.max_inconclusive}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CanaryPolicy:
        return cls(tuple(d["steps"]), int(d["interval_ms"]), d.get("analysis"),
                   int(d.get("max_inconclusive", 3)))


@dataclass(frozen=True)
class ABPolicy:
    """A weighted split, sticky by ``sticky`` (a request field, or the ``x-mloop-key``
    header), judged on ``metric`` from feedback once each arm has ``min_samples`` labels."""

    sticky: str | None = None
    metric: str | None = None
    min_samples: int = 500
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise InvalidInputError("--min-samples must be at least 1.")
        if not 0 < self.alpha < 1:
            raise InvalidInputError(f"alpha is a probability between 0 and 1, not "
                                    f"{self.alpha}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ABPolicy:
        return cls(**d)


@dataclass(frozen=True)
class BanditPolicy:
    """Weights recomputed every ``interval_ms`` from the ``reward`` metric of feedback."""

    reward: str = "accuracy"
    algorithm: str = "thompson"
    interval_ms: int = 60_000
    min_share: float = 0.0  # fraction of traffic each arm keeps at least
    epsilon: float = 0.1
    sticky: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidInputError(f"Unknown bandit algorithm {self.algorithm!r}; use one of "
                                    f"{', '.join(ALGORITHMS)}.")
        if not 0 <= self.min_share < 1:
            raise InvalidInputError("--min-share is a fraction of traffic in [0, 1).")
        if not 0 <= self.epsilon <= 1:
            raise InvalidInputError("--epsilon is a probability in [0, 1].")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BanditPolicy:
        return cls(**d)


@dataclass(frozen=True)
class ShadowPolicy:
    """The share of requests (0-1] copied to the shadow after the primary answered."""

    sample: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sample) and 0 < self.sample <= 1):
            raise InvalidInputError(f"--sample is a share of requests in (0, 1], not "
                                    f"{self.sample}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fallback:
    """What answers when the chosen arm fails or takes longer than ``timeout_ms``: another
    model version (``model``, pinned) or a constant (``value``)."""

    model: str | None = None
    source: str | None = None  # the reference it was given as
    value: Any = None
    has_value: bool = False
    timeout_ms: float | None = None

    def __post_init__(self) -> None:
        if self.model is not None and self.has_value:
            raise InvalidInputError("Give --fallback (a model) or --fallback-value, not both.")
        if self.timeout_ms is not None and not (math.isfinite(self.timeout_ms)
                                                and self.timeout_ms > 0):
            raise InvalidInputError("--timeout-ms must be a positive number of "
                                    "milliseconds.")

    @property
    def empty(self) -> bool:
        return self.model is None and not self.has_value and self.timeout_ms is None

    def to_dict(self) -> dict[str, Any] | None:
        if self.empty:
            return None
        out: dict[str, Any] = {"timeout_ms": self.timeout_ms}
        if self.model is not None:
            out |= {"model": self.model, "source": self.source}
        if self.has_value:
            out["value"] = self.value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Fallback:
        if not d:
            return cls()
        return cls(d.get("model"), d.get("source"), d.get("value"), "value" in d,
                   d.get("timeout_ms"))
