import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnunet_ext.trainers.early_stopping import best_epoch, decide_stop

NAN = math.nan


@pytest.mark.parametrize(
    ("history", "kwargs", "stop", "reason", "without"),
    [
        pytest.param([], {"patience": 1}, False, None, 0, id="no-epochs"),
        pytest.param([0.5], {"patience": 1}, False, None, 0, id="first-epoch-improves"),
        pytest.param(
            [0.5, 0.5], {"patience": 1}, True, "patience", 1, id="equal-is-no-improvement"
        ),
        pytest.param([0.5, 0.6], {"patience": 1}, False, None, 0, id="strict-rise"),
        pytest.param(
            [0.5, 0.6],
            {"patience": 1, "min_delta": 1.0},
            True,
            "patience",
            1,
            id="unreachable-delta",
        ),
        pytest.param(
            [0.5, 0.6, 0.7],
            {"patience": 2, "min_delta": 0.15},
            False,
            None,
            0,
            id="small-steps-add-up",
        ),
        pytest.param(
            [0.5, 0.6, 0.64],
            {"patience": 2, "min_delta": 0.15},
            True,
            "patience",
            2,
            id="small-steps",
        ),
        pytest.param(
            [0.5, 0.66, 0.7], {"patience": 2, "min_delta": 0.15}, False, None, 1, id="delta-met"
        ),
        pytest.param(
            [0.5, NAN, NAN], {"patience": 2}, True, "patience", 2, id="nan-never-improves"
        ),
        pytest.param([NAN, NAN], {"patience": 2}, True, "patience", 2, id="all-nan"),
        pytest.param([NAN], {"patience": 2}, False, None, 1, id="nan-within-patience"),
        pytest.param(
            [0.5, 0.4, 0.3], {"patience": 2, "min_epochs": 4}, False, None, 2, id="min-epochs-holds"
        ),
        pytest.param(
            [0.5, 0.4, 0.3, 0.2],
            {"patience": 2, "min_epochs": 4},
            True,
            "patience",
            3,
            id="min-epochs-reached",
        ),
        pytest.param(
            [0.5, 0.9],
            {"patience": None, "target_dice": 0.9},
            True,
            "target_dice",
            0,
            id="target-reached",
        ),
        pytest.param(
            [0.5, 0.89],
            {"patience": None, "target_dice": 0.9},
            False,
            None,
            0,
            id="target-not-reached",
        ),
        pytest.param(
            [0.95, NAN],
            {"patience": None, "target_dice": 0.9},
            False,
            None,
            1,
            id="target-ignores-nan",
        ),
        pytest.param([0.5, 0.4], {"patience": None}, False, None, 1, id="rules-off"),
    ],
)
def test_stop_rule_table(history, kwargs, stop, reason, without):
    d = decide_stop(history, **kwargs)
    assert d.should_stop is stop
    assert d.reason == reason
    assert d.epochs_without_improvement == without
    assert d.epochs_completed == len(history)
    assert bool(d.message) is stop


def test_decision_reports_best_like_nnunet_checkpoint_best():
    d = decide_stop([0.1, 0.4, 0.4, 0.3], patience=2)
    assert (d.best_epoch, d.best_ema) == (1, 0.4)
    assert d.should_stop
    assert "not improved for 2 epochs (patience 2)" in d.message


@given(st.lists(st.one_of(st.floats(0, 1), st.just(NAN)), max_size=30), st.integers(1, 10))
def test_stop_iff_patience_epochs_without_improvement(history, patience):
    d = decide_stop(history, patience=patience)
    assert d.should_stop == (len(history) > 0 and d.epochs_without_improvement >= patience)
    # the rule never fires before `patience` epochs exist
    if len(history) < patience:
        assert not d.should_stop


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_best_epoch_is_first_maximum(history):
    epoch, value = best_epoch(history)
    assert value == max(history)
    assert epoch == history.index(max(history))
