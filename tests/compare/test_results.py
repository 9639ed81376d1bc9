"""The comparison's JSON: written strict, read back equal, unknown or missing keys refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_ext.compare import compare_evaluations, load_comparison, write_comparison
from nnunet_ext.io import InputError

from ._data import write_versions


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("results")
    files = write_versions(
        root, [0.05, 0.08, 0.03], num_cases=4, extra=["--metrics", "dice", "hd95"]
    )
    comparison = compare_evaluations(files, samples=200)
    (path,) = write_comparison(comparison, json_path=root / "comparison.json")
    return path, comparison


def test_the_json_reads_back_to_the_same_comparison(written):
    path, comparison = written
    again = load_comparison(path)
    # NaN != NaN: compare the JSON forms (null stands for NaN in both)
    assert json.dumps(again.to_json(), allow_nan=True) == json.dumps(
        comparison.to_json(), allow_nan=True
    )
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    assert data["bootstrap"]["samples"] == 200
    assert data["bootstrap"]["seed"] == 0
    assert len(data["ranking"]["standings"]) == 3 * 3 + 1
    assert "NaN" not in path.read_text()


def _damaged(path: Path, tmp_path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    out = tmp_path / "damaged.json"
    out.write_text(json.dumps(data))
    return out


EDITS = {
    "unknown-top": (lambda d: d.update(notes="x"), "notes must be absent"),
    "version-2": (lambda d: d.update(schema_version=2), "schema_version must be 1"),
    "unknown-in-difference": (
        lambda d: d["differences"][0].update(p_value=0.01),
        r"differences\[0\]\.p_value must be absent",
    ),
    "missing-interval": (
        lambda d: d["differences"][1].pop("interval"),
        r"differences\[1\]\.interval must be present",
    ),
    "short-interval": (
        lambda d: d["differences"][1].update(interval=[0.1]),
        r"differences\[1\]\.interval must be a list of 2 numbers",
    ),
    "bad-verdict": (
        lambda d: d["differences"][0].update(verdict="B wins"),
        r"differences\[0\]\.verdict must be one of B better",
    ),
    "unknown-version": (
        lambda d: d["differences"][0].update(b="v9"),
        r"differences\[0\]\.b must be a version name",
    ),
    "ranks-per-version": (
        lambda d: d["ranking"]["standings"][0].update(rank=[1, 2]),
        r"standings\[0\]\.rank must be a list of 3 numbers",
    ),
    "ignore-label-text": (
        lambda d: d["conventions"].update(ignore_label="x"),
        r"conventions\.ignore_label must be an integer",
    ),
    "left-out-unknown": (
        lambda d: d["cases"]["left_out"].update(v7=[]),
        r"cases\.left_out\.v7 must be absent",
    ),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_a_damaged_comparison_is_one_error_naming_file_and_key(written, tmp_path, name):
    change, message = EDITS[name]
    path = _damaged(written[0], tmp_path, change)
    with pytest.raises(InputError, match=message) as info:
        load_comparison(path)
    assert str(info.value).startswith(str(path))
