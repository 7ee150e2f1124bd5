"""Fixtures shared by the federated tests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """600 rows of scikit-learn's digits, scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]
