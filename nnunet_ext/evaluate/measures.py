"""The metrics ``evaluate --metrics`` offers: names, output columns, direction, per-case values.

=============  =====================================  ======================================
``--metrics``  columns (JSON, CSV, table)             definition
=============  =====================================  ======================================
dice           ``Dice``                               ``2 TP / (2 TP + FP + FN)``
iou            ``IoU``                                ``TP / (TP + FP + FN)``
hd             ``HD`` (mm)                            :mod:`nnunet_ext.evaluate.surface`
hd95           ``HD95`` (mm)                          max of the two directed 95th percentiles
hd95_pooled    ``HD95_pooled`` (mm)                   MedPy ``hd95``: 95th percentile, pooled
assd           ``ASSD`` (mm)                          mean over both surfaces' distances
nsd            ``NSD``                                surface fraction within the tolerance
volume         ``VolumeDiff_ml``, ``VolumeDiff_rel``  ``V_pred - V_ref`` in ml, ``/ V_ref``
=============  =====================================  ======================================

Values in empty cases come from :mod:`nnunet_ext.evaluate.conventions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean as nan_mean_of
from nnunet_ext.evaluate.conventions import (
    BOTH_EMPTY,
    PREDICTION_EMPTY,
    REFERENCE_EMPTY,
    convention_value,
)
from nnunet_ext.evaluate.metrics import N_PRED, N_REF, LabelOrRegion
from nnunet_ext.evaluate.surface import (
    DISTANCE_METRICS,
    NSD_DEFINITIONS,
    distance_metrics,
    pair_box,
    surface_distances,
)
from nnunet_ext.evaluate.surfels import surfel_surface_dice

__all__ = [
    "COLUMNS",
    "DEFAULT_METRICS",
    "HIGHER_IS_BETTER",
    "METRICS",
    "apply_convention",
    "boundary_values",
    "column_keys",
    "label_mask",
    "nan_mean",
    "parse_metrics",
    "volume_values",
]

#: Every metric name accepted by ``--metrics``, in output order.
METRICS: tuple[str, ...] = ("dice", "iou", "hd", "hd95", "hd95_pooled", "assd", "nsd", "volume")
#: Today's set: ``evaluate`` without ``--metrics`` writes exactly what it wrote before.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou")
#: Value key (as in the conventions table) to output column name.
COLUMNS: Mapping[str, str] = {
    "dice": "Dice",
    "iou": "IoU",
    "hd": "HD",
    "hd95": "HD95",
    "hd95_pooled": "HD95_pooled",
    "assd": "ASSD",
    "nsd": "NSD",
    "volume_diff_ml": "VolumeDiff_ml",
    "volume_diff_rel": "VolumeDiff_rel",
}
#: Whether a larger value is better (for ``postprocess determine --metric``).
HIGHER_IS_BETTER: Mapping[str, bool] = {
    "dice": True,
    "iou": True,
    "hd": False,
    "hd95": False,
    "hd95_pooled": False,
    "assd": False,
    "nsd": True,
}


def parse_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names and return them in :data:`METRICS` order, without repeats.

    Examples:
        >>> parse_metrics(["hd95", "dice", "hd95"])
        ('dice', 'hd95')
        >>> parse_metrics(["hd99"])
        Traceback (most recent call last):
        ...
        ValueError: metrics: unknown metric 'hd99'; known: dice iou hd hd95 hd95_pooled ...
    """
    for name in names:
        if name not in METRICS:
            raise ValueError(f"metrics: unknown metric {name!r}; known: {' '.join(METRICS)}.")
    if not names:
        raise ValueError(f"metrics needs at least one of: {' '.join(METRICS)}.")
    return tuple(m for m in METRICS if m in names)


def column_keys(metrics: Sequence[str]) -> tuple[str, ...]:
    """The value keys (conventions-table names) that ``metrics`` produce.

    Examples:
        >>> column_keys(("dice", "volume"))
        ('dice', 'volume_diff_ml', 'volume_diff_rel')
    """
    keys: list[str] = []
    for metric in metrics:
        keys.extend(("volume_diff_ml", "volume_diff_rel") if metric == "volume" else (metric,))
    return tuple(keys)


def label_mask(labels: NDArray[np.integer[Any]], label: LabelOrRegion) -> NDArray[np.bool_]:
    """Binary mask of a label value, or of a region (the union of its values).

    Examples:
        >>> label_mask(np.array([0, 1, 2, 3]), (1, 3)).tolist()
        [False, True, False, True]
    """
    if isinstance(label, tuple):
        return np.isin(labels, np.asarray(label, dtype=labels.dtype))
    return np.asarray(labels == label)


