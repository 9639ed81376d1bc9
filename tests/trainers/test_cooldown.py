"""The cooldown learning-rate curve and plan (pure functions)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.trainers.cooldown import CooldownPlan, cooldown_lr


@settings(deadline=None)  # the shared CI machine is slow at times
@given(
    start=st.floats(1e-6, 1.0),
    epochs=st.integers(1, 30),
    iterations=st.integers(1, 50),
)
def test_rate_falls_strictly_below_the_start_and_ends_at_zero(start, epochs, iterations):
    plan = CooldownPlan(7, epochs, epochs, start, iterations, "patience", "")
    rates = [plan.lr(e, i) for e in range(7, 7 + epochs) for i in range(iterations)]
    assert len(rates) == epochs * iterations
    assert rates[-1] == 0.0
    assert all(r < start for r in rates)
    assert all(a > b for a, b in itertools.pairwise(rates))


@settings(deadline=None)  # the shared CI machine is slow at times
@given(total=st.integers(1, 10_000), data=st.data())
def test_rate_is_nnunet_poly_curve(total, data):
    step = data.draw(st.integers(0, total - 1))
    expected = 0.01 * (1 - (step + 1) / total) ** 0.9
    assert cooldown_lr(0.01, step, total) == pytest.approx(expected, abs=1e-15)


def test_steps_outside_the_cooldown_are_refused():
    plan = CooldownPlan(10, 3, 3, 0.01, 2, "patience", "")
    with pytest.raises(ValueError, match="not in the cooldown"):
        plan.lr(13, 0)
    with pytest.raises(ValueError, match="not in the cooldown"):
        plan.lr(10, 2)
    with pytest.raises(ValueError, match=r"step must be in \[0, 4\)"):
        cooldown_lr(0.01, 4, 4)


def test_plan_round_trips_through_its_record():
    plan = CooldownPlan(12, 4, 20, 0.0073, 250, "stop_file", "found STOP")
    data = plan.to_dict()
    assert data["end_epoch"] == 16
    assert CooldownPlan.from_dict({**data, "completed": True}) == plan
    assert plan.contains(12)
    assert plan.contains(15)
    assert not plan.contains(16)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"epochs": 0}, "malformed"),
        ({"start_lr": math.nan}, "malformed"),
        ({"start_epoch": "soon"}, "malformed"),
    ],
)
def test_malformed_plan_record_is_refused(change, match):
    data = {**CooldownPlan(1, 2, 2, 0.01, 2, "patience", "").to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        CooldownPlan.from_dict(data)


def test_missing_key_is_refused():
    data = CooldownPlan(1, 2, 2, 0.01, 2, "patience", "").to_dict()
    del data["start_lr"]
    with pytest.raises(ValueError, match="start_lr"):
        CooldownPlan.from_dict(data)
