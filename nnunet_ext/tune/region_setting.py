"""A region ensemble's setting: per-region weights and decision thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["RegionSetting", "member_setting"]


@dataclass
class RegionSetting:
    """Normalised ``(M, R)`` weights and ``(R,)`` thresholds of a region ensemble."""

    weights: NDArray[np.float64]
    thresholds: list[float]

    def copy(self) -> RegionSetting:
        """An independent copy."""
        return RegionSetting(self.weights.copy(), list(self.thresholds))

    def key(self, channel: int) -> tuple[Any, ...]:
        """What the search of ``channel`` depends on: the other channels' settings."""
        others = [j for j in range(len(self.thresholds)) if j != channel]
        return (
            channel,
            self.weights[:, others].tobytes(),
            tuple(self.thresholds[j] for j in others),
        )

    def with_channel(
        self, channel: int, weights: NDArray[np.float64], threshold: float
    ) -> RegionSetting:
        """A copy with ``channel``'s weights and threshold replaced."""
        out = self.copy()
        out.weights[:, channel] = weights
        out.thresholds[channel] = threshold
        return out


def member_setting(num_models: int, num_regions: int, member: int | None) -> RegionSetting:
    """Equal weights (``member`` ``None``) or one member alone, every threshold 0.5.

    Examples:
        >>> member_setting(2, 1, 1).weights.tolist()
        [[0.0], [1.0]]
    """
    if member is None:
        weights = np.full((num_models, num_regions), 1.0 / num_models)
    else:
        weights = np.zeros((num_models, num_regions))
        weights[member] = 1.0
    return RegionSetting(weights, [0.5] * num_regions)
