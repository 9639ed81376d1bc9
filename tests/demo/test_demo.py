"""The Quick-start demo, end to end with real nnU-Net (`nnunet-ext demo --quick`)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile

import pytest

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]

METHODS = ["2d", "3d_fullres", "ensemble (equal)", "ensemble (tuned)", "tuned + postprocessing"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "nnunet_ext_demo"
    env_clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("nnUNet_")}
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_ext", "demo", "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        env=env_clean,
        timeout=3000,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


def test_summary_reports_every_method_per_label(demo):
    _, stdout = demo
    assert "Mean Dice on the test cases" in stdout
    table = stdout.split("Mean Dice on the test cases", 1)[1].split("Mean HD95", 1)[0]
    header = table.splitlines()[1]
    for label in ("myocardium", "LV", "RV", "foreground mean"):
        assert label in header
    rows = {line[: line.index("  ")].strip() for line in table.splitlines()[2:] if line.strip()}
    assert set(METHODS) <= rows
    assert {"best single (2d)", "best single (3d_fullres)"} & rows
    assert "tuned + postprocessing - best single" in rows


def test_every_training_ran_with_custom_epochs_and_early_stopping(demo):
    out, stdout = demo
    for configuration in ("2d", "3d_fullres"):
        for fold in (0, 1):
            fold_dir = (
                out
                / "nnUNet_results"
                / "Dataset501_SyntheticHeart"
                / f"CustomEpochs__nnUNetPlans__{configuration}"
                / f"fold_{fold}"
            )
            record = json.loads((fold_dir / "nnunet_ext_training.json").read_text())
            assert record["settings"]["patience"] == 1
            assert record["settings"]["seed"] == 0  # --seed seeds the training too
            log = "".join(p.read_text() for p in fold_dir.glob("training_log_*.txt"))
            assert "seed=0 (env:nnUNet_seed)" in log
            assert "not reproducible" not in log  # the demo sets nnUNet_n_proc_DA=0
            assert record["status"] in {"stopped_early", "completed"}
            assert (fold_dir / "checkpoint_final.pth").is_file()
            assert any((fold_dir / "validation").glob("*.npz"))
            assert (out / "training_curves" / f"{configuration}_fold_{fold}.png").is_file()
    assert "stopped early" in stdout


def test_tuned_spec_and_postprocessing_plan_are_json(demo):
    out, _ = demo
    spec = json.loads((out / "tuning" / "ensemble_spec.json").read_text())
    assert spec["schema_version"] == 2
    assert len(spec["members"]) == 2
    plan = json.loads((out / "tuning" / "postprocessing_plan.json").read_text())
    assert plan["schema_version"] == 2


def test_evaluations_are_strict_json_for_every_method(demo):
    out, _ = demo
    evaluations = sorted((out / "evaluation").glob("*.json"))
    evaluations.remove(out / "evaluation" / "comparison.json")  # compare's, tested below
    assert len(evaluations) == len(METHODS)

    def reject(constant):
        raise AssertionError(f"bare {constant} token in strict JSON")

    for file in evaluations:
        data = json.loads(file.read_text(), parse_constant=reject)
        assert data


def test_submission_zip_is_flat_and_passes_check(demo):
    out, _ = demo
    zip_path = out / "submission" / "submission.zip"
    names = zipfile.ZipFile(zip_path).namelist()
    assert sorted(names) == ["heart_006.nii.gz", "heart_007.nii.gz"]
    images = out / "nnUNet_raw" / "Dataset501_SyntheticHeart" / "imagesTs"
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "nnunet_ext",
            "submission",
            "check",
            str(zip_path),
            "--images",
            str(images),
            "--labels",
            "0",
            "1",
            "2",
            "3",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert (out / "submission" / "preview.png").stat().st_size > 0


def test_rerun_into_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_ext", "demo", "--quick", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "is not a demo folder" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_hd95_table_has_every_method_in_mm(demo):
    _, stdout = demo
    table = stdout.split("Mean HD95 in mm on the test cases", 1)[1].split("\n\n", 1)[0]
    rows = {line[: line.index("  ")].strip() for line in table.splitlines()[2:] if line.strip()}
    assert set(METHODS) <= rows
    for line in table.splitlines()[2:]:
        for cell in line.split()[-4:]:
            if cell != "NaN":
                assert 0.0 <= float(cell) < 1000.0


def test_dice_values_are_probabilities(demo):
    _, stdout = demo
    table = stdout.split("Mean Dice on the test cases", 1)[1].split("Mean HD95", 1)[0]
    for line in table.splitlines()[2:]:
        if line.startswith("tuned + postprocessing - best single"):
            continue  # differences, in [-1, 1]
        for cell in line.split()[-4:]:
            if cell != "NaN":
                assert 0.0 <= float(cell) <= 1.0
                assert not math.isnan(float(cell))


def test_tuned_ensemble_is_predicted_in_one_pass_and_matches_the_npz_route(demo):
    out, stdout = demo
    assert "Tuned ensemble of the test images: nnunet-ext predict --spec" in stdout
    assert "labels identical" in stdout
    tuned = out / "predictions" / "ensemble_tuned"
    assert not list(tuned.glob("*.npz"))
    provenance = json.loads((tuned / "nnunet_ext_predict.json").read_text())
    assert provenance["tool"] == "nnunet_ext.predict"


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5", "one"])
def test_a_seed_outside_the_32_bit_range_is_refused_before_anything_runs(tmp_path, seed):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_ext", "demo", "--seed", seed, "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert f"argument --seed: must be an integer in [0, 4294967295]; got '{seed}'" in result.stderr
    assert not out.exists()


def test_the_record_and_the_two_estimates(demo):
    """The demo writes its record (strict, read back by the many-draws benchmark) and prints the
    tuner's CV estimate beside the hold-out estimate of the fold-averaged models."""
    from nnunet_ext.demo.record import read_record

    out, stdout = demo
    record = read_record(out / "demo_summary.json")
    assert record["seed"] == 0
    assert set(METHODS) <= set(record["dice"])
    assert set(record["estimates"]) == {
        "CV gain over equal",
        "hold-out gain over equal",
        "hold-out minus best member",
    }
    for row in record["estimates"].values():
        assert set(row) == {"myocardium", "LV", "RV"}
    assert "Two estimates of the tuned ensemble before the test cases" in stdout
    report = json.loads((out / "tuning" / "tuning_report.json").read_text())
    assert report["holdout"]["num_cases"] == 2
    holdout = out / "nnUNet_raw" / "Dataset501_SyntheticHeart" / "labelsVal"
    assert sorted(p.name for p in holdout.iterdir()) == ["heart_008.nii.gz", "heart_009.nii.gz"]


def test_the_demo_compares_the_tuned_ensemble_with_equal_weights(demo):
    from nnunet_ext.compare import load_comparison

    out, stdout = demo
    assert "tuned + postprocessing against equal weights on the 2 test cases" in stdout
    comparison = load_comparison(out / "evaluation" / "comparison.json")
    assert len(comparison.cases) == 2


def test_the_demo_prints_the_flagged_test_cases_beside_the_dice_table(demo):
    from nnunet_ext.qc import load_qc

    out, stdout = demo
    report = load_qc(out / "predictions" / "ensemble_tuned_npz_route" / "qc.json")
    assert len(report.cases) == 2
    line = f"{len(report.flagged)} of 2 test case(s) flagged"
    assert line in stdout
    assert stdout.index("Mean Dice on the test cases") < stdout.index(line)
    for case in report.flagged:
        assert f"  {case.case}  " in stdout
