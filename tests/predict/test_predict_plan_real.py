"""`nnunet-ext predict --plan` on the session's real tiny models: the labels equal `postprocess
apply` on the plain output, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nnunet_workspace import NnunetWorkspace

from nnunet_ext.postprocess import PostprocessingPlan, save_plan
from nnunet_ext.postprocess.cli import main as postprocess_main
from nnunet_ext.postprocess.steps import ComponentStep

from ._helpers import CASES, ours

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]

PLAN = PostprocessingPlan(
    steps=(
        ComponentStep("relabel_small", 3, to=1, min_size=20, connectivity=3),
        ComponentStep("min_probability", 2, threshold=0.6, statistic="max", connectivity=1),
        ComponentStep("keep_top_k", 1, k=2, connectivity=3),
        ComponentStep("volume_gate", 2, min_size=30.0, unit="mm3"),
    ),
    keep_largest=(3,),
    fill_holes=(1, 2),
)


def test_predict_plan_equals_postprocess_apply_on_the_plain_output(
    workspace: NnunetWorkspace,
    ensemble_models: dict[str, Path],
    test_images: Path,
    tmp_path: Path,
) -> None:
    plan_file = save_plan(PLAN, tmp_path / "plan.json")
    models = ["-m", str(ensemble_models["2d"]), str(ensemble_models["3d_fullres"])]
    common = ["-i", str(test_images), *models, "--device", "cpu", "--disable-tta"]
    plain, passed, applied = tmp_path / "plain", tmp_path / "pass", tmp_path / "applied"
    ours(workspace, *common, "-o", str(plain), "--save-probabilities")
    ours(workspace, *common, "-o", str(passed), "--save-probabilities", "--plan", str(plan_file))
    args = ["-i", str(plain), "-o", str(applied), "--plan", str(plan_file)]
    assert postprocess_main([*args, "--probabilities", str(plain)]) == 0
    changed = 0
    for case in CASES:
        label = f"{case}.nii.gz"
        assert (passed / label).read_bytes() == (applied / label).read_bytes(), case
        changed += (plain / label).read_bytes() != (applied / label).read_bytes()
        # the probabilities stay as fused
        assert (passed / f"{case}.npz").read_bytes() == (plain / f"{case}.npz").read_bytes()
    assert changed == len(CASES)  # the plan changed every case: the comparison covers it
    record = json.loads((passed / "nnunet_ext_predict.json").read_text())
    assert [s["step"] for s in record["postprocessing"]["steps"]] == [
        "relabel_small",
        "min_probability",
        "keep_top_k",
        "volume_gate",
    ]
    assert sorted(p.name for p in passed.iterdir() if p.name.startswith(".")) == []
