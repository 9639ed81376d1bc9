"""Boundary metrics of equal vs tuned weights on the CV cases (reported by ``tune``).

The weight search stays Dice-based; this only measures what it did to the boundaries: each CV
case is fused with equal weights and with the tuned weights (``nnunet_ext.ensemble.fusion``),
turned into labels by argmax and scored against its reference with
:mod:`nnunet_ext.evaluate` (Dice, HD95, ASSD, NSD; mm from the reference's spacing; distances
NaN where a side is empty, counted).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._parallel import map_cases
from nnunet_ext.ensemble.fusion import fuse_probabilities, probabilities_to_labels
from nnunet_ext.evaluate.labels import find_dataset_json
from nnunet_ext.evaluate.measures import apply_convention, boundary_values, nan_mean
from nnunet_ext.evaluate.metrics import FN, FP, TP, confusion_counts, dice_from_counts
from nnunet_ext.io import LabelSpec, list_case_files, load_json, read_labels, write_json
from nnunet_ext.io.cases import pair_probability_files
from nnunet_ext.io.probabilities import read_probabilities
from nnunet_ext.tune.api import TuneResult

__all__ = ["BOUNDARY_METRICS", "add_to_report", "boundary_metrics", "format_boundary"]

#: What the report holds per label and method.
BOUNDARY_METRICS: tuple[str, ...] = ("dice", "hd95", "assd", "nsd")

_Job = tuple[list[str], str, list[list[float]], list[int], int | None, float]


def _boundary_case(job: _Job) -> dict[str, dict[str, NDArray[np.float64]]]:
    """Worker: fuse one case both ways and score it (top-level for the spawn pool)."""
    npz_files, reference_file, weights, label_ids, ignore, tolerance = job
    reference = read_labels(reference_file)
    spacing = tuple(reversed(reference.spacing))
    members = [read_probabilities(f) for f in npz_files]
    out = {}
    for method, w in (("equal", None), ("tuned", np.asarray(weights))):
        labels = probabilities_to_labels(fuse_probabilities(members, w))
        counts = confusion_counts(reference.array, labels, label_ids=label_ids, ignore_label=ignore)
        values = {
            "dice": np.asarray(
                dice_from_counts(counts[:, TP], counts[:, FP], counts[:, FN]), np.float64
            )
        }
        values.update(
            boundary_values(
                reference.array,
                labels,
                label_ids,
                spacing,
                BOUNDARY_METRICS,
                nsd_tolerance=tolerance,
                ignore_label=ignore,
            )
        )
        out[method] = apply_convention(
            values, counts, "nan", shape=reference.array.shape, spacing=spacing
        )
    return out


def boundary_metrics(
    result: TuneResult,
    *,
    num_workers: int = 1,
    nsd_tolerance: float = 1.0,
    dataset_json: str | None = None,
) -> dict[str, Any]:
    """Mean Dice, HD95, ASSD and NSD per label of equal and tuned weights on the CV cases.

    Args:
        result: The tuning result (its folders, cases and weights).
        num_workers: Cases read and fused at the same time.
        nsd_tolerance: NSD tolerance in mm.
        dataset_json: ``dataset.json`` (default: found next to the folders, as ``tune``).

    Returns:
        A JSON-ready dict: per label, per method, each metric's mean over the cases where it is
        defined and the number of cases where it is not.
    """
    ref_root = Path(result.reference_dir)
    json_path = (
        Path(dataset_json)
        if dataset_json
        else find_dataset_json(Path(result.input_dirs[0]), ref_root)
    )
    spec = (
        LabelSpec.from_dataset_json(load_json(json_path), source=str(json_path))
        if json_path is not None
        else None
    )
    references, _ = list_case_files(ref_root, spec.file_ending if spec else ".nii.gz")
    paired = pair_probability_files(result.input_dirs)
    # the weights as the written spec holds them (rounded to 4 decimals, as TuneResult.spec)
    weights = [[float(w) for w in row] for row in np.round(result.weights, 4)]
    jobs: list[_Job] = [
        (
            [str(p) for p in paired.cases[case]],
            str(references[case]),
            weights,
            list(result.label_ids),
            spec.ignore_label if spec else None,
            nsd_tolerance,
        )
        for case in result.cases
    ]
    per_case = map_cases(_boundary_case, jobs, num_workers=num_workers, desc="boundary")
    labels = []
    for j, (label, name) in enumerate(zip(result.label_ids, result.label_names, strict=True)):
        entry: dict[str, Any] = {"label": label, "name": name}
        for method in ("equal", "tuned"):
            stacked = {
                m: np.array([case[method][m][j] for case in per_case]) for m in BOUNDARY_METRICS
            }
            # evaluate's own mean, so these numbers are evaluate's (its arithmetic differs from
            # nnunet_ext._stats.nan_mean in the last bit)
            entry[method] = {m: nan_mean(v) for m, v in stacked.items()}
            entry[method]["undefined"] = {m: int(np.isnan(v).sum()) for m, v in stacked.items()}
        labels.append(entry)
    return {
        "metrics": list(BOUNDARY_METRICS),
        "nsd_tolerance_mm": nsd_tolerance,
        "convention": "nan",
        "num_cases": len(result.cases),
        "labels": labels,
    }


def format_boundary(report: dict[str, Any]) -> str:
    """A table: per label, each metric with equal weights -> tuned weights.

    Examples:
        >>> print(format_boundary({"nsd_tolerance_mm": 1.0, "num_cases": 2, "labels": [
        ...     {"label": 1, "name": "a",
        ...      "equal": {"dice": 0.8, "hd95": 4.0, "assd": 1.0, "nsd": 0.9,
        ...                "undefined": {"dice": 0, "hd95": 0, "assd": 0, "nsd": 0}},
        ...      "tuned": {"dice": 0.9, "hd95": 2.0, "assd": 0.5, "nsd": float("nan"),
        ...                "undefined": {"dice": 0, "hd95": 1, "assd": 1, "nsd": 2}}}]}))
        Boundary metrics on the 2 CV cases, equal -> tuned weights (NSD at 1 mm; search on Dice)
        label  Dice              HD95 (mm)             ASSD (mm)             NSD
        -----  ----------------  --------------------  --------------------  -------------------
        1 a    0.8000 -> 0.9000  4.000 -> 2.000 (1 u)  1.000 -> 0.500 (1 u)  0.9000 -> n/a (2 u)
        <BLANKLINE>
        (n u): cases where the metric is undefined (a side empty), left out of that mean
    """

    def cell(label: dict[str, Any], metric: str, digits: int) -> str:
        parts = []
        for method in ("equal", "tuned"):
            value = label[method][metric]
            parts.append("n/a" if math.isnan(value) else f"{value:.{digits}f}")
        undefined = max(label[m]["undefined"][metric] for m in ("equal", "tuned"))
        return " -> ".join(parts) + (f" ({undefined} u)" if undefined else "")

    header = ["label", "Dice", "HD95 (mm)", "ASSD (mm)", "NSD"]
    rows = [
        [
            f"{label['label']} {label['name']}",
            cell(label, "dice", 4),
            cell(label, "hd95", 3),
            cell(label, "assd", 3),
            cell(label, "nsd", 4),
        ]
        for label in report["labels"]
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = (
        f"Boundary metrics on the {report['num_cases']} CV cases, equal -> tuned weights "
        f"(NSD at {report['nsd_tolerance_mm']:g} mm; search on Dice)"
    )
    note = "(n u): cases where the metric is undefined (a side empty), left out of that mean"
    return "\n".join([title, *lines, "", note])


def add_to_report(
    report_path: str | Path, report: dict[str, Any], *, key: str = "boundary_metrics"
) -> None:
    """Add ``report`` as ``key`` to tune's JSON report (rewritten atomically)."""
    data = load_json(report_path)
    data[key] = report
    write_json(report_path, data)
