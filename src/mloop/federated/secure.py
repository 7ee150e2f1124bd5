"""Secure aggregation over the federation's protocol: the four steps of
:mod:`.secagg` carried as ``secagg`` tasks (and the masked input as a ``fit`` task).

Per round, for the sampled clients (indexes 1 … n in name order):

1. ``advertise``: each client makes fresh key pairs and sends its public keys;
2. ``share``: each gets everyone's public keys and sends its encrypted Shamir shares;
3. ``fit``: each gets the ciphertexts addressed to it and the global weights, trains,
   and sends its update — multiplied by its weight (examples, or 1 under DP's uniform
   weighting), with the weight and whether it was clipped appended — fixed-point
   encoded and masked;
4. ``unmask``: the clients whose vectors arrived send the shares that remove the masks
   (of survivors: self-masks; of clients lost after step 2: their pairwise masks).

The server then holds Σ wₖ·Δₖ, Σ wₖ and the number of clipped updates (what adaptive
clipping needs), and nothing about one client's update; the
strategy's :meth:`~mloop.federated.strategy.Strategy.aggregate_sum` makes the next
model. A client lost before step 3 is a failure like any other; one lost after it is
unmasked through the others' shares, as long as ``threshold`` of them answer.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import ConfigError, InvalidInputError, MloopError
from mloop.federated import answers, arrays, secagg
from mloop.federated.protocol import JSON, NPZ, TaskKind
from mloop.federated.types import Failure, Weights

if TYPE_CHECKING:
    from mloop.federated.coordinator import Coordinator
    from mloop.federated.runtime import ClientRuntime


@dataclass
class SecureAggregation:
    """Secure aggregation settings: ``threshold`` (t of n clients needed to unmask; None:
    ⌈2n/3⌉, at least 2) and ``scale_bits`` (fixed-point fractional bits, 2^-f resolution)."""

    threshold: int | None = None
    scale_bits: int = 24
    _nonce: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)

    def __post_init__(self) -> None:
        if not 8 <= self.scale_bits <= 40:
            raise ConfigError("scale_bits must be between 8 and 40")
        if self.threshold is not None and (isinstance(self.threshold, bool) or
                                           not isinstance(self.threshold, int) or
                                           self.threshold < 2):
            raise ConfigError("the secure aggregation threshold must be an int >= 2 (or None "
                              "for ⌈2n/3⌉)")

    async def round(self, coordinator: Coordinator, server_round: int, chosen: list[str]
                    ) -> tuple[Weights | None, list[str], list[Failure]]:
        """One secure round over ``chosen``: (next weights or None, answered, failures)."""
        current = coordinator.weights_now
        assert current is not None
        n = len(chosen)
        if n < 2:
            return None, [], [Failure(c, "secure aggregation needs at least 2 clients")
                              for c in chosen]
        index = {name: i + 1 for i, name in enumerate(sorted(chosen))}
        name_of = {i: name for name, i in index.items()}
        size = sum(int(w.size) for w in current) + 2  # the update, its weight, clipped or not
        threshold = self.threshold if self.threshold is not None else \
            secagg.default_threshold(n)
        threshold = min(threshold, n)
        server = secagg.SecAggServer(n, threshold, size, f"{self._nonce}-{server_round}")
        base = {"round_id": server.round_id, "n": n, "threshold": server.threshold,
                "scale_bits": self.scale_bits}
        failures: list[Failure] = []

        async def step(names: list[str], body: dict[str, Any],
                       per_client: dict[str, dict[str, Any]] | None = None,
                       kind: TaskKind = TaskKind.SECAGG,
                       parse: answers.Parser | None = None) -> dict[str, Any]:
            answered, lost = await coordinator.ask(names, kind, server_round, body,
                                                   per_client=per_client, parse=parse)
            failures.extend(lost)
            return answered

        try:
            keys = await step(list(index), {**base, "step": "advertise"},
                              {name: {"index": i} for name, i in index.items()})
            for name, answer in keys.items():
                _take(server.add_keys, index[name], answer, failures, name)
            public = secagg.to_json(server.public_keys())
            shares = await step(_names(server.public_keys(), name_of),
                                {**base, "step": "share", "public_keys": public})
            u2 = sorted(index[name] for name, answer in shares.items()
                        if _take(server.add_shares, index[name], answer, failures, name))
            fit = coordinator.fit_config(server_round)
            masked = await step(
                [name_of[i] for i in u2], {**fit, "secure": {**base, "step": "mask"}},
                {name_of[i]: {"ciphertexts": secagg.to_json(server.ciphertexts_for(i))}
                 for i in u2}, kind=TaskKind.FIT, parse=answers.masked_parser(size))
            for name, (vector, _metrics) in masked.items():
                _take(server.add_masked, index[name], vector, failures, name)
            request = server.unmask_request()
            unmasked = await step([name_of[i] for i in request["survivors"]],
                                  {**base, "step": "unmask", **request})
            total = server.finish({index[name]: a for name, a in unmasked.items()})
            survivors = [name_of[i] for i in server.survivors]
            new = await asyncio.to_thread(self._apply, coordinator, server_round, total,
                                          len(survivors))
        except Exception as exc:  # a malicious or broken client fails the round, not the run
            failures.append(Failure("*", f"secure aggregation failed this round: {exc}"))
            return None, [], failures
        return new, survivors, failures

    def _apply(self, coordinator: Coordinator, server_round: int, total: np.ndarray,
               count: int) -> Weights:
        """The next weights from the unmasked sum: Σ w·Δ, then Σ w, then Σ clipped."""
        current = coordinator.weights_now
        assert current is not None
        summed = secagg.decode(total, self.scale_bits)
        weight, clipped = float(summed[-2]), round(float(summed[-1]))
        if not weight > 0 or not 0 <= clipped <= count:
            raise InvalidInputError(f"the unmasked weight ({weight:g}) or clipped count "
                                    f"({clipped}) is impossible: a client lied")
        record = getattr(coordinator.strategy, "record_clipped", None)
        if record is not None:  # adaptive clipping learns how many clipped, never who
            record(server_round, clipped)
        vector = arrays.unflatten(summed[:-2], _float(current))
        new: Weights = coordinator.strategy.aggregate_sum(server_round, current, vector,
                                                          weight, count)
        return new


def _take(add: Any, i: int, answer: Any, failures: list[Failure], name: str) -> bool:
    """Give one client's message to the SecAgg server; a bad one is its failure."""
    try:
        add(i, answer)
    except MloopError as exc:
        failures.append(Failure(name, f"rejected: {exc}"))
        return False
    return True


