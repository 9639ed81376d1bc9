"""Per-label ensemble weight search: pure array maths on compact CV data.

The search is coordinate ascent over the classes (columns of the ``(M, C)`` weight matrix): for
class ``c`` every point of a grid on the weight simplex (including the hard 0/1 choices) is
scored with the other columns fixed, through the argmax, so label interactions are accounted
for; a pattern search with halving steps then refines. Scores are lexicographic: first the
largest shortfall of a label below its equal-weight Dice, then the largest shortfall below its
floor (the best Dice of equal weights and of each single model on that label), then the total
shortfall, then the mean foreground Dice. The fallbacks (each baseline, and the per-label
fallback taking each label's column from its best baseline) are scored with a full argmax and
win over the search result when they score better. Hence, on the tuning data:

* no label is ever below its equal-weight Dice;
* when the per-label fallback keeps every label at its floor, so does the result, and once
  the search reaches such a choice no later step lets a label drop below its floor;
* otherwise (the floors conflict through the argmax: e.g. two labels wanting different models
  for the background column) :attr:`SearchResult.feasible` is ``False`` and the largest
  shortfall below the floors is no larger than that of any fallback that keeps every label at
  or above equal weights.

With ``rules=True`` (per-label rules follow, :mod:`nnunet_ext.tune.rules`), a label that one
member alone predicts on the tuning cases (every other member blind to it,
:func:`~nnunet_ext.tune.judge.sole_reliable_member`) is *left to the rules*: its floor is its
equal-weight Dice, not that member's. Weights cannot give such a label the seeing member's Dice
(the blind members' background channels dilute it wherever they are confident), so that floor
is unreachable; as the first term of the score it would bend every other column towards the
label (trading the other labels' Dice for a few voxels of it), while the rules then take the
label ``from`` the seeing member whatever the weights.

The compact form is that of :mod:`nnunet_ext.tune.compact`; the scoring is in
:mod:`nnunet_ext.tune.scoring`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.tune.compact import CompactCVData
from nnunet_ext.tune.judge import sole_reliable_member
from nnunet_ext.tune.scoring import (
    _baseline_per_case,
    _Evaluator,
    baseline_weights,
    mean_over_cases,
)

__all__ = [
    "FLOOR_TOLERANCE",
    "SearchResult",
    "default_steps",
    "search_weights",
    "simplex_grid",
]


def simplex_grid(num_models: int, steps: int) -> NDArray[np.float64]:
    """All weight vectors ``(k_1, ..., k_M) / steps``, non-negative integers summing to ``steps``.

    The vertices (one model only: the hard choices) are always included.

    Examples:
        >>> simplex_grid(2, 2)
        array([[0. , 1. ],
               [0.5, 0.5],
               [1. , 0. ]])
        >>> len(simplex_grid(3, 10))
        66
    """
    if num_models < 1 or steps < 1:
        raise ValueError(f"num_models and steps must be >= 1; got {num_models} and {steps}.")
    points = [
        combo
        for combo in itertools.product(range(steps + 1), repeat=num_models - 1)
        if sum(combo) <= steps
    ]
    grid = np.array([[*p, steps - sum(p)] for p in points], dtype=np.float64) / steps
    return grid[np.lexsort(grid.T[::-1])]


@dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`search_weights`.

    Attributes:
        weights: ``(M, C)`` chosen weights, every column summing to 1.
        dice: ``(L,)`` mean Dice per label with ``weights``.
        baselines: Name (``"equal"``, ``"model 0"``, ...) to ``(L,)`` mean Dice per label.
        floors: ``(L,)`` the floor per label the search aims at: the best baseline Dice, or
            the equal-weight Dice for a label left to the rules.
        fallback: ``(M, C)`` the per-label fallback: each label's column from its best
            baseline, the background column from the best baseline overall.
        evaluations: Weight matrices scored.
        rounds: Coordinate-ascent rounds run (coarse grid and refinement sweeps).
        rule_labels: Labels (class indices) left to the rules: one member alone predicts them
            (only with ``rules=True``).
    """

    weights: NDArray[np.float64]
    dice: NDArray[np.float64]
    baselines: dict[str, NDArray[np.float64]]
    floors: NDArray[np.float64]
    fallback: NDArray[np.float64]
    evaluations: int
    rounds: int
    rule_labels: tuple[int, ...] = ()

    @property
    def feasible(self) -> bool:
        """Whether no label is below its floor (the best baseline on that label)."""
        valid = ~np.isnan(self.floors) & ~np.isnan(self.dice)
        return bool(np.all(self.dice[valid] >= self.floors[valid] - FLOOR_TOLERANCE))


#: Dice this close below a floor counts as reaching it (float rounding only).
FLOOR_TOLERANCE = 1e-12


def _shortfall(dice: NDArray[np.float64], floors: NDArray[np.float64]) -> NDArray[np.float64]:
    valid = ~np.isnan(dice) & ~np.isnan(floors)
    shortfall = np.maximum(floors[valid] - dice[valid], 0.0)
    shortfall[shortfall <= FLOOR_TOLERANCE] = 0.0
    return shortfall


