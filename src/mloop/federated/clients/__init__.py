"""Ready clients: scikit-learn linear models and PyTorch modules, numpy at the boundary.

``SGDClient`` and ``LogisticRegressionClient`` (scikit-learn) load with this package;
``TorchClient`` imports PyTorch, so it loads only when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.federated.clients.sklearn import LogisticRegressionClient, SGDClient

if TYPE_CHECKING:
    from mloop.federated.clients.torch import TorchClient


def __getattr__(name: str) -> Any:
    """``TorchClient`` on first use (importing torch then, not with this package)."""
    if name == "TorchClient":
        from mloop.federated.clients.torch import TorchClient

        return TorchClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LogisticRegressionClient", "SGDClient", "TorchClient"]
