"""Score region (sigmoid) ensembles on :class:`~nnunet_ext.tune.region_data.RegionCVData`.

:func:`region_case_dice` scores one setting (per-region weights and thresholds) exactly as
deployed: fused with :func:`~nnunet_ext.ensemble.fusion.fuse_probabilities`, turned into labels
with :func:`~nnunet_ext.ensemble.fusion.probabilities_to_labels` (``regions_class_order``, later
regions win), each region scored on the label map as nnU-Net's evaluation does.

:func:`channel_dice` scores every candidate of one channel at once: the other channels fixed,
each voxel's label with the channel on and off is known, so the region's Dice for every
threshold ``j / 100`` follows from one histogram of the fused channel per weight candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.ensemble.fusion import fuse_probabilities, probabilities_to_labels
from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.tune.region_data import RegionCVData
from nnunet_ext.tune.search import simplex_grid

__all__ = [
    "THRESHOLDS",
    "active_labels",
    "channel_dice",
    "choose_candidate",
    "region_case_dice",
    "weight_candidates",
]

#: The thresholds tried: 0.01, 0.02, ..., 0.99 (bin ``b`` of a value ``v`` is ``ceil(100 v) - 1``,
#: so ``v > j / 100`` exactly when ``b >= j``).
THRESHOLDS = np.arange(1, 100) / 100.0
_BINS = 100


def weight_candidates(num_models: int, steps: int) -> NDArray[np.float64]:
    """Equal weights first, then the simplex grid of resolution ``steps`` (each row sums to 1).

    Examples:
        >>> weight_candidates(2, 2)
        array([[0.5, 0.5],
               [0. , 1. ],
               [1. , 0. ]])
    """
    equal = np.full((1, num_models), 1.0 / num_models)
    grid = simplex_grid(num_models, steps)
    grid = grid[~np.all(np.isclose(grid, equal), axis=1)]
    return np.concatenate([equal, grid])


def active_labels(
    data: RegionCVData, weights: NDArray[np.float64], thresholds: Sequence[float], case: int
) -> NDArray[np.integer]:
    """The deployed labels of case ``case``'s active voxels under one setting.

    Args:
        data: The compact CV data.
        weights: Normalised ``(M, R)`` weights (columns sum to 1).
        thresholds: One threshold per region channel.
        case: The case index.
    """
    part = data.case(case)
    members = [data.probabilities[m][:, part] for m in range(data.num_models)]
    fused = fuse_probabilities(members, weights)
    rules = LabelRules.build(len(data.order), thresholds=dict(enumerate(thresholds)))
    return probabilities_to_labels(fused, regions_class_order=data.order, rules=rules)


def _dice(
    tp: NDArray[np.float64], pred: NDArray[np.float64], ref: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``2 TP / (pred + ref)``, NaN where both are empty."""
    total = pred + ref
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * tp / np.where(total > 0, total, 1.0), np.nan)


def region_case_dice(
    data: RegionCVData,
    weights: NDArray[np.float64],
    thresholds: Sequence[float],
    cases: Sequence[int] | None = None,
) -> NDArray[np.float64]:
    """Per-case Dice ``(cases, R)`` of each region under one setting, as deployed.

    Args:
        data: The compact CV data.
        weights: Normalised ``(M, R)`` weights (columns sum to 1).
        thresholds: One threshold per region channel.
        cases: Case indices (default all).
    """
    picked = range(data.num_cases) if cases is None else cases
    out = np.empty((len(picked), len(data.regions)), dtype=np.float64)
    for row, case in enumerate(picked):
        labels = active_labels(data, weights, thresholds, case)
        reference = data.reference[data.case(case)]
        for r, region in enumerate(data.regions):
            predicted = np.isin(labels, region)
            truth = np.isin(reference, region)
            tp = float(np.count_nonzero(predicted & truth))
            ref = float(np.count_nonzero(truth) + data.inactive_reference[case, r])
            out[row, r] = _dice(np.array(tp), np.array(float(predicted.sum())), np.array(ref))
    return out


