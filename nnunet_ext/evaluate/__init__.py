"""Evaluate label maps against references: Dice, IoU, TP/FP/FN per case and label.

Conventions are explicit: by default they equal nnU-Net's ``compute_metrics_on_folder`` (Dice
NaN when reference and prediction are both empty, left out of the means); ``empty="one"`` and
``empty="skip"`` switch them. The counting maths lives in :mod:`nnunet_ext.evaluate.metrics`.
"""

from nnunet_ext.evaluate.folders import (
    EMPTY_POLICIES,
    CaseResult,
    Evaluation,
    LabelSummary,
    evaluate_folder,
    find_dataset_json,
    label_ids_from_dataset_json,
    summarise,
)
from nnunet_ext.evaluate.metrics import (
    COUNT_FIELDS,
    EMPTY_CONVENTIONS,
    confusion_counts,
    confusion_matrix,
    counts_from_matrix,
    dice_from_counts,
    iou_from_counts,
    label_key,
)
from nnunet_ext.evaluate.report import format_table, per_case_csv, write_evaluation

__all__ = [
    "COUNT_FIELDS",
    "EMPTY_CONVENTIONS",
    "EMPTY_POLICIES",
    "CaseResult",
    "Evaluation",
    "LabelSummary",
    "confusion_counts",
    "confusion_matrix",
    "counts_from_matrix",
    "dice_from_counts",
    "evaluate_folder",
    "find_dataset_json",
    "format_table",
    "iou_from_counts",
    "label_ids_from_dataset_json",
    "label_key",
    "per_case_csv",
    "summarise",
    "write_evaluation",
]
