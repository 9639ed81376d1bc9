"""Choose component rules on validation cases: candidates from the references, held-out verdicts.

For each rule (in :data:`RULES` order) and each label, on top of the rules accepted so far:

1. candidate thresholds come from the CV references (quantiles of the reference component
   volumes of the label for ``relabel_small``, of the per-case reference totals for
   ``volume_gate``, the reference component counts for ``keep_top_k``) or, for
   ``min_probability``, from quantiles of the predicted components' max or mean probability;
   the new label is background or the reference label most wrong components hold;
2. every candidate is evaluated on the component tables (:mod:`~nnunet_ext.postprocess.
   component_tables`), per case and label;
3. its held-out gain (threshold chosen on the other folds, :mod:`~nnunet_ext.postprocess.heldout`)
   must pass tune's noise rule, and the in-sample best must beat no rule without making more
   cases undefined; the threshold kept is the middle of the gap between the components it
   changes and those it keeps (on the CV cases the same components change).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext._stats import nan_mean
from nnunet_ext.evaluate.metrics import confusion_matrix
from nnunet_ext.postprocess.component_tables import (
    Change,
    LabelTable,
    apply_change,
    build_table,
    matrix_after,
    reference_volumes,
)
from nnunet_ext.postprocess.heldout import (
    best_candidate,
    differences,
    fold_ids,
    held_out,
    judge_step,
    verdict_text,
)
from nnunet_ext.postprocess.objective import Objective
from nnunet_ext.postprocess.steps import ComponentStep

__all__ = ["PROBABILITY_QUANTILES", "QUANTILES", "RULES", "CaseArrays", "ComponentSearch"]

#: The rules in the order they are tried (and run: a plan's ``steps`` keep this order).
RULES = ("relabel_small", "min_probability", "volume_gate", "keep_top_k")
#: Quantiles of the reference volumes tried as size thresholds.
QUANTILES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
#: Quantiles of the predicted components' probabilities tried as thresholds.
PROBABILITY_QUANTILES = tuple(round(q, 2) for q in np.linspace(0.05, 0.95, 19))
#: Most components ``keep_top_k`` tries to keep.
MAX_K = 5


@dataclass(frozen=True)
class CaseArrays:
    """The validation cases in memory.

    Attributes:
        references: Reference label maps.
        predictions: Predicted label maps (same shapes).
        spacings: Voxel size per array axis of each case.
        label_ids: The labels decided on.
        probabilities: The predictions' fused probabilities ``(C, ...)``, or ``None``.
    """

    references: list[NDArray[Any]]
    predictions: list[NDArray[Any]]
    spacings: list[tuple[float, ...]]
    label_ids: list[int]
    probabilities: list[NDArray[Any]] | None = None


def _distinct(
    options: list[tuple[float, int]], changes: list[list[Change]]
) -> tuple[list[int], list[int | None]]:
    """The candidates with a distinct effect (the first of each), and each one's index among them.

    A candidate that changes nothing has ``None``; one with the same new label and the same
    changed components as an earlier one shares that one's index.
    """
    distinct: dict[bytes, int] = {}
    keep: list[int] = []
    index_of: list[int | None] = []
    for (_, to), change in zip(options, changes, strict=True):
        if all(c.empty for c in change):
            index_of.append(None)
            continue
        digest = hashlib.sha1(repr(to).encode())
        for c in change:
            digest.update(np.packbits(c.changed).tobytes() + b"|")
        key = digest.digest()
        if key not in distinct:
            distinct[key] = len(keep)
            keep.append(len(index_of))
        index_of.append(distinct[key])
    return keep, index_of


class ComponentSearch:
    """The search: current predictions, their values, the accepted steps and every candidate."""

    def __init__(
        self,
        objective: Objective,
        cases: CaseArrays,
        *,
        connectivity: int,
        unit: str,
        ignore_label: int | None,
    ) -> None:
        self.objective, self.ids = objective, cases.label_ids
        self.truth, self.current = cases.references, cases.predictions
        self.spacings, self.probabilities = cases.spacings, cases.probabilities
        truth, current, ids = self.truth, self.current, self.ids
        spacings = self.spacings
        self.connectivity, self.unit, self.ignore_label = connectivity, unit, ignore_label
        self.voxel_volumes = [float(np.prod(np.asarray(s, dtype=np.float64))) for s in spacings]
        high = max(max(int(a.max()) for a in (*truth, *current) if a.size), *ids)
        self.num_values = max(high, ignore_label or 0) + 1
        self.folds = fold_ids(len(truth))
        self.matrices: list[NDArray[np.int64]] = []
        if objective.count_based:
            self.matrices = [
                confusion_matrix(t, p, num_values=self.num_values, ignore_label=ignore_label)
                for t, p in zip(truth, current, strict=True)
            ]
        self.values = self._values_of(self.matrices, current)
        self.accepted: list[ComponentStep] = []
        self.records: list[dict[str, Any]] = []
        self._tables: dict[int, LabelTable] = {}

    def _values_of(
        self, matrices: list[NDArray[np.int64]], maps: list[NDArray[Any]]
    ) -> dict[str, NDArray[np.float64]]:
        if self.objective.count_based:
            shapes = [t.shape for t in self.truth]
            return self.objective.values_from_matrices(matrices, self.ids, shapes, self.spacings)
        return self.objective.values(self.truth, maps, self.ids, self.spacings)

    def table(self, label: int) -> LabelTable:
        """The component table of ``label`` on the current predictions (built once)."""
        if label not in self._tables:
            self._tables[label] = LabelTable(
                label,
                [
                    build_table(
                        prediction,
                        reference,
                        label,
                        num_values=self.num_values,
                        connectivity=self.connectivity,
                        ignore_label=self.ignore_label,
                        voxel_volume=volume,
                        probabilities=None if self.probabilities is None else self.probabilities[i],
                    )
                    for i, (prediction, reference, volume) in enumerate(
                        zip(self.current, self.truth, self.voxel_volumes, strict=True)
                    )
                ],
            )
        return self._tables[label]

    def run(self, rules: tuple[str, ...]) -> None:
        """Try every rule of ``rules`` (in :data:`RULES` order) on every label."""
        for rule in RULES:
            if rule not in rules:
                continue
            statistics = ("max", "mean") if rule == "min_probability" else (None,)
            for label in self.ids:
                for statistic in statistics:
                    self.try_rule(rule, label, statistic)

    def _options(
        self, rule: str, table: LabelTable, statistic: str | None
    ) -> tuple[list[tuple[float, int]], list[list[Change]], list[NDArray[np.float64]]]:
        """Candidate (threshold, new label) pairs, their changes and the compared values."""
        label = table.label
        sizes, totals, counts = reference_volumes(
            self.truth,
            label,
            connectivity=self.connectivity,
            voxel_volumes=self.voxel_volumes,
            unit=self.unit,
        )
        if rule == "keep_top_k":
            ks = sorted({int(c) for c in counts if 1 <= c <= MAX_K} | {1})
            return [(float(k), 0) for k in ks], [table.top_k(k) for k in ks], []
        if rule == "min_probability":
            if self.probabilities is None or statistic is None:
                return [], [], []
            values = table.component_values(statistic, self.unit)
            pooled = np.concatenate([v[1:] for v in values])
            thresholds = np.quantile(pooled, PROBABILITY_QUANTILES) if pooled.size else []
        else:
            values = table.component_values(
                "size" if rule == "relabel_small" else "total", self.unit
            )
            pool = sizes if rule == "relabel_small" else totals
            thresholds = np.quantile(pool, QUANTILES) if pool.size else []
        targets = sorted({0, table.wrong_target()} - {label})
        options = [(float(t), to) for t in np.unique(thresholds) if t > 0 for to in targets]
        changes = [table.below(values, t, to) for t, to in options]
        return options, changes, values

    def _evaluate(self, changes: list[Change], table: LabelTable) -> dict[str, NDArray[np.float64]]:
        """Values of all cases and labels after ``changes`` (one per case)."""
        if self.objective.count_based:
            matrices = [
                m if c.empty else matrix_after(m, case, c)
                for m, case, c in zip(self.matrices, table.cases, changes, strict=True)
            ]
            return self._values_of(matrices, [])
        values = {k: v.copy() for k, v in self.values.items()}
        touched = [i for i, c in enumerate(changes) if not c.empty]
        if touched:
            maps = [apply_change(self.current[i], table.cases[i], changes[i]) for i in touched]
            new = self.objective.values(
                [self.truth[i] for i in touched],
                maps,
                self.ids,
                [self.spacings[i] for i in touched],
            )
            for key in values:
                values[key][touched] = new[key]
        return values

    def try_rule(self, rule: str, label: int, statistic: str | None) -> None:
        """Evaluate every candidate of ``rule`` on ``label``; accept the best if it passes."""
        table = self.table(label)
        tried, changes, compared = self._options(rule, table, statistic)
        keep, index_of = _distinct(tried, changes)
        options = [tried[i] for i in keep]
        changes = [changes[i] for i in keep]
        j = self.ids.index(label)
        baseline = self.objective.case_values(self.values)
        evaluated = [self._evaluate(change, table) for change in changes]
        goodness = (
            np.stack([self.objective.case_values(v) for v in evaluated])
            if evaluated
            else np.zeros((0, *baseline.shape))
        )
        paired = self.objective.nan_is_perfect
        diffs = differences(goodness, baseline, paired=paired)
        diff, choices = held_out(diffs, j, self.folds)
        verdict = judge_step(j, diff)
        best = best_candidate(diffs, j)
        # an emptied case must not drop out of a mean where NaN is not a perfect case
        more_undefined = (
            best is not None
            and not paired
            and any(
                self.objective.undefined(evaluated[best], k)
                > self.objective.undefined(self.values, k)
                for k in range(len(self.ids))
            )
        )
        accepted = bool(verdict["passes"] and best is not None and not more_undefined)
        chosen = None
        if best is not None:
            chosen = (self._margin(rule, options[best], changes[best], compared), options[best][1])
        self._record(rule, label, statistic, (tried, index_of), diffs, verdict)
        self.records[-1]["fold_choices"] = [
            None if c is None else list(options[c]) for c in choices
        ]
        self.records[-1]["held_out_by_label"] = {
            str(k): nan_mean(diff[:, i], empty=0.0) for i, k in enumerate(self.ids)
        }
        self.records[-1].update(
            accepted=accepted,
            chosen=None if chosen is None else list(chosen),
            reason=self._reason(verdict, best is not None, more_undefined),
        )
        if accepted and chosen is not None and best is not None:
            self._accept(rule, label, statistic, chosen, changes[best], evaluated[best], verdict)

    def _margin(
        self,
        rule: str,
        option: tuple[float, int],
        changes: list[Change],
        compared: list[NDArray[np.float64]],
    ) -> float:
        """The threshold in the middle of the gap between changed and kept components."""
        if rule == "keep_top_k" or not compared:
            return option[0]
        changed = [v[c.changed] for v, c in zip(compared, changes, strict=True)]
        kept = [v[1:][~c.changed[1:]] for v, c in zip(compared, changes, strict=True)]
        low = max((float(v.max()) for v in changed if v.size), default=-math.inf)
        high = min((float(v.min()) for v in kept if v.size), default=math.inf)
        if math.isfinite(low) and math.isfinite(high) and low < high:
            return (low + high) / 2
        return option[0]

    def _reason(self, verdict: dict[str, Any], has_best: bool, more_undefined: bool) -> str:
        name = self.objective.name
        text = verdict_text(name, verdict)
        if not has_best:
            return text + "; no candidate beats no rule in-sample"
        if more_undefined:
            return text + f"; refused: more cases with {name} undefined"
        return text

    def _record(
        self,
        rule: str,
        label: int,
        statistic: str | None,
        tried: tuple[list[tuple[float, int]], list[int | None]],
        diffs: NDArray[np.float64],
        verdict: dict[str, Any],
    ) -> None:
        """Record every candidate tried (those with the same effect share their gain)."""
        options, index_of = tried
        j = self.ids.index(label)
        base = self.objective.label_value(self.values, j)
        gains = [nan_mean(d[:, j], empty=0.0) for d in diffs]
        in_sample = [0.0 if i is None else gains[i] for i in index_of]
        entry: dict[str, Any] = {
            "step": rule,
            "label": label,
            "metric": self.objective.name,
            "unit": "probability"
            if rule == "min_probability"
            else ("components" if rule == "keep_top_k" else self.unit),
            "thresholds": [[value, to] for value, to in options],
            "in_sample": in_sample,
            "baseline": base,
            "held_out_gain": verdict["gain"],
            "noise": verdict["noise"],
            "other_drop": verdict["other_drop"],
        }
        if statistic is not None:
            entry["statistic"] = statistic
        self.records.append(entry)

    def _accept(
        self,
        rule: str,
        label: int,
        statistic: str | None,
        chosen: tuple[float, int],
        changes: list[Change],
        values: dict[str, NDArray[np.float64]],
        verdict: dict[str, Any],
    ) -> None:
        threshold, to = chosen
        reason = (
            f"kept: held-out {self.objective.name} gain {verdict['gain']:+.4g} of label {label} "
            f"over {len(self.truth)} cases (noise {verdict['noise']:.3g}) counts by tune's rule, "
            "no other label dropping beyond its noise"
        )
        common: dict[str, Any] = {"reason": reason}
        if rule == "keep_top_k":
            step = ComponentStep(
                rule, label, k=int(threshold), connectivity=self.connectivity, **common
            )
        elif rule == "min_probability":
            step = ComponentStep(
                rule,
                label,
                to=to,
                statistic=statistic or "max",
                threshold=threshold,
                connectivity=self.connectivity,
                **common,
            )
        else:
            step = ComponentStep(
                rule,
                label,
                to=to,
                min_size=threshold,
                unit=self.unit,
                connectivity=self.connectivity if rule == "relabel_small" else None,
                **common,
            )
        self.accepted.append(step)
        table = self._tables[label]
        self.current = [
            apply_change(p, case, c)
            for p, case, c in zip(self.current, table.cases, changes, strict=True)
        ]
        if self.objective.count_based:
            self.matrices = [
                m if c.empty else matrix_after(m, case, c)
                for m, case, c in zip(self.matrices, table.cases, changes, strict=True)
            ]
        self.values = values
        self._tables.clear()
