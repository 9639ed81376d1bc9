"""Per-label rules: "scale" and "from", on arrays, streamed, and through folders/CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnunet_ext.ensemble import (
    EnsembleSpec,
    LabelRules,
    apply_label_rules,
    ensemble_folders,
    fuse_probabilities,
    fuse_to_labels,
    probabilities_to_labels,
)
from nnunet_ext.ensemble.fusion import FusionAccumulator, normalize_weights
from nnunet_ext.io import read_labels


def reference_rules(fused, scale, take, member_maps):
    """The definition, voxel by voxel, in float64 Python."""
    c, n = fused.shape[0], fused[0].size
    flat = fused.reshape(c, -1).astype(np.float64)
    taken = {label for label, _ in take}
    out = np.zeros(n, dtype=np.int64)
    for v in range(n):
        claimed = [label for label, m in take if member_maps[m].reshape(-1)[v] == label]
        if claimed:
            out[v] = claimed[0]
            continue
        scores = [
            -np.inf if k in taken else np.float32(flat[k, v]) * np.float32(scale[k])
            for k in range(c)
        ]
        out[v] = int(np.argmax(scores))
    return out.reshape(fused.shape[1:])


def softmax(rng, shape):
    logits = rng.normal(0, 2, size=shape).astype(np.float32)
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_classes=st.integers(2, 5),
    num_members=st.integers(1, 3),
    data=st.data(),
)
def test_rules_match_their_definition(seed, num_classes, num_members, data):
    rng = np.random.default_rng(seed)
    members = [softmax(rng, (num_classes, 3, 7)) for _ in range(num_members)]
    if seed % 2:  # coarse values: exact ties, which go to the lower label
        members = [(np.round(p * 4) / 4).astype(np.float32) for p in members]
    scale = data.draw(
        st.lists(st.sampled_from([1.0, 0.5, 1.5, 3.0]), min_size=num_classes, max_size=num_classes)
    )
    labels = data.draw(
        st.lists(st.integers(0, num_classes - 1), unique=True, max_size=min(3, num_classes - 1))
    )
    take = [(label, data.draw(st.integers(0, num_members - 1))) for label in labels]
    rules = LabelRules.build(num_classes, scale=dict(enumerate(scale)), take=take)
    maps = {m: probabilities_to_labels(p) for m, p in enumerate(members)}
    fused = fuse_probabilities(members)
    got = apply_label_rules(fused, rules, maps)
    np.testing.assert_array_equal(got, reference_rules(fused, scale, take, maps))
    np.testing.assert_array_equal(fuse_to_labels(members, rules=rules), got)
    # a from rule's label is exactly where its member says it, minus what earlier rules claim
    for index, (label, member) in enumerate(take):
        earlier = np.zeros(got.shape, dtype=bool)
        for other, m in take[:index]:
            earlier |= maps[m] == other
        np.testing.assert_array_equal((got == label) & ~earlier, (maps[member] == label) & ~earlier)


@settings(max_examples=40, deadline=None)
@given(
    probabilities=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5)),
        elements=st.floats(0, 1, width=32),
    )
)
def test_no_rules_and_unit_scales_are_the_plain_argmax(probabilities):
    plain = probabilities.argmax(axis=0)
    c = probabilities.shape[0]
    np.testing.assert_array_equal(apply_label_rules(probabilities, LabelRules()), plain)
    unit = LabelRules.build(c, scale=dict.fromkeys(range(c), 1.0))
    assert unit.is_identity
    np.testing.assert_array_equal(probabilities_to_labels(probabilities, rules=unit), plain)


def test_streamed_member_argmax_equals_np_argmax_in_any_chunk_order(rng):
    shape = (4, 3, 5, 6)
    members = [softmax(rng, shape) for _ in range(3)]
    members[2] = (np.round(members[2] * 4) / 4).astype(np.float32)  # many exact ties
    weights = normalize_weights([1, 2, 3], num_members=3, num_classes=shape[0])
    acc = FusionAccumulator(shape, weights=weights, num_members=3, argmax_members=[0, 2])
    size = members[0].size
    for m, member in enumerate(members):
        flat = member.reshape(-1)
        starts = list(range(0, size, 17))
        if m == 2:
            starts.reverse()  # chunks of one member in any order
        for start in starts:
            acc.add(m, start, flat[start : start + 17])
    maps = acc.member_labels()
    assert sorted(maps) == [0, 2]
    for m in (0, 2):
        assert maps[m].dtype == np.uint8
        np.testing.assert_array_equal(maps[m], members[m].argmax(axis=0))
    np.testing.assert_array_equal(acc.result(), fuse_probabilities(members, [1, 2, 3]))


def test_rule_errors():
    fused = np.full((3, 2), 1 / 3, dtype=np.float32)
    with pytest.raises(ValueError, match="member_labels must hold member 1"):
        apply_label_rules(fused, LabelRules.build(3, take=[(2, 1)]), {0: np.zeros(2, np.uint8)})
    with pytest.raises(ValueError, match=r"must have the spatial shape \(2,\)"):
        apply_label_rules(fused, LabelRules.build(3, take=[(2, 0)]), [np.zeros(3, np.uint8)])
    with pytest.raises(ValueError, match="take must name each label once"):
        LabelRules.build(3, take=[(2, 0), (2, 1)])
    with pytest.raises(ValueError, match="at least one of the 2 labels to the fusion"):
        LabelRules.build(2, take=[(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="region-based"):
        probabilities_to_labels(
            fused, regions_class_order=[1, 2, 3], rules=LabelRules.build(3, scale={1: 2})
        )


def test_folder_ensemble_applies_rules_like_the_array_function(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0", "c1"), names=("pred_2d", "pred_3d_fullres"))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "schema_version": 2,
                "members": [
                    {"path": "pred_2d", "weight": 0.3, "name": "2d"},
                    {"path": "pred_3d_fullres", "weight": 0.7, "label_weights": {"LV": 2}},
                ],
                "rules": [
                    {"label": "RV", "from": "2d"},
                    {"label": "1", "from": 1},
                    {"label": "LV", "scale": 1.7},
                ],
            }
        )
    )
    ensemble_folders(None, tmp_path / "out", spec=spec_file, num_workers=2)
    rules = LabelRules.build(4, scale={2: 1.7}, take=[(3, 0), (1, 1)])
    weights = np.array([[0.3, 0.3, 0.3, 0.3], [0.7, 0.7, 2.0, 0.7]])
    for case in ("c0", "c1"):
        members = [np.load(f / f"{case}.npz")["probabilities"] for f in folders]
        expected = fuse_to_labels(members, weights, rules)
        got = read_labels(tmp_path / "out" / f"{case}.nii.gz").array
        np.testing.assert_array_equal(got, expected)
        # label 3 ("RV") is exactly the 2d member's RV
        np.testing.assert_array_equal(got == 3, members[0].argmax(axis=0) == 3)
    # other rules into the same folder: refused, not mixed
    spec = EnsembleSpec.load(spec_file)
    changed = EnsembleSpec(spec.members, spec.rules[:1])
    with pytest.raises(FileExistsError, match="other inputs or weights"):
        ensemble_folders(None, tmp_path / "out", spec=changed)


def test_unknown_rule_label_is_named_before_any_output(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    spec = EnsembleSpec.from_weights(folders, rules=[{"label": "Rv", "from": 0}])
    with pytest.raises(ValueError, match=r"rules\[0\] of the spec name label 'Rv'.*'RV'"):
        ensemble_folders(None, tmp_path / "out", spec=spec)
    assert not (tmp_path / "out").exists()


def test_from_rule_needs_the_member_of_each_case(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0", "c1"))
    (folders[1] / "c1.npz").unlink()
    (folders[1] / "c1.pkl").unlink()
    spec = EnsembleSpec.from_weights(folders, rules=[{"label": 3, "from": 1}])
    with pytest.raises(ValueError, match="from rule for label 3 needs member 1"):
        ensemble_folders(None, tmp_path / "out", spec=spec, allow_missing=True)


# --- region (sigmoid) models: per-region thresholds, from rules -------------------------------

REGION_LABELS = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}


def reference_regions(fused, order, thresholds):
    """nnU-Net's convert_probabilities_to_segmentation with a threshold per channel."""
    out = np.zeros(fused.shape[1:], dtype=np.int64)
    for channel, value in enumerate(order):
        out[fused[channel] > np.float32(thresholds[channel])] = value
    return out


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    thresholds=st.lists(st.floats(0.01, 0.99), min_size=3, max_size=3),
)
def test_region_thresholds_match_their_definition(seed, thresholds):
    fused = np.random.default_rng(seed).random((3, 4, 5), dtype=np.float32)
    fused[:, 0, 0] = np.float32(thresholds[0])  # a voxel exactly on a threshold stays out
    rules = LabelRules.build(3, thresholds=dict(enumerate(thresholds)))
    got = probabilities_to_labels(fused, regions_class_order=[1, 2, 3], rules=rules)
    assert np.array_equal(got, reference_regions(fused, [1, 2, 3], thresholds))
    # 0.5 everywhere is no rule at all: nnU-Net's decision
    plain = LabelRules.build(3, thresholds={0: 0.5, 2: 0.5})
    assert plain.is_identity
    assert np.array_equal(
        probabilities_to_labels(fused, regions_class_order=[1, 2, 3], rules=plain),
        reference_regions(fused, [1, 2, 3], [0.5] * 3),
    )


