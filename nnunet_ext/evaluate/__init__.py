"""Evaluate label maps against references: Dice, IoU, HD95, NSD, ... per case and label.

Dice, IoU and TP/FP/FN always; on request HD, HD95, ASSD, NSD and volume difference
(:mod:`nnunet_ext.evaluate.surface`), with empty-case conventions as data
(:mod:`nnunet_ext.evaluate.conventions`) and score files (:mod:`nnunet_ext.evaluate.score`).

Conventions are explicit: by default they equal nnU-Net's ``compute_metrics_on_folder`` (Dice
NaN when reference and prediction are both empty, left out of the means); ``empty="one"`` and
``empty="skip"`` switch them. The counting maths lives in :mod:`nnunet_ext.evaluate.metrics`.
"""

from nnunet_ext.evaluate.conventions import CONVENTIONS
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
from nnunet_ext.evaluate.measures import DEFAULT_METRICS, METRICS
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
from nnunet_ext.evaluate.score import ScoreSpec, load_score
from nnunet_ext.evaluate.surface import distance_metrics, surface_distances

__all__ = [
    "CONVENTIONS",
    "COUNT_FIELDS",
    "DEFAULT_METRICS",
    "EMPTY_CONVENTIONS",
    "EMPTY_POLICIES",
    "METRICS",
    "CaseResult",
    "Evaluation",
    "LabelSummary",
    "ScoreSpec",
    "confusion_counts",
    "confusion_matrix",
    "counts_from_matrix",
    "dice_from_counts",
    "distance_metrics",
    "evaluate_folder",
    "find_dataset_json",
    "format_table",
    "iou_from_counts",
    "label_ids_from_dataset_json",
    "label_key",
    "load_score",
    "per_case_csv",
    "summarise",
    "surface_distances",
    "write_evaluation",
]
