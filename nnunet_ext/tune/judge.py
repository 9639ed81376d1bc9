"""The held-out statistics of tune: noise, a step's verdict, blind members.

The weight search (:mod:`nnunet_ext.tune.search`), the weight gate (:mod:`nnunet_ext.tune.gate`)
and the per-label rules (:mod:`nnunet_ext.tune.rules`) judge a change the same way, on per-case
Dice differences of held-out cases:

* its noise is the bootstrap standard error of the mean difference
  (:func:`nnunet_ext._stats.bootstrap_noise`: ``BOOTSTRAP_SAMPLES`` resamples of the cases with
  replacement, fixed seed; the package's one bootstrap);
* a gain counts when it exceeds :data:`MIN_GAIN` and either :data:`NOISE_Z` times the noise or
  no case loses more than :data:`CASE_TOLERANCE` (:func:`gain_counts`); per-case differences are
  paired (:func:`paired_difference`: a case the label is absent from counts as Dice 1 on the side
  that predicts nothing there);
  another label may drop by its own noise or :data:`DROP_TOLERANCE`, whichever is larger
  (:func:`judge_label_step`);
* a member is *blind* to a label when its own mean Dice there is below :data:`BLIND_FRACTION`
  of the best member's and the difference exceeds the noise (:func:`sole_reliable_member`;
  per nnU-Net training fold: :func:`fold_blind_cases`).

Means leave out undefined (NaN) Dice (:func:`nnunet_ext._stats.nan_mean`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import (
    BOOTSTRAP_SAMPLES,
    CASE_TOLERANCE,
    DROP_TOLERANCE,
    MIN_GAIN,
    NOISE_Z,
    bootstrap_noise,
    gain_counts,
    judge_label_step,
    nan_mean,
    paired_difference,
    paired_values,
)

__all__ = [
    "BLIND_FRACTION",
    "BOOTSTRAP_SAMPLES",
    "CASE_TOLERANCE",
    "DROP_TOLERANCE",
    "MIN_GAIN",
    "NOISE_Z",
    "best_member",
    "bootstrap_noise",
    "fold_blind_cases",
    "foreground_difference",
    "gain_counts",
    "judge_label_step",
    "paired_difference",
    "sole_reliable_member",
]

#: A member is blind to a label when its own mean Dice on the label is below this fraction of
#: the best member's (and the per-case difference exceeds the noise): with equal weights its
#: background channel dilutes the label, so equal weights are no neutral default for it.
BLIND_FRACTION = 0.5


def foreground_difference(
    new: NDArray[np.float64], old: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Per-case difference of the mean foreground Dice of ``(cases, L)`` tables, paired.

    Each label's entries are paired as in :func:`paired_difference` before the means over the
    labels of each case.

    Examples:
        >>> new = np.array([[0.9, np.nan], [0.5, 0.5]])
        >>> old = np.array([[0.9, 0.0], [0.5, np.nan]])
        >>> foreground_difference(new, old).round(2).tolist()
        [0.5, -0.25]
    """
    new_filled, old_filled = paired_values(new, old)
    difference: NDArray[np.float64] = nan_mean(new_filled, axis=1) - nan_mean(old_filled, axis=1)
    return difference


def best_member(
    member_per_case: Sequence[NDArray[np.float64]], j: int, cases: NDArray[np.int64] | slice
) -> int | None:
    """The member with the best own mean Dice on label column ``j`` (``None``: none scored).

    Examples:
        >>> best_member([np.array([[0.2], [0.4]]), np.array([[0.5], [np.nan]])], 0, slice(None))
        1
    """
    columns = [np.asarray(pc[cases, j], dtype=np.float64) for pc in member_per_case]
    if not columns or not all(np.any(~np.isnan(c)) for c in columns):
        return None
    return int(np.argmax([nan_mean(c) for c in columns]))


