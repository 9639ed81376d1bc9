"""Keep equal weights for a label unless its tuned weights gain beyond the noise, held out.

The weight search (:mod:`nnunet_ext.tune.search`) maximises the Dice of the tuning cases; on a
label where the models are about as good, what it finds there is noise. This gate starts from
equal weights and, per label (smallest reference volume first, as the rules), takes the tuned
columns of that label only when they pay off on held-out cases. Two steps are tried per label:

* ``label + background``: the label's column and the background column from the tuned weights
  (the argmax between a label and the background depends on both columns);
* ``label``: the label's column only.

Each step is a whole candidate spec (the columns decided so far plus the step's), evaluated on
the same k folds over cases as the held-out estimate: each fold's columns come from the weights
searched without that fold's cases and are applied to its cases. A step is admissible when its
held-out gain on the label -- the mean over cases of the per-case difference in that label's
Dice against the current spec -- exceeds ``NOISE_Z`` times its bootstrap standard error and
:data:`~nnunet_ext.tune.judge.MIN_GAIN`, and no other label's held-out mean Dice drops by more
than its own noise (``NOISE_Z`` bootstrap standard errors, at least :data:`DROP_TOLERANCE`).
A label the search left to the rules (:attr:`~nnunet_ext.tune.search.SearchResult.rule_labels`:
one member alone predicts it) is exempt from that test: the rules decide it next, starting from
``from`` that member, so its Dice under the weights alone does not hold back another label's
step (it still counts in the foreground gain that ranks the steps). With the nnU-Net training
fold of each case (``tune --splits``), a label's drop is counted only on the cases of the folds
where no model is blind to it (:func:`~nnunet_ext.tune.judge.fold_blind_cases`): on the cases
of a fold model blind to a label, leaning towards that model looks costlier than it is for the
fold-averaged model on new cases.
Of the admissible steps the one with the larger held-out gain in mean foreground Dice is taken;
none: the label keeps the columns it has (equal weights unless an earlier label took the
background column). In-sample Dice are reported, not gated on:
a label may end slightly below its equal-weight Dice in-sample (within the held-out noise).

Because the background column couples every label through the argmax, the spec that comes out
is exactly the one whose held-out Dice was measured: the held-out per-case Dice of the gated
weights is that of the last step taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.tune.compact import CompactCVData, decision_order
from nnunet_ext.tune.holdout import HoldoutRuns
from nnunet_ext.tune.judge import (
    DROP_TOLERANCE,
    fold_blind_cases,
    judge_label_step,
    paired_difference,
)
from nnunet_ext.tune.scoring import mean_over_cases, score_weights

__all__ = ["DROP_TOLERANCE", "WeightDecision", "WeightGate", "gate_weights"]

#: The steps tried per label, by name, with the columns they take from the tuned weights
#: (``"label"`` stands for the label's own column).
_STEPS = (("label + background", (0, "label")), ("label", ("label",)))


@dataclass(frozen=True)
class WeightDecision:
    """The weight steps of one label.

    Attributes:
        label: Class index.
        candidates: ``(name, in_sample, held_out)`` of each candidate spec, ``(L,)`` mean Dice
            of every label: ``"equal"`` (the spec before this label's step: the columns decided
            so far), then each step tried.
        steps: Per step tried: its name, the columns it takes from the tuned weights, held-out
            gain on the label, noise, the largest drop of another label beyond its noise (0:
            none), held-out gain in mean foreground Dice, and whether taken.
        taken: The step taken, or ``None`` (the label keeps its current columns).
    """

    label: int
    candidates: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]]
    steps: list[dict[str, Any]] = field(default_factory=list)
    taken: str | None = None


@dataclass(frozen=True)
class WeightGate:
    """The outcome of :func:`gate_weights`.

    Attributes:
        weights: ``(M, C)`` gated weights (columns sum to 1): tuned columns where a step was
            taken, equal weights elsewhere.
        fold_weights: The same columns from each fold's weights (for the rule choice).
        held_out: ``(cases, L)`` held-out Dice of the gated weights.
        in_sample: ``(L,)`` in-sample mean Dice of the gated weights.
        decisions: One per label, in decision order.
    """

    weights: NDArray[np.float64]
    fold_weights: list[NDArray[np.float64]]
    held_out: NDArray[np.float64]
    in_sample: NDArray[np.float64]
    decisions: list[WeightDecision]


def _mixed(
    base: NDArray[np.float64], tuned: NDArray[np.float64], columns: set[int]
) -> NDArray[np.float64]:
    out: NDArray[np.float64] = base.copy()
    for column in columns:
        out[:, column] = tuned[:, column]
    return out


class _HeldOut:
    """Held-out per-case Dice of specs mixing equal and tuned columns, fold by fold."""

    def __init__(self, data: CompactCVData, runs: HoldoutRuns, label_ids: Sequence[int]) -> None:
        self.label_ids = list(label_ids)
        self.held = [data.subset(cases) for cases in runs.folds]
        self.folds = runs.folds
        self.fold_weights = runs.fold_weights
        self.num_cases = data.num_cases

    def per_case(self, equal: NDArray[np.float64], columns: set[int]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = np.full((self.num_cases, len(self.label_ids)), np.nan)
        for cases, held, tuned in zip(self.held, self.folds, self.fold_weights, strict=True):
            out[held] = score_weights(cases, _mixed(equal, tuned, columns), self.label_ids)[1]
        return out


def gate_weights(
    data: CompactCVData,
    label_ids: Sequence[int],
    runs: HoldoutRuns,
) -> WeightGate:
    """Gate the tuned weights of :func:`~nnunet_ext.tune.holdout.holdout_runs` label by label.

    See the module docstring for the steps and the gate.

    Args:
        data: Compact CV data (as given to :func:`~nnunet_ext.tune.holdout.holdout_runs`).
        label_ids: Foreground labels (class indices).
        runs: The search on all cases and on each fold; must have folds.

    Returns:
        The gated weights, the same columns of each fold's weights, their held-out Dice and
        every step's in-sample and held-out Dice.

    Raises:
        ValueError: If ``runs`` has no folds (nothing held out to gate on).
    """
    if not runs.folds:
        raise ValueError("runs must have held-out folds to gate the weights; got none.")
    label_list = [int(v) for v in label_ids]
    data = data.settle()
    equal = runs.baseline_per_case["equal"]
    equal_weights = np.full((data.num_models, data.num_classes), 1.0 / data.num_models)
    tuned = runs.result.weights
    held_out = _HeldOut(data, runs, label_list)
    columns: set[int] = set()
    current_held, current_in = equal, mean_over_cases(equal)
    # a label left to the rules (one member alone predicts it) is decided by them next; its
    # Dice under the weights alone does not hold back another label's step
    exempt = [label_list.index(label) for label in runs.result.rule_labels]
    # a case whose training fold has a model blind to a label does not count for its drops
    members = [runs.baseline_per_case[f"model {m}"] for m in range(data.num_models)]
    uncounted = fold_blind_cases(members, data.training_folds)
    decisions = []
    for label in decision_order(data, label_list):
        j = label_list.index(label)
        kept = "equal" if not columns else "as before"
        candidates = [(kept, current_in, mean_over_cases(current_held))]
        steps: list[dict[str, Any]] = []
        best: tuple[float, set[int], NDArray[np.float64], NDArray[np.float64], str] | None = None
        for name, wanted in _STEPS:
            step_columns = columns | {label if c == "label" else int(c) for c in wanted}
            if step_columns == columns or any(step_columns == s["columns"] for s in steps):
                continue
            per_case = held_out.per_case(equal_weights, step_columns)
            in_sample = score_weights(data, _mixed(equal_weights, tuned, step_columns), label_list)[
                0
            ]
            verdict = judge_label_step(
                j,
                paired_difference(per_case, current_held),
                exempt=exempt,
                uncounted=uncounted,
            )
            candidates.append((name, in_sample, mean_over_cases(per_case)))
            steps.append({"step": name, "columns": step_columns, **verdict})
            rank = verdict["foreground_gain"]
            if verdict["passes"] and (best is None or rank > best[0]):
                best = (rank, step_columns, per_case, in_sample, name)
        taken = None
        if best is not None:
            _, columns, current_held, current_in, taken = best
        for step in steps:
            step["taken"] = step["step"] == taken
            step["columns"] = sorted(step["columns"])
        decisions.append(WeightDecision(label, candidates, steps, taken))
    return WeightGate(
        weights=_mixed(equal_weights, tuned, columns),
        fold_weights=[_mixed(equal_weights, w, columns) for w in runs.fold_weights],
        held_out=current_held,
        in_sample=current_in,
        decisions=decisions,
    )
