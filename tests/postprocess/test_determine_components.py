from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_ext.evaluate.metrics import confusion_matrix
from nnunet_ext.io import read_labels
from nnunet_ext.postprocess import PostprocessingPlan, apply_plan, determine_plan, load_plan
from nnunet_ext.postprocess.cli import main
from nnunet_ext.postprocess.objective import Objective
from tests.postprocess import _planted

RULES = ("relabel_small", "min_probability", "volume_gate", "keep_top_k")
ONLY_COMPONENTS = {
    "try_keep_largest_foreground": False,
    "try_keep_largest": False,
    "try_fill_holes": False,
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The CV set with planted errors, and a second one (other seeds) to hold out."""
    root = tmp_path_factory.mktemp("planted")
    return _planted.write_cv_set(root / "cv", seed=0), _planted.write_cv_set(root / "test", seed=1)


def _mean_dice(pred_dir, ref_dir, plan, convention="brats"):
    objective = Objective("dice", nsd_tolerance=1.0, convention=convention, ignore_label=None)
    truth, predictions, spacings = [], [], []
    for path in sorted(pred_dir.glob("*.nii.gz")):
        prediction = read_labels(path)
        probabilities = np.load(pred_dir / path.name.replace(".nii.gz", ".npz"))["probabilities"]
        predictions.append(
            apply_plan(
                prediction.array, plan, spacing=prediction.spacing, probabilities=probabilities
            )
        )
        truth.append(read_labels(ref_dir / path.name).array)
        spacings.append(tuple(reversed(prediction.spacing)))
    values = objective.values(truth, predictions, [1, 2, 3], spacings)["dice"]
    return float(np.nanmean(values))


@pytest.mark.parametrize(
    ("metric", "convention"),
    [("brats2023", "nan"), ("dice", "nan"), ("dice", "brats"), ("hd95", "brats")],
)
def test_acceptance_planted_errors_are_found_with_their_thresholds(planted, metric, convention):
    """Acceptance 1 on the lesion-wise preset (BraTS 2023's lesion-wise Dice, which counts a
    false-positive lesion), and on Dice (nnU-Net's and BraTS's empty cases) and HD95."""
    (pred, ref), (test_pred, test_ref) = planted
    plan = determine_plan(
        pred,
        ref,
        component_rules=RULES,
        probabilities_dir=pred,
        metric=metric,
        convention=convention,
        **ONLY_COMPONENTS,
    )
    kept = {(s.step, s.label, s.to): s for s in plan.steps}
    assert set(kept) == {("relabel_small", 3, 1), ("min_probability", 2, 0), ("volume_gate", 2, 0)}
    relabel = kept["relabel_small", 3, 1]
    gate = kept["volume_gate", 2, 0]
    drop = kept["min_probability", 2, 0]
    planted_values = _planted.PLANTED
    assert relabel.min_size == pytest.approx(planted_values["relabel_small"], rel=0.25)
    assert gate.min_size == pytest.approx(planted_values["volume_gate"], rel=0.25)
    assert drop.threshold == pytest.approx(planted_values["min_probability"], rel=0.25)
    assert drop.statistic == "max"
    assert [s.step for s in plan.steps] == ["relabel_small", "min_probability", "volume_gate"]
    for step in plan.steps:
        assert step.reason.startswith(f"kept: held-out {metric} gain +")
        assert step.connectivity == (None if step.step == "volume_gate" else 3)
    # the report: every rule on every label, with in-sample and held-out values
    candidates = plan.metrics["candidates"]
    tried = {(c["step"], c["label"], c.get("statistic")) for c in candidates}
    assert len(tried) == len(candidates) == 3 * (len(RULES) + 1)
    for entry in candidates:
        assert len(entry["in_sample"]) == len(entry["thresholds"])
        assert len(entry["fold_choices"]) == 5
        assert entry["accepted"] == (
            (entry["step"], entry["label"]) in {(k[0], k[1]) for k in kept}
            and entry.get("statistic", "max") == "max"
        )
        if entry["accepted"]:
            assert entry["held_out_gain"] > 0.001
    assert "tune's rule" in plan.metrics["component_rule"]
    # held out: a new planted set, Dice of the chosen plan beats no plan and keep-largest-only
    chosen = _mean_dice(test_pred, test_ref, plan)
    nothing = _mean_dice(test_pred, test_ref, PostprocessingPlan())
    largest = _mean_dice(test_pred, test_ref, PostprocessingPlan(keep_largest=(1, 2, 3)))
    assert chosen > nothing + 0.05
    assert chosen > largest + 0.05


def test_no_rule_is_kept_where_the_errors_are_not_component_errors(tmp_path):
    """Predictions with boundary noise only: no candidate gains beyond the noise."""
    rng = np.random.default_rng(3)
    import SimpleITK as sitk  # noqa: N813

    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    for index in range(10):
        reference, _, probabilities = _planted.make_case(100 + index, gated=False)
        prediction = reference.copy()
        edge = reference != np.roll(reference, 1, axis=int(rng.integers(0, 3)))
        flip = edge & (rng.random(reference.shape) < 0.3)
        prediction[flip] = np.roll(reference, 1, axis=1)[flip]
        for array, folder in ((reference, ref), (prediction, pred)):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / f"c{index}.nii.gz"))
        np.savez_compressed(pred / f"c{index}.npz", probabilities=probabilities)
    plan = determine_plan(
        pred, ref, component_rules=RULES, probabilities_dir=pred, **ONLY_COMPONENTS
    )
    assert plan.steps == ()
    assert all(not c["accepted"] for c in plan.metrics["candidates"])


def test_cli_determine_reports_candidates_and_apply_reads_the_probabilities(
    planted, tmp_path, capsys
):
    (pred, ref), _ = planted
    plan_file = tmp_path / "plan.json"
    code = main(
        [
            "determine",
            "-i", str(pred),
            "-r", str(ref),
            "-o", str(plan_file),
            "--component-rules", "all",
            "--probabilities", str(pred),
            "--size-unit", "mm3",
            "--convention", "brats",
            "--no-keep-largest", "--no-fill-holes", "--no-keep-largest-foreground",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "relabel_small            label 3      " in out
    assert "kept on dice" in out
    assert "not kept on dice" in out
    plan = load_plan(plan_file)
    assert {s.unit for s in plan.steps if s.min_size is not None} == {"mm3"}
    assert json.loads(plan_file.read_text())["schema_version"] == 2
    out_dir = tmp_path / "applied"
    assert main(["apply", "-i", str(pred), "-o", str(out_dir), "--plan", str(plan_file)]) == 1
    err = capsys.readouterr().err
    assert "min_probability label 2 -> 0 below max" in err
    assert "needs the fused probabilities" in err
    assert not out_dir.exists()
    args = ["apply", "-i", str(pred), "-o", str(out_dir), "--plan", str(plan_file)]
    assert main([*args, "--probabilities", str(pred)]) == 0
    for path in sorted(pred.glob("*.nii.gz")):
        source = read_labels(path)
        probabilities = np.load(pred / path.name.replace(".nii.gz", ".npz"))["probabilities"]
        expected = apply_plan(
            source.array, plan, spacing=source.spacing, probabilities=probabilities
        )
        np.testing.assert_array_equal(read_labels(out_dir / path.name).array, expected)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"component_rules": ["min_probability"]},
            ValueError,
            "component_rules min_probability needs the fused probabilities; pass probabilities_dir",
            id="no-probabilities",
        ),
        pytest.param(
            {"component_rules": ["relabel"]},
            ValueError,
            "component_rules must be among relabel_small, .*; got 'relabel'",
            id="unknown-rule",
        ),
        pytest.param(
            {"component_rules": ["volume_gate"], "size_unit": "ml"},
            ValueError,
            "size_unit must be voxels or mm3; got 'ml'",
            id="unit",
        ),
    ],
)
def test_determine_errors(planted, kwargs, error, match):
    (pred, ref), _ = planted
    with pytest.raises(error, match=match):
        determine_plan(pred, ref, **kwargs)


def test_missing_probability_file_is_named(planted, tmp_path):
    (pred, ref), _ = planted
    empty = tmp_path / "npz"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no case_000.npz \(12 case\(s\) missing\)"):
        determine_plan(pred, ref, component_rules=["min_probability"], probabilities_dir=empty)


@pytest.mark.parametrize("seed", range(20))
def test_dice_from_confusion_matrices_equals_dice_from_label_maps(seed):
    rng = np.random.default_rng(seed)
    shape = (4, 5, 6)
    truth = [rng.integers(0, 4, size=shape).astype(np.uint8) for _ in range(3)]
    predictions = [rng.integers(0, 4, size=shape).astype(np.uint8) for _ in range(3)]
    truth[0][truth[0] == 2] = 0  # an absent label
    predictions[0][predictions[0] == 2] = 0
    ignore = 3 if seed % 2 else None
    for convention in ("nan", "brats"):
        objective = Objective("dice", nsd_tolerance=1.0, convention=convention, ignore_label=ignore)
        ids = [1, 2] if ignore else [1, 2, 3]
        spacings = [(1.0, 1.0, 1.0)] * 3
        direct = objective.values(truth, predictions, ids, spacings)
        matrices = [
            confusion_matrix(t, p, num_values=4, ignore_label=ignore)
            for t, p in zip(truth, predictions, strict=True)
        ]
        counted = objective.values_from_matrices(matrices, ids, [shape] * 3, spacings)
        np.testing.assert_array_equal(counted["dice"], direct["dice"])
