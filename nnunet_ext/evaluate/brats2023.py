"""BraTS 2023-2025 lesion-wise values of one region, as the published scorer computes them.

Source: ``rachitsaluja/BraTS-2023-Metrics``, ``eval.py`` at
0e272e697a193474ed75cef99cf2de110cc52d37 (``get_LesionWiseScores``, ``get_LesionWiseResults``):

1. Reference and prediction components with 26-connectivity. Reference lesions closer than the
   dilation are one lesion: the reference is dilated (``dilation`` iterations of the
   18-neighbourhood structure) and every reference voxel takes the label of the dilated
   component it lies in.
2. For each reference lesion, the predicted components that touch the lesion dilated the same
   way are its match (several may; a predicted component may serve several lesions). Its Dice
   and HD95 (DeepMind's area-weighted ``compute_robust_hausdorff(95)`` on the corner grid)
   are computed against the union of those components; a lesion without match has Dice 0 and
   HD95 374.
3. Lesions of at most ``volume_threshold`` mm^3 are left out of the scores and counts.
   False positives are predicted components that touch no dilated reference lesion.
   ``lesionwise_dice = sum(Dice) / (lesions + FP)`` (1 when there is neither),
   ``lesionwise_hd95 = (sum(HD95) + 374 FP) / (lesions + FP)`` (0 when there is neither).
4. Legacy (whole-region) Dice and HD95: 1 and 0 when both are empty, Dice 0 and HD95 374 when
   one is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate.surfels import surfel_distances

__all__ = ["HD95_PENALTY_2023", "brats2023_values"]

#: The 2023-2025 penalty for a missed lesion or false positive, mm.
HD95_PENALTY_2023 = 374.0


def _components26(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int64], int]:
    import cc3d

    labels, count = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=26, return_N=True
    )
    return np.asarray(labels, dtype=np.int64), int(count)


def _dilate(mask: NDArray[np.bool_], iterations: int) -> NDArray[np.bool_]:
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(mask.ndim, 2)
    out: NDArray[np.bool_] = ndimage.binary_dilation(
        mask, structure=structure, iterations=iterations
    )
    return out


def _hd95(
    reference: NDArray[np.bool_], prediction: NDArray[np.bool_], spacing: Sequence[float]
) -> float:
    value = surfel_distances(reference, prediction, spacing).robust_hausdorff(95.0)
    return HD95_PENALTY_2023 if math.isinf(value) else value


def _dice(reference: NDArray[np.bool_], prediction: NDArray[np.bool_]) -> float:
    total = int(reference.sum()) + int(prediction.sum())
    return 2.0 * int((reference & prediction).sum()) / total if total else math.nan


def brats2023_values(
    reference: NDArray[np.bool_],
    prediction: NDArray[np.bool_],
    spacing: Sequence[float],
    *,
    dilation: int = 3,
    volume_threshold: float = 50.0,
) -> dict[str, float]:
    """Lesion-wise and legacy values of one region (module docstring).

    Args:
        reference: The region's reference mask (3D). Not modified.
        prediction: The region's predicted mask. Not modified.
        spacing: Voxel size per array axis, mm.
        dilation: Dilation iterations (glioma 3, metastases 1).
        volume_threshold: Lesions of at most this volume (mm^3) are left out.

    Returns:
        ``lesionwise_dice``, ``lesionwise_hd95``, ``tp``, ``fp``, ``fn``, ``legacy_dice``,
        ``legacy_hd95``.

    Examples:
        >>> ref = np.zeros((12, 12, 12), dtype=bool); ref[1:5, 1:5, 1:5] = True
        >>> pred = ref.copy(); pred[9:11, 9:11, 9:11] = True
        >>> v = brats2023_values(ref, pred, (1.0, 1.0, 1.0))
        >>> v["lesionwise_dice"], v["lesionwise_hd95"], v["tp"], v["fp"], v["fn"]
        (0.5, 187.0, 1, 1, 0)
    """
    ref, pred = np.asarray(reference, dtype=bool), np.asarray(prediction, dtype=bool)
    voxel = float(np.prod([float(s) for s in spacing]))
    if not ref.any() and not pred.any():
        legacy_dice, legacy_hd95 = 1.0, 0.0
    else:
        legacy_dice = _dice(ref, pred)
        legacy_hd95 = _hd95(ref, pred, spacing)
    pred_labels, _ = _components26(pred)
    dilated_labels, num_lesions = _components26(_dilate(ref, dilation))
    lesions = np.where(ref, dilated_labels, 0)
    touched: set[int] = set()
    kept_dice, kept_hd95 = [], []
    tp = fn = 0
    for lesion in range(1, num_lesions + 1):
        gt = lesions == lesion
        hits = np.unique(pred_labels[_dilate(gt, dilation)])
        hits = hits[hits != 0]
        touched.update(int(h) for h in hits)
        matched = np.isin(pred_labels, hits)
        if float(gt.sum()) * voxel <= volume_threshold:
            continue
        kept_dice.append(_dice(gt, matched))
        kept_hd95.append(_hd95(gt, matched, spacing))
        tp, fn = tp + int(hits.size > 0), fn + int(hits.size == 0)
    fp = len(set(np.unique(pred_labels).tolist()) - touched - {0})
    count = len(kept_dice) + fp
    return {
        "lesionwise_dice": sum(kept_dice) / count if count else 1.0,
        "lesionwise_hd95": (sum(kept_hd95) + HD95_PENALTY_2023 * fp) / count if count else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "legacy_dice": legacy_dice,
        "legacy_hd95": legacy_hd95,
    }
