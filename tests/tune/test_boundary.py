"""tune reports boundary metrics of equal vs tuned weights on the CV cases (issue 15)."""

from __future__ import annotations

import json

import pytest

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.tune.cli import main


def test_tune_reports_boundary_metrics_equal_to_evaluating_the_fused_folders(cv, tmp_path, capsys):
    from nnunet_ext.ensemble.folders import ensemble_folders

    model_dirs, ref_dir = cv
    spec_path = tmp_path / "spec.json"
    argv = ["-i", *map(str, model_dirs), "--reference", str(ref_dir), "-o", str(spec_path)]
    assert main([*argv, "--cv-folds", "0"]) == 0
    out = capsys.readouterr().out
    assert "Boundary metrics on the 6 CV cases, equal -> tuned weights" in out
    assert "HD95 (mm)" in out
    report = json.loads((tmp_path / "spec_report.json").read_text())["boundary_metrics"]
    assert report["num_cases"] == 6

    ensemble_folders(None, tmp_path / "tuned", spec=spec_path)
    ensemble_folders(model_dirs, tmp_path / "equal")
    for method in ("equal", "tuned"):
        evaluation = evaluate_folder(
            tmp_path / method, ref_dir, metrics=["dice", "hd95", "assd", "nsd"]
        )
        for label, entry in zip(evaluation.labels, report["labels"], strict=True):
            assert entry["label"] == label.label
            assert entry[method]["dice"] == pytest.approx(label.dice, rel=1e-9)
            for key in ("hd95", "assd", "nsd"):
                assert entry[method][key] == pytest.approx(label.values[key], rel=1e-9)
                assert entry[method]["undefined"][key] == label.num_undefined[key]
