"""The spec schema: version 2 with rules, strict at every level, version 1 still read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnunet_ext.ensemble import EnsembleSpec, ensemble_folders, fuse_probabilities
from nnunet_ext.ensemble.channels import weight_matrix
from nnunet_ext.io import LabelSpec, read_labels
from nnunet_ext.io.errors import InputError

DATA = Path(__file__).parent / "data"
LABELS = LabelSpec(labels={"background": 0, "myocardium": 1, "LV": 2, "RV": 3})


def v2(**extra):
    return {"schema_version": 2, "members": [{"path": "a"}, {"path": "b", "name": "3d"}], **extra}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {**v2(), "comment": 1},
            "spec: comment must be a known key (allowed here: schema_version, members, rules); "
            "got 'comment'.",
            id="top-level",
        ),
        pytest.param(
            {"schema_version": 1, "members": [{"path": "a"}], "rules": []},
            "spec: rules must be a known key (allowed here: schema_version, members); got 'rules'",
            id="rules-in-version-1",
        ),
        pytest.param(
            {"schema_version": 2, "members": [{"path": "a"}, {"path": "b", "wieght": 1}]},
            "spec: members[1].wieght must be a known key (allowed here: path, weight, "
            "label_weights, name); got 'wieght'.",
            id="member",
        ),
        pytest.param(
            {"schema_version": 2, "members": [{"path": "a"}, {"label_weights": {"3": "x"}}]},
            "spec: members[1].path must be a folder path (string); got None.",
            id="member-path",
        ),
        pytest.param(
            {
                "schema_version": 2,
                "members": [{"path": "a"}, {"path": "b", "label_weights": {"3": "x"}}],
            },
            "spec: members[1].label_weights.\"3\" must be a number; got 'x'.",
            id="label-weight",
        ),
        pytest.param(
            v2(rules=[{"label": "RV", "from": 0, "priority": 1}]),
            "spec: rules[0].priority must be a known key (allowed here: label, from, scale)",
            id="rule-key",
        ),
        pytest.param(
            v2(rules=[{"label": "RV", "from": "2d"}]),
            "spec: rules[0].from must be a member index or name (0, 1, '3d'); got '2d'.",
            id="rule-member",
        ),
        pytest.param(
            v2(rules=[{"label": "RV", "scale": 0}]),
            "spec: rules[0].scale must be a finite number > 0; got 0.",
            id="rule-scale",
        ),
        pytest.param(
            v2(rules=[{"label": "RV", "scale": 2, "from": 0}]),
            "spec: rules[0] must be exactly one of 'from', 'scale'",
            id="rule-both",
        ),
        pytest.param(
            v2(rules=[{"label": "RV", "from": 0}, {"label": "RV", "from": 1}]),
            "spec: rules[1] must be the only 'from' rule of label 'RV'; got a second one.",
            id="rule-twice",
        ),
        pytest.param(
            {"schema_version": 4, "members": [{"path": "a"}]},
            "spec: schema_version must be 1, 2 or 3; got 4. Write the spec with this version",
            id="version",
        ),
    ],
)
def test_strict_schema_names_the_key_path_and_the_allowed_keys(data, message):
    with pytest.raises(InputError) as error:
        EnsembleSpec.from_dict(data)
    assert isinstance(error.value, ValueError)
    assert message in str(error.value)


def test_v2_roundtrip_with_rules_and_names(tmp_path):
    spec = EnsembleSpec.from_weights(
        [tmp_path / "a", tmp_path / "b"],
        weights=[0.3, 0.7],
        label_weights=[{3: 1.0}, {"RV": 0.0}],
        rules=[{"label": "RV", "from": "2d"}, {"label": 1, "scale": 1.25}],
        names=["2d", None],
    )
    assert [r.kind for r in spec.rules] == ["from", "scale"]
    spec.save(tmp_path / "spec.json")
    raw = json.loads((tmp_path / "spec.json").read_text())
    assert raw["schema_version"] == 2
    assert raw["rules"] == [{"label": "RV", "from": 0}, {"label": "1", "scale": 1.25}]
    assert raw["members"][0]["name"] == "2d"
    assert EnsembleSpec.load(tmp_path / "spec.json") == spec


@pytest.mark.parametrize("name", ["spec_v1_tuned.json", "spec_v1_named.json"])
def test_specs_written_by_0_1_load_and_fuse_identically(name, make_folders, tmp_path):
    """The files in tests/ensemble/data were written by nnunet_ext 0.1.0's EnsembleSpec.save."""
    shutil.copy(DATA / name, tmp_path / name)
    raw = json.loads((tmp_path / name).read_text())
    assert raw["schema_version"] == 1
    folders = make_folders(2, cases=("c0",), names=("pred_2d", "pred_3d_fullres"))
    spec = EnsembleSpec.load(tmp_path / name)
    assert spec.rules == ()
    # the weight matrix of the 0.1 reader: global weight, then the per-label overrides
    expected = np.array([[m.get("weight", 1.0)] * 4 for m in raw["members"]])
    for row, member in enumerate(raw["members"]):
        for key, value in member.get("label_weights", {}).items():
            expected[row, {"RV": 3, "LV": 2}.get(key, None) or int(key)] = value
    np.testing.assert_array_equal(weight_matrix(spec, LABELS), expected)
    ensemble_folders(None, tmp_path / "out", spec=tmp_path / name)
    members = [np.load(f / "c0.npz")["probabilities"] for f in folders]
    got = read_labels(tmp_path / "out" / "c0.nii.gz").array
    np.testing.assert_array_equal(got, fuse_probabilities(members, expected).argmax(axis=0))
    # written back, it is a version 2 file without rules that reads the same
    spec.save(tmp_path / "again.json")
    assert EnsembleSpec.load(tmp_path / "again.json") == spec


