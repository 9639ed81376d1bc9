"""Region-based (BraTS-style) synthetic data made in code: raw datasets and CV probabilities.

Nested regions in the BraTS manner: label 1 (oedema) around label 3 (enhancing tumour) around
label 2 (necrotic core); the regions are whole tumour ``WT = (1, 2, 3)``, tumour core
``TC = (2, 3)`` and enhancing tumour ``ET = (3,)``, with ``regions_class_order`` ``[1, 2, 3]``
as nnU-Net's BraTS dataset. :func:`make_region_raw_dataset` writes a raw dataset that
``nnUNetv2_train`` trains region-based (sigmoid outputs); :func:`make_region_cv_folders` writes
CV probability folders whose best decision threshold per region is known.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from nnunet_ext.synthetic import write_dataset_json, write_labels_image, write_prediction_folder

__all__ = [
    "REGIONS_CLASS_ORDER",
    "REGION_LABELS",
    "make_region_case",
    "make_region_cv_folders",
    "make_region_raw_dataset",
    "region_masks",
]

#: ``dataset.json`` labels of the region datasets.
REGION_LABELS: dict[str, int | list[int]] = {
    "background": 0,
    "WT": [1, 2, 3],
    "TC": [2, 3],
    "ET": 3,
}

#: The label each region channel writes (later channels win).
REGIONS_CLASS_ORDER = (1, 2, 3)


def make_region_case(
    rng: np.random.Generator, *, shape: tuple[int, int, int] = (16, 48, 48), noise: float = 0.35
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """One image and label map (z, y, x) with one or two nested tumours.

    Examples:
        >>> image, labels = make_region_case(np.random.default_rng(0), shape=(8, 24, 24))
        >>> sorted(np.unique(labels).tolist()), image.dtype.name
        ([0, 1, 2, 3], 'float32')
    """
    grid = np.indices(shape, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    size = min(shape[1], shape[2])
    for _ in range(int(rng.integers(1, 3))):
        centre = rng.uniform(0.3, 0.7, size=3) * np.array(shape)
        radius = float(rng.uniform(0.12, 0.2)) * size
        scale = np.array([size / shape[0] * 0.5, 1.0, 1.0])  # thick slices
        distance = np.sqrt(
            sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, scale, strict=True))
        )
        labels[(distance <= radius) & (labels == 0)] = 1
        labels[distance <= radius * 0.6] = 3
        labels[distance <= radius * 0.3] = 2
    means = np.array([0.0, 1.0, 3.0, 2.0], dtype=np.float32)
    image = means[labels] + rng.normal(0.0, noise, size=shape).astype(np.float32)
    return image, labels


def make_region_raw_dataset(
    raw_dir: str | os.PathLike[str],
    *,
    dataset_id: int = 502,
    name: str = "SyntheticTumour",
    num_training: int = 6,
    num_test: int = 2,
    shape: tuple[int, int, int] = (16, 48, 48),
    spacing: tuple[float, float, float] = (1.0, 1.0, 2.5),
    seed: int = 0,
) -> Path:
    """Write a region-based nnU-Net raw dataset (``imagesTr``, ``labelsTr``, ``imagesTs``, ...).

    Returns:
        The dataset folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(raw_dir) / f"Dataset{dataset_id:03d}_{name}"
    index = 0
    for split, count in (("Tr", num_training), ("Ts", num_test)):
        (folder / f"images{split}").mkdir(parents=True, exist_ok=True)
        (folder / f"labels{split}").mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            image, labels = make_region_case(rng, shape=shape)
            case = f"tumour_{index:03d}"
            write_labels_image(labels, folder / f"labels{split}" / f"{case}.nii.gz", spacing)
            _write_float(image, folder / f"images{split}" / f"{case}_0000.nii.gz", spacing)
            index += 1
    write_dataset_json(
        folder,
        REGION_LABELS,
        num_training,
        name=name,
        regions_class_order=list(REGIONS_CLASS_ORDER),
        description="Synthetic region-based (BraTS-style) dataset made by nnunet_ext",
    )
    return folder


def _write_float(array: NDArray[np.float32], path: Path, spacing: Sequence[float]) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing])
    sitk.WriteImage(image, str(path), True)


def region_masks(labels: NDArray[np.integer]) -> NDArray[np.bool_]:
    """``(3, ...)`` masks of WT, TC and ET of a label map.

    Examples:
        >>> region_masks(np.array([0, 1, 2, 3])).astype(int).tolist()
        [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]
    """
    return np.stack([np.isin(labels, v) for v in ([1, 2, 3], [2, 3], [3])])


def _member(
    rng: np.random.Generator, masks: NDArray[np.bool_], thresholds: Sequence[float]
) -> NDArray[np.float32]:
    """Probabilities separated at ``thresholds``: inside above, near outside below, far ~0."""
    out = np.empty(masks.shape, dtype=np.float32)
    for r, (mask, t) in enumerate(zip(masks, thresholds, strict=True)):
        near = ndimage.binary_dilation(mask, iterations=2) & ~mask
        inside = rng.uniform(t + 0.01, 0.97, size=mask.shape)
        below = rng.uniform(0.02, max(t - 0.01, 0.02), size=mask.shape)
        far = rng.uniform(0.0, 0.005, size=mask.shape)
        out[r] = np.where(mask, inside, np.where(near, below, far))
    return out


def make_region_cv_folders(
    folder: str | os.PathLike[str],
    *,
    num_models: int = 2,
    num_cases: int = 10,
    shape: tuple[int, int, int] = (8, 24, 24),
    best_thresholds: Sequence[float] = (0.5, 0.5, 0.35),
    seed: int = 0,
) -> tuple[list[Path], Path]:
    """Write ``num_models`` region CV probability folders and their reference folder.

    Every member separates each region at ``best_thresholds`` (inside above it, the voxels
    next to the region below it, the rest near 0), so a threshold just at it scores Dice 1
    and 0.5 misses the inside voxels between it and 0.5.

    Returns:
        ``(member folders, reference folder)`` below ``folder``.

    Examples:
        >>> import tempfile
        >>> members, reference = make_region_cv_folders(tempfile.mkdtemp(), num_cases=2)
        >>> [p.name for p in members], sorted(p.name for p in reference.glob("*.nii.gz"))
        (['model_0', 'model_1'], ['tumour_000.nii.gz', 'tumour_001.nii.gz'])
    """
    rng = np.random.default_rng(seed)
    root = Path(folder)
    reference = root / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    probabilities: list[dict[str, NDArray[np.float32]]] = [{} for _ in range(num_models)]
    for index in range(num_cases):
        _, labels = make_region_case(rng, shape=shape)
        case = f"tumour_{index:03d}"
        write_labels_image(labels, reference / f"{case}.nii.gz", (1.0, 1.0, 2.5))
        masks = region_masks(labels)
        for m in range(num_models):
            probabilities[m][case] = _member(rng, masks, best_thresholds)
    write_dataset_json(
        reference, REGION_LABELS, num_cases, regions_class_order=list(REGIONS_CLASS_ORDER)
    )
    members = [
        write_prediction_folder(
            root / f"model_{m}",
            probabilities[m],
            labels=REGION_LABELS,
            regions_class_order=REGIONS_CLASS_ORDER,
        )
        for m in range(num_models)
    ]
    return members, reference
