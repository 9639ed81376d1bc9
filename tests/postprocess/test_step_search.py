"""The existing steps judged in-sample (nnU-Net's rule) or held out (the component rules' rule).

The case of the demo's draws: a step that wins by a hair on the CV cases and loses on new ones.
Here keep-largest of label 1 removes an 8-voxel false-positive speck in nine cases (+0.004 Dice
each) and a true 30-voxel second component in the tenth (-0.015): its mean over the ten cases
improves (+0.002), so nnU-Net's rule keeps it, but held out the gain is within the noise and a
case loses more than 0.005, so it is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext._stats import MIN_GAIN, judge_label_step
from nnunet_ext.postprocess import determine_plan
from nnunet_ext.postprocess.cli import main
from nnunet_ext.postprocess.components import keep_largest_component
from nnunet_ext.postprocess.heldout import fold_ids
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.postprocess.step_search import StepSearch, held_out_verdict
from tests.postprocess.conftest import write_sitk

SHAPE = (16, 24, 24)


def _hair_cases() -> tuple[list[np.ndarray], list[np.ndarray]]:
    truth, predictions = [], []
    for index in range(10):
        reference = np.zeros(SHAPE, np.uint8)
        reference[2:12, 2:12, 2:12] = 1  # 1000 voxels
        prediction = reference.copy()
        if index == 7:  # a true second component: keep-largest removes it
            reference[13:15, 18:23, 18:21] = 1  # 30 voxels
            prediction[13:15, 18:23, 18:21] = 1
        else:  # a false-positive speck: keep-largest removes it
            prediction[14:16, 20:22, 20:22] = 1  # 8 voxels
        truth.append(reference)
        predictions.append(prediction)
    return truth, predictions


def _search(judge: str) -> StepSearch:
    truth, predictions = _hair_cases()
    objective = Objective("dice", nsd_tolerance=1.0, convention="nan", ignore_label=None)
    search = StepSearch(objective, truth, predictions, [(1.0, 1.0, 1.0)] * 10, [1], judge=judge)
    search.try_step(
        "keep_largest", 1, lambda p: keep_largest_component(p, label_ids=[1], connectivity=None)
    )
    return search


def test_a_step_winning_by_a_hair_in_sample_is_refused_held_out():
    in_sample, held = _search("in-sample"), _search("held-out")
    (step,) = in_sample.steps
    assert step["accepted"]
    assert in_sample.accepted["keep_largest"] == [1]
    assert 0 < step["value_after"] - step["value_before"] < 0.003  # in-sample: +0.002
    assert "held_out_gain" not in step  # nnU-Net's rule records no held-out verdict
    (step,) = held.steps
    assert not step["accepted"]
    assert held.accepted["keep_largest"] == []
    assert step["fold_choices"] == [True] * 5  # every fold takes it on the other folds ...
    assert 0 < step["held_out_gain"] < 2 * step["noise"]  # ... and it is within the noise
    assert step["reason"].startswith("held-out dice gain +")
    assert held.metrics(10)["judge"] == "held-out"
    assert "held out" in held.rule()
    assert "held out" not in in_sample.rule()


def test_judge_is_checked():
    with pytest.raises(ValueError, match="judge must be in-sample or held-out; got 'cv'"):
        _search("cv")


@pytest.fixture(scope="module")
def hair_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hair")
    pred, ref = root / "pred", root / "ref"
    pred.mkdir()
    ref.mkdir()
    for index, (reference, prediction) in enumerate(zip(*_hair_cases(), strict=True)):
        write_sitk(reference, ref / f"c{index}.nii.gz")
        write_sitk(prediction, pred / f"c{index}.nii.gz")
    return pred, ref


def test_determine_judges_held_out_with_component_rules_and_in_sample_without(hair_folders):
    pred, ref = hair_folders
    options = {"label_ids": [1], "try_keep_largest_foreground": False, "try_fill_holes": False}
    plain = determine_plan(pred, ref, **options)
    assert plain.keep_largest == (1,)
    assert plain.metrics["judge"] == "in-sample"
    with_rules = determine_plan(pred, ref, component_rules=["keep_top_k"], **options)
    assert with_rules.keep_largest == ()
    assert with_rules.metrics["judge"] == "held-out"
    assert determine_plan(pred, ref, judge="held-out", **options).keep_largest == ()
    forced = determine_plan(pred, ref, component_rules=["keep_top_k"], judge="in-sample", **options)
    assert forced.keep_largest == (1,)
    with pytest.raises(ValueError, match="judge must be in-sample or held-out"):
        determine_plan(pred, ref, judge="both", **options)


def test_cli_judge_flag_reports_the_held_out_gain(hair_folders, tmp_path, capsys):
    pred, ref = hair_folders
    plan = tmp_path / "plan.json"
    args = ["determine", "-i", str(pred), "-r", str(ref), "-o", str(plan), "--labels", "1"]
    assert main([*args, "--judge", "held-out", "--no-fill-holes"]) == 0
    out = capsys.readouterr().out
    assert "keep_largest" in out
    assert "held-out +0.00" in out
    assert "rejected on dice" in out
    with pytest.raises(SystemExit, match="2"):
        main([*args, "--judge", "cv", "--overwrite"])
    assert "argument --judge: invalid choice: 'cv'" in capsys.readouterr().err


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 12),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_held_out_verdict_on_random_values(cases, labels, seed, foreground):
    """Each fold takes the step when the other folds' mean difference is above 0; the held-out
    differences are then judged by the package's one rule; no change never passes."""
    rng = np.random.default_rng(seed)
    baseline = rng.uniform(0.0, 1.0, (cases, labels))
    goodness = baseline + rng.normal(0.0, 0.05, (cases, labels))
    goodness[rng.random((cases, labels)) < 0.1] = np.nan
    folds = fold_ids(cases)
    j = None if foreground else int(rng.integers(0, labels))
    verdict = held_out_verdict(goodness, baseline, j, folds, paired=True)
    diff = np.where(np.isnan(goodness), 1.0, goodness) - baseline  # baseline is never NaN
    column = np.nanmean(diff, axis=1) if j is None else diff[:, j]
    held = np.zeros_like(diff)
    columns = np.zeros(cases)
    for fold, took in zip(np.unique(folds), verdict["fold_choices"], strict=True):
        train = folds != fold
        assert took == bool(train.any() and column[train].mean() > 0)
        if took:
            held[folds == fold] = diff[folds == fold]
            columns[folds == fold] = column[folds == fold]
    expected = judge_label_step(labels, np.column_stack([held, columns]))
    if j is not None:
        expected = judge_label_step(j, held)
    assert verdict["passes"] == expected["passes"]
    assert verdict["gain"] == pytest.approx(expected["gain"])
    np.testing.assert_allclose(verdict["held_out_by_label"], held.mean(axis=0))
    if verdict["passes"]:
        assert verdict["gain"] > MIN_GAIN
        assert verdict["other_drop"] == 0.0
    unchanged = held_out_verdict(baseline, baseline, j, folds, paired=True)
    assert not unchanged["passes"]
    assert not any(unchanged["fold_choices"])
