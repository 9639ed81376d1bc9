"""``EpochControlMixin``: epochs, iteration counts and early stopping for any nnU-Net trainer.

Put the mixin first in the bases of a trainer class with a unique name::

    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation import nnUNetTrainerDA5 as da5
    from nnunet_ext.trainers import EpochControlMixin

    class nnUNetTrainerDA5EarlyStop(EpochControlMixin, da5.nnUNetTrainerDA5):
        '''nnUNetTrainerDA5 with nnunet_ext's epochs control and early stopping.'''

Settings come from the environment (see :mod:`nnunet_ext.trainers.settings`) and, for
``CustomEpochs_<tokens>`` names, from the trainer name. They are validated in ``__init__``, before
nnU-Net creates anything. What the run did is recorded in ``<fold>/nnunet_ext_training.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.distributed as dist

from nnunet_ext import __version__
from nnunet_ext.io.atomic import write_json
from nnunet_ext.trainers.early_stopping import StopDecision, best_epoch, decide_stop
from nnunet_ext.trainers.settings import SettingsError, TrainingSettings, resolve_settings

__all__ = ["RUN_RECORD_NAME", "STOP_FILE_NAME", "EpochControlMixin"]

#: File in the fold folder that ends training gracefully after the current epoch.
STOP_FILE_NAME = "STOP"
#: JSON record of settings, versions and how training ended, in the fold folder.
RUN_RECORD_NAME = "nnunet_ext_training.json"
SCHEMA_VERSION = 1


def _install_settings_error_hook() -> None:
    """Make an uncaught :class:`SettingsError` print one line instead of a traceback (exit 1)."""
    previous = sys.excepthook
    if getattr(previous, "_nnunet_ext_hook", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, SettingsError):
            sys.stderr.write(f"nnunet_ext: error: {error}\n")
            return
        previous(kind, error, tb)

    hook._nnunet_ext_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _nnunetv2_version() -> str:
    try:
        return importlib.metadata.version("nnunetv2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class EpochControlMixin:
    """Epoch count, iteration counts and early stopping from the environment or trainer name.

    Must come before the nnU-Net trainer class in the bases. Keeps nnU-Net's constructor
    signature exactly (nnU-Net records it for checkpoints).
    """

    #: Settings carried by the trainer name; set on ``CustomEpochs_<tokens>`` classes.
    nnunet_ext_name_settings: ClassVar[Mapping[str, int | float]] = {}

    if TYPE_CHECKING:  # provided by nnUNetTrainer; declared for readers and type checkers
        output_folder: str
        current_epoch: int
        num_epochs: int
        num_iterations_per_epoch: int
        num_val_iterations_per_epoch: int
        local_rank: int
        is_ddp: bool
        logger: Any
        dataloader_train: Any
        dataloader_val: Any

        def print_to_log_file(  # noqa: D102
            self, *args: Any, also_print_to_console: bool = ..., add_timestamp: bool = ...
        ) -> None: ...
        def on_epoch_start(self) -> None: ...  # noqa: D102
        def on_train_epoch_start(self) -> None: ...  # noqa: D102
        def train_step(self, batch: dict[str, Any]) -> dict[str, Any]: ...  # noqa: D102
        def on_train_epoch_end(self, train_outputs: list[Any]) -> None: ...  # noqa: D102
        def on_validation_epoch_start(self) -> None: ...  # noqa: D102
        def validation_step(self, batch: dict[str, Any]) -> dict[str, Any]: ...  # noqa: D102
        def on_validation_epoch_end(self, val_outputs: list[Any]) -> None: ...  # noqa: D102
        def on_epoch_end(self) -> None: ...  # noqa: D102
        def on_train_end(self) -> None: ...  # noqa: D102

    def __init__(
        self,
        plans: dict[str, Any],
        configuration: str,
        fold: int,
        dataset_json: dict[str, Any],
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's exact signature
    ) -> None:
        try:
            settings = resolve_settings(
                name_settings=self.nnunet_ext_name_settings, name_tokens=type(self).__name__
            )
        except SettingsError:
            _install_settings_error_hook()
            raise
        self.nnunet_ext_settings: TrainingSettings = settings
        self._nnunet_ext_continuing = bool(plans.get("continue_training", False))
        self._nnunet_ext_started = datetime.datetime.now().isoformat(timespec="seconds")
        super().__init__(plans, configuration, fold, dataset_json, device)  # type: ignore[call-arg]
        self.num_epochs = settings.num_epochs
        self.num_iterations_per_epoch = settings.num_iterations_per_epoch
        self.num_val_iterations_per_epoch = settings.num_val_iterations_per_epoch

    # -- files in the fold folder ------------------------------------------------------------
    @property
    def stop_file(self) -> Path:
        """``<fold>/STOP``: create it to end training after the current epoch."""
        return Path(self.output_folder) / STOP_FILE_NAME

    @property
    def run_record_file(self) -> Path:
        """``<fold>/nnunet_ext_training.json``."""
        return Path(self.output_folder) / RUN_RECORD_NAME

    def _nnunet_ext_write_record(self, status: str, decision: StopDecision | None) -> None:
        if self.local_rank != 0:
            return
        history = list(self.logger.get_value("ema_fg_dice", step=None))[: self.current_epoch]
        best_e, best_v = best_epoch(history)
        record = {
            "schema_version": SCHEMA_VERSION,
            "nnunet_ext_version": __version__,
            "nnunetv2_version": _nnunetv2_version(),
            "torch_version": torch.__version__,
            "trainer": type(self).__name__,
            "trainer_bases": [c.__name__ for c in type(self).__mro__[1:] if c is not object],
            "settings": self.nnunet_ext_settings.to_dict(),
            "settings_sources": dict(self.nnunet_ext_settings.sources),
            "status": status,
            "stop": (
                {
                    "reason": decision.reason,
                    "message": decision.message,
                    "epoch": self.current_epoch - 1,
                }
                if decision is not None and decision.should_stop
                else None
            ),
            "epochs_completed": self.current_epoch,
            "best_epoch": best_e,
            "best_ema": best_v,
            "started": self._nnunet_ext_started,
            "updated": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        write_json(self.run_record_file, record)

    def _nnunet_ext_recorded_epochs(self) -> int | None:
        """The epoch count this fold's run was started with, from its run record (if any)."""
        from nnunet_ext.io.nnunet_files import load_json

        try:
            return int(load_json(self.run_record_file)["settings"]["num_epochs"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    # -- nnU-Net hooks -------------------------------------------------------------------------
    def load_checkpoint(self, filename_or_checkpoint: dict[str, Any] | str) -> None:
        """Refuse to continue a run with a different epoch count (the poly LR would jump)."""
        started_with = self._nnunet_ext_recorded_epochs() if self._nnunet_ext_continuing else None
        if started_with is not None and started_with != self.num_epochs:
            _install_settings_error_hook()
            raise SettingsError(
                f"nnUNet_n_epochs={self.num_epochs} but this run in {self.output_folder} was "
                f"started with nnUNet_n_epochs={started_with}; continuing (--c) with a different "
                "epoch count would make the poly learning-rate schedule jump. Continue with "
                f"nnUNet_n_epochs={started_with}, or start a new run (without --c, or under "
                f"a trainer name such as CustomEpochs_e{self.num_epochs})."
            )
        super().load_checkpoint(filename_or_checkpoint)  # type: ignore[misc]

    def on_train_start(self) -> None:
        """Remove a stale STOP file, then nnU-Net's start; log and record the settings."""
        if self.local_rank == 0 and self.stop_file.exists():
            self.stop_file.unlink()
            self.print_to_log_file(
                f"nnunet_ext: removed a STOP file left from an earlier run: {self.stop_file}"
            )
        super().on_train_start()  # type: ignore[misc]
        self.print_to_log_file(
            f"nnunet_ext {__version__}: {self.nnunet_ext_settings.describe()}. "
            f"Create {self.stop_file} to stop after the current epoch."
        )
        self._nnunet_ext_write_record("running", None)

    def nnunet_ext_stop_decision(self, *, check_stop_file: bool = True) -> StopDecision:
        """Decide, identically on all ranks, whether to stop before the next epoch."""
        settings = self.nnunet_ext_settings
        history = list(self.logger.get_value("ema_fg_dice", step=None))[: self.current_epoch]
        decision = decide_stop(
            history,
            patience=settings.patience,
            min_delta=settings.min_delta,
            min_epochs=settings.min_epochs,
            target_dice=settings.target_dice,
        )
        if (
            not decision.should_stop
            and check_stop_file
            and self.local_rank == 0
            and self.stop_file.exists()
        ):
            decision = dataclasses.replace(
                decision, should_stop=True, reason="stop_file", message=f"found {self.stop_file}"
            )
        if self.is_ddp and dist.is_available() and dist.is_initialized():
            shared = [decision]
            dist.broadcast_object_list(shared, src=0)
            decision = shared[0]
        return decision

    def run_training(self) -> None:
        """nnU-Net's training loop (unchanged since v2.2) plus a stop check before each epoch."""
        self.on_train_start()
        decision: StopDecision | None = None
        first = True
        for _epoch in range(self.current_epoch, self.num_epochs):
            # The STOP file is honoured only after an epoch of this session, so a stale one
            # cannot end a run before it starts.
            decision = self.nnunet_ext_stop_decision(check_stop_file=not first)
            first = False
            if decision.should_stop:
                self._nnunet_ext_log_stop(decision)
                break
            self.on_epoch_start()

            self.on_train_epoch_start()
            train_outputs = []
            for _batch_id in range(self.num_iterations_per_epoch):
                train_outputs.append(self.train_step(next(self.dataloader_train)))
            self.on_train_epoch_end(train_outputs)

            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = []
                for _batch_id in range(self.num_val_iterations_per_epoch):
                    val_outputs.append(self.validation_step(next(self.dataloader_val)))
                self.on_validation_epoch_end(val_outputs)

            self.on_epoch_end()
        else:
            decision = None

        self.on_train_end()
        self._nnunet_ext_write_record(
            "stopped_early" if decision is not None else "completed", decision
        )

    def _nnunet_ext_log_stop(self, decision: StopDecision) -> None:
        best = (
            f"best epoch {decision.best_epoch} with EMA pseudo Dice {decision.best_ema:.4f}"
            if decision.best_epoch is not None and decision.best_ema is not None
            else "no finite EMA pseudo Dice yet"
        )
        self.print_to_log_file(
            f"nnunet_ext: early stop after epoch {self.current_epoch - 1} "
            f"({self.current_epoch} epochs of {self.num_epochs}): {decision.message}; {best}."
        )
        if decision.reason == "stop_file" and self.local_rank == 0:
            with contextlib.suppress(FileNotFoundError):
                self.stop_file.unlink()
