from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from nnunet_ext.postprocess.component_rules import (
    drop_improbable_components,
    gate_label_volume,
    keep_top_k_components,
    relabel_small_components,
)

# Plain scipy.ndimage oracles, one component at a time: slow but obviously right.


def _components(labels, label, connectivity):
    structure = ndimage.generate_binary_structure(labels.ndim, connectivity or labels.ndim)
    return ndimage.label(labels == label, structure=structure)


def ref_relabel_small(labels, label, to, min_voxels, connectivity):
    out = labels.copy()
    components, count = _components(labels, label, connectivity)
    for index in range(1, count + 1):
        component = components == index
        if component.sum() < min_voxels:
            out[component] = to
    return out


def ref_volume_gate(labels, label, to, min_voxels):
    out = labels.copy()
    if (labels == label).sum() < min_voxels:
        out[labels == label] = to
    return out


def ref_keep_top_k(labels, label, k, connectivity):
    out = labels.copy()
    components, count = _components(labels, label, connectivity)
    sizes = sorted(((components == i).sum() for i in range(1, count + 1)), reverse=True)
    for index in range(1, count + 1):
        component = components == index
        if count > k and component.sum() < sizes[k - 1]:
            out[component] = 0
    return out


def ref_min_probability(labels, probabilities, label, threshold, statistic, to, connectivity):
    out = labels.copy()
    components, count = _components(labels, label, connectivity)
    for index in range(1, count + 1):
        component = components == index
        values = probabilities[label][component].astype(np.float64)
        value = values.max() if statistic == "max" else values.sum() / values.size
        if value < threshold:
            out[component] = to
    return out


def _random_case(seed, shape):
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 4, size=shape).astype(np.uint8)
    labels[rng.random(shape) > rng.uniform(0.2, 0.6)] = 0
    logits = rng.normal(size=(4, *shape))
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=0)).astype(np.float32)
    return rng, labels, probabilities


SHAPES = [(17, 19), (6, 9, 11), (1, 12, 12)]


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d", "flat-3d"])
@pytest.mark.parametrize("seed", range(12))
def test_every_rule_equals_its_scipy_oracle_on_random_label_maps(shape, seed):
    rng, labels, probabilities = _random_case(seed, shape)
    label = int(rng.integers(1, 4))
    to = int(rng.choice([v for v in range(4) if v != label]))
    for connectivity in [*range(1, len(shape) + 1), None]:
        size = float(rng.integers(1, 8)) + (0.5 if seed % 2 else 0.0)
        np.testing.assert_array_equal(
            relabel_small_components(
                labels, label=label, to=to, min_voxels=size, connectivity=connectivity
            ),
            ref_relabel_small(labels, label, to, size, connectivity),
        )
        k = int(rng.integers(1, 5))
        np.testing.assert_array_equal(
            keep_top_k_components(labels, label=label, k=k, connectivity=connectivity),
            ref_keep_top_k(labels, label, k, connectivity),
        )
        for statistic in ("max", "mean"):
            threshold = float(rng.uniform(0.1, 0.6))
            np.testing.assert_array_equal(
                drop_improbable_components(
                    labels,
                    probabilities,
                    label=label,
                    threshold=threshold,
                    statistic=statistic,
                    to=to,
                    connectivity=connectivity,
                ),
                ref_min_probability(
                    labels, probabilities, label, threshold, statistic, to, connectivity
                ),
            )
    total = int((labels == label).sum())
    for size in (total, total + 1, total + 0.5, rng.integers(0, total + 2)):
        np.testing.assert_array_equal(
            gate_label_volume(labels, label=label, to=to, min_voxels=float(size)),
            ref_volume_gate(labels, label, to, float(size)),
        )


def test_touching_components_of_different_labels_stay_separate():
    labels = np.array([[3, 1, 1, 1, 0, 3, 3]], dtype=np.uint8)
    # the lone 3 touches label 1, yet is a component of one voxel of label 3
    result = relabel_small_components(labels, label=3, to=1, min_voxels=2)
    np.testing.assert_array_equal(result, [[1, 1, 1, 1, 0, 3, 3]])
    assert ndimage.label(result == 1)[1] == 1  # after: one region of label 1


