from __future__ import annotations

import pytest

from nnunet_ext.postprocess import determine_plan
from nnunet_ext.postprocess.cli import main
from tests.postprocess._reference import ref_fill_holes, ref_keep_largest
from tests.postprocess.conftest import make_case, write_sitk


@pytest.fixture
def validation(tmp_path):
    """References are clean; predictions add specks of label 1 and holes in label 2 only."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    for index in range(3):
        clean = make_case(10 + index)
        clean = ref_fill_holes(ref_keep_largest(clean, [1, 2, 3]), [1, 2, 3])
        noisy = clean.copy()
        noisy[0, 0, index] = 1  # a speck of 1
        noisy[4, 8, 8] = 0  # a hole in 2
        noisy[3:5, 16:18, 16:18] = 3  # extra 3 touching RV: removing it is not LCC-fixable
        write_sitk(clean, ref / f"c{index}.nii.gz")
        write_sitk(noisy, pred / f"c{index}.nii.gz")
    return pred, ref


def test_determine_accepts_only_improving_steps(validation):
    pred, ref = validation
    plan = determine_plan(pred, ref, min_voxels={3: 5})
    assert plan.keep_largest == (1,)
    assert plan.fill_holes == (2,)
    assert not plan.keep_largest_foreground
    assert plan.min_voxels == {}
    steps = {(s["operation"], s["label"]): s for s in plan.metrics["steps"]}
    assert steps[("keep_largest", 1)]["dice_after"] > steps[("keep_largest", 1)]["dice_before"]
    assert steps[("fill_holes", 2)]["accepted"]
    assert not steps[("fill_holes", 1)]["accepted"]
    assert plan.metrics["dice_after"]["2"] > plan.metrics["dice_before"]["2"]
    assert plan.metrics["num_cases"] == 3


def test_determine_cli_then_apply(validation, tmp_path, capsys):
    pred, ref = validation
    plan_path = tmp_path / "plan.json"
    assert main(["determine", "-i", str(pred), "-r", str(ref), "-o", str(plan_path)]) == 0
    out = capsys.readouterr().out
    assert "keep_largest" in out
    assert "accepted" in out
    assert main(["determine", "-i", str(pred), "-r", str(ref), "-o", str(plan_path)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["-i", str(pred), "-o", str(tmp_path / "post"), "--plan", str(plan_path)]) == 0
    again = determine_plan(tmp_path / "post", ref)
    assert again.is_empty  # nothing left to improve


def test_determine_errors(validation, tmp_path):
    pred, ref = validation
    (ref / "c1.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"1 prediction.s. have no reference.*c1"):
        determine_plan(pred, ref)
    with pytest.raises(NotADirectoryError, match="reference_dir must be a folder"):
        determine_plan(pred, tmp_path / "missing")
