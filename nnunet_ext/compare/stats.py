"""The statistics of ``compare``: paired bootstrap intervals, verdicts, ranks as challenges rank.

Everything is vectorised over versions, cases and columns (a column is one label and metric):

* :func:`resampled_means`: the means of every version and column in each bootstrap resample of
  the cases. One draw of case indices serves every version and column (the package's one
  bootstrap, :func:`nnunet_ext._stats.bootstrap_means`, called with one seed), so that the
  resamples are paired: a difference ``B - A`` is taken on the same cases.
* :func:`percentile_interval` and :func:`verdict`: the 95 % percentile interval of a difference
  and its reading in words.
* :func:`case_ranks` and :func:`first_probability`: per case and column, each version's rank
  (1 the best, ties share the mean rank, an undefined value ranks last), and how often a version
  has the best mean rank over the resamples.

NaN is "undefined" throughout, as in ``evaluate``: left out of a version's mean.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

from nnunet_ext._stats import bootstrap_means

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "CONFIDENCE",
    "NO_DIFFERENCE",
    "UNDEFINED",
    "VERDICTS",
    "case_ranks",
    "first_probability",
    "fractions_better",
    "percentile_interval",
    "resampled_means",
    "verdict",
]

#: The interval's coverage.
CONFIDENCE = 0.95
B_BETTER = "B better"
NO_DIFFERENCE = "no difference beyond noise"
A_BETTER = "A better"
#: No case where both are defined: nothing to compare.
UNDEFINED = "undefined"
#: Every verdict, in the order of the JSON format's documentation.
VERDICTS: tuple[str, ...] = (B_BETTER, NO_DIFFERENCE, A_BETTER, UNDEFINED)

#: Columns per call of the bootstrap: bounds the ``(samples, cases, columns)`` temporary.
_CHUNK = 64


def resampled_means(values: ArrayLike, *, samples: int, seed: int) -> NDArray[np.float64]:
    """Means over the cases of every version and column, in each paired bootstrap resample.

    Args:
        values: ``(versions, cases, columns)`` per-case values (NaN: undefined, left out).
        samples: Number of resamples of the cases.
        seed: Seed of the one draw of cases that every version and column shares.

    Returns:
        ``(samples, versions, columns)`` means (NaN where a resample holds no defined value).

    Examples:
        >>> a = np.array([[[0.5], [0.7], [0.9]]])  # one version, three cases, one column
        >>> b = a + 0.1
        >>> means = resampled_means(np.concatenate([a, b]), samples=4, seed=0)
        >>> np.allclose(means[:, 1] - means[:, 0], 0.1)  # the same cases in A and B
        True
    """
    array = np.asarray(values, dtype=np.float64)
    versions, cases, columns = array.shape
    table = array.transpose(1, 0, 2).reshape(cases, versions * columns)
    parts = [
        bootstrap_means(table[:, start : start + _CHUNK], samples=samples, seed=seed)
        for start in range(0, table.shape[1], _CHUNK)
    ]  # one seed: every chunk gets the same draw of cases
    return np.concatenate(parts, axis=1).reshape(samples, versions, columns)


def percentile_interval(
    draws: ArrayLike, *, confidence: float = CONFIDENCE
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The percentile interval of bootstrap draws along the first axis (NaN draws left out).

    Examples:
        >>> lo, hi = percentile_interval(np.arange(1001.0)[:, None])
        >>> round(float(lo[0]), 9), round(float(hi[0]), 9)
        (25.0, 975.0)
    """
    array = np.asarray(draws, dtype=np.float64)
    tail = 100.0 * (1.0 - confidence) / 2.0
    with warnings.catch_warnings():  # a column never defined: NaN, without numpy's warning
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(array, [tail, 100.0 - tail], axis=0)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def verdict(low: float, high: float, *, higher_is_better: bool) -> str:
    """Read an interval of ``B - A`` in words: which version is better beyond the noise.

    Examples:
        >>> verdict(0.004, 0.02, higher_is_better=True)
        'B better'
        >>> verdict(0.004, 0.02, higher_is_better=False)
        'A better'
        >>> verdict(-0.01, 0.02, higher_is_better=True)
        'no difference beyond noise'
        >>> verdict(np.nan, np.nan, higher_is_better=True)
        'undefined'
    """
    if np.isnan(low) or np.isnan(high):
        return UNDEFINED
    if low > 0:
        return B_BETTER if higher_is_better else A_BETTER
    if high < 0:
        return A_BETTER if higher_is_better else B_BETTER
    return NO_DIFFERENCE


