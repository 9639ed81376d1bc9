"""Held-out judgement of a component rule: k folds over the cases, tune's noise rule.

A rule for one label has several candidate thresholds. Its held-out gain is that of the whole
procedure: on each of :data:`FOLDS` folds of the cases the threshold is chosen on the other
cases (the best mean, or none if none beats no rule), and the held-out cases get that choice.
The per-case differences to no rule (every label, oriented so that higher is better) are then
judged as ``nnunet-ext tune`` judges a step, by the package's one held-out rule
(:func:`nnunet_ext._stats.judge_label_step`): the label's mean gain must exceed
``MIN_GAIN`` and either ``NOISE_Z`` noises or, where no case loses more than
``CASE_TOLERANCE``, :data:`NO_LOSS_GAIN` (stricter than tune here), and no other label may
drop by more than ``NOISE_Z`` of its noise or ``DROP_TOLERANCE``, whichever is larger. For
Dice and IoU the differences are paired as tune pairs them: a case the label is absent from
(NaN: a perfect case) counts as 1 beside a side that predicts it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import (
    CASE_TOLERANCE,
    DROP_TOLERANCE,
    MIN_GAIN,
    NOISE_Z,
    gain_counts,
    judge_label_step,
    nan_mean,
    paired_difference,
)

__all__ = [
    "CASE_TOLERANCE",
    "DROP_TOLERANCE",
    "FOLDS",
    "MIN_GAIN",
    "NOISE_Z",
    "NO_LOSS_GAIN",
    "RULE_TEXT",
    "best_candidate",
    "differences",
    "fold_ids",
    "gain_counts",
    "held_out",
    "judge_step",
    "paired_difference",
    "verdict_text",
]

#: Folds over the cases (fewer with fewer cases).
FOLDS = 5

#: A held-out gain that does not beat the noise counts, where no case loses more than
#: ``CASE_TOLERANCE``, only above this (``tune`` asks ``MIN_GAIN``). The no-loss test cannot
#: vouch for a gain of a few thousandths spread over the cases: a loss on one case the folds
#: did not hold (a second true component removed) outweighs it. On one of the demo's draws,
#: ``keep_top_k`` of LV chosen on 8 cases gained +0.0012 held out (noise 0.0007, no loss) and
#: cost a new case 0.09 Dice; a component error the rules exist for (a false-positive case
#: emptied) gains tenths.
NO_LOSS_GAIN = CASE_TOLERANCE

#: The held-out rule in words, for the plans' records.
RULE_TEXT = (
    "the held-out gain must exceed 0.001 and either 2 x its bootstrap noise, or 0.005 with no "
    "case losing more than 0.005, and no other label may drop by more than max(2 x its noise, "
    "0.005)"
)


def verdict_text(metric: str, verdict: dict[str, Any]) -> str:
    """A held-out verdict (:func:`judge_step`'s) in words, for the plans' records.

    Examples:
        >>> verdict_text("dice", {"gain": 0.0012, "noise": 0.0007, "other_drop": 0.0})[:46]
        'held-out dice gain +0.0012 (noise 0.0007; need'
    """
    return (
        f"held-out {metric} gain {verdict['gain']:+.4g} (noise {verdict['noise']:.3g}; needs "
        "> 0.001 and > 2 noise, or > 0.005 with no case losing > 0.005); worst other-label "
        f"drop beyond its noise {verdict['other_drop']:.4g}"
    )


def fold_ids(num_cases: int, folds: int = FOLDS) -> NDArray[np.int64]:
    """The fold of each case (in case order): ``i % min(folds, num_cases)``.

    Examples:
        >>> fold_ids(7, 3).tolist()
        [0, 1, 2, 0, 1, 2, 0]
    """
    return np.arange(num_cases, dtype=np.int64) % max(1, min(folds, num_cases))


def judge_step(j: int, diff: NDArray[np.float64]) -> dict[str, Any]:
    """Judge a step for label column ``j`` by the package's held-out rule.

    :func:`nnunet_ext._stats.judge_label_step`, every other label counted, a gain without a
    loss counted above :data:`NO_LOSS_GAIN`: ``gain``, ``noise``, ``other_drop`` and
    ``passes``.

    Examples:
        >>> diff = np.array([[0.10, 0.0], [0.12, 0.0], [0.11, 0.001], [0.09, -0.001]])
        >>> judge_step(0, diff)["passes"], judge_step(1, diff)["passes"]
        (True, False)
    """
    return judge_label_step(j, diff, no_loss_gain=NO_LOSS_GAIN)


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
