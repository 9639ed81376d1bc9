"""From per-case counts and metric values to per-case scores and per-label summaries.

The empty-mask policy (:data:`EMPTY_POLICIES`) decides which cases enter a label's mean Dice
and IoU; with a named empty-case convention (:mod:`nnunet_ext.evaluate.conventions`) every
metric of an empty case is set by the convention instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate.measures import apply_convention, nan_mean, volume_values
from nnunet_ext.evaluate.metrics import (
    COUNT_FIELDS,
    FN,
    FP,
    N_PRED,
    N_REF,
    TP,
    LabelOrRegion,
    dice_from_counts,
    iou_from_counts,
    label_key,
)
from nnunet_ext.evaluate.results import LabelSummary

__all__ = ["EMPTY_POLICIES", "summarise"]

#: Empty-mask policies of :func:`~nnunet_ext.evaluate.evaluate_folder`.
#:
#: * ``"nan"`` (nnU-Net): Dice/IoU are NaN when reference and prediction are both empty; such
#:   cases are left out of the label's mean.
#: * ``"one"``: they score 1 and count in the mean (MONAI ``DiceMetric(ignore_empty=False)``).
#: * ``"skip"``: every case whose *reference* lacks the label is left out of that label's mean,
#:   also when the prediction has false positives there (Dice measured where the structure is;
#:   MONAI ``DiceMetric(ignore_empty=True)``). Both tested against MONAI
#:   (``tests/evaluate/test_empty_vs_monai.py``).
EMPTY_POLICIES: tuple[str, ...] = ("nan", "one", "skip")


def summarise(
    counts: NDArray[np.integer[Any]],
    *,
    empty: str = "nan",
) -> dict[str, NDArray[np.float64]]:
    """Per-case Dice/IoU and per-label means from stacked counts, under an empty-mask policy.

    Args:
        counts: ``(cases, labels, 6)`` counts as from
            :func:`~nnunet_ext.evaluate.metrics.confusion_counts`.
        empty: One of :data:`EMPTY_POLICIES`.

    Returns:
        ``dice`` and ``iou`` ``(cases, labels)`` per case (NaN only where undefined; cases that
        ``"skip"`` leaves out keep their value here), ``mean_dice``/``mean_iou`` ``(labels,)``
        and ``in_mean`` ``(labels,)``, the number of cases in each mean.

    Examples:
        >>> c = np.array([[[1, 0, 1, 0, 2, 1]], [[0, 0, 0, 4, 0, 0]], [[0, 2, 0, 2, 0, 2]]])
        >>> [summarise(c, empty=e)["mean_dice"].round(4).tolist() for e in EMPTY_POLICIES]
        [[0.3333], [0.5556], [0.6667]]
    """
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {EMPTY_POLICIES}; got {empty!r}.")
    c = np.asarray(counts, dtype=np.int64)
    convention: Literal["nan", "one"] = "one" if empty == "one" else "nan"
    dice = np.asarray(
        dice_from_counts(c[..., TP], c[..., FP], c[..., FN], empty=convention), dtype=np.float64
    )
    iou = np.asarray(
        iou_from_counts(c[..., TP], c[..., FP], c[..., FN], empty=convention), dtype=np.float64
    )
    dice_for_mean, iou_for_mean = dice.copy(), iou.copy()
    if empty == "skip":
        no_reference = c[..., N_REF] == 0
        dice_for_mean[no_reference] = np.nan
        iou_for_mean[no_reference] = np.nan
    num_labels = c.shape[1] if c.ndim == 3 else 0
    mean_dice = np.array(
        [nan_mean(dice_for_mean[:, i]) for i in range(num_labels)], dtype=np.float64
    )
    mean_iou = np.array([nan_mean(iou_for_mean[:, i]) for i in range(num_labels)], dtype=np.float64)
    in_mean = (~np.isnan(dice_for_mean)).sum(axis=0).astype(np.float64)
    return {
        "dice": dice,
        "iou": iou,
        "mean_dice": mean_dice,
        "mean_iou": mean_iou,
        "in_mean": in_mean,
    }


def _case_values(
    counted: Sequence[Any],
    scores: dict[str, NDArray[np.float64]],
    wanted: Sequence[str],
    value_keys: Sequence[str],
    convention: str,
    num_keys: int,
) -> dict[str, NDArray[np.float64]]:
    """Per metric, the (case, label) values under ``convention``; Dice/IoU in ``scores`` too."""
    case_values: list[dict[str, NDArray[np.float64]]] = []
    for i, (counts, ref_spacing, _, boundary, shape) in enumerate(counted):
        spacing = tuple(reversed(ref_spacing))
        raw = {k: v for k, v in boundary.items() if k in value_keys}
        if "volume" in wanted:
            raw.update(volume_values(counts, float(np.prod(spacing))))
        if convention != "nan":
            raw.update(dice=scores["dice"][i], iou=scores["iou"][i])
        fixed = apply_convention(raw, counts, convention, shape=shape, spacing=spacing)
        if convention != "nan":
            scores["dice"][i], scores["iou"][i] = fixed.pop("dice"), fixed.pop("iou")
        case_values.append(fixed)
    if convention != "nan":  # every Dice/IoU is defined now; the means are plain means
        scores["mean_dice"] = np.array([nan_mean(scores["dice"][:, j]) for j in range(num_keys)])
        scores["mean_iou"] = np.array([nan_mean(scores["iou"][:, j]) for j in range(num_keys)])
        scores["in_mean"] = (~np.isnan(scores["dice"])).sum(axis=0).astype(np.float64)
    num_cases = len(counted)
    return {
        k: np.stack([v[k] for v in case_values]).reshape(num_cases, num_keys) for k in value_keys
    }


def _label_summaries(
    label_ids: Sequence[LabelOrRegion],
    names: Mapping[str, str],
    stacked: NDArray[np.int64],
    scores: Mapping[str, NDArray[np.float64]],
    per_key: Mapping[str, NDArray[np.float64]],
    value_keys: Sequence[str],
    label_scores: NDArray[np.float64] | None,
) -> list[LabelSummary]:
    """One summary per label: mean Dice/IoU, mean counts, empty cases, metric means."""
    summaries = []
    for j, label in enumerate(label_ids):
        column = stacked[:, j, :]
        empty_ref = column[:, N_REF] == 0
        empty_pred = column[:, N_PRED] == 0
        summaries.append(
            LabelSummary(
                label=label,
                name=names.get(label_key(label), label_key(label)),
                dice=float(scores["mean_dice"][j]),
                iou=float(scores["mean_iou"][j]),
                means={name: float(column[:, k].mean()) for k, name in enumerate(COUNT_FIELDS)},
                num_cases=len(stacked),
                num_in_mean=int(scores["in_mean"][j]),
                num_empty_reference=int(empty_ref.sum()),
                num_empty_prediction=int(empty_pred.sum()),
                num_both_empty=int((empty_ref & empty_pred).sum()),
                values={k: nan_mean(per_key[k][:, j]) for k in value_keys},
                num_undefined={k: int(np.isnan(per_key[k][:, j]).sum()) for k in value_keys},
                score=None if label_scores is None else float(label_scores[j]),
            )
        )
    return summaries
