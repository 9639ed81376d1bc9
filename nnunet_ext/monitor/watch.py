"""Re-read a fold folder until its training ends."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from nnunet_ext.monitor.history import TERMINAL_STATUSES, TrainingHistory, read_training_history

__all__ = ["watch_training"]


def watch_training(
    fold_dir: str | os.PathLike[str],
    on_update: Callable[[TrainingHistory], None],
    *,
    interval_s: float = 60.0,
    max_updates: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TrainingHistory:
    """Call ``on_update`` with a fresh history every ``interval_s`` until training ends.

    Training has ended when the status is terminal (``completed``, ``stopped_early``, ``failed``)
    or ``not_running`` (no log line for a long time: crashed or killed).

    Args:
        fold_dir: The fold folder.
        on_update: Called with each history (print it, write JSON/PNG, ...).
        interval_s: Seconds between refreshes; must be > 0.
        max_updates: Stop after this many updates (``None``: until training ends).
        sleep: The sleep function (tests pass a fast one).

    Returns:
        The last history read.

    Raises:
        ValueError: If ``interval_s`` is not positive.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be a positive number of seconds; got {interval_s}.")
    updates = 0
    while True:
        history = read_training_history(fold_dir)
        on_update(history)
        updates += 1
        ended = history.status in TERMINAL_STATUSES or history.status == "not_running"
        if ended or (max_updates is not None and updates >= max_updates):
            return history
        sleep(interval_s)
