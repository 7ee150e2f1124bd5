"""One federation assembled: strategy, coordinator, tracking and the server that runs it.

:func:`mloop.federated.simulate` and ``mloop fl server`` both build a
:class:`Federation` and call :meth:`Federation.serve`; they differ only in where the
clients come from.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mloop.core.redact import get_logger
from mloop.errors import ConfigError
from mloop.federated.coordinator import Coordinator, EvaluateFn, Settings
from mloop.federated.recording import RunRecorder
from mloop.federated.server import Access, Listen
from mloop.federated.simulation import History, Tracking
from mloop.federated.strategy import Strategy
from mloop.federated.types import Weights

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger(__name__)


def default_strategy(n_clients: int) -> Strategy:
    """FedAvg over every client, every round."""
    from mloop.federated.strategies import FedAvg

    return FedAvg(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=n_clients,
                  min_evaluate_clients=n_clients, min_available_clients=n_clients)


def secure_aggregation(secure: bool | Any, strategy: Strategy) -> Any:
    """The SecAgg settings for ``secure`` (True: defaults), checked against the strategy."""
    if secure is False or secure is None:
        return None
    if not strategy.linear:
        raise ConfigError(f"secure aggregation shows the server only the sum of the updates; "
                          f"the {strategy.name} strategy needs each update. Use fedavg, "
                          "fedprox, fedavgm, fedadam, fedyogi or fedadagrad with --secure")
    try:
        from mloop.federated.secure import SecureAggregation
    except ImportError as exc:
        raise ConfigError(f"secure aggregation needs the cryptography package ({exc}): "
                          "pip install 'mloop[federated]'") from exc

    return SecureAggregation() if secure is True else secure


class _Progress:
    """An observer that advances a progress bar, then hands on to the next observer."""

    def __init__(self, bar: Any, then: Any) -> None:
        self.bar, self.then = bar, then

    def started(self, coordinator: Coordinator) -> None:
        if self.then is not None:
            self.then.started(coordinator)

    def round_done(self, record: Any, weights: Weights, coordinator: Coordinator) -> None:
        if self.then is not None:
            self.then.round_done(record, weights, coordinator)
        self.bar.advance()


@dataclass
class Federation:
    """A coordinator and, when tracked, the run that records it."""

    coordinator: Coordinator
    recorder: RunRecorder | None

    @classmethod
    def build(cls, strategy: Strategy | None, *, rounds: int, n_clients: int,
              evaluate_fn: EvaluateFn | None = None, initial_weights: Weights | None = None,
              round_timeout: float = 120.0, wait_timeout: float = 300.0,
              secure: bool | Any = False, seed: int = 0, float32: bool = False,
              tracking: Tracking | None = None, project: Project | None = None,
              population: int | None = None) -> Federation:
        """Check the settings, open (or resume) the run, make the coordinator."""
        strategy = strategy if strategy is not None else default_strategy(n_clients)
        settings = Settings(rounds=rounds, round_timeout=round_timeout,
                            wait_timeout=wait_timeout, float32=float32, seed=seed,
                            secure=secure_aggregation(secure, strategy), population=population)
        recorder, start, weights = None, 1, initial_weights
        if tracking is not None:
            recorder, checkpoint = RunRecorder.open(project, tracking, strategy)
            if checkpoint is not None:
                start, weights = checkpoint.round + 1, checkpoint.weights
        coordinator = Coordinator(strategy, settings, initial_weights=weights,
                                  evaluate_fn=evaluate_fn, observer=recorder, start_round=start)
        return cls(coordinator, recorder)

    def serve(self, tokens: str | list[str] | Access, *, sock: socket.socket | None = None,
              listen: Listen | None = None,
              on_loop: Callable[[Callable[[str, str], None]], None] | None = None,
              max_upload: int = 2 << 30, quiet: bool = False) -> History:
        """Serve until the last round (or a stop such as a spent privacy budget), with a
        progress bar of the rounds on a terminal (not under ``quiet``)."""
        from mloop.core.progress import progress
        from mloop.federated import server

        access = tokens if isinstance(tokens, Access) else Access.parse(
            [tokens] if isinstance(tokens, str) else tokens)
        listen = listen or Listen(sock=sock)
        coordinator = self.coordinator
        rounds = coordinator.settings.rounds - coordinator.start_round + 1
        try:
            with progress(rounds, "federated rounds", unit="rounds", quiet=quiet) as bar:
                coordinator.observer = _Progress(bar, self.recorder)
                records = server.serve(coordinator, access, listen, max_upload=max_upload,
                                       on_loop=on_loop)
        except BaseException as exc:
            if self.recorder is not None:
                self.recorder.fail(exc)
            raise
        assert coordinator.weights_now is not None
        history = History(list(records), coordinator.weights_now, stopped=coordinator.stopped,
                          clients=dict(coordinator.properties))
        if self.recorder is not None:
            try:
                self.recorder.finish(coordinator, history)
            except BaseException as exc:  # e.g. model_fn raised: the run says it failed
                self.recorder.fail(exc)
                raise
        return history


__all__ = ["Federation", "default_strategy", "secure_aggregation"]
