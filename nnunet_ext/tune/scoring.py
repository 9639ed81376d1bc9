"""Per-label Dice of weight matrices on compact CV data (:mod:`nnunet_ext.tune.compact`).

:class:`_Evaluator` keeps the fused values of the current weights; only the column of one class
changes per step of the search, so only that row is recomputed, and the candidates of a column
are scored on the voxels whose label the column can change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.io.labels import MAX_UINT8_LABEL
from nnunet_ext.tune.compact import CompactCVData

__all__ = ["baseline_weights", "label_dice", "mean_over_cases", "score_weights"]


def label_dice(
    confusion: NDArray[np.integer[Any]], label_ids: Sequence[int]
) -> NDArray[np.float64]:
    """Per-case Dice of each label from ``(cases, K, K)`` confusion matrices (NaN: both empty).

    Examples:
        >>> m = np.array([[[5, 1], [1, 3]], [[4, 0], [0, 0]]])
        >>> label_dice(m, [1])
        array([[0.75],
               [ nan]])
    """
    ids = np.asarray(label_ids, dtype=np.int64)
    tp = confusion[:, ids, ids].astype(np.float64)
    n_ref = confusion.sum(axis=2)[:, ids].astype(np.float64)
    n_pred = confusion.sum(axis=1)[:, ids].astype(np.float64)
    denominator = n_ref + n_pred
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), np.nan)


def mean_over_cases(dice: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean over cases (axis 0) of per-case Dice, NaN cases left out (NaN: none valid).

    Examples:
        >>> mean_over_cases(np.array([[0.5, np.nan], [1.0, np.nan]]))
        array([0.75,  nan])
    """
    return nan_mean(dice, axis=0)


def _weighted(members: Sequence[NDArray[Any]], weights: NDArray[np.float64]) -> NDArray[np.float32]:
    """``sum_m weights[m] * members[m]`` in float32, always in the same order (bit-identical)."""
    out: NDArray[np.float32] = np.float32(weights[0]) * members[0].astype(np.float32, copy=False)
    for m in range(1, len(members)):
        out += np.float32(weights[m]) * members[m]
    return out


