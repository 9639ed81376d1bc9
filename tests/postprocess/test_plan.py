from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_ext.io.errors import InputError
from nnunet_ext.postprocess import (
    PostprocessingPlan,
    apply_plan,
    load_plan,
    save_plan,
)
from nnunet_ext.postprocess.steps import ComponentStep, apply_component_step
from tests.postprocess._reference import ref_fill_holes, ref_keep_largest, ref_remove_small
from tests.postprocess.conftest import make_case


def test_round_trip_json(tmp_path):
    plan = PostprocessingPlan(
        keep_largest_foreground=True,
        keep_largest=(3, 1),
        min_voxels={2: 5},
        min_volume_mm3={3: 12.5},
        fill_holes=(2,),
        connectivity=1,
        metrics={"rule": "x"},
    )
    path = save_plan(plan, tmp_path / "plan.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    assert data["keep_largest"] == [1, 3]
    assert data["min_voxels"] == {"2": 5.0}
    loaded = load_plan(path)
    assert loaded == plan
    assert loaded.metrics == {"rule": "x"}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param(
            {"schema_version": 3}, "schema_version must be 1 or 2; got the number 3", id="version"
        ),
        pytest.param(
            {"schema_version": 1, "keep_larges": [1]},
            r"p.json: keep_larges must be absent \(allowed keys: connectivity, fill_holes, ",
            id="typo",
        ),
        pytest.param({"schema_version": 1, "keep_largest": [0]}, "label values > 0", id="label-0"),
        pytest.param({"schema_version": 1, "keep_largest": 1}, "must be a list", id="not-list"),
        pytest.param(
            {"schema_version": 1, "min_voxels": {"a": 1}}, "keys must be label values", id="key"
        ),
        pytest.param(
            {"schema_version": 1, "min_voxels": {"1": -2}}, "finite number >= 0", id="negative"
        ),
        pytest.param(
            {"schema_version": 1, "min_voxels": {"1": 2}, "min_volume_mm3": {"1": 2}},
            "must not both set label 1",
            id="both",
        ),
        pytest.param(
            {"schema_version": 1, "connectivity": 4}, r"connectivity must be in \[1, 3\]", id="conn"
        ),
        pytest.param([], "must be a JSON object", id="not-object"),
        pytest.param(
            {"schema_version": 1, "metrics": {"steps": [{"operation": "x", "labl": 1}]}},
            r"p.json: metrics.steps\[0\].labl must be absent \(allowed keys: accepted, ",
            id="nested-unknown",
        ),
        pytest.param(
            {"schema_version": 1, "metrics": {"dice": 1}},
            r"p.json: metrics.dice must be absent "
            r"\(allowed keys: after, before, candidates, component_rule, convention, dice_after",
            id="metrics-unknown",
        ),
        pytest.param(
            {"schema_version": 1, "steps": []},
            r"p.json: steps must be absent",
            id="steps-in-version-1",
        ),
        pytest.param(
            {"schema_version": 2, "steps": [{"step": "keep_top_k", "label": 1, "k": 2}]},
            r"p.json: steps\[0\].connectivity must be present",
            id="step-connectivity-missing",
        ),
        pytest.param(
            {"schema_version": 2, "steps": [{"step": "relabel", "label": 1}]},
            r"p.json: steps\[0\].step must be one of relabel_small, volume_gate",
            id="step-unknown",
        ),
        pytest.param(
            {
                "schema_version": 2,
                "steps": [{"step": "volume_gate", "label": 1, "min_size": 5, "connectivity": 1}],
            },
            r"p.json: steps\[0\].connectivity must be absent",
            id="step-extra-key",
        ),
        pytest.param(
            {
                "schema_version": 2,
                "steps": [{"step": "volume_gate", "label": 1, "min_size": 5, "unit": "ml"}],
            },
            r"unit must be voxels or mm3; got 'ml'",
            id="step-unit",
        ),
        pytest.param(
            {
                "schema_version": 2,
                "steps": [
                    {"step": "relabel_small", "label": 2, "to": 2, "min_size": 5, "connectivity": 3}
                ],
            },
            r"to must differ from label 2",
            id="step-to-self",
        ),
        pytest.param(
            {"schema_version": 1, "keep_largest_foreground": "yes"},
            r"keep_largest_foreground must be true or false; got the string 'yes'",
            id="bool",
        ),
    ],
)
def test_from_dict_errors(data, match):
    with pytest.raises(InputError, match=match):
        PostprocessingPlan.from_dict(data, source="p.json")


