"""Evaluate label maps against references: Dice, IoU, HD95, NSD, ... per case and label.

Dice, IoU and TP/FP/FN always; on request HD, HD95, ASSD, NSD and volume difference
(:mod:`nnunet_ext.evaluate.surface`), with empty-case conventions as data
(:mod:`nnunet_ext.evaluate.conventions`) and score files (:mod:`nnunet_ext.evaluate.score`);
three NSD definitions (:mod:`nnunet_ext.evaluate.surfels` for DeepMind's surfel NSD); challenge
presets that score as a leaderboard (:mod:`nnunet_ext.evaluate.presets`,
:func:`evaluate_preset`), with lesion-wise metrics (:mod:`nnunet_ext.evaluate.lesions`).
:func:`load_evaluation` reads back the JSON that :func:`write_evaluation` writes.

Conventions are explicit: by default they equal nnU-Net's ``compute_metrics_on_folder`` (Dice
NaN when reference and prediction are both empty, left out of the means); ``empty="one"`` and
``empty="skip"`` switch them. The counting maths lives in :mod:`nnunet_ext.evaluate.metrics`.
"""

from nnunet_ext.evaluate.challenge_folder import PresetEvaluation, evaluate_preset
from nnunet_ext.evaluate.folders import evaluate_folder
from nnunet_ext.evaluate.lesions import match_lesions
from nnunet_ext.evaluate.metrics import (
    COUNT_FIELDS,
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
)
from nnunet_ext.evaluate.presets import PRESETS, Preset, get_preset
from nnunet_ext.evaluate.reader import load_evaluation
from nnunet_ext.evaluate.report import format_table, write_evaluation
from nnunet_ext.evaluate.results import Evaluation
from nnunet_ext.evaluate.summary import EMPTY_POLICIES
from nnunet_ext.evaluate.surface import NSD_DEFINITIONS, surface_distances
from nnunet_ext.evaluate.surfels import surfel_surface_dice

__all__ = [
    "COUNT_FIELDS",
    "EMPTY_POLICIES",
    "NSD_DEFINITIONS",
    "PRESETS",
    "Evaluation",
    "Preset",
    "PresetEvaluation",
    "confusion_counts",
    "dice_from_counts",
    "evaluate_folder",
    "evaluate_preset",
    "format_table",
    "get_preset",
    "iou_from_counts",
    "load_evaluation",
    "match_lesions",
    "surface_distances",
    "surfel_surface_dice",
    "write_evaluation",
]
