"""Region tuning decided on a metric other than Dice (``tune --metric``).

The planted data: region B (label 2, inside region A = labels 1 and 2) has a sure core, a
shell of its true voxels at probability ~0.28, and a far false-positive blob at ~0.53. Dice
wants the shell (a threshold below 0.26), which lets the blob in; HD95 and the lesion F1 want
the blob out (a threshold of 0.55 or more), at the cost of the shell.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunet_ext.evaluate.measures import boundary_values
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.synthetic import write_dataset_json, write_labels_image, write_prediction_folder
from nnunet_ext.tune import tune_regions
from nnunet_ext.tune.cli import main
from nnunet_ext.tune.region_data import load_region_data, region_dataset
from nnunet_ext.tune.region_gate import tune_region_setting
from nnunet_ext.tune.region_metric import METRIC_THRESHOLDS, RegionMetric, metric_thresholds
from nnunet_ext.tune.region_search import active_labels, region_case_dice
from nnunet_ext.tune.region_setting import member_setting

LABELS = {"background": 0, "A": [1, 2], "B": 2}
ORDER = (1, 2)
SHAPE = (12, 32, 32)


def planted(root, seed, num_cases=8, blobs=((0.52, 0.54), (0.52, 0.54))):
    """Two members' CV folders and the references (see the module docstring); ``blobs``: the
    range of each member's probability of B on the blob."""
    rng = np.random.default_rng(seed)
    reference = root / "reference"
    reference.mkdir(parents=True)
    grid = np.indices(SHAPE)
    blob = np.zeros(SHAPE, dtype=bool)
    blob[4:8, 26:30, 26:30] = True  # far from every tumour: 64 voxels, all but 8 on its surface
    members = [{}, {}]
    for index in range(num_cases):
        centre = np.array([6, rng.integers(9, 14), rng.integers(9, 14)])
        distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
        a, b, core = distance <= 6.5, distance <= 4.5, distance <= 3.2
        labels = np.zeros(SHAPE, dtype=np.uint8)
        labels[a] = 1
        labels[b] = 2
        case = f"case_{index:03d}"
        write_labels_image(labels, reference / f"{case}.nii.gz", (1.0, 1.0, 1.0))
        for member, (low, high) in zip(members, blobs, strict=True):
            p = np.full((2, *SHAPE), 0.001, dtype=np.float32)
            p[0][a] = rng.uniform(0.85, 0.95, int(a.sum()))
            p[1][core] = rng.uniform(0.85, 0.95, int(core.sum()))
            p[1][b & ~core] = rng.uniform(0.26, 0.3, int((b & ~core).sum()))
            p[1][blob] = rng.uniform(low, high, int(blob.sum()))
            member[case] = p
    write_dataset_json(reference, LABELS, num_cases, regions_class_order=list(ORDER))
    folders = [
        write_prediction_folder(root / f"model_{m}", p, labels=LABELS, regions_class_order=ORDER)
        for m, p in enumerate(members)
    ]
    return folders, reference


def tune(folders, reference, **options):
    return tune_regions(folders, reference, region_dataset(folders, reference)[0], **options)


@settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_choice_follows_the_metric(seed, tmp_path_factory):
    """Dice keeps the shell and the blob; HD95 (lower is better) and the lesion F1 (higher is
    better) drop both, each step kept on its own metric's held-out gain."""
    folders, reference = planted(tmp_path_factory.mktemp("planted"), seed)
    by_dice = tune(folders, reference, cv_folds=4)
    assert by_dice.thresholds[1] < 0.26
    assert by_dice.metric == "dice"
    assert by_dice.metric_values is None
    for metric, higher in (("hd95", False), ("lesion_f1", True)):
        result = tune(folders, reference, cv_folds=4, metric=metric)
        assert result.metric == metric
        assert result.higher_is_better is higher
        assert 0.54 < result.thresholds[1] <= max(METRIC_THRESHOLDS), metric
        b_step = result.steps[0]
        assert b_step.channel == 1
        assert b_step.kept
        assert b_step.guarded is None
        assert result.metric_gain is not None
        assert result.metric_gain[1] > 0
        held_out, equal = result.metric_values["held_out"][1], result.metric_values["equal"][1]
        assert held_out < equal if metric == "hd95" else held_out > equal
        assert result.dice[1] < by_dice.dice[1]  # the price, in Dice, of the metric's choice
        assert result.thresholds[0] == 0.5  # region A: nothing to gain on any threshold
    assert result.spec().rules[0].threshold == result.thresholds[1]


def test_metric_values_are_the_objectives_on_whole_label_maps(tmp_path):
    """The compact data rebuilds each deployed label map exactly: its HD95 is evaluate's."""
    folders, reference = planted(tmp_path, 3, num_cases=3)
    spec = region_dataset(folders, reference)[0]
    data, _, _, _ = load_region_data(folders, reference, spec, volumes=True)
    scorer = hd95(data)
    setting = member_setting(2, 2, None).with_channel(1, np.array([0.5, 0.5]), 0.2)
    goodness = scorer.goodness(setting)
    assert goodness.shape == (3, 2)
    for case in range(3):
        volume = data.volumes[case]
        labels = volume.label_map(active_labels(data, setting.weights, setting.thresholds, case))
        expected = boundary_values(volume.reference, labels, [(1, 2), (2,)], volume.spacing,
                                   ["hd95"])["hd95"]  # fmt: skip
        np.testing.assert_allclose(-goodness[case], expected)
    # Dice from the whole label maps equals the compact Dice
    dice = RegionMetric(data, Objective("dice", nsd_tolerance=1.0, convention="nan",
                                        ignore_label=None))  # fmt: skip
    np.testing.assert_allclose(
        dice.goodness(setting), region_case_dice(data, setting.weights, setting.thresholds)
    )


