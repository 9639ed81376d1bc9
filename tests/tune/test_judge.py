"""The held-out statistics: paired differences and when a gain counts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.tune.judge import (
    CASE_TOLERANCE,
    MIN_GAIN,
    NOISE_Z,
    bootstrap_noise,
    foreground_difference,
    gain_counts,
    paired_difference,
)

dice = st.one_of(st.just(float("nan")), st.floats(0.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(dice, dice), min_size=1, max_size=12))
def test_paired_difference_scores_an_absent_label_as_the_pair_sees_it(pairs):
    new = np.array([p[0] for p in pairs])
    old = np.array([p[1] for p in pairs])
    diff = paired_difference(new, old)
    for n, o, d in zip(new, old, diff, strict=True):
        if np.isnan(n) and np.isnan(o):
            assert np.isnan(d)  # absent on both sides: left out
        elif np.isnan(n):
            assert d == 1.0 - o  # new predicted nothing where the label is absent: Dice 1
        elif np.isnan(o):
            assert d == n - 1.0
        else:
            assert d == n - o
    # antisymmetric, and the foreground form of one label is the same difference
    np.testing.assert_array_equal(paired_difference(old, new), -diff)
    np.testing.assert_array_equal(foreground_difference(new[:, None], old[:, None]), diff)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=15))
def test_a_gain_counts_when_it_beats_the_noise_or_no_case_loses(values):
    diff = np.array(values)
    mean = diff.mean()
    expected = mean > MIN_GAIN and (
        mean > NOISE_Z * bootstrap_noise(diff) or diff.min() >= -CASE_TOLERANCE
    )
    assert gain_counts(diff) == expected
    assert not gain_counts(-np.abs(diff))  # a step that never gains never counts
    assert not gain_counts(np.full(4, np.nan))


def test_one_false_positive_removed_counts_where_the_bootstrap_alone_would_not():
    """The demo's case: equal weights predict RV in one case where it is absent (Dice 0); the
    step predicts nothing there (NaN) and changes the other cases by a few thousandths."""
    step = np.array([0.95, 0.70, np.nan, 0.92, 0.85, 0.99, np.nan, 0.91, 0.60, 0.56])
    equal = np.array([0.948, 0.698, 0.0, 0.921, 0.851, 0.991, np.nan, 0.909, 0.597, 0.562])
    diff = paired_difference(step, equal)
    assert np.nanmean(diff) < NOISE_Z * bootstrap_noise(diff)  # the noise test alone refuses
    assert gain_counts(diff)
    assert not gain_counts(step - equal)  # unpaired, the case is dropped: nothing to gain
