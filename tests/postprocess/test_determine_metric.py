"""postprocess determine --metric: steps decided on HD95, NSD, ASSD or a score instead of Dice.

Acceptance 3 of issue 15: on cases where keeping the largest component helps HD95 but not Dice,
``--metric hd95`` keeps the step and ``--metric dice`` drops it, both with their numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.postprocess import determine_plan
from nnunet_ext.postprocess.cli import main

SPACING = (0.8, 0.8, 2.0)  # SimpleITK order; arrays are (z, y, x)


def _write(array: np.ndarray, path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path), True)


@pytest.fixture
def hd95_not_dice(tmp_path):
    """Case "far": a false-positive blob far away (removing it: small Dice gain, HD95 falls from
    tens of mm to 0). Case "twin": the reference has a second, smaller true component next to
    the main one (removing it: a larger Dice loss, HD95 rises by a few mm)."""
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    shape = (12, 48, 48)
    ref = np.zeros(shape, np.uint8)
    ref[2:10, 5:25, 5:25] = 1
    pred = ref.copy()
    pred[4:8, 40:46, 40:46] = 1  # far false positive
    _write(ref, ref_dir / "far.nii.gz")
    _write(pred, pred_dir / "far.nii.gz")
    ref = np.zeros(shape, np.uint8)
    ref[2:10, 5:25, 5:25] = 1
    ref[3:9, 5:17, 27:33] = 1  # a true second component, 2 voxels away
    _write(ref, ref_dir / "twin.nii.gz")
    _write(ref, pred_dir / "twin.nii.gz")  # predicted perfectly
    return pred_dir, ref_dir


def _step(plan):
    (step,) = [s for s in plan.metrics["steps"] if s["operation"] == "keep_largest"]
    return step


def test_keep_largest_is_kept_on_hd95_and_dropped_on_dice(hd95_not_dice):
    pred, ref = hd95_not_dice
    options = {"try_keep_largest_foreground": False, "try_fill_holes": False}
    on_dice = determine_plan(pred, ref, label_ids=[1], **options)
    on_hd95 = determine_plan(pred, ref, label_ids=[1], metric="hd95", **options)
    assert on_dice.keep_largest == ()
    assert on_hd95.keep_largest == (1,)
    dice_step, hd95_step = _step(on_dice), _step(on_hd95)
    # Dice gets worse, HD95 gets better: both decisions are right for their metric
    assert dice_step["dice_after"] < dice_step["dice_before"]
    assert hd95_step["value_after"] < hd95_step["value_before"]
    assert hd95_step["before"]["hd95"] > 10 > 5 > hd95_step["after"]["hd95"]
    assert hd95_step["dice_after"] == pytest.approx(dice_step["dice_after"])
    # the numbers equal what evaluate reports for the same folders
    evaluation = evaluate_folder(pred, ref, labels=[1], metrics=["hd95", "assd", "nsd"])
    label = evaluation.labels[0]
    assert hd95_step["before"]["hd95"] == pytest.approx(label.values["hd95"])
    assert hd95_step["before"]["nsd"] == pytest.approx(label.values["nsd"])
    assert hd95_step["before"]["dice"] == pytest.approx(label.dice)
    assert set(hd95_step["before"]) == {"dice", "hd95", "assd", "nsd"}
    assert on_hd95.metrics["metric"] == "hd95"


def test_cli_shows_both_decisions_with_numbers(hd95_not_dice, tmp_path, capsys):
    pred, ref = hd95_not_dice
    common = ["determine", "-i", str(pred), "-r", str(ref), "--labels", "1"]
    common += ["--no-keep-largest-foreground", "--no-fill-holes"]
    assert main([*common, "-o", str(tmp_path / "dice.json")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("keep_largest "))
    assert "rejected on dice" in line
    assert "Dice 0.9" in line
    assert main([*common, "-o", str(tmp_path / "hd95.json"), "--metric", "hd95"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("keep_largest "))
    assert "accepted on hd95" in line
    for name in ("Dice", "HD95", "ASSD", "NSD"):
        assert f"{name} " in line
    plan = json.loads((tmp_path / "hd95.json").read_text())
    assert plan["keep_largest"] == [1]
    assert plan["metrics"]["after"]["1"]["hd95"] < plan["metrics"]["before"]["1"]["hd95"]


def test_score_metric_and_nsd(hd95_not_dice, tmp_path):
    pred, ref = hd95_not_dice
    options = {"label_ids": [1], "try_keep_largest_foreground": False, "try_fill_holes": False}
    score = tmp_path / "score.json"
    score.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "terms": [
                    {"metric": "dice", "weight": 0.5},
                    {"metric": "hd95", "weight": 0.5, "cap_mm": 20},
                ],
            }
        )
    )
    on_score = determine_plan(pred, ref, metric=f"score:{score}", **options)
    step = _step(on_score)
    expected_before = 0.5 * step["before"]["dice"] + 0.5 * np.mean(
        [1 - min(v, 20) / 20 for v in _per_case_hd95(pred, ref)]
    )
    assert step["value_before"] == pytest.approx(expected_before)
    assert on_score.keep_largest == (1,)  # the capped HD95 gain outweighs the Dice loss
    on_dice_only_score = tmp_path / "dice_score.json"
    on_dice_only_score.write_text(
        json.dumps({"schema_version": 1, "terms": [{"metric": "dice", "weight": 1}]})
    )
    assert (
        determine_plan(pred, ref, metric=f"score:{on_dice_only_score}", **options).keep_largest
        == ()
    )
    on_nsd = determine_plan(pred, ref, metric="nsd", nsd_tolerance=2.0, **options)
    assert _step(on_nsd)["metric"] == "nsd"


def _per_case_hd95(pred, ref):
    evaluation = evaluate_folder(pred, ref, labels=[1], metrics=["hd95"])
    return [float(c.values["hd95"][0]) for c in evaluation.cases]


def test_emptying_a_prediction_does_not_win_a_distance_mean(tmp_path):
    """min-size removing a whole predicted label would make HD95 undefined (left out of the
    mean); such a step is refused instead of looking like an improvement."""
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    for case, offset in (("a", 0), ("b", 6)):
        ref = np.zeros((6, 20, 20), np.uint8)
        ref[1:5, 2:12, 2:12] = 1
        pred = np.zeros_like(ref)
        pred[1:5, 2:12, 2:12] = 1
        if offset:
            ref[2:4, 14:18, 14:18] = 1
            pred[:] = 0
            pred[2:3, 14 - offset : 16 - offset, 14:16] = 1  # small, badly placed
        _write(ref, ref_dir / f"{case}.nii.gz")
        _write(pred, pred_dir / f"{case}.nii.gz")
    plan = determine_plan(
        pred_dir,
        ref_dir,
        label_ids=[1],
        metric="hd95",
        min_voxels={1: 10},
        try_keep_largest=False,
        try_keep_largest_foreground=False,
        try_fill_holes=False,
    )
    (step,) = plan.metrics["steps"]
    # after the step only case "a" is defined (HD95 0); before it "b" was large too: the mean
    # looks better, and the refusal comes from the case that became undefined
    assert step["value_before"] > 1.0
    assert step["value_after"] == 0.0
    assert not step["accepted"]
    assert plan.min_voxels == {}
    with_penalty = determine_plan(
        pred_dir,
        ref_dir,
        label_ids=[1],
        metric="hd95",
        convention="brats",
        min_voxels={1: 10},
        try_keep_largest=False,
        try_keep_largest_foreground=False,
        try_fill_holes=False,
    )
    (step,) = with_penalty.metrics["steps"]
    assert step["value_after"] == pytest.approx(374 / 2)  # the miss costs BraTS' 374 mm
    assert not step["accepted"]


def test_bad_metric_and_score_give_one_line(hd95_not_dice, tmp_path, capsys):
    pred, ref = hd95_not_dice
    common = ["determine", "-i", str(pred), "-r", str(ref), "-o", str(tmp_path / "p.json")]
    assert main([*common, "--metric", "f1"]) == 1
    err = capsys.readouterr().err
    assert "--metric must be one of" in err
    assert err.count("\n") == 1
    assert main([*common, "--metric", f"score:{tmp_path / 'missing.json'}"]) == 1
    assert "score file not found" in capsys.readouterr().err
    assert main([*common, "--metric", "hd95", "--convention", "kits"]) == 1
    assert "unknown convention" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_a_registered_metric_or_preset_decides(tmp_path):
    """``--metric`` takes the metric registry's names: a lesion-wise metric or a preset."""
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    ref = np.zeros((12, 40, 40), np.uint8)
    ref[2:10, 5:20, 5:20] = 1
    pred = ref.copy()
    pred[4:8, 30:36, 30:36] = 1  # a false-positive lesion far away
    _write(ref, ref_dir / "BraTS-MET-00001-000.nii.gz")
    _write(pred, pred_dir / "BraTS-MET-00001-000.nii.gz")
    options = {"try_keep_largest_foreground": False, "try_fill_holes": False, "label_ids": [1]}
    # BraTS 2026 metastases: a false positive scores Dice 0 in the lesion-wise mean (0.5 -> 1)
    plan = determine_plan(pred_dir, ref_dir, metric="brats2026-metastases", **options)
    step = _step(plan)
    assert step["accepted"] is True
    assert (step["value_before"], step["value_after"]) == (pytest.approx(0.5), 1.0)
    # glioma's lesion-wise Dice averages the matched lesions only: no change, step refused
    plan = determine_plan(pred_dir, ref_dir, metric="lesion_dice", **options)
    assert _step(plan)["accepted"] is False
    out = tmp_path / "plan.json"
    assert (
        main(
            [
                "determine",
                "-i",
                str(pred_dir),
                "-r",
                str(ref_dir),
                "-o",
                str(out),
                "--metric",
                "lesion_f1",
                "--labels",
                "1",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["metrics"]["metric"] == "lesion_f1"
