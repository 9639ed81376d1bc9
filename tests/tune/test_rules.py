"""Per-label rules chosen by the tuner: "from" a member, decision scales, held-out decisions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.ensemble import ensemble_folders
from nnunet_ext.io import read_labels
from nnunet_ext.synthetic import make_case
from nnunet_ext.tune import Procedure, tune_weights
from nnunet_ext.tune.compact import compact_case, merge_cases
from nnunet_ext.tune.holdout import holdout_runs
from nnunet_ext.tune.judge import bootstrap_noise
from nnunet_ext.tune.report import format_table, report_dict, write_outputs
from nnunet_ext.tune.rules import choose_rules
from nnunet_ext.tune.scoring import mean_over_cases
from tests.tune.conftest import forgetful_member


def test_acceptance_the_tuner_takes_rv_from_the_model_that_predicts_it(forgot_rv, tmp_path):
    dirs, ref_dir, members = forgot_rv
    result = tune_weights(dirs, ref_dir, cv_folds=4)
    assert (3, "from", 1, None) in result.rules
    rv = next(d for d in result.decisions if d.label == 3)
    assert rv.chosen.kind == "from"
    assert rv.chosen.member == 1
    from_step = rv.steps[0]
    assert from_step["kind"] == "from"
    assert from_step["taken"]
    assert from_step["gain"] > 2 * from_step["noise"]
    # the weights alone cannot keep both: RV or the large labels suffer
    assert result.weights_dice is not None
    assert np.min(result.weights_dice) < 0.5
    assert result.dice[2] > 0.99  # RV with the rule
    spec_file, report_file, figure = write_outputs(result, tmp_path / "spec.json")
    spec = json.loads(spec_file.read_text())
    assert spec["schema_version"] == 2
    assert {"label": "3", "from": 1} in spec["rules"]
    ensemble_folders(None, tmp_path / "fused", spec=spec_file)
    for case, probs in members[1].items():
        fused = read_labels(tmp_path / "fused" / f"{case}.nii.gz").array
        # the fused label map equals the 2d model's for RV
        np.testing.assert_array_equal(fused == 3, probs.argmax(axis=0) == 3)
    report = json.loads(report_file.read_text())
    rv_report = next(item for item in report["labels"] if item["label"] == 3)
    described = {c["rule"] for c in rv_report["candidates"]}
    assert {"weighted", "from m0", "from m1", "scale x1.5", "scale x3"} <= described
    for candidate in rv_report["candidates"]:
        assert set(candidate) >= {"rule", "in_sample_dice", "held_out_dice"}
    assert rv_report["rule"] == "from m1"
    assert figure.stat().st_size > 0


def test_no_rule_without_a_held_out_gain(forgot_rv):
    """Without folds there is no held-out estimate: every label stays weighted."""
    dirs, ref_dir, _ = forgot_rv
    result = tune_weights(dirs, ref_dir, cv_folds=0)
    assert result.rules == []
    assert all(d.chosen.kind == "weighted" for d in result.decisions)
    np.testing.assert_array_equal(result.dice, result.weights_dice)


def test_rules_off_reproduces_the_weights_only_tuner(cv):
    """``rules=False`` is the weights-only tuner: no rule, and no label left to the rules (the
    search treats every label alike): the searched weights as they are, or gated with the
    weight gate."""
    from nnunet_ext.tune.gate import gate_weights
    from nnunet_ext.tune.reading import load_cv_data

    model_dirs, ref_dir = cv
    with_rules = tune_weights(model_dirs, ref_dir, cv_folds=3)
    without = tune_weights(model_dirs, ref_dir, cv_folds=3, rules=False)
    data, _, _, labels, _ = load_cv_data(model_dirs, ref_dir)
    runs = holdout_runs(data, labels, num_folds=3)
    np.testing.assert_array_equal(without.weights, runs.result.weights)
    gated = tune_weights(
        model_dirs, ref_dir, cv_folds=3, rules=False, procedure=Procedure(weight_gate=True)
    )
    np.testing.assert_array_equal(gated.weights, gate_weights(data, labels, runs).weights)
    assert without.rules == []
    assert without.decisions == []
    # with rules, label 2 is left to them (model 0's Dice 0.45 is under half model 1's 0.93)
    assert holdout_runs(data, labels, num_folds=3, rules=True).result.rule_labels == (2,)
    assert holdout_runs(data, labels, num_folds=3).result.rule_labels == ()
    # rules never take a label below equal weights in-sample
    assert np.all(with_rules.dice >= with_rules.baselines["equal"] - 1e-12)
    assert report_dict(with_rules)["schema_version"] == 2


def test_a_useless_rule_is_not_taken():
    """Two identical members: no rule can gain held out, so every label stays weighted."""
    rng = np.random.default_rng(4)
    cases = []
    for _ in range(6):
        _, ref = make_case(rng, shape=(6, 24, 24))
        p = forgetful_member(rng, ref, good=(1, 2, 3), forgets=(), p_true=0.6)
        cases.append(compact_case([p, p.copy()], ref))
    data = merge_cases(cases)
    runs = holdout_runs(data, [1, 2, 3], num_folds=3)
    choice = choose_rules(
        data,
        [1, 2, 3],
        runs.result.weights,
        equal_per_case=runs.baseline_per_case["equal"],
        folds=runs.folds,
        fold_weights=runs.fold_weights,
    )
    assert choice.rules.is_identity
    assert all(not step["taken"] for d in choice.decisions for step in d.steps)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(-1, 1), min_size=2, max_size=30),
    shift=st.floats(-1, 1),
)
def test_bootstrap_noise_is_shift_invariant_and_shrinks_with_more_cases(values, shift):
    base = np.array(values)
    noise = bootstrap_noise(base)
    assert noise >= 0
    assert bootstrap_noise(base + shift) == pytest.approx(noise, abs=1e-9)
    assert bootstrap_noise(np.tile(base, 4)) <= noise * 0.75 + 1e-12
    assert bootstrap_noise(np.array([0.5])) == float("inf")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidates_scored_on_the_voxels_they_change_equal_full_scoring(seed):
    from nnunet_ext.ensemble import LabelRules
    from nnunet_ext.tune.candidates import RuleScorer, all_candidates, with_candidate

    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(3):
        ref = rng.integers(0, 4, size=(5, 9, 9))
        members = [rng.dirichlet([1, 1, 1, 1], size=ref.shape).transpose(3, 0, 1, 2) for _ in "ab"]
        cases.append(compact_case([m.astype(np.float32) for m in members], ref))
    data = merge_cases(cases)
    scorer = RuleScorer(data, [1, 2, 3])
    fused = scorer.fused(rng.random((2, 4)) + 0.1)
    decided = LabelRules.build(4, scale={2: 1.5}, take=[(3, 1)])
    candidates = all_candidates(2)
    fast = scorer.candidates_per_case(fused, decided, 1, candidates)
    for candidate, got in zip(candidates, fast, strict=True):
        expected = scorer.per_case(fused, with_candidate(decided, 1, candidate, 4))
        np.testing.assert_array_equal(got, expected)


def _sure_of(reference, labels, *, floor, background):
    """Four channels at ``floor``; ``background`` on the reference background; on each label of
    ``labels`` 0.7 for it and 0.1 for the other channels."""
    p = np.full((4, *reference.shape), floor)
    p[0][reference == 0] = background
    for c in labels:
        p[:, reference == c] = 0.1
        p[c, reference == c] = 0.7
    return p


def _diluting_member(rng, reference, *, sees):
    """Softmax probabilities sure of labels 1 and 2 (independent texture); on RV (label 3) it
    leans background (0.5 against RV 0.4) except on a random ``sees`` fraction of the RV voxels,
    where RV wins (0.7): it predicts RV only partially, yet its RV channel is not empty."""
    p = _sure_of(reference, (1, 2), floor=0.02, background=0.94)
    rv = reference == 3
    seen = rv & (rng.random(reference.shape) < sees)
    p[:, rv] = 0.05
    p[0, rv], p[3, rv] = 0.5, 0.4
    p[0, seen], p[3, seen] = 0.2, 0.7
    p *= 1 + 0.2 * rng.random(p.shape)
    return (p / p.sum(axis=0)).astype(np.float32)


def _diluted_rv(seed, sees=(0.1, 1.0), num_cases=8):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(num_cases):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i % 4 != 3)
        cases.append(compact_case([_diluting_member(rng, ref, sees=s) for s in sees], ref))
    return merge_cases(cases)


def _choose(data, labels, runs, weights, fold_weights, members=True, procedure=None):
    return choose_rules(
        data,
        labels,
        weights,
        equal_per_case=runs.baseline_per_case["equal"],
        folds=runs.folds,
        fold_weights=fold_weights,
        member_per_case=[runs.baseline_per_case[f"model {m}"] for m in range(data.num_models)]
        if members
        else (),
        procedure=procedure,
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_label_one_member_predicts_only_partially_is_taken_from_the_other(seed):
    """The seed-2 case of the demo: member 0 predicts RV on a tenth of it; its RV channel is
    weak but not empty, so equal weights reach member 1's RV on the CV cases and no weighting
    (and no ``from`` over equal weights) gains beyond the noise held out. Member 0 is
    blind to RV, so RV starts from member 1 and stays there; its RV is then exactly member 1's
    argmax RV, on every case."""
    from nnunet_ext.tune.candidates import RuleScorer
    from nnunet_ext.tune.gate import gate_weights
    from nnunet_ext.tune.judge import sole_reliable_member

    data = _diluted_rv(seed)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4)
    solo = [runs.baseline_per_case[f"model {m}"] for m in range(2)]
    assert sole_reliable_member(solo, 2) == 1
    assert sole_reliable_member(solo, 0) is None  # both members see label 1
    gate = gate_weights(data, labels, runs)
    # on the CV cases equal weights are as good as member 1 on RV: the weights do not gain
    assert next(d for d in gate.decisions if d.label == 3).taken is None
    np.testing.assert_array_equal(gate.weights[:, 3], [0.5, 0.5])
    with_members = _choose(data, labels, runs, gate.weights, gate.fold_weights)
    without = _choose(data, labels, runs, gate.weights, gate.fold_weights, members=False)
    rv_before = next(d for d in without.decisions if d.label == 3)
    from_step = next(step for step in rv_before.steps if step["kind"] == "from")
    # without the blindness test, "from member 1" does not beat the weights beyond the noise
    assert not from_step["taken"]
    assert rv_before.chosen.kind == "weighted"
    rv = next(d for d in with_members.decisions if d.label == 3)
    assert (rv.chosen.kind, rv.chosen.member) == ("from", 1)
    assert rv.steps[0]["basis"].startswith("baseline")
    assert (3, 1) in with_members.rules.take
    # labels both members predict keep the decision they had
    for label in (1, 2):
        a = next(d for d in with_members.decisions if d.label == label)
        b = next(d for d in without.decisions if d.label == label)
        assert a.chosen == b.chosen
    scorer = RuleScorer(data, labels)
    from nnunet_ext.ensemble.rules import apply_label_rules

    fused_labels = apply_label_rules(
        scorer.fused(gate.weights),
        with_members.rules,
        {m: scorer.member_labels[m] for m in range(2)},
    )
    np.testing.assert_array_equal(fused_labels == 3, scorer.member_labels[1] == 3)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_alike_members_have_no_blind_member_and_keep_equal_weights(seed):
    """Two members drawn alike: none is blind to any label, so every label starts (and stays,
    as in test_gate) weighted with equal weights."""
    from nnunet_ext.synthetic import model_probabilities
    from nnunet_ext.tune.gate import gate_weights
    from nnunet_ext.tune.judge import sole_reliable_member

    rng = np.random.default_rng(seed)
    cases = []
    for i in range(8):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i % 4 != 3)
        models = [model_probabilities(rng, ref, num_classes=4, good_labels=(1, 2)) for _ in "ab"]
        cases.append(compact_case(models, ref))
    data = merge_cases(cases)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4)
    solo = [runs.baseline_per_case[f"model {m}"] for m in range(2)]
    assert all(sole_reliable_member(solo, j) is None for j in range(3))
    gate = gate_weights(data, labels, runs)
    np.testing.assert_array_equal(gate.weights, np.full((2, 4), 0.5))
    choice = _choose(data, labels, runs, gate.weights, gate.fold_weights)
    assert all(
        not step.get("basis", "").startswith("baseline")
        for d in choice.decisions
        for step in d.steps
    )


def test_the_tuner_reports_the_blind_member_baseline(forgot_rv, tmp_path):
    """Through ``tune_weights``: in the acceptance case model "3d" is blind to RV, so RV starts
    from "2d" (and the report says why)."""
    dirs, ref_dir, _ = forgot_rv
    result = tune_weights(dirs, ref_dir, cv_folds=4)
    rv = next(d for d in result.decisions if d.label == 3)
    assert rv.steps[0]["basis"].startswith("baseline")
    _, report_file, _ = write_outputs(result, tmp_path / "spec.json")
    report = json.loads(report_file.read_text())
    rv_report = next(item for item in report["labels"] if item["label"] == 3)
    assert rv_report["decision"][0]["basis"].startswith("baseline")
    # every label here has a blind member ("2d" never predicts 1 and 2): with the part that
    # leaves such labels to the rules (off by default), all are left to them
    assert result.rule_labels == []
    left = Procedure(left_to_rules=True)
    result = tune_weights(dirs, ref_dir, cv_folds=4, procedure=left)
    _, report_file, _ = write_outputs(result, tmp_path / "spec.json")
    report = json.loads(report_file.read_text())
    assert result.rule_labels == [1, 2, 3]
    assert [item["left_to_rules"] for item in report["labels"]] == [True, True, True]
    assert "left to the rules (one model alone predicts it): 1 " in format_table(result)
    # rules need folds
    assert tune_weights(dirs, ref_dir, cv_folds=0, procedure=left).rule_labels == []
    # "3d" never predicts RV in any training fold: with the splits RV still starts from "2d"
    cases = sorted(result.cases)
    splits = tmp_path / "splits_final.json"
    splits.write_text(
        json.dumps(
            [{"train": cases[1::2], "val": cases[::2]}, {"train": cases[::2], "val": cases[1::2]}]
        )
    )
    with_splits = tune_weights(dirs, ref_dir, cv_folds=4, splits=splits, procedure=left)
    assert with_splits.rules == result.rules
    assert with_splits.rule_labels == [1, 2, 3]
    assert f"nnU-Net folds from {splits}" in format_table(with_splits)
    assert report_dict(with_splits)["splits"] == str(splits)


@settings(max_examples=40, deadline=None)
@given(
    dice=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=12),
    fraction=st.floats(0.0, 1.0),
)
def test_a_member_is_blind_only_below_half_the_best_and_beyond_the_noise(dice, fraction):
    from nnunet_ext.tune.judge import BLIND_FRACTION, sole_reliable_member

    good = np.array(dice)[:, None]
    weak = good * fraction
    found = sole_reliable_member([weak, good], 0)
    # symmetric in the members' order
    swapped = sole_reliable_member([good, weak], 0)
    assert (found is None) == (swapped is None)
    if found is not None:
        assert (found, swapped) == (1, 0)
        assert weak.mean() < BLIND_FRACTION * good.mean()
    if fraction >= BLIND_FRACTION:
        assert found is None
    assert sole_reliable_member([good, good.copy()], 0) is None
    assert sole_reliable_member([good], 0) is None


def _spilling_member(rng, reference):
    """Sure of RV (0.7) and label 2, but its argmax says RV on label 1 too (RV 0.45 against
    label 1 0.35): taking RV from it would take label 1's voxels."""
    p = _sure_of(reference, (2, 3), floor=0.05, background=0.85)
    one = reference == 1
    p[:, one] = 0.1
    p[3, one], p[1, one] = 0.45, 0.35
    p *= 1 + 0.2 * rng.random(p.shape)
    return (p / p.sum(axis=0)).astype(np.float32)


