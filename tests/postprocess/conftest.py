from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SPACING = (0.8, 0.9, 2.5)
ORIGIN = (-12.5, 40.25, 3.0)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def make_case(seed: int, shape: tuple[int, int, int] = (10, 20, 20)) -> np.ndarray:
    """Nested labels (1 around 2), a blob of 3, stray specks of each label, holes in 1 and 2."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:8, 3:15, 3:15] = 1
    labels[3:7, 5:13, 5:13] = 2
    labels[4, 8, 8] = 0  # pocket inside 2 (-> 2)
    labels[5, 4, 4] = 0  # pocket inside 1 (-> 1)
    labels[1:4, 16:19, 16:19] = 3
    for value in (1, 2, 3):
        for _ in range(2):
            z, y, x = (
                rng.integers(0, shape[0]),
                rng.integers(0, shape[1]),
                rng.integers(0, shape[2]),
            )
            if labels[max(z - 1, 0) : z + 2, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].any():
                continue
            labels[z, y, x] = value
    return labels


def write_sitk(array: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path), True)


@pytest.fixture
def label_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pred"
    folder.mkdir()
    for index in range(3):
        write_sitk(make_case(index), folder / f"case_{index:03d}.nii.gz")
    (folder / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"background": 0, "myo": 1, "LV": 2, "RV": 3},
                "file_ending": ".nii.gz",
                "channel_names": {"0": "MRI"},
                "numTraining": 3,
            }
        )
    )
    (folder / "case_000.npz").write_bytes(b"not a label file")
    return folder