def _names(members: dict[int, Any], name_of: dict[int, str]) -> list[str]:
    return [name_of[i] for i in sorted(members)]


def _float(weights: Weights) -> Weights:
    return [np.zeros(w.shape, dtype=np.float64) for w in weights]


# -- the client's side -----------------------------------------------------------------
def client_step(runtime: ClientRuntime, task: dict[str, Any]) -> tuple[bytes, str]:
    """Answer one ``secagg`` task (advertise, share or unmask) of the current round."""
    step = task.get("step")
    state: Any = runtime._secagg
    if step == "advertise":
        state = secagg.SecAggClient(int(task["index"]), str(task["round_id"]),
                                    int(task["threshold"]))
        runtime._secagg = state
        return json.dumps(secagg.to_json(state.advertise())).encode(), JSON
    if state is None or state.round_id != str(task.get("round_id")):
        raise InvalidInputError("a secure aggregation step of a round this client did not "
                                "start: it joined mid-round")
    if step == "share":
        public = secagg.from_json(task["public_keys"])
        return json.dumps(secagg.to_json(state.share_keys(public))).encode(), JSON
    if step == "unmask":
        answer = state.unmask(task["survivors"], task["dropped"])
        return json.dumps(secagg.to_json(answer)).encode(), JSON
    raise InvalidInputError(f"unknown secure aggregation step {str(step)[:40]!r}")


def masked_fit(runtime: ClientRuntime, task: dict[str, Any], weights: Weights
               ) -> tuple[bytes, str]:
    """Train, then send the weighted update and its weight, encoded and masked."""
    state: Any = runtime._secagg
    secure = task["secure"]
    if state is None or state.round_id != str(secure.get("round_id")):
        raise InvalidInputError("a masked fit of a round this client did not start")
    delta, examples, metrics = runtime.fit(task, weights)
    rule = task.get("update") or {}
    weight = 1.0 if rule.get("weighting") == "uniform" else float(examples)
    vector = np.append(arrays.flatten(delta) * weight,
                       [weight, float(metrics.pop("clipped", 0))])
    encoded = secagg.encode(vector, int(secure.get("scale_bits", 24)),
                            summands=int(secure["n"]))
    masked = state.mask(encoded, secagg.from_json(task.get("ciphertexts") or {}))
    metrics.pop("num_examples", None)
    return arrays.encode([masked], {"metrics": metrics}), NPZ


__all__ = ["SecureAggregation", "client_step", "masked_fit"]
