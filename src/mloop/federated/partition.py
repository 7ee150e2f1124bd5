"""Split one data set into per-client index sets, to simulate a federation.

Three partitioners, each deterministic for a seed and each putting every index in
exactly one partition (every partition's indices sorted ascending):

- :func:`iid`: a random permutation cut into ``n_clients`` near-equal parts;
- :func:`dirichlet`: label skew, each class spread over the clients by proportions drawn
  from Dirichlet(α) (Hsu, Qi & Brown 2019, "Measuring the effects of non-identical data
  distribution for federated visual classification"); small α gives each client few
  classes, large α tends to IID;
- :func:`shards`: the pathological split of McMahan et al. 2017 ("Communication-efficient
  learning of deep networks from decentralized data"): sort by label, cut into
  ``n_clients × shards_per_client`` shards, deal each client ``shards_per_client``.

:func:`label_histogram` is what a client may tell about its labels (recorded with the run).
Everything is vectorised: no Python loop over samples or over clients' arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mloop.errors import ConfigError, InvalidInputError

#: how many times :func:`dirichlet` redraws proportions before giving up, by default
DEFAULT_MAX_TRIES = 1000


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer >= {minimum}, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, not {value}")
    return int(value)


def _rng(seed: Any) -> np.random.Generator:
    _check_int(seed, "seed", 0)
    return np.random.default_rng(int(seed))


def _label_codes(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct labels sorted, each sample's index into them) of 1-D ``labels``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InvalidInputError(f"labels must be 1-D (one label per sample), not of shape "
                                f"{arr.shape}; pass y, not a one-hot matrix")
    if arr.size == 0:
        raise InvalidInputError("labels are empty: there is nothing to partition")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError("labels hold NaN or infinite values; drop or fill those "
                                "samples first")
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    classes, codes = np.unique(arr, return_inverse=True)
    return classes, codes.ravel()


def _groups(owner: np.ndarray, n_clients: int) -> list[np.ndarray]:
    """The sample indices owned by each client (``owner[i]`` is sample i's client),
    each sorted ascending."""
    order = np.argsort(owner, kind="stable")  # stable: indices stay ascending per client
    bounds = np.cumsum(np.bincount(owner, minlength=n_clients))[:-1]
    return np.split(order.astype(np.int64, copy=False), bounds)


def _check_enough(n: int, n_clients: int, what: str) -> None:
    if n < n_clients:
        raise ConfigError(f"{n} {what} cannot give each of {n_clients} clients one; use at "
                          f"most {n} clients")


def iid(n_samples_or_labels: Any, n_clients: int, *, seed: int = 0) -> list[np.ndarray]:
    """``n_clients`` index arrays from a random permutation of ``range(n)`` (n an int, or
    the length of the labels given), sizes differing by at most one."""
    if isinstance(n_samples_or_labels, (int, np.integer)) and not isinstance(
            n_samples_or_labels, bool):
        n = _check_int(n_samples_or_labels, "n_samples", 1)
    else:
        arr = np.asarray(n_samples_or_labels)
        if arr.ndim == 0 or len(arr) == 0:
            raise InvalidInputError("give iid the number of samples or the labels (one per "
                                    f"sample), not {n_samples_or_labels!r}")
        n = len(arr)
    n_clients = _check_int(n_clients, "n_clients", 1)
    _check_enough(n, n_clients, "samples")
    perm = _rng(seed).permutation(n)
    owner = np.empty(n, dtype=np.int64)
    # position p of the permutation goes to client p * K // n: contiguous, near-equal parts
    owner[perm] = np.arange(n, dtype=np.int64) * n_clients // n
    return _groups(owner, n_clients)


def _dirichlet_counts(class_sizes: np.ndarray, n_clients: int, *, alpha: float,
                      min_size: int, rng: np.random.Generator, max_tries: int) -> np.ndarray:
    """A (classes × clients) matrix of sample counts, redrawn until every client has at
    least ``min_size`` samples."""
    for _ in range(max_tries):
        props = rng.dirichlet(np.full(n_clients, alpha), size=class_sizes.size)
        cuts = np.floor(np.cumsum(props, axis=1) * class_sizes[:, None]).astype(np.int64)
        # the cumulative sum may end a hair off 1: pin the last cut to the class size
        cuts = np.minimum(cuts, class_sizes[:, None])
        cuts[:, -1] = class_sizes
        counts = np.diff(cuts, axis=1, prepend=0)
        if counts.sum(axis=0).min() >= min_size:
            return counts
    raise ConfigError(f"no Dirichlet(alpha={alpha}) draw in {max_tries} tries gave every one "
                      f"of {n_clients} clients at least {min_size} samples; raise alpha, lower "
                      "min_size, use fewer clients or raise max_tries")


def dirichlet(labels: Any, n_clients: int, *, alpha: float, min_size: int = 10,
              seed: int = 0, max_tries: int = DEFAULT_MAX_TRIES) -> list[np.ndarray]:
    """``n_clients`` index arrays with label skew: each class's samples are shared out by
    proportions drawn from Dirichlet(``alpha``·1), the whole draw repeated (up to
    ``max_tries`` times) until every client holds at least ``min_size`` samples
    (Hsu et al. 2019). Raises :class:`ConfigError` when that is impossible or unlikely."""
    classes, codes = _label_codes(labels)
    n_clients = _check_int(n_clients, "n_clients", 1)
    min_size = _check_int(min_size, "min_size", 0)
    max_tries = _check_int(max_tries, "max_tries", 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) \
            or not math.isfinite(alpha) or alpha <= 0:
        raise ConfigError(f"alpha must be a finite number > 0 (e.g. 0.1 skewed, 100 near "
                          f"IID), not {alpha!r}")
    n = codes.size
    if n < n_clients * max(min_size, 1):
        raise ConfigError(f"{n} samples cannot give each of {n_clients} clients at least "
                          f"{max(min_size, 1)}; lower min_size or use fewer clients")
    rng = _rng(seed)
    perm = rng.permutation(n)
    # samples grouped by class, in random order within each class
    order = perm[np.argsort(codes[perm], kind="stable")]
    counts = _dirichlet_counts(np.bincount(codes, minlength=classes.size), n_clients,
                               alpha=float(alpha), min_size=min_size, rng=rng,
                               max_tries=max_tries)
    owner = np.empty(n, dtype=np.int64)
    owner[order] = np.repeat(np.tile(np.arange(n_clients), classes.size), counts.ravel())
    return _groups(owner, n_clients)


def shards(labels: Any, n_clients: int, *, shards_per_client: int = 2,
           seed: int = 0) -> list[np.ndarray]:
    """``n_clients`` index arrays by McMahan et al. 2017's pathological split: samples
    sorted by label (ties in random order) cut into ``n_clients × shards_per_client``
    near-equal shards, each client dealt ``shards_per_client`` of them at random."""
    _, codes = _label_codes(labels)
    n_clients = _check_int(n_clients, "n_clients", 1)
    per = _check_int(shards_per_client, "shards_per_client", 1)
    n = codes.size
    n_shards = n_clients * per
    if n < n_shards:
        raise ConfigError(f"{n} samples cannot make {n_shards} shards ({n_clients} clients × "
                          f"{per}); lower shards_per_client or use fewer clients")
    rng = _rng(seed)
    perm = rng.permutation(n)
    order = perm[np.argsort(codes[perm], kind="stable")]
    shard_of_position = np.arange(n, dtype=np.int64) * n_shards // n
    client_of_shard = np.empty(n_shards, dtype=np.int64)
    client_of_shard[rng.permutation(n_shards)] = np.arange(n_shards) // per
    owner = np.empty(n, dtype=np.int64)
    owner[order] = client_of_shard[shard_of_position]
    return _groups(owner, n_clients)


def _label_key(value: Any) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def label_histogram(labels: Any) -> dict[str, int]:
    """How many samples carry each label, keyed by the label as text, in label order
    (empty labels give an empty dict)."""
    arr = np.asarray(labels)
    if arr.size == 0:
        return {}
    if arr.ndim == 2 and arr.shape[1] == 1:  # a column vector
        arr = arr.ravel()
    classes, codes = _label_codes(arr)
    counts = np.bincount(codes, minlength=classes.size)
    return {_label_key(c): int(k) for c, k in zip(classes, counts, strict=True)}


__all__ = ["DEFAULT_MAX_TRIES", "dirichlet", "iid", "label_histogram", "shards"]
