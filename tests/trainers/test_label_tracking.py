"""Per-label EMA, bests and the forgetting rule (pure functions, table tests)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.trainers.label_tracking import (
    ForgettingEvent,
    checkpoint_name_for_label,
    detect_forgetting,
    label_bests,
    label_emas,
)

NAN = math.nan


def _ema_reference(values):
    """nnU-Net's EMA formula, written out for a series without NaN."""
    out = []
    for v in values:
        out.append(v if not out else 0.9 * out[-1] + 0.1 * v)
    return out


@settings(deadline=None)  # the shared CI machine is slow at times
@given(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=40))
def test_each_label_gets_nnunets_ema(rows):
    emas = label_emas(rows)
    assert len(emas) == 3
    for index in range(3):
        expected = _ema_reference([row[index] for row in rows])
        assert emas[index] == pytest.approx(expected, abs=1e-12)


def test_nan_epochs_keep_the_previous_ema():
    emas = label_emas([[NAN, 0.5], [0.4, NAN], [NAN, 1.0], [0.6, 1.0]])
    assert math.isnan(emas[0][0])
    assert emas[0][1:] == pytest.approx([0.4, 0.4, 0.42])
    assert emas[1] == pytest.approx([0.5, 0.5, 0.55, 0.595])


def test_bests_are_first_maxima_and_skip_nan():
    assert label_bests([[0.1, 0.5, 0.5, 0.4], [NAN, 0.2, 0.3], [NAN]]) == [
        (1, 0.5),
        (2, 0.3),
        (None, None),
    ]


def _story_rv(epochs: int = 400) -> list[float]:
    """Per-epoch RV pseudo Dice shaped like the story: rise to 0.6 by epoch 100, plateau to
    epoch 111, linear fall to 0 by epoch 317, then 0."""
    out = []
    for e in range(epochs):
        if e <= 100:
            out.append(0.6 * e / 100)
        elif e <= 111:
            out.append(0.6)
        elif e <= 317:
            out.append(0.6 * (317 - e) / (317 - 111))
        else:
            out.append(0.0)
    return out


def test_story_history_rise_plateau_fall_to_zero():
    rv = _story_rv()
    lv = [min(0.9, 0.3 + e / 200) for e in range(400)]  # keeps improving: the mean hides RV
    emas = label_emas([[a, b] for a, b in zip(lv, rv, strict=True)])
    (event,) = detect_forgetting(emas, fraction=0.5, epochs=20, label_names=["LV", "RV"])
    assert event.name == "RV"
    assert event.index == 1
    assert 110 <= event.best_epoch <= 125  # the EMA peaks a few epochs after the plateau ends
    assert event.best_ema == pytest.approx(max(emas[1]))
    # first epoch whose EMA is below half the best, then 19 more low epochs
    half = 0.5 * max(emas[1])
    first_low = next(e for e, v in enumerate(emas[1]) if e > event.best_epoch and v < half)
    assert event.epoch == first_low + 19
    assert event.ema < 0.5 * event.best_ema
    assert "label 'RV' is being forgotten" in event.describe()
    assert "for 20 epochs" in event.describe()


@pytest.mark.parametrize(
    ("series", "fraction", "epochs", "expected"),
    [
        # (EMA per epoch, fraction, epochs, (fired epoch, best epoch) or None)
        ([0.2, 0.6, 0.6, 0.29, 0.29, 0.29], 0.5, 3, (5, 1)),
        ([0.2, 0.6, 0.6, 0.29, 0.29, 0.31, 0.29], 0.5, 3, None),  # not consecutive
        ([0.2, 0.6, 0.29, 0.29, 0.7, 0.34, 0.34], 0.5, 2, (3, 1)),  # first firing counts
        ([0.2, 0.6, 0.29, 0.9, 0.44, 0.44], 0.5, 2, (5, 3)),  # reset by a new best
        ([0.05, 0.08, 0.0, 0.0, 0.0], 0.5, 2, None),  # never learned (best < 0.1)
        ([0.5, 0.49, 0.49], 1.0, 2, (2, 0)),  # fraction 1: any drop
        ([0.5, 0.3, NAN, 0.3], 0.7, 2, (3, 0)),  # NaN epochs are skipped
        ([NAN, NAN], 0.5, 1, None),
        ([], 0.5, 1, None),
    ],
)
def test_forgetting_rule_table(series, fraction, epochs, expected):
    events = detect_forgetting([series], fraction=fraction, epochs=epochs)
    if expected is None:
        assert events == []
    else:
        (event,) = events
        assert (event.epoch, event.best_epoch) == expected
        assert event.name == "label 1"
        assert event.to_dict()["message"] == event.describe()


def test_each_label_fires_once_in_label_order():
    fall = [0.8, 0.8, 0.1, 0.1, 0.1, 0.1]
    events = detect_forgetting([fall, [0.5] * 6, fall], fraction=0.5, epochs=2)
    assert [(e.index, e.epoch) for e in events] == [(0, 3), (2, 3)]
    assert all(isinstance(e, ForgettingEvent) for e in events)


@pytest.mark.parametrize(("fraction", "epochs"), [(0.0, 5), (1.5, 5), (0.5, 0)])
def test_bad_rule_parameters_are_refused(fraction, epochs):
    with pytest.raises(ValueError, match="must be"):
        detect_forgetting([[0.5]], fraction=fraction, epochs=epochs)


@settings(deadline=None)  # the shared CI machine is slow at times
@given(st.text(min_size=1, max_size=30))
def test_checkpoint_names_are_safe_file_names(name):
    file_name = checkpoint_name_for_label(name)
    assert file_name.startswith("checkpoint_best_")
    assert file_name.endswith(".pth")
    assert "/" not in file_name
    assert "\\" not in file_name
    assert " " not in file_name
    assert file_name[len("checkpoint_best_") : -len(".pth")]
