"""The per-label metric registry: metrics a command can decide on, beyond the built-in ones.

A :class:`CaseMetric` computes one value per label (or region) of one case from the two label
maps; ``postprocess determine --metric NAME`` (through
:class:`nnunet_ext.postprocess.objective.Objective`) accepts every registered name, so a new
metric plugs in with :func:`register_metric` and no change to the caller. Registered here:

* ``lesion_dice``: BraTS 2026's lesion-wise Dice of each label (panoptica's matching; the mean
  Dice of the matched lesions; 0 when lesions exist but none matches; NaN without any lesion).
* ``lesion_f1``: the lesion F1 (recognition quality) of each label, same matching.
* every preset of :data:`~nnunet_ext.evaluate.presets.PRESETS`: the preset's score metric
  applied to each label (BraTS 2026: ``lesion_dice`` under the task's rules; BraTS 2023: its
  lesion-wise Dice; KiTS23 and FLARE22: the mean of Dice and surfel NSD at the preset's
  smallest tolerance, with their empty-case values; autoPET: Dice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate.brats import mets_row, seg_row
from nnunet_ext.evaluate.brats2023 import brats2023_values
from nnunet_ext.evaluate.challenge import autopet_values
from nnunet_ext.evaluate.lesions import match_lesions
from nnunet_ext.evaluate.measures import label_mask
from nnunet_ext.evaluate.metrics import LabelOrRegion
from nnunet_ext.evaluate.presets import PRESETS, Preset
from nnunet_ext.evaluate.surfels import surfel_surface_dice

__all__ = ["METRIC_REGISTRY", "CaseMetric", "get_metric", "register_metric"]

MaskMetric = Callable[[NDArray[np.bool_], NDArray[np.bool_], tuple[float, ...]], float]


@dataclass(frozen=True)
class CaseMetric:
    """A metric computed per label of one case.

    Attributes:
        name: Its name (``--metric NAME``).
        higher_is_better: Its direction.
        mask_metric: ``(reference mask, predicted mask, spacing per array axis) -> value``.
        description: One line for help texts and reports.
    """

    name: str
    higher_is_better: bool
    mask_metric: MaskMetric
    description: str

    def values(
        self,
        reference: NDArray[np.integer[Any]],
        prediction: NDArray[np.integer[Any]],
        label_ids: Sequence[LabelOrRegion],
        spacing: Sequence[float],
    ) -> NDArray[np.float64]:
        """``(L,)`` values of one case, one per label or region.

        Examples:
            >>> ref = np.zeros((3, 3, 9), dtype=np.uint8); ref[1, 1, 1:3] = ref[1, 1, 6:8] = 1
            >>> pred = np.zeros_like(ref); pred[1, 1, 1:4] = 1
            >>> get_metric("lesion_f1").values(ref, pred, [1, 2], (1.0, 1.0, 1.0)).tolist()
            [0.6666666666666666, nan]
        """
        sampling = tuple(float(s) for s in spacing)
        return np.array(
            [
                self.mask_metric(
                    label_mask(reference, label), label_mask(prediction, label), sampling
                )
                for label in label_ids
            ],
            dtype=np.float64,
        )


def _lesion_dice(kind: str) -> MaskMetric:
    def compute(
        ref: NDArray[np.bool_], pred: NDArray[np.bool_], spacing: tuple[float, ...]
    ) -> float:
        result = match_lesions(ref, pred, spacing)
        row = seg_row("x", result) if kind == "seg" else mets_row("x", result)
        return float(row["lesionwise_dsc_mean_x"])

    return compute


def _lesion_f1(
    ref: NDArray[np.bool_], pred: NDArray[np.bool_], spacing: tuple[float, ...]
) -> float:
    return match_lesions(ref, pred, spacing).rq


def _dice_nsd(tolerance: float) -> MaskMetric:
    def compute(
        ref: NDArray[np.bool_], pred: NDArray[np.bool_], spacing: tuple[float, ...]
    ) -> float:
        if not ref.any():
            return 1.0 if not pred.any() else 0.0
        if not pred.any():
            return 0.0
        dice = 2.0 * int((ref & pred).sum()) / (int(ref.sum()) + int(pred.sum()))
        return (dice + surfel_surface_dice(ref, pred, spacing, tolerance)) / 2.0

    return compute


def _brats2023_dice(preset: Preset) -> MaskMetric:
    options = dict(preset.options or {})

    def compute(
        ref: NDArray[np.bool_], pred: NDArray[np.bool_], spacing: tuple[float, ...]
    ) -> float:
        return float(
            brats2023_values(
                ref,
                pred,
                spacing,
                dilation=int(options.get("dilation", 3)),
                volume_threshold=float(options.get("volume_threshold", 50.0)),
            )["lesionwise_dice"]
        )

    return compute


def _autopet_dice(
    ref: NDArray[np.bool_], pred: NDArray[np.bool_], spacing: tuple[float, ...]
) -> float:
    return autopet_values(ref, pred, spacing)["dice"]


def _preset_metric(preset: Preset) -> CaseMetric:
    if preset.kind.startswith("brats2026"):
        compute = _lesion_dice("mets" if preset.kind.endswith("mets") else "seg")
    elif preset.kind == "brats2023":
        compute = _brats2023_dice(preset)
    elif preset.kind == "surfel":
        compute = _dice_nsd(min((preset.tolerances or {"_": 1.0}).values()))
    else:
        compute = _autopet_dice
    return CaseMetric(
        preset.name, True, compute, f"the {preset.name} preset's score metric per label"
    )


_REGISTRY: dict[str, CaseMetric] = {
    "lesion_dice": CaseMetric(
        "lesion_dice", True, _lesion_dice("seg"), "BraTS 2026 lesion-wise Dice per label"
    ),
    "lesion_f1": CaseMetric(
        "lesion_f1", True, _lesion_f1, "lesion F1 (recognition quality) per label"
    ),
    **{name: _preset_metric(preset) for name, preset in PRESETS.items()},
}
#: Every registered metric by name (read-only view; add with :func:`register_metric`).
METRIC_REGISTRY: Mapping[str, CaseMetric] = _REGISTRY


def register_metric(metric: CaseMetric) -> None:
    """Add a metric to the registry.

    Raises:
        ValueError: If the name is taken.
    """
    if metric.name in _REGISTRY:
        raise ValueError(f"metric name {metric.name!r} is registered already; choose another.")
    _REGISTRY[metric.name] = metric


def get_metric(name: str) -> CaseMetric:
    """The registered metric ``name``.

    Raises:
        ValueError: For an unknown name (one line listing the known ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"metric must be one of {', '.join(_REGISTRY)}; got {name!r}.")
    return _REGISTRY[name]
