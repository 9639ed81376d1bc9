"""Compare evaluations of the same cases: is version B better than A, by how much, how surely?

:func:`compare_evaluations` reads two or more evaluation files (``nnunet-ext evaluate --json``),
checks that they were evaluated alike (:mod:`nnunet_ext.compare.inputs`) and, per label and
metric, and for the score when there is one, gives each version's mean, the difference of each
later version from the first with its bootstrap interval over paired resamples of the cases, the
share of cases each one wins, and a verdict; with three or more versions also their ranks and
the probability that each ranks first (:mod:`nnunet_ext.compare.stats`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import BOOTSTRAP_SAMPLES, nan_mean
from nnunet_ext.compare.inputs import Versions, read_versions
from nnunet_ext.compare.results import Comparison, Difference, Standing
from nnunet_ext.compare.stats import (
    CONFIDENCE,
    case_ranks,
    first_probability,
    fractions_better,
    percentile_interval,
    resampled_means,
    verdict,
)
from nnunet_ext.evaluate.score import ScoreSpec

__all__ = ["MIN_SAMPLES", "compare_evaluations"]

#: Fewest resamples accepted: the 2.5th percentile of fewer is mostly noise.
MIN_SAMPLES = 100


def compare_evaluations(
    evaluations: Sequence[str | os.PathLike[str]],
    *,
    names: Sequence[str] | None = None,
    common_cases: bool = False,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare evaluations of the same cases, each later one against the first.

    Args:
        evaluations: Two or more files written by ``nnunet-ext evaluate --json`` (the first
            is version A), evaluated with the same labels, metrics, conventions and score file.
        names: One name per file (default: the file stems).
        common_cases: Compare the cases every file has, listing the others, instead of refusing
            files of different cases.
        samples: Bootstrap resamples of the cases.
        seed: Seed of the resampling (the same seed, the same intervals).

    Returns:
        The comparison: differences with intervals and verdicts; ranks with 3+ versions.

    Raises:
        FileNotFoundError: If a file does not exist.
        ValueError: If a file is not an evaluation or was evaluated otherwise than the first;
            for bad ``names``, ``samples`` or ``seed``.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < MIN_SAMPLES:
        raise ValueError(f"samples must be an integer >= {MIN_SAMPLES}; got {samples!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}.")
    versions = read_versions(evaluations, names=names, common_cases=common_cases)
    count, cases, num_labels, num_metrics = versions.values.shape
    flat = versions.values.reshape(count, cases, num_labels * num_metrics)
    higher = np.tile(versions.higher_is_better, num_labels)
    draws = resampled_means(flat, samples=samples, seed=seed)
    means = _means(flat)
    differences: list[Difference] = []
    score = None
    if versions.score is not None and versions.score_terms is not None:
        score = _score(
            versions.score, versions.score_terms, versions.label_keys, samples=samples, seed=seed
        )
    for b in range(1, count):
        differences.extend(_label_rows(versions, b, flat, means, draws, higher))
        if score is not None and versions.score is not None:
            differences.append(_score_row(versions, b, versions.score.name, score))
    ranking: tuple[Standing, ...] = ()
    if count > 2:
        score_case = None if score is None else score[0]
        ranking = _ranking(versions, flat, higher, score_case, samples=samples, seed=seed)
    return Comparison(
        versions=versions.names,
        paths=tuple(str(p) for p in versions.paths),
        cases=versions.cases,
        left_out=versions.left_out,
        conventions=versions.conventions,
        samples=samples,
        seed=seed,
        confidence=CONFIDENCE,
        differences=tuple(differences),
        ranking=ranking,
    )


def _means(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(versions, columns)`` means over the cases with ``evaluate``'s arithmetic."""
    count, _, columns = values.shape
    return np.array(
        [[nan_mean(values[v, :, c], compact=True) for c in range(columns)] for v in range(count)]
    ).reshape(count, columns)


def _row(
    versions: Versions,
    b: int,
    where: tuple[str | None, str, str, bool],
    point: tuple[float, float],
    draws: NDArray[np.float64],
    fractions: tuple[float, float, int],
) -> Difference:
    """One :class:`Difference` from its means, the drawn differences and the case fractions."""
    label, name, metric, higher = where
    low, high = percentile_interval(draws)
    lo, hi = float(low), float(high)
    mean_a, mean_b = point
    return Difference(
        a=versions.names[0],
        b=versions.names[b],
        label=label,
        name=name,
        metric=metric,
        higher_is_better=higher,
        mean_a=mean_a,
        mean_b=mean_b,
        difference=mean_b - mean_a,
        interval=(lo, hi),
        num_cases=fractions[2],
        b_better=fractions[0],
        a_better=fractions[1],
        verdict=verdict(lo, hi, higher_is_better=higher),
    )


