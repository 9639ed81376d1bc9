"""One case scored by a challenge preset: the per-case columns of its official table.

:func:`preset_case_values` computes, from one reference and one predicted label map, every
column the preset's scorer reports for that case (``<metric>_<region>``); :func:`missing_values`
gives the columns of a reference case without prediction. Folder evaluation, means and the
score: :mod:`nnunet_ext.evaluate.challenge_folder`.

Spacing: ``spacing`` is SimpleITK's (x, y, z) of the reference, the array is in SimpleITK's
(z, y, x) order. The BraTS 2026 scorer hands SimpleITK's spacing to panoptica together with
SimpleITK's array, so its lesion-wise HD95 and NSD use the spacing in reversed axis order; that
is reproduced here (it matters for anisotropic images only; BraTS images are 1 mm isotropic).
The other scorers read arrays and spacing in one order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate.brats import mets_row, missing_row, seg_row
from nnunet_ext.evaluate.brats2023 import HD95_PENALTY_2023, brats2023_values
from nnunet_ext.evaluate.lesions import match_lesions
from nnunet_ext.evaluate.presets import Preset
from nnunet_ext.evaluate.surfels import surfel_distances

__all__ = ["autopet_values", "missing_values", "preset_case_values", "preset_columns"]


def _mask(labels: NDArray[np.integer[Any]], values: tuple[int, ...]) -> NDArray[np.bool_]:
    return np.isin(labels, np.asarray(values, dtype=labels.dtype))


def preset_case_values(
    preset: Preset,
    reference: NDArray[np.integer[Any]],
    prediction: NDArray[np.integer[Any]],
    spacing: Sequence[float],
) -> dict[str, float]:
    """Every per-case column of ``preset`` for one case.

    Args:
        preset: The challenge preset.
        reference: Reference label map, SimpleITK axis order (z, y, x). Not modified.
        prediction: Predicted label map of the same shape. Not modified.
        spacing: The reference's spacing in SimpleITK order (x, y, z), mm.

    Returns:
        Column name to value, in the official table's order.

    Examples:
        >>> from nnunet_ext.evaluate.presets import get_preset
        >>> ref = np.zeros((4, 6, 6), dtype=np.uint8); ref[1:3, 1:4, 1:4] = 2
        >>> values = preset_case_values(get_preset("kits23"), ref, ref, (1.0, 1.0, 3.0))
        >>> values["dice_tumor"], values["nsd_mass"]
        (1.0, 1.0)
    """
    numpy_spacing = tuple(float(s) for s in reversed(tuple(spacing)))
    row: dict[str, float] = {}
    for region, values in preset.regions.items():
        ref, pred = _mask(reference, values), _mask(prediction, values)
        if preset.kind in ("brats2026-seg", "brats2026-mets"):
            result = match_lesions(ref, pred, tuple(float(s) for s in spacing))
            options = dict(preset.options or {})
            row.update(
                seg_row(region, result)
                if preset.kind == "brats2026-seg"
                else mets_row(region, result, **options)
            )
        elif preset.kind == "surfel":
            row.update(_surfel_values(preset, region, values[0], ref, pred, numpy_spacing))
        elif preset.kind == "autopet":
            row.update(
                {f"{k}_{region}": v for k, v in autopet_values(ref, pred, numpy_spacing).items()}
            )
        elif preset.kind == "brats2023":
            options = dict(preset.options or {})
            found = brats2023_values(
                ref,
                pred,
                numpy_spacing,
                dilation=int(options.get("dilation", 3)),
                volume_threshold=float(options.get("volume_threshold", 50.0)),
            )
            row.update({f"{k}_{region}": float(v) for k, v in found.items()})
        else:
            raise ValueError(f"preset {preset.name}: unknown kind {preset.kind!r}.")
    return row


def _surfel_values(
    preset: Preset,
    region: str,
    label: int,
    ref: NDArray[np.bool_],
    pred: NDArray[np.bool_],
    spacing: tuple[float, ...],
) -> dict[str, float]:
    """Dice and surfel NSD (KiTS23, FLARE22): both empty 1 and 1, reference empty 0 and 0."""
    tolerance = float((preset.tolerances or {})[region])
    if not ref.any() and not pred.any():
        dice, nsd = 1.0, 1.0
    elif not ref.any():
        dice, nsd = 0.0, 0.0
    else:
        if label in preset.z_crop_labels:
            # FLARE22: aorta, IVC, oesophagus only on the labelled slices (upper one excluded)
            slices = np.flatnonzero(ref.reshape(ref.shape[0], -1).any(axis=1))
            ref, pred = ref[slices[0] : slices[-1]], pred[slices[0] : slices[-1]]
        total = int(ref.sum()) + int(pred.sum())
        dice = 2.0 * int((ref & pred).sum()) / total if total else math.nan
        nsd = surfel_distances(ref, pred, spacing).surface_dice(tolerance) if pred.any() else 0.0
    if preset.round_digits is not None:
        dice, nsd = round(dice, preset.round_digits), round(nsd, preset.round_digits)
    return {f"dice_{region}": dice, f"nsd_{region}": nsd}


def autopet_values(
    reference: NDArray[np.bool_], prediction: NDArray[np.bool_], spacing: Sequence[float]
) -> dict[str, float]:
    """AutoPET's Dice, false-positive and false-negative volume (ml) of one case.

    FPV: the volume of predicted components (18-connectivity) that touch no reference voxel;
    FNV: the volume of reference components that touch no predicted voxel; Dice NaN when both
    are empty (``2 * 0 / 0`` in the official script).

    Examples:
        >>> ref = np.zeros((3, 3, 6), dtype=bool); ref[1, 1, 0:2] = True; ref[1, 1, 5] = True
        >>> pred = np.zeros_like(ref); pred[1, 1, 1] = True; pred[0, 0, 3] = True
        >>> autopet_values(ref, pred, (10.0, 10.0, 10.0))
        {'dice': 0.4, 'fpv': 1.0, 'fnv': 1.0}
    """
    import cc3d

    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    out = {}
    for name, source, other in (("fpv", prediction, reference), ("fnv", reference, prediction)):
        labels = cc3d.connected_components(
            np.ascontiguousarray(source, dtype=np.uint8), connectivity=18
        )
        sizes = np.bincount(labels.ravel())
        touching = np.unique(labels[other & (labels > 0)])
        free = np.setdiff1d(np.arange(1, sizes.size), touching)
        out[name] = float(sizes[free].sum()) * voxel_ml
    total = int(reference.sum()) + int(prediction.sum())
    dice = 2.0 * int((reference & prediction).sum()) / total if total else math.nan
    return {"dice": dice, "fpv": out["fpv"], "fnv": out["fnv"]}


def preset_columns(preset: Preset) -> list[str]:
    """The per-case columns of ``preset``, in order (from an empty case).

    Examples:
        >>> from nnunet_ext.evaluate.presets import get_preset
        >>> preset_columns(get_preset("autopet"))
        ['dice_lesion', 'fpv_lesion', 'fnv_lesion']
    """
    empty = np.zeros((2, 2, 2), dtype=np.uint8)
    return list(preset_case_values(preset, empty, empty, (1.0, 1.0, 1.0)))


def missing_values(
    preset: Preset, reference: NDArray[np.integer[Any]] | None, spacing: Sequence[float]
) -> dict[str, float]:
    """Columns of a reference case without prediction.

    BraTS 2026: ``brats-parse-metrics``' values (373 for HD95 columns except standard
    deviations, 0 for the others). Every other preset scores the case as an empty prediction
    (their scorers skip such a case; an empty submission is what it scores on the leaderboard).
    """
    if preset.kind.startswith("brats2026"):
        return missing_row(preset_columns(preset))
    if reference is None:
        raise ValueError(f"preset {preset.name}: a missing case needs its reference.")
    values = preset_case_values(preset, reference, np.zeros_like(reference), spacing)
    if preset.kind == "brats2023":
        values = {k: (HD95_PENALTY_2023 if math.isinf(v) else v) for k, v in values.items()}
    return values
