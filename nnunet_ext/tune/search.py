"""Per-label ensemble weight search: pure array maths on a compact form of the CV data.

The fusion rule is that of :mod:`nnunet_ext.ensemble`: for class ``c`` the fused probability is
``sum_m w[m, c] p_m[c] / sum_m w[m, c]``, then ``argmax``. With the weights of each class
normalised, the fused value lies between ``min_m p_m[c]`` and ``max_m p_m[c]``. So a voxel whose
best class ``k`` has ``min_m p_m[k]`` above ``max_m p_m[c]`` of every other class gets label ``k``
under *every* weight choice: it is counted once into a fixed confusion matrix and never stored.
Only the remaining, "contested" voxels are kept (float16, all models and classes), which is what
makes the search fast: in a typical CV set most voxels are settled.

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
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FLOOR_TOLERANCE",
    "MAX_RULE_SCALE",
    "SETTLED_MARGIN",
    "CompactCVData",
    "HoldoutRuns",
    "SearchResult",
    "baseline_weights",
    "compact_case",
    "cross_validated_gain",
    "default_steps",
    "holdout_runs",
    "label_dice",
    "mean_over_cases",
    "merge_cases",
    "score_weights",
    "search_weights",
    "search_with_holdout",
    "simplex_grid",
]

#: A voxel is settled when its best class beats every other by more than this.
SETTLED_MARGIN = 1e-4

#: ... and by this factor: the largest decision scale a rule may give a label
#: (:mod:`nnunet_ext.tune.rules`), so no scale rule can change a settled voxel either.
MAX_RULE_SCALE = 3.0


@dataclass(frozen=True)
class CompactCVData:
    """Everything the weight search needs, for all cases.

    Attributes:
        fixed: ``(cases, K, K)`` int64 confusion matrices (reference value x predicted label)
            of the voxels whose label no weight choice can change.
        probabilities: ``(M, C, N)`` float16 probabilities of the ``N`` contested voxels.
        reference: ``(N,)`` reference label of each contested voxel.
        case_index: ``(N,)`` case of each contested voxel.
        num_values: ``K``: reference values and labels are ``< K`` (``K >= C``).
    """

    fixed: NDArray[np.int64]
    probabilities: NDArray[np.float16]
    reference: NDArray[np.integer[Any]]
    case_index: NDArray[np.integer[Any]]
    num_values: int

    @property
    def num_cases(self) -> int:
        """Number of cases."""
        return int(self.fixed.shape[0])

    @property
    def num_models(self) -> int:
        """Number of models ``M``."""
        return int(self.probabilities.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.probabilities.shape[1])

    def settle(self, margin: float = SETTLED_MARGIN) -> CompactCVData:
        """Return the data for weights only: voxels no weights can change are counted.

        :func:`compact_case` keeps every voxel a decision scale up to :data:`MAX_RULE_SCALE`
        could change; the weight search needs only those whose label some weights can
        change. Decided on the stored (float16) values, with which every score is computed,
        so every weight matrix scores exactly the same on the result as on ``self``.

        Examples:
            >>> p = np.array([[[0.9, 0.4], [0.1, 0.6]],   # member 0: 2 classes x 2 voxels
            ...               [[0.8, 0.6], [0.2, 0.4]]], dtype=np.float16)
            >>> data = CompactCVData(np.zeros((1, 2, 2), np.int64), p, np.array([0, 1]),
            ...                      np.array([0, 0]), 2)
            >>> settled = data.settle()
            >>> settled.fixed.tolist(), settled.probabilities.shape
            ([[[1, 0], [0, 0]]], (2, 2, 1))
        """
        p = self.probabilities
        if p.shape[2] == 0:
            return self
        low = p.min(axis=0).astype(np.float32)
        top = p.max(axis=0).astype(np.float32)
        best = low.argmax(axis=0)
        best_low = np.take_along_axis(low, best[None], axis=0)[0]
        np.put_along_axis(top, best[None], -np.inf, axis=0)
        settled = best_low > top.max(axis=0) + margin
        k = self.num_values
        keys = (self.case_index[settled].astype(np.int64) * k + self.reference[settled]) * k
        counts = np.bincount(keys + best[settled], minlength=self.num_cases * k * k)
        keep = ~settled
        return CompactCVData(
            fixed=self.fixed + counts.reshape(self.num_cases, k, k),
            probabilities=p[:, :, keep],
            reference=self.reference[keep],
            case_index=self.case_index[keep],
            num_values=k,
        )

    def subset(self, cases: Sequence[int]) -> CompactCVData:
        """Return the data of some cases only (renumbered in the given order)."""
        chosen = np.asarray(cases, dtype=np.int64)
        remap = np.full(self.num_cases, -1, dtype=np.int64)
        remap[chosen] = np.arange(chosen.size)
        keep = remap[self.case_index] >= 0
        return CompactCVData(
            fixed=self.fixed[chosen],
            probabilities=self.probabilities[:, :, keep],
            reference=self.reference[keep],
            case_index=remap[self.case_index[keep]].astype(np.int32),
            num_values=self.num_values,
        )


def compact_case(
    probabilities: Sequence[NDArray[Any]],
    reference: NDArray[np.integer[Any]],
    *,
    num_values: int | None = None,
    ignore_label: int | None = None,
    margin: float = SETTLED_MARGIN,
    max_scale: float = MAX_RULE_SCALE,
) -> tuple[NDArray[np.int64], NDArray[np.float16], NDArray[np.uint8]]:
    """Split one case into settled voxels (counted) and contested voxels (kept).

    Args:
        probabilities: One ``(C, ...)`` softmax array per model, same shape. Not modified.
        reference: Reference labels of shape ``(...)``; values ``< num_values``.
        num_values: ``K`` of the confusion matrix (default ``C``, or more if the reference has
            larger values, such as an ignore label).
        ignore_label: Reference value whose voxels are dropped (nnU-Net's ignore label).
        margin: A voxel is settled when the lowest probability of its best class exceeds
            ``max_scale`` times the highest of every other class by more than ``margin``.
        max_scale: The largest per-label decision scale to be scored (1: weights only).
            At a settled voxel every member's argmax is the best class, so no weights, no
            ``from`` rule and no decision scale up to ``max_scale`` can change its label.

    Returns:
        ``(fixed, contested, reference)``: the ``(K, K)`` confusion matrix of settled voxels,
        the ``(M, C, n)`` float16 probabilities and the ``(n,)`` uint8 references of the others.

    Raises:
        ValueError: For mismatched shapes or reference values ``>= K``.

    Examples:
        >>> a = np.array([[0.9, 0.4], [0.1, 0.6]], dtype=np.float32)  # two voxels, C = 2
        >>> b = np.array([[0.8, 0.6], [0.2, 0.4]], dtype=np.float32)
        >>> fixed, contested, ref = compact_case([a, b], np.array([0, 1]))
        >>> fixed.tolist(), contested.shape, ref.tolist()
        ([[1, 0], [0, 0]], (2, 2, 1), [1])
    """
    if not probabilities:
        raise ValueError("probabilities must hold one array per model; got none.")
    shape = probabilities[0].shape
    for index, member in enumerate(probabilities):
        if member.shape != shape:
            raise ValueError(
                f"probabilities[{index}] must have shape {shape} like probabilities[0]; "
                f"got {member.shape}."
            )
    num_classes = shape[0]
    if reference.shape != shape[1:]:
        raise ValueError(
            f"reference must have the spatial shape of the probabilities {shape[1:]}; "
            f"got {reference.shape}."
        )
    ref = np.asarray(reference).reshape(-1)
    high = int(ref.max()) if ref.size else 0
    k = max(num_classes, high + 1) if num_values is None else int(num_values)
    if high >= k or num_classes > k:
        raise ValueError(f"reference values must be < {k}; found {high}.")
    flat = [np.asarray(p).reshape(num_classes, -1) for p in probabilities]
    low = flat[0].astype(np.float32, copy=True)
    top = low.copy()
    for member in flat[1:]:
        np.minimum(low, member, out=low)
        np.maximum(top, member, out=top)
    best = low.argmax(axis=0)
    best_low = np.take_along_axis(low, best[None], axis=0)[0]
    np.put_along_axis(top, best[None], -np.inf, axis=0)
    settled = best_low > np.float32(max_scale) * top.max(axis=0) + margin
    if ignore_label is not None:
        use = ref != ignore_label
        settled &= use
    else:
        use = np.ones(ref.shape, dtype=bool)
    keys = ref[settled].astype(np.int64) * k + best[settled]
    fixed = np.bincount(keys, minlength=k * k).reshape(k, k).astype(np.int64)
    contested_mask = use & ~settled
    contested = np.stack([member[:, contested_mask] for member in flat]).astype(np.float16)
    return fixed, contested, ref[contested_mask].astype(np.uint8)


def merge_cases(
    cases: Sequence[tuple[NDArray[np.int64], NDArray[np.float16], NDArray[np.uint8]]],
) -> CompactCVData:
    """Stack the :func:`compact_case` results of several cases (same ``K``, ``M``, ``C``).

    Raises:
        ValueError: For no cases or cases with different ``K``, ``M`` or ``C``.
    """
    if not cases:
        raise ValueError("cases must hold at least one case; got none.")
    k = cases[0][0].shape[0]
    m, c = cases[0][1].shape[:2]
    for index, (fixed, contested, _) in enumerate(cases):
        if fixed.shape != (k, k) or contested.shape[:2] != (m, c):
            raise ValueError(
                f"case {index} must have K={k}, M={m}, C={c} like case 0; got K={fixed.shape[0]}, "
                f"M, C={contested.shape[:2]}."
            )
    return CompactCVData(
        fixed=np.stack([f for f, _, _ in cases]),
        probabilities=np.concatenate([p for _, p, _ in cases], axis=2),
        reference=np.concatenate([r for _, _, r in cases]),
        case_index=np.concatenate(
            [np.full(r.size, i, dtype=np.int32) for i, (_, _, r) in enumerate(cases)]
        ),
        num_values=k,
    )


def label_dice(
    confusion: NDArray[np.integer[Any]], label_ids: Sequence[int]
) -> NDArray[np.float64]:
    """Per-case Dice of each label from ``(cases, K, K)`` confusion matrices (NaN: both empty).

    Examples:
        >>> m = np.array([[[5, 1], [1, 3]], [[4, 0], [0, 0]]])
        >>> label_dice(m, [1])
        array([[0.75],
               [ nan]])
    """
    ids = np.asarray(label_ids, dtype=np.int64)
    tp = confusion[:, ids, ids].astype(np.float64)
    n_ref = confusion.sum(axis=2)[:, ids].astype(np.float64)
    n_pred = confusion.sum(axis=1)[:, ids].astype(np.float64)
    denominator = n_ref + n_pred
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), np.nan)


def mean_over_cases(dice: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean over cases (axis 0) of per-case Dice, NaN cases left out (NaN: none valid).

    Examples:
        >>> mean_over_cases(np.array([[0.5, np.nan], [1.0, np.nan]]))
        array([0.75,  nan])
    """
    valid = ~np.isnan(dice)
    counts = valid.sum(axis=0)
    sums = np.where(valid, dice, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


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


def _weighted(members: Sequence[NDArray[Any]], weights: NDArray[np.float64]) -> NDArray[np.float32]:
    """``sum_m weights[m] * members[m]`` in float32, always in the same order (bit-identical)."""
    out: NDArray[np.float32] = np.float32(weights[0]) * members[0].astype(np.float32, copy=False)
    for m in range(1, len(members)):
        out += np.float32(weights[m]) * members[m]
    return out


class _Evaluator:
    """Scores weight matrices on compact data; keeps the fused values of the current weights.

    Only the column of one class changes per step, so only that row of the fused values is
    recomputed, and the candidates of a column are scored on the voxels whose label the column
    can change (the others are counted once).
    """

    def __init__(
        self,
        data: CompactCVData,
        label_ids: Sequence[int],
        weights: NDArray[np.float64] | None = None,
    ) -> None:
        self.data = data
        self.label_ids = list(label_ids)
        self.k = data.num_values
        self.key_base = (data.case_index.astype(np.int64) * self.k + data.reference) * self.k
        self.size = data.num_cases * self.k * self.k
        self.weights = np.full((data.num_models, data.num_classes), 1.0 / data.num_models)
        self.fused = np.empty(data.probabilities.shape[1:], dtype=np.float32)
        self.set_weights(self.weights if weights is None else weights)

    def column_values(self, column: int, weights: NDArray[np.float64]) -> NDArray[np.float32]:
        members = [self.data.probabilities[m, column] for m in range(self.data.num_models)]
        return _weighted(members, weights)

    def set_weights(self, weights: NDArray[np.float64]) -> None:
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights, axis=0)
        for column in range(self.data.num_classes):
            self.fused[column] = self.column_values(column, self.weights[:, column])

    def set_column(self, column: int, weights: NDArray[np.float64]) -> None:
        self.weights = self.weights.copy()
        self.weights[:, column] = weights / weights.sum()
        self.fused[column] = self.column_values(column, self.weights[:, column])

    def confusion(self, labels: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
        counts = np.bincount(self.key_base + labels, minlength=self.size)
        return self.data.fixed + counts.reshape(self.data.num_cases, self.k, self.k)

    def per_case(self) -> NDArray[np.float64]:
        """``(cases, L)`` Dice of the current weights (full argmax: the reference result)."""
        labels = self.fused.argmax(axis=0) if self.fused.size else np.zeros(0, np.int64)
        return label_dice(self.confusion(labels), self.label_ids)

    def column_candidates(
        self,
        column: int,
        candidates: Sequence[NDArray[np.float64]],
        *,
        reach: float | None = None,
    ) -> list[NDArray[np.float64]]:
        """Mean Dice per label for each candidate weight vector (summing to 1) of ``column``.

        ``reach``: every candidate changes the fused value of ``column`` by at most this much
        (moves of a small weight between two models); only voxels that close to a change of
        label are scored. ``None``: any weights (the fused value lies between the lowest and
        the highest member probability).
        """
        data, k = self.data, self.k
        others = [o for o in range(data.num_classes) if o != column]
        best = self.fused[others[0]].copy()
        # uint8 class indices: modular arithmetic keeps the selections exact and cheap
        small = np.uint8 if data.num_classes <= 255 else np.int64
        arg = np.full(best.shape, others[0], dtype=small)
        for o in others[1:]:  # argmax over the other classes; the first maximum wins ties
            greater = (self.fused[o] > best).view(np.uint8)
            arg += greater * small(o) - greater * arg
            np.maximum(best, self.fused[o], out=best)
        # class `column` wins ties against later classes only (argmax keeps the first maximum)
        wins_ties = column < arg
        if reach is None:
            low = data.probabilities[0, column].astype(np.float32)
            high = low.copy()
            for m in range(1, data.num_models):
                np.minimum(low, data.probabilities[m, column], out=low)
                np.maximum(high, data.probabilities[m, column], out=high)
            always = (low > best) | ((low == best) & wins_ties)
            never = (high < best) | ((high == best) & ~wins_ties)
            del low, high
        else:
            margin = np.float32(reach + 1e-5)  # float32 rounding of the weighted sums
            always = self.fused[column] - margin > best
            never = self.fused[column] + margin < best
        active = np.flatnonzero(~(always | never))
        # every active voxel is counted as losing; the winners of a candidate are moved
        chosen = always.view(np.uint8)
        labels = self.key_base + (arg + chosen * (small(column) - arg))
        del always, never, chosen
        base = np.bincount(labels, minlength=self.size)
        del labels
        lose_keys = self.key_base[active] + arg[active]
        threshold = best[active]
        threshold = np.where(
            wins_ties[active], np.nextafter(threshold, np.float32(-np.inf)), threshold
        )
        del best, arg, wins_ties
        values = [
            data.probabilities[m, column][active].astype(np.float32) for m in range(data.num_models)
        ]
        cells = np.arange(self.size)
        win_cells = cells - cells % k + column
        results = []
        for weights in candidates:
            won = _weighted(values, weights) > threshold
            moved = np.bincount(lose_keys, weights=won, minlength=self.size)
            counts = base + (np.bincount(win_cells, weights=moved, minlength=self.size) - moved)
            confusion = data.fixed + counts.astype(np.int64).reshape(data.num_cases, k, k)
            results.append(mean_over_cases(label_dice(confusion, self.label_ids)))
        return results


def score_weights(
    data: CompactCVData, weights: NDArray[np.floating[Any]], label_ids: Sequence[int]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-label mean Dice over cases (and per-case Dice) of one weight matrix.

    Args:
        data: Compact CV data.
        weights: ``(M, C)`` non-negative weights, every column with a positive sum.
        label_ids: Labels (class indices) to score.

    Returns:
        ``(mean_dice, per_case_dice)`` of shapes ``(L,)`` and ``(cases, L)``.
    """
    evaluator = _Evaluator(data, label_ids, np.asarray(weights, dtype=np.float64))
    per_case = evaluator.per_case()
    return mean_over_cases(per_case), per_case


@dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`search_weights`.

    Attributes:
        weights: ``(M, C)`` chosen weights, every column summing to 1.
        dice: ``(L,)`` mean Dice per label with ``weights``.
        baselines: Name (``"equal"``, ``"model 0"``, ...) to ``(L,)`` mean Dice per label.
        floors: ``(L,)`` best baseline Dice per label.
        fallback: ``(M, C)`` the per-label fallback: each label's column from its best
            baseline, the background column from the best baseline overall.
        evaluations: Weight matrices scored.
        rounds: Coordinate-ascent rounds run (coarse grid and refinement sweeps).
    """

    weights: NDArray[np.float64]
    dice: NDArray[np.float64]
    baselines: dict[str, NDArray[np.float64]]
    floors: NDArray[np.float64]
    fallback: NDArray[np.float64]
    evaluations: int
    rounds: int

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
    mean = float(np.nanmean(dice)) if np.any(~np.isnan(dice)) else 0.0
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


def baseline_weights(num_models: int, num_classes: int) -> dict[str, NDArray[np.float64]]:
    """Equal weights and each single model, as ``(M, C)`` matrices.

    Examples:
        >>> baseline_weights(2, 2)["model 1"]
        array([[0., 0.],
               [1., 1.]])
    """
    out = {"equal": np.full((num_models, num_classes), 1.0 / num_models)}
    for m in range(num_models):
        single = np.zeros((num_models, num_classes))
        single[m] = 1.0
        out[f"model {m}"] = single
    return out


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


def _search(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    steps: int,
    max_rounds: int,
    refine: int,
    baseline_per_case: dict[str, NDArray[np.float64]] | None = None,
) -> SearchResult:
    m, c = data.num_models, data.num_classes
    matrices = baseline_weights(m, c)
    evaluations = 0
    if baseline_per_case is None:
        baseline_per_case = _baseline_per_case(data, label_ids)
        evaluations += len(baseline_per_case)
    baselines = {name: mean_over_cases(v) for name, v in baseline_per_case.items()}
    names = list(matrices)
    table = np.stack([baselines[n] for n in names])
    valid = np.any(~np.isnan(table), axis=0)
    floors = np.full(len(label_ids), np.nan)
    floors[valid] = np.nanmax(table[:, valid], axis=0)
    equal = baselines["equal"]

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
    evaluations += 1
    current, current_dice = fallbacks[0]
    for weights, dice in fallbacks[1:]:
        if _better(_score(dice, floors, equal), _score(current_dice, floors, equal)):
            current, current_dice = weights, dice
    current_score = _score(current_dice, floors, equal)
    evaluator.set_weights(current)

    def sweep(candidates_of: Any, reach: float | None) -> bool:
        """One pass over the columns; take each column's best candidate if it improves."""
        nonlocal current_dice, current_score, evaluations
        improved = False
        for column in range(c):
            candidates = candidates_of(evaluator.weights[:, column])
            if not candidates:
                continue
            results = evaluator.column_candidates(column, candidates, reach=reach)
            evaluations += len(candidates)
            chosen = None
            for weights, dice in zip(candidates, results, strict=True):
                score = _score(dice, floors, equal)
                if _better(score, current_score):
                    chosen, current_dice, current_score = weights, dice, score
            if chosen is not None:
                evaluator.set_column(column, chosen)
                improved = True
        return improved

    grid = list(simplex_grid(m, steps))
    if steps % m:
        grid.append(np.full(m, 1.0 / m))  # equal weights, when the grid lacks them
    rounds = 0
    for _ in range(max_rounds):
        rounds += 1
        if not sweep(lambda _: grid, None):
            break
    # refinement: pattern search with halving steps, for what the grid cannot reach
    delta = 1.0 / (2 * steps)
    for _ in range(refine):
        for _ in range(max_rounds):
            rounds += 1
            if not sweep(lambda w, d=delta: _neighbours(w, d), delta):
                break
        delta /= 2
    # the reported Dice comes from a full argmax; a fallback that scores better wins
    weights = evaluator.weights.copy()
    dice = mean_over_cases(evaluator.per_case())
    evaluations += 1
    for fallback, fallback_dice in fallbacks:
        if _better(_score(fallback_dice, floors, equal), _score(dice, floors, equal)):
            weights, dice = fallback.copy(), fallback_dice
    return SearchResult(
        weights=weights / weights.sum(axis=0, keepdims=True),
        dice=dice,
        baselines=baselines,
        floors=floors,
        fallback=fallbacks[0][0],
        evaluations=evaluations,
        rounds=rounds,
    )


def search_weights(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    steps: int | None = None,
    max_rounds: int = 4,
    refine: int = 4,
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

    Returns:
        The chosen weights and the per-label Dice of them and of the baselines.

    Examples:
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
    )


def _baseline_per_case(
    data: CompactCVData, label_ids: Sequence[int]
) -> dict[str, NDArray[np.float64]]:
    matrices = baseline_weights(data.num_models, data.num_classes)
    evaluator = _Evaluator(data, label_ids, matrices["equal"])
    out = {}
    for name, weights in matrices.items():
        if name != "equal":
            evaluator.set_weights(weights)
        out[name] = evaluator.per_case()
    return out


_Job = tuple[
    CompactCVData,
    list[int],
    dict[str, int],
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


def search_with_holdout(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    steps: int | None = None,
    max_rounds: int = 4,
    refine: int = 4,
    num_folds: int = 5,
    fold_rounds: int | None = None,
    fold_refine: int | None = None,
) -> tuple[SearchResult, NDArray[np.float64] | None]:
    """:func:`search_weights` on all cases and the held-out gain of :func:`cross_validated_gain`.

    The per-case Dice of the baselines is computed once and shared by the search and the fold
    searches; each fold's subset is made when its turn comes, so one copy of the data is held.
    (The searches run in this process: on 2 shared cores a process pool was slower, as each
    job has to receive the compact data.)

    Args:
        data: Compact CV data.
        label_ids: Labels scored.
        steps: As for :func:`search_weights` (also used by the folds).
        max_rounds: As for :func:`search_weights`.
        refine: As for :func:`search_weights`.
        num_folds: Folds over cases (< 2, or fewer than 2 cases: no held-out estimate).
        fold_rounds: ``max_rounds`` of each fold's search (default ``max_rounds``: the folds
            estimate the gain of the same procedure; a cheaper one underestimates it).
        fold_refine: ``refine`` of each fold's search (default ``refine``).

    Returns:
        ``(result, gain)``: the search on all cases, and per label the held-out tuned minus
        equal-weight mean Dice (``None`` without folds).
    """
    runs = holdout_runs(
        data,
        label_ids,
        steps=steps,
        max_rounds=max_rounds,
        refine=refine,
        num_folds=num_folds,
        fold_rounds=fold_rounds,
        fold_refine=fold_refine,
    )
    return runs.result, runs.gain


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
) -> HoldoutRuns:
    """:func:`search_with_holdout`, keeping each fold's weights (for the rule choice).

    Case ``i`` is held out in fold ``i % k``, ``k = min(num_folds, cases)``.
    """
    label_list = [int(v) for v in label_ids]
    steps = steps or default_steps(data.num_models)
    data = data.settle()  # same scores for every weight matrix, fewer voxels
    per_case = _baseline_per_case(data, label_list)
    options = {"steps": steps, "max_rounds": max_rounds, "refine": refine}
    jobs: list[_Job] = [(data, label_list, options, per_case, None)]
    n = data.num_cases
    k = min(num_folds, n)
    folds = [[i for i in range(n) if i % k == fold] for fold in range(k)] if k >= 2 else []
    fold_options = {
        "steps": steps,
        "max_rounds": max_rounds if fold_rounds is None else fold_rounds,
        "refine": refine if fold_refine is None else fold_refine,
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


def cross_validated_gain(
    data: CompactCVData,
    label_ids: Sequence[int],
    *,
    num_folds: int = 5,
    steps: int | None = None,
    max_rounds: int = 4,
    refine: int = 4,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Out-of-sample gain of tuning over equal weights, by k-fold over cases.

    Each fold's weights are searched on the other cases and applied to the held-out cases; the
    held-out per-case Dice of all folds are pooled. The per-case Dice of the baselines is
    computed once and shared by the folds (a fold's floors are the means over its cases).

    Args:
        data: Compact CV data.
        label_ids: Labels scored.
        num_folds: Folds over cases (capped at the number of cases; case ``i`` is in fold
            ``i % k``).
        steps: As for :func:`search_weights`.
        max_rounds: As for :func:`search_weights`.
        refine: As for :func:`search_weights`.

    Returns:
        ``(gain, tuned_dice)``: per label, held-out tuned minus equal-weight mean Dice, and the
        held-out tuned mean Dice. NaN where a label never occurs.

    Raises:
        ValueError: If there are fewer than 2 cases.
    """
    n = data.num_cases
    if n < 2:
        raise ValueError(f"a cross-validated gain needs at least 2 cases; got {n}.")
    k = min(num_folds, n)
    per_case = _baseline_per_case(data, label_ids)
    tuned = np.full((n, len(label_ids)), np.nan)
    for fold in range(k):
        held = [i for i in range(n) if i % k == fold]
        train = [i for i in range(n) if i % k != fold]
        result = _search(
            data.subset(train),
            label_ids,
            steps=steps or default_steps(data.num_models),
            max_rounds=max_rounds,
            refine=refine,
            baseline_per_case={name: v[train] for name, v in per_case.items()},
        )
        _, held_dice = score_weights(data.subset(held), result.weights, label_ids)
        tuned[held] = held_dice
    tuned_mean = mean_over_cases(tuned)
    return tuned_mean - mean_over_cases(per_case["equal"]), tuned_mean
