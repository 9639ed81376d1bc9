from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.ensemble import fuse_probabilities, probabilities_to_labels
from nnunet_ext.ensemble.fusion import FusionAccumulator, normalize_weights

A = np.array([[0.7, 0.2, 0.5], [0.3, 0.8, 0.5]], dtype=np.float32)
B = np.array([[0.1, 0.6, 0.5], [0.9, 0.4, 0.5]], dtype=np.float32)


def nnunet_mean(members):
    """nnUNetv2_ensemble.average_probabilities, line for line, on arrays."""
    avg = members[0].astype(np.float32)
    for m in members[1:]:
        avg += m
    avg /= len(members)
    return avg


@pytest.mark.parametrize(
    ("weights", "expected_labels"),
    [
        pytest.param(None, [1, 1, 0], id="equal-weights-tie-goes-to-label-0"),
        pytest.param([1.0, 0.0], [0, 1, 0], id="only-first-member"),
        pytest.param([0.0, 1.0], [1, 0, 0], id="only-second-member"),
        pytest.param([3.0, 1.0], [0, 1, 0], id="global-3-to-1"),
        pytest.param(
            [[1.0, 0.0], [0.0, 1.0]], [1, 1, 0], id="per-label-class0-from-A-class1-from-B"
        ),
        pytest.param([[0.0, 1.0], [1.0, 0.0]], [1, 1, 0], id="per-label-swapped"),
    ],
)
def test_fusion_table(weights, expected_labels):
    fused = fuse_probabilities([A, B], weights, dtype=np.float64)
    w = normalize_weights(weights, num_members=2, num_classes=2)
    reference = w[0][:, None] * A.astype(np.float64) + w[1][:, None] * B.astype(np.float64)
    np.testing.assert_allclose(fused, reference, rtol=0, atol=1e-12)
    assert probabilities_to_labels(fused).tolist() == expected_labels


def test_equal_weights_are_bit_identical_to_nnunet_arithmetic(rng):
    members = [rng.random((3, 7, 9), dtype=np.float32) for _ in range(5)]
    fused = fuse_probabilities(members)
    assert fused.dtype == np.float32
    assert np.array_equal(fused, nnunet_mean(members))
    # same global weight != 1 is still "equal" and identical
    assert np.array_equal(fuse_probabilities(members, [2.5] * 5), nnunet_mean(members))


def test_per_label_weights_leave_equal_classes_on_nnunet_arithmetic(rng):
    members = [rng.random((3, 50), dtype=np.float32) for _ in range(3)]
    weights = np.ones((3, 3))
    weights[:, 2] = [1.0, 0.0, 0.0]  # class 2 from member 0 only
    fused = fuse_probabilities(members, weights)
    assert np.array_equal(fused[:2], nnunet_mean(members)[:2])
    assert np.array_equal(fused[2], members[0][2])


def test_regions_thresholding_order_later_wins():
    p = np.array([[0.9, 0.9, 0.2, 0.5], [0.1, 0.8, 0.9, 0.51]], dtype=np.float32)
    labels = probabilities_to_labels(p, regions_class_order=[1, 2])
    assert labels.tolist() == [1, 2, 2, 2]
    assert labels.dtype == np.uint8


def test_region_weights_per_channel():
    a = np.array([[0.9], [0.9]], dtype=np.float32)
    b = np.array([[0.0], [0.0]], dtype=np.float32)
    fused = fuse_probabilities([a, b], [[1.0, 1.0], [1.0, 0.0]], dtype=np.float64)
    assert fused[:, 0].tolist() == pytest.approx([0.45, 0.9])
    assert probabilities_to_labels(fused, regions_class_order=[1, 2]).tolist() == [2]


def test_accumulator_chunks_equal_whole(rng):
    members = [rng.random((4, 33), dtype=np.float32) for _ in range(3)]
    weights = rng.random((3, 4)) + 0.1
    whole = fuse_probabilities(members, weights)
    normalized = normalize_weights(weights, num_members=3, num_classes=4)
    acc = FusionAccumulator((4, 33), weights=normalized, num_members=3)
    for m, member in enumerate(members):
        flat = member.reshape(-1)
        for start in range(0, flat.size, 7):  # chunks straddle class boundaries
            acc.add(m, start, flat[start : start + 7])
    assert np.array_equal(acc.result(), whole)


def test_the_accumulator_takes_normalised_weights_only(rng):
    """Weights are normalised once, where they are checked; raw ones are refused, not fixed."""
    with pytest.raises(ValueError, match="weights must be normalised"):
        FusionAccumulator((4, 33), weights=rng.random((3, 4)) + 0.1, num_members=3)
    with pytest.raises(ValueError, match=r"weights must be the normalised \(3, 4\) matrix"):
        FusionAccumulator((4, 33), weights=[1.0, 2.0, 3.0], num_members=3)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        pytest.param([1.0, -1.0], "weights must be >= 0", id="negative"),
        pytest.param([0.0, 0.0], "all weights are 0 for class", id="all-zero"),
        pytest.param([[1.0, 0.0], [1.0, 0.0]], r"class\(es\) \[1\]", id="label-all-zero"),
        pytest.param([1.0, 2.0, 3.0], r"must have shape \(2,\)", id="wrong-length"),
        pytest.param([1.0, float("nan")], "must be finite", id="nan"),
    ],
)
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        fuse_probabilities([A, B], weights)


def test_bad_members():
    with pytest.raises(ValueError, match="at least one member"):
        fuse_probabilities([])
    with pytest.raises(ValueError, match=r"probabilities\[1\] must have the shape"):
        fuse_probabilities([A, A[:, :2]])
    with pytest.raises(ValueError, match="one label per channel"):
        probabilities_to_labels(A, regions_class_order=[1])


def test_inputs_not_modified(rng):
    members = [rng.random((2, 5), dtype=np.float32) for _ in range(2)]
    copies = [m.copy() for m in members]
    fuse_probabilities(members, [1.0, 2.0])
    assert all(np.array_equal(m, c) for m, c in zip(members, copies, strict=True))


member_arrays = st.integers(min_value=1, max_value=4).flatmap(
    lambda m: st.tuples(
        st.lists(
            st.lists(st.floats(0, 1, width=32), min_size=6, max_size=6), min_size=m, max_size=m
        ),
        st.lists(st.floats(0.1, 5), min_size=m, max_size=m),
        st.permutations(list(range(m))),
    )
)


@settings(max_examples=60, deadline=None)
@given(member_arrays)
def test_permuting_members_with_weights_keeps_result(data):
    values, weights, order = data
    members = [np.array(v, dtype=np.float32).reshape(3, 2) for v in values]
    fused = fuse_probabilities(members, weights, dtype=np.float64)
    permuted = fuse_probabilities(
        [members[i] for i in order], [weights[i] for i in order], dtype=np.float64
    )
    np.testing.assert_allclose(fused, permuted, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1, width=32), min_size=12, max_size=12), st.floats(0.1, 10))
def test_single_member_returns_its_own_argmax(values, weight):
    member = np.array(values, dtype=np.float32).reshape(3, 4)
    fused = fuse_probabilities([member], [weight])
    assert np.array_equal(fused, member)
    assert np.array_equal(probabilities_to_labels(fused), member.argmax(0))
