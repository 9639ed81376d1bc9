"""Pure counting maths for segmentation metrics: one pass over the voxels for all labels.

The voxels are counted once into a joint histogram of (reference value, predicted value) with a
single ``np.bincount`` over ``reference * K + prediction``; the TP/FP/FN/TN of every label, and
of every region (a union of label values, as in nnU-Net's region-based datasets), are then sums
over that small ``K x K`` matrix. Counting costs the same for 2 labels or 20.

Conventions follow nnU-Net's ``nnunetv2.evaluation.evaluate_predictions.compute_metrics``:
voxels whose *reference* value is ``ignore_label`` are left out of every count, and Dice/IoU
are NaN when reference and prediction are both empty (``empty="nan"``). ``empty="one"`` gives
1.0 instead, as MONAI's ``DiceMetric(ignore_empty=False)`` does
(``tests/evaluate/test_empty_vs_monai.py``).

Nothing here reads files; this module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COUNT_FIELDS",
    "EMPTY_CONVENTIONS",
    "FN",
    "FP",
    "N_PRED",
    "N_REF",
    "TN",
    "TP",
    "LabelOrRegion",
    "confusion_counts",
    "confusion_matrix",
    "counts_from_matrix",
    "dice_from_counts",
    "iou_from_counts",
    "label_key",
]

#: A label value, or a region: a tuple of label values whose union is scored.
LabelOrRegion = int | tuple[int, ...]

#: Column names of the array returned by :func:`confusion_counts`, in order.
COUNT_FIELDS: tuple[str, ...] = ("TP", "FP", "FN", "TN", "n_ref", "n_pred")
#: Column indices into :func:`confusion_counts` results.
TP, FP, FN, TN, N_REF, N_PRED = range(6)

#: Accepted values of ``empty`` in :func:`dice_from_counts` and :func:`iou_from_counts`.
EMPTY_CONVENTIONS: tuple[str, ...] = ("nan", "one")

Empty = Literal["nan", "one"]


def label_key(label: LabelOrRegion) -> str:
    """Return nnU-Net's ``summary.json`` key of a label or region (``"1"``, ``"(1, 2)"``).

    Examples:
        >>> label_key(3), label_key((1, 2)), label_key((2,))
        ('3', '(1, 2)', '(2,)')
    """
    return str(label)


def _as_label_array(values: ArrayLike, name: str) -> NDArray[np.integer[Any]]:
    array = np.asarray(values)
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer label array; got dtype {array.dtype}. "
            "Read label files with nnunet_ext.io.read_labels (exact integers)."
        )
    if array.size and array.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0; found {array.min()}.")
    return array


def _normalise_labels(label_ids: Sequence[LabelOrRegion]) -> list[LabelOrRegion]:
    out: list[LabelOrRegion] = []
    for label in label_ids:
        if isinstance(label, (tuple, list)):
            region = tuple(int(v) for v in label)
            if not region or min(region) < 0:
                raise ValueError(
                    f"label_ids: a region must be a non-empty tuple of values >= 0; got {label!r}."
                )
            out.append(region)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if int(label) < 0:
                raise ValueError(f"label_ids must be >= 0; got {label}.")
            out.append(int(label))
        else:
            raise ValueError(f"label_ids must hold ints or tuples of ints; got {label!r}.")
    return out


def _largest_value(label: LabelOrRegion) -> int:
    return max(label) if isinstance(label, tuple) else label


def confusion_matrix(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    num_values: int | None = None,
    ignore_label: int | None = None,
) -> NDArray[np.int64]:
    """Count voxels per (reference value, predicted value) pair in one ``bincount`` pass.

    Args:
        reference: Integer label array (ground truth). Not modified.
        prediction: Integer label array of the same shape. Not modified.
        num_values: Size ``K`` of the matrix; at least ``max(value) + 1``. Default: from the data.
        ignore_label: Reference value whose voxels are not counted (its row is zero).

    Returns:
        ``(K, K)`` int64 matrix: ``m[r, p]`` voxels with reference ``r``, prediction ``p``.

    Raises:
        ValueError: For different shapes, non-integer or negative values, or values
            >= ``num_values``.

    Examples:
        >>> confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
    """
    ref = _as_label_array(reference, "reference")
    pred = _as_label_array(prediction, "prediction")
    if ref.shape != pred.shape:
        raise ValueError(
            f"reference and prediction must have the same shape; got {ref.shape} and {pred.shape}. "
            "Compare label maps of the same case and geometry."
        )
    high = max(int(ref.max()) if ref.size else 0, int(pred.max()) if pred.size else 0)
    if ignore_label is not None:
        high = max(high, int(ignore_label))
    k = high + 1 if num_values is None else int(num_values)
    if k <= high:
        raise ValueError(f"num_values must be > the largest label value {high}; got {num_values}.")
    # smallest dtype holding K*K-1 keeps the combined array (and its temporary) small
    combined_dtype = np.uint8 if k * k <= 256 else np.uint16 if k * k <= 65536 else np.int64
    combined = ref.astype(combined_dtype, copy=False) * combined_dtype(k)
    combined += pred.astype(combined_dtype, copy=False)
    matrix = np.bincount(combined.ravel(), minlength=k * k).astype(np.int64).reshape(k, k)
    if ignore_label is not None:
        matrix[int(ignore_label), :] = 0
    return matrix


def counts_from_matrix(
    matrix: NDArray[np.integer[Any]], label_ids: Sequence[LabelOrRegion]
) -> NDArray[np.int64]:
    """Per-label TP/FP/FN/TN/n_ref/n_pred from a :func:`confusion_matrix`.

    Args:
        matrix: ``(K, K)`` counts, rows reference values, columns predicted values.
        label_ids: Labels (ints) or regions (tuples of ints, scored as their union).

    Returns:
        ``(len(label_ids), 6)`` int64 array with columns :data:`COUNT_FIELDS`.

    Examples:
        >>> m = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
        >>> counts_from_matrix(m, [1, 2, (1, 2)])
        array([[1, 0, 1, 2, 2, 1],
               [1, 1, 0, 2, 1, 2],
               [3, 0, 0, 1, 3, 3]])
    """
    labels = _normalise_labels(label_ids)
    k = matrix.shape[0]
    m = np.asarray(matrix, dtype=np.int64)
    total = int(m.sum())
    row_sums = m.sum(axis=1)
    col_sums = m.sum(axis=0)
    out = np.zeros((len(labels), len(COUNT_FIELDS)), dtype=np.int64)
    for i, label in enumerate(labels):
        members = np.zeros(k, dtype=bool)
        values = label if isinstance(label, tuple) else (label,)
        inside = [v for v in values if v < k]  # values beyond K never occur
        members[inside] = True
        tp = int(m[np.ix_(members, members)].sum())
        n_ref = int(row_sums[members].sum())
        n_pred = int(col_sums[members].sum())
        fp, fn = n_pred - tp, n_ref - tp
        out[i] = (tp, fp, fn, total - tp - fp - fn, n_ref, n_pred)
    return out


def confusion_counts(
    reference: ArrayLike,
    prediction: ArrayLike,
    *,
    label_ids: Sequence[LabelOrRegion] | None = None,
    num_classes: int | None = None,
    ignore_label: int | None = None,
) -> NDArray[np.int64]:
    """Count TP, FP, FN, TN, reference and predicted voxels of every label in one pass.

    Args:
        reference: Ground-truth integer labels; not modified.
        prediction: Predicted integer labels, shaped like ``reference``; not modified.
        label_ids: Labels to score: ints, or tuples of ints for regions (union of values).
        num_classes: Used when ``label_ids`` is omitted: score labels ``0 .. num_classes - 1``.
        ignore_label: Voxels whose *reference* value is this are left out of all counts
            (nnU-Net's ignore label).

    Returns:
        ``(len(label_ids), 6)`` int64 array; columns :data:`COUNT_FIELDS`
        (``TP, FP, FN, TN, n_ref, n_pred``); index columns with :data:`TP` etc.

    Raises:
        ValueError: For mismatched shapes, non-integer arrays, or neither/invalid label options.

    Examples:
        >>> ref = np.array([[0, 1, 1], [2, 2, 0]])
        >>> pred = np.array([[0, 1, 2], [2, 2, 1]])
        >>> confusion_counts(ref, pred, num_classes=3)[:, [TP, FP, FN]]
        array([[1, 0, 1],
               [1, 1, 1],
               [2, 1, 0]])
        >>> confusion_counts(ref, pred, label_ids=[(1, 2)], ignore_label=0)[0].tolist()
        [4, 0, 0, 0, 4, 4]
    """
    if label_ids is None:
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(
                f"confusion_counts needs label_ids or num_classes >= 1; "
                f"got num_classes={num_classes}."
            )
        labels: list[LabelOrRegion] = list(range(int(num_classes)))
    else:
        labels = _normalise_labels(label_ids)
    matrix = confusion_matrix(reference, prediction, ignore_label=ignore_label)
    needed = max((_largest_value(label) for label in labels), default=0) + 1
    if needed > matrix.shape[0]:
        padded = np.zeros((needed, needed), dtype=np.int64)
        padded[: matrix.shape[0], : matrix.shape[1]] = matrix
        matrix = padded
    return counts_from_matrix(matrix, labels)


def _ratio(numerator: NDArray[np.float64], denominator: NDArray[np.float64], empty: str) -> Any:
    if empty not in EMPTY_CONVENTIONS:
        raise ValueError(f"empty must be one of {EMPTY_CONVENTIONS}; got {empty!r}.")
    fill = np.nan if empty == "nan" else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), fill
        )
    return float(result) if result.ndim == 0 else result


def dice_from_counts(tp: ArrayLike, fp: ArrayLike, fn: ArrayLike, *, empty: Empty = "nan") -> Any:
    """Dice ``2 TP / (2 TP + FP + FN)``; for empty reference and prediction, NaN or 1.

    Args:
        tp: True positives (scalar or array).
        fp: False positives.
        fn: False negatives.
        empty: ``"nan"`` (nnU-Net) or ``"one"`` (MONAI ``ignore_empty=False``) when
            ``TP + FP + FN == 0``. MONAI's ``ignore_empty=True`` is neither: it leaves out every
            case with an empty reference, which is :func:`~nnunet_ext.evaluate.summary.summarise`'s
            ``empty="skip"``.

    Returns:
        A float for scalar inputs, else a float64 array.

    Examples:
        >>> dice_from_counts(3, 1, 1)
        0.75
        >>> dice_from_counts(np.array([0, 2]), np.array([0, 0]), np.array([0, 2]))
        array([       nan, 0.66666667])
        >>> dice_from_counts(0, 0, 0, empty="one")
        1.0
    """
    t, p, n = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    return _ratio(2 * t, 2 * t + p + n, empty)


def iou_from_counts(tp: ArrayLike, fp: ArrayLike, fn: ArrayLike, *, empty: Empty = "nan") -> Any:
    """IoU (Jaccard) ``TP / (TP + FP + FN)``; for empty reference and prediction, NaN or 1.

    Args:
        tp: True positives (scalar or array).
        fp: False positives.
        fn: False negatives.
        empty: ``"nan"`` or ``"one"``, as in :func:`dice_from_counts`.

    Returns:
        A float for scalar inputs, else a float64 array.

    Examples:
        >>> iou_from_counts(3, 1, 2)
        0.5
        >>> iou_from_counts(0, 0, 0)
        nan
    """
    t, p, n = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    return _ratio(t, t + p + n, empty)
