"""The package's one NaN-mean and one bootstrap: numpy only, shared by every feature.

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
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BOOTSTRAP_SAMPLES", "bootstrap_means", "bootstrap_noise", "nan_mean"]

#: Bootstrap resamples of the cases (``tune``'s noise of a held-out gain).
BOOTSTRAP_SAMPLES = 2000


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