def _score(
    dice: NDArray[np.float64], floors: NDArray[np.float64], equal: NDArray[np.float64]
) -> tuple[float, float, float, float]:
    """The lexicographic score of a choice's per-label Dice (lower shortfalls first).

    Compared in this order: worst shortfall below equal weights (a hard constraint: equal
    weights themselves score 0), worst shortfall below a floor, total shortfall, mean Dice.
    """
    below_equal = _shortfall(dice, equal)
    shortfall = _shortfall(dice, floors)
    mean = nan_mean(dice, empty=0.0)
    return (
        float(below_equal.max()) if below_equal.size else 0.0,
        float(shortfall.max()) if shortfall.size else 0.0,
        float(shortfall.sum()),
        mean,
    )


def _better(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    for index in range(len(a) - 1):
        if a[index] < b[index] - 1e-12:
            return True
        if a[index] > b[index] + 1e-12:
            return False
    return a[-1] > b[-1] + 1e-9


def _neighbours(weights: NDArray[np.float64], delta: float) -> list[NDArray[np.float64]]:
    """Moves of ``delta`` weight from one model to another on the simplex (clipped at 0)."""
    out = []
    for source in range(weights.size):
        if weights[source] <= 0:
            continue
        step = min(delta, float(weights[source]))
        for target in range(weights.size):
            if target != source:
                moved = weights.copy()
                moved[source] -= step
                moved[target] += step
                out.append(moved / moved.sum())
    return out


def default_steps(num_models: int) -> int:
    """Default simplex grid resolution: 5 for up to 3 models, 4 for 4, 3 beyond.

    The grid only finds the region; the refinement of :func:`search_weights` (moves of
    ``1 / (2 steps)`` weight, halved at each level) goes finer.

    Examples:
        >>> default_steps(3), default_steps(5)
        (5, 3)
    """
    return 5 if num_models <= 3 else 4 if num_models == 4 else 3


def _floors(
    baselines: dict[str, NDArray[np.float64]], names: Sequence[str], num_labels: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """``(table, floors, valid)``: baselines by name x label, best per label, labels present."""
    table = np.stack([baselines[n] for n in names])
    valid = np.any(~np.isnan(table), axis=0)
    floors = np.full(num_labels, np.nan)
    floors[valid] = np.nanmax(table[:, valid], axis=0)
    return table, floors, valid


class _Ascent:
    """The coordinate ascent of :func:`_search`: the current choice, its score and the sweeps."""

    def __init__(
        self,
        evaluator: _Evaluator,
        fallbacks: list[tuple[NDArray[np.float64], NDArray[np.float64]]],
        floors: NDArray[np.float64],
        equal: NDArray[np.float64],
    ) -> None:
        self.evaluator, self.floors, self.equal = evaluator, floors, equal
        self.evaluations = 0
        current, self.dice = fallbacks[0]
        for weights, dice in fallbacks[1:]:
            if _better(self.score_of(dice), self.score_of(self.dice)):
                current, self.dice = weights, dice
        self.score = self.score_of(self.dice)
        evaluator.set_weights(current)

    def score_of(self, dice: NDArray[np.float64]) -> tuple[float, float, float, float]:
        return _score(dice, self.floors, self.equal)

    def sweep(self, candidates_of: Any, reach: float | None) -> bool:
        """One pass over the columns; take each column's best candidate if it improves."""
        evaluator = self.evaluator
        improved = False
        for column in range(evaluator.data.num_classes):
            candidates = candidates_of(evaluator.weights[:, column])
            if not candidates:
                continue
            results = evaluator.column_candidates(column, candidates, reach=reach)
            self.evaluations += len(candidates)
            chosen = None
            for weights, dice in zip(candidates, results, strict=True):
                score = self.score_of(dice)
                if _better(score, self.score):
                    chosen, self.dice, self.score = weights, dice, score
            if chosen is not None:
                evaluator.set_column(column, chosen)
                improved = True
        return improved

    def run(self, *, steps: int, max_rounds: int, refine: int) -> int:
        """The grid sweeps, then the refinement with halving moves; returns the rounds run."""
        m = self.evaluator.data.num_models
        grid = list(simplex_grid(m, steps))
        if steps % m:
            grid.append(np.full(m, 1.0 / m))  # equal weights, when the grid lacks them
        rounds = 0
        for _ in range(max_rounds):
            rounds += 1
            if not self.sweep(lambda _: grid, None):
                break
        # refinement: pattern search with halving steps, for what the grid cannot reach
        delta = 1.0 / (2 * steps)
        for _ in range(refine):
            for _ in range(max_rounds):
                rounds += 1
                if not self.sweep(lambda w, d=delta: _neighbours(w, d), delta):
                    break
            delta /= 2
        return rounds


def _rule_labels(
    baseline_per_case: dict[str, NDArray[np.float64]],
    label_ids: Sequence[int],
    data: CompactCVData,
) -> tuple[int, ...]:
    """The labels one member alone predicts on these cases (left to the rules)."""
    members = [baseline_per_case[f"model {m}"] for m in range(data.num_models)]
    return tuple(
        int(label)
        for j, label in enumerate(label_ids)
        if sole_reliable_member(members, j, training_folds=data.training_folds) is not None
    )


def _search(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    steps: int,
    max_rounds: int,
    refine: int,
    rules: bool = False,
    baseline_per_case: dict[str, NDArray[np.float64]] | None = None,
) -> SearchResult:
    matrices = baseline_weights(data.num_models, data.num_classes)
    evaluations = 0
    if baseline_per_case is None:
        baseline_per_case = _baseline_per_case(data, label_ids)
        evaluations += len(baseline_per_case)
    baselines = {name: mean_over_cases(v) for name, v in baseline_per_case.items()}
    names = list(matrices)
    table, floors, valid = _floors(baselines, names, len(label_ids))
    equal = baselines["equal"]
    rule_labels = _rule_labels(baseline_per_case, label_ids, data) if rules else ()
    for label in rule_labels:
        j = list(label_ids).index(label)
        floors[j] = equal[j]  # the seeing member's Dice is the rules' to reach, not the weights'

    # the per-label fallback: each label's column from its best baseline, background from the
    # best baseline overall; it and the baselines themselves are the fallbacks of the result
    best_overall = min(names, key=lambda n: _score(baselines[n], floors, equal)[:3])
    start = matrices[best_overall].copy()
    for j, label in enumerate(label_ids):
        if valid[j]:
            start[:, label] = matrices[names[int(np.nanargmax(table[:, j]))]][:, label]
    evaluator = _Evaluator(data, label_ids, start)
    fallbacks = [(evaluator.weights.copy(), mean_over_cases(evaluator.per_case()))]
    fallbacks += [(matrices[name], baselines[name]) for name in names]
    ascent = _Ascent(evaluator, fallbacks, floors, equal)
    rounds = ascent.run(steps=steps, max_rounds=max_rounds, refine=refine)
    # the reported Dice comes from a full argmax; a fallback that scores better wins
    weights = evaluator.weights.copy()
    dice = mean_over_cases(evaluator.per_case())
    for fallback, fallback_dice in fallbacks:
        if _better(_score(fallback_dice, floors, equal), _score(dice, floors, equal)):
            weights, dice = fallback.copy(), fallback_dice
    return SearchResult(
        weights=weights / weights.sum(axis=0, keepdims=True),
        dice=dice,
        baselines=baselines,
        floors=floors,
        fallback=fallbacks[0][0],
        evaluations=evaluations + 2 + ascent.evaluations,
        rounds=rounds,
        rule_labels=rule_labels,
    )


def search_weights(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    steps: int | None = None,
    max_rounds: int = 4,
    refine: int = 4,
    rules: bool = False,
) -> SearchResult:
    """Find per-class weights maximising the per-label mean Dice, never below the baselines.

    Coordinate ascent over the class columns, first on the simplex grid, then by a pattern
    search (moves of ``1 / (2 steps)`` weight between two models, halved ``refine`` times),
    with the lexicographic score and the guarantees described in :mod:`nnunet_ext.tune.search`:
    never below equal weights on any label; every label at or above its floor (the best of
    equal weights and each single model) whenever the per-label fallback achieves that.

    Args:
        data: Compact CV data (:func:`merge_cases`).
        label_ids: Foreground labels scored (class indices ``1 .. C-1`` for nnU-Net softmax).
        steps: Simplex grid resolution per class (default :func:`default_steps`).
        max_rounds: Largest number of sweeps over the classes, per grid and refinement level.
        refine: Refinement levels (0: grid only).
        rules: Whether per-label rules follow: a label one member alone predicts is then left
            to them (its floor is equal weights; see :mod:`nnunet_ext.tune.search`).

    Returns:
        The chosen weights and the per-label Dice of them and of the baselines.

    Examples:
        >>> from nnunet_ext.tune.compact import compact_case, merge_cases
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.integers(0, 2, size=200)
        >>> good = np.stack([1 - ref, ref]) * 0.6 + 0.2  # right on every voxel
        >>> bad = rng.dirichlet([1, 1], size=200).T       # noise
        >>> data = merge_cases([compact_case([good, bad], ref)])
        >>> result = search_weights(data, [1])
        >>> float(result.dice[0]), float(result.baselines["model 0"][0]), result.feasible
        (1.0, 1.0, True)
    """
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    if max_rounds < 1 or refine < 0:
        raise ValueError(f"max_rounds must be >= 1 and refine >= 0; got {max_rounds}, {refine}.")
    return _search(
        data.settle(),
        label_ids,
        steps=steps or default_steps(data.num_models),
        max_rounds=max_rounds,
        refine=refine,
        rules=rules,
    )
