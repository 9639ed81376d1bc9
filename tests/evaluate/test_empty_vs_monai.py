"""The empty-mask policies against the tool they are named after (MONAI 1.6, installed as a test
oracle): ``skip`` is MONAI ``DiceMetric(ignore_empty=True)``, ``one`` is ``ignore_empty=False``.
``nan`` is nnU-Net's own rule (tested against nnU-Net in ``test_folders.py``)."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.evaluate.metrics import confusion_matrix, counts_from_matrix
from nnunet_ext.evaluate.summary import summarise

LABELS = [1, 2]


def _cases(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Small label maps where a label is often missing from the reference, the prediction or
    both; case 0 always holds both labels in its reference (so no label's mean is empty)."""
    rng = np.random.default_rng(seed)
    references, predictions = [], []
    for case in range(6):
        reference = rng.integers(0, 3, (5, 6))
        prediction = rng.integers(0, 3, (5, 6))
        for label in LABELS:
            if case and rng.random() < 0.5:
                reference[reference == label] = 0
            if rng.random() < 0.4:
                prediction[prediction == label] = 0
        if case == 0:
            reference[0, :2] = LABELS
        references.append(reference)
        predictions.append(prediction)
    return references, predictions


def _monai_mean_dice(references, predictions, *, ignore_empty: bool) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty ground truth
        from monai.metrics import DiceMetric

        def one_hot(arrays):
            stacked = np.stack([np.stack([a == label for label in LABELS]) for a in arrays])
            return torch.from_numpy(stacked.astype(np.float32))

        metric = DiceMetric(
            include_background=True, reduction="mean_batch", ignore_empty=ignore_empty
        )
        metric(one_hot(predictions), one_hot(references))
        return metric.aggregate().numpy().astype(np.float64)


def _ours(references, predictions, empty: str) -> np.ndarray:
    counts = np.stack(
        [
            counts_from_matrix(confusion_matrix(r, p, num_values=3), LABELS)
            for r, p in zip(references, predictions, strict=True)
        ]
    )
    return summarise(counts, empty=empty)["mean_dice"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_skip_is_monai_ignore_empty_and_one_is_its_opposite(seed):
    references, predictions = _cases(seed)
    np.testing.assert_allclose(
        _ours(references, predictions, "skip"),
        _monai_mean_dice(references, predictions, ignore_empty=True),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        _ours(references, predictions, "one"),
        _monai_mean_dice(references, predictions, ignore_empty=False),
        rtol=1e-6,
    )


def test_nan_differs_from_monai_ignore_empty_on_a_false_positive():
    """An empty reference with a false positive: nnU-Net's ``nan`` counts Dice 0 in the mean,
    MONAI's ``ignore_empty`` (our ``skip``) leaves the case out."""
    reference = np.zeros((4, 4), int)
    prediction = np.zeros((4, 4), int)
    prediction[0, 0] = 1
    full = np.ones((4, 4), int)
    references, predictions = [full, reference], [full, prediction]
    counts = np.stack(
        [
            counts_from_matrix(confusion_matrix(r, p, num_values=2), [1])
            for r, p in zip(references, predictions, strict=True)
        ]
    )
    assert summarise(counts, empty="nan")["mean_dice"].tolist() == [0.5]
    assert summarise(counts, empty="skip")["mean_dice"].tolist() == [1.0]
    monai = _monai_mean_dice(references, predictions, ignore_empty=True)
    assert monai[0] == 1.0
