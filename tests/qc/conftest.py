from __future__ import annotations

import numpy as np
import pytest


def heart(shape=(8, 24, 24)) -> np.ndarray:
    """Labels 1-3 as three blocks (myocardium, LV, RV)."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:6, 4:12, 4:12] = 1
    labels[2:6, 6:10, 6:10] = 2
    labels[2:6, 4:12, 14:20] = 3
    return labels


def confident(labels: np.ndarray, classes: int = 4, sure: float = 0.9) -> np.ndarray:
    """Probabilities that put ``sure`` on each voxel's label, the rest spread evenly."""
    p = np.full((classes, *labels.shape), (1 - sure) / (classes - 1), dtype=np.float32)
    for c in range(classes):
        p[c][labels == c] = sure
    return p


@pytest.fixture
def reference() -> np.ndarray:
    return heart()
