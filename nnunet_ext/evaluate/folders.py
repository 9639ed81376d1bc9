"""Evaluate a folder of predicted label maps against a folder of references.

Per case and label (or region): Dice, IoU, TP/FP/FN/TN, reference and predicted voxel counts,
from one confusion-counting pass per case (:func:`nnunet_ext.evaluate.metrics.confusion_matrix`),
in parallel over cases. Per label: the mean over cases under an explicit empty-mask convention,
and how many cases had an empty reference or an empty prediction. With the default convention
the numbers equal those of nnU-Net's ``compute_metrics_on_folder`` (``summary.json``).

On request (``metrics``) also the boundary metrics of :mod:`nnunet_ext.evaluate.surface` and the
volume difference, in mm with the spacing of each reference file's header, computed in the same
worker that counts the case (one read per case); empty cases follow a named convention of
:mod:`nnunet_ext.evaluate.conventions`, and a score file (:mod:`nnunet_ext.evaluate.score`)
combines the per-label metrics into one number.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from nnunet_ext._parallel import Executor

from nnunet_ext.evaluate.measures import (
    COLUMNS,
    DEFAULT_METRICS,
    apply_convention,
    boundary_values,
    column_keys,
    nan_mean,
    parse_metrics,
    volume_values,
)
from nnunet_ext.evaluate.metrics import (
    COUNT_FIELDS,
    FN,
    FP,
    N_PRED,
    N_REF,
    TP,
    LabelOrRegion,
    confusion_matrix,
    counts_from_matrix,
    dice_from_counts,
    iou_from_counts,
    label_key,
)
from nnunet_ext.evaluate.score import ScoreSpec

__all__ = [
    "EMPTY_POLICIES",
    "CaseResult",
    "Evaluation",
    "LabelSummary",
    "evaluate_folder",
    "find_dataset_json",
    "label_ids_from_dataset_json",
    "summarise",
]

logger = logging.getLogger(__name__)

#: Empty-mask policies of :func:`evaluate_folder`.
#:
#: * ``"nan"`` (nnU-Net): Dice/IoU are NaN when reference and prediction are both empty; such
#:   cases are left out of the label's mean.
#: * ``"one"``: they score 1 and count in the mean (MONAI ``DiceMetric(ignore_empty=False)``).
#: * ``"skip"``: every case whose *reference* lacks the label is left out of that label's mean,
#:   also when the prediction has false positives there (Dice measured where the structure is;
#:   MONAI ``DiceMetric(ignore_empty=True)``). Both tested against MONAI
#:   (``tests/evaluate/test_empty_vs_monai.py``).
EMPTY_POLICIES: tuple[str, ...] = ("nan", "one", "skip")

_NUMERIC_LABEL = re.compile(r"^\s*\(?\s*\d+\s*(,\s*\d+\s*)*,?\s*\)?\s*$")


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
    """The result of :func:`evaluate_folder`.

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

    def to_json(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict (NaN stays float; use ``io.write_json``)."""
        per_case = []
        for case in self.cases:
            metrics: dict[str, dict[str, Any]] = {}
            for i, label in enumerate(self.labels):
                entry: dict[str, Any] = {"Dice": float(case.dice[i]), "IoU": float(case.iou[i])}
                entry.update({name: int(case.counts[i, j]) for j, name in enumerate(COUNT_FIELDS)})
                entry.update({COLUMNS[k]: float(case.values[k][i]) for k in self.value_keys})
                metrics[label_key(label.label)] = entry
            per_case.append(
                {
                    "case": case.case,
                    "reference_file": str(case.reference_file),
                    "prediction_file": str(case.prediction_file),
                    "metrics": metrics,
                }
            )
        means = {}
        for label in self.labels:
            means[label_key(label.label)] = {
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
                means[label_key(label.label)].update(
                    {COLUMNS[k]: label.values[k] for k in self.value_keys}
                )
                means[label_key(label.label)]["num_undefined"] = {
                    COLUMNS[k]: label.num_undefined[k] for k in self.value_keys
                }
                if label.score is not None:
                    means[label_key(label.label)]["score"] = label.score
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


def label_ids_from_dataset_json(
    dataset_json: Mapping[str, Any], *, source: str = "dataset.json"
) -> tuple[list[LabelOrRegion], dict[str, str], int | None]:
    """Labels or regions nnU-Net evaluates for a ``dataset.json``, their names, the ignore label.

    As nnU-Net's ``LabelManager``: a dataset has regions when a label maps to a list of more than
    one value; then every non-background, non-ignore entry is a region, in file order. Otherwise
    the foreground labels are the sorted distinct values other than 0 and ``ignore``.

    Args:
        dataset_json: The loaded ``dataset.json``.
        source: Its path, for error messages.

    Returns:
        ``(label_ids, names, ignore_label)`` with ``names`` keyed by :func:`label_key`.

    Raises:
        ValueError: If ``labels`` is missing or malformed.

    Examples:
        >>> label_ids_from_dataset_json({"labels": {"background": 0, "b": 2, "a": 1}})
        ([1, 2], {'1': 'a', '2': 'b'}, None)
        >>> label_ids_from_dataset_json(
        ...     {"labels": {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3},
        ...      "regions_class_order": [1, 2]})
        ([(1, 2), 2], {'(1, 2)': 'whole', '2': 'core'}, 3)
    """
    from nnunet_ext.io import LabelSpec

    spec = LabelSpec.from_dataset_json(dataset_json, source=source)
    names: dict[str, str] = {}
    for name, value in spec.foreground.items():
        names.setdefault(label_key(value), name)
    label_ids: list[LabelOrRegion] = list(spec.defined)
    return label_ids, {label_key(v): names[label_key(v)] for v in label_ids}, spec.ignore_label


def find_dataset_json(prediction_dir: Path, reference_dir: Path) -> Path | None:
    """Find the ``dataset.json`` that describes a prediction/reference pair of folders.

    Looked for, in order: in the prediction folder (``nnUNetv2_predict`` output), two levels up
    from it (a model folder above ``fold_X/validation``), in the reference folder and in its
    parent (``labelsTr``, ``gt_segmentations``).

    Returns:
        The first file found, or ``None``.
    """
    for candidate in (
        prediction_dir / "dataset.json",
        prediction_dir.parent.parent / "dataset.json",
        reference_dir / "dataset.json",
        reference_dir.parent / "dataset.json",
    ):
        if candidate.is_file():
            return candidate
    return None


CaseJob = tuple[str, str, list[LabelOrRegion], int | None, tuple[str, ...], list[float]]
CaseOutput = tuple[
    NDArray[np.int64],
    tuple[float, ...],
    tuple[float, ...],
    dict[str, NDArray[np.float64]],
    tuple[int, ...],
]


def _count_case(job: CaseJob) -> CaseOutput:
    """Worker: read one reference/prediction pair, count and measure (top-level for spawn).

    Returns the counts, both spacings (SimpleITK order), the boundary metrics (NaN where a
    mask is empty; in mm with the reference's spacing) and the image shape.
    """
    from nnunet_ext.io import read_labels

    reference_file, prediction_file, label_ids, ignore_label, metrics, tolerances = job
    reference = read_labels(reference_file)
    prediction = read_labels(prediction_file)
    if reference.array.shape != prediction.array.shape:
        raise ValueError(
            f"{prediction_file}: shape {prediction.array.shape} must equal the reference's "
            f"{reference.array.shape} ({reference_file}). Predict in the reference geometry."
        )
    matrix = confusion_matrix(reference.array, prediction.array, ignore_label=ignore_label)
    needed = max((max(v) if isinstance(v, tuple) else v) for v in label_ids) + 1
    if needed > matrix.shape[0]:
        padded = np.zeros((needed, needed), dtype=np.int64)
        padded[: matrix.shape[0], : matrix.shape[1]] = matrix
        matrix = padded
    boundary = boundary_values(
        reference.array,
        prediction.array,
        label_ids,
        tuple(reversed(reference.spacing)),
        metrics,
        nsd_tolerance=tolerances,
        ignore_label=ignore_label,
    )
    return (
        counts_from_matrix(matrix, label_ids),
        reference.spacing,
        prediction.spacing,
        boundary,
        tuple(int(n) for n in reference.array.shape),
    )


def _mean(values: NDArray[np.float64]) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


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
    mean_dice = np.array([_mean(dice_for_mean[:, i]) for i in range(num_labels)], dtype=np.float64)
    mean_iou = np.array([_mean(iou_for_mean[:, i]) for i in range(num_labels)], dtype=np.float64)
    in_mean = (~np.isnan(dice_for_mean)).sum(axis=0).astype(np.float64)
    return {
        "dice": dice,
        "iou": iou,
        "mean_dice": mean_dice,
        "mean_iou": mean_iou,
        "in_mean": in_mean,
    }


def _resolve_labels(
    labels: Sequence[str | int | Sequence[int]] | None,
    dataset_json: Mapping[str, Any] | None,
    source: str,
) -> tuple[list[LabelOrRegion], dict[str, str]]:
    if dataset_json is not None:
        known, names, _ = label_ids_from_dataset_json(dataset_json, source=source)
        if labels is None:
            return known, names
        from nnunet_ext.io import LabelSpec

        spec = LabelSpec.from_dataset_json(dataset_json, source=source)
        requested = [
            tuple(label) if isinstance(label, Sequence) and not isinstance(label, str) else label
            for label in labels
        ]
        chosen_known: list[LabelOrRegion] = list(spec.resolve_all(requested))
        return chosen_known, {
            label_key(v): names.get(label_key(v), label_key(v)) for v in chosen_known
        }
    by_name: dict[str, LabelOrRegion] = {}
    names = {}
    if labels is None:
        return [], names
    chosen: list[LabelOrRegion] = []
    for label in labels:
        value: LabelOrRegion
        if isinstance(label, str) and _NUMERIC_LABEL.match(label):
            parts = [int(p) for p in label.strip().strip("()").replace(" ", "").split(",") if p]
            value = tuple(parts) if "," in label else parts[0]
        elif isinstance(label, str):
            if label not in by_name:
                raise ValueError(
                    f"labels: {label!r} is not a label name in {source}; known: {sorted(by_name)}. "
                    "Pass values (1 2), regions (1,2) or names from dataset.json."
                )
            value = by_name[label]
        elif isinstance(label, int):
            value = label
        else:
            value = tuple(int(v) for v in label)
        chosen.append(value)
        names.setdefault(label_key(value), label_key(value))
    return chosen, names


def evaluate_folder(
    prediction_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str],
    *,
    labels: Sequence[str | int | Sequence[int]] | None = None,
    empty: str = "nan",
    allow_missing: bool = False,
    dataset_json: str | os.PathLike[str] | None = None,
    ignore_label: int | None = None,
    file_ending: str | None = None,
    num_workers: int = 1,
    metrics: Sequence[str] = DEFAULT_METRICS,
    nsd_tolerance: float | Mapping[str, float] = 1.0,
    convention: str = "nan",
    score: str | os.PathLike[str] | ScoreSpec | None = None,
    executor: Executor | None = None,
) -> Evaluation:
    """Evaluate every predicted label file against the reference of the same case.

    Args:
        prediction_dir: Folder of predicted label maps (``CASE<file_ending>``).
        reference_dir: Folder of reference label maps with the same names.
        labels: Labels to score: values (``1``, ``"2"``), regions (``(1, 2)``, ``"1,2"``) or names
            from ``dataset.json``. Default: nnU-Net's foreground labels/regions of ``dataset.json``.
        empty: Empty-mask policy, one of :data:`EMPTY_POLICIES` (default nnU-Net's ``"nan"``).
        allow_missing: Evaluate the cases present in both folders and list the others, instead
            of failing when a reference case has no prediction (or the reverse).
        dataset_json: The ``dataset.json`` giving labels, regions, ignore label and file ending;
            default: found by :func:`find_dataset_json`.
        ignore_label: Reference value left out of all counts; default that of ``dataset.json``.
        file_ending: Label file ending; default that of ``dataset.json``, else ``.nii.gz``.
        num_workers: Processes reading and counting cases (spawn pool when > 1).
        metrics: Metric names of :data:`nnunet_ext.evaluate.measures.METRICS`; Dice and IoU
            are always computed. Default: Dice and IoU only (the output is as before).
        nsd_tolerance: NSD tolerance in mm, one for all labels or per label key (``"1"``,
            ``"(1, 2)"``; a ``"*"`` entry is the default for labels not listed).
        convention: Empty-case convention, a name of
            :data:`nnunet_ext.evaluate.conventions.CONVENTIONS`; other than ``"nan"`` it also
            sets Dice/IoU of empty cases, so ``empty`` must then stay ``"nan"``.
        score: A score file (path or parsed) combining per-label metrics into one number; the
            metrics it needs are added to ``metrics``.
        executor: Where the cases run (default: local, ``num_workers`` processes).

    Returns:
        The per-case and per-label results.

    Raises:
        NotADirectoryError: If a folder does not exist.
        ValueError: For missing predictions (unless ``allow_missing``), no labels, bad options,
            or label maps of different shapes.
    """
    from nnunet_ext._parallel import map_cases
    from nnunet_ext.evaluate.score import load_score

    _check_empty_and_convention(empty, convention)
    # a path is loaded; anything else is taken as a parsed spec (no isinstance: doctest
    # collection may import the score module twice, giving two ScoreSpec classes)
    score_spec = load_score(score) if isinstance(score, (str, os.PathLike)) else score
    wanted = parse_metrics([*metrics, *(score_spec.metrics if score_spec else ())])
    pred_root, ref_root = Path(prediction_dir), Path(reference_dir)
    for name, folder in (("prediction folder", pred_root), ("reference folder", ref_root)):
        if not folder.is_dir():
            raise NotADirectoryError(f"{name} must be an existing folder; got {folder}.")
    label_ids, names, ignore_label, ending, source = _labels_and_ending(
        labels, dataset_json, pred_root, ref_root, ignore_label, file_ending
    )
    predictions, references, cases, missing, extra = _matched_files(
        pred_root, ref_root, ending, allow_missing
    )
    keys = [label_key(label) for label in label_ids]
    tolerances = _tolerances(nsd_tolerance, keys) if "nsd" in wanted else [1.0] * len(keys)
    if score_spec is not None:
        score_spec.check_labels(keys)
    jobs: list[CaseJob] = [
        (str(references[c]), str(predictions[c]), label_ids, ignore_label, wanted, tolerances)
        for c in cases
    ]
    counted = map_cases(
        _count_case, jobs, num_workers=num_workers, desc="evaluate", executor=executor
    )
    _warn_spacing(cases, counted)
    stacked = np.stack([c[0] for c in counted]).astype(np.int64)
    scores = summarise(stacked, empty=empty)
    value_keys = [k for k in column_keys(wanted) if k not in ("dice", "iou")]
    per_key = _case_values(counted, scores, wanted, value_keys, convention, len(keys))
    label_scores: NDArray[np.float64] | None = None
    total_score: float | None = None
    if score_spec is not None:
        inputs = {"dice": scores["dice"], "iou": scores["iou"], **per_key}
        label_scores = score_spec.label_scores(inputs)
        total_score = score_spec.combine(label_scores, keys)

    case_results = _case_results(cases, references, predictions, stacked, scores, per_key)
    summaries = _label_summaries(
        label_ids, names, stacked, scores, per_key, value_keys, label_scores
    )
    return Evaluation(
        cases=case_results,
        labels=summaries,
        foreground_dice=_foreground_mean([s.dice for s in summaries], label_ids),
        foreground_iou=_foreground_mean([s.iou for s in summaries], label_ids),
        empty=empty,
        ignore_label=ignore_label,
        label_source="labels argument" if labels is not None else source,
        missing_predictions=missing,
        extra_predictions=extra,
        metrics=wanted,
        convention=convention,
        nsd_tolerance=dict(zip(keys, tolerances, strict=True)) if "nsd" in wanted else {},
        score=total_score,
        score_spec=None if score_spec is None else score_spec.to_dict(),
    )


def _check_empty_and_convention(empty: str, convention: str) -> None:
    from nnunet_ext.evaluate.conventions import get_convention

    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {', '.join(EMPTY_POLICIES)}; got {empty!r}.")
    get_convention(convention)
    if convention != "nan" and empty != "nan":
        raise ValueError(
            f"empty {empty!r} and convention {convention!r} both set Dice for empty cases; "
            "the convention fixes it; empty must stay 'nan'."
        )


def _labels_and_ending(
    labels: Sequence[str | int | Sequence[int]] | None,
    dataset_json: str | os.PathLike[str] | None,
    pred_root: Path,
    ref_root: Path,
    ignore_label: int | None,
    file_ending: str | None,
) -> tuple[list[LabelOrRegion], dict[str, str], int | None, str, str]:
    """Labels to score, their names, the ignore label and file ending, and where they came from."""
    from nnunet_ext.io import load_json_object

    json_path = (
        Path(dataset_json) if dataset_json is not None else find_dataset_json(pred_root, ref_root)
    )
    loaded = load_json_object(json_path) if json_path is not None else None
    source = str(json_path) if json_path is not None else "(no dataset.json)"
    label_ids, names = _resolve_labels(labels, loaded, source)
    if not label_ids:
        raise ValueError(
            f"no labels to evaluate: no dataset.json found next to {pred_root} or {ref_root}, and "
            "no labels given. Pass labels (e.g. [1, 2]) or dataset_json."
        )
    if ignore_label is None and loaded is not None:
        ignore_label = label_ids_from_dataset_json(loaded, source=source)[2]
    ending = file_ending or (
        str(loaded.get("file_ending")) if loaded and loaded.get("file_ending") else ".nii.gz"
    )
    return label_ids, names, ignore_label, ending, source


def _case_results(
    cases: Sequence[str],
    references: Mapping[str, Path],
    predictions: Mapping[str, Path],
    stacked: NDArray[np.int64],
    scores: Mapping[str, NDArray[np.float64]],
    per_key: Mapping[str, NDArray[np.float64]],
) -> list[CaseResult]:
    return [
        CaseResult(
            case=case,
            reference_file=references[case],
            prediction_file=predictions[case],
            counts=stacked[i],
            dice=scores["dice"][i],
            iou=scores["iou"][i],
            values={k: v[i] for k, v in per_key.items()},
        )
        for i, case in enumerate(cases)
    ]


def _matched_files(
    pred_root: Path, ref_root: Path, ending: str, allow_missing: bool
) -> tuple[dict[str, Path], dict[str, Path], list[str], list[str], list[str]]:
    """Predictions and references by case, the cases in both, and the unmatched ones."""
    from nnunet_ext.io import list_case_files

    predictions, _ = list_case_files(pred_root, ending)
    references, _ = list_case_files(ref_root, ending)
    if not references:
        raise ValueError(
            f"reference folder {ref_root} must hold label files ending in {ending!r}; found none."
        )
    missing = sorted(set(references) - set(predictions))
    extra = sorted(set(predictions) - set(references))
    if (missing or extra) and not allow_missing:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} reference case(s) have no prediction in {pred_root}: "
                f"{_shorten(missing)}"
            )
        if extra:
            parts.append(
                f"{len(extra)} prediction(s) have no reference in {ref_root}: {_shorten(extra)}"
            )
        raise ValueError(
            "; ".join(parts)
            + ". Predict the missing cases, or pass allow_missing=True to evaluate "
            "only the cases present in both folders."
        )
    cases = sorted(set(references) & set(predictions))
    if not cases:
        raise ValueError(
            f"no case is present in both {pred_root} and {ref_root} (ending {ending!r})."
        )
    if missing:
        logger.warning(
            "%d reference case(s) have no prediction and are left out: %s",
            len(missing),
            _shorten(missing),
        )
    return predictions, references, cases, missing, extra


def _warn_spacing(cases: Sequence[str], counted: Sequence[Any]) -> None:
    """Warn for every case whose prediction spacing differs from the reference's."""
    for case, (_, ref_spacing, pred_spacing, _, _) in zip(cases, counted, strict=True):
        if not np.allclose(ref_spacing, pred_spacing, rtol=1e-4, atol=1e-6):
            logger.warning(
                "%s: prediction spacing %s differs from the reference's %s",
                case,
                pred_spacing,
                ref_spacing,
            )


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


def _tolerances(nsd_tolerance: float | Mapping[str, float], keys: Sequence[str]) -> list[float]:
    """One NSD tolerance per label key, from one value or a per-label mapping."""
    if isinstance(nsd_tolerance, Mapping):
        unknown = sorted(set(nsd_tolerance) - set(keys) - {"*"})
        if unknown:
            raise ValueError(
                f"nsd_tolerance names label(s) {unknown} that are not evaluated; "
                f"evaluated: {list(keys)}."
            )
        out = []
        for key in keys:
            value = nsd_tolerance.get(key, nsd_tolerance.get("*"))
            if value is None:
                raise ValueError(
                    f"nsd_tolerance gives no tolerance for label {key}; add one for {key!r} "
                    "or one value for all labels."
                )
            out.append(float(value))
    else:
        out = [float(nsd_tolerance)] * len(keys)
    for key, value in zip(keys, out, strict=True):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"nsd_tolerance for label {key} must be a finite number >= 0 (mm); got {value}."
            )
    return out


def _foreground_mean(values: Sequence[float], label_ids: Sequence[LabelOrRegion]) -> float:
    """Mean of the per-label means except label 0, as nnU-Net (NaN if any is NaN)."""
    kept = [v for v, label in zip(values, label_ids, strict=True) if label != 0]
    return float(np.mean(kept)) if kept else math.nan


def _shorten(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
