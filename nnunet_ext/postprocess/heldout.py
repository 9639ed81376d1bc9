"""Held-out judgement of a component rule: k folds over the cases, tune's noise rule.

A rule for one label has several candidate thresholds. Its held-out gain is that of the whole
procedure: on each of :data:`FOLDS` folds of the cases the threshold is chosen on the other
cases (the best mean, or none if none beats no rule), and the held-out cases get that choice.
The per-case differences to no rule (every label, oriented so that higher is better) are then
judged as ``nnunet-ext tune`` judges a step (:mod:`nnunet_ext.tune.judge`, same constants,
same bootstrap :func:`nnunet_ext._stats.bootstrap_noise`): the label's mean gain must exceed
``MIN_GAIN`` and either ``NOISE_Z`` noises or no case may lose more than ``CASE_TOLERANCE``,
and no other label may drop by more than ``NOISE_Z`` of its noise or ``DROP_TOLERANCE``,
whichever is larger. For Dice and IoU the differences are paired as tune pairs them: a case
the label is absent from (NaN: a perfect case) counts as 1 beside a side that predicts it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import bootstrap_noise, nan_mean

__all__ = [
    "CASE_TOLERANCE",
    "DROP_TOLERANCE",
    "FOLDS",
    "MIN_GAIN",
    "NOISE_Z",
    "best_candidate",
    "differences",
    "fold_ids",
    "gain_counts",
    "held_out",
    "judge_step",
    "paired_difference",
]

#: tune's rule (:mod:`nnunet_ext.tune.judge`): a gain counts above this many noises ...
NOISE_Z = 2.0
#: ... and this much.
MIN_GAIN = 1e-3
#: Another label may drop by its noise (``NOISE_Z`` standard errors) or this, the larger.
DROP_TOLERANCE = 0.005
#: A gain above ``MIN_GAIN`` counts without the noise test where no case loses more than this.
CASE_TOLERANCE = 0.005
#: Folds over the cases (fewer with fewer cases).
FOLDS = 5


def fold_ids(num_cases: int, folds: int = FOLDS) -> NDArray[np.int64]:
    """The fold of each case (in case order): ``i % min(folds, num_cases)``.

    Examples:
        >>> fold_ids(7, 3).tolist()
        [0, 1, 2, 0, 1, 2, 0]
    """
    return np.arange(num_cases, dtype=np.int64) % max(1, min(folds, num_cases))


# Deliberate duplicate of nnunet_ext.tune.judge (gain_counts, paired_difference and
# judge_label_step without its exempt and uncounted columns): postprocess cannot import tune
# (tune imports postprocess, and importing the tune package first would need a half-initialised
# postprocess); a test checks that both give the same verdicts and values on random differences.
def gain_counts(differences: NDArray[np.float64]) -> bool:
    """Whether a held-out gain counts: above ``MIN_GAIN`` and beating the noise, or no case loses.

    Examples:
        >>> gain_counts(np.array([0.002, -0.001, 1.0, 0.0, 0.003]))  # one case, no loss
        True
        >>> gain_counts(np.array([0.3, -0.2, 0.4, -0.3, 0.2]))  # mean 0.08, noisy
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
    """Per-case ``new - old``, a NaN (a perfect case) beside a value counting as 1.

    NaN is the Dice of a label absent from reference and prediction; where only one side is
    NaN, the other predicted the absent label and lost the case.

    Examples:
        >>> new, old = np.array([0.9, np.nan, np.nan, 0.0]), np.array([0.8, 0.0, np.nan, np.nan])
        >>> paired_difference(new, old).round(2).tolist()
        [0.1, 1.0, nan, -1.0]
    """
    new_filled = np.where(np.isnan(new) & ~np.isnan(old), 1.0, new)
    old_filled = np.where(np.isnan(old) & ~np.isnan(new), 1.0, old)
    difference: NDArray[np.float64] = new_filled - old_filled
    return difference


