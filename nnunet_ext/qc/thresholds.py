"""Flag thresholds and the reasons, in words, that a label of a case needs a look.

A label is flagged when any of these holds (defaults in brackets; every threshold can be
overridden on the command line, and ``nnunet-ext tune --qc-calibrate`` stores calibrated ones in
the ensemble spec):

* a member predicts nothing of the label while another member does (always);
* a member's Dice against the fused label is below ``min_member_dice`` [0.6];
* the members' volume coefficient of variation is above ``max_volume_cv`` [0.3];
* the fused label's second-largest component holds more than ``max_island_fraction`` of its
  voxels [off]: a sizeable island, not a speck;
* the fused label has more than ``max_components`` connected components [off; per label in
  ``label_components``, which calibration fills].

Islands and component counts depend on the anatomy and the slice geometry (a short-axis stack
with shifted slices breaks a ring into pieces): they are off until set on the command line or
calibrated on the CV cases, which fills them from what the good CV cases show;
* the estimated Dice is below ``min_estimated_dice`` [0.7];
* the fused volume lies outside the label's cross-validation volume range (``volume_ranges``,
  only when a tuned spec carries it) widened by ``volume_margin`` [0.25] on both sides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.schema import check_keys, expect_int, expect_mapping, expect_number, key_path
from nnunet_ext.qc.measures import LabelMeasures

__all__ = ["QcThresholds", "label_reasons"]

_NUMBERS = ("min_member_dice", "max_volume_cv", "min_estimated_dice", "volume_margin")


@dataclass(frozen=True)
class QcThresholds:
    """When a label of a case is flagged (see the module docstring).

    Attributes:
        min_member_dice: Flag a member whose Dice against the fused label is below this.
        max_volume_cv: Flag a volume coefficient of variation above this.
        min_estimated_dice: Flag an estimated Dice below this.
        max_island_fraction: Flag a second-largest component holding more than this share of
            the fused label's voxels (``None``: off).
        max_components: Flag a fused label with more components than this (``None``: only
            the labels of ``label_components``).
        volume_margin: Relative widening of the volume ranges on both sides.
        label_components: Per label (name or value, as a string), its own ``max_components``.
        volume_ranges: Per label (name or value, as a string), the ``(low, high)`` volume in ml
            of the cross-validation references.

    Examples:
        >>> QcThresholds.from_dict({"min_member_dice": 0.7}, source="spec.json").min_member_dice
        0.7
        >>> QcThresholds.from_dict({"max_cv": 1}, source="spec.json", where="qc")
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: spec.json: qc.max_cv must be absent (allowed keys: ...
    """

    min_member_dice: float = 0.6
    max_volume_cv: float = 0.3
    min_estimated_dice: float = 0.7
    max_island_fraction: float | None = None
    max_components: int | None = None
    volume_margin: float = 0.25
    label_components: Mapping[str, int] = field(default_factory=dict)
    volume_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every key; ranges as two-element lists)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["label_components"] = dict(self.label_components)
        out["volume_ranges"] = {k: [lo, hi] for k, (lo, hi) in self.volume_ranges.items()}
        return out

    def with_overrides(self, **values: float | int | None) -> QcThresholds:
        """A copy with the given thresholds replaced (``None`` values are ignored)."""
        kept: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        return replace(self, **kept)

    def with_volume_ranges(
        self,
        volume_ranges: Mapping[str, tuple[float, float]],
        label_components: Mapping[str, int],
    ) -> QcThresholds:
        """A copy with these per-label volume ranges and component limits."""
        return replace(
            self, volume_ranges=dict(volume_ranges), label_components=dict(label_components)
        )

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str | os.PathLike[str], where: str | None = None
    ) -> QcThresholds:
        """Validate the JSON form (every key optional; unknown keys are errors).

        Raises:
            InputError: For an unknown key or a malformed value, naming ``source`` and the key.
        """
        obj = expect_mapping(data, source=source, where=where)
        allowed = (
            *_NUMBERS,
            "max_island_fraction",
            "max_components",
            "label_components",
            "volume_ranges",
        )
        check_keys(obj, source=source, where=where, allowed=allowed)
        values: dict[str, Any] = {
            name: expect_number(obj[name], source=source, where=key_path(where, name), minimum=0)
            for name in _NUMBERS
            if name in obj
        }
        if obj.get("max_island_fraction") is not None:
            values["max_island_fraction"] = expect_number(
                obj["max_island_fraction"],
                source=source,
                where=key_path(where, "max_island_fraction"),
                minimum=0,
            )
        if obj.get("max_components") is not None:
            values["max_components"] = expect_int(
                obj["max_components"], source=source, where=key_path(where, "max_components")
            )
        components_where = key_path(where, "label_components")
        components = expect_mapping(
            obj.get("label_components", {}), source=source, where=components_where
        )
        values["label_components"] = {
            str(k): expect_int(v, source=source, where=key_path(components_where, k), minimum=0)
            for k, v in components.items()
        }
        values["volume_ranges"] = _volume_ranges(
            obj.get("volume_ranges", {}), source, key_path(where, "volume_ranges")
        )
        return cls(**values)


def _volume_ranges(
    data: Any, source: str | os.PathLike[str], where: str
) -> dict[str, tuple[float, float]]:
    ranges = {}
    for label, value in expect_mapping(data, source=source, where=where).items():
        here = key_path(where, label)
        if not isinstance(value, list) or len(value) != 2:
            raise InputError(source, "a [low, high] pair of volumes in ml", repr(value), key=here)
        low = expect_number(value[0], source=source, where=key_path(here, 0), minimum=0)
        high = expect_number(value[1], source=source, where=key_path(here, 1), minimum=low)
        ranges[str(label)] = (low, high)
    return ranges


def _lookup(table: Mapping[str, Any], label: int, name: str | None) -> Any:
    for key in (name, str(label)):
        if key is not None and key in table:
            return table[key]
    return None


def label_reasons(
    measures: LabelMeasures,
    thresholds: QcThresholds,
    *,
    member_names: Sequence[str],
    label_name: str | None = None,
) -> tuple[str, ...]:
    """The reasons, in words, to flag one label of one case (empty: not flagged).

    Examples:
        >>> m = LabelMeasures(1, 2.0, (4.0, 0.0), (1.0, 0.0), 1.0, (1,), 1, 0.0, 0.5, 1.0)
        >>> for r in label_reasons(m, QcThresholds(), member_names=["2d", "3d"]):
        ...     print(r)
        member 3d predicts no voxel of the label; the others do
        member 3d agrees with the fused label at Dice 0.00 (< 0.60)
        members' volumes vary: coefficient of variation 1.00 (> 0.30)
    """
    t = thresholds
    reasons = [
        f"member {member_names[m]} predicts no voxel of the label; the others do"
        for m in measures.empty_members
    ]
    reasons += [
        f"member {member_names[m]} agrees with the fused label at Dice {d:.2f} "
        f"(< {t.min_member_dice:.2f})"
        for m, d in enumerate(measures.member_dice)
        if d < t.min_member_dice
    ]
    if measures.volume_cv > t.max_volume_cv:
        reasons.append(
            f"members' volumes vary: coefficient of variation {measures.volume_cv:.2f} "
            f"(> {t.max_volume_cv:.2f})"
        )
    if t.max_island_fraction is not None and measures.island_fraction > t.max_island_fraction:
        reasons.append(
            f"an island: the second-largest component holds {measures.island_fraction:.0%} of "
            f"the label (> {t.max_island_fraction:.0%})"
        )
    limit = _lookup(t.label_components, measures.label, label_name)
    limit = t.max_components if limit is None else int(limit)
    if limit is not None and measures.components > limit:
        reasons.append(f"{measures.components} connected components (> {limit})")
    if measures.estimated_dice < t.min_estimated_dice:
        reasons.append(
            f"estimated Dice {measures.estimated_dice:.2f} (< {t.min_estimated_dice:.2f})"
        )
    volume_range = _lookup(t.volume_ranges, measures.label, label_name)
    if volume_range is not None:
        low, high = volume_range[0] * (1 - t.volume_margin), volume_range[1] * (1 + t.volume_margin)
        if not low <= measures.volume_ml <= high:
            reasons.append(
                f"volume {measures.volume_ml:.3g} ml outside the cross-validation range "
                f"{low:.3g}..{high:.3g} ml"
            )
    return tuple(reasons)
