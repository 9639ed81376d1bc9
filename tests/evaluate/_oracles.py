"""Reference implementations of the boundary metrics (test dependencies: MONAI, MedPy).

MONAI computes in float32 (its distances and results are float32 tensors), so a value of
``v`` mm can only be matched to within float32 rounding: ``1e-6 + 2.4e-7 * |v|`` (two float32
ulps, relative). Its HD95 is ``torch.quantile`` on float32 distances, which also computes the
interpolation position ``0.95 * (n - 1)`` in float32: that position is off by up to one float32
ulp, which moves the result by up to that ulp times the gap between the two interpolated
distances (``quantile_position_error``). MedPy computes in float64: matched within 1e-6 mm.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    # MONAI warns on empty masks and about a deprecated argument it passes to itself
    warnings.simplefilter("ignore")
    return ctx


def monai_values(
    reference: np.ndarray, prediction: np.ndarray, spacing, nsd_tolerance: float
) -> dict[str, float]:
    """MONAI 1.6: compute_hausdorff_distance (max and percentile=95), compute_surface_dice,
    compute_average_surface_distance(symmetric=True) of one binary mask pair."""
    ctx = _quiet()
    try:
        import torch
        from monai.metrics import (
            compute_average_surface_distance,
            compute_hausdorff_distance,
            compute_surface_dice,
        )

        y_pred = torch.from_numpy(prediction[None, None].astype(np.float32))
        y = torch.from_numpy(reference[None, None].astype(np.float32))
        common = {"include_background": True, "spacing": tuple(float(s) for s in spacing)}
        return {
            "hd": float(compute_hausdorff_distance(y_pred, y, **common).item()),
            "hd95": float(compute_hausdorff_distance(y_pred, y, percentile=95, **common).item()),
            "nsd": float(compute_surface_dice(y_pred, y, [nsd_tolerance], **common).item()),
            "assd": float(
                compute_average_surface_distance(y_pred, y, symmetric=True, **common).item()
            ),
        }
    finally:
        ctx.__exit__(None, None, None)


def medpy_values(reference: np.ndarray, prediction: np.ndarray, spacing) -> dict[str, float]:
    """MedPy 0.5: hd, hd95 (pooled), assd of one binary mask pair (raises on an empty mask)."""
    from medpy.metric import binary

    return {
        "hd": float(binary.hd(prediction, reference, voxelspacing=spacing)),
        "hd95_pooled": float(binary.hd95(prediction, reference, voxelspacing=spacing)),
        "assd": float(binary.assd(prediction, reference, voxelspacing=spacing)),
    }


def float32_close(ours: float, theirs: float, position_error: float = 0.0) -> bool:
    """Equal within 1e-6 mm or MONAI's float32 rounding (plus ``position_error`` for a
    float32 quantile, see ``quantile_position_error``); NaN equals NaN."""
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    return abs(ours - theirs) <= 1e-6 + 2.4e-7 * abs(theirs) + position_error


def quantile_position_error(*directed: np.ndarray, q: float = 0.95) -> float:
    """How far a float32 ``torch.quantile`` can move from the float64 one, per directed array.

    The position ``q * (n - 1)`` is rounded to float32 (at most one ulp off); linear
    interpolation turns that into at most one ulp times the gap between the sorted distances
    at ``floor(position)`` and the next one. The largest over the arrays is returned.

    >>> quantile_position_error(np.array([1.0] * 19 + [7.0]))  # position 18.05, gap 6 mm
    1.1444091796875e-05
    >>> quantile_position_error(np.array([1.0] * 18 + [7.0, 7.0]))  # gap 0
    0.0
    """
    bound = 0.0
    for distances in directed:
        ordered = np.sort(np.asarray(distances, dtype=np.float64))
        if ordered.size < 2:
            continue
        position = q * (ordered.size - 1)
        k = math.floor(position)
        gap = ordered[min(k + 1, ordered.size - 1)] - ordered[k]
        bound = max(bound, float(np.spacing(np.float32(position))) * float(gap))
    return bound
