"""The greedy search over the plan's existing steps (keep-largest, remove-small, fill-holes).

:class:`StepSearch` tries the steps in the plan's order, each on top of what was accepted so
far, and keeps a step by one of two judges (:data:`JUDGES`):

* ``in-sample`` (nnU-Net's rule, ``nnUNetv2_determine_postprocessing``): a per-label step is
  kept when the label's mean over all CV cases improves strictly; the foreground step when the
  mean over labels improves and no label gets worse. Chosen and scored on the same cases, a
  step that wins by a hair on them can lose on new cases.
* ``held-out``: the in-sample rule must hold, and the step must also pass the package's one
  held-out rule, as the component rules do (:mod:`nnunet_ext.postprocess.heldout`): over
  :data:`~nnunet_ext.postprocess.heldout.FOLDS` folds of the cases, each fold takes the step
  when it improves the mean on the other folds; the per-case differences this gives the held-out
  cases must show a gain of the label (of the mean over labels for the foreground step) above
  ``MIN_GAIN`` and either ``NOISE_Z`` bootstrap noises or, with no case losing more than
  ``CASE_TOLERANCE``, that tolerance, and no label may drop by more than its own noise (at least
  ``DROP_TOLERANCE``).

With a metric other than Dice a step is also refused when it makes the metric undefined in more
cases (an emptied prediction must not drop out of a distance mean).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.postprocess.components import keep_largest_foreground_component
from nnunet_ext.postprocess.heldout import (
    RULE_TEXT,
    differences,
    fold_ids,
    held_out,
    judge_step,
    verdict_text,
)
from nnunet_ext.postprocess.objective import Objective, finite_mean

__all__ = ["JUDGES", "StepSearch", "held_out_verdict"]

#: How :class:`StepSearch` judges a step: nnU-Net's in-sample rule, or that and the held-out rule.
JUDGES = ("in-sample", "held-out")


def _label_means(vals: dict[str, NDArray[np.float64]], j: int) -> dict[str, float]:
    return {k: finite_mean(v[:, j]) for k, v in vals.items()}


def _foreground_means(vals: dict[str, NDArray[np.float64]]) -> dict[str, float]:
    return {
        k: finite_mean(np.array([finite_mean(v[:, i]) for i in range(v.shape[1])]))
        for k, v in vals.items()
    }


def held_out_verdict(
    goodness: NDArray[np.float64],
    baseline: NDArray[np.float64],
    j: int | None,
    folds: NDArray[np.int64],
    *,
    paired: bool,
) -> dict[str, Any]:
    """The held-out verdict on one step (a single candidate) for label column ``j``.

    Each fold takes the step when the mean difference of column ``j`` on the other folds is
    above 0 (:func:`~nnunet_ext.postprocess.heldout.held_out`); the held-out differences are
    judged by :func:`~nnunet_ext.postprocess.heldout.judge_step`. ``j=None`` judges a step on
    every label (keep the largest foreground component) on the per-case mean over labels, every
    label counted as another label that must not drop beyond its noise.

    Args:
        goodness: ``(cases, labels)`` per-case values after the step, higher is better.
        baseline: The same before the step.
        j: The label column, or ``None`` for the mean over labels.
        folds: Fold of each case (:func:`~nnunet_ext.postprocess.heldout.fold_ids`).
        paired: NaN is a perfect case (Dice, IoU, NSD), paired as ``tune`` pairs it.

    Returns:
        ``judge_step``'s verdict (``gain``, ``noise``, ``other_drop``, ``passes``, ...) with
        ``fold_choices`` (whether each fold took the step) and ``held_out_by_label`` (each label
        column's mean held-out difference).

    Examples:
        >>> before = np.array([[0.8, 0.9]] * 6)
        >>> gains = before + [[0.05, 0.0]] * 6  # label 0 gains 0.05 on every case
        >>> verdict = held_out_verdict(gains, before, 0, fold_ids(6, 3), paired=True)
        >>> verdict["passes"], verdict["fold_choices"]
        (True, [True, True, True])
        >>> mixed = before + [[0.05, 0.0], [-0.06, 0.0]] * 3  # wins on half, loses on half
        >>> held_out_verdict(mixed, before, 0, fold_ids(6, 3), paired=True)["passes"]
        False
    """
    diff = differences(goodness[None], baseline, paired=paired)[0]
    column = diff.shape[1] if j is None else j
    if j is None:  # the mean over labels of each case, beside the labels
        diff = np.concatenate([diff, nan_mean(diff, axis=1)[:, None]], axis=1)
    per_case, choices = held_out(diff[None], column, folds)
    verdict = judge_step(column, per_case)
    verdict["fold_choices"] = [c is not None for c in choices]
    verdict["held_out_by_label"] = [
        nan_mean(per_case[:, i], empty=0.0) for i in range(goodness.shape[1])
    ]
    return verdict


class StepSearch:
    """The greedy search of :func:`~nnunet_ext.postprocess.determine.determine_plan`.

    It holds the current predictions, their metric values per case and label, and every tried
    step with its before/after means (and, judged ``held-out``, its held-out verdict).
    """

    def __init__(
        self,
        objective: Objective,
        truth: list[NDArray[Any]],
        current: list[NDArray[Any]],
        spacings: list[tuple[float, ...]],
        ids: list[int],
        *,
        judge: str = "in-sample",
    ) -> None:
        if judge not in JUDGES:
            raise ValueError(f"judge must be in-sample or held-out; got {judge!r}.")
        self.objective, self.truth, self.current = objective, truth, current
        self.spacings, self.ids, self.judge = spacings, ids, judge
        self.folds = fold_ids(len(truth))
        self.values = objective.values(truth, current, ids, spacings)
        self.label_values = [objective.label_value(self.values, j) for j in range(len(ids))]
        self.before_all = {str(k): _label_means(self.values, j) for j, k in enumerate(ids)}
        self.steps: list[dict[str, Any]] = []
        self.accepted: dict[str, Any] = {
            "keep_largest_foreground": False,
            "keep_largest": [],
            "min_voxels": {},
            "fill_holes": [],
        }

    def _held_out(self, new_values: dict[str, NDArray[np.float64]], j: int | None) -> bool:
        """Judge held out (``held-out`` only; records the verdict on the last step)."""
        if self.judge != "held-out":
            return True
        objective = self.objective
        verdict = held_out_verdict(
            objective.case_values(new_values),
            objective.case_values(self.values),
            j,
            self.folds,
            paired=objective.nan_is_perfect,
        )
        self.steps[-1].update(
            held_out_gain=verdict["gain"],
            noise=verdict["noise"],
            other_drop=verdict["other_drop"],
            fold_choices=verdict["fold_choices"],
            held_out_by_label=dict(
                zip(map(str, self.ids), verdict["held_out_by_label"], strict=True)
            ),
            reason=verdict_text(objective.name, verdict),
        )
        return bool(verdict["passes"])

    def _record(
        self,
        operation: str,
        label: int | None,
        values: tuple[float, float],
        means: tuple[dict[str, float], dict[str, float]],
    ) -> None:
        self.steps.append(
            {
                "operation": operation,
                "label": label,
                "dice_before": means[0]["dice"],
                "dice_after": means[1]["dice"],
                "metric": self.objective.name,
                "value_before": values[0],
                "value_after": values[1],
                "before": means[0],
                "after": means[1],
                "accepted": False,
            }
        )

    def try_foreground(self, connectivity: int | None) -> None:
        """Keep the largest foreground component if the total improves and no label worsens."""
        objective, ids = self.objective, self.ids
        candidate = [
            keep_largest_foreground_component(p, connectivity=connectivity) for p in self.current
        ]
        new_values = objective.values(self.truth, candidate, ids, self.spacings)
        new_label_values = [objective.label_value(new_values, j) for j in range(len(ids))]
        old_total = objective.total(self.label_values, ids)
        new_total = objective.total(new_label_values, ids)
        no_worse = not any(  # "old better than new" for some label
            objective.better(old, new)
            for old, new in zip(self.label_values, new_label_values, strict=True)
        )
        more_undefined = any(
            objective.undefined(new_values, j) > objective.undefined(self.values, j)
            for j in range(len(ids))
        )
        ok = objective.better(new_total, old_total) and no_worse and not more_undefined
        means = (_foreground_means(self.values), _foreground_means(new_values))
        self._record("keep_largest_foreground", None, (old_total, new_total), means)
        ok = self._held_out(new_values, None) and ok
        self.steps[-1]["accepted"] = ok
        if ok:
            self.current, self.values = candidate, new_values
            self.label_values = new_label_values
            self.accepted["keep_largest_foreground"] = True

    def try_step(
        self,
        operation: str,
        label: int,
        apply: Callable[[NDArray[Any]], NDArray[Any]],
        size: float | None = None,
    ) -> None:
        """Apply one per-label step if that label's mean improves strictly (see the rule)."""
        objective, index = self.objective, self.ids.index(label)
        candidate = [apply(p) for p in self.current]
        new_column = objective.values(self.truth, candidate, [label], self.spacings)
        old_value = self.label_values[index]
        new_value = objective.label_value(new_column, 0)
        old_column = {k: v[:, [index]] for k, v in self.values.items()}
        ok = objective.better(new_value, old_value) and objective.undefined(
            new_column, 0
        ) <= objective.undefined(old_column, 0)
        means = (_label_means(old_column, 0), _label_means(new_column, 0))
        self._record(operation, label, (old_value, new_value), means)
        new_values = {k: v.copy() for k, v in self.values.items()}
        for k in new_values:
            new_values[k][:, index] = new_column[k][:, 0]
        ok = self._held_out(new_values, index) and ok
        self.steps[-1]["accepted"] = ok
        if not ok:
            return
        self.current, self.values = candidate, new_values
        self.label_values[index] = new_value
        if operation == "min_voxels":
            self.accepted["min_voxels"][label] = size
        else:
            self.accepted[operation].append(label)

    def rule(self) -> str:
        """The acceptance rule in words (the plan's ``metrics.rule``)."""
        objective = self.objective
        text = (
            f"accept a step if the label's mean {objective.name} improves strictly "
            f"({'higher' if objective.higher_is_better else 'lower'} is better; foreground step: "
            "the mean over labels improves and no label gets worse); NaN cases left out of means"
            + ("" if objective.name == "dice" else "; refused if more cases become undefined")
        )
        if self.judge == "held-out":
            text += (
                f"; and held out: over {int(self.folds.max()) + 1} folds each fold takes the "
                f"step when it improves the other folds' mean, and {RULE_TEXT} (the component "
                "rules' rule)"
            )
        return text

    def metrics(self, num_cases: int) -> dict[str, Any]:
        """The plan's ``metrics``: the rule, before/after means and every tried step."""
        objective, ids, values = self.objective, self.ids, self.values
        metrics = {
            "rule": self.rule(),
            "judge": self.judge,
            "metric": objective.name,
            "num_cases": num_cases,
            "label_ids": ids,
            "dice_before": {k: v["dice"] for k, v in self.before_all.items()},
            "dice_after": {str(k): finite_mean(values["dice"][:, j]) for j, k in enumerate(ids)},
            "steps": self.steps,
        }
        if objective.name != "dice":
            metrics.update(
                convention=objective.convention,
                nsd_tolerance_mm=objective.nsd_tolerance,
                before=self.before_all,
                after={str(k): _label_means(values, j) for j, k in enumerate(ids)},
            )
        return metrics