@pytest.mark.parametrize(
    ("build", "match"),
    [
        pytest.param({"thresholds": {1: 1.0}}, r"threshold of class 1 must be in \(0, 1\)", id="1"),
        pytest.param({"thresholds": {0: 0.0}}, r"threshold of class 0 must be in \(0, 1\)", id="0"),
        pytest.param({"thresholds": {3: 0.4}}, "thresholds names class 3", id="class"),
    ],
)
def test_region_threshold_errors(build, match):
    with pytest.raises(ValueError, match=match):
        LabelRules.build(3, **build)


def test_thresholds_are_refused_on_softmax_probabilities():
    fused = np.full((2, 3), 0.5, dtype=np.float32)
    with pytest.raises(ValueError, match="thresholds apply to region-based"):
        apply_label_rules(fused, LabelRules.build(2, thresholds={1: 0.3}))


def write_region_folders(tmp_path, rng, num_members=2, cases=("c0", "c1")):
    from nnunet_ext.synthetic import write_prediction_folder

    folders = []
    for m in range(num_members):
        probs = {c: rng.random((3, 3, 6, 5), dtype=np.float32) for c in cases}
        folders.append(
            write_prediction_folder(
                tmp_path / f"r{m}", probs, labels=REGION_LABELS, regions_class_order=[1, 2, 3]
            )
        )
    return folders


