"""Training logs written exactly as nnU-Net's ``print_to_log_file`` writes them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

CITATION = (
    "\n#######################################################################\n"
    "Please cite the following paper when using nnU-Net:\n"
    "Isensee, F., Jaeger, P. F., Kohl, S. A., Petersen, J., & Maier-Hein, K. H. (2021). "
    "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation. "
    "Nature methods, 18(2), 203-211.\n"
    "#######################################################################\n"
)


@dataclass(frozen=True)
class Epoch:
    epoch: int
    train_loss: float
    val_loss: float
    dice: tuple[float, ...]
    lr: float
    time_s: float


def make_epochs(first: int, last: int, *, labels: int = 3, offset: float = 0.0) -> list[Epoch]:
    """Epochs with distinct, known values: dice_k = 0.1*k + 0.05*epoch (capped), etc."""
    out = []
    for e in range(first, last + 1):
        dice = tuple(min(0.99, round(0.1 * (k + 1) + 0.05 * e + offset, 4)) for k in range(labels))
        out.append(
            Epoch(
                epoch=e,
                train_loss=round(-0.1 - 0.01 * e - offset, 4),
                val_loss=round(-0.05 - 0.01 * e - offset, 4),
                dice=dice,
                lr=round(0.01 * (1 - e / 1000) ** 0.9, 5),
                time_s=round(10.0 + 0.5 * e, 2),
            )
        )
    return out


class LogWriter:
    """Writes one ``training_log_*.txt`` the way ``nnUNetTrainer.print_to_log_file`` does."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.path = path
        self.now = start
        self.best: float | None = None
        self.ema: float | None = None

    def line(self, *args: object, add_timestamp: bool = True, seconds: float = 0.001) -> None:
        self.now += timedelta(seconds=seconds)
        if add_timestamp:
            args = (f"{self.now}:", *args)
        with open(self.path, "a+") as f:
            for a in args:
                f.write(str(a))
                f.write(" ")
            f.write("\n")

    def header(self) -> None:
        self.line(CITATION, add_timestamp=False)
        self.line(
            "\nThis is the configuration used by this training:\nConfiguration name: 3d_fullres\n",
            {"patch_size": [16, 48, 48]},
            "\n",
            add_timestamp=False,
        )
        self.line("INFO: torch.compile disabled because device is CPU")
        self.line("Desired fold for training: 0")

    def epoch(self, ep: Epoch, *, numpy2: bool = True, finish: bool = True) -> None:
        self.line("")
        self.line(f"Epoch {ep.epoch}")
        self.line(f"Current learning rate: {np.round(ep.lr, decimals=5)}")
        if not finish:
            return
        self.line("train_loss", np.round(np.float64(ep.train_loss), decimals=4), seconds=ep.time_s)
        self.line("val_loss", np.round(np.float64(ep.val_loss), decimals=4))
        if numpy2:
            dice: list[object] = [np.round(np.float32(d), decimals=4) for d in ep.dice]
        else:
            dice = [DiceRepr(d) for d in ep.dice]
        self.line("Pseudo dice", dice)
        self.line(f"Epoch time: {np.round(np.float64(ep.time_s), decimals=2)} s")
        mean = float(np.nanmean(ep.dice))
        self.ema = mean if self.ema is None else 0.9 * self.ema + 0.1 * mean
        if self.best is None or self.ema > self.best:
            self.best = self.ema
            self.line(f"Yayy! New best EMA pseudo Dice: {np.round(self.best, decimals=4)}")

    def done(self) -> None:
        self.line("Training done.")


class DiceRepr(float):
    """A float whose repr is numpy 1's scalar repr (plain), as in ``[0.8, 0.1]``."""

    def __repr__(self) -> str:
        return repr(float(self))


WriteLog = Callable[..., LogWriter]


@pytest.fixture
def write_log() -> WriteLog:
    def write(
        fold: Path,
        epochs: Sequence[Epoch],
        *,
        start: datetime,
        numpy2: bool = True,
        unfinished: Epoch | None = None,
        done: bool = False,
        name: str | None = None,
        state: LogWriter | None = None,
    ) -> LogWriter:
        fold.mkdir(parents=True, exist_ok=True)
        if name is None:
            name = "training_log_%d_%d_%d_%02.0d_%02.0d_%02.0d.txt" % (  # noqa: UP031 - nnU-Net's format
                start.year,
                start.month,
                start.day,
                start.hour,
                start.minute,
                start.second,
            )
        writer = LogWriter(fold / name, start)
        if state is not None:  # a --c restart continues the EMA/best from the checkpoint
            writer.ema, writer.best = state.ema, state.best
        writer.header()
        for ep in epochs:
            writer.epoch(ep, numpy2=numpy2)
        if unfinished is not None:
            writer.epoch(unfinished, finish=False)
        if done:
            writer.done()
        return writer

    return write


@pytest.fixture
def two_log_fold(tmp_path: Path, write_log: WriteLog) -> Path:
    """A fold with two logs: epochs 0-6 (numpy 2, crash during epoch 7), then 7-11 (numpy 1)."""
    fold = (
        tmp_path / "Dataset501_SyntheticHeart" / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    )
    epochs = make_epochs(0, 11)
    first = write_log(fold, epochs[:7], start=datetime(2026, 11, 9, 10, 0, 0), unfinished=epochs[7])
    write_log(
        fold,
        epochs[7:],
        start=datetime(2026, 11, 10, 8, 0, 0),
        numpy2=False,
        done=True,
        state=first,
    )
    dataset = {
        "labels": {"background": 0, "myocardium": 1, "LV": 2, "RV": 3},
        "channel_names": {"0": "MRI"},
    }
    (fold.parent / "dataset.json").write_text(json.dumps(dataset))
    return fold


@pytest.fixture
def logs() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(Epoch=Epoch, make_epochs=make_epochs)
