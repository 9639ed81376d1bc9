"""Component tables of validation cases: what a component rule would change, without re-labelling.

The components of each label are found once per case (``cc3d``, as the rules find them) and
described in a table: size, overlap with each reference value, and (given probabilities) the
max and mean fused probability of the label. A candidate threshold then only marks components
(:meth:`LabelTable.changes`), and its effect on the metric is computed from the table: for
Dice and IoU by moving the marked components' reference counts between two columns of the
case's confusion matrix, for any other metric by one look-up into the component ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nnunet_ext.postprocess.component_rules import component_probability, label_components

__all__ = ["CaseTable", "Change", "LabelTable", "apply_change", "reference_volumes"]


@dataclass(frozen=True)
class CaseTable:
    """One label's components in one case.

    Attributes:
        box: Bounding box of the label (``None``: absent).
        ids: Component id per voxel of ``box`` (0: not the label).
        sizes: Voxels per id (``sizes[0]`` is 0).
        overlap: ``(ids, K)`` voxels of each id per reference value (ignore label left out).
        probability: ``"max"``/``"mean"`` to the label's probability per id (given
            probabilities only).
        voxel_volume: mm³ of one voxel of the case.
    """

    box: tuple[slice, ...] | None
    ids: NDArray[np.int64]
    sizes: NDArray[np.int64]
    overlap: NDArray[np.int64]
    probability: dict[str, NDArray[np.float64]]
    voxel_volume: float


@dataclass(frozen=True)
class Change:
    """Which components of a label one candidate changes in one case, and to what."""

    label: int
    to: int
    changed: NDArray[np.bool_]  # per component id

    @property
    def empty(self) -> bool:
        """Whether the candidate changes nothing in this case."""
        return not bool(self.changed[1:].any())


def build_table(
    prediction: NDArray[Any],
    reference: NDArray[Any],
    label: int,
    *,
    num_values: int,
    connectivity: int | None,
    ignore_label: int | None,
    voxel_volume: float,
    probabilities: NDArray[Any] | None,
) -> CaseTable:
    """The :class:`CaseTable` of ``label`` in one case."""
    box, ids, sizes = label_components(prediction, label, connectivity=connectivity)
    overlap = np.zeros((sizes.size, num_values), dtype=np.int64)
    stats: dict[str, NDArray[np.float64]] = {}
    if box is not None:
        keys = ids * num_values + reference[box].astype(np.int64)
        overlap = np.bincount(keys.ravel(), minlength=sizes.size * num_values).reshape(
            sizes.size, num_values
        )
        overlap[0] = 0
        if ignore_label is not None and ignore_label < num_values:
            overlap[:, ignore_label] = 0
    if probabilities is not None:
        channel = probabilities[label]
        stats = {s: component_probability(channel, box, ids, sizes, s) for s in ("max", "mean")}
    return CaseTable(box, ids, sizes, overlap, stats, voxel_volume)


class LabelTable:
    """The :class:`CaseTable` of one label in every case, and the candidates' changes."""

    def __init__(self, label: int, cases: list[CaseTable]) -> None:
        self.label, self.cases = label, cases

    def component_values(self, kind: str, unit: str) -> list[NDArray[np.float64]]:
        """Per case, the value a rule compares per component (index 0 unused).

        ``size`` (in ``unit``), ``total`` (the label's whole volume, one value per case in
        every entry) or ``max``/``mean`` probability.
        """
        out: list[NDArray[np.float64]] = []
        for case in self.cases:
            scale = case.voxel_volume if unit == "mm3" else 1.0
            if kind == "size":
                out.append(case.sizes.astype(np.float64) * scale)
            elif kind == "total":
                out.append(np.full(case.sizes.size, case.sizes.sum() * scale, dtype=np.float64))
            else:
                out.append(case.probability[kind])
        return out

    def below(self, values: list[NDArray[np.float64]], threshold: float, to: int) -> list[Change]:
        """The changes of a rule marking every component whose value is below ``threshold``."""
        return [Change(self.label, to, v < threshold) for v in values]

    def top_k(self, k: int) -> list[Change]:
        """The changes of ``keep_top_k`` (ties at the k-th size kept, as the rule)."""
        changes = []
        for case in self.cases:
            sizes = case.sizes
            changed = np.zeros(sizes.size, dtype=bool)
            if sizes.size - 1 > k:
                kth = np.sort(sizes[1:])[::-1][k - 1]
                changed = sizes < kth
            changes.append(Change(self.label, 0, changed))
        return changes

    def wrong_target(self) -> int:
        """The reference value most of the wrongly predicted components of the label hold.

        A component is wrong when less than half of it is the label in the reference; the
        target is the value (other than the label) with the most voxels under those components:
        where a relabel would send them.
        """
        total: NDArray[np.int64] | None = None
        for case in self.cases:
            wrong = case.overlap[:, self.label] * 2 < case.sizes
            wrong[0] = False
            part = case.overlap[wrong].sum(axis=0)
            total = part if total is None else total + part
        if total is None or total.sum() == 0:
            return 0
        total = total.copy()
        total[self.label] = -1
        return int(np.argmax(total))


def matrix_after(matrix: NDArray[np.int64], case: CaseTable, change: Change) -> NDArray[np.int64]:
    """The confusion matrix of a case after ``change`` (no label map is made)."""
    moved: NDArray[np.int64] = case.overlap[change.changed].sum(axis=0)
    out: NDArray[np.int64] = np.array(matrix, dtype=np.int64, copy=True)
    out[:, change.label] -= moved
    out[:, change.to] += moved
    return out


def apply_change(prediction: NDArray[Any], case: CaseTable, change: Change) -> NDArray[Any]:
    """The label map of a case after ``change`` (a new array; one look-up into the ids)."""
    out = np.array(prediction, copy=True)
    if case.box is not None and not change.empty:
        marked = change.changed.copy()
        marked[0] = False
        out[case.box][marked[case.ids]] = change.to
    return out


def reference_volumes(
    references: list[NDArray[Any]],
    label: int,
    *,
    connectivity: int | None,
    voxel_volumes: list[float],
    unit: str,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """The reference's volumes of ``label``: components, per-case totals, per-case counts.

    Component volumes of all cases pooled, totals of the cases holding the label, in ``unit``.
    """
    sizes, totals, counts = [], [], []
    for reference, volume in zip(references, voxel_volumes, strict=True):
        scale = volume if unit == "mm3" else 1.0
        _, _, component_sizes = label_components(reference, label, connectivity=connectivity)
        sizes.append(component_sizes[1:] * scale)
        counts.append(component_sizes.size - 1)
        if component_sizes.size > 1:
            totals.append(component_sizes[1:].sum() * scale)
    return (
        np.concatenate(sizes).astype(np.float64) if sizes else np.zeros(0),
        np.asarray(totals, dtype=np.float64),
        np.asarray(counts, dtype=np.int64),
    )
