from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from nnunet_ext.postprocess import fill_holes
from nnunet_ext.postprocess.holes import find_holes
from tests.postprocess._reference import ref_fill_holes


def _nested_3d() -> np.ndarray:
    """Myocardium (1) shell around LV (2) with a background pocket inside the LV."""
    labels = np.zeros((7, 7, 7), dtype=np.uint8)
    labels[1:6, 1:6, 1:6] = 1
    labels[2:5, 2:5, 2:5] = 2
    labels[3, 3, 3] = 0
    return labels


def test_pocket_in_nested_label_becomes_inner_label_never_outer():
    labels = _nested_3d()
    assert fill_holes(labels, label_ids=[1, 2])[3, 3, 3] == 2
    assert fill_holes(labels, label_ids=[1])[3, 3, 3] == 0  # LV not requested: stays background


def test_nested_label_is_never_overwritten():
    labels = _nested_3d()
    labels[3, 3, 3] = 2  # LV fully inside myocardium: MONAI's FillHoles would overwrite it with 1
    result = fill_holes(labels, label_ids=[1, 2])
    np.testing.assert_array_equal(result, labels)


@pytest.mark.parametrize(
    ("labels", "label_ids", "expected"),
    [
        pytest.param(
            np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.uint8),
            [1],
            np.ones((3, 3), dtype=np.uint8),
            id="2d-simple",
        ),
        pytest.param(
            np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=np.uint8),
            [1],
            np.array([[1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=np.uint8),
            id="2d-touches-border",
        ),
        pytest.param(
            np.array([[0, 1, 0], [1, 0, 3], [0, 3, 0]], dtype=np.uint8),
            [1, 3],
            np.array([[0, 1, 0], [1, 1, 3], [0, 3, 0]], dtype=np.uint8),
            id="2d-tie-smaller-wins",
        ),
        pytest.param(
            np.array([[0, 1, 0], [1, 0, 3], [0, 3, 0]], dtype=np.uint8),
            [3],
            np.array([[0, 1, 0], [1, 0, 3], [0, 3, 0]], dtype=np.uint8),
            id="2d-tie-winner-not-requested",
        ),
        pytest.param(
            np.array([[0, 2, 3, 0], [2, 0, 0, 3], [0, 3, 3, 0]], dtype=np.uint8),
            [2, 3],
            np.array([[0, 2, 3, 0], [2, 3, 3, 3], [0, 3, 3, 0]], dtype=np.uint8),
            id="2d-majority",
        ),
        pytest.param(
            np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=np.uint8),
            [1],
            np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=np.uint8),
            id="2d-diagonal-touch-is-still-a-hole",
        ),
        pytest.param(
            np.zeros((4, 4), dtype=np.uint8), [1], np.zeros((4, 4), dtype=np.uint8), id="empty"
        ),
    ],
)
def test_fill_holes_table(labels, label_ids, expected):
    result = fill_holes(labels, label_ids=label_ids)
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == labels.dtype


def test_single_label_matches_binary_fill_holes():
    rng = np.random.default_rng(3)
    mask = rng.random((12, 13, 14)) < 0.6
    labels = mask.astype(np.uint8)
    expected = ndimage.binary_fill_holes(mask).astype(np.uint8)
    np.testing.assert_array_equal(fill_holes(labels, label_ids=[1]), expected)
    np.testing.assert_array_equal(find_holes(labels), expected.astype(bool) & ~mask)


@pytest.mark.parametrize("shape", [(15, 16), (8, 9, 10)], ids=["2d", "3d"])
@pytest.mark.parametrize("seed", range(4))
def test_oracle_against_scipy(shape, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 4, size=shape).astype(np.uint8)
    labels[rng.random(shape) < 0.3] = 0
    for label_ids in ([1, 2, 3], [2], [1, 3]):
        np.testing.assert_array_equal(
            fill_holes(labels, label_ids=label_ids), ref_fill_holes(labels, label_ids)
        )


label_maps = hnp.arrays(
    np.uint8,
    st.one_of(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
        hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
    ),
    elements=st.integers(0, 3),
)


@settings(max_examples=60, deadline=None)
@given(labels=label_maps, label_ids=st.sets(st.integers(1, 3), min_size=1))
def test_property_fill_only_background_and_idempotent(labels, label_ids):
    once = fill_holes(labels, label_ids=label_ids)
    changed = once != labels
    assert np.all(labels[changed] == 0)
    assert np.all(np.isin(once[changed], list(label_ids)))
    np.testing.assert_array_equal(fill_holes(once, label_ids=label_ids), once)
    np.testing.assert_array_equal(once, ref_fill_holes(labels, label_ids))


def test_errors():
    with pytest.raises(ValueError, match="label_ids must be foreground"):
        fill_holes(np.zeros((3, 3), dtype=np.uint8), label_ids=[0])
    with pytest.raises(TypeError, match="integer labels"):
        fill_holes(np.zeros((3, 3)), label_ids=[1])


def test_background_voxel_on_an_image_edge_is_never_a_hole():
    # Regression: fill_voids 2.1 fills voxel (0, 0, 1) here, a background voxel on two image
    # faces whose face neighbours are all foreground (found by the demo on a fused prediction).
    labels = np.array(
        [[[1, 0, 1], [1, 1, 0], [0, 1, 1]], [[0, 1, 1], [0, 1, 1], [1, 0, 1]]], dtype=np.uint8
    )
    assert not find_holes(labels)[0, 0, 1]
    np.testing.assert_array_equal(
        find_holes(labels), ndimage.binary_fill_holes(labels != 0) & (labels == 0)
    )
    np.testing.assert_array_equal(fill_holes(labels, label_ids=[1]), ref_fill_holes(labels, [1]))


def test_dense_small_volumes_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(300):
        labels = (rng.random((2, 3, 3)) < 0.7).astype(np.uint8) * rng.integers(1, 3, (2, 3, 3))
        labels = labels.astype(np.uint8)
        np.testing.assert_array_equal(
            find_holes(labels), ndimage.binary_fill_holes(labels != 0) & (labels == 0)
        )
        np.testing.assert_array_equal(
            fill_holes(labels, label_ids=[1, 2]), ref_fill_holes(labels, [1, 2])
        )
