"""What :func:`~nnunet_ext.postprocess.determine_plan` decides on: one metric or a score file.

The values come from :mod:`nnunet_ext.evaluate` (Dice NaN when reference and prediction are
empty; distances in mm from each reference's spacing; empty cases per a named convention), so a
plan is chosen by the same numbers ``nnunet-ext evaluate`` reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.evaluate.conventions import get_convention
from nnunet_ext.evaluate.measures import HIGHER_IS_BETTER, apply_convention, boundary_values
from nnunet_ext.evaluate.metrics import (
    FN,
    FP,
    TP,
    LabelOrRegion,
    confusion_counts,
    counts_from_matrix,
    dice_from_counts,
    iou_from_counts,
)
from nnunet_ext.evaluate.registry import METRIC_REGISTRY
from nnunet_ext.evaluate.score import load_score

__all__ = ["Objective", "finite_mean"]


def finite_mean(values: NDArray[np.float64]) -> float:
    """Mean of the finite values; NaN when there is none.

    The package's one NaN-mean (:func:`nnunet_ext._stats.nan_mean`), leaving out infinite
    values too, with postprocess's arithmetic (``compact=True``).

    Examples:
        >>> finite_mean(np.array([1.0, np.nan, 2.0])), finite_mean(np.array([np.inf]))
        (1.5, nan)
    """
    return nan_mean(values, compact=True, finite=True)


class Objective:
    """What ``determine_plan`` decides on: one metric (higher or lower better) or a score file.

    ``values`` are metric key to ``(cases, labels)`` arrays; Dice is always among them.
    """

    def __init__(
        self,
        metric: str,
        *,
        nsd_tolerance: float,
        convention: str,
        ignore_label: int | None,
    ) -> None:
        get_convention(convention)
        self.name = metric
        self.score = None
        if metric.startswith("score:"):
            self.score = load_score(metric[len("score:") :])
            needed = set(self.score.metrics)
        elif metric in HIGHER_IS_BETTER or metric in METRIC_REGISTRY:
            needed = {metric}
        else:
            raise ValueError(
                f"metric must be one of {', '.join([*HIGHER_IS_BETTER, *METRIC_REGISTRY])} or "
                f"score:SCORE.json; got {metric!r}."
            )
        self.higher_is_better = (
            True
            if self.score
            else METRIC_REGISTRY[metric].higher_is_better
            if metric in METRIC_REGISTRY
            else HIGHER_IS_BETTER[metric]
        )
        # Dice alone keeps today's cost; a registered metric reports Dice beside it; any other
        # choice reports the boundary metrics too.
        shown = (
            ["dice"]
            if metric == "dice" or metric in METRIC_REGISTRY
            else ["dice", "hd95", "assd", "nsd"]
        )
        self.keys = [*shown, *sorted(needed - set(shown))]
        self.nsd_tolerance = nsd_tolerance
        self.convention = convention
        self.ignore_label = ignore_label

    def values(
        self,
        truth: Sequence[NDArray[Any]],
        predictions: Sequence[NDArray[Any]],
        label_ids: Sequence[LabelOrRegion],
        spacings: Sequence[tuple[float, ...]],
    ) -> dict[str, NDArray[np.float64]]:
        """Metric key to ``(cases, labels)`` values of ``predictions`` against ``truth``.

        ``label_ids`` are labels or regions (tuples of label values, scored as their union).
        """
        rows: dict[str, list[NDArray[np.float64]]] = {k: [] for k in self.keys}
        for reference, prediction, spacing in zip(truth, predictions, spacings, strict=True):
            counts = confusion_counts(
                reference, prediction, label_ids=list(label_ids), ignore_label=self.ignore_label
            )
            case: dict[str, NDArray[np.float64]] = {
                "dice": np.asarray(
                    dice_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
                ),
                "iou": np.asarray(
                    iou_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
                ),
            }
            case.update(
                boundary_values(
                    reference,
                    prediction,
                    list(label_ids),
                    spacing,
                    self.keys,
                    nsd_tolerance=self.nsd_tolerance,
                    ignore_label=self.ignore_label,
                )
            )
            case = apply_convention(
                case, counts, self.convention, shape=reference.shape, spacing=spacing
            )
            for key in self.keys:  # registered metrics: their own empty-case values
                if key in METRIC_REGISTRY:
                    case[key] = METRIC_REGISTRY[key].values(
                        reference, prediction, list(label_ids), spacing
                    )
            for key in self.keys:
                rows[key].append(case[key])
        return {k: np.stack(v) if v else np.zeros((0, len(label_ids))) for k, v in rows.items()}

    @property
    def nan_is_perfect(self) -> bool:
        """Whether NaN means a perfect case: the label absent from both maps.

        So for Dice, IoU, NSD and the lesion-wise ``lesion_dice`` and ``lesion_f1`` (NaN without
        any lesion). Held-out differences then pair such a case as tune does (1 beside a side
        that predicts the label); for distances NaN is a missing value.
        """
        return self.score is None and self.name in (
            "dice",
            "iou",
            "nsd",
            "lesion_dice",
            "lesion_f1",
        )

    @property
    def count_based(self) -> bool:
        """Whether every value needed comes from voxel counts (Dice, IoU).

        Then :meth:`values_from_matrices` gives the same values as :meth:`values`, from
        confusion matrices alone.
        """
        return set(self.keys) <= {"dice", "iou"}

    def values_from_matrices(
        self,
        matrices: Sequence[NDArray[np.int64]],
        label_ids: Sequence[int],
        shapes: Sequence[tuple[int, ...]],
        spacings: Sequence[tuple[float, ...]],
    ) -> dict[str, NDArray[np.float64]]:
        """:meth:`values` of a count-based objective from each case's confusion matrix.

        ``matrices[i][r, p]`` counts the voxels of case ``i`` with reference ``r`` and prediction
        ``p`` (:func:`nnunet_ext.evaluate.metrics.confusion_matrix`, ignore label left out).
        """
        rows: dict[str, list[NDArray[np.float64]]] = {k: [] for k in self.keys}
        for matrix, shape, spacing in zip(matrices, shapes, spacings, strict=True):
            counts = counts_from_matrix(matrix, list(label_ids))
            case: dict[str, NDArray[np.float64]] = {
                "dice": np.asarray(
                    dice_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
                ),
                "iou": np.asarray(
                    iou_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
                ),
            }
            case = apply_convention(case, counts, self.convention, shape=shape, spacing=spacing)
            for key in self.keys:
                rows[key].append(case[key])
        return {k: np.stack(v) if v else np.zeros((0, len(label_ids))) for k, v in rows.items()}

    def case_values(self, values: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """``(cases, labels)`` per-case objective, oriented so that higher is better.

        For a metric, its values (negated where lower is better); for a score file, each case's
        weighted sum of its transformed terms (NaN where a term is undefined): its mean over
        the cases is the label's score where every term is defined.
        """
        if self.score is None:
            sign = 1.0 if self.higher_is_better else -1.0
            return sign * np.asarray(values[self.name], dtype=np.float64)
        total: NDArray[np.float64] | None = None
        for term in self.score.terms:
            part = term.weight * term.transform(np.asarray(values[term.metric], np.float64))
            total = part if total is None else total + part
        assert total is not None  # a score has at least one term
        return total

    def label_value(self, values: dict[str, NDArray[np.float64]], j: int) -> float:
        """The objective of label column ``j`` (mean over cases, NaN ones left out)."""
        if self.score is not None:
            return float(self.score.label_scores({k: v[:, [j]] for k, v in values.items()})[0])
        return finite_mean(values[self.name][:, j])

    def undefined(self, values: dict[str, NDArray[np.float64]], j: int) -> int:
        """Cases where a metric the objective needs is undefined, for label column ``j``."""
        keys = self.score.metrics if self.score is not None else (self.name,)
        return int(sum(np.isnan(values[k][:, j]).sum() for k in keys))

    def better(self, new: float, old: float) -> bool:
        """Strictly better in the objective's direction (NaN is never better)."""
        if math.isnan(new):
            return False
        if math.isnan(old):
            return True
        return new > old if self.higher_is_better else new < old

    def total(self, label_values: Sequence[float], label_ids: Sequence[int]) -> float:
        """The objective over all labels: the score, or the mean of the label means."""
        array = np.asarray(label_values, dtype=np.float64)
        if self.score is not None:
            return self.score.combine(array, [str(k) for k in label_ids])
        return finite_mean(array)
