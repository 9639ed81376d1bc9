"""Reference implementations of the boundary metrics (test dependencies: MONAI, MedPy).

MONAI computes in float32 (its distances and results are float32 tensors), so a value of
``v`` mm can only be matched to within float32 rounding: ``1e-6 + 2.4e-7 * |v|`` (two float32
ulps, relative). MedPy computes in float64: matched within 1e-6 mm.
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


def float32_close(ours: float, theirs: float) -> bool:
    """Equal within 1e-6 mm or MONAI's float32 rounding; NaN equals NaN."""
    if math.isnan(ours) or math.isnan(theirs):
        return math.isnan(ours) and math.isnan(theirs)
    return abs(ours - theirs) <= 1e-6 + 2.4e-7 * abs(theirs)
