"""Surfel NSD against DeepMind's surface-distance 0.1 (the oracle venv), and its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.evaluate.surfels import (
    neighbour_code_areas,
    surfel_distances,
    surfel_surface_dice,
)
from tests.evaluate import oracles

#: KiTS23's regions and tolerances (neheller/kits23, kits23/configuration/labels.py at
#: 2b0905033291b9b0ae23eaf636ca218cd76451f8: HEC_SD_TOLERANCES_MM).
KITS_TOLERANCES = (1.0330772532390826, 1.1328796488598762, 1.1498198361434828)


def _blobs(rng: np.random.Generator, shape: tuple[int, ...], count: int) -> np.ndarray:
    grid = np.indices(shape).astype(np.float64)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(count):
        centre = [rng.uniform(0.2 * n, 0.8 * n) for n in shape]
        radius = [rng.uniform(1.0, 0.3 * n) for n in shape]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius, strict=True)) <= 1.0
    return mask


def _fixtures(rng: np.random.Generator, count: int) -> list[dict]:
    cases = []
    for i in range(count):
        shape = (int(rng.integers(8, 20)), int(rng.integers(8, 24)), int(rng.integers(8, 24)))
        spacing = [float(rng.choice([0.5, 0.8, 1.0, 1.5, 2.5, 3.0])) for _ in shape]
        ref = _blobs(rng, shape, int(rng.integers(1, 4)))
        pred = ref.copy() if i % 5 == 0 else _blobs(rng, shape, int(rng.integers(1, 4)))
        if i % 5 == 1:  # a noisy copy: surfaces close to each other
            pred = ref ^ (rng.random(shape) < 0.05)
        if i == 3:  # touching the image border
            ref[0] = True
        cases.append({"reference": ref, "prediction": pred, "spacing": spacing})
    return cases


def _kits_regions() -> list[dict]:
    rng = np.random.default_rng(5)
    labels = np.zeros((12, 16, 16), dtype=np.uint8)
    labels[_blobs(rng, labels.shape, 2)] = 1
    labels[4:9, 3:13, 3:13] = 1
    labels[_blobs(rng, labels.shape, 1) & (labels == 1)] = 2
    labels[5:8, 5:9, 9:12] = 2
    labels[3:5, 4:7, 4:7] = 3
    shifted = np.roll(labels, 2, axis=2)
    return [
        {
            "reference": np.isin(labels, region),
            "prediction": np.isin(shifted, region),
            "spacing": [3.0, 0.78, 0.78],
        }
        for region in ((1, 2, 3), (2, 3), (2,))
    ]


def test_area_table_equals_surface_distance_at_random_spacings():
    rng = np.random.default_rng(0)
    spacings = [[1.0, 1.0, 1.0], [0.7, 1.9, 3.1], *rng.uniform(0.2, 5.0, (6, 3)).tolist()]
    spacings += [[1.0, 1.0], [0.4, 2.2], rng.uniform(0.2, 5.0, 2).tolist()]
    expected = oracles.ask({"task": "surface_area_table", "spacings": spacings})
    for spacing, table in zip(spacings, expected, strict=True):
        np.testing.assert_allclose(
            neighbour_code_areas(tuple(spacing)), table, rtol=0, atol=1e-12, err_msg=str(spacing)
        )


def test_surfel_nsd_equals_surface_distance_on_20_anisotropic_fixtures(tmp_path):
    """Acceptance 2: 20 anisotropic fixtures, KiTS23's three tolerances and 1 and 2 mm.

    17 random mask pairs and the three KiTS23 regions (kidney and masses, masses, tumour) of a
    label map against a shifted copy, at 3 x 0.78 x 0.78 mm.
    """
    cases = _fixtures(np.random.default_rng(26), 17) + _kits_regions()
    tolerances = [*KITS_TOLERANCES, 1.0, 2.0]
    request = []
    for i, case in enumerate(cases):
        np.save(tmp_path / f"r{i}.npy", case["reference"])
        np.save(tmp_path / f"p{i}.npy", case["prediction"])
        request.append(
            {
                "reference": str(tmp_path / f"r{i}.npy"),
                "prediction": str(tmp_path / f"p{i}.npy"),
                "spacing": case["spacing"],
                "tolerances": tolerances,
            }
        )
    expected = oracles.ask({"task": "surface_dice", "cases": request})
    assert len({tuple(c["spacing"]) for c in cases}) > 10  # anisotropic and varied
    partial = 0
    for case, answer in zip(cases, expected, strict=True):
        distances = surfel_distances(case["reference"], case["prediction"], case["spacing"])
        ours = [distances.surface_dice(t) for t in tolerances]
        np.testing.assert_allclose(ours, answer["nsd"], rtol=0, atol=1e-6)
        partial += any(0.0 < v < 1.0 for v in ours)
    assert partial >= 15  # the fixtures test the tolerance, not only 0 and 1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(1.0, 1.0, 1.0), (2.0, 0.5, 1.3)]))
def test_identical_masks_score_one_and_nsd_is_symmetric(seed, spacing):
    rng = np.random.default_rng(seed)
    ref = _blobs(rng, (9, 10, 11), 2)
    pred = _blobs(rng, (9, 10, 11), 2)
    if not ref.any():
        return
    assert surfel_surface_dice(ref, ref, spacing, 0.0) == pytest.approx(1.0)
    forward = surfel_surface_dice(ref, pred, spacing, 1.5)
    assert forward == pytest.approx(surfel_surface_dice(pred, ref, spacing, 1.5), abs=1e-12)
    assert 0.0 <= forward <= 1.0


def test_empty_masks():
    ref = np.zeros((4, 4, 4), dtype=bool)
    pred = ref.copy()
    pred[1, 1, 1] = True
    assert np.isnan(surfel_surface_dice(ref, ref, (1, 1, 1), 1.0))
    assert surfel_surface_dice(ref, pred, (1, 1, 1), 1.0) == 0.0
    with pytest.raises(ValueError, match="2D or 3D masks"):
        surfel_distances(ref[0, 0], pred[0, 0], (1.0,))


def test_robust_hausdorff_equals_surface_distance(tmp_path):
    cases = _fixtures(np.random.default_rng(95), 8)
    request = []
    for i, case in enumerate(cases):
        np.save(tmp_path / f"r{i}.npy", case["reference"])
        np.save(tmp_path / f"p{i}.npy", case["prediction"])
        request.append(
            {
                "reference": str(tmp_path / f"r{i}.npy"),
                "prediction": str(tmp_path / f"p{i}.npy"),
                "spacing": case["spacing"],
                "tolerances": [1.0],
            }
        )
    expected = oracles.ask({"task": "surface_dice", "cases": request})
    for case, answer in zip(cases, expected, strict=True):
        distances = surfel_distances(case["reference"], case["prediction"], case["spacing"])
        assert distances.robust_hausdorff(95) == pytest.approx(answer["hd95"], abs=1e-6)
