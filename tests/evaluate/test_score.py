"""The score's vectorised form equals its per-label steps on random values with NaN."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nnunet_ext._stats import nan_mean
from nnunet_ext.evaluate.score import ScoreSpec

SPEC = ScoreSpec.from_dict(
    {
        "schema_version": 1,
        "terms": [
            {"metric": "dice", "weight": 0.4},
            {"metric": "hd95", "weight": 0.6, "cap_mm": 20},
        ],
        "label_weights": {"2": 3, "3": 0},
    }
)
KEYS = ["1", "2", "3"]
VALUES = st.floats(0, 40) | st.just(np.nan)


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.just(3)), elements=VALUES),
    arrays(np.float64, st.tuples(st.integers(1, 6), st.just(3)), elements=VALUES),
)
def test_scores_from_term_means_equal_combine_of_label_scores(dice, hd95):
    n = min(len(dice), len(hd95))
    values = {"dice": np.clip(dice[:n], 0, 1), "hd95": hd95[:n]}
    expected = SPEC.combine(SPEC.label_scores(values), KEYS)
    terms = SPEC.term_values(values)
    assert terms.shape == (n, 3, 2)
    means = nan_mean(terms, axis=0)
    got = float(SPEC.scores_from_means(means, KEYS))
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    # leading axes: every case's own score at once equals scoring each case alone
    per_case = SPEC.scores_from_means(terms, KEYS)
    for i in range(n):
        alone = SPEC.combine(SPEC.label_scores({k: v[i : i + 1] for k, v in values.items()}), KEYS)
        np.testing.assert_allclose(per_case[i], alone, rtol=1e-12, equal_nan=True)