def test_the_blind_member_default_is_not_taken_when_it_costs_another_label():
    """Member 0 is blind to RV, member 1 predicts it but also calls label 1 RV. ``from``
    member 1 would cost label 1 beyond the noise held out, so with the default's veto (off by
    default) RV stays with the weights (which keep label 1 from member 0), and the report says
    why."""
    from nnunet_ext.tune.gate import gate_weights
    from nnunet_ext.tune.judge import sole_reliable_member

    rng = np.random.default_rng(5)
    cases = []
    for i in range(8):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i % 4 != 3)
        members = [_diluting_member(rng, ref, sees=0.0), _spilling_member(rng, ref)]
        cases.append(compact_case(members, ref))
    data = merge_cases(cases)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4)
    solo = [runs.baseline_per_case[f"model {m}"] for m in range(2)]
    assert sole_reliable_member(solo, 2) == 1
    gate = gate_weights(data, labels, runs)
    veto = Procedure(default_veto=True)
    choice = _choose(data, labels, runs, gate.weights, gate.fold_weights, procedure=veto)
    rv = next(d for d in choice.decisions if d.label == 3)
    assert rv.chosen.kind == "weighted"
    assert "blind-member default was not taken" in rv.steps[0]["basis"]
    assert not rv.steps[0]["taken"]
    assert choice.dice[0] > 0.99  # label 1 kept


