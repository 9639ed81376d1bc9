"""Shared test set-up: a clean environment for every test, and real nnU-Net workspaces.

``workspace`` (a tiny synthetic dataset, planned and preprocessed by the real
``nnUNetv2_plan_and_preprocess``) and ``trained_fold`` (a real 3-epoch ``-tr CustomEpochs``
training with ``--npz``) are session-wide and built only when a test asks for them, so every
area's real-nnU-Net tests share one preprocessing run and one training run.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from nnunet_workspace import (
    CASCADE_PLANS,
    DATASET_ID,
    DATASET_NAME,
    FAST,
    NnunetWorkspace,
    check,
)

from nnunet_ext.synthetic import make_raw_dataset
from nnunet_ext.synthetic_regions import make_region_raw_dataset

# Settings our trainers read; a developer's shell must not leak them into tests.
_TRAINING_VARS = (
    "nnUNet_n_epochs",
    "nnUNet_iters_per_epoch",
    "nnUNet_val_iters_per_epoch",
    "nnUNet_patience",
    "nnUNet_min_delta",
    "nnUNet_min_epochs",
    "nnUNet_target_dice",
    "nnUNet_cooldown_epochs",
    "nnUNet_label_checkpoints",
    "nnUNet_forgetting_fraction",
    "nnUNet_forgetting_epochs",
    "nnUNet_stop_on_forgetting",
    "nnUNet_seed",
)


@pytest.fixture(autouse=True)
def _clean_training_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _TRAINING_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> NnunetWorkspace:
    """6 training and 2 test cases of 16x48x48, planned and preprocessed for 3d_fullres."""
    root = tmp_path_factory.mktemp("nnunet")
    ws = NnunetWorkspace(root / "raw", root / "preprocessed", root / "results")
    make_raw_dataset(ws.raw, dataset_id=DATASET_ID, num_training=6, num_test=2)
    check(
        ws.run(
            "nnUNetv2_plan_and_preprocess",
            "-d",
            str(DATASET_ID),
            "-c",
            "3d_fullres",
            "-np",
            "1",
            "-npfp",
            "1",
            "--verify_dataset_integrity",
        )
    )
    # One validation case per fold keeps nnU-Net's final validation short.
    cases = [f"heart_{i:03d}" for i in range(6)]
    splits = [{"train": [c for c in cases if c != val], "val": [val]} for val in cases[:2]]
    (ws.preprocessed / DATASET_NAME / "splits_final.json").write_text(json.dumps(splits))
    return ws


@pytest.fixture(scope="session")
def trained_fold(workspace: NnunetWorkspace) -> Path:
    """Fold 0 of a real `nnUNet_n_epochs=3` CustomEpochs training with --npz (2 iters/epoch)."""
    check(
        workspace.run(
            "nnUNetv2_train",
            str(DATASET_ID),
            "3d_fullres",
            "0",
            "-tr",
            "CustomEpochs",
            "-device",
            "cpu",
            "--npz",
            nnUNet_n_epochs="3",
            **FAST,
        )
    )
    return workspace.fold_dir("CustomEpochs")


@pytest.fixture(scope="session")
def predicted_test_set(workspace: NnunetWorkspace, trained_fold: Path) -> Path:
    """The real `nnUNetv2_predict -tr CustomEpochs --save_probabilities` output for imagesTs."""
    out = workspace.raw.parent / "predicted_ts"
    images = workspace.raw / DATASET_NAME / "imagesTs"
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
            "3d_fullres",
            "-f",
            "0",
            "-tr",
            "CustomEpochs",
            "--save_probabilities",
            "-device",
            "cpu",
            "-npp",
            "1",
            "-nps",
            "1",
        )
    )
    return out


@pytest.fixture(scope="session")
def ensemble_models(workspace: NnunetWorkspace, trained_fold: Path) -> dict[str, Path]:
    """Two real model folders with two folds each: CustomEpochs 3d_fullres and 2d.

    3d_fullres fold 0 is ``trained_fold``; 3d_fullres fold 1 and 2d folds 0 and 1 are trained
    here for one epoch (2 iterations) each, after preprocessing the 2d configuration.
    """
    check(workspace.run("nnUNetv2_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1"))
    for configuration, fold in (("3d_fullres", 1), ("2d", 0), ("2d", 1)):
        check(
            workspace.run(
                "nnUNetv2_train",
                str(DATASET_ID),
                configuration,
                str(fold),
                "-tr",
                "CustomEpochs",
                "-device",
                "cpu",
                nnUNet_n_epochs="1",
                **FAST,
            )
        )
    return {
        configuration: workspace.fold_dir("CustomEpochs", 0, configuration).parent
        for configuration in ("2d", "3d_fullres")
    }


REGION_DATASET = "Dataset502_SyntheticTumour"


@pytest.fixture(scope="session")
def region_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real region-based (sigmoid) models: 2d and 3d_fullres, folds 0 and 1, CV gathered.

    A BraTS-style dataset (nested WT ⊃ TC ⊃ ET, ``regions_class_order``) of 6 cases of 16x48x48,
    planned and preprocessed by the real ``nnUNetv2_plan_and_preprocess``; each configuration
    trained by ``nnUNetv2_train -tr CustomEpochs --npz`` for 1 epoch of 2 iterations per fold,
    3 validation cases per fold. Returns each configuration's CV folder (both folds'
    ``validation/`` with the model's ``dataset.json`` and ``plans.json``, as nnU-Net's
    ``nnUNetv2_ensemble`` reads them), ``"model 2d"`` and ``"model 3d_fullres"`` (the model
    folders), ``"images"`` (``imagesTr``) and ``"gt"``, nnU-Net's ``gt_segmentations``.
    """
    root = tmp_path_factory.mktemp("nnunet_regions")
    ws = NnunetWorkspace(root / "raw", root / "preprocessed", root / "results")
    make_region_raw_dataset(ws.raw, dataset_id=502, num_training=6, num_test=0)
    check(
        ws.run(
            "nnUNetv2_plan_and_preprocess",
            "-d",
            "502",
            "-c",
            "2d",
            "3d_fullres",
            "-np",
            "1",
            "1",
            "-npfp",
            "1",
        )
    )
    cases = [f"tumour_{i:03d}" for i in range(6)]
    splits = [
        {"train": cases[3:], "val": cases[:3]},
        {"train": cases[:3], "val": cases[3:]},
    ]
    (ws.preprocessed / REGION_DATASET / "splits_final.json").write_text(json.dumps(splits))
    out: dict[str, Path] = {"gt": ws.preprocessed / REGION_DATASET / "gt_segmentations"}
    for configuration in ("2d", "3d_fullres"):
        model = ws.results / REGION_DATASET / f"CustomEpochs__nnUNetPlans__{configuration}"
        cv = root / f"cv_{configuration}"
        cv.mkdir()
        for fold in (0, 1):
            check(
                ws.run(
                    "nnUNetv2_train",
                    "502",
                    configuration,
                    str(fold),
                    "-tr",
                    "CustomEpochs",
                    "-device",
                    "cpu",
                    "--npz",
                    nnUNet_n_epochs="1",
                    **FAST,
                )
            )
            for file in (model / f"fold_{fold}" / "validation").iterdir():
                if file.suffix in (".npz", ".pkl") or file.name.endswith(".nii.gz"):
                    shutil.copy(file, cv / file.name)
        for name in ("dataset.json", "plans.json"):
            shutil.copy(model / name, cv / name)
        out[configuration] = cv
        out[f"model {configuration}"] = model
    out["images"] = ws.raw / REGION_DATASET / "imagesTr"
    return out


