"""Lesion-wise matching: properties on random lesion maps, and a brute-force optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.evaluate.lesions import bipartite_matches, components, match_lesions


def _random_masks(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (6, 10, 10)
    ref = np.zeros(shape, dtype=bool)
    pred = np.zeros(shape, dtype=bool)
    for mask in (ref, pred):
        for _ in range(int(rng.integers(0, 5))):
            lo = rng.integers(0, np.array(shape) - 2)
            hi = lo + rng.integers(1, 4, size=3)
            mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return ref, pred


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_counts_are_consistent_and_symmetric(seed):
    ref, pred = _random_masks(seed)
    result = match_lesions(ref, pred, (1.0, 1.0, 2.0))
    assert result.num_reference == components(ref)[1]
    assert result.num_predicted == components(pred)[1]
    assert 0 <= result.tp <= min(result.num_reference, result.num_predicted)
    assert result.fp == result.num_predicted - result.tp
    assert result.fn == result.num_reference - result.tp
    assert len(result.lesions) == result.num_reference
    assert all(0 < lesion.dice <= 1 for lesion in result.lesions if lesion.matched)
    swapped = match_lesions(pred, ref, (1.0, 1.0, 2.0))
    assert swapped.tp == result.tp
    assert sorted(swapped.matched_values("dice")) == pytest.approx(
        sorted(result.matched_values("dice"))
    )
    if ref.any():
        same = match_lesions(ref, ref, (1.0, 1.0, 2.0))
        assert same.tp == same.num_reference
        assert same.rq == 1.0
        assert set(same.matched_values("dice")) == {1.0}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_bipartite_matching_maximises_the_total_dice(seed):
    ref, pred = _random_masks(seed)
    ref_labels, n_ref = components(ref)
    pred_labels, n_pred = components(pred)
    if n_ref * n_pred == 0 or max(n_ref, n_pred) > 6:
        return
    dice = np.zeros((n_ref, n_pred))
    for r, p in itertools.product(range(1, n_ref + 1), range(1, n_pred + 1)):
        a, b = ref_labels == r, pred_labels == p
        dice[r - 1, p - 1] = 2 * (a & b).sum() / (a.sum() + b.sum())
    best = 0.0
    for perm in itertools.permutations(range(max(n_ref, n_pred)), n_ref):
        best = max(best, sum(dice[i, j] for i, j in enumerate(perm) if j < n_pred))
    found = bipartite_matches(ref_labels, pred_labels, n_ref, n_pred)
    assert sum(dice[r - 1, p - 1] for r, p in found) == pytest.approx(best)
    assert all(dice[r - 1, p - 1] > 0 for r, p in found)
    assert len({p for _, p in found}) == len(found)
