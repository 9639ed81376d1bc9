"""The candidate rules of one label and their per-case Dice on the compact CV data.

The candidates (:func:`all_candidates`) are ``weighted`` (the weights decide), ``from M`` for each
member and ``scale s`` for each decision scale of :data:`SCALE_GRID`; :func:`with_candidate` adds
one to the rules decided so far, and :class:`RuleScorer` scores weights + rules on all cases at
once, each candidate on the only voxels it can change. Member argmax maps of the contested voxels
are taken from the float16 compact probabilities (settled voxels: every member agrees, see
:mod:`nnunet_ext.tune.compact`, whose settled test allows decision scales up to
:data:`MAX_SCALE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.ensemble.rules import LabelRules, apply_label_rules
from nnunet_ext.tune.compact import MAX_RULE_SCALE, CompactCVData
from nnunet_ext.tune.scoring import label_dice

__all__ = [
    "MAX_SCALE",
    "SCALE_GRID",
    "Candidate",
    "RuleScorer",
    "all_candidates",
    "with_candidate",
]

#: Decision scales tried for a label (threshold moving for a label the fusion under-calls).
SCALE_GRID = (1.25, 1.5, 2.0, 3.0)
#: Largest decision scale; :func:`nnunet_ext.tune.compact.compact_case` keeps every voxel it
#: could change.
MAX_SCALE = MAX_RULE_SCALE


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


def _argmax(values: NDArray[Any]) -> NDArray[np.uint8]:
    """``values.argmax(axis=0)`` as uint8 by a running maximum (first maximum wins).

    uint8 holds every class: tune refuses classes above the uint8 label ceiling
    (:func:`nnunet_ext.tune.reading.load_cv_data`).
    """
    best = values[0].copy()
    out = np.zeros(best.shape, dtype=np.uint8)
    for c in range(1, values.shape[0]):
        better = values[c] > best
        np.copyto(best, values[c], where=better)
        out[better] = c
    return out


class RuleScorer:
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
        """The fused float32 probabilities of the contested voxels under ``weights``."""
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
            labels = apply_label_rules(
                fused_active, with_candidate(rules, label, candidate, c), maps
            )
            counts = without + np.bincount(keys + labels, minlength=self.size)
            confusion = self.data.fixed + counts.reshape(self.data.num_cases, self.k, self.k)
            out.append(label_dice(confusion, self.label_ids))
        return out

    def per_case(self, fused: NDArray[np.float32], rules: LabelRules) -> NDArray[np.float64]:
        """``(cases, L)`` Dice of ``rules`` on the ``fused`` probabilities."""
        labels = apply_label_rules(fused, rules, self.member_labels)
        counts = np.bincount(self.key_base + labels, minlength=self.size)
        confusion = self.data.fixed + counts.reshape(self.data.num_cases, self.k, self.k)
        return label_dice(confusion, self.label_ids)


def with_candidate(
    rules: LabelRules, label: int, candidate: Candidate, num_classes: int
) -> LabelRules:
    """``rules`` plus ``candidate`` for ``label`` (``weighted`` adds nothing)."""
    scale = dict(enumerate(rules.scale)) if rules.scale is not None else {}
    take = list(rules.take)
    if candidate.kind == "from" and candidate.member is not None:
        take.append((label, candidate.member))
    elif candidate.kind == "scale" and candidate.scale is not None:
        scale[label] = candidate.scale
    return LabelRules.build(num_classes, scale=scale, take=take)


def all_candidates(num_models: int) -> list[Candidate]:
    """``weighted``, then ``from`` each member, then each scale of :data:`SCALE_GRID`.

    Examples:
        >>> [c.describe() for c in all_candidates(2)][:4]
        ['weighted', 'from m0', 'from m1', 'scale x1.25']
    """
    out = [Candidate("weighted")]
    out += [Candidate("from", member=m) for m in range(num_models)]
    out += [Candidate("scale", scale=s) for s in SCALE_GRID]
    return out
