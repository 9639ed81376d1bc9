"""Boundary metrics against their reference implementations (MONAI, MedPy) on anisotropic data.

Acceptance 1 of issue 15: nested labels, regions, empty labels and single voxels, spacing like
1.5 x 0.7 x 0.7 mm; every metric equals its reference (MedPy within 1e-6 mm, MONAI within 1e-6 mm
or its float32 rounding), or the documented value where the reference errors out or gives
inf/NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from nnunet_ext.evaluate.measures import apply_convention, boundary_values, label_mask
from nnunet_ext.evaluate.metrics import confusion_counts
from nnunet_ext.evaluate.surface import (
    DISTANCE_METRICS,
    distance_metrics,
    mask_surface,
    surface_distances,
)

from ._oracles import float32_close, medpy_values, monai_values, quantile_position_error

SPACINGS = [(1.5, 0.7, 0.7), (0.7, 0.7, 1.5), (3.0, 0.8, 0.6), (1.0, 1.0, 1.0)]
LABELS = [1, 2, 3, (1, 2)]


def _label_map(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Label 1 (a box), label 2 nested in it, label 3 a single voxel or absent."""
    out = np.zeros(shape, dtype=np.uint8)
    lo = [int(rng.integers(0, max(n - 2, 1))) for n in shape]
    hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, shape, strict=True)]
    out[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = 1
    inner = [
        slice(a + (b - a) // 3, max(a + (b - a) // 3 + 1, b - (b - a) // 3))
        for a, b in zip(lo, hi, strict=True)
    ]
    out[tuple(inner)] = 2
    if rng.random() < 0.6:
        out[tuple(int(rng.integers(0, n)) for n in shape)] = 3
    return out


def _perturb(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A prediction: shifted, noisy near the boundary, sometimes with a far false positive."""
    out = np.roll(labels, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 3)))
    near = ndimage.binary_dilation(labels > 0) & (rng.random(labels.shape) < 0.15)
    out[near] = rng.integers(0, 4, size=int(near.sum()))
    if rng.random() < 0.3:
        out[tuple(int(rng.integers(0, n)) for n in labels.shape)] = 1
    if rng.random() < 0.2:
        out[out == 2] = 0  # label 2 missed entirely
    return out


def _check_against_references(reference, prediction, spacing, tolerance):
    raw = boundary_values(
        reference, prediction, LABELS, spacing, DISTANCE_METRICS, nsd_tolerance=tolerance
    )
    counts = confusion_counts(reference, prediction, label_ids=LABELS)
    values = apply_convention(raw, counts, "nan", shape=reference.shape, spacing=spacing)
    checked = 0
    for i, label in enumerate(LABELS):
        ref_mask, pred_mask = label_mask(reference, label), label_mask(prediction, label)
        ours = {name: float(values[name][i]) for name in DISTANCE_METRICS}
        monai = monai_values(ref_mask, pred_mask, spacing, tolerance)
        if ref_mask.any() and pred_mask.any():
            medpy = medpy_values(ref_mask, pred_mask, spacing)
            for name in ("hd", "hd95_pooled", "assd"):
                assert abs(ours[name] - medpy[name]) <= 1e-6, (label, name, ours, medpy)
            directed = surface_distances(ref_mask, pred_mask, spacing)
            position_error = quantile_position_error(
                directed.prediction_to_reference, directed.reference_to_prediction
            )
            for name in ("hd", "nsd", "assd"):
                assert float32_close(ours[name], monai[name]), (label, name, ours, monai)
            assert float32_close(ours["hd95"], monai["hd95"], position_error), (ours, monai)
            checked += 1
        else:
            # documented: every distance NaN when a side is empty (MONAI: inf one side empty,
            # NaN both empty; MedPy raises); NSD as MONAI (0 one side empty, NaN both).
            for name in ("hd", "hd95", "hd95_pooled", "assd"):
                assert math.isnan(ours[name])
            assert (
                float32_close(ours["nsd"], monai["nsd"])
                if pred_mask.any() or ref_mask.any()
                else math.isnan(ours["nsd"])
            )
            if ref_mask.any() or pred_mask.any():
                assert math.isinf(monai["hd"])  # MONAI: inf; its HD95 NaN (inf - inf)
                assert not math.isfinite(monai["hd95"])
                with pytest.raises(RuntimeError):
                    medpy_values(ref_mask, pred_mask, spacing)
            else:
                assert math.isnan(monai["hd95"])
                assert math.isnan(monai["nsd"])
    return checked


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(3, 7), st.integers(4, 12), st.integers(4, 12)),
    spacing=st.sampled_from(SPACINGS),
    tolerance=st.sampled_from([0.0, 0.7, 1.0, 1.5, 2.1]),
)
def test_every_metric_equals_its_reference_implementation(seed, shape, spacing, tolerance):
    rng = np.random.default_rng(seed)
    reference = _label_map(rng, shape)
    prediction = _perturb(rng, reference)
    _check_against_references(reference, prediction, spacing, tolerance)


def test_fixed_anisotropic_fixture_nested_empty_and_single_voxels():
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(20):
        reference = _label_map(rng, (6, 14, 12))
        prediction = _perturb(rng, reference)
        checked += _check_against_references(reference, prediction, (1.5, 0.7, 0.7), 1.0)
    assert checked >= 50  # most pairs are non-empty, so the oracles really ran


def test_single_voxels_and_2d():
    ref = np.zeros((5, 7), dtype=bool)
    pred = np.zeros((5, 7), dtype=bool)
    ref[1, 1] = True
    pred[4, 6] = True
    d = surface_distances(ref, pred, (2.0, 0.5))
    expected = math.hypot(3 * 2.0, 5 * 0.5)
    assert d.prediction_to_reference.tolist() == [expected]
    assert distance_metrics(d, ("hd", "hd95", "assd"))["hd95"] == pytest.approx(expected)
    assert medpy_values(ref, pred, (2.0, 0.5))["hd"] == pytest.approx(expected, abs=1e-12)


def test_surface_is_the_erosion_boundary_with_a_zero_border():
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((5, 6, 7)) < 0.6
        expected = mask ^ ndimage.binary_erosion(mask)  # cross structure, border_value 0
        np.testing.assert_array_equal(mask_surface(mask), expected)


def test_crop_gives_the_full_volume_result():
    """Cropping is exact: the same distances as on the uncropped volume (MedPy's way)."""
    rng = np.random.default_rng(11)
    ref = np.zeros((20, 30, 30), dtype=bool)
    pred = np.zeros_like(ref)
    ref[5:9, 10:20, 12:18] = True
    pred[6:10, 11:21, 12:17] = True
    pred[18, 28, 2] = rng.random() < 2  # a far single voxel
    spacing = (1.5, 0.7, 0.7)
    d = surface_distances(ref, pred, spacing)
    full_ref = ref ^ ndimage.binary_erosion(ref)
    full_pred = pred ^ ndimage.binary_erosion(pred)
    expected = ndimage.distance_transform_edt(~full_ref, sampling=spacing)[full_pred]
    np.testing.assert_allclose(np.sort(d.prediction_to_reference), np.sort(expected), atol=1e-9)


def test_ignore_label_voxels_leave_the_prediction():
    ref = np.zeros((1, 10), dtype=np.uint8)
    pred = np.zeros_like(ref)
    ref[0, 2:4] = 1
    ref[0, 8] = 9
    pred[0, 2:4] = 1
    pred[0, 8] = 1  # predicted where the reference is ignored
    values = boundary_values(ref, pred, [1], (1.0, 1.0), ["hd"], ignore_label=9)
    assert values["hd"].tolist() == [0.0]
    assert boundary_values(ref, pred, [1], (1.0, 1.0), ["hd"])["hd"].tolist() == [5.0]


@pytest.mark.parametrize(
    ("ref", "pred", "spacing", "match"),
    [
        (np.ones((2, 2), bool), np.ones((2, 3), bool), (1, 1), "same shape"),
        (np.ones((2, 2), bool), np.ones((2, 2), bool), (1,), "spacing"),
        (np.ones((2, 2), bool), np.ones((2, 2), bool), (1, 0), "spacing"),
        (np.zeros((2, 2), bool), np.ones((2, 2), bool), (1, 1), "non-empty"),
    ],
)
def test_bad_inputs_raise(ref, pred, spacing, match):
    with pytest.raises(ValueError, match=match):
        surface_distances(ref, pred, spacing)


def test_unknown_metric_and_bad_tolerance():
    d = surface_distances(np.ones((2, 2), bool), np.ones((2, 2), bool), (1, 1))
    with pytest.raises(ValueError, match="unknown distance metric"):
        distance_metrics(d, ("hd99",))
    with pytest.raises(ValueError, match="nsd_tolerance"):
        distance_metrics(d, ("nsd",), nsd_tolerance=-1)


@pytest.mark.parametrize("seed", range(6))
def test_tree_and_transform_paths_give_the_same_distances(seed, monkeypatch):
    from nnunet_ext.evaluate import surface

    rng = np.random.default_rng(seed)
    ref = ndimage.binary_opening(rng.random((9, 16, 14)) < 0.55)
    pred = ndimage.binary_closing(rng.random((9, 16, 14)) < 0.5)
    pred[0, 0, 0] = True  # a far voxel: a sparse crop
    results = []
    for fraction in (10**9, 0):  # always the tree, never the tree
        monkeypatch.setattr(surface, "SPARSE_FRACTION", fraction)
        results.append(surface_distances(ref, pred, (1.5, 0.7, 0.7)))
    tree, transform = results
    np.testing.assert_allclose(
        tree.prediction_to_reference, transform.prediction_to_reference, rtol=1e-12
    )
    np.testing.assert_allclose(
        tree.reference_to_prediction, transform.reference_to_prediction, rtol=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    spacing=st.sampled_from(
        [(1.5, 0.7, 0.7), (1.0, 1.0, 1.0), (5.0, 0.5, 0.5), (50.0, 0.1, 0.1), (0.7, 3.0, 1.1)]
    ),
    density=st.floats(0.02, 0.6),
)
def test_offset_search_equals_the_distance_transform(seed, spacing, density):
    """The voxel-offset search (plus the tree beyond it) against SciPy's exact EDT, per voxel."""
    from nnunet_ext.evaluate.surface import (
        _padded_crop,
        _surface_pair_distances,
        _transform_distances,
        crop_box,
    )

    rng = np.random.default_rng(seed)
    ref = rng.random((7, 19, 17)) < density
    pred = ndimage.binary_dilation(rng.random((7, 19, 17)) < density / 3)
    ref[rng.integers(0, 7), rng.integers(0, 19), rng.integers(0, 17)] = True
    pred[rng.integers(0, 7), rng.integers(0, 19), rng.integers(0, 17)] = True
    box = crop_box(ref, pred)
    ref_s, pred_s = mask_surface(_padded_crop(ref, box)), mask_surface(_padded_crop(pred, box))
    for ours, exact in zip(
        _surface_pair_distances(ref_s, pred_s, spacing),
        _transform_distances(ref_s, pred_s, spacing),
        strict=True,
    ):
        np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=0)


def test_compact_structures_use_the_tree_and_match_the_references():
    """Two offset anisotropic ellipsoids in a larger volume: the sparse (tree) path."""
    z, y, x = np.meshgrid(np.arange(24), np.arange(48), np.arange(48), indexing="ij")
    ref = ((z - 11) * 1.5) ** 2 + ((y - 22) * 0.7) ** 2 + ((x - 24) * 0.7) ** 2 < 11**2
    pred = ((z - 12) * 1.5) ** 2 + ((y - 25) * 0.7) ** 2 + ((x - 23) * 0.7) ** 2 < 10**2
    ref_s, pred_s = mask_surface(ref), mask_surface(pred)
    assert (ref_s.sum() + pred_s.sum()) * 4 < ref.size  # really the tree path
    spacing = (1.5, 0.7, 0.7)
    ours = distance_metrics(surface_distances(ref, pred, spacing), nsd_tolerance=1.0)
    medpy = medpy_values(ref, pred, spacing)
    monai = monai_values(ref, pred, spacing, 1.0)
    for name in ("hd", "hd95_pooled", "assd"):
        assert abs(ours[name] - medpy[name]) <= 1e-6
    for name in ("hd", "hd95", "nsd"):
        assert float32_close(ours[name], monai[name])
    assert 0 < ours["nsd"] < 1


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 0.3),
)
def test_boxes_are_the_bounding_boxes_of_the_voxels(shape, seed, density):
    from nnunet_ext.evaluate.surface import crop_box, pair_box

    rng = np.random.default_rng(seed)
    a, b = (rng.random(shape) < density for _ in range(2))

    def expected(*masks):
        where = np.argwhere(np.logical_or.reduce(masks))
        if where.size == 0:
            return None
        return tuple(
            slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(0), where.max(0), strict=True)
        )

    assert crop_box(a, b) == expected(a, b)
    assert crop_box(a) == expected(a)
    assert pair_box(a, b) == (expected(a, b) if a.any() and b.any() else None)