def sole_reliable_member(
    member_per_case: Sequence[NDArray[np.float64]],
    j: int,
    cases: NDArray[np.int64] | slice = slice(None),
    *,
    training_folds: NDArray[np.int64] | None = None,
) -> int | None:
    """The member that alone predicts label column ``j`` on ``cases``, or ``None``.

    Each member's own per-case Dice (its argmax alone) is compared with the best member's on the
    label: a member is *blind* to the label when its mean Dice is below :data:`BLIND_FRACTION`
    of the best member's and the mean per-case difference exceeds ``NOISE_Z`` bootstrap standard
    errors and :data:`MIN_GAIN`. With ``training_folds`` (the nnU-Net fold that predicted each
    case), a member is also not blind when, on the cases of some fold, its mean Dice reaches
    :data:`BLIND_FRACTION` of the best member's there (and the best member's is above 0): one of
    its fold models predicts the label, and the fold-averaged member predicts it on new cases
    in a measure the CV cases of its blind fold do not show. When every other member is blind,
    the best member is returned.

    Args:
        member_per_case: Per member, ``(cases, L)`` Dice of its argmax alone (NaN: label absent
            from reference and prediction).
        j: Label column.
        cases: The cases to decide on (a fold's tuning cases, or all).
        training_folds: Per case (all cases, as ``member_per_case``), the nnU-Net fold whose
            model predicted it, or ``None``.

    Returns:
        The best member's index, or ``None`` with fewer than two members, no scored case, or
        another member that is not blind.

    Examples:
        >>> good = np.array([[0.5], [0.4], [0.6], [0.45]])
        >>> sole_reliable_member([good * 0, good], 0), sole_reliable_member([good, good * 0.9], 0)
        (1, None)
        >>> one_fold_sees = np.array([[0.0], [0.0], [0.4], [0.5]])  # fold 0 blind, fold 1 sees
        >>> sole_reliable_member([one_fold_sees, good], 0)
        1
        >>> sole_reliable_member([one_fold_sees, good], 0, training_folds=np.array([0, 0, 1, 1]))
    """
    if len(member_per_case) < 2:
        return None
    best = best_member(member_per_case, j, cases)
    if best is None:
        return None
    columns = [np.asarray(pc[cases, j], dtype=np.float64) for pc in member_per_case]
    means = [nan_mean(c) for c in columns]
    for m, column in enumerate(columns):
        if m == best:
            continue
        diff = columns[best] - column  # blindness: cases where the label is present
        if not np.any(~np.isnan(diff)):
            return None
        gain = nan_mean(diff)
        blind = means[m] < BLIND_FRACTION * means[best] and gain > max(
            NOISE_Z * bootstrap_noise(diff), MIN_GAIN
        )
        if not blind or _sees_in_some_fold(columns[m], columns[best], cases, training_folds):
            return None
    return best


def _sees_in_some_fold(
    member: NDArray[np.float64],
    best: NDArray[np.float64],
    cases: NDArray[np.int64] | slice,
    training_folds: NDArray[np.int64] | None,
) -> bool:
    """Whether ``member`` reaches ``BLIND_FRACTION`` of ``best``'s mean Dice in some fold."""
    if training_folds is None:
        return False
    folds = np.asarray(training_folds)[cases]
    for fold in np.unique(folds):
        in_fold = folds == fold
        best_mean = nan_mean(best[in_fold])
        if best_mean > 0 and nan_mean(member[in_fold]) >= BLIND_FRACTION * best_mean:
            return True
    return False


def fold_blind_cases(
    member_per_case: Sequence[NDArray[np.float64]], training_folds: NDArray[np.int64] | None
) -> NDArray[np.bool_]:
    """``(cases, L)``: whether some member is blind to the label on the case's training fold.

    On the cases of training fold ``f``, a member is blind to a label when its mean Dice there
    is below :data:`BLIND_FRACTION` of the best member's (which is above 0). Such a case shows
    the label as that fold's model sees it, not as the fold-averaged member sees new cases: the
    weight gate does not count a label's drop on it. Without ``training_folds``: all ``False``.

    Examples:
        >>> seeing = np.array([[0.9], [0.8], [0.9], [0.7]])
        >>> one_blind_fold = np.array([[0.0], [0.1], [0.8], [0.7]])
        >>> fold_blind_cases([seeing, one_blind_fold], np.array([0, 0, 1, 1]))[:, 0].tolist()
        [True, True, False, False]
    """
    num_cases, num_labels = member_per_case[0].shape
    out = np.zeros((num_cases, num_labels), dtype=bool)
    if training_folds is None or len(member_per_case) < 2:
        return out
    folds = np.asarray(training_folds)
    for fold in np.unique(folds):
        in_fold = folds == fold
        for j in range(num_labels):
            means = [nan_mean(m[in_fold, j]) for m in member_per_case]
            scored = [v for v in means if not np.isnan(v)]
            if scored and max(scored) > 0 and min(scored) < BLIND_FRACTION * max(scored):
                out[in_fold, j] = True
    return out
