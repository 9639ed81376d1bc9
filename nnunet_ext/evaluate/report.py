"""Write and show an evaluation: strict JSON summary, per-case CSV, text table."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from nnunet_ext.evaluate.measures import COLUMNS
from nnunet_ext.evaluate.metrics import COUNT_FIELDS, label_key
from nnunet_ext.evaluate.results import Evaluation
from nnunet_ext.io import atomic_path, write_json

__all__ = ["format_table", "per_case_csv", "write_evaluation"]


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def format_table(evaluation: Evaluation) -> str:
    """Render the per-label summary as a fixed-width text table.

    Columns: label, name, mean Dice and IoU, cases in the mean / evaluated, cases with an empty
    reference, with an empty prediction, and with both empty; then each further metric's mean
    over the cases where it is defined, with ``(n undefined)`` when some are not, and the
    label's score when a score file was given.
    """
    keys = evaluation.value_keys
    has_score = evaluation.score_spec is not None
    header = (
        "label",
        "name",
        "Dice",
        "IoU",
        "in mean",
        "empty ref",
        "empty pred",
        "both empty",
        *(COLUMNS[k] for k in keys),
        *(("score",) if has_score else ()),
    )
    rows = [
        (
            label_key(s.label),
            s.name,
            _fmt(s.dice),
            _fmt(s.iou),
            f"{s.num_in_mean}/{s.num_cases}",
            str(s.num_empty_reference),
            str(s.num_empty_prediction),
            str(s.num_both_empty),
            *(_with_undefined(s.values[k], s.num_undefined[k]) for k in keys),
            *((_fmt(s.score if s.score is not None else math.nan),) if has_score else ()),
        )
        for s in evaluation.labels
    ]
    rows.append(
        (
            "fg mean",
            "",
            _fmt(evaluation.foreground_dice),
            _fmt(evaluation.foreground_iou),
            "",
            "",
            "",
            "",
            *("" for _ in keys),
            *(("",) if has_score else ()),
        )
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i >= 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", *_notes(evaluation)])


def _notes(evaluation: Evaluation) -> list[str]:
    """The lines below the table: policy, ignore label, left-out cases, convention, score."""
    notes = [f"empty policy: {evaluation.empty} ({_POLICY_TEXT[evaluation.empty]})"]
    if evaluation.ignore_label is not None:
        notes.append(
            f"ignore label {evaluation.ignore_label}: voxels with that reference value "
            "are not counted"
        )
    if evaluation.missing_predictions:
        notes.append(
            f"{len(evaluation.missing_predictions)} reference case(s) without prediction left out"
        )
    if evaluation.extra_predictions:
        notes.append(
            f"{len(evaluation.extra_predictions)} prediction(s) without reference left out"
        )
    if not evaluation.is_default:
        notes.append(
            f"convention: {evaluation.convention}; distances in mm (spacing of each reference), "
            "surface = voxels with a face neighbour outside the mask; (n undefined) = cases "
            "left out of that mean"
        )
    if "nsd" in evaluation.metrics:
        tolerances = sorted(set(evaluation.nsd_tolerance.values()))
        notes.append(
            f"NSD ({evaluation.nsd_definition}) tolerance: "
            + (
                f"{tolerances[0]:g} mm"
                if len(tolerances) == 1
                else ", ".join(f"{k}: {v:g} mm" for k, v in evaluation.nsd_tolerance.items())
            )
        )
    if evaluation.score_spec is not None:
        notes.append(
            f"score ({evaluation.score_spec['name']}): "
            f"{_fmt(evaluation.score if evaluation.score is not None else math.nan)}"
        )
    return notes


def _with_undefined(value: float, undefined: int) -> str:
    return _fmt(value) + (f" ({undefined} undefined)" if undefined else "")


_POLICY_TEXT = {
    "nan": "both empty -> NaN, left out of the mean; nnU-Net's convention",
    "one": "both empty -> 1, counted in the mean",
    "skip": "cases with an empty reference are left out of the mean",
}


def per_case_csv(evaluation: Evaluation) -> str:
    """Return one CSV row per case and label: Dice, IoU and the counts (empty cell for NaN)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = evaluation.value_keys
    writer.writerow(
        ["case", "label", "name", "Dice", "IoU", *COUNT_FIELDS, *(COLUMNS[k] for k in keys)]
    )
    for case in evaluation.cases:
        for i, label in enumerate(evaluation.labels):
            dice, iou = float(case.dice[i]), float(case.iou[i])
            writer.writerow(
                [
                    case.case,
                    label_key(label.label),
                    label.name,
                    "" if math.isnan(dice) else repr(dice),
                    "" if math.isnan(iou) else repr(iou),
                    *(int(v) for v in case.counts[i]),
                    *(_cell(float(case.values[k][i])) for k in keys),
                ]
            )
    return buffer.getvalue()


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def write_evaluation(
    evaluation: Evaluation,
    output_json: str | os.PathLike[str],
    *,
    output_csv: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Write the strict-JSON summary and the per-case CSV, each atomically.

    Args:
        evaluation: The result to write.
        output_json: The summary file (``.json``).
        output_csv: The per-case file; default ``<output_json stem>_per_case.csv`` beside it.

    Returns:
        ``(json_path, csv_path)``.
    """
    json_path = Path(output_json)
    csv_path = (
        Path(output_csv)
        if output_csv is not None
        else json_path.with_name(f"{json_path.stem}_per_case.csv")
    )
    text = per_case_csv(evaluation)
    with atomic_path(csv_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_json(json_path, evaluation.to_json())
    return json_path, csv_path
