"""Parse nnU-Net's ``training_log_*.txt`` files into per-epoch records.

nnU-Net's ``print_to_log_file`` writes one line per call: ``f"{datetime}: "`` followed by each
argument's ``str()`` and a space. The lines read here come from ``on_train_epoch_start``
(``Epoch N``, ``Current learning rate: X``) and ``on_epoch_end`` (``train_loss X``,
``val_loss X``, ``Pseudo dice [...]``, ``Epoch time: X s``, ``Yayy! New best EMA pseudo Dice: X``),
plus ``Training done.`` from ``on_train_end``. ``Pseudo dice`` is the ``str()`` of a Python list of
numpy scalars, so numpy 1 writes ``[0.8, 0.1]`` and numpy 2 writes
``[np.float32(0.8), np.float32(0.1)]``; both are accepted.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nnunet_ext.io.errors import InputError

__all__ = [
    "EPOCH_KEYS",
    "EpochRecord",
    "LogFile",
    "parse_log_text",
    "parse_pseudo_dice",
    "read_log_file",
]

#: The keys of one epoch in the JSON report, in this order.
EPOCH_KEYS = (
    "epoch",
    "train_loss",
    "val_loss",
    "pseudo_dice",
    "ema_pseudo_dice",
    "learning_rate",
    "epoch_time_s",
)

_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?): ?(.*?)\s*$")
_EPOCH = re.compile(r"^Epoch (\d+)$")
_LR = re.compile(r"^Current learning rate: (\S+)$")
_TRAIN_LOSS = re.compile(r"^train_loss (\S+)$")
_VAL_LOSS = re.compile(r"^val_loss (\S+)$")
_DICE = re.compile(r"^Pseudo dice \[(.*)\]$")
_EPOCH_TIME = re.compile(r"^Epoch time: (\S+) s$")
_NEW_BEST = re.compile(r"^Yayy! New best EMA pseudo Dice: (\S+)$")
_NUMPY_SCALAR = re.compile(r"^np\.\w+\((.*)\)$")
_TRAINING_DONE = "Training done."


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch as logged by nnU-Net.

    Attributes:
        epoch: Epoch number (0-based, as in the log).
        train_loss: Mean training loss.
        val_loss: Mean validation loss.
        pseudo_dice: Pseudo Dice per foreground label or region, in log order.
        learning_rate: Learning rate at the start of the epoch (rounded to 5 decimals by nnU-Net).
        epoch_time_s: Wall time of the epoch in seconds.
        ema_pseudo_dice: EMA of the mean pseudo Dice, recomputed over the merged series
            (``None`` until :func:`~nnunet_ext.monitor.series.merge_epochs` fills it in).
        logged_best_ema: The value of a ``Yayy! New best EMA pseudo Dice`` line after this epoch.
        started_at: Timestamp of the ``Epoch N`` line.
        source: Name of the log file the epoch was read from.
    """

    epoch: int
    train_loss: float | None
    val_loss: float | None
    pseudo_dice: tuple[float, ...]
    learning_rate: float | None
    epoch_time_s: float | None
    ema_pseudo_dice: float | None = None
    logged_best_ema: float | None = None
    started_at: datetime | None = None
    source: str = ""

    @property
    def mean_pseudo_dice(self) -> float:
        """The mean over labels, ignoring NaN (``np.nanmean``); NaN if every label is NaN."""
        finite = [v for v in self.pseudo_dice if not math.isnan(v)]
        return sum(finite) / len(finite) if finite else math.nan

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form: exactly the keys of :data:`EPOCH_KEYS`."""
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "pseudo_dice": list(self.pseudo_dice),
            "ema_pseudo_dice": self.ema_pseudo_dice,
            "learning_rate": self.learning_rate,
            "epoch_time_s": self.epoch_time_s,
        }


@dataclass(frozen=True)
class LogFile:
    """What one ``training_log_*.txt`` holds.

    Attributes:
        path: The file.
        epochs: Finished epochs (with a ``Pseudo dice`` line), in file order.
        unfinished_epoch: Number of an epoch that was started but not finished in this file.
        first_timestamp: Time of the first timestamped line (``None`` for an empty log).
        last_timestamp: Time of the last timestamped line.
        training_done: Whether the file has nnU-Net's ``Training done.`` line.
        messages: Every timestamped message, in order (for stop reasons written by trainers).
    """

    path: Path
    epochs: tuple[EpochRecord, ...]
    unfinished_epoch: int | None
    first_timestamp: datetime | None
    last_timestamp: datetime | None
    training_done: bool
    messages: tuple[str, ...] = field(default=(), repr=False)


def _to_float(text: str) -> float:
    text = text.strip()
    match = _NUMPY_SCALAR.match(text)
    if match:
        text = match.group(1).strip()
    return float(text)


def parse_pseudo_dice(text: str) -> tuple[float, ...]:
    """Parse the inside of a ``Pseudo dice [...]`` list in numpy-1 or numpy-2 repr.

    Args:
        text: The text between the brackets.

    Returns:
        One float per label or region; ``nan`` where nnU-Net logged ``nan``.

    Raises:
        ValueError: If an element is not a number.

    Examples:
        >>> parse_pseudo_dice("np.float32(0.8), np.float32(0.1)")
        (0.8, 0.1)
        >>> parse_pseudo_dice("0.8, nan")
        (0.8, nan)
        >>> parse_pseudo_dice("np.float64(0.5)")
        (0.5,)
    """
    if not text.strip():
        return ()
    return tuple(_to_float(part) for part in text.split(","))


def _parse_time(text: str, source: str, number: int) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as err:
        raise InputError(
            source,
            "a real date and time (YYYY-MM-DD HH:MM:SS.ffffff, as nnU-Net writes)",
            f"{text!r} ({err})",
            key=f"line {number}",
            fix="The log is damaged or was edited; is this an nnU-Net training log?",
        ) from None


@dataclass
class _Pending:
    epoch: int
    started_at: datetime | None
    learning_rate: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    pseudo_dice: tuple[float, ...] | None = None
    epoch_time_s: float | None = None
    logged_best_ema: float | None = None

    def record(self, source: str) -> EpochRecord:
        return EpochRecord(
            epoch=self.epoch,
            train_loss=self.train_loss,
            val_loss=self.val_loss,
            pseudo_dice=self.pseudo_dice or (),
            learning_rate=self.learning_rate,
            epoch_time_s=self.epoch_time_s,
            logged_best_ema=self.logged_best_ema,
            started_at=self.started_at,
            source=source,
        )


#: nnU-Net's per-epoch lines: pattern, the :class:`_Pending` field its value goes to, parser.
_EPOCH_LINES: tuple[tuple[re.Pattern[str], str, Callable[[str], object]], ...] = (
    (_LR, "learning_rate", _to_float),
    (_TRAIN_LOSS, "train_loss", _to_float),
    (_VAL_LOSS, "val_loss", _to_float),
    (_DICE, "pseudo_dice", parse_pseudo_dice),
    (_EPOCH_TIME, "epoch_time_s", _to_float),
    (_NEW_BEST, "logged_best_ema", _to_float),
)


def _read_epoch_line(pending: _Pending, message: str) -> None:
    """Store the value of an epoch line into ``pending`` (other messages: nothing)."""
    for pattern, name, parse in _EPOCH_LINES:
        if found := pattern.match(message):
            setattr(pending, name, parse(found.group(1)))
            return


def parse_log_text(text: str, *, source: str = "training_log") -> LogFile:
    r"""Parse the text of one nnU-Net training log.

    An epoch counts as finished once its ``Pseudo dice`` line is there (the values written by
    ``on_epoch_end``); an epoch that only has ``Epoch N`` and the learning rate (training still
    running, or interrupted) is reported as ``unfinished_epoch``. Lines that are not nnU-Net's
    epoch lines (plans, warnings, validation output) are kept in ``messages`` only.

    Args:
        text: The file content.
        source: A name for error messages and for :attr:`EpochRecord.source`.

    Returns:
        The parsed log.

    Raises:
        InputError: If an epoch line holds a value that is not a number, a timestamp is not a
            real date, or the text has content but not one nnU-Net log line.

    Examples:
        >>> log = parse_log_text(
        ...     "2026-11-22 10:00:00.000001: Epoch 0 \n"
        ...     "2026-11-22 10:00:00.000002: Current learning rate: 0.01 \n"
        ...     "2026-11-22 10:00:10.000000: train_loss -0.1 \n"
        ...     "2026-11-22 10:00:10.000000: val_loss -0.2 \n"
        ...     "2026-11-22 10:00:10.000000: Pseudo dice [np.float32(0.8), np.float32(0.1)] \n"
        ...     "2026-11-22 10:00:10.000000: Epoch time: 10.0 s \n"
        ... )
        >>> log.epochs[0].pseudo_dice, log.epochs[0].epoch_time_s
        ((0.8, 0.1), 10.0)
    """
    epochs: dict[int, EpochRecord] = {}
    pending: _Pending | None = None
    first: datetime | None = None
    last: datetime | None = None
    done = False
    messages: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if not match:
            continue
        stamp = _parse_time(match.group(1), source, number)
        first = first or stamp
        last = stamp
        message = match.group(2)
        messages.append(message)
        try:
            if epoch_match := _EPOCH.match(message):
                if pending is not None and pending.pseudo_dice is not None:
                    epochs[pending.epoch] = pending.record(source)
                pending = _Pending(epoch=int(epoch_match.group(1)), started_at=stamp)
            elif message == _TRAINING_DONE:
                done = True
            elif pending is not None:
                _read_epoch_line(pending, message)
        except ValueError as err:
            raise InputError(
                source,
                f"a number in {message[:80]!r}",
                str(err)[:80],
                key=f"line {number}",
                fix="The log is damaged or was edited; is this an nnU-Net training log?",
            ) from err
    if first is None:
        raise InputError(
            source,
            "an nnU-Net training log (lines '2026-01-31 12:00:00.000000: message')",
            "no such line" if text.strip() else "an empty file",
            fix="Pass the fold folder nnUNetv2_train writes (nnUNet_results/.../fold_N); "
            "remove or rename files that are not its training_log_*.txt.",
        )
    unfinished = None
    if pending is not None:
        if pending.pseudo_dice is not None:
            epochs[pending.epoch] = pending.record(source)
        else:
            unfinished = pending.epoch
    return LogFile(
        path=Path(source),
        epochs=tuple(epochs.values()),
        unfinished_epoch=unfinished,
        first_timestamp=first,
        last_timestamp=last,
        training_done=done,
        messages=tuple(messages),
    )


def read_log_file(path: str | os.PathLike[str]) -> LogFile:
    """Read and parse one ``training_log_*.txt``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: If the file is not text, not an nnU-Net log, or holds an impossible value.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"training log not found: {file}")
    raw = file.read_bytes()
    nul = raw.find(b"\0")
    if nul >= 0:
        raise InputError(
            file,
            "an nnU-Net training log (text)",
            f"binary data (a NUL byte at offset {nul})",
            fix="Remove files that are not nnUNetv2_train's training_log_*.txt.",
        )
    text = raw.decode("utf-8", errors="replace")
    parsed = parse_log_text(text, source=str(file))
    return LogFile(
        path=file,
        epochs=tuple(
            EpochRecord(**{**record.__dict__, "source": file.name}) for record in parsed.epochs
        ),
        unfinished_epoch=parsed.unfinished_epoch,
        first_timestamp=parsed.first_timestamp,
        last_timestamp=parsed.last_timestamp,
        training_done=parsed.training_done,
        messages=parsed.messages,
    )
