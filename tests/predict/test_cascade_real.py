"""Cascade members against nnU-Net's two-command cascade route, on a real tiny cascade.

The session trains ``3d_lowres`` and ``3d_cascade_fullres`` (fold ``all``, tests/conftest.py).
nnU-Net's route is ``nnUNetv2_predict -c 3d_lowres`` into a folder, then
``nnUNetv2_predict -c 3d_cascade_fullres -prev_stage_predictions FOLDER``; ours is one
``predict -m CASCADE`` that writes nothing in between.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from nnunet_workspace import CASCADE_PLANS, DATASET_ID, DATASET_NAME, NnunetWorkspace, check

from nnunet_ext.export import export_bundle
from nnunet_ext.io.probabilities import read_probabilities
from nnunet_ext.predict import predict_folder
from nnunet_ext.predict.bundle import predict_bundle

from ._helpers import CASES, ours, read_seg

pytestmark = [
    pytest.mark.nnunet,
    pytest.mark.slow,
    # nnU-Net's trainer lookup imports timm, which warns on import (in-process predictions)
    pytest.mark.filterwarnings("ignore:`torch.jit.interface` is deprecated:FutureWarning"),
]


def cascade_predict(
    workspace: NnunetWorkspace, images: Path, out: Path, configuration: str, *extra: str
) -> Path:
    check(
        workspace.run(
            "nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", str(DATASET_ID),
            "-c", configuration, "-p", CASCADE_PLANS, "-f", "all", "-tr", "CustomEpochs",
            "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_tta", *extra,
        )
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def nnunet_route(
    workspace: NnunetWorkspace, cascade_model: Path, test_images: Path
) -> dict[str, Path]:
    """nnU-Net's two-command cascade route (the second run keeps the probabilities)."""
    root = workspace.raw.parent / "cascade_route"
    lowres = cascade_predict(workspace, test_images, root / "lowres", "3d_lowres")
    cascade = cascade_predict(
        workspace, test_images, root / "cascade", "3d_cascade_fullres",
        "-prev_stage_predictions", str(lowres), "--save_probabilities",
    )  # fmt: skip
    return {"lowres": lowres, "cascade": cascade}


def assert_same_labels(mine: Path, theirs: Path) -> None:
    for case in CASES:
        ours_labels, ours_geometry = read_seg(mine / f"{case}.nii.gz")
        their_labels, their_geometry = read_seg(theirs / f"{case}.nii.gz")
        np.testing.assert_array_equal(ours_labels, their_labels, err_msg=case)
        assert ours_geometry == their_geometry, case


def test_cascade_member_gives_nnunet_two_command_labels_writing_nothing_between(
    workspace: NnunetWorkspace,
    cascade_model: Path,
    test_images: Path,
    nnunet_route: dict[str, Path],
):
    out = workspace.raw.parent / "ours_cascade"
    ours(workspace, "-i", str(test_images), "-o", str(out), "-m", str(cascade_model),
         "-f", "all", "--disable-tta")  # fmt: skip
    assert_same_labels(out, nnunet_route["cascade"])
    # the pipeline (-j 3: a preprocessing and two export processes) writes the same bytes
    piped = workspace.raw.parent / "ours_cascade_j3"
    ours(workspace, "-i", str(test_images), "-o", str(piped), "-m", str(cascade_model),
         "-f", "all", "--disable-tta", "-j", "3")  # fmt: skip
    for case in CASES:
        name = f"{case}.nii.gz"
        assert (piped / name).read_bytes() == (out / name).read_bytes(), case
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{c}.nii.gz" for c in CASES] + ["dataset.json", "plans.json", "nnunet_ext_predict.json"]
    )
    provenance = json.loads((out / "nnunet_ext_predict.json").read_text())
    (member,) = provenance["members"]
    assert member["configuration"] == "3d_cascade_fullres"
    assert member["previous_stage"]["configuration"] == "3d_lowres"
    assert member["previous_stage"]["folds"] == ["all"]


