from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SPACING = (1.0, 1.25, 2.5)


def write_image(array: np.ndarray, path: Path, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path), True)


def case_labels(index: int) -> np.ndarray:
    labels = np.zeros((6, 10, 12), dtype=np.uint8)
    labels[1:5, 2:8, 2:9] = 1
    labels[2:4, 4:6, 4:7] = 2
    if index % 2 == 0:
        labels[4, 8, 10] = 3  # label 3 only in even cases
    return labels


@pytest.fixture
def challenge(tmp_path: Path) -> tuple[Path, Path]:
    """imagesTs with 3 cases (2 channels) and an nnU-Net-like prediction folder."""
    images, pred = tmp_path / "imagesTs", tmp_path / "pred"
    images.mkdir()
    pred.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        case = f"heart_{index:03d}"
        for channel in (0, 1):
            write_image(
                rng.normal(size=(6, 10, 12)).astype(np.float32),
                images / f"{case}_{channel:04d}.nii.gz",
            )
        write_image(case_labels(index), pred / f"{case}.nii.gz")
        (pred / f"{case}.npz").write_bytes(b"npz")
        (pred / f"{case}.pkl").write_bytes(b"pkl")
    (images / "dataset.json").write_text("{}")
    (pred / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"background": 0, "myo": 1, "LV": 2, "RV": 3},
                "file_ending": ".nii.gz",
                "channel_names": {"0": "MRI"},
                "numTraining": 3,
            }
        )
    )
    (pred / "plans.json").write_text("{}")
    return pred, images
