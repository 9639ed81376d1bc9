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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import BOOTSTRAP_SAMPLES, bootstrap_noise, nan_mean

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

#: A held-out gain counts when it exceeds this many bootstrap standard errors ...
NOISE_Z = 2.0
#: ... and at least this much mean foreground Dice.
MIN_GAIN = 1e-3
#: A step may lower another label's held-out mean Dice by its noise (``NOISE_Z`` bootstrap
#: standard errors) or by this much, whichever is larger: a consistent drop of a few thousandths
#: has a tiny bootstrap error, yet is below what a test set of a dozen cases resolves.
DROP_TOLERANCE = 0.005
#: A step that loses on no held-out case by more than this (and gains at least ``MIN_GAIN``)
#: counts without the noise test (:func:`gain_counts`).
CASE_TOLERANCE = 0.005
#: A member is blind to a label when its own mean Dice on the label is below this fraction of
#: the best member's (and the per-case difference exceeds the noise): with equal weights its
#: background channel dilutes the label, so equal weights are no neutral default for it.
BLIND_FRACTION = 0.5


def gain_counts(differences: NDArray[np.float64]) -> bool:
    """Whether a held-out gain counts: it beats the noise, or no case loses.

    The mean of the per-case differences (NaN cases left out) must exceed :data:`MIN_GAIN` and
    either ``NOISE_Z`` bootstrap standard errors or, where no case drops by more than
    :data:`CASE_TOLERANCE`, nothing more: a step that loses on no held-out case needs no test
    against a loss. (A gain made on one case of ten, such as a false positive removed where the
    label is absent, never beats the bootstrap noise of ten cases, however clean.)

    Examples:
        >>> gain_counts(np.array([0.002, -0.001, 1.0, 0.0, 0.003]))  # one case, no loss
        True
        >>> gain_counts(np.array([0.3, -0.2, 0.4, -0.3, 0.2]))  # mean 0.08, noisy
        False
        >>> gain_counts(np.array([0.0005, 0.0, 0.0]))  # below MIN_GAIN
        False
    """
    values = differences[~np.isnan(differences)]
    if values.size == 0:
        return False
    gain = float(values.mean())
    if gain <= MIN_GAIN:
        return False
    return gain > NOISE_Z * bootstrap_noise(values) or float(values.min()) >= -CASE_TOLERANCE


def paired_difference(new: NDArray[np.float64], old: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-case ``new - old`` Dice, a case the label is absent from scored as the pair sees it.

    A Dice is NaN where the label is absent from the reference and from the prediction: a
    perfect case, which nnU-Net's mean leaves out. Where only one side of the pair is NaN, the
    other predicted the absent label (Dice 0): that side lost the case, so the NaN side counts
    as Dice 1 in the difference. (Dropping such cases, as ``new - old`` does, hides exactly the
    gain of not predicting a label where it is absent, which the means show.) Where both are
    NaN the difference stays NaN (left out).

    Examples:
        >>> new, old = np.array([0.9, np.nan, np.nan, 0.0]), np.array([0.8, 0.0, np.nan, np.nan])
        >>> paired_difference(new, old).round(2).tolist()
        [0.1, 1.0, nan, -1.0]
    """
    new_filled = np.where(np.isnan(new) & ~np.isnan(old), 1.0, new)
    old_filled = np.where(np.isnan(old) & ~np.isnan(new), 1.0, old)
    difference: NDArray[np.float64] = new_filled - old_filled
    return difference


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
    new_filled = np.where(np.isnan(new) & ~np.isnan(old), 1.0, new)
    old_filled = np.where(np.isnan(old) & ~np.isnan(new), 1.0, old)
    difference: NDArray[np.float64] = nan_mean(new_filled, axis=1) - nan_mean(old_filled, axis=1)
    return difference


def judge_label_step(
    j: int,
    diff: NDArray[np.float64],
    *,
    exempt: Sequence[int] = (),
    uncounted: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """The held-out verdict on a step for label column ``j`` from per-case differences.

    ``diff`` is ``(cases, L)``: the step's held-out per-case Dice minus the current spec's. The
    step passes when the label's mean gain exceeds ``NOISE_Z`` bootstrap standard errors and
    :data:`MIN_GAIN`, and no other label's mean drop exceeds its own noise (at least
    :data:`DROP_TOLERANCE`); a drop of a column in ``exempt`` (a label the rules decide later)
    does not count, nor, per column, the cases marked in ``uncounted`` (``(cases, L)``, see
    :func:`fold_blind_cases`). ``foreground_gain`` (mean over cases of the mean over labels,
    every label included) ranks passing steps.

    Examples:
        >>> diff = np.array([[0.10, 0.0], [0.12, 0.0], [0.11, 0.001], [0.09, -0.001]])
        >>> judge_label_step(0, diff)["passes"], judge_label_step(1, diff)["passes"]
        (True, False)
        >>> judge_label_step(0, diff - [0.0, 0.2])["passes"]  # label 1 drops by 0.2
        False
        >>> judge_label_step(0, diff - [0.0, 0.2], exempt=[1])["passes"]  # the rules decide 1
        True
        >>> blind_fold = np.array([[False, True]] * 4)  # label 1: a member blind on every case
        >>> judge_label_step(0, diff - [0.0, 0.2], uncounted=blind_fold)["passes"]
        True
    """
    gain = nan_mean(diff[:, j], empty=0.0)
    noise = bootstrap_noise(diff[:, j])
    worst_drop = 0.0
    for k in range(diff.shape[1]):
        column = diff[:, k] if uncounted is None else np.where(uncounted[:, k], np.nan, diff[:, k])
        if k == j or k in exempt or not np.any(~np.isnan(column)):
            continue
        noise_k = max(NOISE_Z * bootstrap_noise(column), DROP_TOLERANCE)
        drop = -nan_mean(column) - noise_k
        worst_drop = max(worst_drop, drop)
    passes = gain_counts(diff[:, j]) and worst_drop == 0.0
    valid = ~np.isnan(diff)
    per_case = nan_mean(diff, axis=1)  # mean over labels of each case
    foreground = float(per_case[valid.any(axis=1)].mean()) if valid.any() else 0.0
    return {
        "gain": gain,
        "noise": noise,
        "other_drop": worst_drop,
        "foreground_gain": foreground,
        "passes": bool(passes),
    }


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
