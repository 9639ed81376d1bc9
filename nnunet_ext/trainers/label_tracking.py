"""Per-label EMA pseudo-Dice, per-label bests and the forgetting rule: pure Python, no torch.

nnU-Net keeps one EMA of the *mean* foreground pseudo-Dice (``ema_fg_dice``) and one
``checkpoint_best.pth`` on it, which hides one label collapsing while the others improve. Here
every label gets its own EMA with nnU-Net's weights (``ema_t = 0.9 ema_{t-1} + 0.1 d_t``).
A label whose pseudo-Dice is NaN in an epoch (absent from the validation batches) keeps its
previous EMA for that epoch; before its first finite value its EMA is NaN.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "EMA_DECAY",
    "MIN_BEST_EMA",
    "ForgettingEvent",
    "checkpoint_name_for_label",
    "checkpoint_names",
    "detect_forgetting",
    "label_bests",
    "label_emas",
    "label_names",
    "label_records",
]

#: Weight of the previous EMA value, as in nnU-Net's ``ema_fg_dice``.
EMA_DECAY = 0.9
#: A label whose best EMA stayed below this never learned; the forgetting rule ignores it.
MIN_BEST_EMA = 0.1


def label_emas(dice_history: Sequence[Sequence[float]]) -> list[list[float]]:
    """Per-label EMA of the per-label pseudo-Dice.

    Args:
        dice_history: Per epoch, nnU-Net's ``dice_per_class_or_region`` (one value per label).

    Returns:
        Per label, one EMA value per epoch.

    Examples:
        >>> [[round(v, 4) for v in row] for row in label_emas([[0.5, 0.2], [1.0, 0.3]])]
        [[0.5, 0.55], [0.2, 0.21]]
        >>> label_emas([[float("nan")], [0.4], [float("nan")]])
        [[nan, 0.4, 0.4]]
    """
    num_labels = max((len(row) for row in dice_history), default=0)
    out: list[list[float]] = [[] for _ in range(num_labels)]
    for row in dice_history:
        for index in range(num_labels):
            value = float(row[index]) if index < len(row) else math.nan
            series = out[index]
            previous = series[-1] if series else math.nan
            if not math.isfinite(value):
                series.append(previous)
            elif math.isnan(previous):
                series.append(value)
            else:
                series.append(EMA_DECAY * previous + (1 - EMA_DECAY) * value)
    return out


def label_bests(emas: Sequence[Sequence[float]]) -> list[tuple[int | None, float | None]]:
    """``(epoch, ema)`` of each label's best EMA: the first maximum (strict ``>``, as nnU-Net).

    Examples:
        >>> label_bests([[0.1, 0.3, 0.3, 0.2], [float("nan"), float("nan")]])
        [(1, 0.3), (None, None)]
    """
    bests: list[tuple[int | None, float | None]] = []
    for series in emas:
        best: tuple[int | None, float | None] = (None, None)
        for epoch, value in enumerate(series):
            if math.isfinite(value) and (best[1] is None or value > best[1]):
                best = (epoch, float(value))
        bests.append(best)
    return bests


@dataclass(frozen=True)
class ForgettingEvent:
    """A label whose EMA stayed below ``fraction`` times its best for ``epochs`` epochs.

    Attributes:
        index: Position of the label in nnU-Net's per-label list.
        name: The label's name.
        epoch: The epoch at which the rule fired (the last of the ``epochs`` low epochs).
        ema: The label's EMA at that epoch.
        best_epoch: Epoch of the label's best EMA up to then.
        best_ema: That best EMA.
        fraction: The fraction of the best the EMA stayed below.
        epochs: How many consecutive epochs it stayed below.
    """

    index: int
    name: str
    epoch: int
    ema: float
    best_epoch: int
    best_ema: float
    fraction: float
    epochs: int

    def describe(self) -> str:
        """One sentence for the training log and the run record."""
        return (
            f"label {self.name!r} is being forgotten: its EMA pseudo Dice {self.ema:.4f} at epoch "
            f"{self.epoch} has stayed below {self.fraction:g} x its best "
            f"{self.best_ema:.4f} (epoch {self.best_epoch}) for {self.epochs} epochs"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the sentence as ``message``."""
        return {**asdict(self), "message": self.describe()}


