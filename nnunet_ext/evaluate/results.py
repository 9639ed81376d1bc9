"""What :func:`~nnunet_ext.evaluate.evaluate_folder` returns, and its JSON form.

Per case (:class:`CaseResult`) and per label (:class:`LabelSummary`) results, gathered in an
:class:`Evaluation` whose :meth:`~Evaluation.to_json` is the ``summary.json`` that
``nnunet-ext evaluate --json`` writes (with the default convention, nnU-Net's layout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.evaluate.measures import COLUMNS, DEFAULT_METRICS, column_keys
from nnunet_ext.evaluate.metrics import COUNT_FIELDS, N_REF, LabelOrRegion, label_key

__all__ = ["CaseResult", "Evaluation", "LabelSummary"]


@dataclass(frozen=True)
class CaseResult:
    """Counts and metrics of one case.

    Attributes:
        case: Case identifier.
        reference_file: The reference label file.
        prediction_file: The predicted label file.
        counts: ``(L, 6)`` int64 counts, columns :data:`~nnunet_ext.evaluate.metrics.COUNT_FIELDS`.
        dice: ``(L,)`` Dice of this case: NaN only where undefined (both empty, policy
            ``"nan"``). Under ``"skip"`` a case with an empty reference keeps its per-case Dice
            (0 with false positives) and is only left out of the label's mean.
        iou: ``(L,)`` IoU under the chosen policy.
        values: Further metrics (value key such as ``"hd95"``) to ``(L,)`` values, after the
            empty-case convention; NaN where undefined.
    """

    case: str
    reference_file: Path
    prediction_file: Path
    counts: NDArray[np.int64]
    dice: NDArray[np.float64]
    iou: NDArray[np.float64]
    values: dict[str, NDArray[np.float64]] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelSummary:
    """Mean metrics of one label or region over the evaluated cases.

    Attributes:
        label: The label value or region.
        name: Its name in ``dataset.json`` (or the key when unknown).
        dice: Mean Dice over the cases counted (NaN if none).
        iou: Mean IoU.
        means: Mean of every count column (as nnU-Net's ``summary.json`` reports them).
        num_cases: Cases evaluated.
        num_in_mean: Cases that entered the Dice mean under the policy.
        num_empty_reference: Cases whose reference has no voxel of the label.
        num_empty_prediction: Cases whose prediction has no voxel of the label.
        num_both_empty: Cases where both are empty.
        values: Further metrics: value key to the mean over the cases where it is defined.
        num_undefined: Value key to the number of cases where it is undefined (NaN).
        score: This label's score under the score file, if one was given.
    """

    label: LabelOrRegion
    name: str
    dice: float
    iou: float
    means: dict[str, float]
    num_cases: int
    num_in_mean: int
    num_empty_reference: int
    num_empty_prediction: int
    num_both_empty: int
    values: dict[str, float] = field(default_factory=dict)
    num_undefined: dict[str, int] = field(default_factory=dict)
    score: float | None = None


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`~nnunet_ext.evaluate.evaluate_folder`.

    Attributes:
        cases: Per-case results, sorted by case.
        labels: Per-label summaries, in ``label_ids`` order.
        foreground_dice: Mean of the per-label mean Dice (nnU-Net's ``foreground_mean``).
        foreground_iou: Mean of the per-label mean IoU.
        empty: The empty-mask policy used.
        ignore_label: Reference value left out of the counts, if any.
        label_source: Where the labels came from (a ``dataset.json`` path, ``"--labels"``, ...).
        missing_predictions: Reference cases without a prediction (only with ``allow_missing``).
        extra_predictions: Predicted cases without a reference (only with ``allow_missing``).
        metrics: The metric names evaluated (``--metrics``).
        convention: The empty-case convention of the further metrics.
        nsd_tolerance: Label key to NSD tolerance in mm (when ``nsd`` is evaluated).
        nsd_definition: ``"voxel"``, ``"surfel"`` or ``"panoptica"``.
        score: The score file's result, if one was given.
        score_spec: The score file's content.
    """

    cases: list[CaseResult]
    labels: list[LabelSummary]
    foreground_dice: float
    foreground_iou: float
    empty: str
    ignore_label: int | None
    label_source: str
    missing_predictions: list[str] = field(default_factory=list)
    extra_predictions: list[str] = field(default_factory=list)
    metrics: tuple[str, ...] = DEFAULT_METRICS
    convention: str = "nan"
    nsd_tolerance: dict[str, float] = field(default_factory=dict)
    nsd_definition: str = "voxel"
    score: float | None = None
    score_spec: dict[str, Any] | None = None

    @property
    def value_keys(self) -> tuple[str, ...]:
        """Keys of the further metrics (beyond Dice and IoU), in output order."""
        return tuple(k for k in column_keys(self.metrics) if k not in ("dice", "iou"))

    @property
    def is_default(self) -> bool:
        """Whether only today's metrics and conventions were used (output as before)."""
        return (
            self.metrics == DEFAULT_METRICS and self.convention == "nan" and self.score_spec is None
        )

    def case_values(self, key: str) -> NDArray[np.float64]:
        """Per-case values of a column as they enter each label's mean (NaN: left out).

        Under ``empty="skip"`` (with the default convention) a case whose reference lacks the
        label keeps its per-case Dice and IoU in :attr:`cases` but is left out of the label's
        mean, so it is NaN here; otherwise these are the per-case values.

        Args:
            key: ``"dice"``, ``"iou"`` or a key of :attr:`value_keys` (``"hd95"``...).

        Returns:
            ``(cases, labels)`` float64 values: ``nan_mean`` of a column is the label's mean.
        """
        if key not in ("dice", "iou", *self.value_keys):
            raise ValueError(
                f"key must be dice, iou or one of {', '.join(self.value_keys) or 'nothing else'} "
                f"(the metrics evaluated); got {key!r}."
            )
        rows = [
            getattr(case, key) if key in ("dice", "iou") else case.values[key]
            for case in self.cases
        ]
        values = np.array(rows, dtype=np.float64).reshape(len(self.cases), len(self.labels))
        if key in ("dice", "iou") and self.empty == "skip" and self.convention == "nan":
            no_reference = np.array(
                [case.counts[:, N_REF] == 0 for case in self.cases], dtype=bool
            ).reshape(values.shape)
            values[no_reference] = np.nan
        return values

    def to_json(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict (NaN stays float; use ``io.write_json``)."""
        per_case = [self._case_json(case) for case in self.cases]
        means = {label_key(label.label): self._label_json(label) for label in self.labels}
        summary: dict[str, Any] = {
            "schema_version": 1,
            "conventions": {
                "empty": self.empty,
                "ignore_label": self.ignore_label,
                "label_source": self.label_source,
                "mean": "per label: mean over cases, NaN (null) values left out; "
                "foreground_mean: mean of the per-label means",
            },
            "foreground_mean": {"Dice": self.foreground_dice, "IoU": self.foreground_iou},
            "mean": means,
            "missing_predictions": list(self.missing_predictions),
            "extra_predictions": list(self.extra_predictions),
            "metric_per_case": per_case,
        }
        if not self.is_default:
            summary["metrics"] = list(self.metrics)
            summary["conventions"]["convention"] = self.convention
            summary["conventions"]["spacing"] = "each reference file's header"
            summary["conventions"]["surface"] = (
                "voxels with a face neighbour (6-connectivity in 3D) outside the mask or image"
            )
            if "nsd" in self.metrics:
                summary["conventions"]["nsd_tolerance_mm"] = dict(self.nsd_tolerance)
                summary["conventions"]["nsd_definition"] = self.nsd_definition
            summary["foreground_mean"].update(
                {
                    COLUMNS[k]: _foreground_mean(
                        [s.values[k] for s in self.labels], [s.label for s in self.labels]
                    )
                    for k in self.value_keys
                }
            )
        if self.score_spec is not None:
            summary["score"] = {"value": self.score, "spec": self.score_spec}
        return summary

    def _case_json(self, case: CaseResult) -> dict[str, Any]:
        """One entry of ``metric_per_case``: the case's files and its metrics per label."""
        metrics: dict[str, dict[str, Any]] = {}
        for i, label in enumerate(self.labels):
            entry: dict[str, Any] = {"Dice": float(case.dice[i]), "IoU": float(case.iou[i])}
            entry.update({name: int(case.counts[i, j]) for j, name in enumerate(COUNT_FIELDS)})
            entry.update({COLUMNS[k]: float(case.values[k][i]) for k in self.value_keys})
            metrics[label_key(label.label)] = entry
        return {
            "case": case.case,
            "reference_file": str(case.reference_file),
            "prediction_file": str(case.prediction_file),
            "metrics": metrics,
        }

    def _label_json(self, label: LabelSummary) -> dict[str, Any]:
        """One entry of ``mean``: the label's means, case counts and further metrics."""
        entry: dict[str, Any] = {
            "name": label.name,
            "Dice": label.dice,
            "IoU": label.iou,
            **label.means,
            "num_cases": label.num_cases,
            "num_in_mean": label.num_in_mean,
            "num_empty_reference": label.num_empty_reference,
            "num_empty_prediction": label.num_empty_prediction,
            "num_both_empty": label.num_both_empty,
        }
        if not self.is_default:
            entry.update({COLUMNS[k]: label.values[k] for k in self.value_keys})
            entry["num_undefined"] = {COLUMNS[k]: label.num_undefined[k] for k in self.value_keys}
            if label.score is not None:
                entry["score"] = label.score
        return entry


def _foreground_mean(values: Sequence[float], label_ids: Sequence[LabelOrRegion]) -> float:
    """Mean of the per-label means except label 0, as nnU-Net (NaN if any is NaN)."""
    kept = [v for v, label in zip(values, label_ids, strict=True) if label != 0]
    return float(np.mean(kept)) if kept else math.nan
