"""``evaluate --preset NAME``: a prediction folder scored as the challenge's leaderboard does.

Every reference case is scored (one read per case, in the evaluate workers): a case without
prediction gets the preset's missing-case values and is listed, as the official scorers do;
predictions without reference are listed and left out. Per column, the mean over cases of the
defined values (NaN left out, as pandas' ``mean`` in ``brats-parse-metrics``; an infinite value
keeps the mean infinite). The preset's score: the mean of its score columns' means.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_ext._parallel import Executor, map_cases
from nnunet_ext._stats import nan_mean
from nnunet_ext.evaluate.challenge import missing_values, preset_case_values
from nnunet_ext.evaluate.presets import Preset, get_preset
from nnunet_ext.io import atomic_path, list_case_files, read_labels, write_json

__all__ = ["PresetEvaluation", "evaluate_preset", "format_preset_table", "write_preset_evaluation"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PresetEvaluation:
    """Per-case values and means of a folder under a preset.

    Attributes:
        preset: The preset.
        cases: Case names (every reference case), sorted.
        rows: Per case, column to value.
        missing_predictions: Reference cases without prediction (scored with the missing values).
        extra_predictions: Predictions without reference (left out).
        means: Column to the mean over cases (NaN values left out).
        score: The preset's score (mean of its score columns' means; higher is better).
    """

    preset: Preset
    cases: list[str]
    rows: list[dict[str, float]]
    missing_predictions: list[str] = field(default_factory=list)
    extra_predictions: list[str] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    score: float = math.nan

    def to_json(self) -> dict[str, Any]:
        """The JSON summary (infinite values as the string ``"inf"``; NaN as ``null``)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "preset": {
                "name": self.preset.name,
                "version": self.preset.version,
                "source": self.preset.source,
                "score_columns": list(self.preset.score_keys),
            },
            "score": _json_number(self.score),
            "mean": {k: _json_number(v) for k, v in self.means.items()},
            "missing_predictions": list(self.missing_predictions),
            "extra_predictions": list(self.extra_predictions),
            "metric_per_case": [
                {
                    "case": case,
                    "missing": case in self.missing_predictions,
                    "values": {k: _json_number(v) for k, v in row.items()},
                }
                for case, row in zip(self.cases, self.rows, strict=True)
            ],
        }


def _json_number(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


Job = tuple[str, str, str | None]


def _preset_case(job: Job) -> dict[str, float]:
    """Worker: read one case (reference, prediction) and return its preset columns."""
    preset_name, reference_file, prediction_file = job
    preset = get_preset(preset_name)
    reference = read_labels(reference_file)
    if prediction_file is None:
        return missing_values(preset, reference.array, reference.spacing)
    prediction = read_labels(prediction_file)
    if prediction.array.shape != reference.array.shape:
        raise ValueError(
            f"{prediction_file}: shape {prediction.array.shape} must equal the reference's "
            f"{reference.array.shape} ({reference_file}). Predict in the reference geometry."
        )
    return preset_case_values(preset, reference.array, prediction.array, reference.spacing)


def evaluate_preset(
    prediction_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str],
    preset: str | Preset,
    *,
    file_ending: str = ".nii.gz",
    num_workers: int = 1,
    executor: Executor | None = None,
) -> PresetEvaluation:
    """Score every reference case of ``reference_dir`` under a challenge preset.

    Args:
        prediction_dir: Folder of predicted label maps (``CASE<file_ending>``).
        reference_dir: Folder of reference label maps.
        preset: A preset name of :data:`~nnunet_ext.evaluate.presets.PRESETS`, or a preset.
        file_ending: Label file ending.
        num_workers: Processes reading and scoring cases.
        executor: Where the cases run (default: local).

    Returns:
        The per-case values, means and score.

    Raises:
        NotADirectoryError: If a folder does not exist.
        ValueError: For an unknown preset, no reference case, or shapes that differ.
    """
    spec = get_preset(preset) if isinstance(preset, str) else preset
    pred_root, ref_root = Path(prediction_dir), Path(reference_dir)
    for name, folder in (("prediction folder", pred_root), ("reference folder", ref_root)):
        if not folder.is_dir():
            raise NotADirectoryError(f"{name} must be an existing folder; got {folder}.")
    predictions, _ = list_case_files(pred_root, file_ending)
    references, _ = list_case_files(ref_root, file_ending)
    if not references:
        raise ValueError(
            f"reference folder {ref_root} must hold label files ending in {file_ending!r}; "
            "found none."
        )
    cases = sorted(references)
    missing = [c for c in cases if c not in predictions]
    extra = sorted(set(predictions) - set(references))
    if missing:
        logger.warning(
            "%d reference case(s) have no prediction and get the missing-case values: %s",
            len(missing),
            ", ".join(missing[:10]),
        )
    jobs: list[Job] = [
        (spec.name, str(references[c]), str(predictions[c]) if c in predictions else None)
        for c in cases
    ]
    rows = map_cases(
        _preset_case, jobs, num_workers=num_workers, desc="evaluate", executor=executor
    )
    means = _means(rows)
    score = nan_mean(np.array([means.get(k, math.nan) for k in spec.score_keys]), compact=True)
    return PresetEvaluation(spec, cases, rows, missing, extra, means, float(score))


