"""evaluate --metrics / --convention / --score / --nsd-tolerance on label folders."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from nnunet_ext.evaluate import evaluate_folder
from nnunet_ext.evaluate.cli import main, parse_nsd_tolerance
from nnunet_ext.evaluate.conventions import CONVENTIONS, SITUATIONS
from nnunet_ext.evaluate.measures import COLUMNS, column_keys
from nnunet_ext.evaluate.score import ScoreSpec

from ._data import make_folders, write_label
from ._oracles import float32_close, medpy_values, monai_values

ALL = ["dice", "iou", "hd", "hd95", "hd95_pooled", "assd", "nsd", "volume"]
# SimpleITK order (x, y, z); the arrays are (z, y, x), so the metrics must use (1.5, 0.7, 0.7)
SITK_SPACING = (0.7, 0.7, 1.5)
ARRAY_SPACING = (1.5, 0.7, 0.7)


def _empty_case_folders(tmp_path):
    """Case a: label 1 in both; b: label 1 only in the prediction; c: only in the reference;
    d: label 1 in neither. Label 2 is a small box in every reference and prediction."""
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    shape = (4, 10, 12)
    for case, (in_ref, in_pred) in {
        "a": (True, True),
        "b": (False, True),
        "c": (True, False),
        "d": (False, False),
    }.items():
        ref = np.zeros(shape, dtype=np.uint8)
        pred = np.zeros(shape, dtype=np.uint8)
        ref[1:3, 6:9, 6:9] = 2
        pred[1:3, 6:9, 7:10] = 2
        if in_ref:
            ref[0:2, 1:4, 1:4] = 1
        if in_pred:
            pred[0:2, 1:4, 2:5] = 1
        write_label(ref_dir / f"{case}.nii.gz", ref, SITK_SPACING)
        write_label(pred_dir / f"{case}.nii.gz", pred, SITK_SPACING)
    return pred_dir, ref_dir, shape


def test_spacing_comes_from_the_reference_header_in_array_order(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=4, shape=(5, 16, 16))
    # rewrite the references with anisotropic spacing; the predictions keep theirs (a warning)
    from nnunet_ext.io import read_labels

    for file in sorted(ref_dir.glob("*.nii.gz")):
        write_label(file, read_labels(file).array, SITK_SPACING)
    evaluation = evaluate_folder(pred_dir, ref_dir, metrics=ALL, nsd_tolerance=1.0)
    checked = 0
    for case in evaluation.cases:
        ref_image = read_labels(case.reference_file)
        ref, pred = ref_image.array, read_labels(case.prediction_file).array
        spacing = tuple(reversed(ref_image.spacing))  # as stored: float32 0.7 is 0.69999999
        assert spacing == pytest.approx(ARRAY_SPACING)
        for i, summary in enumerate(evaluation.labels):
            r, p = ref == summary.label, pred == summary.label
            if not (r.any() and p.any()):
                assert math.isnan(case.values["hd95"][i])
                continue
            monai = monai_values(r, p, spacing, 1.0)
            medpy = medpy_values(r, p, spacing)
            assert float32_close(float(case.values["hd95"][i]), monai["hd95"])
            assert float32_close(float(case.values["nsd"][i]), monai["nsd"])
            assert abs(case.values["hd95_pooled"][i] - medpy["hd95_pooled"]) <= 1e-6
            assert abs(case.values["assd"][i] - medpy["assd"]) <= 1e-6
            voxel_ml = float(np.prod(spacing)) / 1000
            diff = (int(p.sum()) - int(r.sum())) * voxel_ml
            assert case.values["volume_diff_ml"][i] == pytest.approx(diff, abs=1e-12)
            checked += 1
    assert checked >= 8


def test_default_output_is_unchanged(tmp_path):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=2)
    summary = evaluate_folder(pred_dir, ref_dir).to_json()
    assert "metrics" not in summary
    assert set(summary["conventions"]) == {"empty", "ignore_label", "label_source", "mean"}
    entry = summary["metric_per_case"][0]["metrics"]["1"]
    assert set(entry) == {"Dice", "IoU", "TP", "FP", "FN", "TN", "n_ref", "n_pred"}
    assert "num_undefined" not in summary["mean"]["1"]


def test_nan_convention_counts_undefined_cases(tmp_path):
    pred_dir, ref_dir, _ = _empty_case_folders(tmp_path)
    evaluation = evaluate_folder(pred_dir, ref_dir, labels=[1, 2], metrics=ALL)
    one, two = evaluation.labels
    for key in ("hd", "hd95", "hd95_pooled", "assd"):
        assert one.num_undefined[key] == 3  # b, c, d
        assert two.num_undefined[key] == 0
    assert one.num_undefined["nsd"] == 1  # d only: NSD is 0 with one side empty (MONAI)
    assert one.num_undefined["volume_diff_rel"] == 2  # b and d have no reference volume
    assert one.values["hd95"] == pytest.approx(float(evaluation.cases[0].values["hd95"][0]))
    per_case = {c.case: c for c in evaluation.cases}
    assert per_case["c"].values["volume_diff_rel"][0] == -1.0
    summary = evaluation.to_json()
    assert summary["mean"]["1"]["num_undefined"]["HD95"] == 3


def test_brats_convention_reproduces_the_penalties(tmp_path):
    pred_dir, ref_dir, _ = _empty_case_folders(tmp_path)
    evaluation = evaluate_folder(
        pred_dir, ref_dir, labels=[1], metrics=["dice", "hd95", "hd", "nsd"], convention="brats"
    )
    per_case = {c.case: c for c in evaluation.cases}
    assert per_case["b"].values["hd95"][0] == 374.0  # false positive only
    assert per_case["c"].values["hd95"][0] == 374.0  # missed
    assert per_case["d"].values["hd95"][0] == 0.0  # both empty
    assert per_case["d"].dice[0] == 1.0
    assert per_case["b"].dice[0] == 0.0
    assert per_case["c"].dice[0] == 0.0
    assert per_case["d"].values["nsd"][0] == 1.0
    label = evaluation.labels[0]
    assert label.num_in_mean == 4
    assert label.num_undefined["hd95"] == 0
    expected = (float(per_case["a"].values["hd95"][0]) + 374 + 374 + 0) / 4
    assert label.values["hd95"] == pytest.approx(expected)
    assert label.dice == pytest.approx((float(per_case["a"].dice[0]) + 1) / 4)


def test_max_distance_convention_is_the_image_diagonal(tmp_path):
    pred_dir, ref_dir, shape = _empty_case_folders(tmp_path)
    evaluation = evaluate_folder(
        pred_dir, ref_dir, labels=[1], metrics=["hd95", "assd"], convention="max-distance"
    )
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, ARRAY_SPACING, strict=True)))
    per_case = {c.case: c for c in evaluation.cases}
    assert per_case["b"].values["hd95"][0] == pytest.approx(diagonal)
    assert per_case["c"].values["assd"][0] == pytest.approx(diagonal)
    assert per_case["d"].values["hd95"][0] == 0.0


def test_conventions_table_covers_every_metric_and_situation():
    keys = set(column_keys(ALL))
    for name, rows in CONVENTIONS.items():
        assert set(rows) == keys, name
        for row in rows.values():
            assert len(row) == len(SITUATIONS)


def test_score_combines_labels_as_documented(tmp_path):
    pred_dir, ref_dir, _ = _empty_case_folders(tmp_path)
    spec = ScoreSpec.from_dict(
        {
            "schema_version": 1,
            "terms": [
                {"metric": "dice", "weight": 0.5},
                {"metric": "hd95", "weight": 0.5, "cap_mm": 20},
            ],
            "label_weights": {"2": 3},
        }
    )
    evaluation = evaluate_folder(pred_dir, ref_dir, labels=[1, 2], score=spec)
    assert "hd95" in evaluation.metrics  # added because the score needs it
    label_scores = []
    for j in range(2):
        dice = np.array([c.dice[j] for c in evaluation.cases])
        hd95 = np.array([c.values["hd95"][j] for c in evaluation.cases])
        capped = 1 - np.minimum(hd95, 20) / 20
        label_scores.append(0.5 * np.nanmean(dice) + 0.5 * np.nanmean(capped))
    assert evaluation.labels[0].score == pytest.approx(label_scores[0])
    assert evaluation.score == pytest.approx((label_scores[0] + 3 * label_scores[1]) / 4)
    assert evaluation.to_json()["score"]["value"] == pytest.approx(evaluation.score)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{", "JSON"),
        ('{"terms": [{"metric": "dice", "weight": 1}]}', "schema_version must be 1"),
        ('{"schema_version": 1, "terms": []}', "non-empty list"),
        ('{"schema_version": 1, "terms": [{"metric": "dice", "weight": 1}], "x": 1}', "unknown"),
        ('{"schema_version": 1, "terms": [{"metric": "hd95", "weight": 1}]}', "cap_mm"),
        ('{"schema_version": 1, "terms": [{"metric": "dice", "weight": -1}]}', ">= 0"),
        ('{"schema_version": 1, "terms": [{"metric": "f1", "weight": 1}]}', "metric must be"),
        (
            '{"schema_version": 1, "terms": [{"metric": "dice", "weight": 1}],'
            ' "label_weights": {"7": 1}}',
            "not evaluated",
        ),
    ],
)
def test_bad_score_files_give_one_clear_line(tmp_path, content, match):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=1)
    score = tmp_path / "score.json"
    score.write_text(content)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "nnunet_ext.evaluate", "-i", str(pred_dir), "-r", str(ref_dir)),
            *("--score", str(score), "--json", str(tmp_path / "out.json")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert match in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_unknown_convention_and_metric_give_one_clear_line(tmp_path, capsys):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=1)
    assert main(["-i", str(pred_dir), "-r", str(ref_dir), "--convention", "kits"]) == 1
    err = capsys.readouterr().err
    assert "unknown convention 'kits'; known: nan, brats, max-distance" in err
    assert err.count("\n") == 1
    assert main(["-i", str(pred_dir), "-r", str(ref_dir), "--metrics", "hd99"]) == 1
    assert "unknown metric 'hd99'" in capsys.readouterr().err
    assert (
        main(["-i", str(pred_dir), "-r", str(ref_dir), "--convention", "brats", "--empty", "one"])
        == 1
    )
    assert "; --empty must stay 'nan'." in capsys.readouterr().err


def test_cli_writes_all_metrics_with_per_label_tolerances(tmp_path, capsys):
    pred_dir, ref_dir = make_folders(tmp_path, num_cases=3)
    out = tmp_path / "summary.json"
    argv = ["-i", str(pred_dir), "-r", str(ref_dir), "--json", str(out), "--metrics", *ALL]
    assert main([*argv, "--nsd-tolerance", "1:2.5", "0.5"]) == 0
    table = capsys.readouterr().out
    for key in column_keys(ALL):
        assert COLUMNS[key] in table
    assert "NSD (voxel) tolerance: 1: 2.5 mm, 2: 0.5 mm, 3: 0.5 mm" in table
    summary = json.loads(out.read_text())
    assert summary["metrics"] == ALL
    assert summary["conventions"]["nsd_tolerance_mm"] == {"1": 2.5, "2": 0.5, "3": 0.5}
    header = (tmp_path / "summary_per_case.csv").read_text().splitlines()[0]
    assert header.endswith("HD,HD95,HD95_pooled,ASSD,NSD,VolumeDiff_ml,VolumeDiff_rel")
    assert main([*argv, "--overwrite", "--nsd-tolerance", "1:2.5"]) == 1
    assert "no tolerance for label 2" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--nsd-tolerance", "9:1", "1"]) == 1
    assert "not evaluated" in capsys.readouterr().err


def test_parse_nsd_tolerance_refuses_bad_values():
    assert parse_nsd_tolerance(["(1, 2):3"]) == {"(1, 2)": 3.0}
    for bad in (["-1"], ["x"], [":2"], ["1:nan"]):
        with pytest.raises(ValueError, match="--nsd-tolerance"):
            parse_nsd_tolerance(bad)
