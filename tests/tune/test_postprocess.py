import json

import numpy as np
import pytest

from nnunet_ext.postprocess import load_plan
from nnunet_ext.tune.cli import main


@pytest.mark.nnunet
def test_postprocess_determines_the_plan_on_the_cv_result_fused_with_the_spec(cv, tmp_path, capsys):
    model_dirs, ref_dir = cv
    spec = tmp_path / "spec.json"
    argv = ["-i", *map(str, model_dirs), "--reference", str(ref_dir), "-o", str(spec)]
    assert main([*argv, "--cv-folds", "0", "--postprocess"]) == 0
    out = capsys.readouterr().out
    assert "postprocessing plan on the fused CV result" in out
    plan = load_plan(tmp_path / "spec_postprocessing.json")
    fused = sorted(p.name for p in (tmp_path / "spec_cv_fused").glob("*.nii.gz"))
    assert fused == [f"case_{i:03d}.nii.gz" for i in range(6)]
    # the plan was chosen on the fused CV result: its starting Dice is the tuned Dice
    report = json.loads((tmp_path / "spec_report.json").read_text())
    tuned = [label["dice"]["tuned"] for label in report["labels"]]
    before = [plan.metrics["dice_before"][str(label["label"])] for label in report["labels"]]
    np.testing.assert_allclose(before, tuned, atol=2e-3)
    assert plan.metrics["label_ids"] == [1, 2, 3]
    # the noisy synthetic models leave stray voxels: keeping the largest component helps
    assert plan.keep_largest or plan.keep_largest_foreground

    # outputs are not replaced without --overwrite, and nothing is written then
    spec.unlink()
    assert main([*argv, "--cv-folds", "0", "--postprocess"]) == 1
    assert "spec_report.json already exists; pass --overwrite" in capsys.readouterr().err
    assert not spec.exists()
    assert main([*argv, "--cv-folds", "0", "--postprocess", "--overwrite"]) == 0
