"""Oracle runner: executed by the oracle venv's interpreter, never imported by the suite.

Reads one JSON request from stdin and writes one JSON answer to stdout. The official scorers
(``surface-distance`` 0.1, ``panoptica`` 2.1.7, ``brats-evaluation`` 0.0.10) are imported
here only; ``tests/evaluate/oracles/__init__.py`` starts this script in ``.venv-oracles``.

Requests (``{"task": ..., ...}``):

* ``surface_dice``: ``cases`` of ``{"reference": NPY, "prediction": NPY, "spacing": [...],
  "tolerances": [...]}``: ``compute_surface_dice_at_tolerance`` at each tolerance, and
  ``compute_robust_hausdorff(..., 95)``.
* ``surface_area_table``: ``spacings``: ``create_table_neighbour_code_to_surface_area`` for each
  spacing (compared value by value with our derived table).
* ``panoptica_nsd``: ``cases`` of ``{"reference", "prediction", "spacing"}``: panoptica's NSD
  (threshold: the smallest spacing) and pooled HD95.
* ``brats``: ``reference_dir``, ``prediction_dir``, ``config`` (``gli``, ``mets``, ...) and
  ``parser`` (``seg`` or ``mets``): runs the ``brats-evaluate`` and ``brats-parse-metrics``
  command lines (as modules) and returns the parsed CSV rows (NaN as null, inf as a string).
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _surface_dice(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not hasattr(np, "Inf"):  # surface-distance 0.1 predates NumPy 2 (np.Inf is np.inf)
        setattr(np, "Inf", np.inf)  # noqa: B010
    import surface_distance

    out = []
    for case in cases:
        ref = np.load(case["reference"]).astype(bool)
        pred = np.load(case["prediction"]).astype(bool)
        distances = surface_distance.compute_surface_distances(ref, pred, case["spacing"])
        out.append(
            {
                "nsd": [
                    float(surface_distance.compute_surface_dice_at_tolerance(distances, t))
                    for t in case["tolerances"]
                ],
                "hd95": float(surface_distance.compute_robust_hausdorff(distances, 95)),
            }
        )
    return out


def _area_table(spacings: list[list[float]]) -> list[list[float]]:
    from surface_distance import lookup_tables

    return [
        lookup_tables.create_table_neighbour_code_to_surface_area(s).tolist()
        if len(s) == 3
        else lookup_tables.create_table_neighbour_code_to_contour_length(s).tolist()
        for s in spacings
    ]


def _panoptica_nsd(cases: list[dict[str, Any]]) -> list[dict[str, float]]:
    from panoptica.metrics.hausdorff_distance import _compute_hausdorff_distance95
    from panoptica.metrics.normalized_surface_dice import _compute_normalized_surface_dice

    out = []
    for case in cases:
        ref = np.load(case["reference"]).astype(bool)
        pred = np.load(case["prediction"]).astype(bool)
        spacing = tuple(case["spacing"])
        out.append(
            {
                "nsd": float(_compute_normalized_surface_dice(ref, pred, voxelspacing=spacing)),
                "hd95": float(_compute_hausdorff_distance95(ref, pred, voxelspacing=spacing)),
            }
        )
    return out


def _cell(text: str) -> Any:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else text


def _brats(request: dict[str, Any]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        table = Path(tmp) / "parsed.csv"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "brats_evaluation.evaluation",
                "--config",
                request["config"],
                "--ref_path",
                request["reference_dir"],
                "--pred_path",
                request["prediction_dir"],
                "--summary_json",
                str(summary),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "brats_evaluation.metrics_parser",
                request["parser"],
                "--json_path",
                str(summary),
                "--output_csv_path",
                str(table),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with table.open(newline="") as handle:
            return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def main() -> None:
    """Answer the request on stdin."""
    warnings.simplefilter("ignore")
    request = json.load(sys.stdin)
    task = request["task"]
    if task == "surface_dice":
        answer: Any = _surface_dice(request["cases"])
    elif task == "surface_area_table":
        answer = _area_table(request["spacings"])
    elif task == "panoptica_nsd":
        answer = _panoptica_nsd(request["cases"])
    elif task == "brats":
        answer = _brats(request)
    else:
        raise SystemExit(f"unknown task {task!r}")
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
