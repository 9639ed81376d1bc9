"""Held-out judgement of a component rule: k folds over the cases, tune's noise rule.

A rule for one label has several candidate thresholds. Its held-out gain is that of the whole
procedure: on each of :data:`FOLDS` folds of the cases the threshold is chosen on the other
cases (the best mean, or none if none beats no rule), and the held-out cases get that choice.
The per-case differences to no rule (every label, oriented so that higher is better) are then
judged as ``nnunet-ext tune`` judges a step (:mod:`nnunet_ext.tune.judge`, same constants,
same bootstrap :func:`nnunet_ext._stats.bootstrap_noise`): the label's mean gain must exceed
``NOISE_Z`` noises and ``MIN_GAIN``, and no other label may drop by more than ``NOISE_Z``
of its noise or ``DROP_TOLERANCE``, whichever is larger.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import bootstrap_noise, nan_mean

__all__ = ["DROP_TOLERANCE", "FOLDS", "MIN_GAIN", "NOISE_Z", "fold_ids", "held_out", "judge_step"]

#: tune's rule (:mod:`nnunet_ext.tune.judge`): a gain counts above this many noises ...
NOISE_Z = 2.0
#: ... and this much.
MIN_GAIN = 1e-3
#: Another label may drop by its noise (``NOISE_Z`` standard errors) or this, the larger.
DROP_TOLERANCE = 0.005
#: Folds over the cases (fewer with fewer cases).
FOLDS = 5


def fold_ids(num_cases: int, folds: int = FOLDS) -> NDArray[np.int64]:
    """The fold of each case (in case order): ``i % min(folds, num_cases)``.

    Examples:
        >>> fold_ids(7, 3).tolist()
        [0, 1, 2, 0, 1, 2, 0]
    """
    return np.arange(num_cases, dtype=np.int64) % max(1, min(folds, num_cases))


# Deliberate duplicate of nnunet_ext.tune.judge.judge_label_step (without its exempt and
# uncounted columns): postprocess cannot import tune (tune imports postprocess, and importing
# the tune package first would need a half-initialised postprocess); a test checks that both
# give the same verdict, gain, noise and drop on random differences.
def judge_step(j: int, diff: NDArray[np.float64]) -> dict[str, Any]:
    """Judge a step for label column ``j`` by tune's rule, from held-out per-case differences.

    Args:
        j: The label column the step is for.
        diff: ``(cases, labels)`` held-out per-case differences (higher is better; NaN left
            out).

    Returns:
        ``gain``, ``noise``, ``other_drop`` (the worst drop of another label beyond its
        tolerance, 0 if none) and ``passes``.

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
    passes = gain > max(NOISE_Z * noise, MIN_GAIN) and worst_drop == 0.0
    return {"gain": gain, "noise": noise, "other_drop": worst_drop, "passes": bool(passes)}


def best_candidate(
    goodness: NDArray[np.float64], baseline: NDArray[np.float64], j: int
) -> int | None:
    """The candidate with the best mean of label ``j``, if it beats no rule.

    Ties on label ``j`` go to the best mean over all labels, then to the first candidate.

    Args:
        goodness: ``(candidates, cases, labels)`` per-case objective (higher better).
        baseline: ``(cases, labels)`` per-case objective without the rule.
        j: The label column.

    Examples:
        >>> good = np.array([[[0.5], [0.7]], [[0.6], [0.9]]])
        >>> best_candidate(good, np.array([[0.5], [0.5]]), 0)
        1
        >>> best_candidate(good[:1] - 0.2, np.array([[0.5], [0.5]]), 0) is None
        True
        >>> tie = np.array([[[0.9, 0.2]], [[0.9, 0.4]]])  # label 0 ties; label 1 decides
        >>> best_candidate(tie, np.array([[0.5, 0.3]]), 0)
        1
    """
    if goodness.shape[0] == 0:
        return None
    means = nan_mean(goodness[:, :, j], axis=1, empty=-np.inf)
    overall = nan_mean(nan_mean(goodness, axis=1), axis=1, empty=-np.inf)
    order = np.lexsort((np.arange(means.size), -overall, -means))
    best = int(order[0])
    return best if means[best] > nan_mean(baseline[:, j], empty=-np.inf) else None


def held_out(
    goodness: NDArray[np.float64],
    baseline: NDArray[np.float64],
    j: int,
    folds: NDArray[np.int64],
) -> tuple[NDArray[np.float64], list[int | None]]:
    """Per-case held-out differences of choosing a candidate on the other folds.

    Args:
        goodness: ``(candidates, cases, labels)`` per-case objective (higher better).
        baseline: ``(cases, labels)`` without the rule.
        j: The label column whose mean picks the candidate.
        folds: Fold of each case (:func:`fold_ids`).

    Returns:
        ``(cases, labels)`` differences (0 where a fold chose no candidate) and the choice of
        each fold (candidate index or ``None``).

    Examples:
        >>> good = np.array([[[0.9], [0.8], [0.9], [0.7]]])  # one candidate, 4 cases
        >>> diff, choices = held_out(good, np.full((4, 1), 0.5), 0, fold_ids(4, 2))
        >>> diff[:, 0].round(2).tolist(), choices
        ([0.4, 0.3, 0.4, 0.2], [0, 0])
    """
    diff = np.zeros(baseline.shape, dtype=np.float64)
    choices: list[int | None] = []
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        if not train.any():  # one case: nothing to choose on
            choices.append(None)
            continue
        choice = best_candidate(goodness[:, train], baseline[train], j)
        choices.append(choice)
        if choice is not None:
            diff[test] = goodness[choice][test] - baseline[test]
    return diff, choices
