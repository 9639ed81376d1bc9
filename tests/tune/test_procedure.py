"""The optional parts of the tuning procedure: each can be left out and changes what it says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_ext.tune import Procedure, tune_weights


def test_parts_and_without():
    parts = Procedure.parts()
    assert len(parts) == len(set(parts)) == 7
    for part in parts:
        reduced = Procedure().without(part)
        assert [getattr(reduced, p) for p in parts] == [p != part for p in parts]
        assert reduced.without(part) == reduced
    with pytest.raises(ValueError, match="part must be one of weight_gate"):
        Procedure().without("rules")


def _signature(result):
    return (result.weights.tolist(), result.rules, result.rule_labels, result.dice.tolist())


def test_the_full_procedure_is_the_default(forgot_rv):
    dirs, ref_dir, _ = forgot_rv
    assert _signature(tune_weights(dirs, ref_dir, cv_folds=4)) == _signature(
        tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure())
    )


def test_each_blind_member_part_changes_what_it_names(forgot_rv):
    """In this case "3d" never predicts RV and "2d" never predicts 1 and 2: every label has a
    blind member, so the blind-member parts decide it."""
    dirs, ref_dir, _ = forgot_rv
    full = tune_weights(dirs, ref_dir, cv_folds=4)
    assert full.rule_labels == [1, 2, 3]
    assert next(d for d in full.decisions if d.label == 3).steps[0]["basis"].startswith("baseline")

    no_default = tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure(blind_default=False))
    for decision in no_default.decisions:  # every label starts from "weighted"
        assert decision.steps[0]["over"] == "weighted"
        assert not decision.steps[0]["basis"].startswith("baseline")

    no_left = tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure(left_to_rules=False))
    assert no_left.rule_labels == []

    ungated = tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure(weight_gate=False))
    assert ungated.weight_decisions == []
    assert full.weight_decisions != []


def test_fold_parts_need_splits_and_only_use_them(forgot_rv, tmp_path):
    """Without --splits the two fold parts have nothing to act on: leaving them out changes
    nothing; with splits, leaving both out equals tuning without the splits."""
    dirs, ref_dir, _ = forgot_rv
    base = tune_weights(dirs, ref_dir, cv_folds=4)
    for part in ("fold_blindness", "gate_uncounted"):
        assert _signature(
            tune_weights(dirs, ref_dir, cv_folds=4, procedure=Procedure().without(part))
        ) == _signature(base)
    cases = sorted(base.cases)
    splits = tmp_path / "splits_final.json"
    splits.write_text(
        json.dumps(
            [{"train": cases[1::2], "val": cases[::2]}, {"train": cases[::2], "val": cases[1::2]}]
        )
    )
    neither = Procedure(fold_blindness=False, gate_uncounted=False)
    with_splits = tune_weights(dirs, ref_dir, cv_folds=4, splits=splits, procedure=neither)
    assert _signature(with_splits) == _signature(base)
    assert np.isfinite(with_splits.dice).all()
