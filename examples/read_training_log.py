"""Read an nnU-Net fold's training logs, merged over a restart, and plot the curves.

nnU-Net starts a new ``training_log_YYYY_M_D_HH_MM_SS.txt`` every time training (re)starts.
This example writes a fold folder the way ``nnUNetv2_train`` leaves it after a crash and a
``--c`` restart, then reads it with :func:`nnunet_ext.monitor.read_training_history`:

1. the first log has epochs 0-5 and stops in the middle of epoch 6 (the crash);
2. the second log resumes from the checkpoint after epoch 4, so it re-runs epoch 5 (the newer
   epoch 5 replaces the older one), runs to epoch 11 and ends with ``Training done.``;
3. the history is printed as a table (:func:`~nnunet_ext.monitor.format_report`), the best
   epoch (the one saved as ``checkpoint_best.pth``) is looked up, and the curves are drawn
   into a PNG (:func:`~nnunet_ext.monitor.plot_history`).

The same is available as ``nnunet-ext log -i FOLD_DIR --plot curves.png`` (or ``--watch``).

Run:  python examples/read_training_log.py [WORK_DIR]
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from _common import run

from nnunet_ext.monitor import format_report, plot_history, read_training_history

NUM_EPOCHS = 12


def pseudo_dice(epoch: int) -> list[np.float32]:
    """Made-up but plausible pseudo Dice of myocardium, LV and RV after ``epoch``.

    RV is NaN while no validation patch contained it, as happens with small labels early on.
    """
    progress = 1 - math.exp(-epoch / 3)
    rv = np.float32("nan") if epoch < 2 else np.float32(0.7 * progress)
    return [np.float32(0.3 + 0.6 * progress), np.float32(0.4 + 0.55 * progress), rv]


def ema_pseudo_dice(epoch: int) -> float:
    """nnU-Net's EMA of the mean (NaN-skipping) pseudo Dice up to ``epoch``."""
    ema = float(np.nanmean(pseudo_dice(0)))
    for e in range(1, epoch + 1):
        ema = 0.9 * ema + 0.1 * float(np.nanmean(pseudo_dice(e)))
    return ema


class TrainingLog:
    """Appends lines to one log file exactly as ``nnUNetTrainer.print_to_log_file`` does:
    ``f"{datetime}:"`` and then each argument's ``str()``, each followed by a space."""

    def __init__(self, fold_dir: Path, start: datetime, *, epoch_time_s: float) -> None:
        name = (
            f"training_log_{start.year}_{start.month}_{start.day}_"
            f"{start.hour:02d}_{start.minute:02d}_{start.second:02d}.txt"
        )
        self.path = fold_dir / name
        self.now = start
        self.epoch_time_s = epoch_time_s

    def print(self, *args: object, seconds: float = 0.01) -> None:
        self.now += timedelta(seconds=seconds)
        with open(self.path, "a") as f:
            f.write("".join(f"{a} " for a in (f"{self.now}:", *args)) + "\n")

    def epoch(self, epoch: int, *, finished: bool = True) -> None:
        """The lines of nnU-Net's on_train_epoch_start and, if finished, on_epoch_end."""
        self.print("")
        self.print(f"Epoch {epoch}")
        lr = 0.01 * (1 - epoch / NUM_EPOCHS) ** 0.9  # nnU-Net's poly schedule
        self.print(f"Current learning rate: {np.round(lr, decimals=5)}")
        if not finished:
            return
        progress = 1 - math.exp(-epoch / 3)
        train_loss, val_loss = np.float64(-0.1 - 0.7 * progress), np.float64(-0.05 - 0.6 * progress)
        self.print("train_loss", np.round(train_loss, decimals=4), seconds=self.epoch_time_s)
        self.print("val_loss", np.round(val_loss, decimals=4))
        # numpy 2 writes the list as [np.float32(0.81), np.float32(0.87), np.float32(nan)]
        self.print("Pseudo dice", [np.round(d, decimals=4) for d in pseudo_dice(epoch)])
        self.print(f"Epoch time: {np.round(np.float64(self.epoch_time_s), decimals=2)} s")
        if epoch == 0 or ema_pseudo_dice(epoch) > ema_pseudo_dice(epoch - 1):
            best = np.round(ema_pseudo_dice(epoch), decimals=4)
            self.print(f"Yayy! New best EMA pseudo Dice: {best}")


def main(work: Path) -> None:
    work = work / "read_training_log"
    model_dir = (
        work
        / "nnUNet_results"
        / "Dataset501_SyntheticHeart"
        / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    )
    fold_dir = model_dir / "fold_0"
    fold_dir.mkdir(parents=True, exist_ok=True)
    # nnU-Net copies dataset.json next to the fold folders (label names) and writes debug.json
    # into the fold folder (its values are strings; num_epochs gives "epochs finished: N of M").
    labels = {"background": 0, "myocardium": 1, "LV": 2, "RV": 3}
    (model_dir / "dataset.json").write_text(
        json.dumps({"labels": labels, "file_ending": ".nii.gz"})
    )
    (fold_dir / "debug.json").write_text(json.dumps({"num_epochs": str(NUM_EPOCHS)}))
    for old in fold_dir.glob("training_log_*.txt"):  # rerunning the example starts afresh
        old.unlink()

    # 1. First run: epochs 0-5, then the process dies during epoch 6.
    first = TrainingLog(fold_dir, datetime(2026, 11, 9, 10, 0, 0), epoch_time_s=12.3)
    first.print("INFO: torch.compile disabled because device is CPU")
    for epoch in range(6):
        first.epoch(epoch)
    first.epoch(6, finished=False)
    # 2. nnUNetv2_train ... --c, the next morning on a quieter machine (faster epochs): resumes
    #    from the checkpoint written after epoch 4 and finishes.
    second = TrainingLog(fold_dir, datetime(2026, 11, 10, 8, 30, 0), epoch_time_s=9.8)
    for epoch in range(5, NUM_EPOCHS):
        second.epoch(epoch)
    second.print("Training done.")
    print(f"wrote {first.path.name} and {second.path.name} into {fold_dir}")

    # 3. Read, merge and report. The EMA pseudo Dice is recomputed over the merged epochs as
    #    nnU-Net computes it (0.9 * previous + 0.1 * mean Dice of the epoch).
    history = read_training_history(fold_dir)
    print(format_report(history, last=0))
    epochs = [record.epoch for record in history.epochs]
    print(f"merged epochs: {epochs[0]}..{epochs[-1]} from {len(history.log_files)} log files")
    epoch5 = next(record for record in history.epochs if record.epoch == 5)
    print(
        f"epoch 5 was logged twice; the merged series keeps the one from {epoch5.source} "
        f"(epoch time {epoch5.epoch_time_s} s)"
    )
    best = history.best
    if best is not None:
        ema = math.nan if best.ema_pseudo_dice is None else best.ema_pseudo_dice
        print(f"best epoch: {best.epoch} (EMA pseudo Dice {ema:.4f}), status: {history.status}")
    figure = plot_history(history, work / "training_curves.png")
    print(f"curves written to {figure}")


if __name__ == "__main__":
    run(main)
