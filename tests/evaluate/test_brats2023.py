"""Acceptance 3 of issue 26: BraTS 2023-2025 lesion-wise values equal a hand-made fixture.

The expected values are worked out by hand from the published scorer,
``rachitsaluja/BraTS-2023-Metrics`` ``eval.py`` at 0e272e697a193474ed75cef99cf2de110cc52d37
(``get_LesionWiseScores`` / ``get_LesionWiseResults``, BraTS-GLI: dilation 3, lesions of at most
50 mm^3 left out, penalty 374); the HD95 of a lesion pair is DeepMind's
``compute_robust_hausdorff(95)``, which the scorer calls, taken from surface-distance 0.1.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_ext.evaluate.brats2023 import brats2023_values
from tests.evaluate import oracles


def _fixture() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((20, 20, 40), dtype=bool)
    pred = np.zeros_like(ref)
    ref[2:6, 2:6, 2:6] = True  # L1: 64 mm^3, predicted exactly
    ref[2:5, 2:5, 14:17] = True  # L2: 27 mm^3 (<= 50: left out), missed
    ref[10:14, 10:14, 30:34] = True  # L3: 64 mm^3 ...
    ref[11:14, 11:14, 36:39] = True  # ... and 27 mm^3 two voxels away: one lesion (dilation 3)
    pred[2:6, 2:6, 2:6] = True
    pred[10:14, 10:14, 30:34] = True  # covers L3's first part only
    pred[15:17, 15:17, 20:22] = True  # a false positive, far from every lesion
    return ref, pred


def _robust_hd95(tmp_path, pairs) -> list[float]:
    request = []
    for i, (a, b) in enumerate(pairs):
        np.save(tmp_path / f"a{i}.npy", a)
        np.save(tmp_path / f"b{i}.npy", b)
        request.append(
            {
                "reference": str(tmp_path / f"a{i}.npy"),
                "prediction": str(tmp_path / f"b{i}.npy"),
                "spacing": [1.0, 1.0, 1.0],
                "tolerances": [1.0],
            }
        )
    return [answer["hd95"] for answer in oracles.ask({"task": "surface_dice", "cases": request})]


def test_lesionwise_values_equal_the_hand_fixture(tmp_path):
    ref, pred = _fixture()
    merged = np.zeros_like(ref)
    merged[10:20, :, 28:40] = ref[10:20, :, 28:40]
    lesion3_hd95, legacy_hd95 = _robust_hd95(
        tmp_path, [(merged, pred & (np.indices(ref.shape)[2] >= 28)), (ref, pred)]
    )
    values = brats2023_values(ref, pred, (1.0, 1.0, 1.0), dilation=3, volume_threshold=50.0)
    # kept lesions: L1 (Dice 1, HD95 0) and L3 merged (91 mm^3, Dice 2*64/(91+64)); 1 FP
    assert values["tp"] == 2
    assert values["fp"] == 1
    assert values["fn"] == 0  # L2 is missed but left out (27 <= 50)
    assert values["lesionwise_dice"] == pytest.approx((1.0 + 128 / 155) / 3, abs=1e-12)
    assert values["lesionwise_hd95"] == pytest.approx((0.0 + lesion3_hd95 + 374.0) / 3, abs=1e-9)
    assert lesion3_hd95 > 0
    # legacy: 182 reference, 136 predicted voxels, 128 shared
    assert values["legacy_dice"] == pytest.approx(256 / 318, abs=1e-12)
    assert values["legacy_hd95"] == pytest.approx(legacy_hd95, abs=1e-9)


def test_no_dilation_splits_the_lesion_and_edge_values():
    ref, pred = _fixture()
    ref[11:14, 11:14, 36:39] = False
    ref[11:14, 11:14, 38:40] = True  # 18 mm^3, four voxels from L3
    # dilation 1 (metastases) leaves the parts apart: the small one is left out, L3 scores 1
    split = brats2023_values(ref, pred, (1.0, 1.0, 1.0), dilation=1, volume_threshold=50.0)
    assert split["lesionwise_dice"] == pytest.approx((1.0 + 1.0) / 3, abs=1e-12)
    # dilation 3 (glioma) joins them: 82 mm^3 against 64 predicted
    joined = brats2023_values(ref, pred, (1.0, 1.0, 1.0), dilation=3, volume_threshold=50.0)
    assert joined["lesionwise_dice"] == pytest.approx((1.0 + 128 / 146) / 3, abs=1e-12)
    empty = np.zeros((6, 6, 6), dtype=bool)
    both = brats2023_values(empty, empty, (1.0, 1.0, 1.0))
    assert (both["lesionwise_dice"], both["lesionwise_hd95"]) == (1.0, 0.0)
    assert (both["legacy_dice"], both["legacy_hd95"]) == (1.0, 0.0)
    only_fp = empty.copy()
    only_fp[2:4, 2:4, 2:4] = True
    fp = brats2023_values(empty, only_fp, (1.0, 1.0, 1.0))
    assert (fp["lesionwise_dice"], fp["lesionwise_hd95"], fp["fp"]) == (0.0, 374.0, 1)
    assert (fp["legacy_dice"], fp["legacy_hd95"]) == (0.0, 374.0)
