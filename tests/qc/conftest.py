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
    """Probabilities that put ``sure`` on each foreground voxel's label (the rest spread evenly)
    and 0.999 on the background, as nnU-Net's softmax far from any structure."""
    p = np.empty((classes, *labels.shape), dtype=np.float32)
    for value in range(classes):
        certainty = 0.999 if value == 0 else sure
        at = labels == value
        p[:, at] = (1 - certainty) / (classes - 1)
        p[value, at] = certainty
    return p


@pytest.fixture
def reference() -> np.ndarray:
    return heart()
