"""Tiny models for the serving and worker tests: each answers a constant, and can be made
to fail, to be slow, or to fail its warm-up. Defined in a module of their own so that
pickles of them load in the server's and the worker's processes alike."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

import mloop
from mloop.project import Project

EXAMPLE = pd.DataFrame({"a": [1.0], "user": ["u0"]})


class Toy:
    """Answers ``value`` for every row; unless ``calm``, raises on a negative ``a`` and
    sleeps on a huge one; ``broken`` fails its warm-up (the server cannot load it)."""

    def __init__(self, value: float, calm: bool = False, broken: bool = False) -> None:
        self.value = value
        self.calm = calm
        self.broken = broken

    def predict(self, X: Any) -> np.ndarray:
        a = np.asarray(X["a"], dtype=float)
        if self.broken:
            raise RuntimeError("broken")
        if self.calm:
            return np.full(len(a), self.value)
        if (a < 0).any():
            raise ValueError("a must not be negative")
        if (a > 1000).any():
            time.sleep(0.5)
        return np.full(len(a), self.value)


def register(project: Project) -> Project:
    """``models:/toy/1..3`` answering 1.0, 2.0, 3.0 (3 never fails)."""
    for toy in (Toy(1.0), Toy(2.0), Toy(3.0, calm=True)):
        with mloop.start_run(project=project):
            mloop.log_model(toy, input_example=EXAMPLE, registered_name="toy")
    return project