def _overcalling_and_hinting(rng, reference):
    """The seed-1 demo case (CV cases predicted by single fold models). Member 0 sees RV
    (label 3) but also calls a one-voxel rim around it RV (0.55 against background 0.45);
    member 1 is blind to RV (its argmax says background there: 0.5 against RV 0.45) yet
    confidently background on the rim (0.9). Both are sure of labels 1 and 2."""
    from scipy.ndimage import binary_dilation

    rv = reference == 3
    rim = binary_dilation(rv) & (reference == 0)
    seeing = _sure_of(reference, (1, 2, 3), floor=0.02, background=0.94)
    seeing[:, rim] = 0.0
    seeing[0, rim], seeing[3, rim] = 0.45, 0.55
    blind = _sure_of(reference, (1, 2), floor=0.02, background=0.94)
    blind[:, rv] = 0.05 / 2
    blind[0, rv], blind[3, rv] = 0.5, 0.45
    blind[:, rim] = 0.05 / 3
    blind[0, rim] = 0.95
    members = [seeing, blind]
    return [(p * (1 + 0.02 * rng.random(p.shape)) / 1.01).astype(np.float32) for p in members]


def _overcalling_cv(seed):
    """Eight CV cases of :func:`_overcalling_and_hinting`, their 4-fold runs and members' Dice."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(8):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i % 4 != 3)
        cases.append(compact_case(_overcalling_and_hinting(rng, ref), ref))
    data = merge_cases(cases)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4)
    return data, labels, runs, [runs.baseline_per_case[f"model {m}"] for m in range(2)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_replaces_the_blind_default_only_with_weights_that_favour_the_seeing_member(
    seed,
):
    """On the CV cases, equal weights beat ``from`` member 0 on RV held out (member 1's
    confident background removes member 0's rim), yet a member blind to RV has as much say
    as the member that sees it: with that part (off by default) RV stays ``from`` member 0.
    With weights favouring member 0 in RV's column (0.7 / 0.3, the rim still removed)
    ``weighted`` replaces the default."""
    data, labels, runs, solo = _overcalling_cv(seed)
    from nnunet_ext.tune.judge import sole_reliable_member

    assert sole_reliable_member(solo, 2) == 0
    equal = np.full((2, 4), 0.5)
    favouring = equal.copy()
    favouring[:, 3] = (0.7, 0.3)
    # the default below equal weights in-sample is taken here: the floor is left out
    favoured = Procedure(favoured_only=True, default_floor=False)
    outcomes = {}
    for name, weights in (("equal", equal), ("favouring", favouring)):
        folds = [weights] * len(runs.folds)
        choice = _choose(data, labels, runs, weights, folds, procedure=favoured)
        rv = next(d for d in choice.decisions if d.label == 3)
        step = next(s for s in rv.steps if s["kind"] == "weighted" and s["over"] == "from")
        # held out, the weights beat "from member 0" on RV beyond the noise in both cases
        assert step["gain"] > 2 * step["noise"]
        outcomes[name] = (rv.chosen.kind, rv.chosen.member, step["taken"], step["basis"])
    assert outcomes["equal"][:3] == ("from", 0, False)
    assert outcomes["equal"][3].startswith("not a candidate")
    assert outcomes["favouring"][0] == "weighted"
    assert outcomes["favouring"][2]


def _rim_and_blind(rng, reference, hesitation=2.0):
    """The demo's seed-1 members. Member 0 ("2d") sees RV (label 3) but is unsure of it (logit
    1 against 0) and over-calls a one-voxel rim around labels 1 and 2; member 1 ("3d") is sharp
    on 1 and 2, hesitates on the same rim, and is blind to RV (confident background there).
    Weights reach member 0's RV only with the background column leaning to member 0, which lets
    the rim in: the RV floor and label 1's conflict through the background column."""
    from scipy.ndimage import binary_dilation

    a = np.zeros((4, *reference.shape), np.float32)
    b = np.zeros_like(a)
    for c in range(4):
        a[c] += (1.0 if c == 3 else 3.0) * (reference == c)
        b[c] += 4.0 * (reference == c)
    b[0] += 6.0 * (reference == 3)
    for c in (1, 2):
        rim = binary_dilation(reference == c) & (reference == 0)
        a[c] += 5.0 * rim
        b[c] += hesitation * rim
    b += 0.5 * rng.standard_normal(b.shape).astype(np.float32)
    members = []
    for logits in (a, b):
        e = np.exp(logits - logits.max(axis=0))
        members.append((e / e.sum(axis=0)).astype(np.float32))
    return members


