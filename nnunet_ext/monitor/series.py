"""Pure functions of a training run's epoch series: merged restarts, EMA, ETA, collapsing labels."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from nnunet_ext.monitor.parser import EpochRecord, LogFile

__all__ = [
    "LabelCollapse",
    "compute_ema",
    "estimate_remaining_s",
    "find_collapsing_labels",
    "merge_epochs",
]


@dataclass(frozen=True)
class LabelCollapse:
    """A label whose pseudo Dice fell far below its own best.

    Attributes:
        index: Position in the ``pseudo_dice`` list.
        name: Label or region name from ``dataset.json`` (``"label 3"`` when unknown).
        peak: Best moving average of the label's pseudo Dice.
        peak_epoch: Last epoch of the latest window where that peak was reached.
        recent: Mean over the last epochs.
    """

    index: int
    name: str
    peak: float
    peak_epoch: int
    recent: float

    def describe(self, window: int) -> str:
        """One line for the text report."""
        return (
            f"label {self.name!r} is collapsing: pseudo Dice {self.peak:.2f} "
            f"({window}-epoch mean) up to epoch {self.peak_epoch}, {self.recent:.2f} over the "
            f"last {window} epochs; the mean and EMA hide this"
        )


def compute_ema(means: Sequence[float], *, alpha: float = 0.1) -> list[float]:
    """Recompute nnU-Net's EMA pseudo Dice: ``ema_0 = m_0``, ``ema_t = 0.9 ema_{t-1} + 0.1 m_t``.

    NaN propagates as in nnU-Net (once the mean is NaN, the EMA stays NaN).

    Args:
        means: Mean foreground pseudo Dice per epoch, in epoch order.
        alpha: Weight of the new value (nnU-Net: 0.1).

    Returns:
        One EMA value per epoch.

    Examples:
        >>> [round(v, 4) for v in compute_ema([0.5, 1.0, 1.0])]
        [0.5, 0.55, 0.595]
    """
    out: list[float] = []
    for value in means:
        out.append(value if not out else (1 - alpha) * out[-1] + alpha * value)
    return out


def estimate_remaining_s(
    epoch_times_s: Sequence[float], remaining_epochs: int, *, window: int = 10
) -> float | None:
    """Estimate the remaining time from the median of the last ``window`` epoch times.

    Examples:
        >>> estimate_remaining_s([10.0, 12.0, 11.0], 5)
        55.0
        >>> estimate_remaining_s([], 5) is None
        True
    """
    if remaining_epochs <= 0:
        return 0.0
    recent = [t for t in epoch_times_s[-window:] if math.isfinite(t)]
    if not recent:
        return None
    return float(statistics.median(recent)) * remaining_epochs


def find_collapsing_labels(
    pseudo_dice: Sequence[Sequence[float]],
    epochs: Sequence[int],
    *,
    label_names: Sequence[str] = (),
    window: int = 5,
    min_peak: float = 0.1,
    ratio: float = 0.5,
) -> list[LabelCollapse]:
    """Find labels whose recent pseudo Dice dropped below ``ratio`` times their best.

    The best is the highest moving average over ``window`` epochs (so one lucky epoch does not
    count); the recent value is the mean of the last ``window`` epochs. Labels that never reached
    ``min_peak`` are not flagged (they never learned, which the table shows anyway). NaN values
    (label absent from the validation batches) are skipped.

    Args:
        pseudo_dice: Per epoch, one value per label.
        epochs: The epoch numbers, same length.
        label_names: Names per label; ``"label i+1"`` where missing.
        window: Epochs averaged for the best and the recent value.
        min_peak: Smallest best value worth flagging.
        ratio: Flag when ``recent < ratio * best``.

    Returns:
        The collapsing labels, in label order.

    Examples:
        >>> rv = [0.4, 0.48, 0.47, 0.46, 0.45, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]
        >>> lv = [0.8] * 12
        >>> found = find_collapsing_labels(list(zip(lv, rv)), range(12), label_names=["LV", "RV"])
        >>> [(c.name, round(c.peak, 3), c.recent) for c in found]
        [('RV', 0.452, 0.0)]
    """
    if len(pseudo_dice) < 2 * window:
        return []
    num_labels = max(len(row) for row in pseudo_dice)
    found = []
    for index in range(num_labels):
        values = [row[index] if index < len(row) else math.nan for row in pseudo_dice]
        best, best_epoch = -math.inf, -1
        for end in range(window, len(values) + 1):
            chunk = [v for v in values[end - window : end] if not math.isnan(v)]
            if chunk and (mean := sum(chunk) / len(chunk)) >= best:
                best, best_epoch = mean, int(epochs[end - 1])
        recent_values = [v for v in values[-window:] if not math.isnan(v)]
        if not recent_values or best < min_peak:
            continue
        recent = sum(recent_values) / len(recent_values)
        if recent < ratio * best:
            name = label_names[index] if index < len(label_names) else f"label {index + 1}"
            found.append(LabelCollapse(index, name, best, best_epoch, recent))
    return found


def merge_epochs(logs: Sequence[LogFile]) -> tuple[list[EpochRecord], list[str]]:
    """Merge epochs of logs given oldest first; a later log's epoch replaces the same number.

    Returns:
        The merged epochs sorted by number, with the EMA recomputed, and notes on replacements.
    """
    merged: dict[int, EpochRecord] = {}
    notes: list[str] = []
    for log in logs:
        replaced = sorted(e.epoch for e in log.epochs if e.epoch in merged)
        if replaced:
            notes.append(
                f"{log.path.name} re-ran epochs {_ranges(replaced)}; "
                "its values replace the earlier ones"
            )
        for record in log.epochs:
            merged[record.epoch] = record
    ordered = [merged[k] for k in sorted(merged)]
    emas = compute_ema([e.mean_pseudo_dice for e in ordered])
    return [replace(e, ema_pseudo_dice=ema) for e, ema in zip(ordered, emas, strict=True)], notes


def _ranges(numbers: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)
