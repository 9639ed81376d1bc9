"""The package's statistics, numpy only, shared by every feature.

The one NaN-mean, the one bootstrap, and the one held-out rule (``tune``'s steps and
``postprocess determine``'s component rules are judged by :func:`judge_label_step`).

A Dice (or any score) is NaN where it is undefined (label absent from reference and prediction),
and every mean over cases or labels leaves those out. :func:`nan_mean` is that mean, with
``np.nanmean``'s arithmetic (NaN entries count as 0 in numpy's sum, the count is of the others),
which is also how nnU-Net averages its ``summary.json``; it returns ``empty`` instead of warning
where nothing is defined. (The sum of the defined values alone, ``values[~isnan].mean()``, can
differ from it in the last bit: numpy sums pairwise, and removing the NaN slots regroups the sum.
``evaluate`` and ``postprocess`` have always averaged that way, and their JSON outputs keep it
through ``compact=True``, so that their numbers stay bit-identical across versions.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "BOOTSTRAP_SAMPLES",
    "CASE_TOLERANCE",
    "DROP_TOLERANCE",
    "MIN_GAIN",
    "NOISE_Z",
    "bootstrap_means",
    "bootstrap_noise",
    "gain_counts",
    "judge_label_step",
    "nan_mean",
    "paired_difference",
    "paired_values",
]

#: Bootstrap resamples of the cases (``tune``'s noise of a held-out gain).
BOOTSTRAP_SAMPLES = 2000
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


@overload
def nan_mean(
    values: ArrayLike,
    *,
    axis: None = None,
    empty: float = math.nan,
    compact: bool = False,
    finite: bool = False,
) -> float: ...


@overload
def nan_mean(
    values: ArrayLike,
    *,
    axis: int,
    empty: float = math.nan,
    compact: bool = False,
    finite: bool = False,
) -> NDArray[np.float64]: ...


def nan_mean(
    values: ArrayLike,
    *,
    axis: int | None = None,
    empty: float = math.nan,
    compact: bool = False,
    finite: bool = False,
) -> float | NDArray[np.float64]:
    """Mean of the values that are not NaN, as ``np.nanmean``; ``empty`` where there are none.

    Args:
        values: The values (float64; NaN: undefined).
        axis: ``None``: one mean of all values (a float); an axis: the means along it (an array).
        empty: The result where no value is defined (``np.nanmean`` warns and gives NaN).
        compact: Average the defined values gathered into one array (``values[~isnan].mean()``:
            ``evaluate``'s and ``postprocess``'s arithmetic) instead of ``np.nanmean``'s; the two
            can differ in the last bit. Only with ``axis=None``.
        finite: Leave out infinite values too (``postprocess``: a distance of inf is undefined).

    Returns:
        The mean, or the means along ``axis``.

    Examples:
        >>> nan_mean([1.0, np.nan, 3.0]), nan_mean([np.nan]), nan_mean([np.nan], empty=0.0)
        (2.0, nan, 0.0)
        >>> nan_mean([[0.5, np.nan], [1.0, np.nan]], axis=0)
        array([0.75,  nan])
        >>> nan_mean([1.0, np.inf, 2.0], finite=True, compact=True)
        1.5
    """
    array = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(array) if finite else ~np.isnan(array)
    if compact:
        if axis is not None:
            raise ValueError(f"compact means one mean of all values (axis=None); got axis={axis}.")
        kept = array[valid]
        return float(kept.mean()) if kept.size else empty
    counts = valid.sum(axis=axis)
    sums = np.where(valid, array, 0.0).sum(axis=axis)
    if axis is None:
        return float(sums / counts) if counts else empty
    with np.errstate(invalid="ignore", divide="ignore"):
        means: NDArray[np.float64] = np.where(counts > 0, sums / np.maximum(counts, 1), empty)
    return means


def bootstrap_means(
    values: ArrayLike, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> NDArray[np.float64]:
    """Means of ``samples`` bootstrap resamples of the cases (rows), NaN rows of a column left out.

    One draw of case indices serves every column, so that the columns of one case stay paired
    (per-label differences of the same cases). NaN entries are left out of their column's mean
    (:func:`nan_mean`'s arithmetic); a column with no defined value in a resample gives NaN.

    Args:
        values: Per-case values, ``(cases,)`` or ``(cases, columns)``.
        samples: Number of resamples.
        seed: Seed of the draw (the same seed, the same resamples).

    Returns:
        ``(samples,)`` or ``(samples, columns)`` means.

    Examples:
        >>> bootstrap_means([0.2, 0.2, 0.2], samples=3)
        array([0.2, 0.2, 0.2])
        >>> bootstrap_means([[0.1, 1.0], [0.3, np.nan]], samples=4).shape
        (4, 2)
    """
    array = np.asarray(values, dtype=np.float64)
    flat = array.ndim == 1
    table = array[:, None] if flat else array
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, table.shape[0], size=(samples, table.shape[0]))
    drawn = table[picks]  # (samples, cases, columns)
    valid = ~np.isnan(drawn)
    counts = valid.sum(axis=1)
    sums = np.where(valid, drawn, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means: NDArray[np.float64] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means[:, 0] if flat else means


def bootstrap_noise(
    differences: NDArray[np.float64], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> float:
    """Bootstrap standard error of the mean of per-case differences (NaN cases dropped).

    Examples:
        >>> round(bootstrap_noise(np.array([0.1, 0.1, 0.1])), 6)
        0.0
        >>> 0.02 < bootstrap_noise(np.array([0.0, 0.1, 0.2, -0.1, 0.3])) < 0.1
        True
    """
    values = differences[~np.isnan(differences)]
    if values.size < 2:
        return float("inf")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(samples, values.size))
    return float(values[picks].mean(axis=1).std())


def gain_counts(differences: NDArray[np.float64], *, no_loss_gain: float = MIN_GAIN) -> bool:
    """Whether a held-out gain counts: it beats the noise, or no case loses.

    The mean of the per-case differences (NaN cases left out) must exceed :data:`MIN_GAIN` and
    either ``NOISE_Z`` bootstrap standard errors or, where no case drops by more than
    :data:`CASE_TOLERANCE`, ``no_loss_gain``: a step that loses on no held-out case needs no
    test against a loss. (A gain made on one case of ten, such as a false positive removed where
    the label is absent, never beats the bootstrap noise of ten cases, however clean.)

    Args:
        differences: Per-case held-out differences, higher is better (NaN: left out).
        no_loss_gain: The gain a step that loses on no case must exceed when it does not beat
            the noise. ``tune`` keeps :data:`MIN_GAIN`; ``postprocess determine`` asks
            :data:`CASE_TOLERANCE` (:data:`nnunet_ext.postprocess.heldout.NO_LOSS_GAIN`).

    Examples:
        >>> gain_counts(np.array([0.002, -0.001, 1.0, 0.0, 0.003]))  # one case, no loss
        True
        >>> gain_counts(np.array([0.3, -0.2, 0.4, -0.3, 0.2]))  # mean 0.08, noisy
        False
        >>> gain_counts(np.array([0.0005, 0.0, 0.0]))  # below MIN_GAIN
        False
        >>> small = np.array([0.0005, 0.0, 0.0002, 0.0, 0.004, 0.0, 0.0, 0.0051])  # within noise
        >>> gain_counts(small), gain_counts(small, no_loss_gain=CASE_TOLERANCE)
        (True, False)
    """
    values = differences[~np.isnan(differences)]
    if values.size == 0:
        return False
    gain = float(values.mean())
    if gain <= MIN_GAIN:
        return False
    if gain > NOISE_Z * bootstrap_noise(values):
        return True
    return gain > no_loss_gain and float(values.min()) >= -CASE_TOLERANCE


def paired_values(
    new: NDArray[np.float64], old: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``new`` and ``old`` with a NaN beside a value replaced by 1 (see :func:`paired_difference`).

    Afterwards an entry is NaN on one side exactly where it is NaN on the other.

    Examples:
        >>> a, b = paired_values(np.array([np.nan, np.nan, 0.5]), np.array([0.0, np.nan, 0.4]))
        >>> a.tolist(), b.tolist()
        ([1.0, nan, 0.5], [0.0, nan, 0.4])
    """
    new_filled = np.where(np.isnan(new) & ~np.isnan(old), 1.0, new)
    old_filled = np.where(np.isnan(old) & ~np.isnan(new), 1.0, old)
    return new_filled, old_filled


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
    new_filled, old_filled = paired_values(new, old)
    difference: NDArray[np.float64] = new_filled - old_filled
    return difference


def judge_label_step(
    j: int,
    diff: NDArray[np.float64],
    *,
    exempt: Sequence[int] = (),
    uncounted: NDArray[np.bool_] | None = None,
    no_loss_gain: float = MIN_GAIN,
) -> dict[str, Any]:
    """The held-out verdict on a step for label column ``j`` from per-case differences.

    ``diff`` is ``(cases, L)``: the step's held-out per-case Dice minus the current spec's. The
    step passes when the label's mean gain exceeds ``NOISE_Z`` bootstrap standard errors and
    :data:`MIN_GAIN`, and no other label's mean drop exceeds its own noise (at least
    :data:`DROP_TOLERANCE`); a drop of a column in ``exempt`` (a label the rules decide later)
    does not count, nor, per column, the cases marked in ``uncounted`` (``(cases, L)``, see
    :func:`nnunet_ext.tune.judge.fold_blind_cases`). ``foreground_gain`` (mean over cases of
    the mean over labels, every label included) ranks passing steps. ``no_loss_gain``: as
    :func:`gain_counts`.

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
    passes = gain_counts(diff[:, j], no_loss_gain=no_loss_gain) and worst_drop == 0.0
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