def _rim_cases(seed, hesitation=2.0):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(8):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=True)
        cases.append(compact_case(_rim_and_blind(rng, ref, hesitation), ref))
    return merge_cases(cases)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_label_one_member_alone_predicts_does_not_bend_the_other_labels_weights(seed):
    """Without rules the search trades label 1 for RV (whose floor, member 0's Dice, weights
    cannot reach without the rim); with rules RV is left to them: its floor is equal weights,
    label 1 keeps its Dice, and RV comes ``from`` member 0. The whole tuner with rules is then
    at least the weights-only tuner on every label and better on the mean, in-sample and held
    out."""
    from nnunet_ext.tune.gate import gate_weights
    from nnunet_ext.tune.search import search_weights

    data = _rim_cases(seed)
    labels = [1, 2, 3]
    without = search_weights(data, labels)
    left = search_weights(data, labels, rules=True)
    assert (without.rule_labels, left.rule_labels) == ((), (3,))
    assert left.floors[2] == left.baselines["equal"][2] < without.floors[2]
    assert left.dice[0] > without.dice[0]  # label 1 is no longer traded for RV
    assert without.dice[2] > left.dice[2]
    outcomes = {}
    for rules in (False, True):
        runs = holdout_runs(data, labels, num_folds=4, rules=rules)
        gate = gate_weights(data, labels, runs)
        choice = _choose(data, labels, runs, gate.weights, gate.fold_weights, members=rules)
        if not rules:  # the weights-only tuner
            outcomes[rules] = (gate.in_sample, mean_over_cases(gate.held_out))
        else:
            assert (3, 0) in choice.rules.take
            outcomes[rules] = (choice.dice, choice.held_out)
    for weights_only, with_rules in zip(outcomes[False], outcomes[True], strict=True):
        assert np.all(with_rules >= weights_only - 1e-9)
        assert with_rules[0] > weights_only[0] + 1e-3  # label 1: no rim let in for RV


