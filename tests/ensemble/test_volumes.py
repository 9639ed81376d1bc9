"""The region-volume warning of region ensembles (nnU-Net #2401)."""

from __future__ import annotations

import logging

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nnunet_ext.ensemble import EnsembleSpec, ensemble_folders
from nnunet_ext.ensemble.volumes import region_volume_warnings
from nnunet_ext.synthetic import write_prediction_folder
from nnunet_ext.synthetic_regions import REGION_LABELS, make_region_case, region_masks


@given(
    fused=st.integers(0, 10_000),
    members=st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
)
def test_flagged_exactly_when_every_member_is_more_than_a_factor_2_away(fused, members):
    flagged = bool(region_volume_warnings("c", [fused], [[v] for v in members], ["WT"]))
    assert flagged == all(fused > 2 * v or v > 2 * fused for v in members)


def region_folders(tmp_path, rng, shift=0):
    _, labels = make_region_case(rng, shape=(8, 24, 24))
    masks = region_masks(labels)
    folders = []
    for m in range(2):
        member = np.roll(masks, shift * m, axis=3)  # shifted: the members disagree
        p = np.where(member, 0.8, 0.1 * rng.random(masks.shape)).astype(np.float32)
        folders.append(
            write_prediction_folder(
                tmp_path / f"m{m}", {"c0": p}, labels=REGION_LABELS, regions_class_order=[1, 2, 3]
            )
        )
    return folders


def test_ensemble_warns_when_the_fused_region_is_far_from_every_member(tmp_path, caplog):
    folders = region_folders(tmp_path, np.random.default_rng(0))
    # agreeing members, with equal weights and with a tuned threshold: nothing to flag
    spec = EnsembleSpec.from_weights(folders, rules=[{"label": "WT", "threshold": 0.05}])
    with caplog.at_level(logging.WARNING):
        ensemble_folders(folders, tmp_path / "plain")
        ensemble_folders(None, tmp_path / "low", spec=spec)
    assert "fused volume" not in caplog.text
    # members that disagree on where the tumour is: their mean (0.4) is below 0.5 nearly
    # everywhere either predicts it, the fused regions shrink far below every member's
    apart = region_folders(tmp_path / "apart", np.random.default_rng(0), shift=12)
    with caplog.at_level(logging.WARNING):
        ensemble_folders(apart, tmp_path / "fused_apart")
    assert "case 'c0': the fused volume of region WT" in caplog.text