def test_spec_mixing_cascade_and_2d_fuses_as_the_two_step_route(
    workspace: NnunetWorkspace,
    cascade_model: Path,
    ensemble_models: dict[str, Path],
    two_step: dict[str, Path],
    test_images: Path,
    nnunet_route: dict[str, Path],
    tmp_path: Path,
):
    ensemble = tmp_path / "nnunet_ensemble"
    check(
        workspace.run(
            "nnUNetv2_ensemble", "-i", str(nnunet_route["cascade"]), str(two_step["2d"]),
            "-o", str(ensemble), "-np", "1",
        )
    )  # fmt: skip
    spec = tmp_path / "spec.json"
    members = [
        {"model": str(cascade_model), "folds": ["all"]},
        {"model": str(ensemble_models["2d"]), "folds": [0, 1]},
    ]
    spec.write_text(json.dumps({"schema_version": 1, "members": members}))
    out = predict_folder(
        test_images, tmp_path / "out", spec=spec, disable_tta=True, device="cpu"
    ).output_dir
    assert_same_labels(out, ensemble)
    # pipelined: the 2d input is preprocessed ahead, both members exported in a worker
    piped = predict_folder(
        test_images, tmp_path / "piped", spec=spec, disable_tta=True, device="cpu",
        save_probabilities=True, num_workers=2,
    ).output_dir  # fmt: skip
    for case in CASES:
        name = f"{case}.nii.gz"
        assert (piped / name).read_bytes() == (out / name).read_bytes(), case
        fused = read_probabilities(piped / f"{case}.npz")
        assert fused.shape[0] == 4
        assert np.allclose(fused.sum(axis=0), 1, atol=1e-5)


def test_export_bundles_the_lowres_stage_and_nnunet_installs_it(
    workspace: NnunetWorkspace,
    cascade_model: Path,
    test_images: Path,
    nnunet_route: dict[str, Path],
    tmp_path: Path,
):
    bundle = tmp_path / "cascade.zip"
    summary = export_bundle([cascade_model], bundle, folds=["all"])
    stock = {f"nnUNetTrainer__{CASCADE_PLANS}__{c}" for c in ("3d_lowres", "3d_cascade_fullres")}
    assert set(summary.members.values()) == stock
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    for folder in stock:
        assert f"{DATASET_NAME}/{folder}/fold_all/checkpoint_final.pth" in names
    results = tmp_path / "installed"
    results.mkdir()
    check(
        workspace.run(
            "nnUNetv2_install_pretrained_model_from_zip", str(bundle), nnUNet_results=str(results)
        )
    )
    assert {p.name for p in (results / DATASET_NAME).iterdir() if p.is_dir()} >= stock
    # stock nnU-Net's cascade route on the installed folders gives the same labels
    lowres, cascade = tmp_path / "stock_lowres", tmp_path / "stock_cascade"
    common = [
        "-i",
        str(test_images),
        "-d",
        str(DATASET_ID),
        "-p",
        CASCADE_PLANS,
        "-f",
        "all",
        "-tr",
        "nnUNetTrainer",
        "-device",
        "cpu",
        "-npp",
        "1",
        "-nps",
        "1",
        "--disable_tta",
    ]
    check(workspace.run("nnUNetv2_predict", *common, "-o", str(lowres), "-c", "3d_lowres",
                        nnUNet_results=str(results)))  # fmt: skip
    check(workspace.run("nnUNetv2_predict", *common, "-o", str(cascade), "-c",
                        "3d_cascade_fullres", "-prev_stage_predictions", str(lowres),
                        nnUNet_results=str(results)))  # fmt: skip
    assert_same_labels(cascade, nnunet_route["cascade"])
    # and predict --bundle runs both stages in one pass
    predict_bundle(bundle, test_images, tmp_path / "bundle_out", disable_tta=True, device="cpu")
    assert_same_labels(tmp_path / "bundle_out", nnunet_route["cascade"])
