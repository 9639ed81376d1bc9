"""Every statement of the conventions page (docs/reference/conventions.md) about a tie, a
threshold, a default connectivity or an empty case, checked on its edge case (one test per
statement). The page names this file; keep the two in step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.ensemble.fusion import probabilities_to_labels
from nnunet_ext.io import as_exact_labels
from nnunet_ext.postprocess.components import keep_largest_component, remove_small_components
from nnunet_ext.postprocess.holes import fill_holes
from nnunet_ext.postprocess.plan import PostprocessingPlan, apply_plan

CONVENTIONS = Path(__file__).resolve().parents[1] / "docs" / "reference" / "conventions.md"


def test_the_conventions_page_names_this_test_and_the_rules_it_checks():
    text = CONVENTIONS.read_text()
    assert "tests/test_readme_conventions.py" in text
    for section in ("## Argmax and regions", "## Connectivity", "## Small objects"):
        assert section in text
    assert "## Hole filling" in text
    assert "within 1e-3 of an integer" in text


def test_argmax_ties_go_to_the_lower_label():
    probabilities = np.array([[0.2, 0.4], [0.4, 0.3], [0.4, 0.3]], dtype=np.float32)
    assert probabilities_to_labels(probabilities).tolist() == [1, 0]


def test_a_region_is_set_only_above_one_half():
    probabilities = np.array([[0.5, 0.5001]], dtype=np.float32)
    labels = probabilities_to_labels(probabilities, regions_class_order=[1])
    assert labels.tolist() == [0, 1]


def test_min_size_keeps_a_component_of_exactly_n_voxels():
    labels = np.zeros((1, 12), np.uint8)
    labels[0, 0:3] = 1  # 3 voxels
    labels[0, 5:7] = 1  # 2 voxels
    out = remove_small_components(labels, min_voxels={1: 3})
    assert out[0, 0:3].tolist() == [1, 1, 1]
    assert out[0, 5:7].tolist() == [0, 0]


def test_min_volume_keeps_a_component_of_exactly_that_volume():
    labels = np.zeros((1, 1, 12), np.uint8)
    labels[0, 0, 0:3] = 1  # 3 voxels of 2 mm3: 6 mm3
    labels[0, 0, 5:7] = 1  # 4 mm3
    plan = PostprocessingPlan(min_volume_mm3={1: 6.0})
    out = apply_plan(labels, plan, spacing=(1.0, 1.0, 2.0))
    assert out[0, 0, 0:3].tolist() == [1, 1, 1]
    assert out[0, 0, 5:7].tolist() == [0, 0]


def test_small_object_removal_defaults_to_full_connectivity():
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = labels[1, 1] = 1  # touch only at a corner
    assert remove_small_components(labels, min_voxels={1: 2})[1, 1] == 1  # one component of 2
    faces = remove_small_components(labels, min_voxels={1: 2}, connectivity=1)
    assert not faces.any()  # two components of 1


def test_keep_largest_keeps_every_component_tied_for_largest_and_is_full_connectivity():
    labels = np.zeros((5, 7), np.uint8)
    labels[0, 0:2] = labels[4, 5:7] = 1  # two components of 2
    labels[2, 2] = 1  # one of 1
    out = keep_largest_component(labels, label_ids=[1])
    assert out.sum() == 4
    assert out[2, 2] == 0
    diagonal = np.zeros((4, 4), np.uint8)
    diagonal[0, 0] = diagonal[1, 1] = diagonal[3, 3] = 1
    assert (
        keep_largest_component(diagonal, label_ids=[1]).tolist()
        == ((np.arange(4)[:, None] == np.arange(4)[None, :]) & (np.arange(4) < 2)[:, None])
        .astype(np.uint8)
        .tolist()
    )


def test_a_hole_takes_the_label_with_most_distinct_face_neighbour_voxels():
    """An L-shaped hole: label 1 has 3 distinct neighbour voxels but 4 (hole, neighbour) pairs
    (its corner voxel touches two hole voxels); label 2 has 4 distinct voxels and 4 pairs.
    Counting pairs would tie and give label 1; counting distinct voxels gives label 2."""
    labels = np.full((6, 6), 2, np.uint8)
    hole = [(2, 2), (2, 3), (3, 2)]
    for voxel in hole:
        labels[voxel] = 0
    for voxel in [(3, 3), (1, 2), (1, 3)]:
        labels[voxel] = 1
    out = fill_holes(labels, label_ids=[1, 2])
    assert [int(out[v]) for v in hole] == [2, 2, 2]


def test_hole_ties_go_to_the_smaller_label():
    labels = np.array([[0, 1, 0], [3, 0, 1], [0, 3, 0]], np.uint8)
    labels = np.pad(labels, 1, constant_values=5)
    assert fill_holes(labels, label_ids=[1, 3])[2, 2] == 1


@pytest.mark.parametrize(
    ("neighbours", "filled"),
    [
        ({"LV": 4, "MYO": 0}, "LV"),  # a pocket touching only LV becomes LV
        ({"LV": 1, "MYO": 3}, "MYO"),  # one touching more myocardium does not
    ],
)
def test_a_pocket_in_the_lv_becomes_lv_only_when_it_touches_only_lv(neighbours, filled):
    lv, myo = 3, 2
    labels = np.full((5, 5), lv, np.uint8)
    labels[2, 2] = 0
    around = [(1, 2), (3, 2), (2, 1), (2, 3)]
    for voxel in around[: neighbours["MYO"]]:
        labels[voxel] = myo
    out = fill_holes(labels, label_ids=[myo, lv])
    assert out[2, 2] == {"LV": lv, "MYO": myo}[filled]


def test_float_labels_within_the_tolerance_are_rounded_and_beyond_it_refused():
    assert as_exact_labels(np.array([1.25, 2.75]), tolerance=0.25).tolist() == [1, 3]  # inclusive
    with pytest.raises(ValueError, match=r"within 0\.25 of an integer"):
        as_exact_labels(np.array([1.2500001]), tolerance=0.25)
