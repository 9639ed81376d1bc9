from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.qc.calibrate import CalibrationCase, calibrate_thresholds
from nnunet_ext.qc.measures import LabelMeasures
from nnunet_ext.qc.thresholds import QcThresholds, label_reasons


def case(dice: float, cv: float, true: float, volume: float = 5.0, empty=()) -> CalibrationCase:
    m = LabelMeasures(1, volume, (volume, volume), (dice, 1.0), cv, empty, 1, 0.0, 0.9, 1.0)
    return CalibrationCase(m, "LV", true, volume)


@settings(max_examples=40, deadline=None)
@given(
    dice=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=60),
    rate=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_each_threshold_flags_at_most_its_share_of_good_cases(dice, rate):
    rng = np.random.default_rng(len(dice))
    cases = [case(d, float(rng.random()), 0.9) for d in dice]
    thresholds = calibrate_thresholds(cases, false_flag_rate=rate)
    flagged_low_dice = sum(min(c.measures.member_dice) < thresholds.min_member_dice for c in cases)
    flagged_cv = sum(c.measures.volume_cv > thresholds.max_volume_cv for c in cases)
    # the quantile is a sample value, so ties and rounding allow one case more
    assert flagged_low_dice <= rate * len(cases) + 1
    assert flagged_cv <= rate * len(cases) + 1
    if rate == 0.0:
        names = ["a", "b"]
        assert all(
            not any(
                "Dice" in r or "coefficient" in r
                for r in label_reasons(c.measures, thresholds, member_names=names)
            )
            for c in cases
        )


def test_bad_and_blind_cases_do_not_loosen_the_thresholds():
    good = [case(0.9, 0.1, 0.9), case(0.95, 0.05, 0.95)]
    blind = case(0.0, 1.0, 0.9, empty=(1,))
    bad = case(0.1, 0.9, 0.2)
    thresholds = calibrate_thresholds([*good, blind, bad], false_flag_rate=0.0)
    assert thresholds.min_member_dice == 0.9
    assert thresholds.max_volume_cv == 0.1
    assert thresholds.volume_ranges == {"LV": (5.0, 5.0)}


def test_without_good_cases_the_base_stays():
    base = QcThresholds(min_member_dice=0.42)
    assert calibrate_thresholds([case(0.1, 0.9, 0.2)], base=base).min_member_dice == 0.42


def test_false_flag_rate_is_checked():
    with pytest.raises(ValueError, match=r"false_flag_rate must be in \[0, 1\); got 1"):
        calibrate_thresholds([], false_flag_rate=1)
