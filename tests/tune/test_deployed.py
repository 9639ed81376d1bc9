"""The second estimate: the tuned spec scored on labeled cases no fold trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_ext.synthetic import make_cv_folders
from nnunet_ext.tune import tune_weights
from nnunet_ext.tune.cli import main
from nnunet_ext.tune.deployed import deployed_estimate
from nnunet_ext.tune.scoring import mean_over_cases


@pytest.mark.parametrize("seed", [0, int(np.random.default_rng().integers(1, 10_000))])
def test_on_the_tuning_cases_it_equals_the_in_sample_dice(forgot_rv, cv, seed):
    """Scored on the CV folders themselves, the estimate reproduces the tuner's in-sample Dice
    of the spec, of equal weights and of each member: the same scoring, the same spec."""
    for dirs, ref_dir, *_ in (forgot_rv, cv):
        result = tune_weights(dirs, ref_dir, cv_folds=3)
        estimate = deployed_estimate(result, dirs, ref_dir)
        np.testing.assert_allclose(mean_over_cases(estimate.tuned), result.dice, atol=1e-12)
        np.testing.assert_allclose(
            mean_over_cases(estimate.equal), result.baselines["equal"], atol=1e-12
        )
        for m, folder in enumerate(dirs):
            np.testing.assert_allclose(
                mean_over_cases(estimate.members[m]), result.baselines[str(folder)], atol=1e-12
            )
    # new draws of the same models: the estimate is of cases the tuner never saw
    root = f"{cv[1].parent.parent}_holdout_{seed}"
    holdout_dirs, holdout_ref = make_cv_folders(
        root, good_labels=((1,), (2,)), num_cases=5, shape=(10, 36, 36), seed=seed + 100
    )
    result = tune_weights(*cv, cv_folds=3)
    estimate = deployed_estimate(result, holdout_dirs, holdout_ref)
    assert estimate.cases == [f"case_{i:03d}" for i in range(5)]
    assert np.all(np.isfinite(estimate.noise()) | np.isinf(estimate.noise()))
    best = np.nanmax([mean_over_cases(m) for m in estimate.members], axis=0)
    np.testing.assert_allclose(
        estimate.best_member_gain(), mean_over_cases(estimate.tuned) - best, atol=1e-12
    )


def test_the_folders_must_be_one_per_member(cv):
    result = tune_weights(*cv, cv_folds=0)
    with pytest.raises(ValueError, match=r"holdout_dirs must list one folder per tuned member"):
        deployed_estimate(result, cv[0][:1], cv[1])


def test_cli_reports_both_estimates_side_by_side(cv, tmp_path, capsys):
    dirs, ref_dir = cv
    out = tmp_path / "spec.json"
    argv = ["-i", *map(str, dirs), "-r", str(ref_dir), "-o", str(out), "--cv-folds", "3"]
    holdout = ["--holdout", *map(str, dirs), "--holdout-reference", str(ref_dir)]
    assert main([*argv, *holdout]) == 0
    printed = capsys.readouterr().out
    assert "CV estimate | hold-out (6 cases, deployed members)" in printed
    report = json.loads((tmp_path / "spec_report.json").read_text())
    section = report["holdout"]
    assert section["num_cases"] == 6
    assert [item["name"] for item in section["labels"]] == ["myocardium", "LV", "RV"]
    assert set(section["foreground"]) == {"equal", "model 0", "model 1", "tuned"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--holdout", "A"], "--holdout and --holdout-reference must be given together"),
        (["--holdout-reference", "R"], "--holdout and --holdout-reference must be given together"),
        (["--holdout", "A", "--holdout-reference", "R"], "--holdout must list one folder per -i"),
        (
            ["--holdout", "A", "B", "--holdout-reference", "R"],
            "--holdout[0] must be an existing folder of CASE.npz; got A.",
        ),
    ],
)
def test_cli_refuses_an_incomplete_holdout_before_writing(cv, tmp_path, capsys, extra, message):
    dirs, ref_dir = cv
    out = tmp_path / "spec.json"
    argv = ["-i", *map(str, dirs), "-r", str(ref_dir), "-o", str(out), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