def test_region_spec_thresholds_weights_and_from_in_folder_ensemble(tmp_path, rng):
    folders = write_region_folders(tmp_path, rng)
    spec = EnsembleSpec.from_weights(
        folders,
        label_weights=[{"core": 3.0}, {}],
        rules=[{"label": "enhancing", "threshold": 0.35}, {"label": "whole", "from": 1}],
    )
    spec.save(tmp_path / "spec.json")
    assert json.loads((tmp_path / "spec.json").read_text())["schema_version"] == 3
    summary = ensemble_folders(None, tmp_path / "out", spec=tmp_path / "spec.json")
    # from: the region is member 1's own decision (weight 1 on it), thresholds in float32
    assert summary.weights == ((0.0, 3.0, 1.0), (1.0, 1.0, 1.0))
    for case in ("c0", "c1"):
        p = [np.load(f / f"{case}.npz")["probabilities"] for f in folders]
        fused = fuse_probabilities(p, np.array(summary.weights))
        assert np.array_equal(fused[0], p[1][0])  # exactly member 1's whole-tumour channel
        expected = reference_regions(fused, [1, 2, 3], [0.5, 0.5, 0.35])
        assert np.array_equal(read_labels(tmp_path / "out" / f"{case}.nii.gz").array, expected)


@pytest.mark.parametrize(
    ("rules", "match"),
    [
        pytest.param([{"label": "core", "scale": 2}], "a scale applies to softmax", id="scale"),
        pytest.param(
            [{"label": "core", "threshold": 0.3}, {"label": "2", "from": 0}],
            "region '2' has a threshold or from rule already",
            id="twice",
        ),
        pytest.param([{"label": "tumour", "threshold": 0.3}], "'tumour'", id="unknown"),
    ],
)
def test_region_rule_errors_before_any_output(tmp_path, rng, rules, match):
    folders = write_region_folders(tmp_path, rng, cases=("c0",))
    spec = EnsembleSpec.from_weights(folders, rules=rules)
    with pytest.raises(ValueError, match=match):
        ensemble_folders(None, tmp_path / "out", spec=spec)
    assert not (tmp_path / "out").exists()


def test_threshold_rule_on_a_softmax_model_is_refused(make_folders, tmp_path):
    folders = make_folders(2, cases=("c0",))
    spec = EnsembleSpec.from_weights(folders, rules=[{"label": "RV", "threshold": 0.3}])
    with pytest.raises(ValueError, match="a threshold applies to region-based"):
        ensemble_folders(None, tmp_path / "out", spec=spec)


@pytest.mark.nnunet
def test_region_equal_weights_voxel_identical_to_nnunetv2_ensemble(tmp_path, rng):
    import subprocess
    import sys
    from pathlib import Path

    folders = write_region_folders(tmp_path, rng, num_members=3)
    for folder in folders:  # quantised: many voxels exactly at 0.5
        for npz in folder.glob("*.npz"):
            p = np.load(npz)["probabilities"]
            np.savez_compressed(npz, probabilities=(np.round(p * 4) / 4).astype(np.float32))
    ensemble_folders(folders, tmp_path / "ours")
    nnunet = Path(sys.executable).parent / "nnUNetv2_ensemble"
    subprocess.run(
        [str(nnunet), "-i", *map(str, folders), "-o", str(tmp_path / "ref"), "-np", "1"],
        check=True,
        capture_output=True,
    )
    for case in ("c0", "c1"):
        ours = read_labels(tmp_path / "ours" / f"{case}.nii.gz").array
        assert np.array_equal(ours, read_labels(tmp_path / "ref" / f"{case}.nii.gz").array)