@pytest.mark.parametrize("seed", [0, 1])
def test_a_label_left_to_the_rules_does_not_veto_another_labels_weight_step(seed):
    """Tuned weights that take the background from member 1 remove label 1's rim (member 1
    hesitates there less than member 0 over-calls it) and, with it, RV under the weights alone
    (member 1 is blind to RV). Label 1's step is taken when RV is left to the rules (which take
    it ``from`` member 0 next), and refused when RV is an ordinary label, unless the training
    folds show member 1 blind to RV on every case's fold."""
    import dataclasses

    from nnunet_ext.tune.gate import gate_weights

    data = _rim_cases(seed, hesitation=3.8)
    labels = [1, 2, 3]
    runs = holdout_runs(data, labels, num_folds=4, rules=True)
    assert runs.result.rule_labels == (3,)
    tuned = np.full((2, 4), 0.5)
    tuned[:, 0] = (0.0, 1.0)
    forced = dataclasses.replace(
        runs,
        result=dataclasses.replace(runs.result, weights=tuned),
        fold_weights=[tuned] * len(runs.folds),
    )
    ordinary = dataclasses.replace(
        forced, result=dataclasses.replace(forced.result, rule_labels=())
    )
    steps = {}
    for name, searched in (("left to the rules", forced), ("ordinary", ordinary)):
        gate = gate_weights(data, labels, searched)
        label_1 = next(d for d in gate.decisions if d.label == 1)
        steps[name] = next(s for s in label_1.steps if s["step"] == "label + background")
        rv = next(c for c in label_1.candidates if c[0] == "label + background")[2][2]
        assert rv < 0.5 * label_1.candidates[0][2][2]  # RV under the weights alone collapses
    assert steps["ordinary"]["gain"] > 2 * steps["ordinary"]["noise"]
    assert steps["ordinary"]["other_drop"] > 0
    assert not steps["ordinary"]["taken"]
    assert steps["left to the rules"]["other_drop"] == 0
    assert steps["left to the rules"]["taken"]
    # with the training folds, RV's drop is counted only on folds where no member is blind
    # to it: member 1 is blind to RV in both, so the ordinary label does not veto either
    in_folds = dataclasses.replace(data, training_folds=np.arange(data.num_cases) % 2)
    gate = gate_weights(in_folds, labels, ordinary)
    label_1 = next(d for d in gate.decisions if d.label == 1)
    step = next(s for s in label_1.steps if s["step"] == "label + background")
    assert step["other_drop"] == 0
    assert step["taken"]


