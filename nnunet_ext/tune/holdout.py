"""The held-out estimate: the weight search re-run without each fold's cases.

Case ``i`` is held out in fold ``i % k``. The per-case Dice of the baselines is computed once and
shared by the search on all cases and the fold searches; each fold's subset is made when its turn
comes, so one copy of the data is held. (The searches run in this process: on 2 shared cores a
process pool was slower, as each job has to receive the compact data.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.tune.compact import CompactCVData
from nnunet_ext.tune.scoring import _baseline_per_case, mean_over_cases, score_weights
from nnunet_ext.tune.search import SearchResult, _search, default_steps

__all__ = ["HoldoutRuns", "holdout_runs"]

_Job = tuple[
    CompactCVData,
    list[int],
    dict[str, Any],
    dict[str, NDArray[np.float64]],
    list[int] | None,
]


def _search_job(job: _Job) -> tuple[SearchResult, NDArray[np.float64] | None]:
    """One search on all cases, or a fold's search and its held-out per-case Dice.

    Subsets are made here, so the caller holds one copy of the data whatever the folds.
    """
    data, label_ids, options, baseline_per_case, held = job
    if held is None:
        return _search(data, label_ids, baseline_per_case=baseline_per_case, **options), None
    train = [i for i in range(data.num_cases) if i not in set(held)]
    result = _search(
        data.subset(train),
        label_ids,
        baseline_per_case={name: v[train] for name, v in baseline_per_case.items()},
        **options,
    )
    return result, score_weights(data.subset(held), result.weights, label_ids)[1]


@dataclass(frozen=True)
class HoldoutRuns:
    """The search on all cases and on each fold's training cases (:func:`holdout_runs`).

    Attributes:
        result: The search on all cases.
        baseline_per_case: ``"equal"``, ``"model m"`` to ``(cases, L)`` Dice.
        folds: Held-out case indices of each fold (empty without folds).
        fold_weights: The weights searched without each fold's cases.
        held_out: ``(cases, L)`` held-out Dice of the tuned weights, or ``None``.
    """

    result: SearchResult
    baseline_per_case: dict[str, NDArray[np.float64]]
    folds: list[list[int]]
    fold_weights: list[NDArray[np.float64]]
    held_out: NDArray[np.float64] | None

    @property
    def gain(self) -> NDArray[np.float64] | None:
        """Per label, held-out tuned minus equal-weight mean Dice (``None`` without folds)."""
        if self.held_out is None:
            return None
        return mean_over_cases(self.held_out) - mean_over_cases(self.baseline_per_case["equal"])


# Deliberate duplicate: holdout_runs repeats search_weights' keyword parameters (it forwards them
# to the search on every fold), so that both signatures are explicit and typed.
def holdout_runs(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    steps: int | None = None,
    max_rounds: int = 4,
    refine: int = 4,
    num_folds: int = 5,
    fold_rounds: int | None = None,
    fold_refine: int | None = None,
    rules: bool = False,
) -> HoldoutRuns:
    """Search on all cases, and on each fold's training cases with its held-out Dice.

    Case ``i`` is held out in fold ``i % k``, ``k = min(num_folds, cases)``.

    Args:
        data: Compact CV data.
        label_ids: Labels scored.
        steps: As for :func:`~nnunet_ext.tune.search.search_weights` (also used by the folds).
        max_rounds: As for :func:`~nnunet_ext.tune.search.search_weights`.
        refine: As for :func:`~nnunet_ext.tune.search.search_weights`.
        num_folds: Folds over cases (< 2, or fewer than 2 cases: no held-out estimate).
        fold_rounds: ``max_rounds`` of each fold's search (default ``max_rounds``: the folds
            estimate the gain of the same procedure; a cheaper one underestimates it).
        fold_refine: ``refine`` of each fold's search (default ``refine``).
        rules: As for :func:`~nnunet_ext.tune.search.search_weights`; each fold decides which
            labels to leave to the rules on its own tuning cases.

    Returns:
        The search on all cases, the baselines' per-case Dice, the folds, each fold's weights
        and the pooled held-out per-case Dice of the tuned weights (``None`` without folds).
    """
    label_list = [int(v) for v in label_ids]
    steps = steps or default_steps(data.num_models)
    data = data.settle()  # same scores for every weight matrix, fewer voxels
    per_case = _baseline_per_case(data, label_list)
    options = {"steps": steps, "max_rounds": max_rounds, "refine": refine, "rules": rules}
    jobs: list[_Job] = [(data, label_list, options, per_case, None)]
    n = data.num_cases
    k = min(num_folds, n)
    folds = [[i for i in range(n) if i % k == fold] for fold in range(k)] if k >= 2 else []
    fold_options = {
        "steps": steps,
        "max_rounds": max_rounds if fold_rounds is None else fold_rounds,
        "refine": refine if fold_refine is None else fold_refine,
        "rules": rules,
    }
    jobs += [(data, label_list, fold_options, per_case, held) for held in folds]
    outcomes = [_search_job(job) for job in jobs]
    result = outcomes[0][0]
    if not folds:
        return HoldoutRuns(result, per_case, [], [], None)
    tuned = np.full((n, len(label_list)), np.nan)
    for held, (_, held_dice) in zip(folds, outcomes[1:], strict=True):
        tuned[held] = held_dice
    return HoldoutRuns(result, per_case, folds, [o[0].weights for o in outcomes[1:]], tuned)
