"""The held-out gate of the tuned weights: equal weights unless a label's tuned weights gain."""

import json

import numpy as np
import pytest

from nnunet_ext.synthetic import make_case, model_probabilities
from nnunet_ext.tune.compact import compact_case, merge_cases
from nnunet_ext.tune.gate import gate_weights
from nnunet_ext.tune.holdout import holdout_runs
from nnunet_ext.tune.scoring import score_weights


def _members(seed, good_labels, num_cases=8):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(num_cases):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i % 4 != 3)
        models = [
            model_probabilities(rng, ref, num_classes=4, good_labels=good) for good in good_labels
        ]
        cases.append(compact_case(models, ref))
    return merge_cases(cases)


def _two_specialists(seed, num_cases=8):
    """Model 0 segments label 1 well, model 1 label 2: tuning has a real gain on both."""
    return _members(seed, ((1,), (2,)), num_cases)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_exchangeable_members_keep_equal_weights(seed):
    """Two members drawn alike (same labels segmented well, independent noise): no weighting
    has a real gain, and averaging is best in expectation. The search still moves weights on
    the tuning cases (noise); the gate keeps equal weights on every label."""
    data = _members(seed, ((1, 2), (1, 2)))
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4)
    assert not np.allclose(runs.result.weights, 0.5)
    gate = gate_weights(data, labels, runs)
    np.testing.assert_array_equal(gate.weights, np.full((2, 4), 0.5))
    assert all(d.taken is None for d in gate.decisions)
    np.testing.assert_array_equal(gate.held_out, runs.baseline_per_case["equal"])


@pytest.mark.parametrize("seed", range(6))
def test_a_real_gain_is_taken_and_every_step_beats_the_noise(seed):
    data = _two_specialists(seed)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4)
    gate = gate_weights(data, labels, runs)
    decisions = {d.label: d for d in gate.decisions}
    assert decisions[1].taken is not None
    assert decisions[2].taken is not None
    for column in (1, 2):
        np.testing.assert_array_equal(gate.weights[:, column], runs.result.weights[:, column])
    assert gate.weights[0, 1] > gate.weights[1, 1]
    assert gate.weights[1, 2] > gate.weights[0, 2]
    equal = runs.baseline_per_case["equal"]
    gain = np.nanmean(gate.held_out, axis=0) - np.nanmean(equal, axis=0)
    assert gain[0] > 0.02
    assert gain[1] > 0.02
    for decision in gate.decisions:
        for step in decision.steps:
            if step["taken"]:
                assert step["gain"] > 2 * step["noise"]
                assert step["other_drop"] == 0.0
        if decision.taken is None:  # a label not taken keeps equal weights in its column
            np.testing.assert_array_equal(gate.weights[:, decision.label], [0.5, 0.5])


@pytest.mark.parametrize("seed", [0, 1])
def test_the_gated_spec_is_the_one_evaluated_held_out(seed):
    data = _two_specialists(seed, num_cases=6)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=3)
    gate = gate_weights(data, labels, runs)
    expected = np.full(gate.held_out.shape, np.nan)
    for held, weights in zip(runs.folds, gate.fold_weights, strict=True):
        expected[held] = score_weights(data.subset(held), weights, labels)[1]
    np.testing.assert_array_equal(gate.held_out, expected)
    np.testing.assert_array_equal(gate.in_sample, score_weights(data, gate.weights, labels)[0])
    # a fold's spec takes the same columns from the fold's weights as the spec from the search
    for fold_gated, fold_tuned in zip(gate.fold_weights, runs.fold_weights, strict=True):
        for column in range(data.num_classes):
            if np.array_equal(gate.weights[:, column], runs.result.weights[:, column]):
                np.testing.assert_array_equal(fold_gated[:, column], fold_tuned[:, column])
            else:
                np.testing.assert_array_equal(fold_gated[:, column], [0.5, 0.5])


def test_identical_members_gain_nothing_so_the_weights_stay_equal():
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(6):
        _, ref = make_case(rng, shape=(6, 24, 24))
        p = model_probabilities(rng, ref, num_classes=4, good_labels=(1, 2))
        cases.append(compact_case([p, p.copy()], ref))
    data = merge_cases(cases)
    runs = holdout_runs(data, [1, 2, 3], num_folds=3)
    gate = gate_weights(data, [1, 2, 3], runs)
    np.testing.assert_array_equal(gate.weights, np.full((2, 4), 0.5))
    assert all(d.taken is None for d in gate.decisions)


def test_the_gate_needs_folds():
    data = _two_specialists(0, num_cases=2)
    runs = holdout_runs(data, [1, 2, 3], num_folds=0)
    with pytest.raises(ValueError, match="runs must have held-out folds"):
        gate_weights(data, [1, 2, 3], runs)


def test_tune_weights_writes_the_gated_weights_and_reports_every_step(cv, tmp_path):
    from nnunet_ext.tune import Procedure, format_table, tune_weights, write_outputs

    model_dirs, ref_dir = cv
    result = tune_weights(model_dirs, ref_dir, cv_folds=3, procedure=Procedure(weight_gate=True))
    assert [d.label for d in result.weight_decisions] == [3, 2, 1]  # smallest label first
    taken = [d.label for d in result.weight_decisions if d.taken is not None]
    assert taken  # the cv data has real gains (model 0 on label 1, model 1 on label 2)
    for decision in result.weight_decisions:
        if decision.taken is None:  # only a label's own step can change its column
            np.testing.assert_array_equal(result.weights[:, decision.label], [0.5, 0.5])
    spec_file, report_file, _ = write_outputs(result, tmp_path / "spec.json")
    spec = json.loads(spec_file.read_text())
    for m, member in enumerate(spec["members"]):
        for label, weight in member["label_weights"].items():
            assert weight == round(float(result.weights[m, int(label)]), 4)
    report = json.loads(report_file.read_text())
    for entry in report["labels"]:
        decision = next(d for d in result.weight_decisions if d.label == entry["label"])
        assert entry["weights_taken"] == decision.taken
        assert len(entry["weights_candidates"]) == len(decision.candidates)
        for candidate in entry["weights_candidates"]:
            assert set(candidate) >= {"weights", "in_sample_dice", "held_out_dice"}
        for step in entry["weights_decision"]:
            assert set(step) >= {"step", "held_out_gain", "noise", "taken"}
    table = format_table(result)
    assert table.count("weight steps") == 3


def test_without_folds_the_searched_weights_are_kept_with_a_warning(cv):
    from nnunet_ext.tune import Procedure, tune_weights

    model_dirs, ref_dir = cv
    result = tune_weights(model_dirs, ref_dir, cv_folds=0)
    assert result.weight_decisions == []
    assert any("no held-out folds: no held-out estimate" in w for w in result.warnings)
    gated = tune_weights(model_dirs, ref_dir, cv_folds=0, procedure=Procedure(weight_gate=True))
    assert any("the weight gate is not applied" in w for w in gated.warnings)
    np.testing.assert_array_equal(gated.weights, result.weights)
    np.testing.assert_array_equal(result.weights_dice, result.dice)
