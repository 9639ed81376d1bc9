"""How a prediction run writes and shares its cases: one frozen, validated option object.

:func:`~nnunet_ext.predict.folders.predict_folder` keeps its explicit keyword parameters (the
public API) and gathers the run's options into :class:`RunOptions`, checked once when it is
made, before any model folder is read or any output exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["RunOptions"]


def _seconds(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a number of seconds > 0; got {value!r}.")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    return value


@dataclass(frozen=True)
class RunOptions:
    """What a prediction run does with its cases beyond predicting them.

    Attributes:
        save_probabilities: Also write the fused ``CASE.npz`` + ``CASE.pkl``.
        part_id: This process's part (``nnUNetv2_predict -part_id``).
        num_parts: Number of parts (``-num_parts``).
        claim: Share cases with other processes on the same output folder through claim files.
        claim_timeout: Seconds without heartbeat after which another host's claim expires.
        poll_interval: With ``claim``, seconds between looks at cases claimed by others
            (``None``: ``min(5, claim_timeout / 10)``).
        overwrite: Redo cases whose outputs exist.
        cpus_per_worker: Ray on CPU-only nodes: CPUs (and torch threads) of one actor.
        num_workers: CPU worker processes of a local run: 1 predicts case by case; N >= 2
            runs the pipeline (one preprocessing process, N - 1 export processes; see
            :mod:`nnunet_ext.predict.local`).

    Raises:
        ValueError: Naming the parameter, for a value out of range or of the wrong type.

    Examples:
        >>> RunOptions(claim=True, claim_timeout=20).poll_seconds
        2.0
        >>> RunOptions(claim=True, overwrite=True)
        Traceback (most recent call last):
        ...
        ValueError: overwrite=True cannot be combined with claim=True (every process would ...
        >>> RunOptions(num_workers=3, claim=True)
        Traceback (most recent call last):
        ...
        ValueError: num_workers > 1 (the pipeline) cannot be combined with claim=True; ...
    """

    save_probabilities: bool = False
    part_id: int = 0
    num_parts: int = 1
    claim: bool = False
    claim_timeout: float = 600.0
    poll_interval: float | None = None
    overwrite: bool = False
    cpus_per_worker: int = 1
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.claim and self.overwrite:
            raise ValueError(
                "overwrite=True cannot be combined with claim=True (every process would redo "
                "every case); empty the output folder instead."
            )
        part_id, num_parts = (
            _integer("part_id", self.part_id),
            _integer("num_parts", self.num_parts),
        )
        if num_parts < 1 or not 0 <= part_id < num_parts:
            raise ValueError(
                f"part_id must be in 0..num_parts-1 and num_parts >= 1; got part {part_id} of "
                f"{num_parts}."
            )
        if self.claim and (part_id, num_parts) != (0, 1):
            raise ValueError("claim=True replaces part_id/num_parts; give one of them.")
        object.__setattr__(self, "claim_timeout", _seconds("claim_timeout", self.claim_timeout))
        if self.poll_interval is not None:
            object.__setattr__(self, "poll_interval", _seconds("poll_interval", self.poll_interval))
        workers = self.cpus_per_worker
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"cpus_per_worker must be an integer >= 1; got {workers!r}.")
        workers = self.num_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"num_workers must be an integer >= 1; got {workers!r}.")
        if workers > 1 and self.claim:
            raise ValueError(
                "num_workers > 1 (the pipeline) cannot be combined with claim=True; claimed "
                "cases are predicted one at a time. Use num_workers=1."
            )

    def check_pipeline(self, *, ray: bool, qc: bool) -> None:
        """Refuse the pipeline (``num_workers > 1``) with Ray or QC: they go case by case.

        Raises:
            ValueError: Naming ``num_workers`` and what it was combined with.
        """
        if self.num_workers > 1 and (ray or qc):
            raise ValueError(
                "num_workers > 1 (the pipeline) predicts locally without QC; got "
                + ("executor ray" if ray else "qc")
                + ". Use num_workers=1."
            )

    @property
    def poll_seconds(self) -> float:
        """Seconds between looks at cases claimed by others."""
        if self.poll_interval is not None:
            return self.poll_interval
        return min(5.0, self.claim_timeout / 10)