def _label_rows(
    versions: Versions,
    b: int,
    flat: NDArray[np.float64],
    means: NDArray[np.float64],
    draws: NDArray[np.float64],
    higher: NDArray[np.bool_],
) -> list[Difference]:
    b_wins, a_wins, counted = fractions_better(flat[0], flat[b], higher_is_better=higher)
    rows = []
    num_metrics = len(versions.metrics)
    for c in range(flat.shape[2]):
        j, m = divmod(c, num_metrics)
        where = (
            versions.label_keys[j],
            versions.label_names[j],
            versions.metrics[m],
            bool(higher[c]),
        )
        rows.append(
            _row(
                versions,
                b,
                where,
                (float(means[0, c]), float(means[b, c])),
                draws[:, b, c] - draws[:, 0, c],
                (float(b_wins[c]), float(a_wins[c]), int(counted[c])),
            )
        )
    return rows


def _score(
    spec: ScoreSpec, terms: NDArray[np.float64], keys: Sequence[str], *, samples: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Each version's score per case, per resample and on all cases.

    From ``(versions, cases, labels, terms)`` term values: ``(versions, cases)``,
    ``(samples, versions)`` and ``(versions,)`` scores.
    """
    count, cases, labels, num_terms = terms.shape
    flat = terms.reshape(count, cases, labels * num_terms)
    drawn = resampled_means(flat, samples=samples, seed=seed)
    full = _means(flat)
    return (
        spec.scores_from_means(terms, keys),
        spec.scores_from_means(drawn.reshape(samples, count, labels, num_terms), keys),
        spec.scores_from_means(full.reshape(count, labels, num_terms), keys),
    )


def _score_row(
    versions: Versions,
    b: int,
    name: str,
    score: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
) -> Difference:
    per_case, draws, means = score
    b_wins, a_wins, counted = fractions_better(
        per_case[0][:, None], per_case[b][:, None], higher_is_better=[True]
    )
    return _row(
        versions,
        b,
        (None, name, "score", True),
        (float(means[0]), float(means[b])),
        draws[:, b] - draws[:, 0],
        (float(b_wins[0]), float(a_wins[0]), int(counted[0])),
    )


def _ranking(
    versions: Versions,
    flat: NDArray[np.float64],
    higher: NDArray[np.bool_],
    score_case: NDArray[np.float64] | None,
    *,
    samples: int,
    seed: int,
) -> tuple[Standing, ...]:
    """Mean ranks, places and probabilities of ranking first: per column, score, overall.

    The overall row averages the mean ranks of the label and metric columns.
    """
    values, directions = flat, higher
    if score_case is not None:
        values = np.concatenate([flat, score_case[:, :, None]], axis=2)
        directions = np.append(higher, True)
    ranks = case_ranks(values, higher_is_better=directions)  # (versions, cases, columns)
    mean_ranks = _means(ranks).T  # (columns, versions)
    drawn = resampled_means(ranks, samples=samples, seed=seed).transpose(0, 2, 1)
    columns = flat.shape[2]
    overall = nan_mean(mean_ranks[:columns], axis=0)
    overall_drawn = nan_mean(drawn[:, :columns], axis=1)
    probability = first_probability(drawn)
    rows: list[tuple[str | None, str, str]] = []
    num_metrics = len(versions.metrics)
    for c in range(columns):
        j, m = divmod(c, num_metrics)
        rows.append((versions.label_keys[j], versions.label_names[j], versions.metrics[m]))
    if score_case is not None and versions.score is not None:
        rows.append((None, versions.score.name, "score"))
    standings = [_standing(where, mean_ranks[c], probability[c]) for c, where in enumerate(rows)]
    standings.append(_standing((None, "overall", "all"), overall, first_probability(overall_drawn)))
    return tuple(standings)


def _standing(
    where: tuple[str | None, str, str],
    mean_rank: NDArray[np.float64],
    probability: NDArray[np.float64],
) -> Standing:
    places = case_ranks(mean_rank[:, None, None], higher_is_better=[False])[:, 0, 0]
    return Standing(
        label=where[0],
        name=where[1],
        metric=where[2],
        mean_rank=tuple(float(v) for v in mean_rank),
        rank=tuple(float(v) for v in places),
        probability_first=tuple(float(v) for v in probability),
    )
