"""Read, merge, report and plot nnU-Net training logs (``nnunet-ext log``).

nnU-Net writes a new ``training_log_*.txt`` at every (re)start. :func:`read_training_history`
merges them into one epoch series with per-label pseudo Dice, recomputes nnU-Net's EMA, and
adds the configured epochs, early-stop settings and stop reason from our trainers'
``nnunet_ext_training.json`` (or nnU-Net's ``debug.json``). No torch, no nnunetv2 import.
"""

from nnunet_ext.monitor.history import TrainingHistory, read_training_history
from nnunet_ext.monitor.report import format_report, plot_history

__all__ = ["TrainingHistory", "format_report", "plot_history", "read_training_history"]
