"""Evaluations that were not made alike are refused, one line each (issue 31, acceptance 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.compare.inputs import compared_column, read_versions, version_names

from ._data import evaluate, write_versions


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("inputs")
    write_versions(base, [0.05, 0.08], num_cases=5)
    (base / "score.json").write_text(
        '{"schema_version": 1, "terms": [{"metric": "dice", "weight": 1}]}'
    )
    return base


#: name -> (evaluate options of B, what the error says); A is evaluated with the defaults.
MISMATCHES = {
    "labels": (("--labels", "1", "2"), r"labels must be those of .*v0\.json \(\['1', '2', '3'\]\)"),
    "metrics": (("--metrics", "dice", "hd95"), r"metrics must be those of"),
    "empty": (("--empty", "one"), r"conventions must be those of .*'empty': 'nan'"),
    "convention": (("--convention", "brats"), r"conventions must be .*'convention': 'nan'"),
    "score": (("--score", "{root}/score.json"), r"score file must be those of"),
}


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_an_evaluation_made_otherwise_is_one_line_naming_it(root, tmp_path, name):
    extra, message = MISMATCHES[name]
    b = evaluate(root, 1, tmp_path / "b.json", *(e.format(root=root) for e in extra))
    with pytest.raises(ValueError, match=message) as info:
        read_versions([root / "v0.json", b])
    text = str(info.value)
    assert text.startswith(f"{b}: ")
    assert "\n" not in text
    assert "Evaluate both with the same" in text


def test_other_conventions_with_the_same_metrics_are_refused(root, tmp_path):
    a = evaluate(root, 0, tmp_path / "a.json", "--metrics", "dice", "hd95")
    b = evaluate(root, 1, tmp_path / "b.json", "--metrics", "dice", "hd95", "--convention", "brats")
    with pytest.raises(ValueError, match=r"conventions must be those of .*'convention': 'nan'"):
        read_versions([a, b])


def test_other_nsd_definitions_are_refused(root, tmp_path):
    a = evaluate(root, 0, tmp_path / "a.json", "--metrics", "dice", "nsd")
    b = evaluate(
        root, 1, tmp_path / "b.json", "--metrics", "dice", "nsd", "--nsd-definition", "surfel"
    )
    with pytest.raises(
        ValueError, match=r"NSD definition must be those of .*\(voxel\); got surfel"
    ):
        read_versions([a, b])


def test_missing_cases_are_refused_unless_common_cases(root, tmp_path):
    folder = tmp_path / "subset"
    folder.mkdir()
    for path in (root / "v1").iterdir():
        if path.name != "case_003.nii.gz":
            (folder / path.name).symlink_to(path)
    b = tmp_path / "b.json"
    from nnunet_ext.cli import main

    argv = ["-q", "evaluate", "-i", str(folder), "-r", str(root / "ref"), "--json", str(b)]
    assert main([*argv, "--allow-missing", "--dataset-json", str(root / "ref/dataset.json")]) == 0
    with pytest.raises(
        ValueError, match=r"b\.json: cases must be those of .*1 missing \(case_003\) and 0 extra"
    ) as info:
        read_versions([root / "v0.json", b])
    assert "common_cases=True to compare the 4 cases" in str(info.value)
    versions = read_versions([root / "v0.json", b], common_cases=True)
    assert versions.cases == ("case_000", "case_001", "case_002", "case_004")
    assert versions.left_out == {"v0": ["case_003"], "b": []}
    assert versions.values.shape == (2, 4, 3, 2)


def test_aligned_values_follow_the_case_names_not_the_file_order(root):
    versions = read_versions([root / "v0.json", root / "v1.json"])
    assert versions.names == ("v0", "v1")
    assert versions.metrics == ("Dice", "IoU")
    assert versions.higher_is_better.tolist() == [True, True]
    assert versions.label_names == ("myocardium", "LV", "RV")
    assert np.all(versions.values[1, :, :, 0] <= 1.0)


def test_fewer_than_two_files_and_missing_files(root, tmp_path):
    with pytest.raises(ValueError, match="evaluations must list at least two evaluation files"):
        read_versions([root / "v0.json"])
    with pytest.raises(FileNotFoundError, match=r"nothing\.json"):
        read_versions([root / "v0.json", tmp_path / "nothing.json"])


def test_names_default_to_distinct_stems():
    assert version_names([Path("x/a.json"), Path("x/a.json")]) == ("1:a", "2:a")
    assert version_names([Path("a.json"), Path("b.json")], ["A", "B"]) == ("A", "B")
    assert compared_column("volume_diff_rel") == ("|VolumeDiff_rel|", False)
