"""The statistics of compare on random inputs: ranks against scipy, pairing, probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import rankdata

from nnunet_ext._stats import bootstrap_means
from nnunet_ext.compare.stats import (
    A_BETTER,
    B_BETTER,
    NO_DIFFERENCE,
    UNDEFINED,
    case_ranks,
    first_probability,
    fractions_better,
    percentile_interval,
    resampled_means,
    verdict,
)

VALUES = st.sampled_from([0.1, 0.5, 0.5, 0.9, np.nan])  # ties and NaN are common


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 4), st.integers(1, 5), st.integers(1, 3)),
        elements=VALUES,
    ),
    st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_ranks_equal_scipy_with_undefined_values_last(values, directions):
    higher = np.array(directions[: values.shape[2]])
    ranks = case_ranks(values, higher_is_better=higher)
    for i in range(values.shape[1]):
        for c in range(values.shape[2]):
            column = values[:, i, c]
            if np.isnan(column).all():
                assert np.isnan(ranks[:, i, c]).all()
                continue
            oriented = np.where(np.isnan(column), -np.inf, column if higher[c] else -column)
            np.testing.assert_array_equal(ranks[:, i, c], rankdata(-oriented, method="average"))


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 70)),
        elements=st.floats(0, 1) | st.just(np.nan),
    ),
    st.integers(0, 2**16),
)
def test_resampled_means_are_one_paired_draw(values, seed):
    """Every version and column (also across the chunks of 64 columns) sees the same cases."""
    draws = resampled_means(values, samples=50, seed=seed)
    versions, _, columns = values.shape
    assert draws.shape == (50, versions, columns)
    for v in range(versions):
        np.testing.assert_array_equal(
            draws[:, v], bootstrap_means(values[v], samples=50, seed=seed)
        )


def test_a_constant_shift_is_the_same_in_every_resample():
    rng = np.random.default_rng(0)
    a = rng.random((1, 30, 4))
    draws = resampled_means(np.concatenate([a, a + 0.25]), samples=200, seed=1)
    np.testing.assert_allclose(draws[:, 1] - draws[:, 0], 0.25, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 2), st.integers(2, 5)),
        elements=st.sampled_from([1.0, 1.5, 2.0, 3.0, np.nan]),
    )
)
def test_first_probabilities_sum_to_one_where_defined(mean_ranks):
    probability = first_probability(mean_ranks)
    defined = ~np.isnan(mean_ranks).all(axis=-1)  # (samples, groups)
    np.testing.assert_allclose(probability.sum(axis=-1), defined.mean(axis=0))
    assert np.all((probability >= 0) & (probability <= 1))


@pytest.mark.parametrize(
    ("low", "high", "higher", "expected"),
    [
        pytest.param(0.001, 0.01, True, B_BETTER, id="above-zero"),
        pytest.param(-0.01, -0.001, True, A_BETTER, id="below-zero"),
        pytest.param(-0.01, -0.001, False, B_BETTER, id="below-zero-lower-better"),
        pytest.param(0.0, 0.01, True, NO_DIFFERENCE, id="touches-zero"),
        pytest.param(0.0, 0.0, True, NO_DIFFERENCE, id="identical"),
        pytest.param(np.nan, np.nan, True, UNDEFINED, id="undefined"),
    ],
)
def test_verdicts(low, high, higher, expected):
    assert verdict(low, high, higher_is_better=higher) == expected


def test_fractions_count_only_cases_both_define():
    a = np.array([[0.5, 1.0], [0.5, np.nan], [0.7, 2.0], [0.2, 2.0]])
    b = np.array([[0.6, 2.0], [0.9, 1.0], [0.7, 1.0], [0.1, 2.0]])
    b_wins, a_wins, counted = fractions_better(a, b, higher_is_better=[True, False])
    assert counted.tolist() == [4, 3]
    np.testing.assert_allclose(b_wins, [0.5, 1 / 3])
    np.testing.assert_allclose(a_wins, [0.25, 1 / 3])


def test_interval_leaves_out_undefined_draws_without_warning():
    draws = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    low, high = percentile_interval(draws, confidence=0.5)
    assert low.tolist()[0] == 1.5
    assert high.tolist()[0] == 2.5
    assert np.isnan(low[1])
