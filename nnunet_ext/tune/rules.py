"""Choose a per-label rule on top of the tuned weights, by its held-out gain and a bootstrap.

For each label ``L`` (smallest reference volume first, which is also the priority order of the
``from`` rules taken), three kinds of rule compete, from simplest to most complex:

1. ``weighted``: the tuned weights decide, as without rules;
2. ``from M``: label ``L`` is exactly where member ``M``'s own argmax is ``L`` (a discrete
   choice among the members);
3. ``scale``: the weighted decision with label ``L``'s decision scale ``s`` from
   :data:`SCALE_GRID` (a tuned continuous parameter: threshold moving).

The parameter of a kind (``M`` or ``s``) is chosen on the tuning cases by mean foreground Dice,
among the choices that keep every label at or above its equal-weight Dice in-sample (none
admissible: the label stays ``weighted``, in a fold as on all cases). The kind
is decided on held-out cases: with the same k folds over cases as the held-out weight estimate,
each fold's weights (searched on the other cases) and each fold's parameter (chosen on the other
cases) are applied to the fold's cases, which gives every case a held-out Dice for every kind.
A more complex kind replaces the current one only if its held-out gain -- the mean over cases of
the per-case difference in mean foreground Dice -- exceeds the noise: ``NOISE_Z`` times the
bootstrap standard error of that mean (:data:`BOOTSTRAP_SAMPLES` resamples of the cases with
replacement, fixed seed) and at least :data:`MIN_GAIN`.

A label that only one member predicts starts from ``from`` that member instead of ``weighted``:
when every other member is *blind* to it on the tuning cases (its own mean Dice on the label is
below :data:`BLIND_FRACTION` of the best member's and the per-case difference exceeds the noise,
:func:`sole_reliable_member`; with the nnU-Net training fold of each case, a member that reaches
half the best member's Dice on the cases of some fold is not blind), equal weights are no
neutral default (the blind member's background channel dilutes the label). This kind is decided
once on all cases; held out, each fold takes the member with the best own Dice on its tuning
cases. ``weighted`` is a candidate to replace it only when the tuned weights give that member
more say in the label's column than every blind member (with equal weights, or weights favouring
a blind member, the blind member's background outvotes the label wherever it is confident, and
CV cases predicted by single fold models understate how confident the fold-averaged member is on
new cases; ``scale``, which fuses the column the same way, likewise); it replaces it only when
its held-out gain on the label exceeds the noise and no other label drops beyond its own
(:func:`judge_label_step`, the weight gate's test); ``scale`` then as above. The default is not
taken (the chain above decides) when, held out, it lowers another label's Dice against
``weighted`` beyond that label's noise (at least :data:`DROP_TOLERANCE`). Unlike the other
``from`` candidates it is not held to the in-sample floor of equal weights: that floor is the
comparison the default exists to avoid.

With rules, such a label is also *left to the rules* by the weights: the weight search aims at
its equal-weight Dice instead of the seeing member's (which weights cannot reach without costing
the other labels) and the weight gate does not let its drop hold back another label's step
(:mod:`nnunet_ext.tune.search`, :mod:`nnunet_ext.tune.gate`).

Member argmax maps of the contested voxels are taken from the float16 compact probabilities
(settled voxels: every member agrees, see :mod:`nnunet_ext.tune.compact`, whose settled test
allows decision scales up to :data:`MAX_SCALE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.ensemble.rules import LabelRules, apply_label_rules
from nnunet_ext.tune.compact import MAX_RULE_SCALE, CompactCVData, decision_order
from nnunet_ext.tune.scoring import label_dice, mean_over_cases

__all__ = [
    "BLIND_FRACTION",
    "BOOTSTRAP_SAMPLES",
    "DROP_TOLERANCE",
    "MAX_SCALE",
    "MIN_GAIN",
    "NOISE_Z",
    "SCALE_GRID",
    "Candidate",
    "LabelDecision",
    "RuleChoice",
    "bootstrap_noise",
    "choose_rules",
    "fold_blind_cases",
    "judge_label_step",
    "sole_reliable_member",
]

#: Decision scales tried for a label (threshold moving for a label the fusion under-calls).
SCALE_GRID = (1.25, 1.5, 2.0, 3.0)
#: Largest decision scale; :func:`nnunet_ext.tune.compact.compact_case` keeps every voxel it
#: could change.
MAX_SCALE = MAX_RULE_SCALE
#: Bootstrap resamples of the cases for the noise of a held-out gain.
BOOTSTRAP_SAMPLES = 2000
#: A held-out gain counts when it exceeds this many bootstrap standard errors ...
NOISE_Z = 2.0
#: ... and at least this much mean foreground Dice.
MIN_GAIN = 1e-3
#: A step may lower another label's held-out mean Dice by its noise (``NOISE_Z`` bootstrap
#: standard errors) or by this much, whichever is larger: a consistent drop of a few thousandths
#: has a tiny bootstrap error, yet is below what a test set of a dozen cases resolves.
DROP_TOLERANCE = 0.005
#: A member is blind to a label when its own mean Dice on the label is below this fraction of
#: the best member's (and the per-case difference exceeds the noise): with equal weights its
#: background channel dilutes the label, so equal weights are no neutral default for it.
BLIND_FRACTION = 0.5

_KINDS = ("weighted", "from", "scale")


@dataclass(frozen=True)
class Candidate:
    """One rule for one label.

    Attributes:
        kind: ``"weighted"``, ``"from"`` or ``"scale"``.
        member: The member of a ``from`` rule.
        scale: The decision scale of a ``scale`` rule.
    """

    kind: str
    member: int | None = None
    scale: float | None = None

    def describe(self, members: Sequence[str] | None = None) -> str:
        """Human-readable form, e.g. ``from m1`` or ``scale x1.5``.

        Examples:
            >>> Candidate("from", member=1).describe(), Candidate("scale", scale=1.5).describe()
            ('from m1', 'scale x1.5')
        """
        if self.kind == "from" and self.member is not None:
            return f"from {members[self.member] if members else f'm{self.member}'}"
        if self.kind == "scale":
            return f"scale x{self.scale:g}"
        return "weighted"


@dataclass(frozen=True)
class LabelDecision:
    """The candidates of one label and the decision.

    Attributes:
        label: Class index.
        candidates: Every candidate, each with ``in_sample`` and ``held_out`` ``(L,)`` mean
            Dice of every label (held out: the folds' weights, this candidate fixed).
        chosen: The rule taken.
        steps: The decisions along the chain ``weighted -> from -> scale``: for each complex
            kind, its held-out gain over the kind before it, the noise, and whether it was
            taken (``None`` gain: no admissible choice).
    """

    label: int
    candidates: list[tuple[Candidate, NDArray[np.float64], NDArray[np.float64]]]
    chosen: Candidate
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RuleChoice:
    """The outcome of :func:`choose_rules`.

    Attributes:
        rules: The rules on class and member indices (for the spec).
        decisions: One per label, in decision (priority) order.
        dice: ``(L,)`` in-sample mean Dice with the weights and ``rules``.
        held_out: ``(L,)`` held-out mean Dice of the whole procedure (weights and rule kinds
            re-chosen per fold), or ``None`` without folds.
    """

    rules: LabelRules
    decisions: list[LabelDecision]
    dice: NDArray[np.float64]
    held_out: NDArray[np.float64] | None


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


def judge_label_step(
    j: int,
    diff: NDArray[np.float64],
    *,
    exempt: Sequence[int] = (),
    uncounted: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """The held-out verdict on a step for label column ``j`` from per-case differences.

    ``diff`` is ``(cases, L)``: the step's held-out per-case Dice minus the current spec's. The
    step passes when the label's mean gain exceeds ``NOISE_Z`` bootstrap standard errors and
    :data:`MIN_GAIN`, and no other label's mean drop exceeds its own noise (at least
    :data:`DROP_TOLERANCE`); a drop of a column in ``exempt`` (a label the rules decide later)
    does not count, nor, per column, the cases marked in ``uncounted`` (``(cases, L)``, see
    :func:`fold_blind_cases`). ``foreground_gain`` (mean over cases of the mean over labels,
    every label included) ranks passing steps.

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
    gain = float(np.nanmean(diff[:, j])) if np.any(~np.isnan(diff[:, j])) else 0.0
    noise = bootstrap_noise(diff[:, j])
    worst_drop = 0.0
    for k in range(diff.shape[1]):
        column = diff[:, k] if uncounted is None else np.where(uncounted[:, k], np.nan, diff[:, k])
        if k == j or k in exempt or not np.any(~np.isnan(column)):
            continue
        noise_k = max(NOISE_Z * bootstrap_noise(column), DROP_TOLERANCE)
        drop = -float(np.nanmean(column)) - noise_k
        worst_drop = max(worst_drop, drop)
    passes = gain > max(NOISE_Z * noise, MIN_GAIN) and worst_drop == 0.0
    valid = ~np.isnan(diff)
    per_case = np.where(valid, diff, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    foreground = float(per_case[valid.any(axis=1)].mean()) if valid.any() else 0.0
    return {
        "gain": gain,
        "noise": noise,
        "other_drop": worst_drop,
        "foreground_gain": foreground,
        "passes": bool(passes),
    }


def _best_member(
    member_per_case: Sequence[NDArray[np.float64]], j: int, cases: NDArray[np.int64] | slice
) -> int | None:
    """The member with the best own mean Dice on label column ``j`` (``None``: none scored)."""
    columns = [np.asarray(pc[cases, j], dtype=np.float64) for pc in member_per_case]
    if not columns or not all(np.any(~np.isnan(c)) for c in columns):
        return None
    return int(np.argmax([float(np.nanmean(c)) for c in columns]))


def sole_reliable_member(
    member_per_case: Sequence[NDArray[np.float64]],
    j: int,
    cases: NDArray[np.int64] | slice = slice(None),
    *,
    training_folds: NDArray[np.int64] | None = None,
) -> int | None:
    """The member that alone predicts label column ``j`` on ``cases``, or ``None``.

    Each member's own per-case Dice (its argmax alone) is compared with the best member's on the
    label: a member is *blind* to the label when its mean Dice is below :data:`BLIND_FRACTION`
    of the best member's and the mean per-case difference exceeds ``NOISE_Z`` bootstrap standard
    errors and :data:`MIN_GAIN`. With ``training_folds`` (the nnU-Net fold that predicted each
    case), a member is also not blind when, on the cases of some fold, its mean Dice reaches
    :data:`BLIND_FRACTION` of the best member's there (and the best member's is above 0): one of
    its fold models predicts the label, and the fold-averaged member predicts it on new cases
    in a measure the CV cases of its blind fold do not show. When every other member is blind,
    the best member is returned.

    Args:
        member_per_case: Per member, ``(cases, L)`` Dice of its argmax alone (NaN: label absent
            from reference and prediction).
        j: Label column.
        cases: The cases to decide on (a fold's tuning cases, or all).
        training_folds: Per case (all cases, as ``member_per_case``), the nnU-Net fold whose
            model predicted it, or ``None``.

    Returns:
        The best member's index, or ``None`` with fewer than two members, no scored case, or
        another member that is not blind.

    Examples:
        >>> good = np.array([[0.5], [0.4], [0.6], [0.45]])
        >>> sole_reliable_member([good * 0, good], 0), sole_reliable_member([good, good * 0.9], 0)
        (1, None)
        >>> one_fold_sees = np.array([[0.0], [0.0], [0.4], [0.5]])  # fold 0 blind, fold 1 sees
        >>> sole_reliable_member([one_fold_sees, good], 0)
        1
        >>> sole_reliable_member([one_fold_sees, good], 0, training_folds=np.array([0, 0, 1, 1]))
    """
    if len(member_per_case) < 2:
        return None
    best = _best_member(member_per_case, j, cases)
    if best is None:
        return None
    columns = [np.asarray(pc[cases, j], dtype=np.float64) for pc in member_per_case]
    means = [float(np.nanmean(c)) for c in columns]
    for m, column in enumerate(columns):
        if m == best:
            continue
        diff = columns[best] - column
        if not np.any(~np.isnan(diff)):
            return None
        gain = float(np.nanmean(diff))
        blind = means[m] < BLIND_FRACTION * means[best] and gain > max(
            NOISE_Z * bootstrap_noise(diff), MIN_GAIN
        )
        if not blind or _sees_in_some_fold(columns[m], columns[best], cases, training_folds):
            return None
    return best


def _sees_in_some_fold(
    member: NDArray[np.float64],
    best: NDArray[np.float64],
    cases: NDArray[np.int64] | slice,
    training_folds: NDArray[np.int64] | None,
) -> bool:
    """Whether ``member`` reaches ``BLIND_FRACTION`` of ``best``'s mean Dice in some fold."""
    if training_folds is None:
        return False
    folds = np.asarray(training_folds)[cases]
    for fold in np.unique(folds):
        in_fold = folds == fold
        best_mean = _nanmean(best[in_fold])
        if best_mean > 0 and _nanmean(member[in_fold]) >= BLIND_FRACTION * best_mean:
            return True
    return False


def fold_blind_cases(
    member_per_case: Sequence[NDArray[np.float64]], training_folds: NDArray[np.int64] | None
) -> NDArray[np.bool_]:
    """``(cases, L)``: whether some member is blind to the label on the case's training fold.

    On the cases of training fold ``f``, a member is blind to a label when its mean Dice there
    is below :data:`BLIND_FRACTION` of the best member's (which is above 0). Such a case shows
    the label as that fold's model sees it, not as the fold-averaged member sees new cases: the
    weight gate does not count a label's drop on it. Without ``training_folds``: all ``False``.

    Examples:
        >>> seeing = np.array([[0.9], [0.8], [0.9], [0.7]])
        >>> one_blind_fold = np.array([[0.0], [0.1], [0.8], [0.7]])
        >>> fold_blind_cases([seeing, one_blind_fold], np.array([0, 0, 1, 1]))[:, 0].tolist()
        [True, True, False, False]
    """
    num_cases, num_labels = member_per_case[0].shape
    out = np.zeros((num_cases, num_labels), dtype=bool)
    if training_folds is None or len(member_per_case) < 2:
        return out
    folds = np.asarray(training_folds)
    for fold in np.unique(folds):
        in_fold = folds == fold
        for j in range(num_labels):
            means = [_nanmean(m[in_fold, j]) for m in member_per_case]
            scored = [v for v in means if not np.isnan(v)]
            if scored and max(scored) > 0 and min(scored) < BLIND_FRACTION * max(scored):
                out[in_fold, j] = True
    return out


def _nanmean(values: NDArray[np.float64]) -> float:
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def _case_score(per_case: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-case mean foreground Dice (NaN labels left out; NaN if none)."""
    valid = ~np.isnan(per_case)
    counts = valid.sum(axis=1)
    sums = np.where(valid, per_case, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _score(mean: NDArray[np.float64]) -> float:
    return float(np.nanmean(mean)) if np.any(~np.isnan(mean)) else 0.0


def _argmax(values: NDArray[Any]) -> NDArray[np.uint8]:
    """``values.argmax(axis=0)`` as uint8 by a running maximum (first maximum wins)."""
    best = values[0].copy()
    out = np.zeros(best.shape, dtype=np.uint8)
    for c in range(1, values.shape[0]):
        better = values[c] > best
        np.copyto(best, values[c], where=better)
        out[better] = c
    return out


class _Scorer:
    """Per-case Dice of weights + rules on compact data (all cases at once)."""

    def __init__(self, data: CompactCVData, label_ids: Sequence[int]) -> None:
        self.data = data
        self.label_ids = list(label_ids)
        self.k = data.num_values
        self.key_base = (data.case_index.astype(np.int64) * self.k + data.reference) * self.k
        self.size = data.num_cases * self.k * self.k
        # member argmax of the contested voxels (settled voxels: all members agree)
        self.member_labels = {m: _argmax(data.probabilities[m]) for m in range(data.num_models)}

    def fused(self, weights: NDArray[np.float64]) -> NDArray[np.float32]:
        w = np.asarray(weights, dtype=np.float64) / np.sum(weights, axis=0)
        out = np.empty(self.data.probabilities.shape[1:], dtype=np.float32)
        for c in range(self.data.num_classes):
            acc = np.float32(w[0, c]) * self.data.probabilities[0, c].astype(np.float32)
            for m in range(1, self.data.num_models):
                acc += np.float32(w[m, c]) * self.data.probabilities[m, c]
            out[c] = acc
        return out

    def candidates_per_case(
        self,
        fused: NDArray[np.float32],
        rules: LabelRules,
        label: int,
        candidates: Sequence[Candidate],
    ) -> list[NDArray[np.float64]]:
        """``per_case`` of ``rules`` plus each candidate for ``label``, on the voxels it changes.

        A candidate can only change a voxel that no earlier ``from`` rule claims and where
        ``label`` is decided now, some member's argmax is ``label``, or ``MAX_SCALE`` times the
        fused ``label`` reaches the largest fused value of the other labels the fusion decides.
        The others are counted once from the labels of ``rules``.
        """
        base = apply_label_rules(fused, rules, self.member_labels)
        base_counts = np.bincount(self.key_base + base, minlength=self.size)
        taken = {t for t, _ in rules.take}
        others = [o for o in range(fused.shape[0]) if o != label and o not in taken]
        reach = fused[others].max(axis=0) if others else np.zeros(base.shape, np.float32)
        active = (base == label) | (np.float32(MAX_SCALE) * fused[label] >= reach)
        for m in self.member_labels:
            active |= self.member_labels[m] == label
        for t, m in rules.take:
            active &= self.member_labels[m] != t  # claimed by an earlier rule: never changes
        index = np.flatnonzero(active)
        keys = self.key_base[index]
        fused_active = fused[:, index]
        maps = {m: labels[index] for m, labels in self.member_labels.items()}
        without = base_counts - np.bincount(keys + base[index], minlength=self.size)
        out = []
        c = fused.shape[0]
        for candidate in candidates:
            labels = apply_label_rules(fused_active, _with(rules, label, candidate, c), maps)
            counts = without + np.bincount(keys + labels, minlength=self.size)
            confusion = self.data.fixed + counts.reshape(self.data.num_cases, self.k, self.k)
            out.append(label_dice(confusion, self.label_ids))
        return out

    def per_case(self, fused: NDArray[np.float32], rules: LabelRules) -> NDArray[np.float64]:
        labels = apply_label_rules(fused, rules, self.member_labels)
        counts = np.bincount(self.key_base + labels, minlength=self.size)
        confusion = self.data.fixed + counts.reshape(self.data.num_cases, self.k, self.k)
        return label_dice(confusion, self.label_ids)


def _with(rules: LabelRules, label: int, candidate: Candidate, num_classes: int) -> LabelRules:
    scale = dict(enumerate(rules.scale)) if rules.scale is not None else {}
    take = list(rules.take)
    if candidate.kind == "from" and candidate.member is not None:
        take.append((label, candidate.member))
    elif candidate.kind == "scale" and candidate.scale is not None:
        scale[label] = candidate.scale
    return LabelRules.build(num_classes, scale=scale, take=take)


def _candidates(num_models: int) -> list[Candidate]:
    out = [Candidate("weighted")]
    out += [Candidate("from", member=m) for m in range(num_models)]
    out += [Candidate("scale", scale=s) for s in SCALE_GRID]
    return out


def _pick(
    kind: str,
    candidates: Sequence[Candidate],
    per_case: Sequence[NDArray[np.float64]],
    cases: NDArray[np.int64] | slice,
    equal: NDArray[np.float64],
) -> int | None:
    """Index of the best admissible candidate of ``kind`` on ``cases`` (``None``: none)."""
    floors = mean_over_cases(equal[cases])
    best, best_score = None, -np.inf
    for index, candidate in enumerate(candidates):
        if candidate.kind != kind:
            continue
        mean = mean_over_cases(per_case[index][cases])
        valid = ~np.isnan(mean) & ~np.isnan(floors)
        if kind != "weighted" and np.any(mean[valid] < floors[valid] - 1e-12):
            continue  # a rule never takes a label below equal weights on its tuning cases
        score = _score(mean)
        if score > best_score + 1e-12:
            best, best_score = index, score
    return best


def choose_rules(
    data: CompactCVData,
    label_ids: Sequence[int],
    weights: NDArray[np.float64],
    *,
    equal_per_case: NDArray[np.float64],
    folds: Sequence[Sequence[int]] = (),
    fold_weights: Sequence[NDArray[np.float64]] = (),
    member_per_case: Sequence[NDArray[np.float64]] = (),
) -> RuleChoice:
    """Choose one rule per label on top of ``weights`` (see the module docstring).

    Args:
        data: Compact CV data.
        label_ids: Foreground labels (class indices).
        weights: ``(M, C)`` weights searched on all cases.
        equal_per_case: ``(cases, L)`` Dice of equal weights (the admissibility floor).
        folds: Held-out case indices of each fold (none: in-sample choice only, every label
            stays ``weighted``).
        fold_weights: The weights searched without each fold's cases.
        member_per_case: Per member, ``(cases, L)`` Dice of its argmax alone; a label that
            only one member predicts (:func:`sole_reliable_member`) starts from ``from`` that
            member instead of ``weighted`` (none given: every label starts ``weighted``).

    Returns:
        The rules, every candidate's in-sample and held-out Dice, and the decisions.
    """
    label_list = [int(v) for v in label_ids]
    state = _ChoiceState(data, label_list, weights, equal_per_case, folds, fold_weights)
    state.members = list(member_per_case)
    decisions = [state.decide(label) for label in decision_order(data, label_list)]
    return state.outcome(decisions)


class _ChoiceState:
    """The rules decided so far, on all cases and per fold, and how to decide the next label."""

    def __init__(
        self,
        data: CompactCVData,
        label_list: list[int],
        weights: NDArray[np.float64],
        equal_per_case: NDArray[np.float64],
        folds: Sequence[Sequence[int]],
        fold_weights: Sequence[NDArray[np.float64]],
    ) -> None:
        self.label_list, self.equal = label_list, equal_per_case
        self.c, self.n = data.num_classes, data.num_cases
        self.scorer = _Scorer(data, label_list)
        self.candidates = _candidates(data.num_models)
        self.fused_all = self.scorer.fused(weights)
        self.fused_folds = [self.scorer.fused(w) for w in fold_weights]
        all_cases = np.arange(self.n)
        self.trains = [np.setdiff1d(all_cases, np.asarray(h, dtype=np.int64)) for h in folds]
        self.helds = [np.asarray(held, dtype=np.int64) for held in folds]
        self.rules = LabelRules()
        self.fold_rules = [LabelRules() for _ in folds]
        self.members: list[NDArray[np.float64]] = []
        self.weights = weights
        self.training_folds = data.training_folds

    def _pooled(self, per_fold: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
        """Each fold's per-case Dice on its own held-out cases, pooled over the folds."""
        pooled = np.full((self.n, len(self.label_list)), np.nan)
        for held, per_case in zip(self.helds, per_fold, strict=True):
            pooled[held] = per_case[held]
        return pooled

    def _held_per_kind(
        self, in_sample: list[NDArray[np.float64]], fold_per_case: list[list[NDArray[np.float64]]]
    ) -> tuple[dict[str, int | None], dict[str, NDArray[np.float64] | None]]:
        """Per kind: the parameter chosen on all cases, and the kind's held-out Dice.

        Held out: each fold's parameter is chosen on its training cases and applied to its
        held-out cases.
        """
        chosen_index: dict[str, int | None] = {}
        held_kind: dict[str, NDArray[np.float64] | None] = {}
        for kind in _KINDS:
            chosen_index[kind] = _pick(kind, self.candidates, in_sample, slice(None), self.equal)
            if not self.helds:
                held_kind[kind] = None
                continue
            per_fold = []
            for f, train in enumerate(self.trains):
                fold_pick = _pick(kind, self.candidates, fold_per_case[f], train, self.equal)
                # no admissible choice on a fold's tuning cases: the procedure stays weighted
                per_fold.append(fold_per_case[f][0 if fold_pick is None else fold_pick])
            held_kind[kind] = self._pooled(per_fold)
        return chosen_index, held_kind

    def decide(self, label: int) -> LabelDecision:
        """Decide ``label``'s rule and add it to the rules (on all cases and per fold)."""
        candidates = self.candidates
        in_sample = self.scorer.candidates_per_case(self.fused_all, self.rules, label, candidates)
        # per fold: every candidate on all cases with the fold's weights and decided rules
        fold_per_case = [
            self.scorer.candidates_per_case(fused, self.fold_rules[f], label, candidates)
            for f, fused in enumerate(self.fused_folds)
        ]
        held_fixed = [
            self._pooled([per_case[index] for per_case in fold_per_case])
            for index in range(len(candidates))
        ]
        chosen_index, held_kind = self._held_per_kind(in_sample, fold_per_case)
        j = self.label_list.index(label)
        base = (
            sole_reliable_member(self.members, j, training_folds=self.training_folds)
            if self.helds
            else None
        )
        # the kind is decided once on all cases (as in the chain); its parameter, the member,
        # is chosen per fold on the fold's tuning cases: the best own Dice
        fold_base = [_best_member(self.members, j, train) for train in self.trains]
        base_picks = [None if m is None else 1 + m for m in fold_base]  # "from m": 1 + m
        pairs = zip(fold_per_case, base_picks, strict=True)
        held_base = self._pooled([per_case[pick or 0] for per_case, pick in pairs])
        held_weighted = held_kind["weighted"]
        rejected = (
            base is not None
            and held_weighted is not None
            and judge_label_step(j, held_base - held_weighted)["other_drop"] > 0
        )
        if base is None or rejected:
            current, steps = _chain(chosen_index, held_kind)
            if rejected:
                steps[0]["basis"] += (
                    "; the blind-member default was not taken: it lowers another label held "
                    "out beyond its noise"
                )
            chosen = candidates[chosen_index[current] or 0]  # "weighted" is always index 0
            fold_picks = [
                _pick(current, candidates, fold_per_case[f], train, self.equal)
                for f, train in enumerate(self.trains)
            ]
        else:
            fold_picks = base_picks
            held_kind["from"], chosen_index["from"] = held_base, 1 + base
            column = self.weights[:, label]
            favoured = bool(np.all(np.delete(column, base) < column[base]))
            current, steps = _chain_from_baseline(j, chosen_index, held_kind, favoured)
            chosen = candidates[chosen_index[current] or 0]
            if current != "from":
                fold_picks = [
                    _pick(current, candidates, fold_per_case[f], train, self.equal)
                    for f, train in enumerate(self.trains)
                ]
        self.rules = _with(self.rules, label, chosen, self.c)
        if chosen.kind != "weighted":
            for f, pick in enumerate(fold_picks):
                if pick is not None:  # else the fold stays weighted for this label
                    self.fold_rules[f] = _with(self.fold_rules[f], label, candidates[pick], self.c)
        return LabelDecision(
            label=label,
            candidates=[
                (k, mean_over_cases(i), mean_over_cases(h))
                for k, i, h in zip(candidates, in_sample, held_fixed, strict=True)
            ],
            chosen=chosen,
            steps=steps,
        )

    def outcome(self, decisions: list[LabelDecision]) -> RuleChoice:
        dice = mean_over_cases(self.scorer.per_case(self.fused_all, self.rules))
        held_out = None
        if self.helds:
            per_fold = [
                self.scorer.per_case(fused, rules)
                for fused, rules in zip(self.fused_folds, self.fold_rules, strict=True)
            ]
            held_out = mean_over_cases(self._pooled(per_fold))
        return RuleChoice(rules=self.rules, decisions=decisions, dice=dice, held_out=held_out)


def _foreground_step(
    kind: str,
    current: str,
    chosen_index: dict[str, int | None],
    held_kind: dict[str, NDArray[np.float64] | None],
) -> dict[str, Any]:
    """``kind`` over ``current``: taken if its held-out foreground Dice gain beats the noise."""
    step: dict[str, Any] = {"kind": kind, "over": current, "basis": "mean foreground Dice"}
    held_new, held_current = held_kind[kind], held_kind[current]
    if chosen_index[kind] is None or held_new is None or held_current is None:
        step.update(gain=None, noise=None, taken=False)
        return step
    diff = _case_score(held_new) - _case_score(held_current)
    gain = float(np.nanmean(diff)) if np.any(~np.isnan(diff)) else 0.0
    noise = bootstrap_noise(diff)
    step.update(gain=gain, noise=noise, taken=bool(gain > max(NOISE_Z * noise, MIN_GAIN)))
    return step


def _chain(
    chosen_index: dict[str, int | None], held_kind: dict[str, NDArray[np.float64] | None]
) -> tuple[str, list[dict[str, Any]]]:
    """Walk ``weighted -> from -> scale``; return the kind taken and the steps.

    A kind replaces the current one if its held-out gain in mean foreground Dice exceeds the
    noise.
    """
    current = "weighted"
    steps = []
    for kind in _KINDS[1:]:
        step = _foreground_step(kind, current, chosen_index, held_kind)
        steps.append(step)
        if step["taken"]:
            current = kind
    return current, steps


_NOT_FAVOURED = "not a candidate: the weights give a blind member as much say in the label"


def _chain_from_baseline(
    j: int,
    chosen_index: dict[str, int | None],
    held_kind: dict[str, NDArray[np.float64] | None],
    favoured: bool,
) -> tuple[str, list[dict[str, Any]]]:
    """Start from ``from`` the sole reliable member; ``weighted``, then ``scale``, may replace it.

    The first step records the baseline (taken by the blindness test on the tuning cases, and
    lowering no other label held out beyond its noise; its held-out gain in mean foreground
    Dice over ``weighted`` is reported, not gated on). Unless the weights favour the sole
    reliable member in the label's column (``favoured``), ``from`` stays: ``weighted`` and
    ``scale`` are reported, not candidates. ``weighted`` replaces it when its held-out gain on
    the label exceeds the noise and no other label drops beyond its own
    (:func:`judge_label_step`); ``scale`` replaces the current kind as in :func:`_chain`.
    """
    info = _foreground_step("from", "weighted", chosen_index, held_kind)
    info.update(taken=True, basis="baseline: every other member is blind to the label")
    steps = [info]
    held_weighted, held_from = held_kind["weighted"], held_kind["from"]
    current = "from"
    if held_weighted is not None and held_from is not None:
        verdict = judge_label_step(j, held_weighted - held_from)
        basis = "Dice of this label, no other label dropping beyond its noise"
        if not favoured:
            basis = _NOT_FAVOURED
        steps.append(
            {
                "kind": "weighted",
                "over": "from",
                "basis": basis,
                "gain": verdict["gain"],
                "noise": verdict["noise"],
                "taken": favoured and verdict["passes"],
            }
        )
        if favoured and verdict["passes"]:
            current = "weighted"
    step = _foreground_step("scale", current, chosen_index, held_kind)
    if not favoured:  # scale fuses the label's column as weighted does
        step.update(basis=_NOT_FAVOURED, taken=False)
    steps.append(step)
    if step["taken"]:
        current = "scale"
    return current, steps
