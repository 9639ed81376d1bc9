"""Tuning region-based (sigmoid) models: acceptance 1, the spec it writes, the command."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunet_ext.ensemble import EnsembleSpec, ensemble_folders
from nnunet_ext.io import read_labels
from nnunet_ext.synthetic_regions import make_region_cv_folders, region_masks
from nnunet_ext.tune import tune_regions, tune_weights
from nnunet_ext.tune.cli import main
from nnunet_ext.tune.region_data import region_dataset


def dice(a, b):
    total = a.sum() + b.sum()
    return np.nan if total == 0 else 2 * (a & b).sum() / total


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_acceptance_1_third_region_tuned_to_its_best_threshold(seed, tmp_path_factory):
    """Two members whose enhancing tumour is best thresholded at 0.35: tuned within 0.05,
    and the held-out Dice beats the fixed 0.5."""
    root = tmp_path_factory.mktemp("regions")
    members, reference = make_region_cv_folders(root, num_cases=10, seed=seed)
    labels = region_dataset(members, reference)[0]
    result = tune_regions(members, reference, labels)
    assert abs(result.thresholds[2] - 0.35) <= 0.05
    assert result.held_out is not None
    assert result.held_out[2] > result.baselines["equal"][2] + 0.01
    # the regions best at 0.5 keep nnU-Net's decision: no step there gains held out
    assert result.thresholds[:2] == [0.5, 0.5]
    assert [s.channel for s in result.steps] == [2, 1, 0]
    assert [s.kept for s in result.steps] == [True, False, False]
    # never below the best single member by more than the noise (here: not at all)
    best = np.max([result.baselines[d] for d in result.input_dirs], axis=0)
    assert np.all(result.held_out >= best - 0.005)


def test_the_tuned_spec_fuses_to_the_reported_dice(tmp_path):
    members, reference = make_region_cv_folders(tmp_path, num_cases=6, seed=1)
    result = tune_regions(members, reference, region_dataset(members, reference)[0], cv_folds=3)
    spec = result.spec()
    assert spec.to_dict()["schema_version"] == 3
    assert {"label": "ET", "threshold": result.thresholds[2]} in spec.to_dict()["rules"]
    spec.save(tmp_path / "spec.json")
    ensemble_folders(None, tmp_path / "fused", spec=EnsembleSpec.load(tmp_path / "spec.json"))
    scores = []
    for case in result.cases:
        got = region_masks(read_labels(tmp_path / "fused" / f"{case}.nii.gz").array)
        truth = region_masks(read_labels(reference / f"{case}.nii.gz").array)
        scores.append([dice(g, t) for g, t in zip(got, truth, strict=True)])
    np.testing.assert_allclose(np.nanmean(scores, axis=0), result.dice, atol=1e-9)


def test_tune_weights_points_region_models_to_tune_regions(tmp_path):
    members, reference = make_region_cv_folders(tmp_path, num_cases=2)
    with pytest.raises(ValueError, match="must be tuned by tune_regions"):
        tune_weights(members, reference)


def test_command_writes_spec_report_and_figure(tmp_path, capsys):
    members, reference = make_region_cv_folders(tmp_path, num_cases=6, seed=2)
    out = tmp_path / "tuned.json"
    args = ["-i", *map(str, members), "-r", str(reference), "-o", str(out), "--cv-folds", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"ET: weights 0\.50 0\.50, threshold 0\.3\d", printed)
    report = json.loads((tmp_path / "tuned_report.json").read_text())
    assert report["kind"] == "regions"
    assert [r["region"] for r in report["regions"]] == ["WT", "TC", "ET"]
    assert report["regions"][2]["step"]["kept"] is True
    assert (tmp_path / "tuned_gains.png").read_bytes()[:4] == b"\x89PNG"
    assert abs(EnsembleSpec.load(out).rules[0].threshold - 0.35) <= 0.05


@pytest.mark.parametrize("flag", [["--postprocess"], ["--no-rules"], ["--qc-calibrate"]])
def test_label_only_options_are_refused_before_any_output(tmp_path, capsys, flag):
    members, reference = make_region_cv_folders(tmp_path, num_cases=2)
    out = tmp_path / "tuned.json"
    assert main(["-i", *map(str, members), "-r", str(reference), "-o", str(out), *flag]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{flag[0]} must not be given for region-based (sigmoid) models" in err[0]
    assert not out.exists()
    assert not (tmp_path / "tuned_report.json").exists()


def test_without_folds_the_choice_is_kept_with_a_warning(tmp_path):
    members, reference = make_region_cv_folders(tmp_path, num_cases=3, seed=4)
    result = tune_regions(members, reference, region_dataset(members, reference)[0], cv_folds=0)
    assert result.held_out is None
    assert result.cv_gain is None
    assert any("no held-out folds" in w for w in result.warnings)
    assert abs(result.thresholds[2] - 0.35) <= 0.05


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param({"num_workers": 0}, "num_workers must be >= 1", id="workers"),
        pytest.param({"steps": 0}, "steps must be >= 1", id="steps"),
        pytest.param({"cv_folds": -1}, "cv_folds must be >= 0", id="folds"),
    ],
)
def test_bad_options(tmp_path, options, match):
    members, reference = make_region_cv_folders(tmp_path, num_cases=2)
    with pytest.raises(ValueError, match=match):
        tune_regions(members, reference, region_dataset(members, reference)[0], **options)


def test_one_model_is_refused(tmp_path):
    members, reference = make_region_cv_folders(tmp_path, num_cases=2)
    with pytest.raises(ValueError, match="input_dirs must list at least 2 model folders"):
        tune_regions(members[:1], reference, region_dataset(members, reference)[0])
