import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nnunet_ext.evaluate.metrics import (
    FN,
    FP,
    N_PRED,
    N_REF,
    TN,
    TP,
    confusion_counts,
    confusion_matrix,
    dice_from_counts,
    iou_from_counts,
)


def _naive(ref, pred, label, ignore=None):
    values = label if isinstance(label, tuple) else (label,)
    use = np.ones(ref.shape, bool) if ignore is None else ref != ignore
    r, p = np.isin(ref, values), np.isin(pred, values)
    return [
        int(np.sum(r & p & use)),
        int(np.sum(~r & p & use)),
        int(np.sum(r & ~p & use)),
        int(np.sum(~r & ~p & use)),
    ]


label_maps = arrays(np.uint8, st.integers(1, 60), elements=st.integers(0, 4))


@settings(max_examples=60, deadline=None)
@given(ref=label_maps, data=st.data())
def test_counts_equal_per_label_masks(ref, data):
    pred = data.draw(arrays(np.uint8, ref.shape, elements=st.integers(0, 5)))
    ignore = data.draw(st.sampled_from([None, 4]))
    label_ids = [1, 2, 3, 5, (1, 2), (2, 3, 5)]
    counts = confusion_counts(ref, pred, label_ids=label_ids, ignore_label=ignore)
    for row, label in zip(counts, label_ids, strict=True):
        assert row[[TP, FP, FN, TN]].tolist() == _naive(ref, pred, label, ignore)
        assert row[N_REF] == row[TP] + row[FN]
        assert row[N_PRED] == row[TP] + row[FP]


def test_inputs_are_not_modified_and_large_label_values_work():
    ref = np.array([0, 300, 300, 7], dtype=np.uint16)
    pred = np.array([0, 300, 7, 7], dtype=np.uint16)
    before = ref.copy(), pred.copy()
    counts = confusion_counts(ref, pred, label_ids=[300, 7])
    assert counts[:, [TP, FP, FN]].tolist() == [[1, 0, 1], [1, 1, 0]]
    np.testing.assert_array_equal(ref, before[0])
    np.testing.assert_array_equal(pred, before[1])


def test_confusion_matrix_rows_are_reference_values():
    m = confusion_matrix(np.array([1, 1, 0]), np.array([1, 0, 0]), num_values=3)
    assert m.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    ("ref", "pred", "kwargs", "match"),
    [
        (np.zeros(3, np.uint8), np.zeros(4, np.uint8), {"num_classes": 2}, "same shape"),
        (np.zeros(3, np.float32), np.zeros(3, np.uint8), {"num_classes": 2}, "integer label array"),
        (np.array([-1, 0]), np.zeros(2, np.int64), {"num_classes": 2}, "labels >= 0"),
        (np.zeros(3, np.uint8), np.zeros(3, np.uint8), {}, "label_ids or num_classes"),
        (np.zeros(3, np.uint8), np.zeros(3, np.uint8), {"label_ids": [()]}, "non-empty tuple"),
    ],
)
def test_bad_inputs_raise_one_clear_error(ref, pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        confusion_counts(ref, pred, **kwargs)


def test_num_values_too_small_is_refused():
    with pytest.raises(ValueError, match="num_values must be > the largest label value 2"):
        confusion_matrix(np.array([2]), np.array([0]), num_values=2)


def test_empty_conventions():
    assert np.isnan(dice_from_counts(0, 0, 0))
    assert dice_from_counts(0, 0, 0, empty="one") == 1.0
    assert dice_from_counts(0, 3, 0) == 0.0  # reference empty, false positives: Dice 0
    assert iou_from_counts(0, 0, 0, empty="one") == 1.0
    with pytest.raises(ValueError, match="empty must be one of"):
        dice_from_counts(1, 0, 0, empty="zero")  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(tp=st.integers(0, 10**6), fp=st.integers(0, 10**6), fn=st.integers(0, 10**6))
def test_dice_and_iou_relation(tp, fp, fn):
    dice, iou = dice_from_counts(tp, fp, fn, empty="one"), iou_from_counts(tp, fp, fn, empty="one")
    assert 0.0 <= iou <= dice <= 1.0
    assert dice == pytest.approx(2 * iou / (1 + iou))