def test_keep_top_k_ties_at_the_kth_size_are_all_kept():
    labels = np.array([[2, 2, 0, 2, 2, 0, 2, 2, 0, 2]], dtype=np.uint8)
    three_pairs = np.array([[2, 2, 0, 2, 2, 0, 2, 2, 0, 0]], dtype=np.uint8)
    for k in (1, 2, 3):  # three components of size 2 tie for the first places
        np.testing.assert_array_equal(keep_top_k_components(labels, label=2, k=k), three_pairs)
    np.testing.assert_array_equal(keep_top_k_components(labels, label=2, k=4), labels)
    np.testing.assert_array_equal(
        keep_top_k_components(np.array([[2, 2, 0, 2, 0, 2]], dtype=np.uint8), label=2, k=1),
        [[2, 2, 0, 0, 0, 0]],
    )


label_maps = hnp.arrays(
    np.uint8,
    hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
    elements=st.integers(0, 3),
)


@settings(max_examples=60, deadline=None)
@given(labels=label_maps, size=st.integers(0, 6), connectivity=st.sampled_from([1, 2, None]))
def test_rules_change_only_the_rule_label_and_are_idempotent(labels, size, connectivity):
    relabelled = relabel_small_components(
        labels, label=3, to=1, min_voxels=size, connectivity=connectivity
    )
    changed = relabelled != labels
    assert np.all(labels[changed] == 3)
    assert np.all(relabelled[changed] == 1)
    again = relabel_small_components(
        relabelled, label=3, to=1, min_voxels=size, connectivity=connectivity
    )
    np.testing.assert_array_equal(again, relabelled)
    top = keep_top_k_components(labels, label=2, k=2, connectivity=connectivity)
    assert np.all(top[top != labels] == 0)
    np.testing.assert_array_equal(
        keep_top_k_components(top, label=2, k=2, connectivity=connectivity), top
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(
            lambda a: relabel_small_components(a, label=0, to=1, min_voxels=2),
            ValueError,
            "label must be a label value >= 1; got 0",
            id="label-0",
        ),
        pytest.param(
            lambda a: relabel_small_components(a, label=1, to=-1, min_voxels=2),
            ValueError,
            "to must be a label value >= 0",
            id="to-negative",
        ),
        pytest.param(
            lambda a: gate_label_volume(a, label=1, to=0, min_voxels=float("nan")),
            ValueError,
            "min_voxels must be a finite number >= 0",
            id="size-nan",
        ),
        pytest.param(
            lambda a: keep_top_k_components(a, label=1, k=0),
            ValueError,
            "k must be an int >= 1; got 0",
            id="k-0",
        ),
        pytest.param(
            lambda a: drop_improbable_components(a, np.zeros((2, 3, 3)), label=2, threshold=0.5),
            ValueError,
            r"probabilities must be \(C, 3, 3\) with C > 2; got \(2, 3, 3\)",
            id="channels",
        ),
        pytest.param(
            lambda a: drop_improbable_components(
                a, np.zeros((3, 3, 3)), label=1, threshold=0.5, statistic="median"
            ),
            ValueError,
            "statistic must be one of max, mean; got 'median'",
            id="statistic",
        ),
        pytest.param(
            lambda a: relabel_small_components(a, label=1, to=0, min_voxels=1, connectivity=3),
            ValueError,
            r"connectivity must be in \[1, 2\]",
            id="connectivity",
        ),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(np.ones((3, 3), dtype=np.uint8))


def test_inputs_are_not_modified():
    _, labels, probabilities = _random_case(3, (5, 6, 7))
    before, before_p = labels.copy(), probabilities.copy()
    relabel_small_components(labels, label=1, to=2, min_voxels=5)
    gate_label_volume(labels, label=1, to=0, min_voxels=10**6)
    keep_top_k_components(labels, label=1, k=1)
    drop_improbable_components(labels, probabilities, label=1, threshold=0.9)
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(probabilities, before_p)