def test_load_plan_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="file not found"):
        load_plan(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match=r"bad\.json must be valid UTF-8 JSON; got a parse error"):
        load_plan(tmp_path / "bad.json")


def test_apply_plan_runs_steps_in_documented_order():
    labels = make_case(4)
    plan = PostprocessingPlan(keep_largest=(1, 2), min_voxels={3: 30}, fill_holes=(1, 2, 3))
    expected = ref_fill_holes(
        ref_remove_small(ref_keep_largest(labels, [1, 2]), {3: 30}), [1, 2, 3]
    )
    np.testing.assert_array_equal(apply_plan(labels, plan), expected)


def test_apply_plan_mm3_needs_spacing():
    plan = PostprocessingPlan(min_volume_mm3={1: 3.0})
    with pytest.raises(ValueError, match="spacing must be 3 positive numbers"):
        apply_plan(make_case(0), plan)
    labels = np.zeros((1, 1, 6), dtype=np.uint8)
    labels[0, 0, :2] = 1
    labels[0, 0, 3:] = 1
    np.testing.assert_array_equal(
        apply_plan(labels, plan, spacing=(1.0, 1.0, 1.0))[0, 0], [0, 0, 0, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        apply_plan(labels, plan, spacing=(1.5, 1.0, 1.0))[0, 0], [1, 1, 0, 1, 1, 1]
    )


def test_a_version_1_plan_still_loads_and_applies_as_before(tmp_path):
    """A plan written before component rules (schema 1, by hand here as it was written)."""
    old = {
        "schema_version": 1,
        "connectivity": None,
        "keep_largest_foreground": False,
        "keep_largest": [1],
        "min_voxels": {"3": 30.0},
        "min_volume_mm3": {},
        "fill_holes": [2],
        "metrics": {"rule": "accept a step if ...", "steps": [{"operation": "keep_largest"}]},
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    plan = load_plan(tmp_path / "old.json")
    assert plan.steps == ()
    assert plan == PostprocessingPlan(keep_largest=(1,), min_voxels={3: 30}, fill_holes=(2,))
    labels = make_case(7)
    expected = ref_fill_holes(ref_remove_small(ref_keep_largest(labels, [1]), {3: 30}), [2])
    np.testing.assert_array_equal(apply_plan(labels, plan), expected)
    assert save_plan(plan, tmp_path / "new.json")
    assert load_plan(tmp_path / "new.json") == plan
    assert json.loads((tmp_path / "new.json").read_text())["schema_version"] == 2


def test_component_steps_round_trip_and_run_first(tmp_path):
    steps = (
        ComponentStep("relabel_small", 3, to=1, min_size=40, unit="voxels", connectivity=3),
        ComponentStep("volume_gate", 2, to=0, min_size=12.5, unit="mm3", reason="gain 0.1"),
        ComponentStep("keep_top_k", 1, k=2, connectivity=1),
    )
    plan = PostprocessingPlan(steps=steps, keep_largest=(1,), fill_holes=(1,))
    path = save_plan(plan, tmp_path / "plan.json")
    loaded = load_plan(path)
    assert loaded == plan
    assert loaded.steps[1].reason == "gain 0.1"
    labels = make_case(3)
    spacing = (1.0, 0.5, 2.0)
    expected = labels
    for step in steps:
        expected = apply_component_step(expected, step, voxel_volume=1.0)
    expected = ref_fill_holes(ref_keep_largest(expected, [1]), [1])
    np.testing.assert_array_equal(apply_plan(labels, plan, spacing=spacing), expected)
    with pytest.raises(ValueError, match=r"step 'volume_gate label 2 -> 0 below 12.5 mm3'"):
        apply_plan(labels, plan)


def test_min_probability_without_probabilities_names_the_step():
    step = ComponentStep("min_probability", 2, threshold=0.6, statistic="mean", connectivity=3)
    plan = PostprocessingPlan(steps=(step,))
    with pytest.raises(
        ValueError,
        match=r"step 'min_probability label 2 -> 0 below mean 0.6' needs the fused probabilities",
    ):
        apply_plan(make_case(1), plan)
