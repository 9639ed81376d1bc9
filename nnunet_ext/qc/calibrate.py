"""Calibrate the QC thresholds on cross-validation cases, where references exist.

On the CV cases fused with the tuned spec, each label of each case has its QC measures and its
true Dice. :func:`calibrate_thresholds` sets every threshold so that at most
``false_flag_rate`` of the case-labels whose true Dice is at least 0.5 ("good") would be flagged
by it alone, and records per label the CV reference volume range
(:attr:`~nnunet_ext.qc.thresholds.QcThresholds.volume_ranges`) and the number of components a
good fused label reaches (:attr:`~nnunet_ext.qc.thresholds.QcThresholds.label_components`).
A case-label where a member is empty is left out of the member-agreement thresholds: it is
flagged anyway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnunet_ext.qc.measures import LabelMeasures
from nnunet_ext.qc.thresholds import QcThresholds

__all__ = ["CalibrationCase", "calibrate_thresholds"]

#: A case-label is "good" when its true Dice is at least this.
GOOD_DICE = 0.5


@dataclass(frozen=True)
class CalibrationCase:
    """One label of one CV case: its QC measures and what its reference says.

    Attributes:
        measures: The QC measures of the fused label.
        name: The label's name.
        true_dice: The fused label's Dice against the reference.
        reference_volume_ml: The reference's volume of the label in ml.
    """

    measures: LabelMeasures
    name: str
    true_dice: float
    reference_volume_ml: float


def _quantile(values: Sequence[float], q: float) -> float | None:
    """A sample quantile, rounded to 4 decimals away from the flagged side."""
    if not values:
        return None
    value = float(np.quantile(values, q, method="lower" if q < 0.5 else "higher")) * 1e4
    return (math.floor(value) if q < 0.5 else math.ceil(value)) / 1e4


def calibrate_thresholds(
    cases: Sequence[CalibrationCase],
    *,
    base: QcThresholds | None = None,
    false_flag_rate: float = 0.02,
) -> QcThresholds:
    """Thresholds that flag at most ``false_flag_rate`` of the good CV case-labels each.

    Args:
        cases: Every label of every CV case.
        base: The thresholds kept where the CV cases say nothing (default: the defaults).
        false_flag_rate: Share of good case-labels each threshold may flag, in ``[0, 1)``.

    Returns:
        The calibrated thresholds.

    Raises:
        ValueError: For a ``false_flag_rate`` outside ``[0, 1)``.

    Examples:
        >>> m = LabelMeasures(1, 5.0, (5.0, 5.0), (0.9, 0.9), 0.0, (), 1, 0.0, 0.8, 0.9)
        >>> t = calibrate_thresholds([CalibrationCase(m, "LV", 0.9, 4.0)])
        >>> t.min_member_dice, t.volume_ranges, t.label_components
        (0.9, {'LV': (4.0, 4.0)}, {'LV': 1})
    """
    if not 0 <= false_flag_rate < 1:
        raise ValueError(f"false_flag_rate must be in [0, 1); got {false_flag_rate}.")
    base = base or QcThresholds()
    good = [c for c in cases if c.true_dice >= GOOD_DICE]
    agreeing = [c for c in good if not c.measures.empty_members]
    low, high = false_flag_rate, 1 - false_flag_rate
    values = {
        "min_member_dice": _quantile([min(c.measures.member_dice) for c in agreeing], low),
        "max_volume_cv": _quantile([c.measures.volume_cv for c in agreeing], high),
        "min_estimated_dice": _quantile([c.measures.estimated_dice for c in agreeing], low),
        "max_island_fraction": _quantile([c.measures.island_fraction for c in good], high),
    }
    names = sorted({c.name for c in cases})
    ranges = {
        name: (
            min(c.reference_volume_ml for c in cases if c.name == name),
            max(c.reference_volume_ml for c in cases if c.name == name),
        )
        for name in names
    }
    components = {}
    for name in names:
        counts = [c.measures.components for c in good if c.name == name]
        if counts:
            components[name] = max(1, int(np.quantile(counts, high, method="higher")))
    return base.with_overrides(**values).with_volume_ranges(ranges, components)
