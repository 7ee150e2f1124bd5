"""Extension points of ``mloop serve``: endpoints other than one model, and extensions.

An **endpoint** answers at a name of its own (``/v2/models/{name}/infer``,
``/predict?model=NAME``, ``/invocations?model=NAME``) before plain models are looked up;
a deployment (``mloop.deploy.serving``) is one. A request to it goes in two steps, so
that the route keeps reading bodies as it does for a model:

1. ``choose(body, headers)``: which served model the request goes to (a :class:`Pick`);
   the route reads the body against that model's signature;
2. ``predict(state, pick, frame, route, proba=...)``: the :class:`Answer` (predictions,
   the request id, the model that answered and headers to add). Caller mistakes are
   raised as the model path raises them (4xx); what the endpoint does on a model's
   failure (a fallback, say) is its own.

An **extension** is an object with ``async start(state)`` and ``async stop(state)``,
named in ``ServeConfig.extensions`` as ``"module:factory"`` (``factory(config)`` makes
it), so that a layer above serving can add endpoints without serving importing it and
the name survives the JSON config of ``--workers N``. The lifespan starts extensions
after the models are loaded and before the server is ready, and stops them (in reverse
order) before the models are drained.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mloop.errors import ConfigError

if TYPE_CHECKING:
    from mloop.serving.inference import ServedModel
    from mloop.serving.state import ServeConfig, ServingState

__all__ = ["Answer", "Endpoint", "Extension", "Pick", "load_extension"]


@dataclass(frozen=True)
class Pick:
    """Where one request goes: ``served`` reads its body; ``token`` is the endpoint's."""

    served: ServedModel
    token: Any = None


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered: ``served`` is the model whose name and version the
    response body carries; ``headers`` are added to the response."""

    pred: Any
    proba: Any
    request_id: str
    served: ServedModel
    headers: dict[str, str] = field(default_factory=dict)


class Endpoint(Protocol):
    """A name answered by something other than one model version."""

    def model(self) -> ServedModel:
        """The model whose metadata ``GET /v2/models/{name}`` shows now."""
        ...

    def choose(self, body: Any, headers: Mapping[str, str]) -> Pick:
        """The model this request (its parsed JSON ``body`` and headers) goes to."""
        ...

    async def predict(self, state: ServingState, pick: Pick, frame: Any, route: str, *,
                      proba: bool) -> Answer:
        """The answer to ``frame`` (read against ``pick.served``'s signature)."""
        ...


class Extension(Protocol):
    async def start(self, state: ServingState) -> None: ...

    async def stop(self, state: ServingState) -> None: ...


def load_extension(name: str, config: ServeConfig) -> Extension:
    """The extension ``"module:factory"`` makes for ``config``; ConfigError if none."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"A serving extension is named 'module:factory', not {name!r}.")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Cannot load the serving extension {name!r} ({exc}); check the "
                          "name, and that its package is installed.") from exc
    made: Extension = factory(config)
    return made