class _Evaluator:
    """Scores weight matrices on compact data; keeps the fused values of the current weights.

    Only the column of one class changes per step, so only that row of the fused values is
    recomputed, and the candidates of a column are scored on the voxels whose label the column
    can change (the others are counted once).
    """

    def __init__(
        self,
        data: CompactCVData,
        label_ids: Sequence[int],
        weights: NDArray[np.float64] | None = None,
    ) -> None:
        self.data = data
        self.label_ids = list(label_ids)
        self.k = data.num_values
        self.key_base = (data.case_index.astype(np.int64) * self.k + data.reference) * self.k
        self.size = data.num_cases * self.k * self.k
        self.weights = np.full((data.num_models, data.num_classes), 1.0 / data.num_models)
        self.fused = np.empty(data.probabilities.shape[1:], dtype=np.float32)
        self.set_weights(self.weights if weights is None else weights)

    def column_values(self, column: int, weights: NDArray[np.float64]) -> NDArray[np.float32]:
        members = [self.data.probabilities[m, column] for m in range(self.data.num_models)]
        return _weighted(members, weights)

    def set_weights(self, weights: NDArray[np.float64]) -> None:
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights, axis=0)
        for column in range(self.data.num_classes):
            self.fused[column] = self.column_values(column, self.weights[:, column])

    def set_column(self, column: int, weights: NDArray[np.float64]) -> None:
        self.weights = self.weights.copy()
        self.weights[:, column] = weights / weights.sum()
        self.fused[column] = self.column_values(column, self.weights[:, column])

    def confusion(self, labels: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
        counts = np.bincount(self.key_base + labels, minlength=self.size)
        return self.data.fixed + counts.reshape(self.data.num_cases, self.k, self.k)

    def per_case(self) -> NDArray[np.float64]:
        """``(cases, L)`` Dice of the current weights (full argmax: the reference result)."""
        labels = self.fused.argmax(axis=0) if self.fused.size else np.zeros(0, np.int64)
        return label_dice(self.confusion(labels), self.label_ids)

    def column_candidates(
        self,
        column: int,
        candidates: Sequence[NDArray[np.float64]],
        *,
        reach: float | None = None,
    ) -> list[NDArray[np.float64]]:
        """Mean Dice per label for each candidate weight vector (summing to 1) of ``column``.

        ``reach``: every candidate changes the fused value of ``column`` by at most this much
        (moves of a small weight between two models); only voxels that close to a change of
        label are scored. ``None``: any weights (the fused value lies between the lowest and
        the highest member probability).
        """
        data, k = self.data, self.k
        others = [o for o in range(data.num_classes) if o != column]
        best = self.fused[others[0]].copy()
        # uint8 class indices: modular arithmetic keeps the selections exact and cheap
        small = np.uint8 if data.num_classes - 1 <= MAX_UINT8_LABEL else np.int64
        arg = np.full(best.shape, others[0], dtype=small)
        for o in others[1:]:  # argmax over the other classes; the first maximum wins ties
            greater = (self.fused[o] > best).view(np.uint8)
            arg += greater * small(o) - greater * arg
            np.maximum(best, self.fused[o], out=best)
        # class `column` wins ties against later classes only (argmax keeps the first maximum)
        wins_ties = column < arg
        if reach is None:
            low = data.probabilities[0, column].astype(np.float32)
            high = low.copy()
            for m in range(1, data.num_models):
                np.minimum(low, data.probabilities[m, column], out=low)
                np.maximum(high, data.probabilities[m, column], out=high)
            always = (low > best) | ((low == best) & wins_ties)
            never = (high < best) | ((high == best) & ~wins_ties)
            del low, high
        else:
            margin = np.float32(reach + 1e-5)  # float32 rounding of the weighted sums
            always = self.fused[column] - margin > best
            never = self.fused[column] + margin < best
        active = np.flatnonzero(~(always | never))
        # every active voxel is counted as losing; the winners of a candidate are moved
        chosen = always.view(np.uint8)
        labels = self.key_base + (arg + chosen * (small(column) - arg))
        del always, never, chosen
        base = np.bincount(labels, minlength=self.size)
        del labels
        lose_keys = self.key_base[active] + arg[active]
        threshold = best[active]
        threshold = np.where(
            wins_ties[active], np.nextafter(threshold, np.float32(-np.inf)), threshold
        )
        del best, arg, wins_ties
        values = [
            data.probabilities[m, column][active].astype(np.float32) for m in range(data.num_models)
        ]
        cells = np.arange(self.size)
        win_cells = cells - cells % k + column
        results = []
        for weights in candidates:
            won = _weighted(values, weights) > threshold
            moved = np.bincount(lose_keys, weights=won, minlength=self.size)
            counts = base + (np.bincount(win_cells, weights=moved, minlength=self.size) - moved)
            confusion = data.fixed + counts.astype(np.int64).reshape(data.num_cases, k, k)
            results.append(mean_over_cases(label_dice(confusion, self.label_ids)))
        return results


def score_weights(
    data: CompactCVData, weights: NDArray[np.floating[Any]], label_ids: Sequence[int]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-label mean Dice over cases (and per-case Dice) of one weight matrix.

    Args:
        data: Compact CV data.
        weights: ``(M, C)`` non-negative weights, every column with a positive sum.
        label_ids: Labels (class indices) to score.

    Returns:
        ``(mean_dice, per_case_dice)`` of shapes ``(L,)`` and ``(cases, L)``.
    """
    evaluator = _Evaluator(data, label_ids, np.asarray(weights, dtype=np.float64))
    per_case = evaluator.per_case()
    return mean_over_cases(per_case), per_case


def baseline_weights(num_models: int, num_classes: int) -> dict[str, NDArray[np.float64]]:
    """Equal weights and each single model, as ``(M, C)`` matrices.

    Examples:
        >>> baseline_weights(2, 2)["model 1"]
        array([[0., 0.],
               [1., 1.]])
    """
    out = {"equal": np.full((num_models, num_classes), 1.0 / num_models)}
    for m in range(num_models):
        single = np.zeros((num_models, num_classes))
        single[m] = 1.0
        out[f"model {m}"] = single
    return out


def _baseline_per_case(
    data: CompactCVData, label_ids: Sequence[int]
) -> dict[str, NDArray[np.float64]]:
    matrices = baseline_weights(data.num_models, data.num_classes)
    evaluator = _Evaluator(data, label_ids, matrices["equal"])
    out = {}
    for name, weights in matrices.items():
        if name != "equal":
            evaluator.set_weights(weights)
        out[name] = evaluator.per_case()
    return out
