"""The compact form of cross-validation data that the weight search and the rule choice score.

The fusion rule is that of :mod:`nnunet_ext.ensemble`: for class ``c`` the fused probability is
``sum_m w[m, c] p_m[c] / sum_m w[m, c]``, then ``argmax``. With the weights of each class
normalised, the fused value lies between ``min_m p_m[c]`` and ``max_m p_m[c]``. So a voxel whose
best class ``k`` has ``min_m p_m[k]`` above ``max_m p_m[c]`` of every other class gets label ``k``
under *every* weight choice: it is counted once into a fixed confusion matrix and never stored.
Only the remaining, "contested" voxels are kept (float16, all models and classes), which is what
makes the search fast: in a typical CV set most voxels are settled. :func:`compact_case` settles
with a margin that also covers decision scales up to :data:`MAX_RULE_SCALE` (the rules of
:mod:`nnunet_ext.tune.rules`); :meth:`CompactCVData.settle` narrows that to weights only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_RULE_SCALE",
    "SETTLED_MARGIN",
    "CompactCVData",
    "compact_case",
    "decision_order",
    "merge_cases",
]

#: A voxel is settled when its best class beats every other by more than this.
SETTLED_MARGIN = 1e-4


#: ... and by this factor: the largest decision scale a rule may give a label
#: (:mod:`nnunet_ext.tune.rules`), so no scale rule can change a settled voxel either.
MAX_RULE_SCALE = 3.0


@dataclass(frozen=True)
class CompactCVData:
    """Everything the weight search needs, for all cases.

    Attributes:
        fixed: ``(cases, K, K)`` int64 confusion matrices (reference value x predicted label)
            of the voxels whose label no weight choice can change.
        probabilities: ``(M, C, N)`` float16 probabilities of the ``N`` contested voxels.
        reference: ``(N,)`` reference label of each contested voxel.
        case_index: ``(N,)`` case of each contested voxel.
        num_values: ``K``: reference values and labels are ``< K`` (``K >= C``).
        training_folds: ``(cases,)`` the nnU-Net training fold whose model predicted each
            case (its ``val`` fold in ``splits_final.json``), or ``None`` when not known.
    """

    fixed: NDArray[np.int64]
    probabilities: NDArray[np.float16]
    reference: NDArray[np.integer[Any]]
    case_index: NDArray[np.integer[Any]]
    num_values: int
    training_folds: NDArray[np.int64] | None = None

    @property
    def num_cases(self) -> int:
        """Number of cases."""
        return int(self.fixed.shape[0])

    @property
    def num_models(self) -> int:
        """Number of models ``M``."""
        return int(self.probabilities.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.probabilities.shape[1])

    def settle(self, margin: float = SETTLED_MARGIN) -> CompactCVData:
        """Return the data for weights only: voxels no weights can change are counted.

        :func:`compact_case` keeps every voxel a decision scale up to :data:`MAX_RULE_SCALE`
        could change; the weight search needs only those whose label some weights can
        change. Decided on the stored (float16) values, with which every score is computed,
        so every weight matrix scores exactly the same on the result as on ``self``.

        Examples:
            >>> p = np.array([[[0.9, 0.4], [0.1, 0.6]],   # member 0: 2 classes x 2 voxels
            ...               [[0.8, 0.6], [0.2, 0.4]]], dtype=np.float16)
            >>> data = CompactCVData(np.zeros((1, 2, 2), np.int64), p, np.array([0, 1]),
            ...                      np.array([0, 0]), 2)
            >>> settled = data.settle()
            >>> settled.fixed.tolist(), settled.probabilities.shape
            ([[[1, 0], [0, 0]]], (2, 2, 1))
        """
        p = self.probabilities
        if p.shape[2] == 0:
            return self
        low = p.min(axis=0).astype(np.float32)
        top = p.max(axis=0).astype(np.float32)
        best = low.argmax(axis=0)
        best_low = np.take_along_axis(low, best[None], axis=0)[0]
        np.put_along_axis(top, best[None], -np.inf, axis=0)
        settled = best_low > top.max(axis=0) + margin
        k = self.num_values
        keys = (self.case_index[settled].astype(np.int64) * k + self.reference[settled]) * k
        counts = np.bincount(keys + best[settled], minlength=self.num_cases * k * k)
        keep = ~settled
        return CompactCVData(
            fixed=self.fixed + counts.reshape(self.num_cases, k, k),
            probabilities=p[:, :, keep],
            reference=self.reference[keep],
            case_index=self.case_index[keep],
            num_values=k,
            training_folds=self.training_folds,
        )

    def subset(self, cases: Sequence[int]) -> CompactCVData:
        """Return the data of some cases only (renumbered in the given order)."""
        chosen = np.asarray(cases, dtype=np.int64)
        remap = np.full(self.num_cases, -1, dtype=np.int64)
        remap[chosen] = np.arange(chosen.size)
        keep = remap[self.case_index] >= 0
        return CompactCVData(
            fixed=self.fixed[chosen],
            probabilities=self.probabilities[:, :, keep],
            reference=self.reference[keep],
            case_index=remap[self.case_index[keep]].astype(np.int32),
            num_values=self.num_values,
            training_folds=None if self.training_folds is None else self.training_folds[chosen],
        )


def compact_case(
    probabilities: Sequence[NDArray[Any]],
    reference: NDArray[np.integer[Any]],
    *,
    num_values: int | None = None,
    ignore_label: int | None = None,
    margin: float = SETTLED_MARGIN,
    max_scale: float = MAX_RULE_SCALE,
) -> tuple[NDArray[np.int64], NDArray[np.float16], NDArray[np.uint8]]:
    """Split one case into settled voxels (counted) and contested voxels (kept).

    Args:
        probabilities: One ``(C, ...)`` softmax array per model, same shape. Not modified.
        reference: Reference labels of shape ``(...)``; values ``< num_values``.
        num_values: ``K`` of the confusion matrix (default ``C``, or more if the reference has
            larger values, such as an ignore label).
        ignore_label: Reference value whose voxels are dropped (nnU-Net's ignore label).
        margin: A voxel is settled when the lowest probability of its best class exceeds
            ``max_scale`` times the highest of every other class by more than ``margin``.
        max_scale: The largest per-label decision scale to be scored (1: weights only).
            At a settled voxel every member's argmax is the best class, so no weights, no
            ``from`` rule and no decision scale up to ``max_scale`` can change its label.

    Returns:
        ``(fixed, contested, reference)``: the ``(K, K)`` confusion matrix of settled voxels,
        the ``(M, C, n)`` float16 probabilities and the ``(n,)`` uint8 references of the others.

    Raises:
        ValueError: For mismatched shapes or reference values ``>= K``.

    Examples:
        >>> a = np.array([[0.9, 0.4], [0.1, 0.6]], dtype=np.float32)  # two voxels, C = 2
        >>> b = np.array([[0.8, 0.6], [0.2, 0.4]], dtype=np.float32)
        >>> fixed, contested, ref = compact_case([a, b], np.array([0, 1]))
        >>> fixed.tolist(), contested.shape, ref.tolist()
        ([[1, 0], [0, 0]], (2, 2, 1), [1])
    """
    if not probabilities:
        raise ValueError("probabilities must hold one array per model; got none.")
    shape = probabilities[0].shape
    for index, member in enumerate(probabilities):
        if member.shape != shape:
            raise ValueError(
                f"probabilities[{index}] must have shape {shape} like probabilities[0]; "
                f"got {member.shape}."
            )
    num_classes = shape[0]
    if reference.shape != shape[1:]:
        raise ValueError(
            f"reference must have the spatial shape of the probabilities {shape[1:]}; "
            f"got {reference.shape}."
        )
    ref = np.asarray(reference).reshape(-1)
    high = int(ref.max()) if ref.size else 0
    k = max(num_classes, high + 1) if num_values is None else int(num_values)
    if high >= k or num_classes > k:
        raise ValueError(f"reference values must be < {k}; found {high}.")
    flat = [np.asarray(p).reshape(num_classes, -1) for p in probabilities]
    low = flat[0].astype(np.float32, copy=True)
    top = low.copy()
    for member in flat[1:]:
        np.minimum(low, member, out=low)
        np.maximum(top, member, out=top)
    best = low.argmax(axis=0)
    best_low = np.take_along_axis(low, best[None], axis=0)[0]
    np.put_along_axis(top, best[None], -np.inf, axis=0)
    settled = best_low > np.float32(max_scale) * top.max(axis=0) + margin
    if ignore_label is not None:
        use = ref != ignore_label
        settled &= use
    else:
        use = np.ones(ref.shape, dtype=bool)
    keys = ref[settled].astype(np.int64) * k + best[settled]
    fixed = np.bincount(keys, minlength=k * k).reshape(k, k).astype(np.int64)
    contested_mask = use & ~settled
    contested = np.stack([member[:, contested_mask] for member in flat]).astype(np.float16)
    return fixed, contested, ref[contested_mask].astype(np.uint8)


def merge_cases(
    cases: Sequence[tuple[NDArray[np.int64], NDArray[np.float16], NDArray[np.uint8]]],
) -> CompactCVData:
    """Stack the :func:`compact_case` results of several cases (same ``K``, ``M``, ``C``).

    Raises:
        ValueError: For no cases or cases with different ``K``, ``M`` or ``C``.
    """
    if not cases:
        raise ValueError("cases must hold at least one case; got none.")
    k = cases[0][0].shape[0]
    m, c = cases[0][1].shape[:2]
    for index, (fixed, contested, _) in enumerate(cases):
        if fixed.shape != (k, k) or contested.shape[:2] != (m, c):
            raise ValueError(
                f"case {index} must have K={k}, M={m}, C={c} like case 0; got K={fixed.shape[0]}, "
                f"M, C={contested.shape[:2]}."
            )
    return CompactCVData(
        fixed=np.stack([f for f, _, _ in cases]),
        probabilities=np.concatenate([p for _, p, _ in cases], axis=2),
        reference=np.concatenate([r for _, _, r in cases]),
        case_index=np.concatenate(
            [np.full(r.size, i, dtype=np.int32) for i, (_, _, r) in enumerate(cases)]
        ),
        num_values=k,
    )


def decision_order(data: CompactCVData, label_ids: Sequence[int]) -> list[int]:
    """Labels by reference volume, smallest first (ties: smaller class index first).

    Examples:
        >>> p = np.full((2, 3, 4), 1 / 3, dtype=np.float16)
        >>> data = CompactCVData(np.zeros((1, 3, 3), np.int64), p, np.array([1, 2, 2, 0]),
        ...                      np.zeros(4, np.int32), 3)
        >>> decision_order(data, [1, 2])
        [1, 2]
    """
    counts = data.fixed.sum(axis=(0, 2)) + np.bincount(data.reference, minlength=data.num_values)
    return sorted((int(v) for v in label_ids), key=lambda label: (int(counts[label]), label))
