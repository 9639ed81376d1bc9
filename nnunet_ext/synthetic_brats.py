"""Synthetic BraTS-style label maps made in code, named as the official scorer expects.

:func:`make_brats_cases` writes a reference and a prediction folder of ``BraTS-GLI-00001-000``
style cases (``brats-evaluation`` finds a case's prediction by the ``00001-000`` part of its
name) with the labels of BraTS glioma (1 necrosis, 2 oedema, 3 enhancing tumour, 4 resection
cavity): several lesions per case, touching lesions, an empty enhancing tumour, a prediction
with only false positives, small lesions (below metastases' 20 mm^3), anisotropic spacing and,
with ``missing=True``, one case without prediction. For parity tests and benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.synthetic import write_labels_image

__all__ = ["make_brats_cases"]


def _lesion(
    labels: NDArray[np.uint8], centre: NDArray[np.float64], radius: float, *, et: bool
) -> None:
    """Paint one tumour: oedema (2) around enhancing tumour (3) around necrosis (1)."""
    grid = np.indices(labels.shape).astype(np.float64)
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    labels[(distance <= radius * 1.6) & (labels == 0)] = 2
    if et:
        labels[distance <= radius] = 3
    labels[distance <= radius * 0.5] = 1


def _case(
    rng: np.random.Generator, index: int, shape: tuple[int, int, int], scale: float = 1.0
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    ref = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    margin = 6 * scale
    centres = [
        rng.uniform(margin, np.array(shape) - margin) for _ in range(int(rng.integers(2, 4)))
    ]
    if index % 4 == 1:  # touching lesions
        centres.append(centres[0] + np.array([0.0, 0.0, 5.0 * scale]))
    for k, centre in enumerate(centres):
        radius = float(rng.uniform(2.0, 4.0)) * scale
        et = index % 5 != 2  # case 2, 7: no enhancing tumour in the reference
        _lesion(ref, centre, radius, et=et)
        if index % 6 == 3:  # only false positives in the prediction
            continue
        if k == 1 and index % 3 == 0:  # a missed lesion
            continue
        shift = rng.normal(0.0, 1.0, 3) * scale
        _lesion(pred, centre + shift, radius * float(rng.uniform(0.7, 1.3)), et=True)
    if index % 6 == 3 or index % 4 == 0:  # false-positive lesions
        far = np.array(shape) - 4.0
        _lesion(pred, far * np.array([0.2, 0.8, 0.8]), 2.0 * scale, et=True)
    if index % 3 == 1:  # a small lesion (2 x 2 x 2 voxels) and a resection cavity
        z, y, x = (int(v) for v in rng.integers(3, np.array(shape) - 4))
        ref[z : z + 2, y : y + 2, x : x + 2] = 3
        pred[z : z + 2, y : y + 2, x + 1 : x + 3] = 3
        ref[2:5, 2:5, 2:6] = 4
        pred[2:5, 3:6, 2:6] = 4
    return ref, pred


def make_brats_cases(
    folder: str | os.PathLike[str],
    *,
    num_cases: int = 12,
    shape: tuple[int, int, int] = (40, 48, 48),
    seed: int = 0,
    missing: bool = True,
    prefix: str = "BraTS-GLI",
    scale: float = 1.0,
) -> tuple[Path, Path]:
    """Write ``folder/reference`` and ``folder/prediction`` of synthetic BraTS cases.

    Args:
        folder: Where to write the two folders (created).
        num_cases: Cases (``{prefix}-00001-000`` ...); every third is anisotropic.
        shape: Array shape (SimpleITK's z, y, x).
        seed: Random seed.
        missing: Leave the last case's prediction out.
        prefix: Case name prefix (``BraTS-GLI``, ``BraTS-MET``, ...).
        scale: Lesion size factor (1: radii of 2-4 voxels; benchmarks use larger lesions).

    Returns:
        ``(reference_dir, prediction_dir)``.
    """
    root = Path(folder)
    ref_dir, pred_dir = root / "reference", root / "prediction"
    ref_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spacings = [(1.0, 1.0, 1.0), (1.0, 1.0, 1.5), (0.9, 1.2, 2.0)]
    for i in range(num_cases):
        ref, pred = _case(rng, i, shape, scale)
        name = f"{prefix}-{i + 1:05d}-000.nii.gz"
        spacing = spacings[i % 3]
        write_labels_image(ref, ref_dir / name, spacing)
        if not (missing and i == num_cases - 1):
            write_labels_image(pred, pred_dir / name, spacing)
    return ref_dir, pred_dir
