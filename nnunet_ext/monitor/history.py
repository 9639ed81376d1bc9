"""Merge the logs of a fold folder into one history with EMA, best epoch, ETA and status."""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nnunet_ext.io import load_dataset_json, load_json
from nnunet_ext.monitor.parser import EpochRecord, LogFile, read_log_file
from nnunet_ext.monitor.series import (
    LabelCollapse,
    _ranges,
    estimate_remaining_s,
    find_collapsing_labels,
    merge_epochs,
)
from nnunet_ext.trainers.label_tracking import detect_forgetting, label_emas
from nnunet_ext.trainers.record import read_run_record
from nnunet_ext.trainers.settings import TrainingSettings

__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "TrainingHistory",
    "find_log_files",
    "read_training_history",
]

SCHEMA_VERSION = 2
#: Statuses after which a run writes nothing more.
TERMINAL_STATUSES = frozenset({"completed", "stopped_early", "failed"})
_SETTINGS_FILE = "nnunet_ext_training.json"
_LOG_NAME = re.compile(r"^training_log_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)\.txt$")
_STOP_REASONS = {"patience", "target_dice", "stop_file", "forgetting"}


@dataclass(frozen=True)
class TrainingHistory:
    """Everything the monitor knows about one fold folder.

    Attributes:
        fold_dir: The fold folder.
        log_files: The ``training_log_*.txt`` files read, oldest first.
        epochs: Finished epochs, merged over restarts, sorted by epoch, with the EMA recomputed.
        label_names: One name per ``pseudo_dice`` entry.
        settings: Training settings from our trainers' JSON (or ``num_epochs`` etc. from
            ``debug.json``).
        settings_source: Which file the settings came from (``None`` when none was found).
        status: ``"completed"``, ``"stopped_early"``, ``"running"`` (a log line less than
            ``stale_after_s`` ago) or ``"not_running"`` (nothing logged for longer: crashed or
            killed), or a status written by our trainers.
        stop: Why training stopped early: ``{"reason", "message", "epoch"}`` or ``None``.
        unfinished_epoch: Number of an epoch started but not finished in the newest log.
        last_log_time: Time of the newest log line.
        missing_epochs: Epoch numbers absent between the first and last logged epoch.
        warnings: Notes on the logs (replaced epochs, gaps, parse problems).
        cooldown: The learning-rate cooldown after the stop (from the run record), or ``None``.
        forgetting: Labels the forgetting guard flagged: from the run record of our trainers,
            else computed from the logged pseudo Dice with the default rule.
    """

    fold_dir: Path
    log_files: tuple[Path, ...]
    epochs: tuple[EpochRecord, ...]
    label_names: tuple[str, ...]
    settings: dict[str, Any]
    settings_source: str | None
    status: str
    stop: dict[str, Any] | None
    unfinished_epoch: int | None
    last_log_time: datetime | None
    missing_epochs: tuple[int, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    cooldown: dict[str, Any] | None = None
    forgetting: tuple[dict[str, Any], ...] = ()

    @property
    def num_epochs(self) -> int | None:
        """Configured epoch count (``settings["num_epochs"]``), when known."""
        value = self.settings.get("num_epochs")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def cooldown_window(self) -> tuple[int, int] | None:
        """First and last epoch of the cooldown, when there is one."""
        if not self.cooldown:
            return None
        start = int(self.cooldown["start_epoch"])
        return start, start + int(self.cooldown["epochs"]) - 1

    @property
    def best(self) -> EpochRecord | None:
        """The epoch nnU-Net saved as ``checkpoint_best.pth``.

        That is the last epoch with a ``Yayy! New best EMA`` line in the merged series; without
        such lines, the first maximum of the recomputed EMA (nnU-Net compares with strict ``>``).
        """
        logged = [e for e in self.epochs if e.logged_best_ema is not None]
        if logged:
            return logged[-1]
        best: EpochRecord | None = None
        for record in self.epochs:
            ema = record.ema_pseudo_dice
            if ema is None or math.isnan(ema):
                continue
            if best is None or ema > (best.ema_pseudo_dice or -math.inf):
                best = record
        return best

    @property
    def patience(self) -> int | None:
        """The early-stopping patience in epochs, when known."""
        value = self.settings.get("patience")
        return int(value) if isinstance(value, (int, float)) and value else None

    @property
    def early_stop_window(self) -> tuple[int, int] | None:
        """First and last epoch of the patience window ending at the stop (or the last epoch)."""
        patience = self.patience
        if patience is None or not self.epochs:
            return None
        end = self.epochs[-1].epoch
        if self.stop and isinstance(self.stop.get("epoch"), int):
            end = int(self.stop["epoch"])
        return max(0, end - patience + 1), end

    def eta_s(self, *, window: int = 10) -> float | None:
        """Seconds until the configured last epoch, from the median of recent epoch times."""
        if self.status in TERMINAL_STATUSES or self.num_epochs is None:
            return None if self.status not in TERMINAL_STATUSES else 0.0
        done = self.epochs[-1].epoch + 1 if self.epochs else 0
        times = [e.epoch_time_s for e in self.epochs if e.epoch_time_s is not None]
        window_end = self.cooldown_window
        end = window_end[1] + 1 if window_end is not None else self.num_epochs
        return estimate_remaining_s(times, end - done, window=window)

    def collapsing_labels(self, *, window: int = 5) -> list[LabelCollapse]:
        """Return the labels whose recent pseudo Dice fell below half their best."""
        return find_collapsing_labels(
            [e.pseudo_dice for e in self.epochs],
            [e.epoch for e in self.epochs],
            label_names=self.label_names,
            window=window,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report (``schema_version`` 1)."""
        best = self.best
        window = self.early_stop_window
        collapses = self.collapsing_labels()
        return {
            "schema_version": SCHEMA_VERSION,
            "fold_dir": str(self.fold_dir),
            "log_files": [p.name for p in self.log_files],
            "label_names": list(self.label_names),
            "epochs": [e.to_dict() for e in self.epochs],
            "num_epochs_logged": len(self.epochs),
            "best_epoch": best.epoch if best else None,
            "best_ema": (
                (best.logged_best_ema if best.logged_best_ema is not None else best.ema_pseudo_dice)
                if best
                else None
            ),
            "num_epochs": self.num_epochs,
            "early_stopping": {
                "patience": self.patience,
                "min_delta": self.settings.get("min_delta"),
                "min_epochs": self.settings.get("min_epochs"),
                "target_dice": self.settings.get("target_dice"),
                "window": list(window) if window else None,
            },
            "settings": self.settings,
            "settings_source": self.settings_source,
            "status": self.status,
            "stopped": self.status in TERMINAL_STATUSES,
            "stop": self.stop,
            "unfinished_epoch": self.unfinished_epoch,
            "eta_s": self.eta_s(),
            "last_log_time": self.last_log_time.isoformat() if self.last_log_time else None,
            "missing_epochs": list(self.missing_epochs),
            "collapsing_labels": [
                {
                    "index": c.index,
                    "name": c.name,
                    "peak": c.peak,
                    "peak_epoch": c.peak_epoch,
                    "recent": c.recent,
                }
                for c in collapses
            ],
            "cooldown": self.cooldown,
            "forgetting": list(self.forgetting),
            "warnings": list(self.warnings),
        }


def _log_sort_key(path: Path, log: LogFile) -> tuple[Any, ...]:
    match = _LOG_NAME.match(path.name)
    by_name = tuple(int(g) for g in match.groups()) if match else ()
    stamp = log.first_timestamp.timestamp() if log.first_timestamp else math.inf
    return (stamp, by_name, path.stat().st_mtime, path.name)


def _label_names(fold_dir: Path, count: int) -> tuple[str, ...]:
    for candidate in (fold_dir.parent / "dataset.json", fold_dir / "dataset.json"):
        if not candidate.is_file():
            continue
        spec = load_dataset_json(candidate)  # a damaged dataset.json is an InputError
        foreground = spec.foreground
        if spec.has_regions:
            names = list(foreground)
        else:
            names = [k for k, _ in sorted(foreground.items(), key=lambda kv: kv[1])]
        if len(names) == count:
            return tuple(names)
    return tuple(f"label {i + 1}" for i in range(count))


def _read_settings(fold_dir: Path) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """Return (settings, source file name, our trainer JSON or {})."""
    ours = fold_dir / _SETTINGS_FILE
    if ours.is_file():
        data = read_run_record(ours)
        settings = data.get("settings")
        return (dict(settings) if isinstance(settings, dict) else {}), ours.name, data
    debug = fold_dir / "debug.json"
    if debug.is_file():
        try:
            data = load_json(debug)
        except ValueError:
            return {}, None, {}
        settings = {}
        for key in ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch"):
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, str) and value.strip().isdigit():
                settings[key] = int(value)
        return settings, debug.name, {}
    return {}, None, {}


def find_log_files(fold_dir: str | os.PathLike[str]) -> list[Path]:
    """List the ``training_log_*.txt`` files of a fold folder (unsorted).

    Raises:
        NotADirectoryError: If ``fold_dir`` is not a folder.
        FileNotFoundError: If it holds no training log; names ``fold_*`` subfolders when present.
    """
    root = Path(fold_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"fold_dir must be a folder; got {str(root)!r}, which is not one.")
    logs = [
        p for p in root.glob("training_log_*.txt") if p.is_file() and not p.name.startswith(".")
    ]
    if not logs:
        folds = sorted(p.name for p in root.glob("fold_*") if p.is_dir())
        hint = (
            f" It has fold folders ({', '.join(folds)}): pass one of them."
            if folds
            else " Pass nnUNet_results/DatasetX/TRAINER__PLANS__CONF/fold_N."
        )
        raise FileNotFoundError(f"fold_dir {str(root)!r} has no training_log_*.txt file.{hint}")
    return logs


def read_training_history(
    fold_dir: str | os.PathLike[str], *, stale_after_s: float | None = None
) -> TrainingHistory:
    """Read every training log of an nnU-Net fold folder and merge restarts.

    Logs are ordered by their first timestamp (then by the time in their name); a later log's
    epoch replaces an earlier epoch with the same number (``--c`` restarts from the last
    checkpoint and re-runs epochs). The EMA is recomputed over the merged series as nnU-Net does.
    Configured epochs and early-stop settings come from ``nnunet_ext_training.json`` (written by
    our trainers) or, failing that, from nnU-Net's ``debug.json``.

    Args:
        fold_dir: ``nnUNet_results/DatasetX/TRAINER__PLANS__CONF/fold_N``.
        stale_after_s: A run whose newest log line is older than this is ``"not_running"``;
            default: 5 times the median epoch time, at least 10 minutes.

    Returns:
        The merged history.

    Raises:
        NotADirectoryError: If ``fold_dir`` is not a folder.
        FileNotFoundError: If it holds no ``training_log_*.txt``.
        ValueError: If a log or the settings JSON is malformed.
    """
    root = Path(fold_dir)
    paths = find_log_files(root)
    logs = [read_log_file(p) for p in paths]
    order = sorted(range(len(paths)), key=lambda i: _log_sort_key(paths[i], logs[i]))
    logs = [logs[i] for i in order]
    epochs, notes = merge_epochs(logs)
    settings, source, ours = _read_settings(root)
    last_time = max((log.last_timestamp for log in logs if log.last_timestamp), default=None)
    newest = logs[-1]
    stop = ours.get("stop") if isinstance(ours.get("stop"), dict) else None
    status = _status(root, newest, ours, epochs, last_time, stale_after_s)
    if stop is None and status == "stopped_early":
        stop = {"reason": None, "message": "stopped early (see the training log)", "epoch": None}
    if (
        stop is not None
        and stop.get("reason") not in _STOP_REASONS
        and stop.get("reason") is not None
    ):
        notes.append(f"unknown stop reason {stop.get('reason')!r} in {_SETTINGS_FILE}")

    numbers = [e.epoch for e in epochs]
    missing = (
        tuple(sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))) if numbers else ()
    )
    if missing:
        notes.append(
            f"epochs {_ranges(list(missing))} are in no log; the recomputed EMA skips them"
        )
    count = max((len(e.pseudo_dice) for e in epochs), default=0)
    label_names = _label_names(root, count)
    cooldown = ours.get("cooldown") if isinstance(ours.get("cooldown"), dict) else None
    if "forgetting_fraction" in settings:  # our trainer tracked it: its record is exact
        forgetting = tuple(e for e in ours.get("forgetting") or [] if isinstance(e, dict))
    else:
        forgetting = _forgetting_from_logs(epochs, label_names)
    return TrainingHistory(
        fold_dir=root,
        log_files=tuple(log.path for log in logs),
        epochs=tuple(epochs),
        label_names=label_names,
        settings=settings,
        settings_source=source,
        status=status,
        stop=stop,
        unfinished_epoch=newest.unfinished_epoch if status not in TERMINAL_STATUSES else None,
        last_log_time=last_time,
        missing_epochs=missing,
        warnings=tuple(notes),
        cooldown=cooldown,
        forgetting=forgetting,
    )


def _forgetting_from_logs(
    epochs: Sequence[EpochRecord], label_names: Sequence[str]
) -> tuple[dict[str, Any], ...]:
    """The forgetting rule with its defaults, on the logged pseudo Dice (plain nnU-Net runs)."""
    if not epochs or [e.epoch for e in epochs] != list(range(len(epochs))):
        return ()  # the rule counts consecutive epochs; gaps would misplace it
    defaults = TrainingSettings()
    events = detect_forgetting(
        label_emas([e.pseudo_dice for e in epochs]),
        fraction=defaults.forgetting_fraction,
        epochs=defaults.forgetting_epochs,
        label_names=label_names,
    )
    return tuple(e.to_dict() for e in events)


def _status(
    root: Path,
    newest: LogFile,
    ours: dict[str, Any],
    epochs: Sequence[EpochRecord],
    last_time: datetime | None,
    stale_after_s: float | None,
) -> str:
    recorded = ours.get("status")
    if isinstance(recorded, str) and recorded != "running":
        return recorded
    if newest.training_done or (root / "checkpoint_final.pth").is_file():
        return "completed"
    if last_time is None:
        return "running"
    if stale_after_s is None:
        times = [e.epoch_time_s for e in epochs[-10:] if e.epoch_time_s is not None]
        stale_after_s = max(600.0, 5 * statistics.median(times)) if times else 600.0
    age = time.time() - last_time.timestamp()
    return "running" if age <= stale_after_s else "not_running"
