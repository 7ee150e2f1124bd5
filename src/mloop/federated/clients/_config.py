"""What every ready client checks: the server's config values and the local data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mloop.errors import ConfigError, InvalidInputError
from mloop.federated.types import Config


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1, else :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, not {value!r}")
    return int(value)


def seed_of(value: Any) -> int:
    """A seed: an int >= 0, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"seed must be an integer >= 0, not {value!r}")
    return int(value)


def nonnegative_float(value: Any, name: str, *, positive: bool = False) -> float:
    """``value`` as a finite float >= 0 (> 0 when ``positive``), else :class:`ConfigError`."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.number))
          and math.isfinite(float(value)) and (value > 0 if positive else value >= 0))
    if not ok:
        raise ConfigError(f"{name} must be a finite number {'>' if positive else '>='} 0, "
                          f"not {value!r}")
    return float(value)


def config_int(config: Config, key: str, default: int) -> int:
    """``config[key]`` as an int >= 1 when the server sent it, else ``default``."""
    return default if config.get(key) is None else positive_int(config[key], f"config {key!r}")


def optional_batch(value: Any, name: str) -> int | None:
    """A batch size: None (the whole data at once) or an int >= 1."""
    return None if value is None else positive_int(value, name)


def proximal_mu(config: Config) -> float:
    """FedProx's μ from the config (0 when not sent)."""
    mu = config.get("proximal_mu")
    return 0.0 if mu is None else nonnegative_float(mu, "config 'proximal_mu'")


def round_of(config: Config) -> int:
    """The round number the server sent (0 when called outside a federation)."""
    value = config.get("round", 0)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"config 'round' must be an integer >= 0, not {value!r}")
    return int(value)


def features(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a C-ordered float64 matrix of finite values with at least one row."""
    try:
        arr = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric matrix (samples × features): "
                                f"{exc}") from exc
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name} must be a non-empty 2-D matrix (samples × "
                                f"features), not of shape {arr.shape}; reshape(-1, 1) a "
                                "single feature")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} holds NaN or infinite values; impute or drop them")
    return arr


def targets(y: Any, n: int, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D array of ``n`` values."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(f"{name} must be 1-D with one value per row of the features "
                                f"({n}), not of shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} holds NaN or infinite values; drop those rows")
    return arr


__all__ = ["config_int", "features", "nonnegative_float", "optional_batch", "positive_int",
           "proximal_mu", "round_of", "seed_of", "targets"]
