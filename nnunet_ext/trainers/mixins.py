"""``EpochControlMixin``: epochs, iteration counts and early stopping for any nnU-Net trainer.

Put the mixin first in the bases of a trainer class with a unique name::

    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation import nnUNetTrainerDA5 as da5
    from nnunet_ext.trainers import EpochControlMixin

    class nnUNetTrainerDA5EarlyStop(EpochControlMixin, da5.nnUNetTrainerDA5):
        '''nnUNetTrainerDA5 with nnunet_ext's epochs control and early stopping.'''

Settings come from the environment (see :mod:`nnunet_ext.trainers.settings`) and, for
``CustomEpochs_<tokens>`` names, from the trainer name. They are validated in ``__init__``, before
nnU-Net creates anything. What the run did is recorded in ``<fold>/nnunet_ext_training.json``.

Besides the stop rules, the mixin runs the learning-rate cooldown after a stop
(:mod:`~nnunet_ext.trainers.cooldown`), tracks a per-label EMA pseudo-Dice with optional
``checkpoint_best_<label>.pth`` files and guards against a label being forgotten
(:mod:`~nnunet_ext.trainers.label_tracking`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.distributed as dist
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from nnunet_ext import __version__
from nnunet_ext.io.atomic import atomic_path, write_json
from nnunet_ext.trainers.cooldown import (
    BEFORE_COOLDOWN_NAME,
    CooldownPlan,
    CooldownScheduler,
    set_lr,
)
from nnunet_ext.trainers.early_stopping import StopDecision, best_epoch, decide_stop
from nnunet_ext.trainers.label_tracking import (
    ForgettingEvent,
    checkpoint_names,
    detect_forgetting,
    label_bests,
    label_emas,
    label_names,
    label_records,
)
from nnunet_ext.trainers.record import (
    RUN_RECORD_NAME,
    SCHEMA_VERSION,
    nnunetv2_version,
    read_run_record,
)
from nnunet_ext.trainers.seeding import seed_generators
from nnunet_ext.trainers.settings import (
    SettingsError,
    TrainingSettings,
    install_settings_error_hook,
    resolve_settings,
)

__all__ = ["BEFORE_COOLDOWN_NAME", "RUN_RECORD_NAME", "STOP_FILE_NAME", "EpochControlMixin"]

#: File in the fold folder that ends training gracefully after the current epoch.
STOP_FILE_NAME = "STOP"

if TYPE_CHECKING:  # what nnUNetTrainer provides, declared for readers and type checkers
    from nnunet_ext.trainers.trainer_interface import NNUNetTrainerInterface as _TrainerBase
else:
    _TrainerBase = object  # the classes built on the mixin have exactly their own bases


class EpochControlMixin(_TrainerBase):
    """Epoch count, iteration counts and early stopping from the environment or trainer name.

    Must come before the nnU-Net trainer class in the bases. Keeps nnU-Net's constructor
    signature exactly (nnU-Net records it for checkpoints).
    """

    #: Settings carried by the trainer name; set on ``CustomEpochs_<tokens>`` classes.
    nnunet_ext_name_settings: ClassVar[Mapping[str, int | float]] = {}

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
            install_settings_error_hook()
            raise
        self.nnunet_ext_settings: TrainingSettings = settings
        self._nnunet_ext_cooldown: CooldownPlan | None = None
        self._nnunet_ext_cooldown_ended_by: str | None = None
        self._nnunet_ext_stop: dict[str, Any] | None = None
        self._nnunet_ext_label_checkpoints: dict[int, dict[str, Any]] = {}
        self._nnunet_ext_continuing = bool(plans.get("continue_training", False))
        self._nnunet_ext_started = datetime.datetime.now().isoformat(timespec="seconds")
        if settings.seed is not None:  # before nnU-Net creates the network and the data loaders
            seed_generators(settings.seed)
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

    @property
    def nnunet_ext_label_names(self) -> list[str]:
        """Names of the entries of nnU-Net's per-label pseudo Dice, in its order."""
        return label_names(self.label_manager, self.dataset_json)

    def _nnunet_ext_label_state(
        self, epochs: int
    ) -> tuple[list[list[float]], list[tuple[int | None, float | None]], list[ForgettingEvent]]:
        """Per-label EMAs, bests and forgetting events over the first ``epochs`` epochs."""
        dice = [
            [float(v) for v in row]
            for row in list(self.logger.get_value("dice_per_class_or_region", step=None))[:epochs]
        ]
        emas = label_emas(dice)
        settings = self.nnunet_ext_settings
        events = detect_forgetting(
            emas,
            fraction=settings.forgetting_fraction,
            epochs=settings.forgetting_epochs,
            label_names=self.nnunet_ext_label_names,
        )
        return emas, label_bests(emas), events

    def _nnunet_ext_write_record(self, status: str) -> None:
        if self.local_rank != 0:
            return
        history = list(self.logger.get_value("ema_fg_dice", step=None))[: self.current_epoch]
        best_e, best_v = best_epoch(history)
        _, bests, events = self._nnunet_ext_label_state(self.current_epoch)
        labels = label_records(
            self.nnunet_ext_label_names, bests, self._nnunet_ext_label_checkpoints
        )
        plan = self._nnunet_ext_cooldown
        cooldown = (
            plan.progress(self.current_epoch, ended_by=self._nnunet_ext_cooldown_ended_by)
            if plan is not None
            else None
        )
        record = {
            "schema_version": SCHEMA_VERSION,
            "nnunet_ext_version": __version__,
            "nnunetv2_version": nnunetv2_version(),
            "torch_version": torch.__version__,
            "trainer": type(self).__name__,
            "trainer_bases": [c.__name__ for c in type(self).__mro__[1:] if c is not object],
            "settings": self.nnunet_ext_settings.to_dict(),
            "settings_sources": dict(self.nnunet_ext_settings.sources),
            "status": status,
            "stop": self._nnunet_ext_stop,
            "cooldown": cooldown,
            "epochs_completed": self.current_epoch,
            "best_epoch": best_e,
            "best_ema": best_v,
            "labels": labels,
            "forgetting": [e.to_dict() for e in events],
            "started": self._nnunet_ext_started,
            "updated": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        write_json(self.run_record_file, record)

    def _nnunet_ext_read_record(self) -> dict[str, Any] | None:
        """This fold's run record, or ``None`` if there is none or it cannot be read."""
        try:
            return read_run_record(self.run_record_file)
        except (FileNotFoundError, ValueError):
            return None

    # -- nnU-Net hooks -------------------------------------------------------------------------
    def load_checkpoint(self, filename_or_checkpoint: dict[str, Any] | str) -> None:
        """Refuse to continue a run with a different epoch count; pick up a cooldown."""
        record = self._nnunet_ext_read_record() if self._nnunet_ext_continuing else None
        started_with = None
        if record is not None:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                started_with = int(record["settings"]["num_epochs"])
        if started_with is not None and started_with != self.num_epochs:
            install_settings_error_hook()
            raise SettingsError(
                f"nnUNet_n_epochs={self.num_epochs} but this run in {self.output_folder} was "
                f"started with nnUNet_n_epochs={started_with}; continuing (--c) with a different "
                "epoch count would make the poly learning-rate schedule jump. Continue with "
                f"nnUNet_n_epochs={started_with}, or start a new run (without --c, or under "
                f"a trainer name such as CustomEpochs_e{self.num_epochs})."
            )
        super().load_checkpoint(filename_or_checkpoint)  # type: ignore[misc]
        if record is not None:
            self._nnunet_ext_resume(record)

    def _nnunet_ext_resume(self, record: dict[str, Any]) -> None:
        """After ``--c``: continue a recorded cooldown, keep the labels' checkpoint epochs."""
        for label in record.get("labels") or []:
            if isinstance(label, dict) and label.get("checkpoint_epoch") is not None:
                epoch = int(label["checkpoint_epoch"])
                if epoch < self.current_epoch:
                    self._nnunet_ext_label_checkpoints[int(label["index"])] = {"epoch": epoch}
        data = record.get("cooldown")
        if not isinstance(data, dict):
            return
        plan = CooldownPlan.from_dict(data)
        if self.current_epoch < plan.start_epoch:
            self.print_to_log_file(
                f"nnunet_ext: the recorded cooldown started at epoch {plan.start_epoch}, but the "
                f"checkpoint resumes at epoch {self.current_epoch}; the stop rules decide anew."
            )
            return
        if plan.iterations_per_epoch != self.num_iterations_per_epoch:
            plan = dataclasses.replace(plan, iterations_per_epoch=self.num_iterations_per_epoch)
        self._nnunet_ext_stop = record.get("stop") if isinstance(record.get("stop"), dict) else None
        self._nnunet_ext_cooldown_ended_by = data.get("ended_by")
        self._nnunet_ext_install_cooldown(plan)
        if self.current_epoch < plan.end_epoch and self._nnunet_ext_cooldown_ended_by is None:
            self.print_to_log_file(
                f"nnunet_ext: resuming the cooldown at epoch {self.current_epoch} "
                f"(cooldown epochs {plan.start_epoch}-{plan.end_epoch - 1}, learning rate "
                f"from {plan.start_lr:.6g} to 0)."
            )
        else:
            self.print_to_log_file(
                "nnunet_ext: this run already ended with its cooldown; no further epoch is "
                "trained (start a new run to train longer)."
            )

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
        seed = self.nnunet_ext_settings.seed
        if seed is not None and get_allowed_n_proc_DA() != 0:
            self.print_to_log_file(
                f"nnunet_ext: WARNING nnUNet_seed={seed} seeds the network's initialisation and "
                "this process, but not nnU-Net's augmentation workers: this run is not "
                "reproducible. Set nnUNet_n_proc_DA=0 for a reproducible run."
            )
        self._nnunet_ext_write_record("running")

    def on_epoch_end(self) -> None:
        """nnU-Net's epoch end; a checkpoint_latest in each cooldown epoch; per-label tracking.

        The run record is rewritten after every epoch, so that it names the label checkpoints
        on disk when ``--c`` resumes after a crash.
        """
        epoch = self.current_epoch
        plan = self._nnunet_ext_cooldown
        save_every = self.save_every
        if plan is not None and plan.contains(epoch) and epoch + 1 < plan.end_epoch:
            self.save_every = 1  # so that --c can resume the cooldown where it was interrupted
        try:
            super().on_epoch_end()  # type: ignore[misc]
        finally:
            self.save_every = save_every
        self._nnunet_ext_track_labels(epoch)
        self._nnunet_ext_write_record("running")  # in step with the label checkpoints on disk

    def _nnunet_ext_track_labels(self, epoch: int) -> None:
        """Write label checkpoints at new per-label bests; log forgetting when it is detected."""
        _, bests, events = self._nnunet_ext_label_state(epoch + 1)
        names = self.nnunet_ext_label_names
        if self.nnunet_ext_settings.label_checkpoints:
            files = checkpoint_names(names)
            for index, (best_e, best_v) in enumerate(bests):
                if best_e == epoch and best_v is not None:
                    self._nnunet_ext_save_label_checkpoint(
                        index, names[index], files[index], epoch, best_v
                    )
        for event in events:
            if event.epoch == epoch:
                self.print_to_log_file(f"nnunet_ext: WARNING: {event.describe()}.")

    def _nnunet_ext_save_label_checkpoint(
        self, index: int, name: str, file_name: str, epoch: int, ema: float
    ) -> None:
        self._nnunet_ext_label_checkpoints[index] = {"epoch": epoch}
        if self._nnunet_ext_save_weights(
            file_name, epoch, {"label": name, "index": index, "epoch": epoch, "ema": ema}
        ):
            self.print_to_log_file(
                f"nnunet_ext: new best EMA pseudo Dice of label {name!r}: {ema:.4f}; "
                f"wrote {file_name}"
            )

    def _nnunet_ext_save_weights(self, file_name: str, epoch: int, info: dict[str, Any]) -> bool:
        """Write weights plus what nnU-Net's predictor reads (no optimizer state) on rank 0."""
        if self.local_rank != 0 or self.disable_checkpointing:
            return False
        module = self.network.module if self.is_ddp else self.network
        module = getattr(module, "_orig_mod", module)  # torch.compile wrapper
        checkpoint = {
            "network_weights": module.state_dict(),
            "trainer_name": self.__class__.__name__,
            "init_args": self.my_init_kwargs,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            "current_epoch": epoch + 1,
            "nnunet_ext": info,
        }
        target = Path(self.output_folder) / file_name
        with atomic_path(target) as tmp:
            torch.save(checkpoint, tmp)
        return True

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
            and settings.stop_on_forgetting
            and len(history) >= max(1, settings.min_epochs)
        ):
            _, _, events = self._nnunet_ext_label_state(self.current_epoch)
            if events:
                decision = dataclasses.replace(
                    decision,
                    should_stop=True,
                    reason="forgetting",
                    message=f"{events[0].describe()} (nnUNet_stop_on_forgetting=1)",
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
        return self._nnunet_ext_broadcast(decision)

    def _nnunet_ext_broadcast(self, value: Any) -> Any:
        if self.is_ddp and dist.is_available() and dist.is_initialized():
            shared = [value]
            dist.broadcast_object_list(shared, src=0)
            return shared[0]
        return value

    def _nnunet_ext_install_cooldown(self, plan: CooldownPlan) -> None:
        self._nnunet_ext_cooldown = plan
        self.lr_scheduler = CooldownScheduler(self.optimizer, plan)

    def _nnunet_ext_start_cooldown(self, decision: StopDecision) -> CooldownPlan | None:
        """Start the cooldown after a stop rule fired; ``None`` when it is off."""
        wanted = self.nnunet_ext_settings.cooldown_epochs
        left = self.num_epochs - self.current_epoch
        if wanted <= 0 or left <= 0:
            return None
        self.lr_scheduler.step(self.current_epoch)  # the rate the schedule gives this epoch
        start_lr = float(self.optimizer.param_groups[0]["lr"])
        plan = CooldownPlan(
            start_epoch=self.current_epoch,
            epochs=min(wanted, left),
            requested_epochs=wanted,
            start_lr=start_lr,
            iterations_per_epoch=self.num_iterations_per_epoch,
            reason=str(decision.reason),
            message=decision.message,
        )
        self._nnunet_ext_install_cooldown(plan)
        self._nnunet_ext_save_weights(
            BEFORE_COOLDOWN_NAME,
            self.current_epoch - 1,
            {"before_cooldown": True, "epoch": self.current_epoch - 1},
        )
        capped = f", capped by nnUNet_n_epochs={self.num_epochs}" if plan.epochs < wanted else ""
        self.print_to_log_file(
            f"nnunet_ext: cooldown: {plan.epochs} more epochs (epochs {plan.start_epoch}-"
            f"{plan.end_epoch - 1}) with the learning rate annealed from {start_lr:.6g} to 0 on "
            f"the poly curve (nnUNet_cooldown_epochs={wanted}{capped}). The weights before "
            f"it are in {BEFORE_COOLDOWN_NAME}."
        )
        self._nnunet_ext_write_record("running")
        return plan

    def _nnunet_ext_stop_file_found(self) -> bool:
        found = self.local_rank == 0 and self.stop_file.exists()
        return bool(self._nnunet_ext_broadcast(found))

    def run_training(self) -> None:
        """nnU-Net's training loop (unchanged since v2.2) plus the stop rules and the cooldown."""
        self.on_train_start()
        first = True
        while self.current_epoch < self.num_epochs:
            plan = self._nnunet_ext_cooldown
            if plan is None:
                # The STOP file is honoured only after an epoch of this session, so a stale one
                # cannot end a run before it starts.
                decision = self.nnunet_ext_stop_decision(check_stop_file=not first)
                if decision.should_stop:
                    self._nnunet_ext_log_stop(decision)
                    plan = self._nnunet_ext_start_cooldown(decision)
                    if plan is None:
                        break
            elif self.current_epoch >= plan.end_epoch or self._nnunet_ext_cooldown_ended_by:
                break
            elif not first and self._nnunet_ext_stop_file_found():
                self._nnunet_ext_cooldown_ended_by = "stop_file"
                self.print_to_log_file(
                    f"nnunet_ext: found {self.stop_file} during the cooldown; ending now, after "
                    f"{self.current_epoch - plan.start_epoch} of {plan.epochs} cooldown epochs."
                )
                if self.local_rank == 0:
                    with contextlib.suppress(FileNotFoundError):
                        self.stop_file.unlink()
                break
            first = False
            self.on_epoch_start()

            self.on_train_epoch_start()
            train_outputs = []
            rates = []
            for batch_id in range(self.num_iterations_per_epoch):
                if plan is not None:
                    rates.append(plan.lr(self.current_epoch, batch_id))
                    set_lr(self.optimizer, rates[-1])
                train_outputs.append(self.train_step(next(self.dataloader_train)))
            self.on_train_epoch_end(train_outputs)
            if plan is not None:
                self.print_to_log_file(
                    f"nnunet_ext: cooldown epoch {self.current_epoch - plan.start_epoch + 1} of "
                    f"{plan.epochs}: learning rate {rates[0]:.6g} -> {rates[-1]:.6g}"
                )

            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = []
                for _batch_id in range(self.num_val_iterations_per_epoch):
                    val_outputs.append(self.validation_step(next(self.dataloader_val)))
                self.on_validation_epoch_end(val_outputs)

            self.on_epoch_end()

        self.on_train_end()
        self._nnunet_ext_write_record(
            "stopped_early" if self._nnunet_ext_stop is not None else "completed"
        )

    def _nnunet_ext_log_stop(self, decision: StopDecision) -> None:
        self._nnunet_ext_stop = {
            "reason": decision.reason,
            "message": decision.message,
            "epoch": self.current_epoch - 1,
        }
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
