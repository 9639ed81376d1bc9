"""The dataset.json owner: nnU-Net's LabelManager semantics, one InputError for anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.io import InputError, LabelSpec, load_dataset_json, load_plans


def _write(tmp_path: Path, data: Any, name: str = "dataset.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_single_value_list_is_a_label_not_a_region() -> None:
    spec = LabelSpec.from_dataset_json({"labels": {"background": 0, "x": [1], "y": 2}})
    assert not spec.has_regions
    assert spec.labels == {"background": 0, "x": 1, "y": 2}
    assert spec.defined == [1, 2]


def test_regions_need_regions_class_order() -> None:
    data = {"labels": {"background": 0, "whole": [1, 2], "core": 2}}
    with pytest.raises(InputError, match=r"dataset\.json: regions_class_order must be a list of 2"):
        LabelSpec.from_dataset_json(data)
    spec = LabelSpec.from_dataset_json({**data, "regions_class_order": [1, 2]})
    assert spec.has_regions
    assert spec.defined == [(1, 2), 2]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param([1, 2], r"d\.json must be a JSON object; got a list", id="list"),
        pytest.param({}, r"d\.json: labels must be present; got nothing", id="no-labels"),
        pytest.param({"labels": []}, r"labels must be a non-empty object", id="labels-list"),
        pytest.param(
            {"labels": {"background": 0, "x": "x"}},
            r"labels\.x must be an integer >= 0 .*got the string 'x'",
            id="label-x",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": True}}, r"labels\.x must be an integer", id="bool"
        ),
        pytest.param(
            {"labels": {"background": 0, "x": -1}},
            r"labels\.x must be an integer >= 0",
            id="negative",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": 10**30}},
            r"labels\.x must be at most 65535 \(label maps are uint8 or uint16\)",
            id="huge",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": [1, "a"]}},
            r"labels\.x\[1\] must be an integer",
            id="list-item",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": []}},
            r"labels\.x must be a non-empty list",
            id="empty-list",
        ),
        pytest.param(
            {"labels": {"x": 1}},
            r"labels\.background must be present \(value 0\)",
            id="no-background",
        ),
        pytest.param(
            {"labels": {"background": 1, "x": 2}},
            r"labels\.background must be 0",
            id="background-1",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": 1, "ignore": 5}},
            r"labels\.ignore must be the largest label \+ 1 \(2\)",
            id="ignore",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": 1}, "file_ending": 3},
            r"file_ending must be a string starting with '\.'.*got the number 3",
            id="file-ending-int",
        ),
        pytest.param(
            {"labels": {"background": 0, "x": 1}, "file_ending": "nii.gz"},
            r"file_ending must be a string starting with",
            id="file-ending-dot",
        ),
        pytest.param(
            {"labels": {"background": 0, "r": [1, 2]}, "regions_class_order": [1, 2]},
            r"regions_class_order must be one entry per region \(1\); got 2 entries",
            id="order-length",
        ),
    ],
)
def test_bad_dataset_json_is_one_input_error(data: Any, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        LabelSpec.from_dataset_json(data, source="d.json")
    assert "\n" not in str(info.value)


def test_load_dataset_json_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match=r"bad\.json must be valid UTF-8 JSON; got a parse error"):
        load_dataset_json(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text('{"labels": {"background": 0, "x": NaN}}')
    with pytest.raises(
        InputError, match=r"nan\.json must be valid UTF-8 JSON.*NaN is not valid JSON"
    ):
        load_dataset_json(tmp_path / "nan.json")
    (tmp_path / "latin.json").write_bytes(b'{"labels": {"\xe9": 1}}')
    with pytest.raises(InputError, match=r"latin\.json must be valid UTF-8 JSON"):
        load_dataset_json(tmp_path / "latin.json")
    with pytest.raises(FileNotFoundError):
        load_dataset_json(tmp_path / "absent.json")


def test_resolve_lists_the_defined_labels() -> None:
    spec = LabelSpec.from_dataset_json(
        {"labels": {"background": 0, "LV": 1, "RV": 2}}, source="ds.json"
    )
    assert spec.resolve_all(["RV", "1", "1,2"]) == [2, 1, (1, 2)]
    with pytest.raises(
        InputError,
        match=r"labels must be a label defined in ds\.json \(1 \(LV\), 2 \(RV\)\); got 9",
    ):
        spec.resolve(9)
    with pytest.raises(InputError, match=r"got 'Rv'.*Did you mean 'RV'"):
        spec.resolve("Rv")
    with pytest.raises(InputError, match=r"got '0'"):
        spec.resolve("0")
    with pytest.raises(InputError, match=r"each label once"):
        spec.resolve_all([1, "LV"])


def test_plans_json_owner(tmp_path: Path) -> None:
    assert load_plans(_write(tmp_path, {"image_reader_writer": "SimpleITKIO"}, "plans.json"))
    with pytest.raises(
        InputError, match=r"p\.json: image_reader_writer must be one of .*got the string 'Nope'"
    ):
        load_plans(_write(tmp_path, {"image_reader_writer": "Nope"}, "p.json"))
    with pytest.raises(
        InputError,
        match=r"q\.json must be a JSON object \(\{\.\.\.\}\) at the top level; got a list",
    ):
        load_plans(_write(tmp_path, [], "q.json"))
    with pytest.raises(InputError, match=r"r\.json: configurations\.\"3d\" must be a JSON object"):
        load_plans(
            _write(
                tmp_path,
                {"image_reader_writer": "SimpleITKIO", "configurations": {"3d": 1}},
                "r.json",
            )
        )


_values = st.integers(0, 6)
_entries = st.one_of(_values, st.lists(_values, min_size=1, max_size=3))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3), _entries, min_size=1, max_size=5))
def test_same_labels_and_regions_as_nnunets_label_manager(raw: dict[str, Any]) -> None:
    """Oracle: nnU-Net's own LabelManager on every dataset.json it accepts."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = {"background": 0, **raw}
    has_regions = any(isinstance(v, list) and len(v) > 1 for v in labels.values())
    regions = [
        v for k, v in labels.items() if not (v == 0 or (isinstance(v, list) and set(v) == {0}))
    ]
    order = list(range(1, len(regions) + 1)) if has_regions else None
    data: dict[str, Any] = {"labels": labels}
    if order is not None:
        data["regions_class_order"] = order
    try:
        manager = LabelManager(labels, order)
    except (AssertionError, RuntimeError):
        return
    spec = LabelSpec.from_dataset_json(data)
    assert spec.has_regions == manager.has_regions
    flat = sorted(
        {v for val in spec.labels.values() for v in (val if isinstance(val, tuple) else (val,))}
    )
    assert flat == [int(v) for v in manager.all_labels]
    if manager.has_regions:
        assert spec.defined == [
            tuple(r) if isinstance(r, (list, tuple)) else r for r in manager.all_regions
        ]


def test_file_ending_must_be_one_nnunet_reads() -> None:
    with pytest.raises(InputError, match=r"file_ending must be a file ending nnU-Net's readers"):
        LabelSpec.from_dataset_json(
            {"labels": {"background": 0, "x": 1}, "file_ending": ".nii.gzx"}
        )
    for ending in (".nii.gz", ".nrrd", ".mha", ".png", ".tif", ".tiff", ".nii", ".bmp", ".gipl"):
        assert (
            LabelSpec.from_dataset_json(
                {"labels": {"background": 0, "x": 1}, "file_ending": ending}
            ).file_ending
            == ending
        )
