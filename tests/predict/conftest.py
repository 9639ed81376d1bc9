"""Real two-step route (nnUNetv2_predict --save_probabilities per member + nnUNetv2_ensemble)
on the session's two tiny models, shared by the predict tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nnunet_workspace import DATASET_NAME, NnunetWorkspace, check

from ._helpers import CASES, nnunet_predict, ours


@pytest.fixture(scope="session")
def test_images(workspace: NnunetWorkspace) -> Path:
    """A folder with the images of ``CASES``."""
    folder = workspace.raw.parent / "predict_images"
    folder.mkdir(exist_ok=True)
    raw = workspace.raw / DATASET_NAME
    for case in CASES:
        split = "imagesTs" if case >= "heart_006" else "imagesTr"
        shutil.copyfile(raw / split / f"{case}_0000.nii.gz", folder / f"{case}_0000.nii.gz")
    return folder


@pytest.fixture(scope="session")
def two_step(
    workspace: NnunetWorkspace, ensemble_models: dict[str, Path], test_images: Path
) -> dict[str, Path]:
    """Probability folders of both members (no TTA) and nnUNetv2_ensemble's labels."""
    root = workspace.raw.parent / "two_step"
    folders = {
        c: nnunet_predict(
            workspace, test_images, root / f"pred_{c}", c, "--save_probabilities", "--disable_tta"
        )
        for c in ("2d", "3d_fullres")
    }
    ensemble = root / "nnunet_ensemble"
    check(
        workspace.run(
            "nnUNetv2_ensemble",
            "-i",
            str(folders["2d"]),
            str(folders["3d_fullres"]),
            "-o",
            str(ensemble),
            "-np",
            "1",
        )
    )
    return {**folders, "ensemble": ensemble}


@pytest.fixture(scope="session")
def equal_weights_output(
    workspace: NnunetWorkspace, ensemble_models: dict[str, Path], test_images: Path
) -> Path:
    """`nnunet-ext predict -m 2d 3d_fullres --disable-tta` (equal weights, all folds)."""
    out = workspace.raw.parent / "ours_equal"
    ours(
        workspace,
        "-i",
        str(test_images),
        "-o",
        str(out),
        "-m",
        str(ensemble_models["2d"]),
        str(ensemble_models["3d_fullres"]),
        "--device",
        "cpu",
        "--disable-tta",
    )
    return out
