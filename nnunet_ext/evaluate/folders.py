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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import Executor, map_cases
from nnunet_ext.evaluate.conventions import get_convention
from nnunet_ext.evaluate.labels import _labels_and_ending
from nnunet_ext.evaluate.measures import (
    DEFAULT_METRICS,
    boundary_values,
    column_keys,
    parse_metrics,
)
from nnunet_ext.evaluate.metrics import (
    LabelOrRegion,
    confusion_matrix,
    counts_from_matrix,
    label_key,
)
from nnunet_ext.evaluate.results import CaseResult, Evaluation, _foreground_mean
from nnunet_ext.evaluate.score import ScoreSpec, load_score
from nnunet_ext.evaluate.summary import EMPTY_POLICIES, _case_values, _label_summaries, summarise
from nnunet_ext.evaluate.surface import NSD_DEFINITIONS
from nnunet_ext.io import list_case_files, read_labels

__all__ = ["evaluate_folder"]

logger = logging.getLogger(__name__)

CaseJob = tuple[str, str, list[LabelOrRegion], int | None, tuple[str, ...], list[float], str]
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
    reference_file, prediction_file, label_ids, ignore_label, metrics, tolerances, nsd_def = job
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
        nsd_definition=nsd_def,
    )
    return (
        counts_from_matrix(matrix, label_ids),
        reference.spacing,
        prediction.spacing,
        boundary,
        tuple(int(n) for n in reference.array.shape),
    )


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
    nsd_definition: str = "voxel",
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
            default: found by :func:`~nnunet_ext.evaluate.labels.find_dataset_json`.
        ignore_label: Reference value left out of all counts; default that of ``dataset.json``.
        file_ending: Label file ending; default that of ``dataset.json``, else ``.nii.gz``.
        num_workers: Processes reading and counting cases (spawn pool when > 1).
        metrics: Metric names of :data:`nnunet_ext.evaluate.measures.METRICS`; Dice and IoU
            are always computed. Default: Dice and IoU only (the output is as before).
        nsd_tolerance: NSD tolerance in mm, one for all labels or per label key (``"1"``,
            ``"(1, 2)"``; a ``"*"`` entry is the default for labels not listed).
        nsd_definition: ``"voxel"`` (MONAI, default), ``"surfel"`` (DeepMind's
            ``surface-distance``) or ``"panoptica"``; see
            :data:`nnunet_ext.evaluate.surface.NSD_DEFINITIONS`.
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
    _check_empty_and_convention(empty, convention, nsd_definition)
    # a path is loaded; anything else is taken as a parsed spec (no isinstance: doctest
    # collection may import the score module twice, giving two ScoreSpec classes)
    score_spec = load_score(score) if isinstance(score, (str, os.PathLike)) else score
    wanted = parse_metrics([*metrics, *(score_spec.metrics if score_spec else ())])
    pred_root, ref_root = Path(prediction_dir), Path(reference_dir)
    _check_folders(pred_root, ref_root)
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
        (
            str(references[c]),
            str(predictions[c]),
            label_ids,
            ignore_label,
            wanted,
            tolerances,
            nsd_definition,
        )
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
    label_scores, total_score = _score(score_spec, scores, per_key, keys)
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
        nsd_definition=nsd_definition,
        score=total_score,
        score_spec=None if score_spec is None else score_spec.to_dict(),
    )


def _check_folders(pred_root: Path, ref_root: Path) -> None:
    for name, folder in (("prediction folder", pred_root), ("reference folder", ref_root)):
        if not folder.is_dir():
            raise NotADirectoryError(f"{name} must be an existing folder; got {folder}.")


def _score(
    score_spec: ScoreSpec | None,
    scores: Mapping[str, NDArray[np.float64]],
    per_key: Mapping[str, NDArray[np.float64]],
    keys: Sequence[str],
) -> tuple[NDArray[np.float64] | None, float | None]:
    """Per-label scores and the total under the score file; ``(None, None)`` without one."""
    if score_spec is None:
        return None, None
    inputs = {"dice": scores["dice"], "iou": scores["iou"], **per_key}
    label_scores = score_spec.label_scores(inputs)
    return label_scores, score_spec.combine(label_scores, keys)


def _check_empty_and_convention(empty: str, convention: str, nsd_definition: str) -> None:
    if nsd_definition not in NSD_DEFINITIONS:
        raise ValueError(
            f"nsd_definition must be one of {', '.join(NSD_DEFINITIONS)}; got {nsd_definition!r}."
        )
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {', '.join(EMPTY_POLICIES)}; got {empty!r}.")
    get_convention(convention)
    if convention != "nan" and empty != "nan":
        raise ValueError(
            f"empty {empty!r} and convention {convention!r} both set Dice for empty cases; "
            "the convention fixes it; empty must stay 'nan'."
        )


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


def _shorten(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
