"""The never-worse guarantee of the weight search, checked by independent full evaluations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.synthetic import model_probabilities
from nnunet_ext.tune import tune_weights
from nnunet_ext.tune.compact import compact_case, merge_cases
from nnunet_ext.tune.scoring import baseline_weights, score_weights
from nnunet_ext.tune.search import search_weights


def _random_data(seed, num_models, num_classes, num_cases, concentration):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(num_cases):
        ref = rng.integers(0, num_classes, size=(5, 6))
        models = [
            rng.dirichlet(np.full(num_classes, concentration), size=ref.shape).transpose(2, 0, 1)
            for _ in range(num_models)
        ]
        cases.append(compact_case(models, ref))
    return merge_cases(cases)


def _independent_baselines(data, labels):
    """Per-label mean Dice of equal weights and of each single model, by full evaluation."""
    return {
        name: score_weights(data, weights, labels)[0]
        for name, weights in baseline_weights(data.num_models, data.num_classes).items()
    }


def _worst_shortfall(dice, floors):
    valid = ~np.isnan(floors)
    return float(np.max(np.maximum(floors[valid] - dice[valid], 0.0), initial=0.0))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_models=st.integers(2, 3),
    num_classes=st.integers(2, 4),
    num_cases=st.integers(1, 3),
    concentration=st.sampled_from([0.3, 1.0, 3.0]),
)
def test_search_is_never_below_equal_weights_nor_worse_than_its_fallbacks(
    seed, num_models, num_classes, num_cases, concentration
):
    data = _random_data(seed, num_models, num_classes, num_cases, concentration)
    labels = list(range(1, num_classes))
    result = search_weights(data, labels, steps=3, max_rounds=2, refine=1)
    dice, _ = score_weights(data, result.weights, labels)  # re-evaluated from scratch
    np.testing.assert_array_equal(dice, result.dice)
    baselines = _independent_baselines(data, labels)
    table = np.stack(list(baselines.values()))
    valid = ~np.all(np.isnan(table), axis=0)
    floors = np.full(len(labels), np.nan)
    floors[valid] = np.nanmax(table[:, valid], axis=0)
    np.testing.assert_array_equal(floors, result.floors)

    # 1. never below equal weights on any label
    equal = baselines["equal"]
    ok = ~np.isnan(equal)
    assert np.all(dice[ok] >= equal[ok] - 1e-12), (dice, equal)

    # 2. the per-label fallback takes each label's column from its best baseline
    matrices = baseline_weights(num_models, num_classes)
    for j, label in enumerate(labels):
        if valid[j]:
            best = [n for n in baselines if baselines[n][j] == floors[j]]
            assert any(np.allclose(result.fallback[:, label], matrices[n][:, label]) for n in best)

    # 3. no worse (largest shortfall below the floors) than any fallback that keeps every
    # label at or above equal weights ...
    fallback_dice, _ = score_weights(data, result.fallback, labels)
    worst = _worst_shortfall(dice, floors)
    for other in [fallback_dice, *baselines.values()]:
        if _worst_shortfall(other, equal) == 0.0:
            assert worst <= _worst_shortfall(other, floors) + 1e-12
    # ... so every label keeps its floor whenever the per-label fallback does
    if _worst_shortfall(fallback_dice, floors) == 0.0:
        assert result.feasible
        assert np.all(dice[valid] >= floors[valid] - 1e-12)


def _conflicting_models(seed=0):
    """Three models, each sharp on one label and predicting background on the others.

    The labels compete for the background column, so the single-model floors conflict.
    """
    from nnunet_ext.synthetic import make_case

    rng = np.random.default_rng(seed)
    cases = []
    for i in range(3):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i != 2)
        models = [
            model_probabilities(rng, ref, num_classes=4, good_labels=(label,))
            for label in (1, 2, 3)
        ]
        cases.append(compact_case(models, ref))
    return merge_cases(cases)


def test_label_interactions_through_the_argmax_are_repaired():
    data = _conflicting_models()
    labels = [1, 2, 3]
    result = search_weights(data, labels)
    dice, _ = score_weights(data, result.weights, labels)
    np.testing.assert_array_equal(dice, result.dice)
    equal, _ = score_weights(data, np.full((3, 4), 1 / 3), labels)
    assert np.all(dice >= equal - 1e-12)
    assert np.all(dice - equal > 0.1)  # each label trusts the model that segments it well
    # taking each label's column from its best baseline is not enough here: the labels compete
    # for the background column and one of them drops below its best single model ...
    fallback_dice, _ = score_weights(data, result.fallback, labels)
    assert _worst_shortfall(fallback_dice, result.floors) > 0.002
    # ... the search re-checks the interactions and keeps every label at its best baseline
    assert result.feasible
    assert np.all(dice >= result.floors - 1e-12), (dice, result.floors)


def test_tuned_spec_keeps_every_label_at_its_best_baseline_when_the_fallback_does(cv):
    model_dirs, ref_dir = cv
    result = tune_weights(model_dirs, ref_dir, cv_folds=0)
    floors = np.nanmax(np.stack(list(result.baselines.values())), axis=0)
    assert np.all(result.dice >= floors - 1e-12), (result.dice, floors)
    assert not [w for w in result.warnings if "below" in w]


def test_search_options_are_checked():
    data = _random_data(0, 2, 3, 1, 1.0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        search_weights(data, [1, 2], steps=0)
    with pytest.raises(ValueError, match="refine >= 0"):
        search_weights(data, [1, 2], refine=-1)
