"""Region scoring: the histogram search equals scoring each setting as deployed (oracle)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.ensemble import fuse_probabilities, probabilities_to_labels
from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.tune.region_data import RegionCVData
from nnunet_ext.tune.region_search import (
    THRESHOLDS,
    channel_dice,
    choose_candidate,
    region_case_dice,
    weight_candidates,
)

REGIONS = ((1, 2, 3), (2, 3), (3,))


def random_data(rng, num_models=2, sizes=(30, 0, 45), regions=REGIONS, order=(1, 2, 3)):
    n = sum(sizes)
    probabilities = rng.random((num_models, len(regions), n)).astype(np.float32)
    probabilities[rng.random(probabilities.shape) < 0.2] = 0.5  # exact ties at 0.5
    return RegionCVData(
        probabilities=probabilities,
        reference=rng.integers(0, 4, n).astype(np.uint8),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        inactive_reference=rng.integers(0, 3, (len(sizes), len(regions))),
        regions=regions,
        order=order,
    )


def slow_dice(data, weights, thresholds, case):
    """Definition: fuse, threshold, label map, regions from the labels, Dice per region."""
    part = data.case(case)
    fused = fuse_probabilities(
        [data.probabilities[m][:, part] for m in range(data.num_models)], weights
    )
    rules = LabelRules.build(len(data.order), thresholds=dict(enumerate(thresholds)))
    labels = probabilities_to_labels(fused, regions_class_order=data.order, rules=rules)
    out = []
    for r, region in enumerate(data.regions):
        pred, truth = np.isin(labels, region), np.isin(data.reference[part], region)
        total = pred.sum() + truth.sum() + data.inactive_reference[case, r]
        out.append(np.nan if total == 0 else 2 * (pred & truth).sum() / total)
    return np.array(out)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), channel=st.integers(0, 2), nested=st.booleans())
def test_channel_dice_equals_scoring_every_setting_as_deployed(seed, channel, nested):
    rng = np.random.default_rng(seed)
    # not nested: an order in which the channel's own label is outside another region
    order = (1, 2, 3) if nested else (3, 1, 2)
    data = random_data(rng, order=order)
    weights = rng.dirichlet([1, 1], size=3).T
    thresholds = list(rng.choice(THRESHOLDS, 3))
    candidates = weight_candidates(2, 4)
    dice = channel_dice(data, channel, weights, thresholds, candidates)
    for k in rng.choice(len(candidates), 2, replace=False):
        for j in rng.choice(THRESHOLDS.size, 4, replace=False):
            w = weights.copy()
            w[:, channel] = candidates[k]
            t = list(thresholds)
            t[channel] = float(THRESHOLDS[j])
            for case in range(data.num_cases):
                expected = slow_dice(data, w, t, case)[channel]
                np.testing.assert_allclose(dice[k, case, j], expected, atol=1e-12, equal_nan=True)
                np.testing.assert_allclose(
                    region_case_dice(data, w, t, [case])[0],
                    slow_dice(data, w, t, case),
                    equal_nan=True,
                )


def test_weight_candidates_start_with_equal_weights_and_sum_to_one():
    candidates = weight_candidates(3, 10)
    np.testing.assert_allclose(candidates[0], [1 / 3] * 3)
    np.testing.assert_allclose(candidates.sum(axis=1), 1.0)
    assert len(candidates) == 67  # the 66 grid points and equal weights


def test_choose_candidate_prefers_equal_weights_and_the_middle_of_a_plateau():
    dice = np.zeros((3, 2, THRESHOLDS.size))
    dice[0, :, 40:51] = 0.9  # equal weights: a plateau 0.41..0.51
    dice[2, :, 10] = 0.9  # as good, but farther from equal weights
    dice[1, 1, :] = np.nan  # an empty case does not count
    assert choose_candidate(dice, np.array([[0.5, 0.5], [0.6, 0.4], [1.0, 0.0]]), [0, 1]) == (
        0,
        0.46,
        0.9,
    )
