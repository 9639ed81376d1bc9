from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from nnunet_ext.qc.measures import (
    component_sizes,
    confusion_counts,
    disagreement_map,
    entropy_map,
    measure_case,
    soft_dice,
    volume_cv,
)

SHAPES = hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6)


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Random probabilities (C, ...), their argmax and 1-3 members' label maps."""
    shape = draw(SHAPES)
    classes = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(classes, *shape))
    p = np.exp(logits) / np.exp(logits).sum(axis=0)
    members = [
        rng.integers(0, classes, size=shape).astype(np.uint8)
        for _ in range(draw(st.integers(1, 3)))
    ]
    return p.astype(np.float32), p.argmax(axis=0).astype(np.uint8), members


def plain_dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@settings(max_examples=60, deadline=None)
@given(case=cases(), voxel=st.floats(0.0001, 10.0))
def test_measures_equal_a_plain_numpy_computation(case, voxel):
    p, labels, members = case
    measures = measure_case(p, labels, members, voxel_volume_ml=voxel)
    assert [m.label for m in measures] == list(range(1, p.shape[0]))
    for m in measures:
        fused = labels == m.label
        masks = [member == m.label for member in members]
        assert m.member_dice == pytest.approx([plain_dice(fused, k) for k in masks])
        volumes = np.array([k.sum() * voxel for k in masks])
        assert m.member_volumes_ml == pytest.approx(volumes)
        assert m.volume_ml == pytest.approx(fused.sum() * voxel)
        expected_cv = 0.0 if volumes.mean() == 0 else volumes.std() / volumes.mean()
        assert m.volume_cv == pytest.approx(expected_cv)
        sizes = [k.sum() for k in masks]
        expected_empty = [i for i, s in enumerate(sizes) if s == 0] if any(sizes) else []
        assert list(m.empty_members) == expected_empty
        _, count = ndimage.label(fused, structure=np.ones((3, 3, 3)))
        assert m.components == count
        inside, total = p[m.label][fused].sum(), p[m.label].sum() + fused.sum()
        assert m.soft_dice == pytest.approx(2 * inside / total, rel=1e-5)
        if not fused.any():
            expected = 1.0
        else:
            share = sum(1 / len(masks) for k in masks if k.any())
            q = np.minimum(p[m.label] / share, 1) if 0 < share < 1 else p[m.label]
            expected = 2 * q[fused].sum() / (q.sum() + fused.sum())
        assert m.estimated_dice == pytest.approx(expected, rel=1e-5)
        assert 0.0 <= m.island_fraction <= 0.5


@settings(max_examples=60, deadline=None)
@given(labels=hnp.arrays(np.uint8, SHAPES, elements=st.integers(0, 3)))
def test_component_sizes_match_scipy(labels):
    sizes = component_sizes(labels)
    assert sorted(sizes) == sorted(int(v) for v in np.unique(labels) if v)
    for value, found in sizes.items():
        labelled, count = ndimage.label(labels == value, structure=np.ones((3, 3, 3)))
        expected = sorted(np.bincount(labelled.ravel())[1:].tolist(), reverse=True)
        assert found.tolist() == expected
        assert len(expected) == count


def test_component_sizes_of_a_2d_map_use_8_neighbours():
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=np.uint8)
    assert component_sizes(labels)[1].tolist() == [3, 2]


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_maps_equal_a_plain_numpy_computation(case):
    p, labels, members = case
    expected = sum((m != labels).astype(int) for m in members)
    assert np.array_equal(disagreement_map(labels, members), expected)
    q = p.astype(np.float64)
    entropy = -(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0)).sum(axis=0)
    scaled = np.rint(np.clip(entropy / math.log(p.shape[0]), 0, 1) * 255)
    assert np.abs(entropy_map(p).astype(int) - scaled).max() <= 1
    assert entropy_map(p).dtype == np.uint8


def test_entropy_map_of_one_class_is_zero():
    assert not entropy_map(np.ones((1, 2, 2))).any()


@settings(max_examples=40, deadline=None)
@given(
    a=hnp.arrays(np.uint8, 20, elements=st.integers(0, 3)),
    b=hnp.arrays(np.uint8, 20, elements=st.integers(0, 3)),
)
def test_confusion_counts_match_a_loop(a, b):
    counts = confusion_counts(a, b, num_classes=4)
    for i in range(4):
        for j in range(4):
            assert counts[i, j] == int(((a == i) & (b == j)).sum())


@pytest.mark.parametrize(
    ("volumes", "expected"),
    [
        pytest.param([5.0], 0.0, id="one-member"),
        pytest.param([0.0, 0.0, 0.0], 0.0, id="all-empty"),
        pytest.param([1.0, 3.0], 0.5, id="two-members"),
    ],
)
def test_volume_cv_table(volumes, expected):
    assert volume_cv(volumes) == pytest.approx(expected)


def test_soft_dice_of_a_confident_exact_map_is_one():
    mask = np.zeros((3, 4), dtype=bool)
    mask[1, 1:3] = True
    assert soft_dice(mask.astype(np.float32), mask) == 1.0


def test_measure_case_refuses_mismatched_shapes():
    p = np.full((2, 3, 3), 0.5, dtype=np.float32)
    labels = np.zeros((3, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"member_labels\[0\] must have the spatial shape"):
        measure_case(p, labels, [np.zeros((3, 4), dtype=np.uint8)])
    with pytest.raises(ValueError, match="at least one member"):
        measure_case(p, labels, [])


def test_estimated_dice_leaves_out_the_weight_of_a_member_that_misses_the_label():
    p = np.zeros((2, 4), dtype=np.float32)
    p[1, :2] = 0.8 * 0.25  # member 0 (weight 0.25 for label 1) is sure; member 1 misses it
    p[0] = 1 - p[1]
    labels = np.array([1, 1, 0, 0], dtype=np.uint8)
    weights = np.array([[0.5, 0.25], [0.5, 0.75]])
    (m,) = measure_case(p, labels, [labels, np.zeros(4, dtype=np.uint8)], weights=weights)
    assert m.soft_dice < 0.4
    assert m.estimated_dice == pytest.approx(2 * 1.6 / (1.6 + 2))
    with pytest.raises(ValueError, match=r"weights must have shape \(2, 2\)"):
        measure_case(p, labels, [labels, labels], weights=np.ones((3, 2)))
