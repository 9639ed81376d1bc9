"""The evaluation JSON read back: a round trip for every option, strict on every key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext._stats import nan_mean
from nnunet_ext.evaluate import evaluate_folder, write_evaluation
from nnunet_ext.evaluate.reader import load_evaluation
from nnunet_ext.io import InputError

from ._data import make_folders

SCORE = {
    "schema_version": 1,
    "name": "Dice and capped HD95",
    "terms": [{"metric": "dice", "weight": 0.5}, {"metric": "hd95", "weight": 0.5, "cap_mm": 20}],
    "label_weights": {"3": 2},
}
OPTIONS = {
    "default": {},
    "skip": {"empty": "skip"},
    "one": {"empty": "one"},
    "metrics": {"metrics": ("dice", "hd95", "assd", "nsd", "volume"), "nsd_tolerance": 2.0},
    "brats": {"metrics": ("dice", "hd95"), "convention": "brats"},
    "score": {"score": "SCORE"},
    "regions": {"labels": ["1", "1,2", "3"], "metrics": ("dice", "hd")},
    "surfel": {"metrics": ("dice", "nsd"), "nsd_definition": "surfel"},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("reader")
    pred, ref = make_folders(root, num_cases=4)
    (root / "score.json").write_text(json.dumps(SCORE))
    return pred, ref, root / "score.json"


def _written(folders: tuple[Path, Path, Path], options: dict, tmp_path: Path) -> Path:
    pred, ref, score = folders
    kwargs = {k: (score if v == "SCORE" else v) for k, v in options.items()}
    path, _ = write_evaluation(evaluate_folder(pred, ref, **kwargs), tmp_path / "e.json")
    return path


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_what_evaluate_writes_reads_back_to_the_same_json(folders, tmp_path, name):
    path = _written(folders, OPTIONS[name], tmp_path)
    evaluation = load_evaluation(path)
    again, _ = write_evaluation(evaluation, tmp_path / "again.json")
    assert json.loads(again.read_text()) == json.loads(path.read_text())


@pytest.mark.parametrize("name", ["default", "skip", "one", "metrics", "brats"])
def test_case_values_average_to_the_label_means(folders, tmp_path, name):
    evaluation = load_evaluation(_written(folders, OPTIONS[name], tmp_path))
    for j, label in enumerate(evaluation.labels):
        dice = nan_mean(evaluation.case_values("dice")[:, j], compact=True)
        assert dice == pytest.approx(label.dice, nan_ok=True, rel=1e-12)
        for key, mean in label.values.items():
            got = nan_mean(evaluation.case_values(key)[:, j], compact=True)
            assert got == pytest.approx(mean, nan_ok=True, rel=1e-12)
    if name == "skip":  # case_02 lacks label 3 in the reference: left out of the mean only
        assert np.isnan(evaluation.case_values("dice")[2, 2])
        assert not np.isnan(evaluation.cases[2].dice[2])
    with pytest.raises(ValueError, match="key must be dice, iou or one of"):
        evaluation.case_values("hd99")


def _edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


EDITS = {
    "unknown-top-key": (lambda d: d.update(extra=1), "extra must be absent"),
    "version": (lambda d: d.update(schema_version=2), "schema_version must be 1"),
    "missing-mean": (lambda d: d.pop("mean"), "mean must be present"),
    "unknown-label-key": (
        lambda d: d["mean"]["1"].update(Dise=0.5),
        r'mean."1".Dise must be absent',
    ),
    "label-not-a-label": (
        lambda d: d["mean"].update(LV=d["mean"].pop("1")),
        "mean.LV must be a label value or a region",
    ),
    "case-lacks-a-label": (
        lambda d: d["metric_per_case"][1]["metrics"].pop("2"),
        r'metric_per_case\[1\].metrics."2" must be present',
    ),
    "dice-text": (
        lambda d: d["metric_per_case"][0]["metrics"]["1"].update(Dice="high"),
        r"metric_per_case\[0\].Dice must be a number or null",
    ),
    "negative-count": (
        lambda d: d["metric_per_case"][0]["metrics"]["1"].update(TP=-1),
        r"metric_per_case\[0\].TP must be an integer >= 0",
    ),
    "unknown-metric": (lambda d: d.update(metrics=["dice", "hd99"]), "unknown metric 'hd99'"),
    "unknown-empty": (lambda d: d["conventions"].update(empty="zero"), "conventions.empty"),
    "column-without-metric": (
        lambda d: d["metric_per_case"][0]["metrics"]["1"].update(HD95=1.0),
        "HD95 must be absent",
    ),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_a_damaged_evaluation_is_one_error_naming_file_and_key(folders, tmp_path, name):
    change, message = EDITS[name]
    path = _edit(_written(folders, {}, tmp_path), change)
    with pytest.raises(InputError, match=message) as info:
        load_evaluation(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bad_score_spec_names_the_file(folders, tmp_path):
    path = _written(folders, OPTIONS["score"], tmp_path)
    _edit(path, lambda d: d["score"]["spec"]["terms"][0].update(metric="hd99"))
    with pytest.raises(ValueError, match=r"e.json: score.spec: terms\[0\]: metric must be one of"):
        load_evaluation(path)


def test_missing_file_and_not_json(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.json"):
        load_evaluation(tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text("{NaN}")
    with pytest.raises(InputError, match=r"bad\.json must be valid UTF-8 JSON"):
        load_evaluation(tmp_path / "bad.json")


def test_nsd_definition_reads_back_and_older_files_are_voxel(folders, tmp_path):
    path = _written(folders, OPTIONS["surfel"], tmp_path)
    assert load_evaluation(path).nsd_definition == "surfel"
    older = _edit(path, lambda d: d["conventions"].pop("nsd_definition"))
    assert load_evaluation(older).nsd_definition == "voxel"
    bad = _edit(path, lambda d: d["conventions"].update(nsd_definition="gandlf"))
    with pytest.raises(InputError, match=r"conventions\.nsd_definition"):
        load_evaluation(bad)
