from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnunet_ext.postprocess import (
    keep_largest_component,
    keep_largest_foreground_component,
    remove_small_components,
)
from tests.postprocess._reference import (
    ref_keep_largest,
    ref_keep_largest_foreground,
    ref_remove_small,
)

DIAGONAL = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize(
    ("labels", "label_ids", "connectivity", "expected"),
    [
        pytest.param(DIAGONAL, [1], None, DIAGONAL, id="2d-diagonal-full-is-one-component"),
        pytest.param(DIAGONAL, [1], 1, DIAGONAL, id="2d-diagonal-faces-three-tied-all-kept"),
        pytest.param(
            np.array([[1, 1, 0, 1]], dtype=np.uint8),
            [1],
            None,
            np.array([[1, 1, 0, 0]], dtype=np.uint8),
            id="2d-smaller-removed",
        ),
        pytest.param(
            np.array([[1, 0, 2, 2, 0, 2]], dtype=np.uint8),
            [1],
            None,
            np.array([[1, 0, 2, 2, 0, 2]], dtype=np.uint8),
            id="other-label-untouched",
        ),
        pytest.param(
            np.zeros((3, 3), dtype=np.uint8),
            [1, 2],
            None,
            np.zeros((3, 3), dtype=np.uint8),
            id="empty",
        ),
        pytest.param(
            np.array([[1, 1, 0, 2, 2, 2, 0, 2]], dtype=np.uint8),
            [2],
            None,
            np.array([[1, 1, 0, 2, 2, 2, 0, 0]], dtype=np.uint8),
            id="label-2-only",
        ),
    ],
)
def test_keep_largest_table(labels, label_ids, connectivity, expected):
    result = keep_largest_component(labels, label_ids=label_ids, connectivity=connectivity)
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == labels.dtype


def test_keep_largest_3d_connectivity_changes_result():
    labels = np.zeros((5, 5, 5), dtype=np.uint8)
    labels[0, 0, 0] = labels[1, 1, 1] = labels[2, 2, 2] = 1  # corner-connected chain
    labels[4, 4, 0] = labels[4, 4, 1] = 1  # a 2-voxel face-connected pair
    full = keep_largest_component(labels, label_ids=[1])
    faces = keep_largest_component(labels, label_ids=[1], connectivity=1)
    assert full[1, 1, 1] == 1
    assert full[4, 4, 0] == 0
    assert faces[1, 1, 1] == 0
    assert faces[4, 4, 0] == 1
    edges = keep_largest_component(labels, label_ids=[1], connectivity=2)
    np.testing.assert_array_equal(edges, faces)


def test_keep_largest_does_not_modify_input():
    labels = np.array([[1, 0, 1, 1]], dtype=np.uint8)
    before = labels.copy()
    keep_largest_component(labels, label_ids=[1])
    np.testing.assert_array_equal(labels, before)


def test_keep_largest_foreground_union():
    labels = np.array([[1, 2, 0, 3, 0, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(
        keep_largest_foreground_component(labels), np.array([[1, 2, 0, 0, 0, 0]], dtype=np.uint8)
    )
    np.testing.assert_array_equal(
        keep_largest_foreground_component(labels, label_ids=[3]),
        np.array([[1, 2, 0, 3, 0, 3]], dtype=np.uint8),
    )


def test_remove_small_threshold_is_exclusive_and_per_label():
    labels = np.array([[1, 1, 0, 1, 0, 2, 0, 2, 2, 2]], dtype=np.uint8)
    result = remove_small_components(labels, min_voxels={1: 2, 2: 2})
    np.testing.assert_array_equal(
        result, np.array([[1, 1, 0, 0, 0, 0, 0, 2, 2, 2]], dtype=np.uint8)
    )


def _random_labels(
    seed: int, shape: tuple[int, ...], num_labels: int = 3, density: float = 0.45
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, num_labels + 1, size=shape).astype(np.uint8)
    labels[rng.random(shape) > density] = 0
    return labels


@pytest.mark.parametrize("shape", [(17, 19), (7, 9, 11)], ids=["2d", "3d"])
@pytest.mark.parametrize("connectivity", [1, 2, 3, None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_against_scipy(shape, connectivity, seed):
    if connectivity is not None and connectivity > len(shape):
        with pytest.raises(ValueError, match="connectivity must be in"):
            keep_largest_component(
                _random_labels(seed, shape), label_ids=[1], connectivity=connectivity
            )
        return
    labels = _random_labels(seed, shape)
    np.testing.assert_array_equal(
        keep_largest_component(labels, label_ids=[1, 2, 3], connectivity=connectivity),
        ref_keep_largest(labels, [1, 2, 3], connectivity),
    )
    np.testing.assert_array_equal(
        keep_largest_component(labels, label_ids=[2], connectivity=connectivity),
        ref_keep_largest(labels, [2], connectivity),
    )
    np.testing.assert_array_equal(
        keep_largest_foreground_component(labels, connectivity=connectivity),
        ref_keep_largest_foreground(labels, connectivity),
    )
    sizes = {1: 3, 3: 2.5}
    np.testing.assert_array_equal(
        remove_small_components(labels, min_voxels=sizes, connectivity=connectivity),
        ref_remove_small(labels, sizes, connectivity),
    )


def test_matches_nnunet_kernel():
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )

    labels = _random_labels(5, (9, 10, 11), density=0.35)
    expected = labels.copy()
    for label in (1, 2, 3):
        expected = remove_all_but_largest_component_from_segmentation(expected, label)
    np.testing.assert_array_equal(keep_largest_component(labels, label_ids=[1, 2, 3]), expected)
    union = remove_all_but_largest_component_from_segmentation(labels, [1, 2, 3])
    np.testing.assert_array_equal(keep_largest_foreground_component(labels), union)


label_maps = hnp.arrays(
    np.uint8,
    st.one_of(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=5),
    ),
    elements=st.integers(0, 3),
)


@settings(max_examples=60, deadline=None)
@given(labels=label_maps, connectivity=st.sampled_from([1, 2, None]))
def test_property_keep_largest_is_subset(labels, connectivity):
    result = keep_largest_component(labels, label_ids=[1, 2, 3], connectivity=connectivity)
    changed = result != labels
    assert np.all(result[changed] == 0)  # only removals
    for label in (1, 2, 3):  # each present label keeps at least one voxel
        assert (result == label).any() == (labels == label).any()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(
            lambda: keep_largest_component(np.zeros((2, 2), dtype=np.float32), label_ids=[1]),
            TypeError,
            "integer labels",
            id="float-array",
        ),
        pytest.param(
            lambda: keep_largest_component(np.zeros(4, dtype=np.uint8), label_ids=[1]),
            ValueError,
            "2D or 3D",
            id="1d",
        ),
        pytest.param(
            lambda: keep_largest_component(np.zeros((2, 2), dtype=np.uint8), label_ids=[0]),
            ValueError,
            "label_ids must be foreground",
            id="background-label",
        ),
        pytest.param(
            lambda: keep_largest_component(
                np.zeros((2, 2), dtype=np.uint8), label_ids=[1], connectivity=3
            ),
            ValueError,
            r"\[1, 2\]",
            id="conn-3-in-2d",
        ),
        pytest.param(
            lambda: keep_largest_component(
                np.zeros((2, 2), dtype=np.uint8), label_ids=[1], connectivity=True
            ),
            TypeError,
            "must be an int",
            id="conn-bool",
        ),
        pytest.param(
            lambda: remove_small_components(np.zeros((2, 2), dtype=np.uint8), min_voxels={1: -1}),
            ValueError,
            "finite number >= 0",
            id="negative-size",
        ),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