def test_threshold_rules_are_version_3_and_strict(tmp_path):
    spec = EnsembleSpec.from_dict(
        {
            "schema_version": 3,
            "members": [{"path": "a"}],
            "rules": [{"label": "ET", "threshold": 0.4}],
        }
    )
    assert spec.rules[0].kind == "threshold"
    assert spec.to_dict()["schema_version"] == 3
    assert EnsembleSpec.from_dict(spec.to_dict()) == spec
    # without thresholds the spec stays a version 2 file, readable by older versions
    assert EnsembleSpec.from_dict(v2()).to_dict()["schema_version"] == 2
    with pytest.raises(InputError, match=r"rules\[0\].threshold must be a known key"):
        EnsembleSpec.from_dict(v2(rules=[{"label": "ET", "threshold": 0.4}]))


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, True, "0.4"])
def test_threshold_must_be_in_the_open_unit_interval(value):
    with pytest.raises(InputError, match=r"rules\[0\].threshold must be a number in \(0, 1\)"):
        EnsembleSpec.from_dict(
            {
                "schema_version": 3,
                "members": [{"path": "a"}],
                "rules": [{"label": 1, "threshold": value}],
            }
        )


def test_a_rule_has_exactly_one_kind():
    with pytest.raises(InputError, match="exactly one of 'from', 'scale', 'threshold'"):
        EnsembleSpec.from_dict(
            {
                "schema_version": 3,
                "members": [{"path": "a"}],
                "rules": [{"label": 1, "threshold": 0.3, "scale": 2}],
            }
        )


def test_version_3_carries_qc_thresholds_and_version_2_stays_2(tmp_path):
    from nnunet_ext.qc import QcThresholds

    plain = EnsembleSpec.from_dict(v2(), base_dir=tmp_path)
    assert plain.qc is None
    assert plain.to_dict()["schema_version"] == 2
    data = {
        **v2(),
        "schema_version": 3,
        "qc": {"min_member_dice": 0.5, "volume_ranges": {"RV": [1, 2]}},
    }
    spec = EnsembleSpec.from_dict(data, base_dir=tmp_path)
    assert spec.qc == QcThresholds(min_member_dice=0.5, volume_ranges={"RV": (1.0, 2.0)})
    assert spec.to_dict()["schema_version"] == 3
    spec.save(tmp_path / "spec.json")
    assert EnsembleSpec.load(tmp_path / "spec.json") == spec
    assert spec.with_input_dirs([tmp_path / "x", tmp_path / "y"]).qc == spec.qc


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param({**v2(), "qc": {}}, r"qc must be a known key", id="qc-in-version-2"),
        pytest.param(
            {**v2(), "schema_version": 3, "qc": {"min_dice": 1}},
            r"qc\.min_dice must be absent",
            id="key",
        ),
    ],
)
def test_qc_section_is_strict(data, match):
    with pytest.raises(InputError, match=match):
        EnsembleSpec.from_dict(data)
