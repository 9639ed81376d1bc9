"""Reading region CV data: the compact form scores exactly as the whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_ext.ensemble import LabelRules, fuse_probabilities, probabilities_to_labels
from nnunet_ext.synthetic import write_labels_image, write_prediction_folder
from nnunet_ext.synthetic_regions import REGION_LABELS, make_region_case, region_masks
from nnunet_ext.tune.region_data import load_region_data, region_dataset
from nnunet_ext.tune.region_search import region_case_dice


def write(tmp_path, rng, channels=3):
    reference = tmp_path / "ref"
    reference.mkdir()
    labels, probabilities = {}, ({}, {})
    for case in ("a", "b", "c"):
        _, labels[case] = make_region_case(rng, shape=(6, 20, 20))
        write_labels_image(labels[case], reference / f"{case}.nii.gz", (1, 1, 1))
        for m in range(2):
            p = rng.random((channels, 6, 20, 20)).astype(np.float32)
            p[p < 0.6] *= 0.01  # most voxels near 0: left out of the compact form
            probabilities[m][case] = p
    folders = [
        write_prediction_folder(
            tmp_path / f"m{m}",
            probabilities[m],
            labels=REGION_LABELS,
            regions_class_order=[1, 2, 3],
        )
        for m in range(2)
    ]
    return folders, reference, labels, probabilities


def test_compact_dice_equals_the_whole_arrays(tmp_path):
    rng = np.random.default_rng(0)
    folders, reference, labels, probabilities = write(tmp_path, rng)
    spec = region_dataset(folders, reference)[0]
    data, cases, left_out, names = load_region_data(folders, reference, spec)
    assert names == ["WT", "TC", "ET"]
    assert cases == ["a", "b", "c"]
    assert left_out == {}
    assert data.reference.size < 3 * 6 * 20 * 20  # voxels left out
    weights = np.array([[0.3, 0.5, 0.9], [0.7, 0.5, 0.1]])
    thresholds = [0.2, 0.5, 0.65]
    got = region_case_dice(data, weights, thresholds)
    for row, case in enumerate(cases):
        fused = fuse_probabilities([probabilities[m][case] for m in range(2)], weights)
        rules = LabelRules.build(3, thresholds=dict(enumerate(thresholds)))
        pred = region_masks(
            probabilities_to_labels(fused, regions_class_order=[1, 2, 3], rules=rules)
        )
        truth = region_masks(labels[case])
        expected = [
            2 * (p & t).sum() / (p.sum() + t.sum()) for p, t in zip(pred, truth, strict=True)
        ]
        np.testing.assert_allclose(got[row], expected)


def test_a_member_with_the_wrong_channel_count_is_named(tmp_path):
    rng = np.random.default_rng(1)
    folders, reference, _, _ = write(tmp_path, rng)
    bad = {"a": rng.random((2, 6, 20, 20)).astype(np.float32)}
    write_prediction_folder(
        folders[1],
        bad,
        labels=REGION_LABELS,
        regions_class_order=[1, 2, 3],
        write_segmentations=False,
    )
    spec = region_dataset(folders, reference)[0]
    with pytest.raises(
        ValueError, match=r"a\.npz: probabilities must have shape \(3, \*\(6, 20, 20\)\)"
    ):
        load_region_data(folders, reference, spec)