def test_panoptica_nsd_and_hd95_equal_panoptica(tmp_path):
    """Acceptance 2 (panoptica form): NSD at the smallest spacing and pooled HD95, 20 pairs."""
    from tests.evaluate import oracles

    rng = np.random.default_rng(126)
    cases, request = [], []
    for i in range(20):
        shape = (int(rng.integers(6, 14)), int(rng.integers(6, 16)), int(rng.integers(6, 16)))
        spacing = [float(rng.choice([0.6, 1.0, 1.5, 3.0])) for _ in shape]
        labels = _label_map(rng, shape)
        other = _label_map(rng, shape) if i % 3 else np.roll(labels, 1, axis=i % 3)
        ref, pred = labels > 0, other > 0
        if not (ref.any() and pred.any()):
            continue
        np.save(tmp_path / f"r{i}.npy", ref)
        np.save(tmp_path / f"p{i}.npy", pred)
        cases.append((ref, pred, spacing))
        request.append(
            {
                "reference": str(tmp_path / f"r{i}.npy"),
                "prediction": str(tmp_path / f"p{i}.npy"),
                "spacing": spacing,
            }
        )
    assert len(cases) >= 15
    expected = oracles.ask({"task": "panoptica_nsd", "cases": request})
    for (ref, pred, spacing), answer in zip(cases, expected, strict=True):
        ours = boundary_values(
            ref.astype(np.uint8),
            pred.astype(np.uint8),
            [1],
            spacing,
            ["nsd", "hd95_pooled"],
            nsd_tolerance=min(spacing),
            nsd_definition="panoptica",
        )
        assert ours["nsd"][0] == pytest.approx(answer["nsd"], abs=1e-6)
        assert ours["hd95_pooled"][0] == pytest.approx(answer["hd95"], abs=1e-6)


def test_nsd_definitions_differ_and_are_checked():
    ref = np.zeros((8, 8, 8), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = np.zeros_like(ref)
    pred[1:7, 2:7, 2:8] = 1  # larger: the two directed fractions differ
    values = {
        d: boundary_values(ref, pred, [1], (1.0, 1.0, 2.0), ["nsd"], nsd_definition=d)["nsd"][0]
        for d in ("voxel", "surfel", "panoptica")
    }
    assert len(set(values.values())) == 3
    with pytest.raises(ValueError, match="nsd_definition must be one of"):
        boundary_values(ref, pred, [1], (1.0, 1.0, 1.0), ["nsd"], nsd_definition="gandlf")