def detect_forgetting(
    emas: Sequence[Sequence[float]],
    *,
    fraction: float,
    epochs: int,
    label_names: Sequence[str] = (),
    min_best: float = MIN_BEST_EMA,
) -> list[ForgettingEvent]:
    """Find labels whose EMA stayed below ``fraction`` x their best for ``epochs`` epochs.

    The rule is causal, so the trainer and the monitor agree at every epoch: at epoch ``t`` the
    best is the best EMA of epochs ``0..t``; an epoch is *low* when its EMA is finite and below
    ``fraction`` times that best; the rule fires at the ``epochs``-th consecutive low epoch,
    once per label (the first time). Labels whose best is below ``min_best`` never learned and
    are not flagged.

    Args:
        emas: Per label, the EMA per epoch (:func:`label_emas`).
        fraction: In (0, 1].
        epochs: Consecutive low epochs that fire the rule (≥ 1).
        label_names: Names per label; ``"label i+1"`` where missing.
        min_best: Smallest best EMA worth guarding.

    Returns:
        One event per forgotten label, in label order.

    Raises:
        ValueError: If ``fraction`` or ``epochs`` is out of range.

    Examples:
        >>> rv = [0.2, 0.5, 0.6, 0.6, 0.4, 0.2, 0.1, 0.0]
        >>> [(e.name, e.epoch, e.best_epoch) for e in detect_forgetting(
        ...     [rv], fraction=0.5, epochs=2, label_names=["RV"])]
        [('RV', 6, 2)]
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}.")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}.")
    events = []
    for index, series in enumerate(emas):
        best_value: float | None = None
        best_epoch = -1
        low = 0
        for epoch, value in enumerate(series):
            if not math.isfinite(value):
                continue
            if best_value is None or value > best_value:
                best_value, best_epoch = float(value), epoch
            if best_value >= min_best and value < fraction * best_value:
                low += 1
            else:
                low = 0
            if low >= epochs:
                name = label_names[index] if index < len(label_names) else f"label {index + 1}"
                events.append(
                    ForgettingEvent(
                        index, name, epoch, float(value), best_epoch, best_value, fraction, epochs
                    )
                )
                break
    return events


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def checkpoint_name_for_label(name: str) -> str:
    """File name of a label's best checkpoint; characters outside ``[A-Za-z0-9_.-]`` become ``_``.

    Examples:
        >>> checkpoint_name_for_label("RV")
        'checkpoint_best_RV.pth'
        >>> checkpoint_name_for_label("left atrium/appendage")
        'checkpoint_best_left_atrium_appendage.pth'
    """
    safe = _UNSAFE.sub("_", name).strip("._") or "label"
    return f"checkpoint_best_{safe}.pth"


def checkpoint_names(names: Sequence[str]) -> list[str]:
    """One ``checkpoint_best_<label>.pth`` per label; clashes after sanitizing get the index.

    Examples:
        >>> checkpoint_names(["a b", "a/b", "c"])
        ['checkpoint_best_a_b_1.pth', 'checkpoint_best_a_b_2.pth', 'checkpoint_best_c.pth']
    """
    files = [checkpoint_name_for_label(n) for n in names]
    return [
        f[: -len(".pth")] + f"_{i + 1}.pth" if files.count(f) > 1 else f
        for i, f in enumerate(files)
    ]


def label_names(label_manager: Any, dataset_json: Mapping[str, Any]) -> list[str]:
    """Names of nnU-Net's per-label pseudo-Dice entries, in its order (labels or regions).

    Args:
        label_manager: The trainer's nnU-Net ``LabelManager`` (``has_regions``,
            ``foreground_regions``, ``foreground_labels``).
        dataset_json: The trainer's ``dataset.json``, for the names.
    """
    labels = dict(dataset_json.get("labels", {}))
    names: list[str] = []
    if label_manager.has_regions:
        for index, region in enumerate(label_manager.foreground_regions):
            wanted = tuple(region) if isinstance(region, (list, tuple)) else (region,)
            found = [
                k
                for k, v in labels.items()
                if (tuple(v) if isinstance(v, (list, tuple)) else (v,)) == wanted
            ]
            names.append(found[0] if found else f"label {index + 1}")
    else:
        by_value = {int(v): k for k, v in labels.items() if not isinstance(v, (list, tuple))}
        for index, value in enumerate(label_manager.foreground_labels):
            names.append(by_value.get(int(value), f"label {index + 1}"))
    return names


def label_records(
    names: Sequence[str],
    bests: Sequence[tuple[int | None, float | None]],
    written: Mapping[int, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The run record's ``labels``: per label its best EMA and the checkpoint written for it.

    Args:
        names: From :func:`label_names`.
        bests: From :func:`label_bests`.
        written: Label index to ``{"epoch": e}`` of its ``checkpoint_best_<label>.pth`` on disk.

    Examples:
        >>> label_records(["LV"], [(3, 0.9)], {0: {"epoch": 3}})[0]["checkpoint"]
        'checkpoint_best_LV.pth'
    """
    files = checkpoint_names(names)
    records = []
    for index, (epoch, value) in enumerate(bests):
        checkpoint = written.get(index)
        records.append(
            {
                "index": index,
                "name": names[index] if index < len(names) else f"label {index + 1}",
                "best_epoch": epoch,
                "best_ema": value,
                "checkpoint": files[index] if checkpoint is not None else None,
                "checkpoint_epoch": checkpoint["epoch"] if checkpoint is not None else None,
            }
        )
    return records