def _channel_context(
    data: RegionCVData, channel: int, weights: NDArray[np.float64], thresholds: Sequence[float]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Per active voxel: is it in the channel's region with the channel on, and with it off."""
    n = data.reference.size
    later = np.zeros(n, dtype=np.int64)
    earlier = np.zeros(n, dtype=np.int64)
    for j in range(len(data.order)):
        if j == channel:
            continue
        column = [data.probabilities[m][j : j + 1] for m in range(data.num_models)]
        fused = fuse_probabilities(column, weights[:, j : j + 1])[0]
        fires = fused > fused.dtype.type(thresholds[j])
        (later if j > channel else earlier)[fires] = data.order[j]
    region = data.regions[channel]
    on = np.where(later > 0, later, data.order[channel])
    off = np.where(later > 0, later, earlier)
    return np.isin(on, region), np.isin(off, region)


def channel_dice(
    data: RegionCVData,
    channel: int,
    weights: NDArray[np.float64],
    thresholds: Sequence[float],
    candidates: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per-case Dice of region ``channel`` for every weight candidate and threshold.

    Args:
        data: The compact CV data.
        channel: The region channel searched.
        weights: The current normalised ``(M, R)`` weights (the other channels' are kept).
        thresholds: The current thresholds (the other channels' are kept).
        candidates: ``(K, M)`` weight rows for the channel (each summing to 1).

    Returns:
        ``(K, cases, len(THRESHOLDS))`` Dice (NaN where the region is absent from both).
    """
    in_on, in_off = _channel_context(data, channel, weights, thresholds)
    truth = np.isin(data.reference, data.regions[channel])
    case_of = np.repeat(np.arange(data.num_cases), np.diff(data.offsets))
    cases = data.num_cases
    fixed = in_on & in_off
    fixed_pred = np.bincount(case_of[fixed], minlength=cases).astype(np.float64)
    fixed_tp = np.bincount(case_of[fixed & truth], minlength=cases).astype(np.float64)
    ref = np.bincount(case_of[truth], minlength=cases) + data.inactive_reference[:, channel]
    moving = in_on != in_off  # on: in when the channel fires; inverse: in when it does not
    index = case_of[moving] * 4 + truth[moving] * 2 + in_off[moving]
    values = data.probabilities[:, channel, moving]
    out = np.empty((len(candidates), cases, THRESHOLDS.size), dtype=np.float64)
    for k, row in enumerate(candidates):
        fused = fuse_probabilities(list(values[:, None, :]), row[:, None])[0]
        bins = np.clip(np.ceil(fused.astype(np.float64) * 100.0) - 1, 0, _BINS - 1).astype(np.int64)
        hist = np.bincount(index * _BINS + bins, minlength=cases * 4 * _BINS)
        hist = hist.reshape(cases, 2, 2, _BINS).astype(np.float64)  # case, truth, inverse, bin
        above = np.cumsum(hist[..., ::-1], axis=-1)[..., ::-1][..., 1:]  # bins >= j, j = 1..99
        below = np.cumsum(hist, axis=-1)[..., :-1]  # bins < j
        tp = fixed_tp[:, None] + above[:, 1, 0] + below[:, 1, 1]
        pred = fixed_pred[:, None] + above[:, :, 0].sum(axis=1) + below[:, :, 1].sum(axis=1)
        out[k] = _dice(tp, pred, ref[:, None].astype(np.float64))
    return out


def choose_candidate(
    dice: NDArray[np.float64], candidates: NDArray[np.float64], cases: Sequence[int]
) -> tuple[int, float, float]:
    """The candidate and threshold of the highest mean Dice over ``cases``.

    Ties go to the weights nearest equal weights, then to the middle of that candidate's
    best thresholds (the centre of a plateau, not its edge).

    Returns:
        ``(candidate index, threshold, mean Dice)``.

    Examples:
        >>> dice = np.zeros((2, 1, THRESHOLDS.size)); dice[1, 0, 29:40] = 1.0
        >>> choose_candidate(dice, np.array([[0.5, 0.5], [1.0, 0.0]]), [0])
        (1, 0.35, 1.0)
    """
    means = nan_mean(dice[:, list(cases), :], axis=1, empty=0.0)
    best = float(np.max(means))
    tied = means >= best - 1e-12
    equal = np.full(candidates.shape[1], 1.0 / candidates.shape[1])
    spread = np.abs(candidates - equal).sum(axis=1)
    k = min(np.flatnonzero(tied.any(axis=1)), key=lambda i: (spread[i], i))
    thresholds = np.flatnonzero(tied[k])
    j = thresholds[(thresholds.size - 1) // 2]
    return int(k), float(THRESHOLDS[j]), best