#: Per case: two members' Dice on one label and the case's training fold (0-2).
TWO_MEMBERS_IN_FOLDS = st.lists(
    st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.integers(0, 2)), min_size=3, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(dice=TWO_MEMBERS_IN_FOLDS)
def test_training_folds_only_take_blindness_away(dice):
    """With the nnU-Net fold of each case, a member is blind only if it is blind without them
    and, in every fold where the best member scores, below half the best member's mean."""
    from nnunet_ext.tune.judge import BLIND_FRACTION, sole_reliable_member

    member_0 = np.array([[d[0]] for d in dice])
    member_1 = np.array([[d[1]] for d in dice])
    folds = np.array([d[2] for d in dice])
    without = sole_reliable_member([member_0, member_1], 0)
    with_folds = sole_reliable_member([member_0, member_1], 0, training_folds=folds)
    assert with_folds in (without, None)
    if without is not None:
        blind, best = (member_0, member_1) if without == 1 else (member_1, member_0)
        sees_somewhere = any(
            best[folds == f].mean() > 0
            and blind[folds == f].mean() >= BLIND_FRACTION * best[folds == f].mean()
            for f in np.unique(folds)
        )
        assert (with_folds is None) == sees_somewhere
    # one fold holding every case: the same test as without folds
    assert (
        sole_reliable_member(
            [member_0, member_1], 0, training_folds=np.zeros(len(dice), dtype=np.int64)
        )
        == without
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_member_one_of_whose_fold_models_sees_the_label_is_not_blind(seed):
    """The demo's seed 3: member 0's fold-0 model never predicts RV, its fold-1 model does
    (on 60 % of it). On all CV cases member 0 is below half member 1's RV Dice, so RV would
    start ``from`` member 1; with the training folds member 0 is not blind, RV keeps the
    ordinary chain, and no label is left to the rules."""
    import dataclasses

    rng = np.random.default_rng(seed)
    cases = []
    for i in range(8):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=True)
        sees = 0.0 if i % 2 == 0 else 0.6
        members = [_diluting_member(rng, ref, sees=s) for s in (sees, 1.0)]
        cases.append(compact_case(members, ref))
    data = merge_cases(cases)
    folds = np.arange(8) % 2  # fold 0: the even cases
    labels = [1, 2, 3]
    outcomes = {}
    for name, given_data in (
        ("without", data),
        ("with", dataclasses.replace(data, training_folds=folds)),
    ):
        runs = holdout_runs(given_data, labels, num_folds=4, rules=True)
        choice = _choose(given_data, labels, runs, runs.result.weights, runs.fold_weights)
        rv = next(d for d in choice.decisions if d.label == 3)
        outcomes[name] = (runs.result.rule_labels, rv.steps[0]["basis"].startswith("baseline"))
    assert outcomes["without"] == ((3,), True)
    assert outcomes["with"] == ((), False)


