"""The region tuner's held-out gate and guard."""

from __future__ import annotations

import numpy as np

from nnunet_ext.tune.region_data import RegionCVData
from nnunet_ext.tune.region_gate import tune_region_setting
from nnunet_ext.tune.region_search import region_case_dice
from nnunet_ext.tune.region_setting import member_setting


def one_region_data(rng, num_cases=8, size=60):
    """Member 0 right on the region, member 1 inverted: no threshold of their mean separates."""
    truth = rng.random((num_cases, size)) < 0.4
    p0 = np.where(truth, rng.uniform(0.7, 0.95, truth.shape), rng.uniform(0.02, 0.2, truth.shape))
    p1 = np.where(truth, 0.0, rng.uniform(0.8, 0.97, truth.shape))
    return RegionCVData(
        probabilities=np.stack([p0.reshape(1, -1), p1.reshape(1, -1)]).astype(np.float32),
        reference=truth.reshape(-1).astype(np.uint8),
        offsets=np.arange(num_cases + 1, dtype=np.int64) * size,
        inactive_reference=np.zeros((num_cases, 1), dtype=np.int64),
        regions=((1,),),
        order=(1,),
    )


def members(data):
    return [region_case_dice(data, *vars(member_setting(2, 1, m)).values()) for m in range(2)]


def test_guard_hands_a_region_below_its_best_member_to_that_member():
    data = one_region_data(np.random.default_rng(0))
    equal_only = np.array([[0.5, 0.5]])  # the search cannot find member 0 alone
    outcome = tune_region_setting(data, equal_only, 4, members(data))
    setting, steps, held_out, warnings = (
        outcome.setting,
        outcome.steps,
        outcome.held_out,
        outcome.warnings,
    )
    np.testing.assert_array_equal(outcome.held_out_dice, held_out)  # decided on Dice
    assert steps[0].guarded == 0
    assert setting.weights[:, 0].tolist() == [1.0, 0.0]
    assert setting.thresholds == [0.5]
    np.testing.assert_allclose(held_out, members(data)[0])
    assert "taken from member 0 (a from rule)" in warnings[0]


def test_a_step_without_held_out_gain_is_not_kept():
    rng = np.random.default_rng(1)
    data = one_region_data(rng)
    same = data.probabilities.copy()
    same[1] = same[0]  # two identical members, already best at 0.5: nothing to gain
    data = RegionCVData(same, *list(vars(data).values())[1:])
    candidates = np.array([[0.5, 0.5], [1.0, 0.0]])
    outcome = tune_region_setting(data, candidates, 4, members(data))
    setting, steps, warnings = outcome.setting, outcome.steps, outcome.warnings
    assert steps[0].kept is False
    assert steps[0].verdict is not None
    assert not steps[0].verdict["passes"]
    assert setting.thresholds == [0.5]
    np.testing.assert_allclose(setting.weights, 0.5)
    assert warnings == []


def test_without_folds_every_step_is_kept_unchecked():
    data = one_region_data(np.random.default_rng(2))
    candidates = np.array([[0.5, 0.5], [1.0, 0.0]])
    outcome = tune_region_setting(data, candidates, 0, members(data))
    setting, steps = outcome.setting, outcome.steps
    assert outcome.held_out is None
    assert outcome.held_out_dice is None
    assert steps[0].verdict is None
    assert steps[0].kept
    assert setting.weights[:, 0].tolist() == [1.0, 0.0]