def hd95(data):
    objective = Objective("hd95", nsd_tolerance=1.0, convention="nan", ignore_label=None)
    return RegionMetric(data, objective)


def test_a_preset_decides_too(tmp_path):
    """brats2023's lesion-wise Dice counts the blob as a false lesion (Dice 0 in its mean)."""
    folders, reference = planted(tmp_path, 7, num_cases=6)
    result = tune(folders, reference, cv_folds=3, metric="brats2023")
    assert result.higher_is_better
    assert result.thresholds[1] >= 0.55
    assert result.steps[0].kept


def test_the_guard_hands_a_region_to_the_best_member_on_the_metric(tmp_path):
    """Member 1 is sure of the blob (0.99), member 0 leaves it out at 0.5: every fused
    threshold the metric may choose (at most 0.7) keeps the blob, so only member 0 alone has
    B's HD95 right; the guard hands B to it (and A, which the blob enters as label 2, follows)."""
    folders, reference = planted(tmp_path, 1, blobs=((0.45, 0.5), (0.99, 1.0)))
    data = load_region_data(folders, reference, region_dataset(folders, reference)[0],
                            volumes=True)[0]  # fmt: skip
    scorer = hd95(data)
    members = [scorer.goodness(member_setting(2, 2, m)) for m in range(2)]
    outcome = tune_region_setting(data, np.array([[0.5, 0.5]]), 4, members, metric=scorer)
    b_step = next(step for step in outcome.steps if step.channel == 1)
    assert b_step.guarded == 0
    assert outcome.setting.weights[:, 1].tolist() == [1.0, 0.0]
    assert outcome.setting.thresholds[1] == 0.5
    assert any("(hd95); the region is taken from member 0" in w for w in outcome.warnings)
    # never below the best member on the metric beyond the noise, now
    diff = outcome.held_out[:, 1] - members[0][:, 1]
    assert np.nanmean(diff) >= -0.005


def test_metric_thresholds_start_at_the_dice_best_one():
    tried = metric_thresholds(0.13)
    assert tried[0] == 0.13
    assert set(tried) == {0.13, *METRIC_THRESHOLDS}
    assert metric_thresholds(0.5) == sorted(METRIC_THRESHOLDS, key=lambda t: (abs(t - 0.5), t))


def test_scoring_a_metric_needs_the_volumes(tmp_path):
    folders, reference = planted(tmp_path, 0, num_cases=2)
    data, _, _, _ = load_region_data(folders, reference, region_dataset(folders, reference)[0])
    objective = Objective("hd95", nsd_tolerance=1.0, convention="nan", ignore_label=None)
    with pytest.raises(ValueError, match=r"volumes=True"):
        RegionMetric(data, objective)


def test_command_reports_the_metric(tmp_path, capsys):
    folders, reference = planted(tmp_path, 5, num_cases=6)
    out = tmp_path / "tuned.json"
    args = ["-i", *map(str, folders), "-r", str(reference), "-o", str(out), "--cv-folds", "3"]
    assert main([*args, "--metric", "hd95"]) == 0
    printed = capsys.readouterr().out
    assert "hd95 (lower is better; the steps and guard decided on it)" in printed
    report = json.loads((tmp_path / "tuned_report.json").read_text())
    assert report["metric"] == "hd95"
    b = report["regions"][1]
    assert b["region"] == "B"
    assert b["threshold"] >= 0.55
    assert set(b["metric"]) == {"equal", *map(str, folders), "tuned"}
    assert b["held_out_metric_gain"] > 0
    assert "in_sample_metric" in b["step"]
    assert "in_sample_dice" not in b["step"]


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        pytest.param("hd96", "--metric must be one of dice, iou", id="unknown"),
        pytest.param("score:missing.json", "score file not found", id="no-score-file"),
    ],
)
def test_a_bad_metric_is_refused_before_any_output(tmp_path, capsys, metric, message):
    folders, reference = planted(tmp_path, 0, num_cases=2)
    out = tmp_path / "tuned.json"
    args = ["-i", *map(str, folders), "-r", str(reference), "-o", str(out), "--metric", metric]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
    assert not out.exists()
    assert not (tmp_path / "tuned_report.json").exists()


def test_label_models_refuse_a_metric_other_than_dice(cv, tmp_path, capsys):
    members, reference = cv
    out = tmp_path / "tuned.json"
    args = ["-i", *map(str, members), "-r", str(reference), "-o", str(out), "--metric", "hd95"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--metric must be dice for label (softmax) models; got 'hd95'" in err[0]
    assert "region-based models only" in err[0]
    assert not out.exists()
    assert not (tmp_path / "tuned_report.json").exists()