@pytest.fixture(scope="session")
def cascade_model(workspace: NnunetWorkspace) -> Path:
    """A real tiny cascade: ``3d_lowres`` then ``3d_cascade_fullres``, fold ``all``, 1 epoch each.

    nnU-Net plans a ``3d_lowres`` only when the fullres patch covers under a quarter of the
    median image (``ExperimentPlanner.lowres_creation_threshold``); our 16x48x48 images fit one
    patch, so this writes plans ``nnUNetPlansCascade``: the workspace's plans plus the two
    configurations the planner writes for large images, a ``3d_lowres`` (in-plane spacing
    doubled, patch 16x24x24, ``next_stage``) and ``3d_cascade_fullres`` (``inherits_from``
    3d_fullres, ``previous_stage`` 3d_lowres; its data is the workspace's 3d_fullres data).
    Fold ``all`` makes the lowres validation predict every training case, which the cascade
    trains on (``predicted_next_stage``). Returns the cascade's model folder.
    """
    folder = workspace.preprocessed / DATASET_NAME
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    full = plans["configurations"]["3d_fullres"]
    lowres = copy.deepcopy(full)
    lowres.update(
        data_identifier=f"{CASCADE_PLANS}_3d_lowres",
        spacing=[full["spacing"][0], *(2 * s for s in full["spacing"][1:])],
        patch_size=[16, 24, 24],
        median_image_size_in_voxels=[16.0, 24.0, 24.0],
        next_stage="3d_cascade_fullres",
    )
    plans["plans_name"] = CASCADE_PLANS
    plans["configurations"]["3d_lowres"] = lowres
    plans["configurations"]["3d_cascade_fullres"] = {
        "inherits_from": "3d_fullres",
        "previous_stage": "3d_lowres",
    }
    (folder / f"{CASCADE_PLANS}.json").write_text(json.dumps(plans, indent=2))
    check(
        workspace.run(
            "nnUNetv2_preprocess", "-d", str(DATASET_ID), "-plans_name", CASCADE_PLANS,
            "-c", "3d_lowres", "-np", "1",
        )
    )  # fmt: skip
    for configuration in ("3d_lowres", "3d_cascade_fullres"):
        check(
            workspace.run(
                "nnUNetv2_train", str(DATASET_ID), configuration, "all", "-p", CASCADE_PLANS,
                "-tr", "CustomEpochs", "-device", "cpu", nnUNet_n_epochs="1", **FAST,
            )
        )  # fmt: skip
    return workspace.results / DATASET_NAME / f"CustomEpochs__{CASCADE_PLANS}__3d_cascade_fullres"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray (2 CPUs, no dashboard) shared by the Ray tests; yields its address.

    Commands run in this process find it connected and use it; subprocesses join it with
    ``--ray-address ADDRESS``. Its workers inherit this environment (``PYTHONPATH``).
    """
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