def fractions_better(
    a: ArrayLike, b: ArrayLike, *, higher_is_better: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per column: the fraction of cases where B beats A, where A beats B, and the cases counted.

    Only cases where both are defined count; ties count for neither.

    Args:
        a: ``(cases, columns)`` values of A.
        b: ``(cases, columns)`` values of B.
        higher_is_better: ``(columns,)`` the direction of each column.

    Examples:
        >>> fractions_better([[0.5, 3.0], [0.6, 2.0], [np.nan, 1.0]],
        ...                  [[0.7, 4.0], [0.6, 1.0], [0.9, 1.0]], higher_is_better=[True, False])
        (array([0.5       , 0.33333333]), array([0.        , 0.33333333]), array([2, 3]))
    """
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    both = ~np.isnan(a_) & ~np.isnan(b_)
    gain = np.where(both, (b_ - a_) * sign, 0.0)
    counted = both.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_wins = np.where(counted > 0, (gain > 0).sum(axis=0) / np.maximum(counted, 1), np.nan)
        a_wins = np.where(counted > 0, (gain < 0).sum(axis=0) / np.maximum(counted, 1), np.nan)
    return b_wins, a_wins, counted.astype(np.int64)


def case_ranks(values: ArrayLike, *, higher_is_better: ArrayLike) -> NDArray[np.float64]:
    """Per case and column, each version's rank among the versions (challenge style).

    1 is the best; tied versions share the mean of their ranks; a version whose value is
    undefined (NaN) where another's is defined ranks last (tied with the other undefined ones);
    where no version is defined the ranks are NaN (the case is left out of that column).

    Args:
        values: ``(versions, cases, columns)``.
        higher_is_better: ``(columns,)``.

    Returns:
        ``(versions, cases, columns)`` ranks.

    Examples:
        >>> values = [[[0.9, 1.0]], [[0.8, np.nan]], [[0.9, 3.0]]]  # 3 versions, 1 case
        >>> case_ranks(values, higher_is_better=[True, False])[:, 0]
        array([[1.5, 1. ],
               [3. , 3. ],
               [1.5, 2. ]])
    """
    array = np.asarray(values, dtype=np.float64)
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    oriented = np.where(np.isnan(array), -np.inf, array * sign)  # higher: better
    mine, other = oriented[:, None], oriented[None, :]  # (versions, versions, cases, columns)
    better = (other > mine).sum(axis=1)
    tied = (other == mine).sum(axis=1) - 1
    ranks = 1.0 + better + 0.5 * tied
    none_defined = np.asarray(np.isnan(array).all(axis=0))
    return np.where(none_defined[None], np.nan, ranks)


def first_probability(mean_ranks: ArrayLike) -> NDArray[np.float64]:
    """How often each version has the best (lowest) mean rank over the draws (first axis).

    A draw where several versions share the best rank counts for each of them in equal parts;
    a draw with no defined rank counts for none.

    Args:
        mean_ranks: ``(samples, ..., versions)`` mean ranks per draw.

    Returns:
        ``(..., versions)`` probabilities.

    Examples:
        >>> first_probability([[1.0, 2.0], [1.5, 1.5], [2.0, 1.0], [1.0, 2.0]])
        array([0.625, 0.375])
    """
    array = np.asarray(mean_ranks, dtype=np.float64)
    filled = np.where(np.isnan(array), np.inf, array)
    best = filled.min(axis=-1, keepdims=True)
    first = (filled == best) & np.isfinite(filled)
    shares = first / np.maximum(first.sum(axis=-1, keepdims=True), 1)
    probabilities: NDArray[np.float64] = shares.mean(axis=0)
    return probabilities
