"""The early-stop rule: a pure function of the EMA pseudo-Dice history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["StopDecision", "best_epoch", "decide_stop"]

StopReason = Literal["patience", "target_dice", "stop_file", "forgetting"]


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop before the next epoch, and why.

    Attributes:
        should_stop: Stop now.
        reason: ``"patience"``, ``"target_dice"``, ``"stop_file"`` or ``"forgetting"`` when
            stopping, else ``None``.
        message: A human sentence for the training log.
        epochs_completed: Epochs in the history.
        best_epoch: Epoch of the highest finite EMA (first one on ties, as nnU-Net's
            ``checkpoint_best``), or ``None`` if no finite EMA yet.
        best_ema: That EMA value.
        epochs_without_improvement: Completed epochs since the last improvement by more than
            ``min_delta`` (all of them if there was none).
    """

    should_stop: bool
    reason: StopReason | None
    message: str
    epochs_completed: int
    best_epoch: int | None
    best_ema: float | None
    epochs_without_improvement: int


def best_epoch(ema_history: Sequence[float]) -> tuple[int | None, float | None]:
    """Return ``(epoch, value)`` of the highest finite EMA; NaN never counts.

    Examples:
        >>> best_epoch([0.2, float("nan"), 0.5, 0.5, 0.4])
        (2, 0.5)
        >>> best_epoch([float("nan")])
        (None, None)
    """
    best: tuple[int | None, float | None] = (None, None)
    for epoch, value in enumerate(ema_history):
        if math.isfinite(value) and (best[1] is None or value > best[1]):
            best = (epoch, float(value))
    return best


def decide_stop(
    ema_history: Sequence[float],
    *,
    patience: int | None,
    min_delta: float = 0.0,
    min_epochs: int = 0,
    target_dice: float | None = None,
) -> StopDecision:
    """Decide whether training should stop, from the EMA pseudo-Dice of the completed epochs.

    Rules, checked after each completed epoch:

    * An epoch *improves* if its EMA is finite and exceeds the EMA of the last improving epoch
      by more than ``min_delta`` (the first finite EMA always improves). NaN never improves.
    * ``patience``: stop when the last ``patience`` epochs brought no improvement.
    * ``target_dice``: stop when the latest EMA is ≥ ``target_dice``.
    * Neither rule stops before ``min_epochs`` epochs are complete.

    Args:
        ema_history: nnU-Net's ``ema_fg_dice`` for epochs 0..n-1.
        patience: Epochs without improvement that end training; ``None`` disables the rule.
        min_delta: Minimum rise that counts as improvement (≥ 0).
        min_epochs: Do not stop before this many completed epochs.
        target_dice: EMA at which to stop; ``None`` disables the rule.

    Returns:
        The decision.

    Examples:
        >>> decide_stop([0.50, 0.55, 0.55, 0.54], patience=2).should_stop
        True
        >>> decide_stop([0.50, 0.55, 0.55, 0.54], patience=2, min_epochs=5).should_stop
        False
        >>> decide_stop([0.5, 0.6], patience=1, min_delta=1.0).reason
        'patience'
        >>> decide_stop([0.5, 0.91], patience=None, target_dice=0.9).reason
        'target_dice'
    """
    completed = len(ema_history)
    last_improvement = -1
    reference: float | None = None
    for epoch, value in enumerate(ema_history):
        if math.isfinite(value) and (reference is None or value > reference + min_delta):
            reference, last_improvement = float(value), epoch
    without = completed - 1 - last_improvement
    best_e, best_v = best_epoch(ema_history)

    def decision(reason: StopReason | None, message: str) -> StopDecision:
        return StopDecision(reason is not None, reason, message, completed, best_e, best_v, without)

    if completed == 0 or completed < min_epochs:
        return decision(None, "")
    latest = ema_history[-1]
    if target_dice is not None and math.isfinite(latest) and latest >= target_dice:
        return decision(
            "target_dice",
            f"EMA pseudo Dice {latest:.4f} reached nnUNet_target_dice={target_dice:g}",
        )
    if patience is not None and without >= patience:
        what = f"by more than {min_delta:g} " if min_delta > 0 else ""
        return decision(
            "patience",
            f"EMA pseudo Dice has not improved {what}for {without} epochs (patience {patience})",
        )
    return decision(None, "")
