"""``tune --qc-calibrate``: the QC thresholds calibrated on the CV cases, stored in the spec.

The CV probabilities are fused with the tuned spec and ``--qc`` into a temporary folder; each
fused label is compared with its reference (true Dice, reference volume) and
:func:`nnunet_ext.qc.calibrate.calibrate_thresholds` sets the thresholds. The spec is rewritten
with them (``schema_version`` 3, key ``qc``), so ``ensemble --spec ... --qc`` and ``predict
--spec ... --qc`` use them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.ensemble.folders import ensemble_folders
from nnunet_ext.ensemble.spec import EnsembleSpec
from nnunet_ext.io import load_dataset_json, read_labels
from nnunet_ext.qc.calibrate import CalibrationCase, calibrate_thresholds
from nnunet_ext.qc.cases import QcOptions
from nnunet_ext.qc.report import load_qc
from nnunet_ext.qc.thresholds import QcThresholds

__all__ = ["DEFAULT_FALSE_FLAG_RATE", "calibrate_qc", "store_qc"]

#: Share of good CV case-labels each calibrated threshold may flag.
DEFAULT_FALSE_FLAG_RATE = 0.02


def _dice(left: NDArray[np.bool_], right: NDArray[np.bool_]) -> float:
    total = int(left.sum()) + int(right.sum())
    return 1.0 if total == 0 else 2.0 * int((left & right).sum()) / total


def calibrate_qc(
    spec_path: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str],
    *,
    num_workers: int = 1,
    false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE,
) -> QcThresholds:
    """QC thresholds calibrated on the CV cases of a spec (its members are CV folders).

    Args:
        spec_path: The spec (e.g. written by :func:`nnunet_ext.tune.write_outputs`); its
            ``qc`` thresholds, if any, are the base.
        reference_dir: The CV cases' reference label files.
        num_workers: Cases fused at the same time.
        false_flag_rate: Share of good CV case-labels each threshold may flag.

    Returns:
        The calibrated thresholds (:func:`store_qc` writes them into the spec).

    Raises:
        ValueError: If a case lacks a member or a reference cannot be read.
        FileNotFoundError: For a missing reference.
    """
    spec_file = Path(spec_path)
    cases: list[CalibrationCase] = []
    with tempfile.TemporaryDirectory(prefix="nnunet_ext-qc-calibration-") as tmp:
        fused = Path(tmp) / "fused"
        ensemble_folders(None, fused, spec=spec_file, num_workers=num_workers, qc=QcOptions())
        ending = load_dataset_json(fused / "dataset.json").file_ending
        for case in load_qc(fused / "qc.json").cases:
            reference = read_labels(Path(reference_dir) / f"{case.case}{ending}")
            labels = read_labels(fused / f"{case.case}{ending}").array
            voxel_ml = math.prod(reference.spacing) / 1000.0
            for label in case.labels:
                value = label.measures.label
                truth = reference.array == value
                cases.append(
                    CalibrationCase(
                        label.measures,
                        label.name,
                        _dice(labels == value, truth),
                        int(truth.sum()) * voxel_ml,
                    )
                )
    base = EnsembleSpec.load(spec_file).qc
    return calibrate_thresholds(cases, base=base, false_flag_rate=false_flag_rate)


def store_qc(spec_path: str | os.PathLike[str], thresholds: QcThresholds) -> Path:
    """Rewrite the spec file with ``thresholds`` as its ``qc`` (``schema_version`` 3)."""
    spec = EnsembleSpec.load(spec_path)
    return dataclasses.replace(spec, qc=thresholds).save(spec_path)
