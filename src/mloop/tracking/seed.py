"""One call to make a run's randomness repeatable."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from typing import Any

_current: int | None = None


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy and (if imported or installed) PyTorch with ``seed``.

    Also sets ``PYTHONHASHSEED`` for child processes. Runs started afterwards record the
    seed, and so does the active run if there is one. Returns the seed.
    """
    global _current
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        from mloop.errors import InvalidInputError

        raise InvalidInputError(f"Seed must be an integer in [0, 2**32), got {seed!r}.")
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import numpy as np  # a dependency of mloop, always present

    np.random.seed(seed)
    torch: Any = sys.modules.get("torch")
    if torch is None and importlib.util.find_spec("torch") is not None:
        torch = importlib.import_module("torch")
    if torch is not None:
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    _current = seed
    from mloop.tracking import fluent

    fluent.record_seed(seed)
    return seed


def current_seed() -> int | None:
    """The last seed given to :func:`seed_everything` in this process."""
    return _current