def judge_step(j: int, diff: NDArray[np.float64]) -> dict[str, Any]:
    """Judge a step for label column ``j`` by tune's rule, from held-out per-case differences.

    Args:
        j: The label column the step is for.
        diff: ``(cases, labels)`` held-out per-case differences (higher is better; NaN left
            out).

    Returns:
        ``gain``, ``noise``, ``other_drop`` (the worst drop of another label beyond its
        tolerance, 0 if none) and ``passes`` (:func:`gain_counts` and no such drop).

    Examples:
        >>> diff = np.array([[0.10, 0.0], [0.12, 0.0], [0.11, 0.001], [0.09, -0.001]])
        >>> judge_step(0, diff)["passes"], judge_step(1, diff)["passes"]
        (True, False)
        >>> judge_step(0, diff - [0.0, 0.2])["passes"]  # label 1 drops by 0.2
        False
    """
    gain = nan_mean(diff[:, j], empty=0.0)
    noise = bootstrap_noise(diff[:, j])
    worst_drop = 0.0
    for k in range(diff.shape[1]):
        column = diff[:, k]
        if k == j or not np.any(~np.isnan(column)):
            continue
        tolerance = max(NOISE_Z * bootstrap_noise(column), DROP_TOLERANCE)
        worst_drop = max(worst_drop, -nan_mean(column) - tolerance)
    passes = gain_counts(diff[:, j]) and worst_drop == 0.0
    return {"gain": gain, "noise": noise, "other_drop": worst_drop, "passes": bool(passes)}


def differences(
    goodness: NDArray[np.float64], baseline: NDArray[np.float64], *, paired: bool
) -> NDArray[np.float64]:
    """``(candidates, cases, labels)`` per-case differences of each candidate to no rule.

    ``paired``: NaN means a perfect case (Dice, IoU: the label absent from both), scored as
    :func:`paired_difference` does; else NaN entries stay NaN (left out).
    """
    if paired:
        return paired_difference(goodness, np.broadcast_to(baseline, goodness.shape))
    plain: NDArray[np.float64] = goodness - baseline
    return plain


def best_candidate(diffs: NDArray[np.float64], j: int) -> int | None:
    """The candidate with the best mean difference of label ``j``, if it is above 0.

    Ties on label ``j`` go to the best mean over all labels, then to the first candidate.

    Args:
        diffs: ``(candidates, cases, labels)`` per-case differences to no rule (higher better).
        j: The label column.

    Examples:
        >>> diffs = np.array([[[0.0], [0.2]], [[0.1], [0.4]]])
        >>> best_candidate(diffs, 0)
        1
        >>> best_candidate(diffs[:1] - 0.2, 0) is None
        True
        >>> tie = np.array([[[0.4, -0.1]], [[0.4, 0.1]]])  # label 0 ties; label 1 decides
        >>> best_candidate(tie, 0)
        1
    """
    if diffs.shape[0] == 0:
        return None
    means = nan_mean(diffs[:, :, j], axis=1, empty=-np.inf)
    overall = nan_mean(nan_mean(diffs, axis=1), axis=1, empty=-np.inf)
    best = int(np.lexsort((np.arange(means.size), -overall, -means))[0])
    return best if means[best] > 0 else None


def held_out(
    diffs: NDArray[np.float64], j: int, folds: NDArray[np.int64]
) -> tuple[NDArray[np.float64], list[int | None]]:
    """Per-case held-out differences of choosing a candidate on the other folds.

    Args:
        diffs: ``(candidates, cases, labels)`` per-case differences to no rule (higher better).
        j: The label column whose mean picks the candidate.
        folds: Fold of each case (:func:`fold_ids`).

    Returns:
        ``(cases, labels)`` differences (0 where a fold chose no candidate) and the choice of
        each fold (candidate index or ``None``).

    Examples:
        >>> diffs = np.array([[[0.4], [0.3], [0.4], [0.2]]])  # one candidate, 4 cases
        >>> diff, choices = held_out(diffs, 0, fold_ids(4, 2))
        >>> diff[:, 0].round(2).tolist(), choices
        ([0.4, 0.3, 0.4, 0.2], [0, 0])
    """
    diff = np.zeros(diffs.shape[1:], dtype=np.float64)
    choices: list[int | None] = []
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        if not train.any():  # one case: nothing to choose on
            choices.append(None)
            continue
        choice = best_candidate(diffs[:, train], j)
        choices.append(choice)
        if choice is not None:
            diff[test] = diffs[choice][test]
    return diff, choices
