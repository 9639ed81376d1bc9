"""Decide the region tuner's steps on any metric of ``evaluate`` (``tune --metric``).

Dice proposes, the metric decides. For one region, the weights and threshold of the best mean
Dice are found as without a metric (:func:`~nnunet_ext.tune.region_search.channel_dice`, one
histogram per weight candidate); the candidates are then those weights with that threshold and
with each of :data:`METRIC_THRESHOLDS`. Each is scored on the whole label maps of the cases by
:class:`~nnunet_ext.postprocess.objective.Objective`, the values ``postprocess determine
--metric`` decides on (Dice, IoU, HD95, ASSD, NSD, a lesion-wise metric, a preset's score
metric or a score file; lower is better for distances), and the best mean in the metric's
direction wins: first the fewest cases where the metric is undefined (a threshold that empties
a region leaves HD95 undefined, which a mean would not see), then the best mean, ties going to
the threshold nearest the Dice-best one.

Held-out differences pair as ``postprocess determine`` pairs them
(:func:`nnunet_ext.postprocess.heldout.differences`: for Dice-like metrics a NaN is a perfect
case, otherwise NaN and infinite values are left out) and are judged by the package's one rule
(:func:`nnunet_ext._stats.judge_label_step`); a step that leaves the metric undefined in more
held-out cases is not kept.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import judge_label_step, nan_mean
from nnunet_ext.postprocess.heldout import differences
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.tune.region_data import RegionCVData
from nnunet_ext.tune.region_search import active_labels
from nnunet_ext.tune.region_setting import RegionSetting

__all__ = ["METRIC_THRESHOLDS", "RegionMetric", "metric_thresholds"]

#: The thresholds tried beside the Dice-best one when deciding on a metric.
METRIC_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def metric_thresholds(dice_best: float) -> list[float]:
    """The thresholds a metric decides among: the Dice-best one, then the grid, nearest first.

    Examples:
        >>> metric_thresholds(0.52)[:4]
        [0.52, 0.5, 0.55, 0.45]
    """
    tried = {round(float(dice_best), 4), *METRIC_THRESHOLDS}
    return sorted(tried, key=lambda t: (abs(t - dice_best), t))


class RegionMetric:
    """Per-case values of one metric for region settings, on the cases' whole label maps.

    Args:
        data: The compact CV data, with each case's volume (``load_region_data(...,
            volumes=True)``).
        objective: What is decided on (``Objective(metric, ...)``).

    Raises:
        ValueError: If ``data`` holds no volumes.
    """

    def __init__(self, data: RegionCVData, objective: Objective) -> None:
        if data.volumes is None or len(data.volumes) != data.num_cases:
            raise ValueError(
                "data must hold each case's volume to score a metric; got none. Read it with "
                "load_region_data(..., volumes=True)."
            )
        self.data = data
        self.objective = objective
        self._cache: dict[tuple[int, bytes], NDArray[np.float64]] = {}

    @property
    def name(self) -> str:
        """The metric's name (``hd95``, ``lesion_f1``, ``score:FILE``, ...)."""
        return self.objective.name

    @property
    def paired(self) -> bool:
        """Whether NaN is a perfect case (Dice-like), paired as tune pairs Dice."""
        return self.objective.nan_is_perfect

    def _case(self, weights: NDArray[np.float64], thresholds: Sequence[float], case: int) -> Any:
        """``(R,)`` goodness of one case; the same label map is scored once."""
        labels = active_labels(self.data, weights, thresholds, case)
        key = (case, hashlib.blake2b(labels.tobytes(), digest_size=16).digest())
        if key not in self._cache:
            assert self.data.volumes is not None  # checked in __init__
            volume = self.data.volumes[case]
            values = self.objective.values(
                [volume.reference],
                [volume.label_map(labels)],
                list(self.data.regions),
                [volume.spacing],
            )
            row = self.objective.case_values(values)[0]
            self._cache[key] = np.where(np.isfinite(row), row, np.nan)
        return self._cache[key]

    def goodness(
        self, setting: RegionSetting, cases: Sequence[int] | None = None
    ) -> NDArray[np.float64]:
        """``(cases, R)`` per-case values oriented so that higher is better (NaN: undefined)."""
        picked = range(self.data.num_cases) if cases is None else cases
        rows = [self._case(setting.weights, setting.thresholds, c) for c in picked]
        out = np.array(rows, dtype=np.float64)
        return out.reshape(len(picked), len(self.data.regions))

    def means(self, goodness: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(R,)`` mean metric values (in the metric's own direction) of per-case goodness."""
        sign = 1.0 if self.objective.higher_is_better else -1.0
        means: NDArray[np.float64] = sign * nan_mean(goodness, axis=0) + 0.0  # no -0.0
        return means

    def choose(
        self,
        setting: RegionSetting,
        channel: int,
        weights: NDArray[np.float64],
        dice_best: float,
        cases: Sequence[int],
    ) -> tuple[RegionSetting, float]:
        """``setting`` with ``channel``'s weights and the metric's best threshold on ``cases``.

        Returns:
            The setting and the region's mean metric value on ``cases`` with it.
        """
        best: tuple[tuple[int, float], RegionSetting] | None = None
        for threshold in metric_thresholds(dice_best):
            candidate = setting.with_channel(channel, weights, threshold)
            column = self.goodness(candidate, cases)[:, channel]
            undefined = 0 if self.paired else int(np.isnan(column).sum())
            rank = (-undefined, nan_mean(column, empty=-math.inf))
            if best is None or rank > best[0]:
                best = (rank, candidate)
        assert best is not None  # metric_thresholds is never empty
        sign = 1.0 if self.objective.higher_is_better else -1.0
        return best[1], sign * best[0][1] + 0.0

    def difference(self, new: NDArray[np.float64], old: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-case ``new - old`` goodness, paired for Dice-like metrics."""
        return differences(new, old, paired=self.paired)

    def judge(
        self, channel: int, new: NDArray[np.float64], old: NDArray[np.float64]
    ) -> dict[str, Any]:
        """The held-out verdict on ``channel``'s step (``(cases, R)`` goodness, new and old)."""
        verdict = judge_label_step(channel, self.difference(new, old))
        more = int(np.isnan(new[:, channel]).sum()) - int(np.isnan(old[:, channel]).sum())
        if not self.paired and more > 0:
            verdict = verdict | {"passes": False, "more_undefined": more}
        return verdict
