"""The optional parts of the tuning procedure: each can be left out and changes what it says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_ext.tune import Procedure, tune_weights

#: The parts the ablation of issue 25 found to pay (or that act only on the user's --splits).
DEFAULT_ON = {"blind_default", "default_floor", "fold_blindness"}


def test_parts_defaults_without_and_including():
    parts = Procedure.parts()
    assert len(parts) == len(set(parts)) == 8
    default = Procedure()
    assert {p for p in parts if getattr(default, p)} == DEFAULT_ON
    for part in parts:
        for switched, on in ((default.without(part), False), (default.including(part), True)):
            assert [getattr(switched, p) for p in parts] == [
                on if p == part else getattr(default, p) for p in parts
            ]
        assert default.without(part).including(part).without(part) == default.without(part)
    for switch in (default.without, default.including):
        with pytest.raises(ValueError, match="part must be one of weight_gate"):
            switch("rules")


def _signature(result):
    return (result.weights.tolist(), result.rules, result.rule_labels, result.dice.tolist())


def test_the_default_procedure_is_procedure(forgot_rv):
    dirs, ref_dir, _ = forgot_rv
    assert _signature(tune_weights(dirs, ref_dir, cv_folds=4)) == _signature(
        tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure())
    )


def test_each_blind_member_part_changes_what_it_names(forgot_rv):
    """In this case "3d" never predicts RV and "2d" never predicts 1 and 2: every label has a
    blind member, so the blind-member parts decide it."""
    dirs, ref_dir, _ = forgot_rv
    default = tune_weights(dirs, ref_dir, cv_folds=4)
    assert default.rule_labels == []
    assert default.weight_decisions == []
    rv = next(d for d in default.decisions if d.label == 3)
    assert rv.steps[0]["basis"].startswith("baseline")

    no_default = tune_weights(
        dirs, ref_dir, cv_folds=4, procedure=Procedure().without("blind_default")
    )
    for decision in no_default.decisions:  # every label starts from "weighted"
        assert decision.steps[0]["over"] == "weighted"
        assert not decision.steps[0]["basis"].startswith("baseline")

    left = tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure().including("left_to_rules"))
    assert left.rule_labels == [1, 2, 3]

    gated = tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure().including("weight_gate"))
    assert gated.weight_decisions != []


def test_fold_parts_need_splits_and_only_use_them(forgot_rv, tmp_path):
    """Without --splits the two fold parts have nothing to act on: leaving them out changes
    nothing; with splits, leaving both out equals tuning without the splits. (Gate drops per
    training fold act only with the weight gate, so both are switched on here.)"""
    dirs, ref_dir, _ = forgot_rv
    both = Procedure(weight_gate=True, fold_blindness=True, gate_uncounted=True)
    base = tune_weights(dirs, ref_dir, cv_folds=4, procedure=both)
    for part in ("fold_blindness", "gate_uncounted"):
        assert _signature(
            tune_weights(dirs, ref_dir, cv_folds=4, procedure=both.without(part))
        ) == _signature(base)
    cases = sorted(base.cases)
    splits = tmp_path / "splits_final.json"
    splits.write_text(
        json.dumps(
            [{"train": cases[1::2], "val": cases[::2]}, {"train": cases[::2], "val": cases[1::2]}]
        )
    )
    neither = Procedure(weight_gate=True, fold_blindness=False, gate_uncounted=False)
    with_splits = tune_weights(dirs, ref_dir, cv_folds=4, splits=splits, procedure=neither)
    assert _signature(with_splits) == _signature(base)
    assert np.isfinite(with_splits.dice).all()
