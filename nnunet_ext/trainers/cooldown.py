"""The learning-rate cooldown after a stop rule fires: pure Python, no torch.

When early stopping fires before epoch ``s`` (patience, target Dice, STOP file or forgetting),
training goes on for ``K`` more epochs instead of ending at whatever learning rate the schedule
has reached. Over those ``K`` epochs the rate falls from the value the trainer's own schedule
gives epoch ``s`` to 0 on nnU-Net's poly curve, ``lr(x) = lr_s * (1 - x) ** 0.9``, stepped per
training iteration: iteration ``k`` of the ``K * I`` cooldown iterations uses
``x = (k + 1) / (K * I)``, so every cooldown step is below ``lr_s`` and the last one is exactly
0 (as nnU-Net's schedule reaches 0 where training ends). nnU-Net's log line ``Current learning
rate`` shows the rate of each epoch's first iteration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BEFORE_COOLDOWN_NAME",
    "POLY_EXPONENT",
    "CooldownPlan",
    "CooldownScheduler",
    "cooldown_lr",
    "set_lr",
]

#: Exponent of nnU-Net's ``PolyLRScheduler``.
POLY_EXPONENT = 0.9
#: Weights-only checkpoint of the model when the cooldown started (predictable with ``-chk``).
BEFORE_COOLDOWN_NAME = "checkpoint_before_cooldown.pth"


def cooldown_lr(start_lr: float, step: int, total_steps: int) -> float:
    """Learning rate of cooldown iteration ``step`` (0-based) of ``total_steps``.

    Args:
        start_lr: The rate the schedule gives the first cooldown epoch.
        step: Iteration index within the cooldown, ``0 <= step < total_steps``.
        total_steps: Cooldown epochs times iterations per epoch (≥ 1).

    Returns:
        ``start_lr * (1 - (step + 1) / total_steps) ** 0.9``: below ``start_lr`` from the first
        step, exactly 0 at the last.

    Raises:
        ValueError: If ``step`` is outside ``[0, total_steps)``.

    Examples:
        >>> [round(cooldown_lr(0.01, k, 4), 5) for k in range(4)]
        [0.00772, 0.00536, 0.00287, 0.0]
    """
    if total_steps < 1 or not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}); got {step}.")
    fraction = 1.0 - (step + 1) / total_steps
    return float(start_lr * max(fraction, 0.0) ** POLY_EXPONENT)


@dataclass(frozen=True)
class CooldownPlan:
    """A cooldown: which epochs, from which learning rate, and why it started.

    Attributes:
        start_epoch: First cooldown epoch (the epoch before which the stop rule fired).
        epochs: Number of cooldown epochs (the setting, capped by the epochs left).
        requested_epochs: ``nnUNet_cooldown_epochs`` when the cooldown started.
        start_lr: Learning rate the trainer's schedule gives ``start_epoch``.
        iterations_per_epoch: Training iterations per epoch.
        reason: The stop rule that fired (``"patience"``, ``"target_dice"``, ``"stop_file"``,
            ``"forgetting"``).
        message: Its log sentence.
    """

    start_epoch: int
    epochs: int
    requested_epochs: int
    start_lr: float
    iterations_per_epoch: int
    reason: str
    message: str

    @property
    def end_epoch(self) -> int:
        """First epoch after the cooldown (training ends before it).

        Examples:
            >>> CooldownPlan(10, 3, 3, 0.01, 2, "patience", "").end_epoch
            13
        """
        return self.start_epoch + self.epochs

    def contains(self, epoch: int) -> bool:
        """Whether ``epoch`` is a cooldown epoch."""
        return self.start_epoch <= epoch < self.end_epoch

    def lr(self, epoch: int, iteration: int) -> float:
        """Learning rate of ``iteration`` (0-based) of cooldown epoch ``epoch``.

        Examples:
            >>> plan = CooldownPlan(10, 2, 2, 0.01, 2, "patience", "")
            >>> [round(plan.lr(e, i), 5) for e in (10, 11) for i in (0, 1)]
            [0.00772, 0.00536, 0.00287, 0.0]
        """
        if not self.contains(epoch) or not 0 <= iteration < self.iterations_per_epoch:
            raise ValueError(
                f"epoch {epoch}, iteration {iteration} is not in the cooldown "
                f"(epochs {self.start_epoch}-{self.end_epoch - 1}, "
                f"{self.iterations_per_epoch} iterations each)."
            )
        step = (epoch - self.start_epoch) * self.iterations_per_epoch + iteration
        return cooldown_lr(self.start_lr, step, self.epochs * self.iterations_per_epoch)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the run record (plus ``end_epoch``)."""
        return {**asdict(self), "end_epoch": self.end_epoch}

    def progress(self, epochs_completed: int, *, ended_by: str | None) -> dict[str, Any]:
        """The run record's ``cooldown``: :meth:`to_dict` and how far it got.

        Examples:
            >>> plan = CooldownPlan(10, 3, 3, 0.01, 2, "patience", "")
            >>> entry = plan.progress(12, ended_by=None)
            >>> entry["epochs_done"], entry["completed"], entry["checkpoint_before"]
            (2, False, 'checkpoint_before_cooldown.pth')
        """
        done = max(0, min(epochs_completed, self.end_epoch) - self.start_epoch)
        return {
            **self.to_dict(),
            "epochs_done": done,
            "completed": done == self.epochs,
            "ended_by": ended_by,
            "checkpoint_before": BEFORE_COOLDOWN_NAME,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CooldownPlan:
        """Rebuild a plan from :meth:`to_dict` output.

        Raises:
            ValueError: If a field is missing or has the wrong type.
        """
        try:
            plan = cls(
                start_epoch=int(data["start_epoch"]),
                epochs=int(data["epochs"]),
                requested_epochs=int(data["requested_epochs"]),
                start_lr=float(data["start_lr"]),
                iterations_per_epoch=int(data["iterations_per_epoch"]),
                reason=str(data["reason"]),
                message=str(data["message"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"cooldown record is malformed ({err!r}): {data!r}") from err
        if plan.epochs < 1 or plan.iterations_per_epoch < 1 or not math.isfinite(plan.start_lr):
            raise ValueError(f"cooldown record is malformed: {data!r}")
        return plan


def set_lr(optimizer: Any, lr: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


class CooldownScheduler:
    """Stands in for the trainer's LR scheduler during a cooldown.

    nnU-Net's ``on_train_epoch_start`` calls ``lr_scheduler.step(current_epoch)`` and logs the
    rate; this sets the rate of the epoch's first cooldown iteration. The loop sets the rate of
    every further iteration.
    """

    def __init__(self, optimizer: Any, plan: CooldownPlan) -> None:
        self.optimizer = optimizer
        self.plan = plan

    def step(self, current_step: int | None = None) -> None:
        """Set the rate of epoch ``current_step``'s first iteration, if it is a cooldown epoch."""
        if current_step is not None and self.plan.contains(current_step):
            set_lr(self.optimizer, self.plan.lr(current_step, 0))
