"""Preset values per case: autoPET against a hand-made fixture (acceptance 3 of issue 26), KiTS23
and FLARE22 rules, missing cases.

autoPET: ``lab-midas/autoPET`` ``val_script.py`` at 8da2f7ed14fed5cdf0a63b7f1f4f7824d343864d:
false-positive volume = voxels of predicted 18-connected components without reference voxel,
false-negative volume likewise for the reference, times ``pixdim[1] pixdim[2] pixdim[3] / 1000``
ml; Dice ``2 overlap / (|ref| + |pred|)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_ext.evaluate.challenge import (
    autopet_values,
    missing_values,
    preset_case_values,
    preset_columns,
)
from nnunet_ext.evaluate.challenge_folder import evaluate_preset
from nnunet_ext.evaluate.presets import PRESETS, get_preset
from nnunet_ext.synthetic import write_labels_image


def _autopet_fixture() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((4, 6, 10), dtype=np.uint8)
    pred = np.zeros_like(ref)
    ref[1:3, 1:3, 1:3] = 1  # G1: 8 voxels, overlapped
    ref[1:3, 1:3, 7:9] = 1  # G2: 8 voxels, missed -> FNV
    pred[1:3, 1:3, 2:4] = 1  # P1: 8 voxels, 4 shared with G1
    pred[3, 3, 4] = 1  # P2: touches P1 at a corner only: its own 18-component -> FPV
    pred[0, 5, 8] = pred[1, 4, 8] = 1  # P4: two voxels sharing an edge: one component -> FPV
    return ref, pred


def test_autopet_equals_the_hand_fixture(tmp_path):
    ref, pred = _autopet_fixture()
    # spacing (x, y, z) 2 x 2 x 2.5 mm: 10 mm^3 = 0.01 ml per voxel
    values = autopet_values(ref > 0, pred > 0, (2.5, 2.0, 2.0))
    assert values["dice"] == pytest.approx(8 / 27, abs=1e-12)  # 2 * 4 / (16 + 11)
    assert values["fpv"] == pytest.approx(0.03, abs=1e-12)  # P2 (1) + P4 (2) voxels
    assert values["fnv"] == pytest.approx(0.08, abs=1e-12)  # G2 (8) voxels
    # the same through the folder path, with SimpleITK spacing (x, y, z)
    for folder, array in (("ref", ref), ("pred", pred)):
        (tmp_path / folder).mkdir()
        write_labels_image(array, tmp_path / folder / "case_001.nii.gz", (2.0, 2.0, 2.5))
    evaluation = evaluate_preset(tmp_path / "pred", tmp_path / "ref", "autopet")
    row = evaluation.rows[0]
    assert row["fpv_lesion"] == pytest.approx(0.03, abs=1e-9)
    assert row["fnv_lesion"] == pytest.approx(0.08, abs=1e-9)
    assert evaluation.score == pytest.approx(8 / 27, abs=1e-12)


def test_autopet_connectivity_is_18_not_26():
    ref, pred = _autopet_fixture()
    pred[0, 5, 8] = pred[1, 4, 8] = 0
    # with 26-connectivity P2 would join P1 (which touches G1) and the FPV would be 0
    assert autopet_values(ref > 0, pred > 0, (1.0, 1.0, 1.0))["fpv"] == pytest.approx(0.001)


def test_kits23_empty_rules_and_missing_case():
    preset = get_preset("kits23")
    ref = np.zeros((6, 8, 8), dtype=np.uint8)
    ref[1:4, 2:6, 2:6] = 1
    pred = ref.copy()
    pred[2, 3, 3] = 2  # a false-positive tumour: tumour and mass have an empty reference
    values = preset_case_values(preset, ref, pred, (0.8, 0.8, 3.0))
    assert values["dice_tumor"] == 0.0
    assert values["nsd_tumor"] == 0.0
    assert 0.0 < values["nsd_kidney_and_mass"] <= 1.0
    both_empty = preset_case_values(preset, ref, ref, (0.8, 0.8, 3.0))
    assert (both_empty["dice_tumor"], both_empty["nsd_tumor"]) == (1.0, 1.0)
    missing = missing_values(preset, ref, (0.8, 0.8, 3.0))
    assert missing["dice_kidney_and_mass"] == 0.0
    assert missing["dice_tumor"] == 1.0  # an empty prediction of an absent structure


def test_flare22_rounds_to_four_digits_and_crops_tubular_organs():
    preset = get_preset("flare22")
    ref = np.zeros((8, 10, 10), dtype=np.uint8)
    ref[1:6, 3:6, 3:6] = 5  # aorta: scored on its labelled slices 1..4 (upper one left out)
    pred = ref.copy()
    pred[6:8, 3:6, 3:6] = 5  # outside the scored slices: no effect
    pred[2, 2, 2] = 1  # a liver false positive
    values = preset_case_values(preset, ref, pred, (1.0, 1.0, 1.0))
    assert values["dice_aorta"] == 1.0
    assert values["nsd_aorta"] == 1.0
    assert (values["dice_liver"], values["nsd_liver"]) == (0.0, 0.0)
    partial = ref.copy()
    partial[1:6, 3:6, 5] = 0
    value = preset_case_values(preset, ref, partial, (1.0, 1.0, 1.0))["dice_aorta"]
    assert value == round(value, 4)
    assert 0 < value < 1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_columns_and_score_columns(name):
    preset = get_preset(name)
    columns = preset_columns(preset)
    assert set(preset.score_keys) <= set(columns)
    assert all(any(c.endswith(f"_{r}") for r in preset.regions) for c in columns)
    if preset.kind.startswith("brats2026"):
        penalties = missing_values(preset, None, (1.0, 1.0, 1.0))
        assert {v for k, v in penalties.items() if "hd95_mean" in k} == {373.0}
    assert not any(
        math.isinf(v)
        for v in preset_case_values(
            preset, np.zeros((3, 3, 3), np.uint8), np.zeros((3, 3, 3), np.uint8), (1, 1, 1)
        ).values()
    )
