"""Evaluate label maps against references: Dice, IoU, HD95, NSD, ... per case and label.

Dice, IoU and TP/FP/FN always; on request HD, HD95, ASSD, NSD and volume difference
(:mod:`nnunet_ext.evaluate.surface`), with empty-case conventions as data
(:mod:`nnunet_ext.evaluate.conventions`) and score files (:mod:`nnunet_ext.evaluate.score`);
:func:`load_evaluation` reads back the JSON that :func:`write_evaluation` writes.

Conventions are explicit: by default they equal nnU-Net's ``compute_metrics_on_folder`` (Dice
NaN when reference and prediction are both empty, left out of the means); ``empty="one"`` and
``empty="skip"`` switch them. The counting maths lives in :mod:`nnunet_ext.evaluate.metrics`.
"""

from nnunet_ext.evaluate.folders import evaluate_folder
from nnunet_ext.evaluate.metrics import (
    COUNT_FIELDS,
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
)
from nnunet_ext.evaluate.reader import load_evaluation
from nnunet_ext.evaluate.report import format_table, write_evaluation
from nnunet_ext.evaluate.results import Evaluation
from nnunet_ext.evaluate.summary import EMPTY_POLICIES
from nnunet_ext.evaluate.surface import surface_distances

__all__ = [
    "COUNT_FIELDS",
    "EMPTY_POLICIES",
    "Evaluation",
    "confusion_counts",
    "dice_from_counts",
    "evaluate_folder",
    "format_table",
    "iou_from_counts",
    "load_evaluation",
    "surface_distances",
    "write_evaluation",
]
