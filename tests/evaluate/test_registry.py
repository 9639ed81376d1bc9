"""The metric registry: names, directions, values per label, and plugging a metric in."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_ext.evaluate import registry
from nnunet_ext.evaluate.presets import PRESETS
from nnunet_ext.evaluate.registry import (
    METRIC_REGISTRY,
    CaseMetric,
    get_metric,
    register_metric,
)


def test_every_preset_and_the_lesion_metrics_are_registered():
    assert {"lesion_dice", "lesion_f1", *PRESETS} <= set(METRIC_REGISTRY)
    assert all(m.higher_is_better for m in METRIC_REGISTRY.values())
    with pytest.raises(ValueError, match="metric must be one of lesion_dice"):
        get_metric("lesion_iou")


def test_values_per_label():
    ref = np.zeros((4, 8, 8), dtype=np.uint8)
    ref[1:3, 1:4, 1:4] = 1
    ref[1:3, 5:7, 5:7] = 2
    pred = ref.copy()
    pred[pred == 2] = 0
    values = get_metric("kits23").values(ref, pred, [1, 2, (1, 2)], (1.0, 1.0, 1.0))
    assert values[0] == 1.0  # perfect
    assert values[1] == 0.0  # missed
    assert 0.0 < values[2] < 1.0
    assert get_metric("autopet").values(ref, pred, [2], (1.0, 1.0, 1.0)).tolist() == [0.0]


def test_a_new_metric_plugs_in_once():
    metric = CaseMetric("test_volume_ratio", True, lambda r, p, s: float(p.sum()), "test only")
    register_metric(metric)
    try:
        assert get_metric("test_volume_ratio") is metric
        with pytest.raises(ValueError, match="registered already"):
            register_metric(metric)
    finally:
        registry._REGISTRY.pop("test_volume_ratio")
