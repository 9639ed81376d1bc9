"""Choose a per-label rule on top of the tuned weights, by its held-out gain and a bootstrap.

For each label ``L`` (smallest reference volume first, which is also the priority order of the
``from`` rules taken), three kinds of rule compete, from simplest to most complex:

1. ``weighted``: the tuned weights decide, as without rules;
2. ``from M``: label ``L`` is exactly where member ``M``'s own argmax is ``L`` (a discrete
   choice among the members);
3. ``scale``: the weighted decision with label ``L``'s decision scale ``s`` from
   :data:`~nnunet_ext.tune.candidates.SCALE_GRID` (a tuned continuous parameter: threshold
   moving).

The parameter of a kind (``M`` or ``s``) is chosen on the tuning cases by mean foreground Dice,
among the choices that keep every label at or above its equal-weight Dice in-sample (none
admissible: the label stays ``weighted``, in a fold as on all cases). The kind
is decided on held-out cases: with the same k folds over cases as the held-out weight estimate,
each fold's weights (searched on the other cases) and each fold's parameter (chosen on the other
cases) are applied to the fold's cases, which gives every case a held-out Dice for every kind.
A more complex kind replaces the current one only if its held-out gain -- the mean over cases of
the per-case difference in mean foreground Dice -- exceeds the noise: ``NOISE_Z`` times the
bootstrap standard error of that mean and at least ``MIN_GAIN`` (:mod:`nnunet_ext.tune.judge`,
which holds the statistics the weight search and gate use too).

A label that only one member predicts starts from ``from`` that member instead of ``weighted``:
when every other member is *blind* to it on the tuning cases (its own mean Dice on the label is
below ``BLIND_FRACTION`` of the best member's and the per-case difference exceeds the noise,
:func:`~nnunet_ext.tune.judge.sole_reliable_member`; with the nnU-Net training fold of each
case, a member that reaches half the best member's Dice on the cases of some fold is not blind),
equal weights are no neutral default (the blind member's background channel dilutes the label).
Like every rule, the default is held to the in-sample floor: it is not taken when it puts a
label below its equal-weight Dice on the CV cases (both are fixed choices, nothing is fitted, so
the CV cases compare them without optimism). This kind is decided once on all cases; held out,
each fold takes the member with the best own Dice on its tuning cases. ``weighted`` replaces
it when its held-out gain on the label exceeds the noise and no other label drops beyond its
own (:func:`~nnunet_ext.tune.judge.judge_label_step`); ``scale`` then as above. Two optional
parts (:class:`~nnunet_ext.tune.procedure.Procedure`, off by default) restrict this further:
with ``favoured_only``, ``weighted`` (and ``scale``) is a candidate only when the tuned weights
give that member more say in the label's column than every blind member; with the default's
veto, the default is not taken (the chain above decides) when, held out, it lowers another
label's Dice against ``weighted`` beyond that label's noise (at least ``DROP_TOLERANCE``).

With the optional ``left_to_rules`` part, such a label is also *left to the rules* by the
weights: the weight search aims at its equal-weight Dice instead of the seeing member's (which
weights cannot reach without costing the other labels) and the weight gate does not let its drop
hold back another label's step (:mod:`nnunet_ext.tune.search`, :mod:`nnunet_ext.tune.gate`).

The candidates of a label and their scoring on the compact CV data are in
:mod:`nnunet_ext.tune.candidates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.ensemble.rules import LabelRules
from nnunet_ext.tune.candidates import Candidate, RuleScorer, all_candidates, with_candidate
from nnunet_ext.tune.compact import CompactCVData, decision_order
from nnunet_ext.tune.judge import (
    best_member,
    bootstrap_noise,
    foreground_difference,
    gain_counts,
    judge_label_step,
    paired_difference,
    sole_reliable_member,
)
from nnunet_ext.tune.procedure import Procedure
from nnunet_ext.tune.scoring import mean_over_cases

__all__ = ["LabelDecision", "RuleChoice", "choose_rules"]

_KINDS = ("weighted", "from", "scale")


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


def _score(mean: NDArray[np.float64]) -> float:
    """Mean foreground Dice of per-label means (0 if no label is defined)."""
    return nan_mean(mean, empty=0.0)


def _above_floor(
    per_case: NDArray[np.float64],
    cases: NDArray[np.int64] | slice,
    equal: NDArray[np.float64],
) -> bool:
    """Whether no label's mean Dice on ``cases`` is below equal weights' (the in-sample floor)."""
    mean, floors = mean_over_cases(per_case[cases]), mean_over_cases(equal[cases])
    valid = ~np.isnan(mean) & ~np.isnan(floors)
    return not np.any(mean[valid] < floors[valid] - 1e-12)


def _pick(
    kind: str,
    candidates: Sequence[Candidate],
    per_case: Sequence[NDArray[np.float64]],
    cases: NDArray[np.int64] | slice,
    equal: NDArray[np.float64],
) -> int | None:
    """Index of the best admissible candidate of ``kind`` on ``cases`` (``None``: none)."""
    best, best_score = None, -np.inf
    for index, candidate in enumerate(candidates):
        if candidate.kind != kind:
            continue
        mean = mean_over_cases(per_case[index][cases])
        if kind != "weighted" and not _above_floor(per_case[index], cases, equal):
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
    procedure: Procedure | None = None,
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
            only one member predicts (:func:`~nnunet_ext.tune.judge.sole_reliable_member`) starts
            from ``from`` that member instead of ``weighted`` (none given: every label starts
            ``weighted``).
        procedure: Which of the blind-member parts run (default: all;
            :class:`~nnunet_ext.tune.procedure.Procedure`).

    Returns:
        The rules, every candidate's in-sample and held-out Dice, and the decisions.
    """
    label_list = [int(v) for v in label_ids]
    state = _ChoiceState(data, label_list, weights, equal_per_case, folds, fold_weights)
    state.members = list(member_per_case)
    state.procedure = procedure or Procedure()
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
        self.scorer = RuleScorer(data, label_list)
        self.candidates = all_candidates(data.num_models)
        self.fused_all = self.scorer.fused(weights)
        self.fused_folds = [self.scorer.fused(w) for w in fold_weights]
        all_cases = np.arange(self.n)
        self.trains = [np.setdiff1d(all_cases, np.asarray(h, dtype=np.int64)) for h in folds]
        self.helds = [np.asarray(held, dtype=np.int64) for held in folds]
        self.rules = LabelRules()
        self.fold_rules = [LabelRules() for _ in folds]
        self.members: list[NDArray[np.float64]] = []
        self.procedure = Procedure()
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
        chosen, steps, fold_picks = self._decide_kind(
            label, in_sample, fold_per_case, chosen_index, held_kind
        )
        self.rules = with_candidate(self.rules, label, chosen, self.c)
        if chosen.kind != "weighted":
            for f, pick in enumerate(fold_picks):
                if pick is not None:  # else the fold stays weighted for this label
                    self.fold_rules[f] = with_candidate(
                        self.fold_rules[f], label, candidates[pick], self.c
                    )
        return LabelDecision(
            label=label,
            candidates=[
                (k, mean_over_cases(i), mean_over_cases(h))
                for k, i, h in zip(candidates, in_sample, held_fixed, strict=True)
            ],
            chosen=chosen,
            steps=steps,
        )

    def _fold_picks(
        self, kind: str, fold_per_case: list[list[NDArray[np.float64]]]
    ) -> list[int | None]:
        """Each fold's candidate of ``kind``, chosen on the fold's tuning cases."""
        return [
            _pick(kind, self.candidates, fold_per_case[f], train, self.equal)
            for f, train in enumerate(self.trains)
        ]

    def _decide_kind(
        self,
        label: int,
        in_sample: list[NDArray[np.float64]],
        fold_per_case: list[list[NDArray[np.float64]]],
        chosen_index: dict[str, int | None],
        held_kind: dict[str, NDArray[np.float64] | None],
    ) -> tuple[Candidate, list[dict[str, Any]], list[int | None]]:
        """The rule of ``label``, the decision steps, and each fold's candidate.

        The chain from ``weighted``, or from ``from`` the sole reliable member when every other
        member is blind to the label, unless that default is below equal weights on the CV
        cases (the floor of every rule) or, with the veto, lowers another label held out.
        """
        j = self.label_list.index(label)
        base = (
            sole_reliable_member(self.members, j, training_folds=self.training_folds)
            if self.helds and self.procedure.blind_default
            else None
        )
        # the kind is decided once on all cases (as in the chain); its parameter, the member,
        # is chosen per fold on the fold's tuning cases: the best own Dice
        fold_base = [best_member(self.members, j, train) for train in self.trains]
        base_picks = [None if m is None else 1 + m for m in fold_base]  # "from m": 1 + m
        pairs = zip(fold_per_case, base_picks, strict=True)
        held_base = self._pooled([per_case[pick or 0] for per_case, pick in pairs])
        held_weighted = held_kind["weighted"]
        below = (
            self.procedure.default_floor
            and base is not None
            and not _above_floor(in_sample[1 + base], slice(None), self.equal)
        )
        vetoed = (
            self.procedure.default_veto
            and base is not None
            and held_weighted is not None
            and judge_label_step(j, paired_difference(held_base, held_weighted))["other_drop"] > 0
        )
        if base is None or below or vetoed:
            current, steps = _chain(chosen_index, held_kind)
            if below:
                steps[0]["basis"] += (
                    "; the blind-member default was not taken: it is below equal weights on "
                    "the CV cases"
                )
            elif vetoed:
                steps[0]["basis"] += (
                    "; the blind-member default was not taken: it lowers another label held "
                    "out beyond its noise"
                )
            chosen = self.candidates[chosen_index[current] or 0]  # "weighted" is always index 0
            return chosen, steps, self._fold_picks(current, fold_per_case)
        held_kind["from"], chosen_index["from"] = held_base, 1 + base
        column = self.weights[:, label]
        favoured = not self.procedure.favoured_only or bool(
            np.all(np.delete(column, base) < column[base])
        )
        current, steps = _chain_from_baseline(j, chosen_index, held_kind, favoured)
        chosen = self.candidates[chosen_index[current] or 0]
        fold_picks = base_picks if current == "from" else self._fold_picks(current, fold_per_case)
        return chosen, steps, fold_picks

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
    # per case: the mean foreground Dice (mean over the labels)
    diff = foreground_difference(held_new, held_current)
    gain = nan_mean(diff, empty=0.0)
    noise = bootstrap_noise(diff)
    step.update(gain=gain, noise=noise, taken=gain_counts(diff))
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
    (:func:`~nnunet_ext.tune.judge.judge_label_step`); ``scale`` replaces the current kind as in
    :func:`_chain`.
    """
    info = _foreground_step("from", "weighted", chosen_index, held_kind)
    info.update(taken=True, basis="baseline: every other member is blind to the label")
    steps = [info]
    held_weighted, held_from = held_kind["weighted"], held_kind["from"]
    current = "from"
    if held_weighted is not None and held_from is not None:
        verdict = judge_label_step(j, paired_difference(held_weighted, held_from))
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
