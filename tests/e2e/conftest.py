"""Real nnU-Net on a tiny synthetic dataset: planned and preprocessed once per test session."""

from __future__ import annotations

import json

import pytest
from nnunet_workspace import DATASET_ID, DATASET_NAME, NnunetWorkspace, check

from nnunet_ext.synthetic import make_raw_dataset


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
            "--verify_dataset_integrity",
        )
    )
    # One validation case per fold keeps nnU-Net's final validation short.
    cases = [f"heart_{i:03d}" for i in range(6)]
    splits = [{"train": [c for c in cases if c != val], "val": [val]} for val in cases[:2]]
    (ws.preprocessed / DATASET_NAME / "splits_final.json").write_text(json.dumps(splits))
    return ws