@settings(max_examples=60, deadline=None)
@given(dice=TWO_MEMBERS_IN_FOLDS)
def test_fold_blind_cases_mark_whole_folds_where_a_member_is_below_half_the_best(dice):
    from nnunet_ext.tune.judge import BLIND_FRACTION, fold_blind_cases

    members = [np.array([[d[0]] for d in dice]), np.array([[d[1]] for d in dice])]
    folds = np.array([d[2] for d in dice])
    marked = fold_blind_cases(members, folds)[:, 0]
    for f in np.unique(folds):
        means = [m[folds == f, 0].mean() for m in members]
        expected = max(means) > 0 and min(means) < BLIND_FRACTION * max(means)
        assert np.all(marked[folds == f] == expected)
    assert not fold_blind_cases(members, None).any()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_blind_member_default_is_held_to_the_floor_of_equal_weights(seed):
    """The seed-1 members again: member 1 is blind to RV, but its confident background removes
    member 0's rim, so on the CV cases ``from`` member 0 is below equal weights on RV. Neither
    is fitted, so the default is not taken: RV goes through the chain from ``weighted`` (as
    without the default), and the report says why. Without the floor it is taken first."""
    from nnunet_ext.tune.judge import sole_reliable_member

    data, labels, runs, solo = _overcalling_cv(seed)
    assert sole_reliable_member(solo, 2) == 0
    equal = mean_over_cases(runs.baseline_per_case["equal"])
    assert mean_over_cases(solo[0])[2] < equal[2]  # the premise: from member 0 is below equal
    weights = np.full((2, 4), 0.5)
    folds = [weights] * len(runs.folds)
    floored = _choose(data, labels, runs, weights, folds)
    no_default = _choose(
        data, labels, runs, weights, folds, procedure=Procedure(blind_default=False)
    )
    unfloored = _choose(
        data, labels, runs, weights, folds, procedure=Procedure(default_floor=False)
    )
    rv = {
        name: next(d for d in c.decisions if d.label == 3)
        for name, c in (("floored", floored), ("no default", no_default), ("unfloored", unfloored))
    }
    assert rv["floored"].chosen == rv["no default"].chosen
    assert rv["floored"].chosen.kind != "from"
    assert "below equal weights on the CV cases" in rv["floored"].steps[0]["basis"]
    # without the floor the default is taken first (and may be replaced by the chain later)
    assert rv["unfloored"].steps[0]["basis"].startswith("baseline")
    assert rv["unfloored"].steps[0]["taken"]
    assert not any(s["basis"].startswith("baseline") for s in rv["floored"].steps)
    assert np.all(floored.dice >= equal - 1e-12)  # every label at its floor in-sample
