"""What :class:`~nnunet_ext.trainers.mixins.EpochControlMixin` uses of nnU-Net's ``nnUNetTrainer``.

The attributes and hooks the mixin reads, sets or calls, declared for readers and type checkers
(nnU-Net itself is untyped); the abstract methods are the hooks ``nnUNetTrainer`` implements.
Only imported under ``TYPE_CHECKING``: at run time the mixin's base is ``object``, so the
classes built on it have exactly their own bases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["NNUNetTrainerInterface"]


class NNUNetTrainerInterface(ABC):
    """The part of ``nnUNetTrainer`` (nnU-Net 2.x) that the mixin relies on."""

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
    optimizer: Any
    lr_scheduler: Any
    network: Any
    label_manager: Any
    dataset_json: dict[str, Any]
    my_init_kwargs: dict[str, Any]
    inference_allowed_mirroring_axes: Any
    save_every: int
    disable_checkpointing: bool

    @abstractmethod
    def print_to_log_file(  # noqa: D102
        self, *args: Any, also_print_to_console: bool = ..., add_timestamp: bool = ...
    ) -> None: ...
    @abstractmethod
    def on_epoch_start(self) -> None: ...  # noqa: D102
    @abstractmethod
    def on_train_epoch_start(self) -> None: ...  # noqa: D102
    @abstractmethod
    def train_step(self, batch: dict[str, Any]) -> dict[str, Any]: ...  # noqa: D102
    @abstractmethod
    def on_train_epoch_end(self, train_outputs: list[Any]) -> None: ...  # noqa: D102
    @abstractmethod
    def on_validation_epoch_start(self) -> None: ...  # noqa: D102
    @abstractmethod
    def validation_step(self, batch: dict[str, Any]) -> dict[str, Any]: ...  # noqa: D102
    @abstractmethod
    def on_validation_epoch_end(self, val_outputs: list[Any]) -> None: ...  # noqa: D102
    @abstractmethod
    def on_train_end(self) -> None: ...  # noqa: D102
