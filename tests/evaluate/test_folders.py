import json
import math
import shutil

import numpy as np
import pytest

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.evaluate.report import write_evaluation
from nnunet_ext.io.errors import InputError

from ._data import make_folders, write_label


def _nnunet_summary(ref_dir, pred_dir, labels, ignore_label):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    return compute_metrics_on_folder(
        str(ref_dir),
        str(pred_dir),
        None,
        SimpleITKIO(),
        ".nii.gz",
        labels,
        ignore_label,
        num_processes=1,
    )


def _assert_parity(ours, theirs, labels):
    for label_summary, label in zip(ours.labels, labels, strict=True):
        for ours_value, key in ((label_summary.dice, "Dice"), (label_summary.iou, "IoU")):
            expected = theirs["mean"][label][key]
            assert ours_value == pytest.approx(expected, abs=1e-6), (label, key)
        for key in ("TP", "FP", "FN", "TN", "n_ref", "n_pred"):
            assert label_summary.means[key] == pytest.approx(theirs["mean"][label][key], abs=1e-6)
    for case_result, nn_case in zip(ours.cases, theirs["metric_per_case"], strict=True):
        assert case_result.prediction_file.name == nn_case["prediction_file"].split("/")[-1]
        for j, label in enumerate(labels):
            expected = nn_case["metrics"][label]["Dice"]
            got = case_result.dice[j]
            assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(
                expected, abs=1e-9
            )
    assert ours.foreground_dice == pytest.approx(theirs["foreground_mean"]["Dice"], abs=1e-6)


@pytest.mark.nnunet
def test_parity_with_nnunet_labels_ignore_label_and_empty_cases(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, ignore=4)
    ours = evaluate_folder(pred_dir, ref_dir)
    assert [s.label for s in ours.labels] == [1, 2, 3]
    assert ours.ignore_label == 4
    theirs = _nnunet_summary(ref_dir, pred_dir, [1, 2, 3], 4)
    _assert_parity(ours, theirs, [1, 2, 3])
    blob = ours.labels[2]
    assert (blob.num_empty_reference, blob.num_empty_prediction, blob.num_both_empty) == (2, 1, 1)
    assert blob.num_in_mean == 4  # the both-empty case is NaN and left out, as in nnU-Net


@pytest.mark.nnunet
def test_parity_with_nnunet_regions(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=3)
    dataset = json.loads((pred_dir / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "blob": 3}
    dataset["regions_class_order"] = [1, 2, 3]
    (pred_dir / "dataset.json").write_text(json.dumps(dataset))
    ours = evaluate_folder(pred_dir, ref_dir)
    regions = [(1, 2, 3), (2, 3), 3]
    assert [s.label for s in ours.labels] == regions
    assert [s.name for s in ours.labels] == ["whole", "core", "blob"]
    _assert_parity(ours, _nnunet_summary(ref_dir, pred_dir, regions, None), regions)


def test_empty_policies_change_only_the_empty_cases(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path)
    by_policy = {e: evaluate_folder(pred_dir, ref_dir, empty=e) for e in ("nan", "one", "skip")}
    dice = {e: [c.dice[2] for c in r.cases] for e, r in by_policy.items()}
    assert math.isnan(dice["nan"][1])
    assert dice["one"][1] == 1.0
    assert dice["nan"][2] == 0.0  # reference empty, prediction not: Dice 0 ...
    blob = {e: r.labels[2] for e, r in by_policy.items()}
    assert (blob["nan"].num_in_mean, blob["one"].num_in_mean, blob["skip"].num_in_mean) == (4, 5, 3)
    others = [c.dice[2] for i, c in enumerate(by_policy["nan"].cases) if i not in (1, 2)]
    assert blob["skip"].dice == pytest.approx(np.mean(others))  # ... which skip leaves out
    assert blob["one"].dice == pytest.approx((sum(others) + 1.0 + 0.0) / 5)
    # labels present everywhere do not depend on the policy
    assert by_policy["one"].labels[0].dice == by_policy["nan"].labels[0].dice


def test_missing_prediction_is_an_error_naming_the_case(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path)
    (pred_dir / "case_03.nii.gz").unlink()
    with pytest.raises(
        ValueError, match=r"1 reference case\(s\) have no prediction .*case_03.*allow_missing=True"
    ):
        evaluate_folder(pred_dir, ref_dir)
    result = evaluate_folder(pred_dir, ref_dir, allow_missing=True)
    assert result.missing_predictions == ["case_03"]
    assert [c.case for c in result.cases] == ["case_00", "case_01", "case_02", "case_04"]


def test_prediction_without_reference_is_an_error(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path)
    shutil.copy(pred_dir / "case_00.nii.gz", pred_dir / "case_99.nii.gz")
    with pytest.raises(ValueError, match=r"prediction\(s\) have no reference .*case_99"):
        evaluate_folder(pred_dir, ref_dir)


def test_labels_by_name_value_and_region(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=2)
    result = evaluate_folder(pred_dir, ref_dir, labels=["inner", "1", "1,2"])
    assert [s.label for s in result.labels] == [2, 1, (1, 2)]
    assert [s.name for s in result.labels] == ["inner", "outer", "(1, 2)"]
    with pytest.raises(InputError, match=r"labels must be a label defined in .*'innr'.*'inner'"):
        evaluate_folder(pred_dir, ref_dir, labels=["innr"])


def test_without_dataset_json_labels_are_required(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=2)
    (pred_dir / "dataset.json").unlink()
    with pytest.raises(ValueError, match=r"no labels to evaluate.*Pass labels"):
        evaluate_folder(pred_dir, ref_dir)
    assert len(evaluate_folder(pred_dir, ref_dir, labels=[1]).labels) == 1


def test_shape_mismatch_names_the_file(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=2)
    write_label(pred_dir / "case_01.nii.gz", np.zeros((4, 16, 15), np.uint8))
    with pytest.raises(ValueError, match=r"case_01.nii.gz: shape \(4, 16, 15\) must equal"):
        evaluate_folder(pred_dir, ref_dir)


def test_parallel_equals_sequential(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=3)
    one = evaluate_folder(pred_dir, ref_dir)
    two = evaluate_folder(pred_dir, ref_dir, num_workers=2)
    assert [s.dice for s in one.labels] == [s.dice for s in two.labels]


def test_written_json_is_strict_and_csv_has_a_row_per_case_and_label(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path)
    result = evaluate_folder(pred_dir, ref_dir)
    json_path, csv_path = write_evaluation(result, tmp_path / "summary.json")
    text = json_path.read_text()
    data = json.loads(
        text, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}")
    )
    assert data["schema_version"] == 1
    assert data["metric_per_case"][1]["metrics"]["3"]["Dice"] is None
    assert data["mean"]["3"]["num_empty_reference"] == 2
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("case,label,name,Dice,IoU,TP,FP,FN,TN,n_ref,n_pred")
    assert len(rows) == 1 + 5 * 3
    assert rows[1 + 3 * 1 + 2].startswith("case_01,3,blob,,,")
