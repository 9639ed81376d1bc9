"""Lesion-wise (instance) metrics: components, one-to-one matching, per-lesion values, counts.

The BraTS 2026 definition (``brats-evaluation`` 0.0.10 on ``panoptica`` 2.1.7, configured by its
bundled ``config_<task>.yaml``), per region of one case:

1. Lesions are the connected components of the region's reference and predicted masks (cc3d,
   26-connectivity in 3D, scipy's 4/6-connectivity below 3D).
2. Matching (``MaxBipartiteMatching`` on Dice, threshold 1e-6): a reference and a predicted
   lesion that overlap may be paired, at cost ``1 - Dice``; every other pair costs ``1 + 1e-6``;
   ``scipy.optimize.linear_sum_assignment`` picks the one-to-one assignment of least total cost,
   and the assigned pairs with cost below 1 (Dice >= 1e-6) are the true positives.
3. Each true positive's Dice, HD95 (the pooled 95th percentile) and NSD (mean of the two directed
   fractions, tolerance = the smallest voxel spacing) on the pair's masks;
   ``TP``, ``FP = predicted - TP``, ``FN = reference - TP``, recognition quality
   ``RQ = TP / (TP + (FP + FN) / 2)`` (the F1), segmentation quality ``SQ`` (mean Dice of the
   true positives) and ``PQ = SQ * RQ``.
4. "Global" Dice, HD95 and NSD of the whole region, computed as panoptica computes them: without
   the voxel spacing (HD95 in voxels, NSD at 0.5 voxel: surface voxels shared by both).

Nothing here reads files; challenge-specific penalties and columns are in
:mod:`nnunet_ext.evaluate.brats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate.surface import distance_metrics, pair_box, surface_distances

__all__ = [
    "Lesion",
    "RegionLesions",
    "bipartite_matches",
    "components",
    "lesion_values",
    "match_lesions",
]

#: panoptica's MaxBipartiteMatching threshold in brats-evaluation's configs.
MATCH_THRESHOLD = 1e-6


@dataclass(frozen=True)
class Lesion:
    """One reference lesion: its size and, when matched, its metrics.

    Attributes:
        voxels: Voxel count.
        volume_mm3: ``voxels`` times the voxel volume.
        matched: Whether a predicted lesion was matched to it.
        dice: Dice with its predicted lesion (NaN when unmatched).
        hd95: Pooled HD95 in mm (NaN when unmatched).
        nsd: NSD (panoptica's form; NaN when unmatched).
    """

    voxels: int
    volume_mm3: float
    matched: bool
    dice: float = math.nan
    hd95: float = math.nan
    nsd: float = math.nan


@dataclass(frozen=True)
class RegionLesions:
    """Lesion-wise result of one region of one case.

    Attributes:
        num_reference: Reference lesions.
        num_predicted: Predicted lesions.
        lesions: The reference lesions, matched ones first (in reference label order).
        global_values: ``dice``, ``hd95``, ``nsd`` of the whole region (see the module
            docstring, step 4); NaN where a mask is empty.
        predicted_volumes_mm3: Volume of every unmatched predicted lesion.
    """

    num_reference: int
    num_predicted: int
    lesions: list[Lesion]
    global_values: dict[str, float] = field(default_factory=dict)
    predicted_volumes_mm3: list[float] = field(default_factory=list)

    @property
    def tp(self) -> int:
        """Matched pairs."""
        return sum(lesion.matched for lesion in self.lesions)

    @property
    def fp(self) -> int:
        """Predicted lesions without a match."""
        return self.num_predicted - self.tp

    @property
    def fn(self) -> int:
        """Reference lesions without a match."""
        return self.num_reference - self.tp

    @property
    def rq(self) -> float:
        """Recognition quality (F1): ``TP / (TP + (FP + FN) / 2)``; NaN without any lesion."""
        if self.tp == 0:
            return 0.0 if self.num_predicted + self.num_reference else math.nan
        return self.tp / (self.tp + 0.5 * self.fp + 0.5 * self.fn)

    def matched_values(self, key: str) -> list[float]:
        """One metric (``dice``, ``hd95``, ``nsd``) of the matched lesions."""
        return [float(getattr(lesion, key)) for lesion in self.lesions if lesion.matched]


def components(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int64], int]:
    """Connected components of a binary mask, as panoptica finds them.

    cc3d with 26-connectivity in 3D (its default); ``scipy.ndimage.label``'s face connectivity
    in 1D and 2D.

    Examples:
        >>> m = np.zeros((1, 3, 4), dtype=bool); m[0, 0, 0] = m[0, 1, 1] = m[0, 0, 3] = True
        >>> components(m)[1]
        2
    """
    if mask.ndim >= 3:
        import cc3d

        labels, count = cc3d.connected_components(
            np.ascontiguousarray(mask, dtype=np.uint8), return_N=True
        )
        return np.asarray(labels, dtype=np.int64), int(count)
    from scipy.ndimage import label

    labels, count = label(mask)
    return np.asarray(labels, dtype=np.int64), int(count)


def bipartite_matches(
    reference: NDArray[np.integer[Any]],
    prediction: NDArray[np.integer[Any]],
    num_reference: int,
    num_predicted: int,
) -> list[tuple[int, int]]:
    """One-to-one matches of labelled lesions by maximum bipartite matching on Dice.

    Args:
        reference: Lesion labels ``1..num_reference`` (0 background).
        prediction: Lesion labels ``1..num_predicted``.
        num_reference: Reference lesions.
        num_predicted: Predicted lesions.

    Returns:
        ``(reference label, predicted label)`` pairs, in reference label order.

    Examples:
        >>> ref = np.array([1, 1, 1, 0, 2, 2]); pred = np.array([1, 1, 0, 0, 1, 2])
        >>> bipartite_matches(ref, pred, 2, 2)
        [(1, 1), (2, 2)]
    """
    from scipy.optimize import linear_sum_assignment

    if num_reference == 0 or num_predicted == 0:
        return []
    both = (reference > 0) & (prediction > 0)
    k = num_predicted + 1
    pairs = np.bincount(
        reference[both].astype(np.int64) * k + prediction[both], minlength=(num_reference + 1) * k
    ).reshape(num_reference + 1, k)
    ref_sizes = np.bincount(reference.ravel(), minlength=num_reference + 1)
    pred_sizes = np.bincount(prediction.ravel(), minlength=k)
    cost = np.full((num_reference, num_predicted), 1.0 + 1e-6)
    r, p = np.nonzero(pairs[1:, 1:])
    dice = 2.0 * pairs[r + 1, p + 1] / (ref_sizes[r + 1] + pred_sizes[p + 1])
    keep = dice >= MATCH_THRESHOLD
    cost[r[keep], p[keep]] = 1.0 - dice[keep]
    rows, cols = linear_sum_assignment(cost)
    return [(int(i) + 1, int(j) + 1) for i, j in zip(rows, cols, strict=True) if cost[i, j] < 1.0]


def lesion_values(
    reference: NDArray[np.bool_], prediction: NDArray[np.bool_], spacing: Sequence[float]
) -> dict[str, float]:
    """Dice, pooled HD95 and panoptica's NSD (tolerance: the smallest spacing) of two masks.

    Examples:
        >>> a = np.zeros((1, 1, 6), dtype=bool); a[0, 0, 1:3] = True
        >>> b = np.zeros((1, 1, 6), dtype=bool); b[0, 0, 1:4] = True
        >>> lesion_values(a, b, (1.0, 1.0, 1.0))
        {'dice': 0.8, 'hd95': 0.7999999999999998, 'nsd': 1.0}
    """
    box = pair_box(reference, prediction)
    if box is None:
        raise ValueError("lesion_values needs two non-empty masks.")
    ref, pred = reference[box], prediction[box]
    tp = int(np.count_nonzero(ref & pred))
    dice = 2.0 * tp / (int(np.count_nonzero(ref)) + int(np.count_nonzero(pred)))
    values = distance_metrics(
        surface_distances(ref, pred, spacing),
        ("hd95_pooled", "nsd"),
        nsd_tolerance=min(float(s) for s in spacing),
        nsd_definition="panoptica",
    )
    return {"dice": dice, "hd95": values["hd95_pooled"], "nsd": values["nsd"]}


def _global_values(reference: NDArray[np.bool_], prediction: NDArray[np.bool_]) -> dict[str, float]:
    """Panoptica's global metrics: no spacing (voxel units), NSD at 0.5 voxel."""
    if not (reference & prediction).any():
        return {"dice": math.nan, "hd95": math.nan, "nsd": math.nan}
    unit = (1.0,) * reference.ndim
    tp = int(np.count_nonzero(reference & prediction))
    dice = 2.0 * tp / (int(np.count_nonzero(reference)) + int(np.count_nonzero(prediction)))
    values = distance_metrics(
        surface_distances(reference, prediction, unit),
        ("hd95_pooled", "nsd"),
        nsd_tolerance=0.5,
        nsd_definition="panoptica",
    )
    return {"dice": dice, "hd95": values["hd95_pooled"], "nsd": values["nsd"]}


def match_lesions(
    reference: NDArray[np.bool_], prediction: NDArray[np.bool_], spacing: Sequence[float]
) -> RegionLesions:
    """Lesion-wise result of one region (BraTS 2026 / panoptica definition, module docstring).

    Args:
        reference: The region's reference mask. Not modified.
        prediction: The region's predicted mask, same shape. Not modified.
        spacing: The spacing the lesion metrics use, one value per array axis (mm).

    Returns:
        Counts, the reference lesions with their metrics, and the global values (NaN where the
        masks do not overlap: the challenge's edge-case values are set by the caller).

    Examples:
        >>> ref = np.zeros((3, 3, 9), dtype=bool); ref[1, 1, 1:3] = ref[1, 1, 6:8] = True
        >>> pred = np.zeros_like(ref); pred[1, 1, 1:4] = True
        >>> result = match_lesions(ref, pred, (1.0, 1.0, 1.0))
        >>> result.tp, result.fp, result.fn, result.lesions[0].dice, result.rq
        (1, 0, 1, 0.8, 0.6666666666666666)
    """
    ref_box = pair_box(reference | prediction, reference | prediction)
    if ref_box is None:
        return RegionLesions(0, 0, [], _global_values(reference, prediction))
    ref, pred = reference[ref_box], prediction[ref_box]
    ref_labels, num_ref = components(ref)
    pred_labels, num_pred = components(pred)
    voxel_volume = float(np.prod([float(s) for s in spacing]))
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=num_ref + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=num_pred + 1)
    matches = bipartite_matches(ref_labels, pred_labels, num_ref, num_pred)
    lesions = []
    for r, p in matches:
        values = lesion_values(ref_labels == r, pred_labels == p, spacing)
        size = int(ref_sizes[r])
        lesions.append(Lesion(size, size * voxel_volume, True, **values))
    matched_ref = {r for r, _ in matches}
    matched_pred = {p for _, p in matches}
    lesions += [
        Lesion(int(ref_sizes[r]), int(ref_sizes[r]) * voxel_volume, False)
        for r in range(1, num_ref + 1)
        if r not in matched_ref
    ]
    unmatched = [
        int(pred_sizes[p]) * voxel_volume for p in range(1, num_pred + 1) if p not in matched_pred
    ]
    return RegionLesions(num_ref, num_pred, lesions, _global_values(ref, pred), unmatched)