def boundary_values(
    reference: NDArray[np.integer[Any]],
    prediction: NDArray[np.integer[Any]],
    label_ids: Sequence[LabelOrRegion],
    spacing: Sequence[float],
    metrics: Sequence[str],
    *,
    nsd_tolerance: Sequence[float] | float = 1.0,
    ignore_label: int | None = None,
    nsd_definition: str = "voxel",
) -> dict[str, NDArray[np.float64]]:
    """Distance metrics of every label of one case; NaN where a mask is empty.

    Args:
        reference: Integer label map. Not modified.
        prediction: Integer label map of the same shape. Not modified.
        label_ids: Labels or regions.
        spacing: Voxel size per array axis, mm.
        metrics: Metric names; those outside :data:`~nnunet_ext.evaluate.surface.DISTANCE_METRICS`
            are ignored here.
        nsd_tolerance: One tolerance (mm) for all labels, or one per label.
        ignore_label: Voxels whose reference is this value are removed from the predicted masks
            (as they are left out of Dice's counts).
        nsd_definition: One of :data:`~nnunet_ext.evaluate.surface.NSD_DEFINITIONS`.

    Returns:
        Metric name to ``(L,)`` float64 values.

    Examples:
        >>> ref = np.zeros((1, 8), dtype=np.uint8); ref[0, 1:3] = 1
        >>> pred = np.zeros((1, 8), dtype=np.uint8); pred[0, 1:5] = 1
        >>> boundary_values(ref, pred, [1, 2], (1.0, 0.5), ["hd", "nsd"])["hd"].tolist()
        [1.0, nan]
    """
    wanted = [m for m in metrics if m in DISTANCE_METRICS]
    if nsd_definition not in NSD_DEFINITIONS:
        raise ValueError(
            f"nsd_definition must be one of {', '.join(NSD_DEFINITIONS)}; got {nsd_definition!r}."
        )
    surfel = nsd_definition == "surfel" and "nsd" in wanted
    tolerances = (
        [float(nsd_tolerance)] * len(label_ids)
        if isinstance(nsd_tolerance, (int, float))
        else [float(t) for t in nsd_tolerance]
    )
    out = {m: np.full(len(label_ids), np.nan, dtype=np.float64) for m in wanted}
    if not wanted:
        return out
    keep = None if ignore_label is None else reference != ignore_label
    for i, label in enumerate(label_ids):
        ref_mask = label_mask(reference, label)
        pred_mask = label_mask(prediction, label)
        if keep is not None:
            pred_mask &= keep
        box = pair_box(ref_mask, pred_mask)
        if box is None:  # a mask is empty
            continue
        # on the joint bounding box only (exact: both masks lie wholly inside it)
        rest = [m for m in wanted if not (surfel and m == "nsd")]
        values = distance_metrics(
            surface_distances(ref_mask[box], pred_mask[box], spacing),
            rest,
            nsd_tolerance=tolerances[i],
            nsd_definition="voxel" if surfel else nsd_definition,
        )
        if surfel:
            values["nsd"] = surfel_surface_dice(
                ref_mask[box], pred_mask[box], spacing, tolerances[i]
            )
        for name, value in values.items():
            out[name][i] = value
    return out


def volume_values(
    counts: NDArray[np.integer[Any]], voxel_volume_mm3: float
) -> dict[str, NDArray[np.float64]]:
    """Volume difference in ml and relative to the reference, from ``(L, 6)`` counts.

    Examples:
        >>> c = np.array([[8, 4, 0, 0, 8, 12], [0, 0, 0, 0, 0, 0]])
        >>> v = volume_values(c, 250.0)
        >>> v["volume_diff_ml"].tolist(), v["volume_diff_rel"].tolist()
        ([1.0, 0.0], [0.5, nan])
    """
    c = np.asarray(counts, dtype=np.float64)
    n_ref, n_pred = c[..., N_REF], c[..., N_PRED]
    diff = (n_pred - n_ref) * voxel_volume_mm3 / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(n_ref > 0, (n_pred - n_ref) / np.where(n_ref > 0, n_ref, 1), np.nan)
    return {"volume_diff_ml": diff, "volume_diff_rel": relative}


def apply_convention(
    values: dict[str, NDArray[np.float64]],
    counts: NDArray[np.integer[Any]],
    convention: str,
    *,
    shape: Sequence[int],
    spacing: Sequence[float],
) -> dict[str, NDArray[np.float64]]:
    """Replace the values of empty cases of one case's labels by the convention's.

    Args:
        values: Value key to ``(L,)`` values of one case (modified copies are returned).
        counts: ``(L, 6)`` counts of that case (``n_ref``/``n_pred`` decide the situation).
        convention: A name in :data:`~nnunet_ext.evaluate.conventions.CONVENTIONS`.
        shape: Image shape (for the diagonal).
        spacing: Voxel size per array axis, mm.

    Returns:
        New value arrays.

    Examples:
        >>> c = np.array([[0, 0, 0, 9, 0, 0], [0, 2, 0, 7, 0, 2], [1, 0, 0, 8, 1, 1]])
        >>> v = {"hd95": np.array([np.nan, np.nan, 0.0])}
        >>> apply_convention(v, c, "brats", shape=(3, 3), spacing=(1, 1))["hd95"].tolist()
        [0.0, 374.0, 0.0]
    """
    c = np.asarray(counts)
    empty_ref, empty_pred = c[:, N_REF] == 0, c[:, N_PRED] == 0
    situations = {
        BOTH_EMPTY: empty_ref & empty_pred,
        REFERENCE_EMPTY: empty_ref & ~empty_pred,
        PREDICTION_EMPTY: ~empty_ref & empty_pred,
    }
    out = {}
    for key, array in values.items():
        new = np.array(array, dtype=np.float64, copy=True)
        for situation, where in situations.items():
            if not where.any():
                continue
            value = convention_value(convention, key, situation, shape=shape, spacing=spacing)
            if value is not None:
                new[where] = value
        out[key] = new
    return out


def nan_mean(values: NDArray[np.float64]) -> float:
    """Mean of the defined (non-NaN) values; NaN when there are none.

    The package's one NaN-mean (:func:`nnunet_ext._stats.nan_mean`) with ``compact=True``:
    evaluate's arithmetic, so that its JSON numbers stay bit-identical.

    Examples:
        >>> nan_mean(np.array([1.0, np.nan, 3.0])), bool(np.isnan(nan_mean(np.array([np.nan]))))
        (2.0, True)
    """
    return nan_mean_of(values, compact=True)
