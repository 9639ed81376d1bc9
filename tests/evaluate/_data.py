"""Tiny synthetic reference/prediction label folders for the evaluate tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.synthetic import write_dataset_json


def write_label(
    path: Path, array: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 2.0)
) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), True)


def make_pair(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    *,
    with_3: bool,
    pred_3: bool,
    ignore: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros(shape, dtype=np.uint8)
    _z, y, _x = shape
    c = rng.integers(4, y - 8)
    ref[:, c - 3 : c + 4, c - 3 : c + 4] = 1
    ref[:, c - 1 : c + 2, c - 1 : c + 2] = 2
    if with_3:
        ref[1:3, 1:4, 1:4] = 3
    pred = ref.copy()
    noise = rng.random(shape) < 0.08
    pred[noise] = rng.integers(0, 3, size=int(noise.sum()))
    if not with_3 and pred_3:
        pred[0, -3:, -3:] = 3  # false positive: "Dice 0" for a case without label 3
    if with_3 and not pred_3:
        pred[pred == 3] = 0
    if ignore is not None:
        ref[-1, :, :2] = ignore
    return ref, pred


def make_folders(
    root: Path,
    *,
    num_cases: int = 5,
    shape: tuple[int, int, int] = (4, 16, 16),
    ignore: int | None = None,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write ``root/ref`` and ``root/pred``.

    Case 1 lacks label 3 in both, case 2 only in the reference.
    """
    rng = np.random.default_rng(seed)
    ref_dir, pred_dir = root / "ref", root / "pred"
    ref_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    for i in range(num_cases):
        with_3 = i not in (1, 2)
        pred_3 = i != 1
        ref, pred = make_pair(rng, shape, with_3=with_3, pred_3=pred_3, ignore=ignore)
        write_label(ref_dir / f"case_{i:02d}.nii.gz", ref)
        write_label(pred_dir / f"case_{i:02d}.nii.gz", pred)
    labels: dict[str, Any] = {"background": 0, "outer": 1, "inner": 2, "blob": 3}
    if ignore is not None:
        labels["ignore"] = ignore
    write_dataset_json(pred_dir, labels, num_cases, channel="CT")
    return pred_dir, ref_dir
