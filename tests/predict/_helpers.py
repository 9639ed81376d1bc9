"""Helpers of the predict tests: run the real commands, read label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from nnunet_workspace import BIN, DATASET_ID, NnunetWorkspace, check

#: The cases predicted by these tests: two test and two training images.
CASES = ("heart_000", "heart_001", "heart_006", "heart_007")

#: The venv's python, as a user runs it.
BIN_PYTHON = BIN / "python"


def nnunet_predict(
    workspace: NnunetWorkspace, images: Path, out: Path, configuration: str, *extra: str
) -> Path:
    check(
        workspace.run(
            "nnUNetv2_predict",
            "-i",
            str(images),
            "-o",
            str(out),
            "-d",
            str(DATASET_ID),
            "-c",
            configuration,
            "-f",
            "0",
            "1",
            "-tr",
            "CustomEpochs",
            "-device",
            "cpu",
            "-npp",
            "1",
            "-nps",
            "1",
            *extra,
        )
    )
    return out


def ours(workspace: NnunetWorkspace, *args: str) -> None:
    check(workspace.run("python", "-m", "nnunet_ext", "predict", *args))


def read_seg(path: Path) -> tuple[np.ndarray, tuple[object, ...]]:
    """Label array and geometry (spacing, origin, direction) of a label file."""
    image = sitk.ReadImage(str(path))
    geometry = (image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    return sitk.GetArrayFromImage(image), geometry
