from __future__ import annotations

import numpy as np
import pytest

from nnunet_ext.ensemble.fusion import fuse_probabilities
from nnunet_ext.io.errors import InputError
from nnunet_ext.qc.measures import measure_case
from nnunet_ext.qc.thresholds import QcThresholds, label_reasons

from .conftest import confident

NAMES = ["2d", "3d_fullres"]


def judge(members: list[np.ndarray], thresholds: QcThresholds | None = None) -> dict[int, tuple]:
    """Fuse confident members, measure, and return each label's reasons."""
    probabilities = [confident(m) for m in members]
    fused = fuse_probabilities(probabilities)
    labels = fused.argmax(axis=0).astype(np.uint8)
    measures = measure_case(fused, labels, members)
    return {
        m.label: label_reasons(m, thresholds or QcThresholds(), member_names=NAMES)
        for m in measures
    }


def test_members_that_agree_are_not_flagged(reference):
    assert judge([reference, reference.copy()]) == {1: (), 2: (), 3: ()}


def test_a_member_blind_to_a_label_flags_that_label_only(reference):
    blind = reference.copy()
    blind[blind == 3] = 0
    reasons = judge([reference, blind])
    assert reasons[1] == ()
    assert reasons[2] == ()
    assert "member 3d_fullres predicts no voxel of the label; the others do" in reasons[3]
    assert any("coefficient of variation 1.00" in r for r in reasons[3])


def test_a_spurious_island_in_the_fused_label_is_flagged(reference):
    island = reference.copy()
    island[3:5, 16:21, 2:8] = 2  # a second LV, far from the first
    probabilities = [confident(reference), confident(island, sure=0.95)]
    fused = fuse_probabilities(probabilities, [1, 2])  # the member with the island weighs more
    labels = fused.argmax(axis=0).astype(np.uint8)
    assert (labels[3:5, 16:21, 2:8] == 2).all()  # the island reaches the fused labels
    (lv,) = measure_case(fused, labels, [reference, island], label_ids=[2])
    # by default the member's extra volume flags it; islands are off until calibrated or set
    (default,) = label_reasons(lv, QcThresholds(), member_names=NAMES)
    assert default.startswith("members' volumes vary: coefficient of variation 0.3")
    reasons = label_reasons(lv, QcThresholds(max_island_fraction=0.1), member_names=NAMES)
    assert lv.components == 2
    assert any(r.startswith("an island: the second-largest component holds") for r in reasons)
    assert lv.member_dice[0] < 1.0 == lv.member_dice[1]
    strict = label_reasons(lv, QcThresholds(max_components=1), member_names=NAMES)
    assert "2 connected components (> 1)" in strict


def test_per_label_components_and_volume_ranges_use_names_or_values(reference):
    (rv,) = measure_case(confident(reference, sure=1.0), reference, [reference], label_ids=[3])
    thresholds = QcThresholds(label_components={"RV": 0}, volume_ranges={"3": (1.0, 2.0)})
    reasons = label_reasons(rv, thresholds, member_names=["only"], label_name="RV")
    assert "1 connected components (> 0)" in reasons
    assert any("outside the cross-validation range 0.75..2.5 ml" in r for r in reasons)
    inside = QcThresholds(volume_ranges={"RV": (0.1, 0.2)})
    assert label_reasons(rv, inside, member_names=["only"], label_name="RV") == ()


def test_thresholds_round_trip_and_overrides():
    thresholds = QcThresholds(
        min_member_dice=0.5,
        max_components=2,
        label_components={"LV": 1},
        volume_ranges={"RV": (1.0, 3.0)},
    )
    again = QcThresholds.from_dict(thresholds.to_dict(), source="spec.json")
    assert again == thresholds
    assert again.with_overrides(min_member_dice=0.9, max_volume_cv=None).min_member_dice == 0.9


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param({"min_dice": 0.5}, r"qc\.min_dice must be absent", id="unknown-key"),
        pytest.param({"max_volume_cv": -1}, r"qc\.max_volume_cv must be a number >= 0", id="neg"),
        pytest.param({"max_components": 1.5}, r"qc\.max_components must be an integer", id="float"),
        pytest.param(
            {"volume_ranges": {"RV": [3, 1]}},
            r"volume_ranges\.RV\[1\] must be a number >= 3",
            id="order",
        ),
        pytest.param({"volume_ranges": {"RV": 3}}, r"must be a \[low, high\] pair", id="pair"),
        pytest.param([], r"qc must be a JSON object", id="not-object"),
    ],
)
def test_thresholds_from_dict_is_strict(data, match):
    with pytest.raises(InputError, match=match):
        QcThresholds.from_dict(data, source="spec.json", where="qc")