def _means(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = {}
    for column in columns:
        values = np.array([row.get(column, math.nan) for row in rows], dtype=np.float64)
        defined = values[~np.isnan(values)]
        out[column] = float(defined.mean()) if defined.size else math.nan
    return out


def format_preset_table(evaluation: PresetEvaluation) -> str:
    """Means per metric (rows) and region (columns), then the score and the left-out cases."""
    preset = evaluation.preset
    regions = list(preset.regions)
    metrics = list(
        dict.fromkeys(
            column[: -len(region) - 1]
            for column in evaluation.means
            for region in regions
            if column.endswith(f"_{region}") and not column.endswith(f"_std_{region}")
        )
    )
    lines = [["mean over cases", *regions]]
    for metric in metrics:
        values = [evaluation.means.get(f"{metric}_{region}", math.nan) for region in regions]
        lines.append([metric, *("n/a" if math.isnan(v) else f"{v:.4f}" for v in values)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    text += [
        "",
        f"preset {preset.name} ({preset.version}); source: {preset.source}",
        f"score (mean over regions of {', '.join(preset.score_columns)}): {evaluation.score:.4f}",
        f"{len(evaluation.cases)} reference cases; per case and column: --json / --csv",
    ]
    if evaluation.missing_predictions:
        text.append(
            f"{len(evaluation.missing_predictions)} reference case(s) without prediction "
            "scored with the missing-case values"
        )
    if evaluation.extra_predictions:
        text.append(f"{len(evaluation.extra_predictions)} prediction(s) without reference left out")
    return "\n".join(text)


def preset_csv(evaluation: PresetEvaluation) -> str:
    """One row per case (``subject_id`` first, as brats-parse-metrics), then the columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(evaluation.means)
    writer.writerow(["case", *columns])
    for case, row in zip(evaluation.cases, evaluation.rows, strict=True):
        writer.writerow([case, *(_csv_cell(row.get(c, math.nan)) for c in columns)])
    return buffer.getvalue()


def _csv_cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def write_preset_evaluation(
    evaluation: PresetEvaluation,
    output_json: str | os.PathLike[str],
    *,
    output_csv: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Write the JSON summary and the per-case CSV (default ``<stem>_per_case.csv``), atomically."""
    json_path = Path(output_json)
    csv_path = (
        Path(output_csv)
        if output_csv is not None
        else json_path.with_name(f"{json_path.stem}_per_case.csv")
    )
    with atomic_path(csv_path) as tmp:
        tmp.write_text(preset_csv(evaluation), encoding="utf-8")
    write_json(json_path, evaluation.to_json())
    return json_path, csv_path
