"""Read, merge, report and plot nnU-Net training logs (``nnunet-ext log``).

nnU-Net writes a new ``training_log_*.txt`` at every (re)start. :func:`read_training_history`
merges them into one epoch series with per-label pseudo Dice, recomputes nnU-Net's EMA, and
adds the configured epochs, early-stop settings and stop reason from our trainers'
``nnunet_ext_training.json`` (or nnU-Net's ``debug.json``). No torch, no nnunetv2 import.
"""

from nnunet_ext.monitor.history import (
    LabelCollapse,
    TrainingHistory,
    compute_ema,
    estimate_remaining_s,
    find_collapsing_labels,
    find_log_files,
    merge_epochs,
    read_training_history,
)
from nnunet_ext.monitor.parser import (
    EPOCH_KEYS,
    EpochRecord,
    LogFile,
    parse_log_text,
    parse_pseudo_dice,
    read_log_file,
)
from nnunet_ext.monitor.report import format_duration, format_report, plot_history
from nnunet_ext.monitor.watch import watch_training

__all__ = [
    "EPOCH_KEYS",
    "EpochRecord",
    "LabelCollapse",
    "LogFile",
    "TrainingHistory",
    "compute_ema",
    "estimate_remaining_s",
    "find_collapsing_labels",
    "find_log_files",
    "format_duration",
    "format_report",
    "merge_epochs",
    "parse_log_text",
    "parse_pseudo_dice",
    "plot_history",
    "read_log_file",
    "read_training_history",
    "watch_training",
]
